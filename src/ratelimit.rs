//! A client-side rate limiter: at most N requests in any window of one period. The guide below
//! covers it with the retries (`lead_intake::retry`), since they answer the same 429s.
//!
#![doc = "[BENCHMARKS.md]: crate::_texts::benchmarks"]
#![doc = include_str!("guides/ratelimit.md")]

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{Either, select};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Kommo's documented limit: 7 requests per second per integration.
pub const KOMMO_REQUESTS_PER_SECOND: u32 = 7;

/// A rate limiter: at most `max` requests in any window of `period`, as the server counts them
/// (see the [module](self) for the margin). Cloning it shares the budget. Waiting requests are
/// served in the order they arrived.
///
/// By default the budget lives in this process. [`RateLimiter::shared`] puts it in a
/// [`SharedLimit`] backend instead, such as `lead_intake::shared::RedisRateLimit` (feature
/// `redis`), so that every process using it shares one budget.
#[derive(Clone)]
pub struct RateLimiter {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Local(Arc<Inner>),
    Shared(Arc<dyn SharedLimit>),
}

/// A boxed future, as [`SharedLimit`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A rate limit kept outside this process (feature `redis`: `lead_intake::shared::RedisRateLimit`),
/// for [`RateLimiter::shared`]. It must keep at least the rule of the in-process limiter: no
/// window of [`period`](Self::period) holds more than [`max`](Self::max) granted requests, each
/// counted from its grant until [`SharedGrant::finish`], for at least the
/// [`margin`](Self::margin) if it is never finished. It may count a request longer:
/// `RedisRateLimit` keeps a place answered after the margin until a period after its answer, as
/// the request may have reached the server late.
pub trait SharedLimit: Send + Sync + fmt::Debug + 'static {
    /// Waits until a request may start, and counts it; or fails, and then the request is not
    /// sent. A wait that is cancelled should take no place.
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn SharedGrant>, RateLimiterUnavailable>>;
    /// The most requests in one period.
    fn max(&self) -> u32;
    /// The period.
    fn period(&self) -> Duration;
    /// The margin (see [`RateLimiter::with_margin`]).
    fn margin(&self) -> Duration;
}

/// A request a [`SharedLimit`] let through.
pub trait SharedGrant: Send + fmt::Debug {
    /// The answer arrived: the place may leave the window one period from now (not sooner).
    /// Failing to record it must only lower the rate (the place keeps its margin).
    fn finish(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The rate limiter could not grant a request (its shared store, such as Redis, cannot be
/// reached, or refused), so the request was not sent. Its text says what failed and where,
/// never a password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the rate limiter cannot grant a request, so it was not sent: {source}")]
pub struct RateLimiterUnavailable {
    source: Arc<dyn StdError + Send + Sync>,
}

impl RateLimiterUnavailable {
    /// The failure of a [`SharedLimit`] backend. Its text must carry no secret.
    pub fn new(source: impl StdError + Send + Sync + 'static) -> Self {
        Self {
            source: Arc::new(source),
        }
    }

    /// The backend's own error, e.g. a `lead_intake::shared::SharedError` (downcast it with
    /// [`downcast_ref`](https://doc.rust-lang.org/std/error/trait.Error.html#method.downcast_ref)).
    pub fn cause(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }
}

struct Inner {
    max: usize,
    period: Duration,
    margin: Duration,
    /// The last `max` requests granted.
    slots: Mutex<Vec<Slot>>,
    next_id: AtomicU64,
    /// Held by the request whose turn it is; tokio's mutex is fair, so turns go in the order
    /// the requests asked.
    queue: tokio::sync::Mutex<()>,
    /// Wakes the waiting request when a permit finishes (a place may have freed up sooner).
    finished: Notify,
}

/// A granted request. `anchor` is the latest time the server can have counted it: its start
/// plus the margin, lowered to the moment its answer came if that was sooner.
#[derive(Clone, Copy)]
struct Slot {
    id: u64,
    anchor: Instant,
}

/// A rate limit that cannot work: zero requests, or a zero period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate limit: {0}")]
pub struct InvalidRateLimit(&'static str);

/// The longest period (and margin) a limiter takes, so that its clock arithmetic cannot
/// overflow: 365 days.
const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 60 * 60);

impl RateLimiter {
    /// At most `max` requests in any window of `period`, with a margin of a tenth of the
    /// period (see [`with_margin`](Self::with_margin)).
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(lead_intake::ratelimit::RateLimiter::new(0, Duration::from_secs(1)).is_err());
    /// assert!(lead_intake::ratelimit::RateLimiter::new(1, Duration::MAX).is_err());
    /// ```
    pub fn new(max: u32, period: Duration) -> Result<Self, InvalidRateLimit> {
        if max == 0 {
            return Err(InvalidRateLimit(
                "max must be at least 1 request (use no_rate_limit() to switch limiting off)",
            ));
        }
        if period.is_zero() {
            return Err(InvalidRateLimit("the period must be longer than zero"));
        }
        if period > MAX_PERIOD {
            return Err(InvalidRateLimit("the period must be at most 365 days"));
        }
        Ok(Self::build(max as usize, period, period / 10))
    }

    fn build(max: usize, period: Duration, margin: Duration) -> Self {
        Self {
            backend: Backend::Local(Arc::new(Inner {
                max,
                period,
                margin,
                slots: Mutex::new(Vec::with_capacity(max)),
                next_id: AtomicU64::new(0),
                queue: tokio::sync::Mutex::new(()),
                finished: Notify::new(),
            })),
        }
    }

    /// A limiter whose budget is kept by `backend`, e.g. a `lead_intake::shared::RedisRateLimit`
    /// shared by several processes (which also converts with `.into()`). When the backend
    /// cannot grant a request, the request is not sent and the call fails with
    /// `ApiError::RateLimiterUnavailable`.
    pub fn shared(backend: impl SharedLimit) -> Self {
        Self {
            backend: Backend::Shared(Arc::new(backend)),
        }
    }

    /// True for a limiter made by [`shared`](Self::shared).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Shared(_))
    }

    /// At most `max` requests per second (margin: 100 ms).
    pub fn per_second(max: u32) -> Result<Self, InvalidRateLimit> {
        Self::new(max, Duration::from_secs(1))
    }

    /// Kommo's documented limit, [`KOMMO_REQUESTS_PER_SECOND`] per second (margin: 100 ms).
    pub fn kommo_default() -> Self {
        Self::build(
            KOMMO_REQUESTS_PER_SECOND as usize,
            Duration::from_secs(1),
            Duration::from_millis(100),
        )
    }

    /// How late the server may count a request after it starts: up to this long, a request
    /// holds its place in the window until its answer comes (see the [module](self)). Zero
    /// counts every request at its start, which is exact only if every request reaches the
    /// server in the same time. A margin longer than 365 days counts as 365 days. Returns a new,
    /// unused limiter: set it before sharing. A [`shared`](Self::shared) limiter is returned
    /// as it is (set the margin on its backend).
    ///
    /// ```
    /// use std::time::Duration;
    /// use lead_intake::ratelimit::RateLimiter;
    /// let limiter = RateLimiter::per_second(7)?.with_margin(Duration::from_millis(250));
    /// assert_eq!(limiter.margin(), Duration::from_millis(250));
    /// # Ok::<(), lead_intake::ratelimit::InvalidRateLimit>(())
    /// ```
    pub fn with_margin(self, margin: Duration) -> Self {
        match &self.backend {
            Backend::Local(inner) => Self::build(inner.max, inner.period, margin.min(MAX_PERIOD)),
            Backend::Shared(_) => self,
        }
    }

    /// The most requests allowed in one period.
    pub fn max(&self) -> u32 {
        match &self.backend {
            Backend::Local(inner) => inner.max as u32,
            Backend::Shared(backend) => backend.max(),
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        match &self.backend {
            Backend::Local(inner) => inner.period,
            Backend::Shared(backend) => backend.period(),
        }
    }

    /// The margin ([`with_margin`](Self::with_margin)).
    pub fn margin(&self) -> Duration {
        match &self.backend {
            Backend::Local(inner) => inner.margin,
            Backend::Shared(backend) => backend.margin(),
        }
    }

    /// Waits until a request may start, and counts it. Call [`Permit::finish`] when the
    /// answer arrives; a permit dropped without it keeps its place for the whole margin (the
    /// limiter errs on the side of fewer requests). A wait that is cancelled takes no place.
    ///
    /// The in-process limiter never fails; a [`shared`](Self::shared) one fails when its
    /// backend cannot grant (e.g. Redis is down and no local fallback was set), and then the
    /// request must not be sent.
    pub async fn acquire(&self) -> Result<Permit, RateLimiterUnavailable> {
        let inner = match &self.backend {
            Backend::Local(inner) => inner,
            Backend::Shared(backend) => {
                let grant = backend.acquire().await?;
                return Ok(Permit {
                    kind: PermitKind::Shared(grant),
                });
            }
        };
        let _turn = inner.queue.lock().await;
        loop {
            let finished = inner.finished.notified();
            let mut finished = std::pin::pin!(finished);
            // Registered before looking, so a finish between the look and the wait wakes us.
            finished.as_mut().enable();
            match try_grant(inner, Instant::now()) {
                Ok(id) => {
                    return Ok(Permit {
                        kind: PermitKind::Local {
                            limiter: Arc::clone(inner),
                            id,
                        },
                    });
                }
                Err(free_at) => {
                    tracing::debug!(
                        wait_ms = free_at
                            .saturating_duration_since(Instant::now())
                            .as_millis() as u64,
                        max = inner.max,
                        period_ms = inner.period.as_millis() as u64,
                        "rate limiter: waiting for a slot"
                    );
                    let timer = std::pin::pin!(tokio::time::sleep_until(free_at));
                    match select(timer, finished).await {
                        Either::Left(_) | Either::Right(_) => {}
                    }
                }
            }
        }
    }
}

fn slots(inner: &Inner) -> std::sync::MutexGuard<'_, Vec<Slot>> {
    // The lock is never held across an await, and nothing inside can panic, but recover
    // from poisoning anyway rather than panic in library code.
    inner
        .slots
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Grants a place at `now`, or says when the earliest place frees up.
fn try_grant(inner: &Inner, now: Instant) -> Result<u64, Instant> {
    let mut slots = slots(inner);
    if slots.len() >= inner.max {
        // One of the last `max` must have left the window: the one the server counted
        // earliest, a full period after that.
        let earliest = (0..slots.len()).min_by_key(|&i| slots[i].anchor);
        if let Some(i) = earliest {
            let free_at = slots[i].anchor + inner.period;
            if free_at > now {
                return Err(free_at);
            }
            slots.swap_remove(i);
        }
    }
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    slots.push(Slot {
        id,
        anchor: now + inner.margin,
    });
    Ok(id)
}

fn finish(inner: &Inner, id: u64, now: Instant) {
    let lowered = {
        let mut slots = slots(inner);
        match slots.iter_mut().find(|s| s.id == id) {
            Some(slot) if now < slot.anchor => {
                slot.anchor = now;
                true
            }
            _ => false,
        }
    };
    if lowered {
        inner.finished.notify_waiters();
    }
}

/// A request the [`RateLimiter`] let through. [`finish`](Self::finish) it when the answer (or
/// an error) arrives.
#[must_use = "call finish() when the answer arrives, or the request keeps its place for the whole margin"]
pub struct Permit {
    kind: PermitKind,
}

enum PermitKind {
    Local { limiter: Arc<Inner>, id: u64 },
    Shared(Box<dyn SharedGrant>),
}

impl Permit {
    /// The answer has arrived, so the server has counted the request by now: it leaves the
    /// window one period from now rather than one period from its start plus the margin.
    ///
    /// For a [`shared`](RateLimiter::shared) limiter this tells the backend in a task of its
    /// own (outside a tokio runtime it cannot, and the place keeps its margin); use
    /// [`finish_shared`](Self::finish_shared) to wait for it.
    pub fn finish(self) {
        match self.kind {
            PermitKind::Local { limiter, id } => finish(&limiter, id, Instant::now()),
            PermitKind::Shared(grant) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(grant.finish());
                }
            }
        }
    }

    /// As [`finish`](Self::finish), waiting until a shared backend has recorded it.
    pub async fn finish_shared(self) {
        match self.kind {
            PermitKind::Local { limiter, id } => finish(&limiter, id, Instant::now()),
            PermitKind::Shared(grant) => grant.finish().await,
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PermitKind::Local { id, .. } => f.debug_struct("Permit").field("id", id).finish(),
            PermitKind::Shared(grant) => f.debug_tuple("Permit").field(grant).finish(),
        }
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            Backend::Local(inner) => f
                .debug_struct("RateLimiter")
                .field("max", &inner.max)
                .field("period", &inner.period)
                .field("margin", &inner.margin)
                .finish(),
            Backend::Shared(backend) => f.debug_tuple("RateLimiter").field(backend).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn huge_periods_are_refused_and_huge_margins_capped_never_a_panic() {
        assert!(RateLimiter::new(1, Duration::MAX).is_err());
        assert!(RateLimiter::new(1, MAX_PERIOD).is_ok());
        let limiter = RateLimiter::new(1, MAX_PERIOD)
            .unwrap()
            .with_margin(Duration::MAX);
        assert_eq!(limiter.margin(), MAX_PERIOD);
        limiter.acquire().await.unwrap().finish();
        // The window is full for a year (paused time would skip a shorter wait).
        let second = tokio::time::timeout(Duration::from_secs(3600), limiter.acquire()).await;
        assert!(second.is_err(), "a second request within the period");
    }

    /// No window of one period holds more than `max` of the recorded starts.
    fn assert_window(starts: &mut [Instant], max: usize, period: Duration) {
        starts.sort();
        for (i, s) in starts.iter().enumerate() {
            let in_window = starts[i..].iter().take_while(|t| **t < *s + period).count();
            assert!(
                in_window <= max,
                "{in_window} requests started within {period:?} of request {i} (max {max})"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_max_in_any_window_under_concurrency() {
        let limiter = RateLimiter::per_second(7)
            .unwrap()
            .with_margin(Duration::ZERO);
        let begin = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limiter.acquire().await.unwrap();
                Instant::now()
            }));
        }
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.unwrap());
        }
        assert_window(&mut starts, 7, Duration::from_secs(1));
        // Not slower than needed: 50 requests at 7/s need 7 full periods, not more.
        let elapsed = starts.iter().max().unwrap().duration_since(begin);
        assert_eq!(elapsed, Duration::from_secs(7));
        // And the first seven went at once.
        assert_eq!(starts.iter().filter(|s| **s == begin).count(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn spaced_requests_are_not_delayed() {
        let limiter = RateLimiter::per_second(2).unwrap();
        for _ in 0..5 {
            let before = Instant::now();
            limiter.acquire().await.unwrap().finish();
            assert_eq!(Instant::now(), before, "a request within the budget waited");
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn window_slides_rather_than_resets() {
        // 3 per second: requests at 0, 0.9, 0.9 fill the window; the 4th may go at 1.0 (one
        // period after the first), the 5th only at 1.9.
        let limiter = RateLimiter::per_second(3)
            .unwrap()
            .with_margin(Duration::ZERO);
        let begin = Instant::now();
        limiter.acquire().await.unwrap().finish();
        tokio::time::sleep(Duration::from_millis(900)).await;
        limiter.acquire().await.unwrap().finish();
        limiter.acquire().await.unwrap().finish();
        limiter.acquire().await.unwrap().finish();
        assert_eq!(Instant::now() - begin, Duration::from_millis(1000));
        limiter.acquire().await.unwrap().finish();
        assert_eq!(Instant::now() - begin, Duration::from_millis(1900));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_requests_are_served_in_arrival_order() {
        let limiter = RateLimiter::per_second(1).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (limiter, order) = (limiter.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                limiter.acquire().await.unwrap().finish();
                order.lock().unwrap().push((i, Instant::now()));
            }));
            // Let task i reach the limiter before task i + 1 is spawned.
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap();
        let ids: Vec<i32> = order.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        let gaps: Vec<Duration> = order.windows(2).map(|w| w[1].1 - w[0].1).collect();
        assert_eq!(gaps, [Duration::from_secs(1); 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_request_keeps_its_place_for_the_margin() {
        let limiter = RateLimiter::per_second(1)
            .unwrap()
            .with_margin(Duration::from_millis(100));
        let begin = Instant::now();
        drop(limiter.acquire().await.unwrap());
        limiter.acquire().await.unwrap().finish();
        assert_eq!(Instant::now() - begin, Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_leaves_the_window_a_period_after_its_answer_within_the_margin() {
        let limiter = RateLimiter::per_second(1)
            .unwrap()
            .with_margin(Duration::from_millis(100));
        let begin = Instant::now();
        let permit = limiter.acquire().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        permit.finish();
        limiter.acquire().await.unwrap().finish();
        assert_eq!(Instant::now() - begin, Duration::from_millis(1030));
        // An answer later than the margin: the margin bounds the wait.
        let permit = limiter.acquire().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        permit.finish();
        limiter.acquire().await.unwrap().finish();
        // Request 3 waited for request 2's window (2030), then held its place 100 ms.
        assert_eq!(Instant::now() - begin, Duration::from_millis(2030 + 1100));
    }

    /// Requests from several tasks reach the "server" after a one-way delay of up to `delay`
    /// (varying per request), are answered after it, and finish their permit then. Returns the
    /// arrival times, as the server would count them.
    async fn arrivals(limiter: RateLimiter, seed: u64, delay: u64) -> Vec<Instant> {
        let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (limiter, rng, arrivals) = (limiter.clone(), rng.clone(), arrivals.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..40 {
                    let permit = limiter.acquire().await.unwrap();
                    let (there, back) = {
                        let mut rng = rng.lock().unwrap();
                        (rng.u64(0..=delay), rng.u64(0..=delay))
                    };
                    tokio::time::sleep(Duration::from_millis(there)).await;
                    arrivals.lock().unwrap().push(Instant::now());
                    tokio::time::sleep(Duration::from_millis(back)).await;
                    permit.finish();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        arrivals.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn the_server_never_counts_more_than_max_when_arrival_delays_vary_within_the_margin() {
        for seed in 0..20 {
            let limiter = RateLimiter::per_second(7).unwrap(); // margin 100 ms
            let mut arrived = arrivals(limiter, seed, 100).await;
            assert_eq!(arrived.len(), 160);
            assert_window(&mut arrived, 7, Duration::from_secs(1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counting_starts_only_lets_varying_delays_overrun_the_server() {
        // The reason for the margin: the same traffic with margin zero breaks the window.
        let mut broken = 0;
        for seed in 0..20 {
            let limiter = RateLimiter::per_second(7)
                .unwrap()
                .with_margin(Duration::ZERO);
            let mut arrived = arrivals(limiter, seed, 100).await;
            let overrun = std::panic::catch_unwind(move || {
                assert_window(&mut arrived, 7, Duration::from_secs(1))
            });
            broken += usize::from(overrun.is_err());
        }
        assert!(broken > 0, "no seed overran the server without the margin");
    }

    #[test]
    fn the_check_catches_a_burst() {
        // The window check itself must fail on a bad schedule.
        let now = Instant::now();
        let mut starts: Vec<Instant> = (0..8).map(|i| now + Duration::from_millis(i)).collect();
        let caught =
            std::panic::catch_unwind(move || assert_window(&mut starts, 7, Duration::from_secs(1)));
        assert!(caught.is_err());
    }

    #[test]
    fn invalid_limits_are_refused() {
        assert!(RateLimiter::new(0, Duration::from_secs(1)).is_err());
        assert!(RateLimiter::new(3, Duration::ZERO).is_err());
        assert_eq!(RateLimiter::kommo_default().max(), 7);
        assert_eq!(
            RateLimiter::kommo_default().margin(),
            Duration::from_millis(100)
        );
        assert_eq!(
            RateLimiter::per_second(3).unwrap().margin(),
            Duration::from_millis(100)
        );
    }
}
