//! Refusing a disposable token that was already used: its `jti`, remembered until it expires.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::token::TokenError;

/// Where the `jti`s of the disposable tokens already used are kept, for
/// [`DisposableTokenVerifier::verify_first_use`](super::DisposableTokenVerifier::verify_first_use):
/// [`SeenTokens`] in one process, `lead_intake::shared::RedisSeenTokens` (feature `redis`) for
/// several workers.
pub trait ReplayGuard: Send + Sync {
    /// Records `jti` for `keep` and answers `true` if it was not recorded yet (its first use), or
    /// `false` if it was (a replay). Recording and checking are one atomic step, so of two
    /// concurrent calls with one `jti` exactly one answers `true`. An error is
    /// [`TokenError::ReplayUnchecked`], naming why without the token.
    fn first_use<'a>(
        &'a self,
        jti: &'a str,
        keep: Duration,
    ) -> BoxFuture<'a, Result<bool, TokenError>>;
}

/// How many `jti`s [`SeenTokens::new`] keeps at most: 100,000 (a few MiB), far more than one
/// process sees in a disposable token's 30 minutes.
pub const DEFAULT_SEEN_CAPACITY: usize = 100_000;

/// The `jti`s of the disposable tokens one process has accepted, each kept until its token
/// expires (then dropped, so memory follows the tokens still alive), at most a fixed number at
/// once: when that many live tokens are kept, a new one is refused
/// ([`TokenError::ReplayUnchecked`]) rather than let through unchecked.
///
/// Time is tokio's clock ([`tokio::time::Instant`]), so paused-time tests can move it. For
/// several processes use `lead_intake::shared::RedisSeenTokens` instead.
///
/// ```
/// use std::time::Duration;
/// use lead_intake::widget::{ReplayGuard, SeenTokens};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), lead_intake::widget::TokenError> {
/// let seen = SeenTokens::new();
/// assert!(seen.first_use("5c8e-jti", Duration::from_secs(60)).await?);
/// assert!(!seen.first_use("5c8e-jti", Duration::from_secs(60)).await?, "a replay");
/// # Ok(()) }
/// ```
pub struct SeenTokens {
    capacity: usize,
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Each `jti` and when it may be forgotten.
    until: HashMap<String, Instant>,
    /// The same entries by expiry (and a sequence number, as two may expire at once), so the
    /// expired ones are dropped from the front.
    by_expiry: BTreeMap<(Instant, u64), String>,
    next: u64,
}

impl Seen {
    fn forget_expired(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let jti = entry.remove();
            if self.until.get(&jti).is_some_and(|&at| at <= now) {
                self.until.remove(&jti);
            }
        }
    }
}

impl SeenTokens {
    /// An empty guard keeping at most [`DEFAULT_SEEN_CAPACITY`] tokens.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_SEEN_CAPACITY)
    }

    /// An empty guard keeping at most `capacity` live tokens.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Seen::default()),
        }
    }

    /// How many `jti`s are kept now (expired ones included until the next call drops them).
    pub fn len(&self) -> usize {
        self.lock().until.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // The map stays consistent at every step; a panic elsewhere cannot leave it half-written.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, jti: &str, keep: Duration) -> Result<bool, TokenError> {
        let now = Instant::now();
        let mut seen = self.lock();
        seen.forget_expired(now);
        if seen.until.contains_key(jti) {
            return Ok(false);
        }
        if seen.until.len() >= self.capacity {
            return Err(TokenError::ReplayUnchecked {
                reason: format!(
                    "the in-process guard already keeps {} unexpired tokens (its capacity)",
                    self.capacity
                ),
            });
        }
        let until = now
            .checked_add(keep)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        let seq = seen.next;
        seen.next += 1;
        seen.until.insert(jti.to_string(), until);
        seen.by_expiry.insert((until, seq), jti.to_string());
        Ok(true)
    }
}

impl Default for SeenTokens {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SeenTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeenTokens")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ReplayGuard for SeenTokens {
    fn first_use<'a>(
        &'a self,
        jti: &'a str,
        keep: Duration,
    ) -> BoxFuture<'a, Result<bool, TokenError>> {
        let answer = self.record(jti, keep);
        Box::pin(async move { answer })
    }
}
