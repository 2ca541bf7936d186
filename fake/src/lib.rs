#![doc = include_str!("../README.md")]
//!
//! ## What it enforces
//!
//! [`FakeServer`] serves every operation of the specs of [`lead_intake`] (`openapi/kommo.yaml`
//! and `openapi/closebot.yaml`, [`lead_intake::spec`]) over plain HTTP on loopback (or the
//! [`Config::host`] given), on its own thread, from any test (async or not). It keeps state and
//! enforces the vendors' documented rules, so an integration can be tested end to end without a
//! Kommo account:
//!
//! - every request is validated against the spec's schemas; an invalid one gets Kommo's `400`
//!   `application/problem+json` with `validation-errors` (one group per batch item, matched by the
//!   item's `request_id`, else its index), or CloseBot's `ProblemDetails`;
//! - a missing or wrong token (`Authorization: Bearer ...`) or API key (`X-CB-KEY` or
//!   `Authorization: Key ...`) gets `401`;
//! - Kommo's OAuth ([`OAuthConfig`]): `POST /oauth2/access_token` (JSON or form-encoded) with the
//!   `authorization_code` grant ([`FakeServer::authorization_code`]) and the `refresh_token`
//!   grant answers `{"token_type": "Bearer", "expires_in", "access_token", "refresh_token"}`;
//!   access tokens expire after [`OAuthConfig::access_token_lifetime`] (24 hours by default) or
//!   at once ([`FakeServer::expire_access_tokens`]), refresh tokens are single-use (a reused one
//!   answers `401` with the hint "Token has been revoked"), wrong client credentials, codes and
//!   grants get Kommo's OAuth problem documents, and [`FakeServer::oauth_stats`] counts refreshes
//!   and revoked reuses. The tokens are the main integration's; [`Config::kommo_token`] keeps
//!   working beside them;
//! - sources: `external_id` unique per integration, at most [`Config::source_limit`] per
//!   integration (50 by default), `pipeline_id` must exist, `origin_code` rules, deleted
//!   `external_id`s get their old `id` back, `204` on an empty list;
//! - widgets: pages with `_page` and `_links.next` (`limit` at most 250), install checks every
//!   `is_required` setting of the widget's `settings_template`; `continue` answers `202` for a
//!   widget block that is waiting ([`Fixtures::waiting_bot`]) and `404` otherwise;
//! - incoming leads: `sip` and `forms` are created with `request_id` echoed, identical data already
//!   waiting in Incoming leads is refused, filters (`filter[uid][]`, `filter[category][]`,
//!   `filter[pipeline_id]`) and `order[created_at]` work, accept / decline / link change the lead's
//!   state (link only for `chats`), and the summary counts what happened;
//! - lead pipelines: `GET /api/v4/leads/pipelines` and `.../pipelines/{id}` answer the account's
//!   pipelines ([`Fixtures::pipelines`]; the first is the main one), each with the statuses
//!   Incoming leads, Initial contact, Closed - won (142) and Closed - lost (143); an unknown ID
//!   answers `404`;
//! - leads with their contact and company (`POST /api/v4/leads/complex`, at most 50 a request):
//!   a `pipeline_id` must be one of the account's and a `status_id` one of that pipeline's
//!   (else the whole request is refused with `validation-errors`); each lead gets a new ID (and
//!   its contact and company new ones, unless given by `id`), lands in Initial contact by
//!   default, keeps its `_embedded.source` `external_id`, and is kept in the state (`leads`);
//! - CloseBot sources: zero-based `page`, `pageSize` at most 100, `query`, `category`, `order`, and
//!   `forceTokenRefresh` (which rotates each returned source's `accessToken`).
//!
//! Success bodies are `application/hal+json` (CloseBot: `application/json`), errors
//! `application/problem+json`, empty lists `204` with no body, and `_links` are absolute URLs on
//! the fake's own origin (so [`lead_intake::kommo::Client::follow`] accepts them). PHP query arrays are
//! read as PHP reads them: `filter[uid][]=a&filter[uid][]=b` and
//! `filter[uid][0]=a&filter[uid][1]=b` are the same list, and a repeated plain key keeps only its
//! last value.
//!
//! It can misbehave on purpose ([`Faults`]), deterministically from [`Config::seed`]: Kommo's rate
//! limit (`429` with an HTML page, from the window or at random; the window counts per
//! integration, token requests included, whatever the token or connection), a blocked account (an HTML
//! `403` on every request), `5xx` answers (before or after the request is processed), dropped
//! connections, answers lost after the request was processed, and slow answers.
//! [`FakeServer::inject`] scripts the faults of the next requests exactly. [`FakeServer::stats`]
//! counts what it answered, and
//! [`FakeServer::violations`] lists every answer it sent that does not match the spec (it checks
//! each one; faults are deliberate and not checked).
//!
//! An admin API under `/__admin/` (WireMock's convention; only on the fake, with no token unless
//! [`Config::admin_token`] gives one) drives it over HTTP, with a Rust method for each:
//! `POST /__admin/reset` ([`FakeServer::reset`]), `GET /__admin/requests` ([`FakeServer::requests`]), `GET` and `PUT /__admin/state`
//! ([`FakeServer::state`], [`FakeServer::load_state`]), `POST /__admin/faults`
//! ([`FakeServer::set_faults`]), `GET /__admin/oauth` ([`FakeServer::oauth_stats`]),
//! `POST /__admin/oauth/code` ([`FakeServer::authorization_code`]), `POST /__admin/oauth/expire`
//! ([`FakeServer::expire_access_tokens`]), `POST /__admin/widget_request`
//! ([`FakeServer::send_widget_request`]), `GET /__admin/widget_requests`
//! ([`FakeServer::widget_requests`]), `GET /__admin/webhooks` ([`FakeServer::webhook_deliveries`])
//! and `GET /__admin/health`. The [`admin`] module documents the bodies.
//!
//! ```
//! use lead_intake_fake::{Config, FakeServer};
//! use lead_intake::kommo::types;
//! use lead_intake::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeServer::start(Config::default())?;
//! let kommo = lead_intake::kommo::Client::from_base_url(&fake.base_url(), fake.kommo_token())?;
//!
//! // A new integration has no sources: 204, an empty list.
//! let none = kommo.list_sources().send().or_empty().await?;
//! assert!(none.embedded.is_none());
//!
//! let new = vec![types::AddSource::new("Site chat", "chat-1")];
//! kommo.add_sources().body(new.clone()).send().body().await?;
//! // The same external_id again is refused, the way Kommo refuses it.
//! let err = kommo.add_sources().body(new).send().body().await.unwrap_err();
//! assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
//!
//! assert_eq!(fake.stats().by_status.get(&400), Some(&1));
//! assert!(fake.violations().is_empty());
//! fake.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! [`FakeServer`]: crate::FakeServer
//! [`Config::source_limit`]: crate::Config::source_limit
//! [`Fixtures::waiting_bot`]: crate::Fixtures::waiting_bot
//! [`Faults`]: crate::Faults
//! [`Config::seed`]: crate::Config::seed
//! [`FakeServer::inject`]: crate::FakeServer::inject
//! [`FakeServer::stats`]: crate::FakeServer::stats
//! [`FakeServer::violations`]: crate::FakeServer::violations
//! [`OAuthConfig`]: crate::OAuthConfig
//! [`OAuthConfig::access_token_lifetime`]: crate::OAuthConfig::access_token_lifetime
//! [`FakeServer::authorization_code`]: crate::FakeServer::authorization_code
//! [`FakeServer::expire_access_tokens`]: crate::FakeServer::expire_access_tokens
//! [`FakeServer::oauth_stats`]: crate::FakeServer::oauth_stats
//! [`Config::kommo_token`]: crate::Config::kommo_token
//! [`Config::webhook_url`]: crate::Config::webhook_url
//! [`Config::widget_url`]: crate::Config::widget_url
//! [`Config::admin_token`]: crate::Config::admin_token
//! [`Config::allow_remote`]: crate::Config::allow_remote
//! [`Config::header_read_timeout`]: crate::Config::header_read_timeout
//! [`Config::max_connections`]: crate::Config::max_connections
//! [`FakeServer::send_widget_request`]: crate::FakeServer::send_widget_request
//! [`FakeServer::widget_requests`]: crate::FakeServer::widget_requests
//! [`FakeServer::webhook_deliveries`]: crate::FakeServer::webhook_deliveries

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
mod closebot;
mod faults;
mod fixtures;
mod kommo;
mod oauth;
pub mod outbound;
mod php;
mod reply;
pub mod schema;
mod server;
mod spec;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use lead_intake::Secret;

pub use admin::RecordedRequest;
pub use faults::{Fault, Faults};
pub use fixtures::Fixtures;
pub use oauth::{OAuthConfig, OAuthStats};
pub use outbound::{WebhookDelivery, WidgetRequestSent};

/// How a [`FakeServer`] starts: credentials, rules, seed, faults and the initial data.
///
/// ```
/// use std::time::Duration;
/// use lead_intake_fake::{Config, Faults, Fixtures};
///
/// let config = Config::default()
///     .host([127, 0, 0, 1])
///     .port(0)
///     .kommo_token("my-test-token")
///     .source_limit(3)
///     .seed(7)
///     .faults(Faults::none().server_errors(0.1).slow(0.2, Duration::from_millis(50)))
///     .fixtures(Fixtures::empty());
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Config {
    kommo_token: Secret,
    other_integrations: Vec<Secret>,
    oauth: OAuthConfig,
    closebot_key: Secret,
    source_limit: usize,
    seed: u64,
    faults: Faults,
    fixtures: Fixtures,
    account_id: i64,
    check_responses: bool,
    host: IpAddr,
    port: u16,
    on_request: Option<OnRequest>,
    subdomain: String,
    webhook_url: Option<String>,
    widget_url: Option<String>,
    allow_remote: bool,
    admin_token: Option<Secret>,
    header_read_timeout: Duration,
    max_connections: usize,
}

/// How long a connection may take to send a request's headers, by default
/// ([`Config::header_read_timeout`]).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How many connections the fake serves at once, by default ([`Config::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The callback of [`Config::on_request`].
#[derive(Clone)]
struct OnRequest(Arc<dyn Fn(&RecordedRequest) + Send + Sync>);

impl fmt::Debug for OnRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnRequest(..)")
    }
}

impl Default for Config {
    /// Token `fake-kommo-token`, [`OAuthConfig::default`], key `fake-closebot-key`, 50 sources per integration, seed 0,
    /// no faults, [`Fixtures::documented`], responses checked, `127.0.0.1`, any free port, no
    /// admin token, headers read within [`DEFAULT_HEADER_READ_TIMEOUT`], at most
    /// [`DEFAULT_MAX_CONNECTIONS`] connections at once.
    fn default() -> Self {
        Self {
            kommo_token: Secret::new("fake-kommo-token"),
            other_integrations: Vec::new(),
            oauth: OAuthConfig::default(),
            closebot_key: Secret::new("fake-closebot-key"),
            source_limit: 50,
            seed: 0,
            faults: Faults::none(),
            fixtures: Fixtures::documented(),
            account_id: 31361463,
            check_responses: true,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            on_request: None,
            subdomain: "fake".to_string(),
            webhook_url: None,
            widget_url: None,
            allow_remote: false,
            admin_token: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl Config {
    /// The Kommo token the fake accepts (`Authorization: Bearer <token>`): the integration whose
    /// sources the calls manage.
    pub fn kommo_token(mut self, token: impl Into<Secret>) -> Self {
        self.kommo_token = token.into();
        self
    }

    /// Another integration's token on the same account: it sees the same widgets and incoming
    /// leads, but owns its own sources (and its own source limit).
    pub fn other_integration(mut self, token: impl Into<Secret>) -> Self {
        self.other_integrations.push(token.into());
        self
    }

    /// The OAuth integration of `POST /oauth2/access_token` ([`OAuthConfig::default`] unless
    /// given): its access tokens act as the main integration's, beside
    /// [`Config::kommo_token`].
    pub fn oauth(mut self, oauth: OAuthConfig) -> Self {
        self.oauth = oauth;
        self
    }

    /// The CloseBot API key the fake accepts (`X-CB-KEY: <key>` or `Authorization: Key <key>`).
    pub fn closebot_key(mut self, key: impl Into<Secret>) -> Self {
        self.closebot_key = key.into();
        self
    }

    /// How many sources one integration may own (Kommo documents 50; a newer page says 100).
    pub fn source_limit(mut self, limit: usize) -> Self {
        self.source_limit = limit;
        self
    }

    /// The seed of every random choice: which requests fail ([`Faults`]) and the generated IDs.
    /// The same seed and the same sequence of requests give the same answers.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Deliberate misbehaviour; none by default.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The data the fake starts with; [`Fixtures::documented`] by default.
    pub fn fixtures(mut self, fixtures: Fixtures) -> Self {
        self.fixtures = fixtures;
        self
    }

    /// The Kommo account ID in answers (`account_id`); the documents' 31361463 by default.
    pub fn account_id(mut self, account_id: i64) -> Self {
        self.account_id = account_id;
        self
    }

    /// Whether every answer is checked against the spec ([`FakeServer::violations`]); on by
    /// default.
    pub fn check_responses(mut self, check: bool) -> Self {
        self.check_responses = check;
        self
    }

    /// The address to listen on: `127.0.0.1` by default (loopback only). An address other hosts
    /// can reach (`[0, 0, 0, 0]` for every interface) also needs [`Config::allow_remote`] and
    /// [`Config::admin_token`], or [`FakeServer::start`] refuses it
    /// ([`FakeError::RemoteNotAllowed`], [`FakeError::RemoteWithoutAdminToken`]): the fake's
    /// credentials are public, and its admin API reads, changes and wipes its state.
    pub fn host(mut self, host: impl Into<IpAddr>) -> Self {
        self.host = host.into();
        self
    }

    /// Says that listening on an address other hosts can reach ([`Config::host`] other than a
    /// loopback address) is meant: anyone who reaches it can call both APIs with the fake's
    /// credentials. Do it only on a network you trust, with an [`Config::admin_token`]. Off by
    /// default.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeError, FakeServer};
    ///
    /// let everywhere = Config::default().host([0, 0, 0, 0]);
    /// let refused = FakeServer::start(everywhere.clone()).unwrap_err();
    /// assert!(matches!(refused, FakeError::RemoteNotAllowed(_)));
    ///
    /// let fake = FakeServer::start(everywhere.allow_remote().admin_token("a long random token"))?;
    /// # drop(fake);
    /// # Ok::<(), FakeError>(())
    /// ```
    pub fn allow_remote(mut self) -> Self {
        self.allow_remote = true;
        self
    }

    /// The token the admin API (`/__admin/`) asks for: with one, every admin call needs
    /// `Authorization: Bearer <token>` (compared in constant time) and gets `401` without it,
    /// before its body is read. Without one (the default) the admin API is open to whoever
    /// reaches the fake, which on loopback is this machine; a non-loopback [`Config::host`]
    /// needs one. The [`FakeServer`] methods need no token.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fake = FakeServer::start(Config::default().admin_token("s3cret"))?;
    /// let health = format!("{}/__admin/health", fake.base_url());
    /// let http = reqwest::Client::new();
    /// assert_eq!(http.get(&health).send().await?.status(), 401);
    /// assert_eq!(http.get(&health).bearer_auth("s3cret").send().await?.status(), 200);
    /// # Ok(()) }
    /// ```
    pub fn admin_token(mut self, token: impl Into<Secret>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// How long a connection may take to send a request's headers, from the moment the fake
    /// starts waiting for them (a new connection, or a kept-alive one between requests); after
    /// it the connection is closed without an answer. [`DEFAULT_HEADER_READ_TIMEOUT`] (30 s)
    /// by default, so a client that opens connections and never finishes a request cannot keep
    /// them open. A zero duration is taken as 1 ms.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How many connections the fake serves at once ([`DEFAULT_MAX_CONNECTIONS`] by default,
    /// at least 1): a connection beyond it waits in the listener's backlog until another
    /// closes.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The port to listen on; 0 (the default) picks a free one ([`FakeServer::addr`] tells
    /// which).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Called once per request of either API, when its answer is ready (or the connection is
    /// dropped), on the server's thread: the `lead-intake-fake` program prints a log line with
    /// it. Calls of the admin API are not reported. Keep it quick: the connection waits.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use lead_intake_fake::{Config, FakeServer};
    ///
    /// let lines = Arc::new(Mutex::new(Vec::new()));
    /// let log = lines.clone();
    /// let config = Config::default().on_request(move |request| {
    ///     log.lock().unwrap().push(request.to_string()); // "GET /api/v4/widgets 401 0 ms"
    /// });
    /// let fake = FakeServer::start(config)?;
    /// # drop(fake);
    /// # Ok::<(), lead_intake_fake::FakeError>(())
    /// ```
    pub fn on_request(
        mut self,
        callback: impl Fn(&RecordedRequest) + Send + Sync + 'static,
    ) -> Self {
        self.on_request = Some(OnRequest(Arc::new(callback)));
        self
    }

    /// The account's subdomain, in webhooks (`account[subdomain]`) and in the claims of the
    /// `widget_request` token (`fake` by default).
    pub fn subdomain(mut self, subdomain: impl Into<String>) -> Self {
        self.subdomain = subdomain.into();
        self
    }

    /// Where the fake posts incoming-lead webhooks, as Kommo does: after each request that adds,
    /// accepts, declines or links incoming leads, one `application/x-www-form-urlencoded` POST
    /// of PHP arrays, `account[id]`, `account[subdomain]`, `account[_links][self]` and
    /// `unsorted[add][n][...]` (`uid`, `category`, `created_at`, `account_id`, `source_uid`,
    /// `pipeline_id`, `lead_id`) or `unsorted[delete][n][...]` (`uid`, `category`,
    /// `created_at`, `action` = `accept` | `decline` | `link`, and `accept_result[leads][0]`,
    /// `accept_result[contacts][0]`, `decline_result[leads][0]` or
    /// `link_result[{entity_type}][0]`). [`FakeServer::webhook_deliveries`] lists them.
    pub fn webhook_url(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    /// Where the fake's Salesbot posts `widget_request` ([`FakeServer::send_widget_request`]).
    pub fn widget_url(mut self, url: impl Into<String>) -> Self {
        self.widget_url = Some(url.into());
        self
    }
}

/// Why a [`FakeServer`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FakeError {
    /// Binding the port or starting the server's thread failed.
    #[error("cannot start the fake server: {0}")]
    Io(#[from] std::io::Error),
    /// The embedded specification could not be read (a bug in the crate).
    #[error("the embedded specification is unusable: {0}")]
    Spec(String),
    /// A fixture does not match the spec.
    #[error("invalid fixture: {0}")]
    Fixture(String),
    /// A state given to [`FakeServer::load_state`] (or `PUT /__admin/state`) is not one: the
    /// message names the place, e.g. ``kommo.sources[2]: needs an integer `id` ``.
    #[error("invalid state: {0}")]
    State(String),
    /// The call needs a setting the server was started without, e.g. `Config::widget_url`.
    #[error("the fake was started without {0}")]
    NotConfigured(&'static str),
    /// A bot kind other than `salesbot` or `marketingbot`.
    #[error("unknown bot kind `{0}` (expected salesbot or marketingbot)")]
    InvalidBotKind(String),
    /// A bot ID that cannot be a segment of a continue URL: empty, or other than letters,
    /// digits, `-`, `_`, `.` and `~` (what `lead_intake::widget::ContinueTarget` reads).
    #[error(
        "bot ID `{0}` cannot be a continue URL's segment (letters, digits, `-`, `_`, `.`, `~`)"
    )]
    InvalidBotId(String),
    /// The server stopped before the call was done.
    #[error("the fake server stopped")]
    Stopped,
    /// [`Config::host`] is an address other hosts can reach, without [`Config::allow_remote`]
    /// (the program's `--allow-remote`).
    #[error(
        "listening on {0} lets other hosts call the fake with its public credentials and drive its \
         admin API; say that is meant with Config::allow_remote (--allow-remote), on a network \
         you trust, or listen on 127.0.0.1"
    )]
    RemoteNotAllowed(IpAddr),
    /// [`Config::host`] is an address other hosts can reach, without a
    /// [`Config::admin_token`] (the program's `--admin-token`).
    #[error(
        "listening on {0} needs an admin token (Config::admin_token, --admin-token): without one \
         every host that reaches the fake can read, change and wipe its state"
    )]
    RemoteWithoutAdminToken(IpAddr),
}

/// What a [`FakeServer`] has answered so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests received (including those answered by a fault, or dropped).
    pub requests: u64,
    /// Answers sent, by HTTP status (dropped connections are not answers).
    pub by_status: BTreeMap<u16, u64>,
    /// Answers of each operation by status, keyed by `api.operationId` (e.g.
    /// `kommo.listSources`); fault answers are not an operation's.
    pub by_operation: BTreeMap<String, BTreeMap<u16, u64>>,
    /// `429` answers: from the rate limit's window, at random ([`Faults::rate_limited`]) or
    /// injected.
    pub rate_limited: u64,
    /// HTML `403` answers of a blocked account.
    pub blocked: u64,
    /// `5xx` fault answers (each status is also in [`Stats::by_status`]).
    pub server_errors: u64,
    /// Connections closed without an answer before the request was processed ([`Fault::Drop`]).
    pub dropped: u64,
    /// Connections closed without an answer after the request was processed
    /// ([`Fault::DropAfterProcessing`], [`Faults::lost_answers`]).
    pub lost_answers: u64,
    /// `5xx` fault answers sent after the request was processed
    /// ([`Fault::ServerErrorAfterProcessing`], [`Faults::late_server_errors`]; each status is also
    /// in [`Stats::by_status`]).
    pub late_server_errors: u64,
    /// Answers delayed by the slow fault.
    pub slowed: u64,
    /// Every fault, with the number (from 1) of the request it hit, in order (the first 10,000).
    pub faults: Vec<(u64, Fault)>,
}

/// An answer the fake sent that does not match the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// `api.operationId`, e.g. `kommo.listWidgets`.
    pub operation: String,
    /// The request's method.
    pub method: String,
    /// The request's path and query.
    pub target: String,
    /// The answer's status.
    pub status: u16,
    /// What does not match.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {}) answered {}: {}",
            self.operation, self.method, self.target, self.status, self.message
        )
    }
}

/// A widget block's `continue` call received by the fake.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ContinuedBot {
    /// `salesbot` or `marketingbot`.
    pub kind: String,
    /// The bot's ID.
    pub bot_id: String,
    /// The continuation's ID.
    pub continue_id: String,
    /// The request's `data`, if any.
    pub data: Option<Value>,
}

/// An incoming lead as the fake holds it, whatever its state: what a test checks a client's
/// work against without going through the (possibly faulty) HTTP path
/// ([`FakeServer::incoming_leads`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StoredIncomingLead {
    /// Its `uid`.
    pub uid: String,
    /// The `request_id` of the `addIncomingCalls` / `addIncomingForms` item that created it,
    /// when the item had one. Kommo does not keep it (it only echoes it in the answer); the fake
    /// does, so a test can tell which input created which lead. `None` for fixtures and
    /// [`FakeServer::add_incoming_lead`].
    pub request_id: Option<String>,
    /// `waiting`, `accepted`, `declined` or `linked`; the API lists and gets only waiting leads.
    pub state: String,
    /// The lead in the spec's `IncomingLead` shape, as `getIncomingLead` shows it (`_links` on
    /// [`FakeServer::base_url`]).
    pub lead: Value,
}

/// A running fake Kommo and CloseBot server (on `127.0.0.1` unless [`Config::host`] says
/// otherwise). Stops on [`FakeServer::shutdown`] or when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    kommo_token: Secret,
    closebot_key: Secret,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What the server's thread and the handle share.
pub(crate) struct Shared {
    pub(crate) specs: &'static spec::Specs,
    pub(crate) config: Config,
    pub(crate) state: Mutex<State>,
    /// What the fake sends to back ends (webhooks, widget_request).
    pub(crate) outbound: Arc<outbound::Outbound>,
}

/// Everything that changes while the server runs.
pub(crate) struct State {
    pub(crate) kommo: kommo::Kommo,
    pub(crate) closebot: closebot::CloseBot,
    /// The faults in force: [`Config::faults`] until [`FakeServer::set_faults`].
    pub(crate) fault_config: Faults,
    pub(crate) faults: faults::FaultState,
    pub(crate) stats: Stats,
    pub(crate) violations: Vec<Violation>,
    /// The token endpoint's codes, tokens and counters.
    pub(crate) oauth: oauth::OAuthState,
    /// The last [`LOG_LIMIT`] requests, oldest first.
    pub(crate) journal: VecDeque<RecordedRequest>,
}

impl State {
    /// The state a server starts with (`fixtures: false`: with no data at all).
    pub(crate) fn initial(
        config: &Config,
        specs: &spec::Specs,
        fixtures: bool,
    ) -> Result<Self, FakeError> {
        let empty;
        let data = if fixtures {
            config
        } else {
            empty = config.clone().fixtures(Fixtures::empty());
            &empty
        };
        Ok(State {
            kommo: kommo::Kommo::new(data, specs)?,
            closebot: closebot::CloseBot::new(data, specs)?,
            fault_config: config.faults.clone(),
            faults: faults::FaultState::new(config.seed, &config.faults),
            stats: Stats::default(),
            violations: Vec::new(),
            oauth: oauth::OAuthState::new(config.seed),
            journal: VecDeque::new(),
        })
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Handlers do not panic on any input; if one did, its partial update is still the best
        // state there is, and the fake must keep answering.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl FakeServer {
    /// Starts the server on [`Config::host`] (`127.0.0.1` by default) and [`Config::port`] (any
    /// free one by default) on a thread of its own, and returns once it accepts connections. Works inside or outside an
    /// async runtime.
    pub fn start(config: Config) -> Result<FakeServer, FakeError> {
        // The webhooks' sender, and the `reqwest::Client` a test builds to talk to the fake,
        // need rustls's crypto provider when lead-intake's default `rustls` feature is on.
        lead_intake::http::install_crypto_provider();
        if !config.host.to_canonical().is_loopback() {
            if !config.allow_remote {
                return Err(FakeError::RemoteNotAllowed(config.host));
            }
            if config.admin_token.is_none() {
                return Err(FakeError::RemoteWithoutAdminToken(config.host));
            }
        }
        let specs = spec::specs().map_err(FakeError::Spec)?;
        let state = State::initial(&config, specs, true)?;
        let listener = std::net::TcpListener::bind((config.host, config.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let kommo_token = config.kommo_token.clone();
        let closebot_key = config.closebot_key.clone();
        let shared = Arc::new(Shared {
            specs,
            config,
            state: Mutex::new(state),
            outbound: Arc::new(outbound::Outbound::new()),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server_shared = shared.clone();
        // The runtime is built and dropped on the server's own thread: never inside the
        // caller's async context, where dropping a runtime panics.
        let thread = std::thread::Builder::new()
            .name(format!("lead-intake-fake:{}", addr.port()))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let listener = {
                    let _context = runtime.enter();
                    tokio::net::TcpListener::from_std(listener)
                };
                let listener = match listener {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                runtime.block_on(server::run(listener, server_shared, stop_rx));
                // Dropping the runtime cancels every open connection.
                drop(runtime);
                let _ = done_tx.send(());
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(FakeError::Io(e)),
            Err(_) => {
                return Err(FakeError::Io(std::io::Error::other(
                    "the server's thread ended before it started",
                )));
            }
        }
        Ok(FakeServer {
            addr,
            shared,
            kommo_token,
            closebot_key,
            stop: Some(stop_tx),
            done: Some(done_rx),
            thread: Some(thread),
        })
    }

    /// The base URL of both APIs, e.g. `http://127.0.0.1:40123` (no trailing slash): Kommo's
    /// paths are under `/api/v4/`, CloseBot's under `/agency/`, the admin API's under
    /// `/__admin/`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Kommo token it accepts:
    /// `kommo::Client::from_base_url(&fake.base_url(), fake.kommo_token())`.
    pub fn kommo_token(&self) -> Secret {
        self.kommo_token.clone()
    }

    /// The CloseBot API key it accepts.
    pub fn closebot_key(&self) -> Secret {
        self.closebot_key.clone()
    }

    /// The OAuth integration it plays ([`Config::oauth`]).
    pub fn oauth(&self) -> &OAuthConfig {
        &self.shared.config.oauth
    }

    /// The OAuth integration as the library takes it, for
    /// [`lead_intake::oauth::exchange_code`] and [`lead_intake::oauth::OAuth::new`].
    pub fn oauth_app(&self) -> lead_intake::oauth::OAuthApp {
        let oauth = &self.shared.config.oauth;
        lead_intake::oauth::OAuthApp::new(
            oauth.client_id.clone(),
            oauth.client_secret.clone(),
            oauth.redirect_uri.clone(),
        )
    }

    /// The token endpoint: `{base_url}/oauth2/access_token`.
    pub fn token_url(&self) -> String {
        format!("{}{}", self.base_url(), oauth::TOKEN_PATH)
    }

    /// A new authorization code, as the redirect after installing the integration would bring:
    /// single-use, valid for 20 minutes (as Kommo's). `POST /__admin/oauth/code` does the same.
    ///
    /// ```
    /// use lead_intake::oauth::{self, OAuth, TokenPair};
    /// use lead_intake::prelude::*;
    /// use lead_intake_fake::{Config, FakeServer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fake = FakeServer::start(Config::default())?;
    /// let app = fake.oauth_app();
    /// let tokens = oauth::exchange_code(&fake.base_url(), &app, &fake.authorization_code()).await?;
    ///
    /// let kommo = lead_intake::kommo::Client::builder()
    ///     .base_url(&fake.base_url())
    ///     .oauth(OAuth::new(app, tokens, |_pair: TokenPair| async { Ok::<(), std::io::Error>(()) }))
    ///     .build()?;
    /// // Every access token expires now: the client refreshes once, and the call succeeds.
    /// fake.expire_access_tokens();
    /// kommo.list_sources().send().or_empty().await?;
    /// assert_eq!(fake.oauth_stats().refreshes, 1);
    /// # Ok(()) }
    /// ```
    pub fn authorization_code(&self) -> String {
        self.shared.lock().oauth.issue_code()
    }

    /// What the token endpoint has done so far: codes exchanged, refreshes, revoked refresh
    /// tokens sent again, expired access tokens refused. `GET /__admin/oauth` shows the same.
    pub fn oauth_stats(&self) -> OAuthStats {
        self.shared.lock().oauth.stats.clone()
    }

    /// Expires every access token handed out so far, at once (no waiting for
    /// [`OAuthConfig::access_token_lifetime`]): the next request with one answers `401`.
    /// Returns how many were still valid. Refresh tokens are untouched.
    /// `POST /__admin/oauth/expire` does the same.
    pub fn expire_access_tokens(&self) -> usize {
        self.shared.lock().oauth.expire_all()
    }

    /// What it has answered so far.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Every answer so far that does not match the spec (the first 10,000; empty unless
    /// something is wrong, or [`Config::check_responses`] is off).
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.lock().violations.clone()
    }

    /// Scripts the next requests: the first request after this call gets the first fault, and
    /// so on; then the configured [`Faults`] apply again.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer, Fault};
    /// let fake = FakeServer::start(Config::default())?;
    /// fake.inject([Fault::ServerError(503), Fault::RateLimited]);
    /// # Ok::<(), lead_intake_fake::FakeError>(())
    /// ```
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().faults.injected.extend(faults);
    }

    /// Scripts the next requests to the token endpoint (`POST /oauth2/access_token`) only: the
    /// first token request after this call gets the first fault, and so on, before any fault
    /// of [`inject`](Self::inject) or the configuration; other requests do not take them. A slow
    /// token endpoint that first answers `429` with `Retry-After`:
    ///
    /// ```
    /// use std::time::Duration;
    /// use lead_intake_fake::{Config, FakeServer, Fault};
    /// let fake = FakeServer::start(Config::default())?;
    /// fake.inject_token_faults([
    ///     Fault::RetryAfter(Duration::from_secs(30)),
    ///     Fault::RetryAfter(Duration::from_secs(30)),
    ///     Fault::Slow(Duration::from_secs(59)),
    /// ]);
    /// # Ok::<(), lead_intake_fake::FakeError>(())
    /// ```
    ///
    /// `POST /__admin/faults` with `{"inject_token": ["retry_after:30", "slow:59000"]}` does
    /// the same.
    pub fn inject_token_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().faults.injected_token.extend(faults);
    }

    /// Blocks or unblocks the Kommo account (a blocked account answers an HTML `403` to every
    /// Kommo request; only "support" unblocks it, i.e. this call).
    pub fn set_blocked(&self, blocked: bool) {
        let mut state = self.shared.lock();
        state.faults.blocked = blocked;
        state.faults.violations = 0;
    }

    /// Whether the Kommo account is blocked.
    pub fn is_blocked(&self) -> bool {
        self.shared.lock().faults.blocked
    }

    /// Plays Salesbot's `widget_request` step: the bot `bot_id` of `kind` (`salesbot` or
    /// `marketingbot`) starts waiting on a new continue ID, and the fake POSTs
    /// `{"token", "data", "return_url"}` as JSON to [`Config::widget_url`]. The `token` is an
    /// HS512 JWT signed with the OAuth client secret ([`OAuthConfig::client_secret`]), whose
    /// claims ([`lead_intake::widget::BotTokenClaims`]) name the fake's origin (`iss`), account,
    /// subdomain, client ID, `entity_id` (a lead), `bot_type` = `kind`, and expire in 10 minutes;
    /// `return_url` is the bot's continue URL on the fake, so continuing it lands in
    /// [`FakeServer::continued_bots`].
    ///
    /// Resolves once the back end answered (or failed to: `status: None` and the `error`), with
    /// what was sent. Works from any async runtime: the send runs on the fake's own, after any
    /// webhook queued before it.
    ///
    /// # Errors
    ///
    /// [`FakeError::NotConfigured`] without [`Config::widget_url`], [`FakeError::InvalidBotKind`]
    /// for another `kind`, [`FakeError::InvalidBotId`] for a bot ID no continue URL can carry
    /// (nothing is sent then), and [`FakeError::Stopped`] when the server stopped first.
    ///
    /// ```no_run
    /// use lead_intake::widget::BotTokenVerifier;
    /// use lead_intake_fake::{Config, FakeServer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // The back end under test listens here; it verifies the token with
    /// // `BotTokenVerifier::new(client secret)`, checks the request (`WidgetRequest::verify`)
    /// // and continues the bot through `return_url`.
    /// let fake = FakeServer::start(Config::default().widget_url("http://127.0.0.1:3000/widget"))?;
    /// let _verifier = BotTokenVerifier::new(fake.oauth().client_secret().clone())?;
    /// let sent = fake
    ///     .send_widget_request("salesbot", "4131", 1001, serde_json::json!({"phone": "+1 415 555"}))
    ///     .await?;
    /// assert_eq!(sent.status, Some(200), "{:?}", sent.error);
    /// assert_eq!(fake.continued_bots()[0].continue_id, sent.continue_id);
    /// # Ok(()) }
    /// ```
    pub async fn send_widget_request(
        &self,
        kind: &str,
        bot_id: &str,
        entity_id: i64,
        data: serde_json::Value,
    ) -> Result<WidgetRequestSent, FakeError> {
        let answer = queue_widget_request(
            &self.shared,
            &self.base_url(),
            kind,
            bot_id,
            entity_id,
            data,
        )?;
        answer.await.map_err(|_| FakeError::Stopped)
    }

    /// Every `widget_request` sent ([`FakeServer::send_widget_request`]), oldest first.
    pub fn widget_requests(&self) -> Vec<WidgetRequestSent> {
        self.shared.outbound.widget_requests()
    }

    /// Every webhook sent to [`Config::webhook_url`], oldest first.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.shared.outbound.webhooks()
    }

    /// Waits until at least `count` webhooks have been sent (answered or not), counted from the
    /// start; works from any async runtime. Bound it with `tokio::time::timeout` as a watchdog.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use lead_intake_fake::{Config, FakeServer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fake = FakeServer::start(Config::default().webhook_url("http://127.0.0.1:3000/hooks"))?;
    /// // ... requests that accept or decline incoming leads, then:
    /// tokio::time::timeout(Duration::from_secs(60), fake.webhooks_sent(2)).await?;
    /// for delivery in fake.webhook_deliveries() {
    ///     assert_eq!(delivery.status, Some(200), "{:?}", delivery.error);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn webhooks_sent(&self, count: usize) {
        let mut sent = self.shared.outbound.delivered.subscribe();
        let _ = sent.wait_for(|n| *n >= count).await;
    }

    /// Makes a Salesbot or Marketingbot widget block wait for `continue` (`kind` is `salesbot` or
    /// `marketingbot`).
    pub fn add_waiting_bot(&self, kind: &str, bot_id: &str, continue_id: &str) {
        self.shared
            .lock()
            .kommo
            .add_waiting_bot(kind, bot_id, continue_id);
    }

    /// The `continue` calls received, in order.
    pub fn continued_bots(&self) -> Vec<ContinuedBot> {
        self.shared.lock().kommo.continued.clone()
    }

    /// Adds an incoming lead as if it had arrived (e.g. a `chats` lead, which the API cannot
    /// create), in the spec's `IncomingLead` shape; `uid`, `created_at` and `_embedded` are
    /// generated when missing. Returns its `uid`.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer, Fixtures};
    /// let fake = FakeServer::start(Config::default().fixtures(Fixtures::empty()))?;
    /// let uid = fake.add_incoming_lead(serde_json::json!({
    ///     "category": "chats",
    ///     "source_uid": "amojo:onlinechat:1",
    ///     "source_name": "Live chat",
    ///     "metadata": {"from": "Ann", "service": "onlinechat", "last_message_text": "hi"}
    /// }))?;
    /// assert_eq!(uid.len(), 60);
    /// # Ok::<(), lead_intake_fake::FakeError>(())
    /// ```
    pub fn add_incoming_lead(&self, lead: Value) -> Result<String, FakeError> {
        let specs = self.shared.specs;
        self.shared
            .lock()
            .kommo
            .add_fixture_lead(specs, lead)
            .map_err(FakeError::Fixture)
    }

    /// Every incoming lead the fake holds (fixtures, [`FakeServer::add_incoming_lead`] and those
    /// created through the API), whatever its state, in the order they arrived: the ground
    /// truth, read without a request (no fault applies, nothing is counted in
    /// [`FakeServer::stats`]).
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer, Fixtures};
    /// use lead_intake::kommo::types;
    /// use lead_intake::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fake = FakeServer::start(Config::default().fixtures(Fixtures::empty()))?;
    /// let kommo = lead_intake::kommo::Client::from_base_url(&fake.base_url(), fake.kommo_token())?;
    /// let form = types::AddIncomingForm::new(
    ///     "site-form",
    ///     "Site form",
    ///     types::FormsMetadata::new().with_form_id("contact").with_form_name("Contact us"),
    ///     types::IncomingLeadEmbeddedInput::new()
    ///         .with_contacts(vec![types::ContactInput::new().with_name("Ann")]),
    /// )
    /// .with_request_id("order-17");
    /// let created = kommo.add_incoming_forms().body(vec![form]).send().body().await?;
    ///
    /// let stored = fake.incoming_leads();
    /// assert_eq!(stored.len(), 1);
    /// assert_eq!(stored[0].request_id.as_deref(), Some("order-17"));
    /// assert_eq!(stored[0].state, "waiting");
    /// assert_eq!(stored[0].lead["metadata"]["form_id"], "contact");
    /// let answered = created.embedded.unwrap().unsorted;
    /// assert_eq!(answered[0].uid, stored[0].uid);
    /// # Ok(()) }
    /// ```
    pub fn incoming_leads(&self) -> Vec<StoredIncomingLead> {
        let origin = self.base_url();
        self.shared.lock().kommo.stored_leads(&origin)
    }

    /// Puts everything back as it was when the server started: the data ([`Config::fixtures`],
    /// or nothing at all with `fixtures: false`), the faults ([`Config::faults`], the blocked
    /// account, no injected faults, the seed's sequence from its start), the stats, the
    /// violations and the journal; no OAuth code or token handed out before works any more, and
    /// [`FakeServer::oauth_stats`] start again from zero. `POST /__admin/reset` does the same.
    /// What was sent to back ends stays: [`FakeServer::webhook_deliveries`],
    /// [`FakeServer::widget_requests`] and the count [`FakeServer::webhooks_sent`] waits on (a
    /// webhook queued before the reset is still sent).
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer};
    /// let fake = FakeServer::start(Config::default())?;
    /// fake.reset(false);
    /// assert!(fake.incoming_leads().is_empty());
    /// fake.reset(true);
    /// assert_eq!(fake.incoming_leads().len(), 3, "the documented ones");
    /// # Ok::<(), lead_intake_fake::FakeError>(())
    /// ```
    pub fn reset(&self, fixtures: bool) {
        // The config's fixtures were accepted at start and give the same result again, so this
        // cannot fail; if it somehow did, the state is left as it is.
        if let Ok(fresh) = State::initial(&self.shared.config, self.shared.specs, fixtures) {
            *self.shared.lock() = fresh;
        }
    }

    /// The requests answered so far (the last 10,000), in the order they were answered (each is
    /// in it before its answer is sent): method, path, query, status, sizes, time, operation and
    /// fault. Admin calls are not in it. `GET
    /// /__admin/requests` shows the same.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().journal.iter().cloned().collect()
    }

    /// The whole data of both APIs as JSON: Kommo's pipelines, sources (with their
    /// integration), deleted sources, widgets (and their settings when installed), widget
    /// blocks waiting or continued, incoming leads (with their state), the next IDs; CloseBot's
    /// sources. [`FakeServer::load_state`] reads it back into the same state, so a test can
    /// save and restore it, or write one from scratch ([`admin`] describes the document).
    /// Faults, stats and the journal are not part of it. `GET /__admin/state` shows the same.
    pub fn state(&self) -> Value {
        admin::state_json(&self.shared.lock())
    }

    /// Replaces the whole data of both APIs with `state` (the shape of [`FakeServer::state`];
    /// a key left out is empty, so `{}` is no data at all but the documented pipelines). Every
    /// entity is checked against the spec; on an error nothing changes. Faults, stats and the
    /// journal are kept. `PUT /__admin/state` does the same.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer};
    /// use serde_json::json;
    ///
    /// let fake = FakeServer::start(Config::default())?;
    /// fake.load_state(json!({"kommo": {"sources": [
    ///     {"id": 17619939, "name": "Site chat", "external_id": "chat-1"}
    /// ]}}))?;
    /// assert_eq!(fake.state()["kommo"]["sources"][0]["pipeline_id"], 6950551);
    ///
    /// let saved = fake.state();
    /// fake.load_state(saved.clone())?;
    /// assert_eq!(fake.state(), saved);
    ///
    /// let err = fake.load_state(json!({"kommo": {"sources": [{"name": "no id"}]}})).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid state: kommo.sources[0]: needs an integer `id`");
    /// # Ok::<(), lead_intake_fake::FakeError>(())
    /// ```
    pub fn load_state(&self, state: Value) -> Result<(), FakeError> {
        admin::load_state(&self.shared, &state).map_err(FakeError::State)
    }

    /// The faults in force: [`Config::faults`], or the last [`FakeServer::set_faults`].
    pub fn faults(&self) -> Faults {
        self.shared.lock().fault_config.clone()
    }

    /// Replaces the faults in force (`Faults::none()` clears them) and blocks or unblocks the
    /// account as [`Faults::blocked`] says; injected faults still come first, and the seed's
    /// sequence goes on. `POST /__admin/faults` does the same.
    ///
    /// ```
    /// use lead_intake_fake::{Config, FakeServer, Faults};
    /// let fake = FakeServer::start(Config::default())?;
    /// fake.set_faults(Faults::none().rate_limit(7).server_errors(0.1));
    /// assert_eq!(fake.faults(), Faults::none().rate_limit(7).server_errors(0.1));
    /// fake.set_faults(Faults::none());
    /// # Ok::<(), lead_intake_fake::FakeError>(())
    /// ```
    pub fn set_faults(&self, faults: Faults) {
        admin::set_faults(&mut self.shared.lock(), faults);
    }

    /// Stops the server and waits until it has closed every connection.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Blocks the calling thread until the server stops (it never does by itself): for a
    /// program that only serves.
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Shared by the handlers: the request as the handlers see it.
pub(crate) struct Ctx {
    /// `http://host:port` as the client addressed the fake, for absolute `_links`.
    pub(crate) origin: String,
    /// Path parameters by name, percent-decoded.
    pub(crate) path: BTreeMap<String, String>,
    /// Declared query parameters present in the request, by their declared name, converted to
    /// their schema's type.
    pub(crate) query: BTreeMap<String, Value>,
    /// The JSON body, if one was sent.
    pub(crate) body: Option<Value>,
    /// Which Kommo integration is calling: 0 for [`Config::kommo_token`], then the others.
    pub(crate) integration: usize,
    /// The request's Unix time.
    pub(crate) now: i64,
}

/// The current Unix time in seconds.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How many faults, violations and journal entries are kept (a long-running program must not
/// grow without end).
pub(crate) const LOG_LIMIT: usize = 10_000;

/// A pause the slow fault uses when none is given.
pub(crate) const DEFAULT_SLOW: Duration = Duration::from_millis(500);

/// Builds a `widget_request` ([`FakeServer::send_widget_request`]) for the fake at `origin`,
/// queues it, and gives the receiver of its outcome.
pub(crate) fn queue_widget_request(
    shared: &Shared,
    origin: &str,
    kind: &str,
    bot_id: &str,
    entity_id: i64,
    data: serde_json::Value,
) -> Result<tokio::sync::oneshot::Receiver<WidgetRequestSent>, FakeError> {
    let Some(url) = shared.config.widget_url.clone() else {
        return Err(FakeError::NotConfigured("Config::widget_url"));
    };
    let bot_type = match kind {
        "salesbot" => lead_intake::widget::BotType::Salesbot,
        "marketingbot" => lead_intake::widget::BotType::Marketingbot,
        _ => return Err(FakeError::InvalidBotKind(kind.to_string())),
    };
    let plain = !bot_id.is_empty()
        && bot_id != "."
        && bot_id != ".."
        && bot_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if !plain {
        return Err(FakeError::InvalidBotId(bot_id.chars().take(100).collect()));
    }
    let continue_id = format!("fake-continue-{}", fastrand::u64(..));
    shared
        .lock()
        .kommo
        .add_waiting_bot(kind, bot_id, &continue_id);
    let config = &shared.config;
    let now: chrono::DateTime<chrono::Utc> = std::time::SystemTime::now().into();
    let claims = lead_intake::widget::BotTokenClaims::new(
        origin.to_string(),
        config.account_id,
        config.subdomain.clone(),
        config.oauth.client_id(),
        entity_id,
        lead_intake::widget::EntityType::Leads,
        bot_type,
        now + chrono::TimeDelta::minutes(10),
    );
    let token = lead_intake::widget::sign_bot_token(&claims, config.oauth.client_secret());
    let return_url = format!("{origin}/api/v4/{kind}/{bot_id}/continue/{continue_id}");
    let body = serde_json::json!({ "token": token, "data": data, "return_url": return_url });
    let sent = WidgetRequestSent {
        kind: kind.to_string(),
        bot_id: bot_id.to_string(),
        continue_id,
        return_url,
        data,
        status: None,
        error: None,
        redirect: None,
    };
    let (done, answer) = tokio::sync::oneshot::channel();
    shared.outbound.push(outbound::Job::Widget {
        url,
        body,
        sent: Box::new(sent),
        done: Some(done),
    });
    Ok(answer)
}
