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
    /// The request is processed (its effects are kept), then answered with this server error
    /// instead of its own answer (`500` as a problem document, `502` and `504` as the gateway's
    /// HTML page): a gateway that gave up on a backend which finished anyway.
    ServerErrorAfterProcessing(u16),
    /// The answer comes after this delay.
    Slow(Duration),
    /// `429 Too Many Requests` with the gateway's HTML page and `Retry-After`: this delay in
    /// whole seconds (rounded up). The request is not processed. Only ever
    /// [injected](super::FakeServer::inject) (e.g. at the token endpoint,
    /// [`FakeServer::inject_token_faults`](super::FakeServer::inject_token_faults)).
    RetryAfter(Duration),
}

/// Which requests misbehave, and how. Rates are probabilities per request, drawn from the
/// server's seeded generator, so the same [`Config::seed`](super::Config::seed) and the same
/// sequence of requests give the same faults.
///
/// Kommo's rate limit, random `429`s and blocked account apply to Kommo paths only (CloseBot
/// documents no rate limit); server errors (before or after processing), drops, lost answers
/// and slow answers apply to both APIs.
///
/// Each request draws the same random numbers whatever happens to it, so its fate depends only
/// on the seed and its place in the sequence. When several rates pick the same request, the
/// first of this order applies: [`rate_limited`](Self::rate_limited), [`drops`](Self::drops),
/// [`server_errors`](Self::server_errors), [`lost_answers`](Self::lost_answers),
/// [`late_server_errors`](Self::late_server_errors), [`slow`](Self::slow) (after any
/// [injected](super::FakeServer::inject) fault, the blocked account and the
/// [`rate_limit`](Self::rate_limit) window).
///
/// ```
/// use std::time::Duration;
/// use lead_intake_fake::Faults;
///
/// // Kommo's documented limit, blocking the account after 3 violations,
/// // and 5% of requests answered 5xx.
/// let faults = Faults::none().rate_limit(7).block_after(3).server_errors(0.05);
///
/// // About 10% of requests misbehave, in every way a client must survive: 429s whatever the
/// // window, 5xx before or after processing, connections closed before the request is
/// // processed, and answers lost after it was (the client cannot tell whether a POST was
/// // applied).
/// let unreliable = Faults::none()
///     .rate_limited(0.03)
///     .server_errors(0.02)
///     .late_server_errors(0.01)
///     .drops(0.02)
///     .lost_answers(0.02);
/// # let _ = (faults, unreliable);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct Faults {
    pub(crate) rate_limit: Option<u32>,
    pub(crate) block_after: Option<u32>,
    pub(crate) blocked: bool,
    pub(crate) server_error_rate: f64,
    pub(crate) drop_rate: f64,
    pub(crate) rate_limited_rate: f64,
    pub(crate) lost_answer_rate: f64,
    pub(crate) late_server_error_rate: f64,
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

    /// This share of requests gets [`Fault::Drop`]: the connection is closed before the request
    /// is processed.
    pub fn drops(mut self, rate: f64) -> Self {
        self.drop_rate = rate;
        self
    }

    /// This share of Kommo requests (0.0 to 1.0) gets [`Fault::RateLimited`] at random, whatever
    /// the [`rate_limit`](Self::rate_limit) window says: Kommo's gateway also answers `429` when
    /// the account's other integrations use up the budget. These `429`s do not count towards
    /// [`block_after`](Self::block_after). The request is not processed.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer, Faults};
    /// use lead_intake::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fake = FakeServer::start(Config::default().faults(Faults::none().rate_limited(1.0)))?;
    /// let kommo = lead_intake::kommo::Client::builder()
    ///     .base_url(&fake.base_url())
    ///     .token(fake.kommo_token())
    ///     .retry(RetryPolicy::none())
    ///     .build()?;
    /// let err = kommo.list_widgets().send().or_empty().await.unwrap_err();
    /// assert!(err.is_rate_limited());
    /// assert_eq!(fake.stats().rate_limited, 1);
    /// # Ok(()) }
    /// ```
    pub fn rate_limited(mut self, rate: f64) -> Self {
        self.rate_limited_rate = rate;
        self
    }

    /// This share of requests gets [`Fault::DropAfterProcessing`]: the request is processed (a
    /// POST's effects are kept) and then the connection is closed without an answer, so the
    /// client cannot tell whether it was applied.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer, Faults};
    /// use lead_intake::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fake = FakeServer::start(Config::default().faults(Faults::none().lost_answers(1.0)))?;
    /// let kommo = lead_intake::kommo::Client::builder()
    ///     .base_url(&fake.base_url())
    ///     .token(fake.kommo_token())
    ///     .retry(RetryPolicy::none())
    ///     .build()?;
    /// let sources: lead_intake::kommo::types::AddSourcesRequest = serde_json::from_value(
    ///     serde_json::json!([{"name": "Site chat", "external_id": "chat-1"}]),
    /// )?;
    /// let err = kommo.add_sources().body(sources).send().body().await.unwrap_err();
    /// assert!(!err.certainly_not_applied(), "the client cannot know");
    /// assert_eq!(fake.stats().lost_answers, 1);
    /// # Ok(()) }
    /// ```
    pub fn lost_answers(mut self, rate: f64) -> Self {
        self.lost_answer_rate = rate;
        self
    }

    /// This share of requests gets [`Fault::ServerErrorAfterProcessing`] (500, 502 or 504): the
    /// request is processed (a POST's effects are kept), and the answer is a server error. A
    /// `5xx` therefore never proves that a request was not applied.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer, Faults, Fixtures};
    /// use lead_intake::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fake = FakeServer::start(
    ///     Config::default()
    ///         .fixtures(Fixtures::empty())
    ///         .faults(Faults::none().late_server_errors(1.0)),
    /// )?;
    /// let kommo = lead_intake::kommo::Client::builder()
    ///     .base_url(&fake.base_url())
    ///     .token(fake.kommo_token())
    ///     .retry(RetryPolicy::none())
    ///     .build()?;
    /// use lead_intake::kommo::types::{AddIncomingForm, FormsMetadata, IncomingLeadEmbeddedInput};
    /// let form = AddIncomingForm::new(
    ///     "site-form",
    ///     "Site form",
    ///     FormsMetadata::new().with_form_id("contact"),
    ///     IncomingLeadEmbeddedInput::new(),
    /// );
    /// let err = kommo.add_incoming_forms().body(vec![form]).send().body().await.unwrap_err();
    /// assert!(err.status().is_some_and(|s| s.is_server_error()));
    /// assert!(!err.certainly_not_applied());
    /// assert_eq!(fake.incoming_leads().len(), 1, "applied all the same");
    /// assert_eq!(fake.stats().late_server_errors, 1);
    /// # Ok(()) }
    /// ```
    pub fn late_server_errors(mut self, rate: f64) -> Self {
        self.late_server_error_rate = rate;
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
/// The server errors of a request that was processed: the backend failed after its work, or the
/// gateway gave up waiting for it.
const LATE_SERVER_ERRORS: [u16; 3] = [500, 502, 504];

/// The fault machinery's state.
pub(crate) struct FaultState {
    rng: fastrand::Rng,
    /// The draws of the kinds added later ([`Faults::rate_limited`], [`Faults::lost_answers`],
    /// [`Faults::late_server_errors`]):
    /// a stream of their own, so a seed gives the same drops, server errors and slow answers as
    /// it did before they existed.
    more: fastrand::Rng,
    pub(crate) injected: VecDeque<Fault>,
    /// Faults for the next requests to the token endpoint only, before any other.
    pub(crate) injected_token: VecDeque<Fault>,
    pub(crate) blocked: bool,
    /// `429`s since the account was last (un)blocked.
    pub(crate) violations: u32,
    windows: HashMap<String, VecDeque<Instant>>,
}

impl FaultState {
    pub(crate) fn new(seed: u64, faults: &Faults) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            more: fastrand::Rng::with_seed(seed ^ 0x6661_756c_7473_5f32),
            injected: VecDeque::new(),
            injected_token: VecDeque::new(),
            blocked: faults.blocked,
            violations: 0,
            windows: HashMap::new(),
        }
    }

    /// The fault for the next request, if any. `api` is `None` for paths of neither API;
    /// `client` identifies the integration for the rate limit (its `Authorization` header);
    /// `token_call`: the request is to the token endpoint.
    pub(crate) fn decide(
        &mut self,
        faults: &Faults,
        api: Option<Api>,
        client: &str,
        token_call: bool,
        now: Instant,
    ) -> Option<Fault> {
        // Always the same draws per request, so request n's fate depends only on the seed.
        let drop_draw = self.rng.f64();
        let error_draw = self.rng.f64();
        let which = self.rng.usize(..SERVER_ERRORS.len());
        let slow_draw = self.rng.f64();
        let rate_limited_draw = self.more.f64();
        let lost_draw = self.more.f64();
        let late_draw = self.more.f64();
        let late_which = self.more.usize(..LATE_SERVER_ERRORS.len());

        if token_call && let Some(fault) = self.injected_token.pop_front() {
            return Some(fault);
        }
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
        if kommo && rate_limited_draw < faults.rate_limited_rate {
            return Some(Fault::RateLimited);
        }
        if drop_draw < faults.drop_rate {
            return Some(Fault::Drop);
        }
        if error_draw < faults.server_error_rate {
            return Some(Fault::ServerError(SERVER_ERRORS[which]));
        }
        if lost_draw < faults.lost_answer_rate {
            return Some(Fault::DropAfterProcessing);
        }
        if late_draw < faults.late_server_error_rate {
            return Some(Fault::ServerErrorAfterProcessing(
                LATE_SERVER_ERRORS[late_which],
            ));
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
