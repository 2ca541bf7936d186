//! Deliberate misbehaviour: which request fails and how, decided from the seed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::DEFAULT_SLOW;
use super::spec::Api;

/// One deliberate misbehaviour, as applied to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `429 Too Many Requests` with the gateway's HTML page and no `Retry-After`, as Kommo
    /// answers when the rate limit is exceeded. The request is not processed.
    RateLimited,
    /// `403 Forbidden` with nginx's HTML page, as Kommo answers every request of an account
    /// blocked for exceeding the rate limit. The request is not processed.
    Blocked,
    /// A server error with this status (`500` as a problem document, `502`, `503` and `504` as
    /// the gateway's HTML page). The request is not processed.
    ServerError(u16),
    /// The connection is closed without an answer; the request is not processed.
    Drop,
    /// The request is processed (its effects are kept), then the connection is closed without
    /// an answer: what a client sees when an answer is lost.
    DropAfterProcessing,
    /// The answer comes after this delay.
    Slow(Duration),
}

/// Which requests misbehave, and how. Rates are probabilities per request, drawn from the
/// server's seeded generator, so the same [`Config::seed`](super::Config::seed) and the same
/// sequence of requests give the same faults.
///
/// Kommo's rate limit and blocked account apply to Kommo paths only (CloseBot documents no
/// rate limit); server errors, drops and slow answers apply to both APIs.
///
/// ```
/// use std::time::Duration;
/// use lead_intake::fake::Faults;
///
/// // Kommo's documented limit, blocking the account after 3 violations,
/// // and 5% of requests answered 5xx.
/// let faults = Faults::none().rate_limit(7).block_after(3).server_errors(0.05);
/// # let _ = faults;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct Faults {
    pub(crate) rate_limit: Option<u32>,
    pub(crate) block_after: Option<u32>,
    pub(crate) blocked: bool,
    pub(crate) server_error_rate: f64,
    pub(crate) drop_rate: f64,
    pub(crate) slow_rate: f64,
    pub(crate) slow_delay: Option<Duration>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// At most `per_second` Kommo requests per integration in any one-second window; the
    /// requests over it get [`Fault::RateLimited`] (they count towards the window too). Kommo
    /// documents 7.
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit = Some(per_second);
        self
    }

    /// After this many `429`s, the account is blocked: every Kommo request then gets
    /// [`Fault::Blocked`] until [`FakeServer::set_blocked`](super::FakeServer::set_blocked).
    pub fn block_after(mut self, violations: u32) -> Self {
        self.block_after = Some(violations);
        self
    }

    /// The account starts blocked.
    pub fn blocked(mut self) -> Self {
        self.blocked = true;
        self
    }

    /// This share of requests (0.0 to 1.0) gets a [`Fault::ServerError`] (500, 502, 503 or 504).
    pub fn server_errors(mut self, rate: f64) -> Self {
        self.server_error_rate = rate;
        self
    }

    /// This share of requests gets [`Fault::Drop`].
    pub fn drops(mut self, rate: f64) -> Self {
        self.drop_rate = rate;
        self
    }

    /// This share of requests is answered after `delay` ([`Fault::Slow`]).
    pub fn slow(mut self, rate: f64, delay: Duration) -> Self {
        self.slow_rate = rate;
        self.slow_delay = Some(delay);
        self
    }
}

const SERVER_ERRORS: [u16; 4] = [500, 502, 503, 504];

/// The fault machinery's state.
pub(crate) struct FaultState {
    rng: fastrand::Rng,
    pub(crate) injected: VecDeque<Fault>,
    pub(crate) blocked: bool,
    /// `429`s since the account was last (un)blocked.
    pub(crate) violations: u32,
    windows: HashMap<String, VecDeque<Instant>>,
}

impl FaultState {
    pub(crate) fn new(seed: u64, faults: &Faults) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            injected: VecDeque::new(),
            blocked: faults.blocked,
            violations: 0,
            windows: HashMap::new(),
        }
    }

    /// The fault for the next request, if any. `api` is `None` for paths of neither API;
    /// `client` identifies the integration for the rate limit (its `Authorization` header).
    pub(crate) fn decide(
        &mut self,
        faults: &Faults,
        api: Option<Api>,
        client: &str,
        now: Instant,
    ) -> Option<Fault> {
        // Always the same draws per request, so request n's fate depends only on the seed.
        let drop_draw = self.rng.f64();
        let error_draw = self.rng.f64();
        let which = self.rng.usize(..SERVER_ERRORS.len());
        let slow_draw = self.rng.f64();

        if let Some(fault) = self.injected.pop_front() {
            return Some(fault);
        }
        let kommo = api == Some(Api::Kommo);
        if kommo && self.blocked {
            return Some(Fault::Blocked);
        }
        if kommo && let Some(limit) = faults.rate_limit {
            let window = self.windows.entry(client.to_string()).or_default();
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                window.pop_front();
            }
            window.push_back(now);
            if window.len() > limit as usize {
                self.violations += 1;
                if faults.block_after.is_some_and(|n| self.violations >= n) {
                    self.blocked = true;
                }
                return Some(Fault::RateLimited);
            }
        }
        if drop_draw < faults.drop_rate {
            return Some(Fault::Drop);
        }
        if error_draw < faults.server_error_rate {
            return Some(Fault::ServerError(SERVER_ERRORS[which]));
        }
        if slow_draw < faults.slow_rate {
            return Some(Fault::Slow(faults.slow_delay.unwrap_or(DEFAULT_SLOW)));
        }
        None
    }
}

/// nginx's page for a status, as Kommo's gateway sends it.
pub(crate) fn nginx_page(status: u16, reason: &str) -> String {
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}
