//! A client-side rate limiter: at most N requests in any window of one period.
//!
//! Kommo allows 7 requests per second per integration; going over answers 429, and repeated
//! violations get the account blocked (every request then answers 403 until support lifts it).
//! So every Kommo client throttles itself by default: [`RateLimiter::kommo_default`], shared by
//! every clone of the client. Every attempt counts, retries included, and so do OAuth token
//! requests.
//!
//! Pass the same limiter to several clients to make them share one budget (e.g. several accounts
//! of one integration), or switch it off:
//!
//! ```
//! use std::time::Duration;
//! use lead_intake::ratelimit::RateLimiter;
//!
//! let shared = RateLimiter::new(5, Duration::from_secs(1))?;
//! let a = lead_intake::kommo::Client::builder()
//!     .subdomain("first")
//!     .token("token-a")
//!     .rate_limiter(shared.clone())
//!     .build()?;
//! let b = lead_intake::kommo::Client::builder()
//!     .subdomain("second")
//!     .token("token-b")
//!     .rate_limiter(shared)
//!     .build()?;
//! let unthrottled = lead_intake::kommo::Client::builder()
//!     .subdomain("third")
//!     .token("token-c")
//!     .no_rate_limit()
//!     .build()?;
//! # let _ = (a, b, unthrottled);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A request that has to wait is logged at DEBUG (target `lead_intake::ratelimit`, with
//! `wait_ms`).
//!
//! The guarantee is a sliding window: among any `max` + 1 consecutive request starts, the first
//! and the last are at least one `period` apart, so no window of one period ever holds more than
//! `max` starts. (A token bucket refilled at `max` per period would allow nearly twice that in a
//! window straddling a burst.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Kommo's documented limit: 7 requests per second per integration.
pub const KOMMO_REQUESTS_PER_SECOND: u32 = 7;

/// A rate limiter: at most `max` requests start in any window of `period`. Cloning it shares the
/// budget. Waiting requests are served in the order they arrived.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    max: usize,
    period: Duration,
    /// The start times granted to the last `max` requests (some may lie in the future: granted
    /// to requests still waiting). Non-decreasing.
    starts: Mutex<VecDeque<Instant>>,
}

/// A rate limit that cannot work: zero requests, or a zero period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate limit: {0}")]
pub struct InvalidRateLimit(&'static str);

impl RateLimiter {
    /// At most `max` requests in any window of `period`.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(lead_intake::ratelimit::RateLimiter::new(0, Duration::from_secs(1)).is_err());
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
        Ok(Self {
            inner: Arc::new(Inner {
                max: max as usize,
                period,
                starts: Mutex::new(VecDeque::with_capacity(max as usize)),
            }),
        })
    }

    /// At most `max` requests per second.
    pub fn per_second(max: u32) -> Result<Self, InvalidRateLimit> {
        Self::new(max, Duration::from_secs(1))
    }

    /// Kommo's documented limit, [`KOMMO_REQUESTS_PER_SECOND`] per second.
    pub fn kommo_default() -> Self {
        Self {
            inner: Arc::new(Inner {
                max: KOMMO_REQUESTS_PER_SECOND as usize,
                period: Duration::from_secs(1),
                starts: Mutex::new(VecDeque::with_capacity(KOMMO_REQUESTS_PER_SECOND as usize)),
            }),
        }
    }

    /// The most requests allowed in one period.
    pub fn max(&self) -> u32 {
        self.inner.max as u32
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.inner.period
    }

    /// Waits until a request may start, and counts it. A waiter that is dropped (cancelled)
    /// still uses its slot: the limiter errs on the side of fewer requests.
    pub async fn acquire(&self) {
        let now = Instant::now();
        let start = self.reserve(now);
        if start > now {
            tracing::debug!(
                wait_ms = (start - now).as_millis() as u64,
                max = self.inner.max,
                period_ms = self.inner.period.as_millis() as u64,
                "rate limiter: waiting for a slot"
            );
        }
        tokio::time::sleep_until(start).await;
    }

    /// Reserves the earliest start allowed at or after `now`.
    fn reserve(&self, now: Instant) -> Instant {
        // The lock is never held across an await, and nothing inside can panic, but recover
        // from poisoning anyway rather than panic in library code.
        let mut starts = self
            .inner
            .starts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = if starts.len() < self.inner.max {
            now
        } else {
            // The start `max` requests back must be at least one period before this one.
            let oldest = starts.pop_front().unwrap_or(now);
            now.max(oldest + self.inner.period)
        };
        // Keep the deque non-decreasing even if `now` went backwards between callers.
        let start = starts.back().map_or(start, |last| start.max(*last));
        starts.push_back(start);
        start
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("max", &self.inner.max)
            .field("period", &self.inner.period)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let limiter = RateLimiter::per_second(7).unwrap();
        let begin = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                limiter.acquire().await;
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
            limiter.acquire().await;
            assert_eq!(Instant::now(), before, "a request within the budget waited");
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn window_slides_rather_than_resets() {
        // 3 per second: requests at 0, 0.9, 0.9 fill the window; the 4th may go at 1.0 (one
        // period after the first), the 5th only at 1.9.
        let limiter = RateLimiter::per_second(3).unwrap();
        let begin = Instant::now();
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        limiter.acquire().await;
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(Instant::now() - begin, Duration::from_millis(1000));
        limiter.acquire().await;
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
                limiter.acquire().await;
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
    }
}
