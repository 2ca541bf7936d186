//! The admin API under `/__admin/`: drive the fake over HTTP from any language, as WireMock's
//! admin API or stripe-mock are driven. It exists only on the fake (the specs do not have it),
//! and needs no token unless the fake was started with one ([`Config::admin_token`], the
//! program's `--admin-token`): then every call needs `Authorization: Bearer <token>` and gets
//! `401` (with `WWW-Authenticate: Bearer`) without it, before its body is read. Bodies are JSON;
//! an error is `{"error": "..."}` with `400` (a bad body), `401` (no admin token), `404` (no such
//! admin path) or `405` (with `Allow`).
//!
//! | call | what | Rust |
//! |---|---|---|
//! | `GET /__admin/health` | `{"status": "ok", "base_url", "kommo", "closebot", "admin", "requests"}`: where the APIs are, and how many requests it has had | |
//! | `POST /__admin/reset` | everything back to the start: the fixtures, the faults given at start, no stats, no journal, no OAuth code or token handed out; `?empty=true` (or the body `{"empty": true}`): no data at all | [`FakeServer::reset`] |
//! | `GET /__admin/requests` | the journal, in the order the requests were answered (`number` is the order they arrived in), each there before its answer is sent: `{"total", "requests": [{"number", "method", "path", "query", "status", "request_bytes", "response_bytes", "elapsed_ms", "operation", "fault"}]}`; `status` is `null` for a connection closed without an answer; the last 10,000 are kept (`total` counts them all) | [`FakeServer::requests`] |
//! | `GET /__admin/state` | the whole data of both APIs (below) | [`FakeServer::state`] |
//! | `PUT /__admin/state` | replaces it: a document `GET` gave, or one written by hand; answers the state now held, or `400` naming the place that is wrong (`kommo.incoming_leads[3]: ...`), changing nothing | [`FakeServer::load_state`] |
//! | `GET /__admin/faults` | the faults in force (below) | [`FakeServer::faults`] |
//! | `POST /__admin/faults` | sets them: the body is the whole fault configuration, so `{}` clears every fault; answers the faults now in force | [`FakeServer::set_faults`], [`FakeServer::inject`] |
//! | `GET /__admin/oauth` | the OAuth integration and what its token endpoint did: `{"client_id", "redirect_uri", "token_url", "access_token_lifetime_ms", "valid_access_tokens", "stats": {"codes_issued", "codes_exchanged", "refreshes", "revoked_reuses", "refused", "expired_tokens_refused", "authorized", "forced_expiries"}}` (no secret) | [`FakeServer::oauth_stats`] |
//! | `POST /__admin/oauth/code` | a new single-use authorization code, valid 20 minutes: `{"code", "expires_in": 1200}` | [`FakeServer::authorization_code`] |
//! | `POST /__admin/widget_request` | plays Salesbot's `widget_request` step: the body `{"kind": "salesbot" \| "marketingbot" (default `salesbot`), "bot_id" (a string or a number: letters, digits, `-`, `_`, `.`, `~`), "entity_id" (a lead's id, default 1), "data" (any JSON, default `null`)}`, anything else a `400` naming the field (also without `--widget-url`); the fake POSTs the signed request to its `--widget-url` and answers, once the back end has, what it sent: `{"kind", "bot_id", "continue_id", "return_url", "data", "status", "error", "redirect"}` (`status` is the back end's, `null` with an `error` when it did not answer; `redirect` the `Location` of a `3xx` answer, not followed) | [`FakeServer::send_widget_request`] |
//! | `GET /__admin/widget_requests` | every `widget_request` sent: `{"widget_requests": [...]}`, oldest first | [`FakeServer::widget_requests`] |
//! | `GET /__admin/webhooks` | every incoming-lead webhook sent to `--webhook-url`: `{"webhooks": [{"url", "body", "status", "error", "redirect"}]}`, oldest first (`redirect`: the `Location` of a `3xx` answer, not followed) | [`FakeServer::webhook_deliveries`] |
//! | `POST /__admin/oauth/expire` | expires every access token now (the next request with one answers `401`; refresh tokens are untouched): `{"expired": N}`, the number that were still valid | [`FakeServer::expire_access_tokens`] |
//!
//! The faults document has the program's flag names, with `_` for `-`: `rate_limit` (Kommo
//! requests per second per integration), `block_after` (429s before the account is blocked),
//! `blocked` (true: blocked now; false or absent: unblocked), `error_rate`, `drop_rate`,
//! `lost_answer_rate`, `late_error_rate`, `random_429_rate`, `slow_rate` (shares from 0.0 to
//! 1.0), `slow_ms` (the delay of a slow answer), `inject`: faults for the next requests, in
//! order (`rate_limited`, `blocked`, `drop`, `drop_after_processing`, `server_error:503`,
//! `server_error_after_processing:502`, `slow:250`, `retry_after:30` (a `429` with
//! `Retry-After: 30`); a bare `server_error` is a 500, a bare `slow` 500 ms), and
//! `inject_token`: faults for the next requests to the token endpoint only
//! (`POST /oauth2/access_token`), which take them before any other. The journal names a
//! request's fault the same way.
//!
//! The state document:
//!
//! ```json
//! {
//!   "kommo": {
//!     "pipelines": [6950551, 5867030],
//!     "sources": [{"id": 17619939, "integration": 0, "name": "Site chat",
//!                  "external_id": "chat-1", "pipeline_id": 6950551, "services": [],
//!                  "default": false, "origin_code": null}],
//!     "deleted_sources": [{"integration": 0, "external_id": "old", "id": 17619943}],
//!     "widgets": [{"id": 742, "code": "amo_dropbox", "is_active_in_account": true,
//!                  "settings": {"conf": "x"}, "...": "the spec's Widget"}],
//!     "waiting_bots": [{"kind": "salesbot", "bot_id": "4131", "continue_id": "7a1c2e"}],
//!     "continued_bots": [{"kind": "salesbot", "bot_id": "1", "continue_id": "2", "data": null}],
//!     "incoming_leads": [{"state": "waiting", "decided_at": null, "request_id": null,
//!                         "fingerprint": null,
//!                         "lead": {"uid": "...", "category": "forms", "...": "the spec's IncomingLead"}}],
//!     "leads": [{"integration": 0, "id": 600004, "name": "Chat lead", "price": 0,
//!                "pipeline_id": 6950551, "status_id": 58141807, "contact_id": 600000,
//!                "company_id": null, "source_external_id": "site-chat"}],
//!     "next_source_id": 17619943, "next_entity_id": 600000, "id_seed": 1
//!   },
//!   "closebot": {"sources": [{"...": "the spec's Source"}], "token_refreshes": 0}
//! }
//! ```
//!
//! Every key may be left out (`{}` is no data but the documented pipelines): a source needs
//! its `id`, `name` and `external_id` (`integration` 0 is [`Config::kommo_token`]'s, 1 the first
//! [`Config::other_integration`]), a lead its `lead` in the spec's `IncomingLead` shape (a
//! missing `uid` or `created_at` is generated), a widget and a CloseBot source the spec's
//! shape. A lead of `leads` (added with `leads/complex`) needs an integer `id` and a
//! `pipeline_id`, when given, among `pipelines`. `state` is `waiting`, `accepted`, `declined` or `linked`; `decided_at` the Unix time
//! of an accept or decline (the summary's sort time); `fingerprint` marks a lead created through
//! the API (identical data is refused while it waits). `GET` then `PUT` of its answer leaves the
//! state as it was.
//!
//! ```
//! use lead_intake_fake::{Config, FakeServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeServer::start(Config::default())?;
//! let http = reqwest::Client::new();
//! let admin = format!("{}/__admin", fake.base_url());
//! let state: serde_json::Value = http.get(format!("{admin}/state")).send().await?.json().await?;
//! assert_eq!(state["kommo"]["incoming_leads"].as_array().map(Vec::len), Some(3));
//! http.post(format!("{admin}/reset?empty=true")).send().await?.error_for_status()?;
//! assert!(fake.incoming_leads().is_empty());
//! # Ok(()) }
//! ```
//!
//! [`FakeServer::reset`]: crate::FakeServer::reset
//! [`FakeServer::requests`]: crate::FakeServer::requests
//! [`FakeServer::state`]: crate::FakeServer::state
//! [`FakeServer::load_state`]: crate::FakeServer::load_state
//! [`FakeServer::faults`]: crate::FakeServer::faults
//! [`FakeServer::set_faults`]: crate::FakeServer::set_faults
//! [`FakeServer::inject`]: crate::FakeServer::inject
//! [`FakeServer::oauth_stats`]: crate::FakeServer::oauth_stats
//! [`FakeServer::authorization_code`]: crate::FakeServer::authorization_code
//! [`FakeServer::expire_access_tokens`]: crate::FakeServer::expire_access_tokens
//! [`FakeServer::send_widget_request`]: crate::FakeServer::send_widget_request
//! [`FakeServer::widget_requests`]: crate::FakeServer::widget_requests
//! [`FakeServer::webhook_deliveries`]: crate::FakeServer::webhook_deliveries
//! [`Config::kommo_token`]: crate::Config::kommo_token
//! [`Config::other_integration`]: crate::Config::other_integration
//! [`Config::admin_token`]: crate::Config::admin_token

use std::fmt;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use lead_intake::Secret;

use crate::kommo::kind_of;
use crate::{DEFAULT_SLOW, Fault, Faults, Shared, State, closebot, kommo};

/// Where the admin API lives.
pub(crate) const PREFIX: &str = "/__admin";

/// The largest body the admin API reads (a state with tens of thousands of leads fits).
pub(crate) const BODY_LIMIT: usize = 64 << 20;

/// One request the fake received, as the journal ([`FakeServer::requests`],
/// `GET /__admin/requests`) and [`Config::on_request`] show it. Its `Display` is the program's
/// log line: `GET /api/v4/leads/unsorted 200 3 ms`.
///
/// [`FakeServer::requests`]: crate::FakeServer::requests
/// [`Config::on_request`]: crate::Config::on_request
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// Its number, from 1 (the numbering of [`Stats::faults`](crate::Stats::faults)).
    pub number: u64,
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path, e.g. `/api/v4/leads/unsorted`.
    pub path: String,
    /// The query string as sent (without `?`), if any.
    pub query: Option<String>,
    /// The status answered; `None` when the connection was closed without an answer
    /// ([`Fault::Drop`], [`Fault::DropAfterProcessing`]).
    pub status: Option<u16>,
    /// The request body's size in bytes (as far as it was read).
    pub request_bytes: u64,
    /// The answer body's size in bytes (0 when there was none).
    pub response_bytes: u64,
    /// Milliseconds from the request's arrival to its answer (a slow fault's delay included).
    pub elapsed_ms: u64,
    /// `api.operationId` of the operation that processed it, e.g. `kommo.listSources`; `None`
    /// when a fault answered first, and for a path of neither spec.
    pub operation: Option<String>,
    /// The deliberate misbehaviour applied to it, if any.
    pub fault: Option<Fault>,
}

impl fmt::Display for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.method, self.path)?;
        match self.status {
            Some(status) => write!(f, "{status}")?,
            None => f.write_str("closed")?,
        }
        write!(f, " {} ms", self.elapsed_ms)?;
        if let Some(fault) = &self.fault {
            write!(f, " (fault: {})", fault_name(fault))?;
        }
        Ok(())
    }
}

impl RecordedRequest {
    fn to_json(&self) -> Value {
        json!({
            "number": self.number,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "elapsed_ms": self.elapsed_ms,
            "operation": self.operation,
            "fault": self.fault.as_ref().map(fault_name),
        })
    }
}

/// A fault's name in the admin API and the journal: `rate_limited`, `server_error:503`, ...
pub(crate) fn fault_name(fault: &Fault) -> String {
    match fault {
        Fault::RateLimited => "rate_limited".into(),
        Fault::Blocked => "blocked".into(),
        Fault::ServerError(status) => format!("server_error:{status}"),
        Fault::Drop => "drop".into(),
        Fault::DropAfterProcessing => "drop_after_processing".into(),
        Fault::ServerErrorAfterProcessing(status) => {
            format!("server_error_after_processing:{status}")
        }
        Fault::Slow(delay) => format!("slow:{}", delay.as_millis()),
        Fault::RetryAfter(wait) => format!(
            "retry_after:{}",
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        ),
    }
}

/// The fault a name stands for (the inverse of [`fault_name`]).
fn parse_fault(name: &str) -> Result<Fault, String> {
    let (kind, arg) = match name.split_once(':') {
        Some((kind, arg)) => (kind, Some(arg)),
        None => (name, None),
    };
    let status = |default: u16, allowed: &[u16]| -> Result<u16, String> {
        let status = match arg {
            None => default,
            Some(a) => a
                .parse::<u16>()
                .map_err(|_| format!("{name:?}: the status after `:` is a number"))?,
        };
        if allowed.contains(&status) {
            Ok(status)
        } else {
            Err(format!("{name:?}: the status is one of {allowed:?}"))
        }
    };
    let plain = |fault: Fault| match arg {
        None => Ok(fault),
        Some(_) => Err(format!("{name:?}: `{kind}` takes nothing after `:`")),
    };
    match kind {
        "rate_limited" => plain(Fault::RateLimited),
        "blocked" => plain(Fault::Blocked),
        "drop" => plain(Fault::Drop),
        "drop_after_processing" => plain(Fault::DropAfterProcessing),
        "server_error" => Ok(Fault::ServerError(status(500, &[500, 502, 503, 504])?)),
        "server_error_after_processing" => Ok(Fault::ServerErrorAfterProcessing(status(
            500,
            &[500, 502, 504],
        )?)),
        "slow" => {
            let delay =
                match arg {
                    None => DEFAULT_SLOW,
                    Some(ms) => Duration::from_millis(ms.parse().map_err(|_| {
                        format!("{name:?}: the milliseconds after `:` are a number")
                    })?),
                };
            Ok(Fault::Slow(delay))
        }
        "retry_after" => {
            let seconds = arg
                .ok_or_else(|| format!("{name:?}: `retry_after` takes its seconds after `:`"))?
                .parse()
                .map_err(|_| format!("{name:?}: the seconds after `:` are a number"))?;
            Ok(Fault::RetryAfter(Duration::from_secs(seconds)))
        }
        _ => Err(format!(
            "unknown fault {name:?}: rate_limited, blocked, drop, drop_after_processing, \
             server_error[:status], server_error_after_processing[:status], slow[:ms] or \
             retry_after:seconds"
        )),
    }
}

/// The faults document of `GET` and `POST /__admin/faults`.
fn faults_json(state: &State) -> Value {
    let faults = &state.fault_config;
    let rate = |r: f64| if r > 0.0 { json!(r) } else { Value::Null };
    json!({
        "rate_limit": faults.rate_limit,
        "block_after": faults.block_after,
        "blocked": state.faults.blocked,
        "error_rate": rate(faults.server_error_rate),
        "drop_rate": rate(faults.drop_rate),
        "lost_answer_rate": rate(faults.lost_answer_rate),
        "late_error_rate": rate(faults.late_server_error_rate),
        "random_429_rate": rate(faults.rate_limited_rate),
        "slow_rate": rate(faults.slow_rate),
        "slow_ms": faults.slow_delay.map(|d| d.as_millis() as u64),
        "injected": state.faults.injected.iter().map(fault_name).collect::<Vec<_>>(),
        "injected_token": state.faults.injected_token.iter().map(fault_name).collect::<Vec<_>>(),
    })
}

/// What a faults document asks for: the faults it sets, the faults to inject into the next
/// requests, and those to inject into the next token requests.
type FaultsDocument = (Faults, Vec<Fault>, Vec<Fault>);

/// Reads a faults document: the faults it sets and the faults to inject.
fn parse_faults(body: &Value) -> Result<FaultsDocument, String> {
    let empty = Map::new();
    let map = match body {
        Value::Null => &empty,
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "the body must be an object, not {}",
                kind_of(other)
            ));
        }
    };
    const KEYS: [&str; 12] = [
        "rate_limit",
        "block_after",
        "blocked",
        "error_rate",
        "drop_rate",
        "lost_answer_rate",
        "late_error_rate",
        "random_429_rate",
        "slow_rate",
        "slow_ms",
        "inject",
        "inject_token",
    ];
    // `injected` and `injected_token` are what GET shows; taking them back in unchanged keeps
    // GET-then-POST harmless.
    if let Some(unknown) = map.keys().find(|k| {
        !KEYS.contains(&k.as_str()) && k.as_str() != "injected" && k.as_str() != "injected_token"
    }) {
        return Err(format!(
            "unknown fault {unknown:?} (known: {})",
            KEYS.join(", ")
        ));
    }
    let given = |key: &str| map.get(key).filter(|v| !v.is_null());
    let count = |key: &str| -> Result<Option<u32>, String> {
        given(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("`{key}` takes a whole number, not {v}"))
            })
            .transpose()
    };
    let rate = |key: &str| -> Result<f64, String> {
        match given(key) {
            None => Ok(0.0),
            Some(v) => v
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("`{key}` takes a share from 0.0 to 1.0, not {v}")),
        }
    };
    let mut faults = Faults::none();
    if let Some(n) = count("rate_limit")? {
        faults = faults.rate_limit(n);
    }
    if let Some(n) = count("block_after")? {
        faults = faults.block_after(n);
    }
    match given("blocked") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => faults = faults.blocked(),
        Some(v) => return Err(format!("`blocked` takes true or false, not {v}")),
    }
    faults = faults
        .server_errors(rate("error_rate")?)
        .drops(rate("drop_rate")?)
        .lost_answers(rate("lost_answer_rate")?)
        .late_server_errors(rate("late_error_rate")?)
        .rate_limited(rate("random_429_rate")?);
    let slow_ms = given("slow_ms")
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| format!("`slow_ms` takes a whole number, not {v}"))
        })
        .transpose()?;
    let slow_rate = rate("slow_rate")?;
    if slow_rate > 0.0 || slow_ms.is_some() {
        faults = faults.slow(
            slow_rate,
            slow_ms.map_or(DEFAULT_SLOW, Duration::from_millis),
        );
    }
    let list = |key: &str| -> Result<Vec<Fault>, String> {
        match given(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(names)) => names
                .iter()
                .map(|n| match n {
                    Value::String(name) => parse_fault(name),
                    other => Err(format!("`{key}` lists fault names, not {other}")),
                })
                .collect(),
            Some(v) => Err(format!("`{key}` takes a list of fault names, not {v}")),
        }
    };
    Ok((faults, list("inject")?, list("inject_token")?))
}

/// The faults in force become `faults`; the account is blocked as they say.
pub(crate) fn set_faults(state: &mut State, faults: Faults) {
    state.faults.blocked = faults.blocked;
    state.faults.violations = 0;
    state.fault_config = faults;
}

/// The state document of `GET /__admin/state`.
pub(crate) fn state_json(state: &State) -> Value {
    json!({
        "kommo": state.kommo.to_state(),
        "closebot": state.closebot.to_state(),
    })
}

/// Replaces the data with a state document; on an error nothing changes.
pub(crate) fn load_state(shared: &Shared, state: &Value) -> Result<(), String> {
    let empty = Map::new();
    let map = match state {
        Value::Object(map) => map,
        Value::Null => &empty,
        other => {
            return Err(format!(
                "the state must be an object, not {}",
                kind_of(other)
            ));
        }
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| k.as_str() != "kommo" && k.as_str() != "closebot")
    {
        return Err(format!("unknown key {unknown:?} (known: kommo, closebot)"));
    }
    let none = Value::Null;
    let kommo = kommo::Kommo::from_state(
        &shared.config,
        shared.specs,
        map.get("kommo").unwrap_or(&none),
    )?;
    let closebot =
        closebot::CloseBot::from_state(shared.specs, map.get("closebot").unwrap_or(&none))?;
    let mut locked = shared.lock();
    locked.kommo = kommo;
    locked.closebot = closebot;
    Ok(())
}

/// Appends a request to the journal (the last [`crate::LOG_LIMIT`] are kept).
pub(crate) fn record(state: &mut State, request: RecordedRequest) {
    if state.journal.len() >= crate::LOG_LIMIT {
        state.journal.pop_front();
    }
    state.journal.push_back(request);
}

/// Answers one admin call. `origin` is `http://host:port` as the client addressed the fake.
pub(crate) fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    origin: &str,
) -> Response<Body> {
    let route = path.strip_prefix(PREFIX).unwrap_or(path);
    let route = route.strip_suffix('/').unwrap_or(route);
    let allow = match route {
        "/health" | "/requests" => "GET",
        "/reset" => "POST",
        "/state" => "GET, PUT",
        "/faults" => "GET, POST",
        "/oauth" => "GET",
        "/oauth/code" | "/oauth/expire" | "/widget_request" => "POST",
        "/webhooks" | "/widget_requests" => "GET",
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no admin call {path}: {PREFIX}/health, /reset, /requests, /state, /faults, \
                     /oauth, /oauth/code, /oauth/expire, /webhooks, /widget_request or /widget_requests"
                ),
            );
        }
    };
    let parsed = || -> Result<Value, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))
    };
    match (method.as_str(), route) {
        ("GET", "/health") => {
            let requests = shared.lock().stats.requests;
            ok(json!({
                "status": "ok",
                "base_url": origin,
                "kommo": format!("{origin}/api/v4/"),
                "closebot": format!("{origin}/agency/"),
                "admin": format!("{origin}{PREFIX}/"),
                "requests": requests,
            }))
        }
        ("POST", "/reset") => {
            let from_query = query.is_some_and(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .any(|(k, v)| k == "empty" && matches!(&*v, "" | "true" | "1"))
            });
            let from_body = match parsed() {
                Ok(Value::Null) => false,
                Ok(Value::Object(map)) => match map.get("empty") {
                    None | Some(Value::Bool(false)) => false,
                    Some(Value::Bool(true)) => true,
                    Some(v) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("`empty` takes true or false, not {v}"),
                        );
                    }
                },
                Ok(other) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("the body must be an object, not {}", kind_of(&other)),
                    );
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            let empty = from_query || from_body;
            match State::initial(&shared.config, shared.specs, !empty) {
                Ok(fresh) => {
                    *shared.lock() = fresh;
                    ok(
                        json!({ "reset": true, "fixtures": if empty { "none" } else { "configured" } }),
                    )
                }
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        ("GET", "/requests") => {
            let state = shared.lock();
            let requests: Vec<Value> = state.journal.iter().map(RecordedRequest::to_json).collect();
            ok(json!({ "total": state.stats.requests, "requests": requests }))
        }
        ("GET", "/state") => ok(state_json(&shared.lock())),
        ("PUT", "/state") => {
            let state = match parsed() {
                Ok(state) => state,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            match load_state(shared, &state) {
                Ok(()) => ok(state_json(&shared.lock())),
                Err(e) => error(StatusCode::BAD_REQUEST, format!("invalid state: {e}")),
            }
        }
        ("GET", "/faults") => ok(faults_json(&shared.lock())),
        ("GET", "/oauth") => {
            let config = &shared.config.oauth;
            let state = shared.lock();
            ok(json!({
                "client_id": config.client_id,
                "redirect_uri": config.redirect_uri,
                "token_url": format!("{origin}{}", crate::oauth::TOKEN_PATH),
                "access_token_lifetime_ms":
                    u64::try_from(config.access_lifetime.as_millis()).unwrap_or(u64::MAX),
                "valid_access_tokens": state.oauth.valid_access_tokens(),
                "stats": state.oauth.stats.to_json(),
            }))
        }
        ("POST", "/oauth/code") => {
            let code = shared.lock().oauth.issue_code();
            ok(json!({ "code": code, "expires_in": crate::oauth::CODE_LIFETIME.as_secs() }))
        }
        ("GET", "/webhooks") => ok(json!({ "webhooks": shared.outbound.webhooks() })),
        ("GET", "/widget_requests") => {
            ok(json!({ "widget_requests": shared.outbound.widget_requests() }))
        }
        ("POST", "/oauth/expire") => {
            let expired = shared.lock().oauth.expire_all();
            ok(json!({ "expired": expired }))
        }
        ("POST", "/faults") => {
            let (faults, inject, inject_token) = match parsed().and_then(|body| parse_faults(&body))
            {
                Ok(parsed) => parsed,
                Err(e) => return error(StatusCode::BAD_REQUEST, e),
            };
            let mut state = shared.lock();
            set_faults(&mut state, faults);
            state.faults.injected.extend(inject);
            state.faults.injected_token.extend(inject_token);
            ok(faults_json(&state))
        }
        _ => {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{PREFIX}{route} takes {allow}, not {method}"),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            response
        }
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time (the time
/// taken says nothing of how much of the token a guess got right).
pub(crate) fn authorized(headers: &http::HeaderMap, token: &Secret) -> bool {
    use subtle::ConstantTimeEq as _;
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::server::strip_scheme(v, "Bearer"))
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())))
}

/// The answer to an admin call without the admin token: `401`, naming what is missing, never
/// what was sent.
pub(crate) fn unauthorized() -> Response<Body> {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "the admin API needs `Authorization: Bearer <admin token>` (the token the fake was \
         started with: --admin-token, Config::admin_token)"
            .to_string(),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"lead-intake-fake admin\""),
    );
    response
}

fn ok(body: Value) -> Response<Body> {
    json_response(StatusCode::OK, &body)
}

fn error(status: StatusCode, message: String) -> Response<Body> {
    json_response(status, &json!({ "error": message }))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_name_reads_back_as_its_fault() {
        for fault in [
            Fault::RateLimited,
            Fault::Blocked,
            Fault::ServerError(503),
            Fault::Drop,
            Fault::DropAfterProcessing,
            Fault::ServerErrorAfterProcessing(502),
            Fault::Slow(Duration::from_millis(250)),
            Fault::RetryAfter(Duration::from_secs(30)),
        ] {
            assert_eq!(parse_fault(&fault_name(&fault)), Ok(fault));
        }
        assert_eq!(parse_fault("server_error"), Ok(Fault::ServerError(500)));
        assert!(parse_fault("server_error:418").is_err());
        assert!(parse_fault("drop:1").is_err());
        assert!(parse_fault("retry_after").is_err());
        assert!(parse_fault("boom").unwrap_err().contains("unknown fault"));
    }

    #[test]
    fn a_faults_document_sets_exactly_what_it_names() {
        let (faults, inject, inject_token) = parse_faults(&json!({
            "rate_limit": 7, "error_rate": 0.5, "slow_ms": 20, "inject": ["drop"],
            "inject_token": ["retry_after:1", "slow:3000"]
        }))
        .unwrap();
        assert_eq!(
            faults,
            Faults::none()
                .rate_limit(7)
                .server_errors(0.5)
                .slow(0.0, Duration::from_millis(20))
        );
        assert_eq!(inject, vec![Fault::Drop]);
        assert_eq!(
            inject_token,
            vec![
                Fault::RetryAfter(Duration::from_secs(1)),
                Fault::Slow(Duration::from_secs(3))
            ]
        );
        assert_eq!(parse_faults(&json!({})).unwrap().0, Faults::none());
        for bad in [
            json!({"error_rate": 2}),
            json!({"rate_limit": -1}),
            json!({"blocked": "yes"}),
            json!({"colour": 1}),
            json!([]),
        ] {
            assert!(parse_faults(&bad).is_err(), "{bad}");
        }
    }
}
