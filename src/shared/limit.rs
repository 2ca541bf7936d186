//! The shared sliding window: [`RedisRateLimit`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use redis::Script;

use super::{RedisConnection, SharedError, check_name};
use crate::ratelimit::{
    BoxFuture, Permit, RateLimiter, RateLimiterUnavailable, SharedGrant, SharedLimit,
};

static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("acquire.lua")));
static FINISH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("finish.lua")));
static LEAVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("leave.lua")));
static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("extend_place.lua")));

/// The longest period (and margin) a limit takes, as [`RateLimiter`]'s: 365 days.
const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The default poll interval's bounds (see [`RedisRateLimit::with_poll_interval`]).
const MIN_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_secs(1);
/// How long a waiter's ticket stays live beyond its poll interval, so a waiter slowed down by a
/// busy machine keeps its turn.
const LIVENESS_SLACK: Duration = Duration::from_secs(1);

/// A sliding-window rate limit shared by every process that uses the same Redis and name: no
/// window of one `period` holds more than `max` requests, each counted from its grant until its
/// answer ([`SharedPermit::finish`]), or until its grant plus the margin while it has none.
///
/// **A late answer moves the place, both ways.** The server counts a request when it arrives,
/// which can be later than the margin after the grant: the grant's answer from Redis, the
/// process's scheduling, a new connection or a slow network all come between. The answer is the
/// only moment the client knows the server has counted it, so [`SharedPermit::finish`] sets the
/// place's anchor to that moment, lower *or higher* than the grant plus the margin, and the
/// place leaves the window one period after the answer. (Measured, issue 20: beside the other
/// tests of `tests/multi_process.rs`, up to 37 requests a run reached the fake 100 to 292 ms
/// after their grant; keeping the margin let the next grant in while the fake still counted
/// them, and drew 429s in 3 of 7 runs; beside a CPU load, requests reached it over a second
/// after their grant.) While the request is in flight, the permit keeps its place in the window:
/// a lease task of the permit moves the anchor up to Redis's now every quarter period, so the
/// place cannot leave before the answer however late the request reaches the server; a request
/// answered within a quarter period costs no extra Redis call. The margin only bounds a permit
/// dropped without [`SharedPermit::finish`]; the place of a process that died leaves a period
/// after its last extension (at most a quarter period before it died) or after its grant plus
/// the margin, whichever is later. This costs a request answered after the margin its round trip
/// instead of the margin; the in-process [`RateLimiter`] keeps the margin as its bound.
///
/// Each step runs as one Lua script in Redis, on Redis's clock (`TIME`), so the workers' clocks do
/// not matter. Waiters take a ticket and are served in ticket order across all processes; a
/// waiter that stops asking (its process crashed) loses its ticket after a short deadline, and a
/// place whose request never finished leaves the window one period after its grant plus the
/// margin. Clones share the limit's settings; the state is in Redis.
///
/// Redis's clock is the only one that counts: if it jumps forward (a badly set NTP server), the
/// places in the window leave early, once; if it jumps back, they stay longer.
///
/// When Redis cannot be reached, [`acquire`](Self::acquire) fails with
/// [`SharedError::Unavailable`] and grants nothing, unless a local fallback is set
/// ([`with_local_fallback`](Self::with_local_fallback)).
///
/// Keys (all under the `{name}` hash tag): `{name}:limit:places`, `:queue`, `:alive` (each with
/// a time to live, so an idle limit leaves them behind), `:seq` (a counter that never expires)
/// and `:hold`.
///
/// **A limit without history waits one period.** When `:seq` is missing (the name was never
/// used, or Redis came back without its data while workers were sending), the window cannot
/// know what was sent in the last period: the first grant waits for the period and the margin
/// (`:hold`), and the requests still in flight put their places back (their lease, within a
/// quarter period, or their answer), so a Redis restart that loses the data never lets more
/// than `max` through. The very first request under a new name waits once, about a second for
/// Kommo's limit.
///
/// ```no_run
/// use std::time::Duration;
/// use lead_intake::shared::{RedisConnection, RedisRateLimit};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisConnection::open("redis+unix:///run/redis/redis.sock")?;
/// let limit = RedisRateLimit::new(&redis, "kommo:acme", 7, Duration::from_secs(1))?
///     .with_margin(Duration::from_millis(100))
///     // While Redis is down, each of 4 workers sends at most a quarter of the budget.
///     .with_local_fallback(0.25)?;
/// let permit = limit.acquire().await?;
/// // ... send the request; when its answer arrives:
/// permit.finish().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRateLimit {
    inner: Arc<LimitInner>,
}

struct LimitInner {
    redis: RedisConnection,
    name: String,
    keys: [String; 5],
    max: u32,
    period: Duration,
    margin: Duration,
    poll: Duration,
    /// The local fallback's share of `max` ([`RedisRateLimit::with_local_fallback`]).
    share: Option<f64>,
    fallback: Option<RateLimiter>,
    /// The last acquire went to the fallback (so the switch is logged once).
    on_fallback: AtomicBool,
}

/// What one step of the script answered.
enum Step {
    Granted { id: u64, at_us: i64 },
    Wait { ticket: u64, wait: Duration },
}

impl RedisRateLimit {
    /// At most `max` requests in any window of `period`, for every process using `name` on this
    /// Redis; with a margin of a tenth of the period (as [`RateLimiter::new`]). `name` is yours
    /// to choose (e.g. integration and account) and must not contain `{` or `}`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lead_intake::shared::{RedisConnection, RedisRateLimit};
    /// let redis = RedisConnection::open("redis://127.0.0.1")?;
    /// let limit = RedisRateLimit::new(&redis, "kommo:acme", 7, Duration::from_secs(1))?;
    /// assert_eq!(limit.margin(), Duration::from_millis(100));
    /// assert!(RedisRateLimit::new(&redis, "kommo:acme", 0, Duration::from_secs(1)).is_err());
    /// assert!(RedisRateLimit::new(&redis, "{acme}", 7, Duration::from_secs(1)).is_err());
    /// # Ok::<(), lead_intake::shared::SharedError>(())
    /// ```
    pub fn new(
        redis: &RedisConnection,
        name: impl Into<String>,
        max: u32,
        period: Duration,
    ) -> Result<Self, SharedError> {
        let name = name.into();
        check_name(&name)?;
        if max == 0 {
            return Err(SharedError::Invalid("max must be at least 1 request"));
        }
        if period.is_zero() {
            return Err(SharedError::Invalid("the period must be longer than zero"));
        }
        if period > MAX_PERIOD {
            return Err(SharedError::Invalid("the period must be at most 365 days"));
        }
        let keys =
            ["places", "queue", "alive", "seq", "hold"].map(|k| format!("{{{name}}}:limit:{k}"));
        let inner = LimitInner {
            redis: redis.clone(),
            name,
            keys,
            max,
            period,
            margin: period / 10,
            poll: (period / 10).clamp(MIN_POLL, MAX_POLL),
            share: None,
            fallback: None,
            on_fallback: AtomicBool::new(false),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Kommo's documented limit for `name`: 7 requests per second, margin 100 ms.
    pub fn kommo_default(
        redis: &RedisConnection,
        name: impl Into<String>,
    ) -> Result<Self, SharedError> {
        Self::new(
            redis,
            name,
            crate::ratelimit::KOMMO_REQUESTS_PER_SECOND,
            Duration::from_secs(1),
        )
    }

    fn rebuild(&self, change: impl FnOnce(&mut LimitInner)) -> Self {
        let old = &self.inner;
        let mut inner = LimitInner {
            redis: old.redis.clone(),
            name: old.name.clone(),
            keys: old.keys.clone(),
            max: old.max,
            period: old.period,
            margin: old.margin,
            poll: old.poll,
            share: old.share,
            fallback: None,
            on_fallback: AtomicBool::new(false),
        };
        change(&mut inner);
        // The fallback is a fresh local limiter with the new settings.
        inner.fallback = inner
            .share
            .and_then(|share| fallback(inner.max, inner.period, inner.margin, share));
        Self {
            inner: Arc::new(inner),
        }
    }

    /// How late the server may count a request after its grant, as
    /// [`RateLimiter::with_margin`]: up to this long, a request holds its place until
    /// [`SharedPermit::finish`]. Longer than 365 days counts as 365 days. Each process applies
    /// its own margin to its own requests.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lead_intake::shared::{RedisConnection, RedisRateLimit};
    /// let redis = RedisConnection::open("redis://127.0.0.1")?;
    /// let limit = RedisRateLimit::new(&redis, "acme", 7, Duration::from_secs(1))?
    ///     .with_margin(Duration::from_millis(250));
    /// assert_eq!(limit.margin(), Duration::from_millis(250));
    /// # Ok::<(), lead_intake::shared::SharedError>(())
    /// ```
    pub fn with_margin(self, margin: Duration) -> Self {
        self.rebuild(|inner| inner.margin = margin.min(MAX_PERIOD))
    }

    /// How often a waiting request asks Redis again at most (default: a tenth of the period,
    /// between 5 ms and 1 s). A waiter asks again when the script says a place frees up, or
    /// after this long if that is sooner, so a place freed early by
    /// [`SharedPermit::finish`] in another process is noticed within it. A zero interval counts
    /// as 1 ms.
    pub fn with_poll_interval(self, interval: Duration) -> Self {
        self.rebuild(|inner| inner.poll = interval.clamp(Duration::from_millis(1), MAX_PERIOD))
    }

    /// While Redis is unavailable, grants through a local [`RateLimiter`] of this process with
    /// `floor(max * share)` requests per period (at least 1), instead of failing with
    /// [`SharedError::Unavailable`]. `share` must be in (0, 1].
    ///
    /// With N processes that each set a share of at most 1/N, the account's bound holds during an
    /// outage too. It holds less strictly at its edges: requests granted locally are not known to
    /// Redis, so in the period after Redis comes back they and Redis's grants may together reach
    /// up to `max` plus the local budgets, and a process that cannot reach Redis while the others
    /// can adds its local budget to theirs. Only [`SharedError::Unavailable`] engages the
    /// fallback; a refusal (wrong password, a key of that name holding something else) does not.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lead_intake::shared::{RedisConnection, RedisRateLimit};
    /// let redis = RedisConnection::open("redis://127.0.0.1")?;
    /// let limit = RedisRateLimit::new(&redis, "acme", 7, Duration::from_secs(1))?;
    /// assert_eq!(limit.clone().with_local_fallback(0.25)?.local_fallback(), Some(1));
    /// assert_eq!(limit.clone().with_local_fallback(0.5)?.local_fallback(), Some(3));
    /// assert!(limit.with_local_fallback(1.5).is_err());
    /// # Ok::<(), lead_intake::shared::SharedError>(())
    /// ```
    pub fn with_local_fallback(self, share: f64) -> Result<Self, SharedError> {
        if !(share > 0.0 && share <= 1.0) {
            return Err(SharedError::Invalid(
                "the local fallback's share of the budget must be above 0 and at most 1",
            ));
        }
        Ok(self.rebuild(|inner| inner.share = Some(share)))
    }

    /// The key name given to [`new`](Self::new).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The most requests allowed in one period.
    pub fn max(&self) -> u32 {
        self.inner.max
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.inner.period
    }

    /// The margin ([`with_margin`](Self::with_margin)).
    pub fn margin(&self) -> Duration {
        self.inner.margin
    }

    /// The longest wait between two tries of a waiting request
    /// ([`with_poll_interval`](Self::with_poll_interval)).
    pub fn poll_interval(&self) -> Duration {
        self.inner.poll
    }

    /// The local fallback's requests per period, if one is set
    /// ([`with_local_fallback`](Self::with_local_fallback)).
    pub fn local_fallback(&self) -> Option<u32> {
        self.inner.fallback.as_ref().map(RateLimiter::max)
    }

    /// How long a waiter's ticket stays in the queue without it asking again.
    fn liveness(&self) -> Duration {
        self.inner.poll.saturating_mul(3) + LIVENESS_SLACK
    }

    /// Waits until a request may start, and counts it in Redis. Call
    /// [`SharedPermit::finish`] when its answer arrives; a permit dropped without it keeps its
    /// place for the whole margin.
    ///
    /// Fails with [`SharedError::Unavailable`] when Redis cannot be reached (then nothing was
    /// granted; with a local fallback, the local limiter grants instead), and with
    /// [`SharedError::Refused`] when Redis refuses the script. A wait that is cancelled gives up
    /// its turn (if it is cancelled while Redis is granting it, the place it was granted goes
    /// unused and leaves the window by itself).
    ///
    /// Switching to the local fallback is logged once at WARN, and switching back at INFO
    /// (target `lead_intake::shared`).
    pub async fn acquire(&self) -> Result<SharedPermit, SharedError> {
        // The waiter's name in the queue, chosen here so that a wait cancelled before its
        // first answer can still leave the queue.
        let mut turn = Turn {
            limit: self,
            token: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            ticket: 0,
            queued: true,
        };
        loop {
            let error = match self.step(&turn.token, turn.ticket).await {
                Ok(Step::Granted { id, at_us }) => {
                    turn.queued = false;
                    if self.inner.on_fallback.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            target: "lead_intake::shared",
                            name = self.inner.name,
                            "shared rate limit: Redis is back; the local fallback is no longer used"
                        );
                    }
                    return Ok(SharedPermit {
                        kind: PermitKind::Redis {
                            limit: self.clone(),
                            id,
                            at_us,
                            lease: Lease(tokio::spawn(self.clone().lease(turn.token.clone()))),
                            place: turn.token.clone(),
                        },
                    });
                }
                Ok(Step::Wait { ticket, wait }) => {
                    turn.ticket = ticket;
                    let wait = wait.min(self.inner.poll);
                    tracing::debug!(
                        target: "lead_intake::shared",
                        name = self.inner.name,
                        ticket,
                        wait_ms = wait.as_millis() as u64,
                        "shared rate limit: waiting for a place"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(error) => error,
            };
            let fallback = self.inner.fallback.as_ref();
            let Some(fallback) = fallback.filter(|_| error.is_unavailable()) else {
                return Err(error);
            };
            if !self.inner.on_fallback.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "lead_intake::shared",
                    name = self.inner.name,
                    local_max = fallback.max(),
                    %error,
                    "shared rate limit: Redis is unavailable, using the local fallback"
                );
            }
            // Our turn in Redis, if any, is lost; the turn's drop tries to take it out.
            // The local limiter never fails.
            let Ok(permit) = fallback.acquire().await else {
                return Err(error);
            };
            return Ok(SharedPermit {
                kind: PermitKind::Local(permit),
            });
        }
    }

    /// One run of the acquire script.
    async fn step(&self, token: &str, ticket: u64) -> Result<Step, SharedError> {
        let inner = &self.inner;
        let mut invocation = ACQUIRE.prepare_invoke();
        for key in &inner.keys {
            invocation.key(key);
        }
        invocation
            .arg(inner.max)
            .arg(micros(inner.period))
            .arg(micros(inner.margin))
            .arg(token)
            .arg(ticket)
            .arg(micros(self.liveness()));
        let key = &inner.keys[0];
        let (granted, number, value): (i64, i64, i64) = inner.redis.run(key, &invocation).await?;
        let number = u64::try_from(number).map_err(|_| {
            inner
                .redis
                .corrupt(&inner.keys[3], "a negative id or ticket")
        })?;
        match granted {
            1 => Ok(Step::Granted {
                id: number,
                at_us: value,
            }),
            0 => Ok(Step::Wait {
                ticket: number,
                wait: Duration::from_micros(value.max(1) as u64),
            }),
            _ => Err(inner
                .redis
                .corrupt(key, "the acquire script answered something unknown")),
        }
    }

    /// Keeps place `id` in the window while its request is in flight: every quarter period, its
    /// anchor moves up to Redis's now, so it never leaves the window before the answer (a
    /// request may reach the server any time before its answer). Ends when the permit is
    /// finished or dropped (the task is aborted); a failed extension is tried again at the next.
    async fn lease(self, place: String) {
        let inner = &self.inner;
        let every = (inner.period / 4).max(Duration::from_millis(1));
        let mut invocation = EXTEND.prepare_invoke();
        invocation
            .key(&inner.keys[0])
            .arg(place)
            .arg(micros(inner.period));
        loop {
            tokio::time::sleep(every).await;
            if let Err(error) = inner.redis.run::<i64>(&inner.keys[0], &invocation).await {
                tracing::debug!(
                    target: "lead_intake::shared",
                    name = inner.name,
                    %error,
                    "shared rate limit: could not extend the place of a request in flight"
                );
            }
        }
    }

    /// Records the answer of place `id`: tries again while Redis is unavailable, until the
    /// place has surely left the window by itself (a period and the margin from now: its lease
    /// extended it to now at most), as a late answer raises its anchor.
    async fn finish(&self, place: &str) -> Result<(), SharedError> {
        let leaves = Instant::now() + self.inner.period + self.inner.margin;
        let inner = &self.inner;
        let mut invocation = FINISH.prepare_invoke();
        invocation
            .key(&inner.keys[0])
            .arg(place)
            .arg(micros(inner.period));
        loop {
            match inner.redis.run::<i64>(&inner.keys[0], &invocation).await {
                Ok(_) => return Ok(()),
                Err(error) if error.is_unavailable() && Instant::now() < leaves => {
                    let pause = leaves.saturating_duration_since(Instant::now());
                    tokio::time::sleep(pause.min(inner.poll)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// The local fallback for these settings.
fn fallback(max: u32, period: Duration, margin: Duration, share: f64) -> Option<RateLimiter> {
    // floor(max * share), at least 1; max * share <= max, so the cast cannot overflow.
    let local = ((f64::from(max) * share).floor() as u32).max(1);
    Some(RateLimiter::new(local, period).ok()?.with_margin(margin))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A waiter's place in the queue: if the wait ends without a grant (cancelled, or failed), the
/// waiter leaves the queue so the waiters behind it need not wait for its liveness deadline.
struct Turn<'a> {
    limit: &'a RedisRateLimit,
    token: String,
    /// The ticket Redis gave it (0: none yet).
    ticket: u64,
    /// It may be in the queue: it asked (or is asking) and was not granted.
    queued: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.queued {
            return;
        }
        // Without a runtime the waiter simply dies at its liveness deadline.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (limit, token) = (self.limit.clone(), std::mem::take(&mut self.token));
        runtime.spawn(async move {
            let inner = &limit.inner;
            let mut invocation = LEAVE.prepare_invoke();
            invocation
                .key(&inner.keys[1])
                .key(&inner.keys[2])
                .arg(token);
            // A failure is harmless: the waiter dies at its liveness deadline.
            let _ = inner.redis.run::<i64>(&inner.keys[1], &invocation).await;
        });
    }
}

impl fmt::Debug for RedisRateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisRateLimit")
            .field("redis", &inner.redis)
            .field("name", &inner.name)
            .field("max", &inner.max)
            .field("period", &inner.period)
            .field("margin", &inner.margin)
            .field("poll_interval", &inner.poll)
            .field("local_fallback", &self.local_fallback())
            .finish()
    }
}

/// The task that extends a place in flight ([`RedisRateLimit::lease`]), aborted when dropped.
struct Lease(tokio::task::JoinHandle<()>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A request the [`RedisRateLimit`] let through (or its local fallback did).
/// [`finish`](Self::finish) it when the answer (or an error) arrives.
#[must_use = "call finish() when the answer arrives, or the request keeps its place for the whole margin"]
pub struct SharedPermit {
    kind: PermitKind,
}

enum PermitKind {
    Redis {
        limit: RedisRateLimit,
        id: u64,
        at_us: i64,
        /// Keeps the place in the window until the answer; aborted when the permit ends.
        lease: Lease,
        /// The place's member in `:places`: the granted acquire's token, unique to this grant
        /// (ids start again when Redis loses its data; tokens do not meet).
        place: String,
    },
    Local(Permit),
}

impl SharedPermit {
    /// When Redis granted it, on Redis's clock; `None` for a grant of the local fallback.
    pub fn granted_at(&self) -> Option<SystemTime> {
        match &self.kind {
            PermitKind::Redis { at_us, .. } => {
                UNIX_EPOCH.checked_add(Duration::from_micros(u64::try_from(*at_us).ok()?))
            }
            PermitKind::Local(_) => None,
        }
    }

    /// True when the local fallback granted it, because Redis was unavailable.
    pub fn is_local(&self) -> bool {
        matches!(self.kind, PermitKind::Local(_))
    }

    /// The answer has arrived, so the server has counted the request by now: its place leaves
    /// the window one period from now (Redis's now), sooner than one period after its grant plus
    /// the margin if the answer came within the margin, later if it came after (the request may
    /// have reached the server late: see [`RedisRateLimit`]). Call it as soon as the answer (or
    /// an error) arrives.
    ///
    /// While Redis cannot be reached (it is restarting), it tries again every poll interval
    /// until the place would have left the window anyway (the period and the margin after the
    /// grant); then the place keeps its margin (logged at DEBUG).
    pub async fn finish(self) {
        match self.kind {
            PermitKind::Redis {
                limit,
                lease,
                place,
                ..
            } => {
                drop(lease);
                if let Err(error) = limit.finish(&place).await {
                    tracing::debug!(
                        target: "lead_intake::shared",
                        name = limit.inner.name,
                        %error,
                        "shared rate limit: could not finish a place; it keeps its margin"
                    );
                }
            }
            PermitKind::Local(permit) => permit.finish(),
        }
    }
}

impl fmt::Debug for SharedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PermitKind::Redis {
                limit, id, at_us, ..
            } => f
                .debug_struct("SharedPermit")
                .field("name", &limit.inner.name)
                .field("id", id)
                .field("granted_at_us", at_us)
                .finish(),
            PermitKind::Local(permit) => {
                f.debug_tuple("SharedPermit::Local").field(permit).finish()
            }
        }
    }
}

/// A client uses it through [`RateLimiter::shared`] (or `.into()`), for every attempt and token
/// request, as its in-process limiter.
impl SharedLimit for RedisRateLimit {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn SharedGrant>, RateLimiterUnavailable>> {
        Box::pin(async move {
            match RedisRateLimit::acquire(self).await {
                Ok(permit) => Ok(Box::new(permit) as Box<dyn SharedGrant>),
                Err(error) => Err(RateLimiterUnavailable::new(error)),
            }
        })
    }

    fn max(&self) -> u32 {
        RedisRateLimit::max(self)
    }

    fn period(&self) -> Duration {
        RedisRateLimit::period(self)
    }

    fn margin(&self) -> Duration {
        RedisRateLimit::margin(self)
    }
}

impl SharedGrant for SharedPermit {
    fn finish(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(SharedPermit::finish(*self))
    }
}

/// `RateLimiter::shared(limit)`: a client builder's `.rate_limiter(limit)` takes it as it is.
impl From<RedisRateLimit> for RateLimiter {
    fn from(limit: RedisRateLimit) -> Self {
        RateLimiter::shared(limit)
    }
}
