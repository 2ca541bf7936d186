//! Kommo's OAuth 2.0 token endpoint, `POST /oauth2/access_token`: the `authorization_code` and
//! `refresh_token` grants, access tokens that expire, single-use refresh tokens.
//!
//! Kommo's authorization server is built on PHP's league/oauth2-server: its error answers carry
//! that library's `hint`s ("Token has been revoked") in a problem document. The shapes here are
//! the ones users quote from Kommo (amoCRM):
//!
//! - a reused refresh token: `401`, `{"hint": "Token has been revoked", "title": "Некорректный
//!   запрос", "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson", "status": 401,
//!   "detail": "В запросе отсутствует ряд параметров или параметры невалидны"}`
//!   (amocrm/amocrm-api-php issues #123 and #315; `../shared/notes/kommo-api.md`, "OAuth 2.0");
//! - a wrong client ID or secret: `401`, `{"title": "Некорректный клиент", "type": ".../OAuthProblemJson",
//!   "status": 401, "detail": "Авторизация клиента не прошла"}` (Krukov/amocrm_api issue #41).
//!
//! The fake answers the same shapes in English ("Invalid request", "Invalid client"; the detail
//! "Client authentication failed" is league's own text, which Kommo translates). The answers no
//! user has quoted follow league/oauth2-server's error types and hints: an unknown, used or
//! expired code is `400` "Invalid grant" with "Cannot decrypt the authorization code",
//! "Authorization code has been revoked" or "Authorization code has expired"; an unknown or
//! expired refresh token `401` with "Cannot decrypt the refresh token" or "Token has expired"; an
//! unknown `grant_type` `400` "Unsupported grant type"; a missing parameter `400` "Invalid request"
//! with "Check the `code` parameter".
//!
//! The body is JSON, as Kommo's documentation shows it, or form-encoded, as the official PHP SDK
//! sends it (its provider, amocrm/oauth2-amocrm, posts league/oauth2-client's form-encoded token
//! request).
//!
//! Time is the real clock ([`std::time::Instant`]): the server runs on a thread of its own, so a
//! test's paused tokio clock cannot reach it. Tests shorten the lifetimes
//! ([`OAuthConfig::access_token_lifetime`]) or expire every access token at once
//! ([`FakeServer::expire_access_tokens`](crate::FakeServer::expire_access_tokens),
//! `POST /__admin/oauth/expire`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Map, Value, json};

use lead_intake::Secret;

use crate::reply::Reply;

/// The path of the token endpoint.
pub(crate) const TOKEN_PATH: &str = "/oauth2/access_token";

/// How long an authorization code can be exchanged: Kommo's codes last 20 minutes.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(20 * 60);

/// The problem type of Kommo's OAuth errors, as users quote it.
const PROBLEM_TYPE: &str = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson";

/// How many codes and tokens are kept; beyond it, spent and expired ones are forgotten first (a
/// long-running program must not grow without end).
const KEEP: usize = 10_000;

/// The fake's OAuth integration: its credentials, and how long its tokens last.
///
/// Its tokens belong to the main integration (the one of
/// [`Config::kommo_token`](crate::Config::kommo_token)): they see and manage the same sources,
/// and count towards the same rate limit. That long-lived token keeps working beside them.
///
/// | setting | default |
/// |---|---|
/// | [`client_id`](Self::client_id) (set by [`new`](Self::new)) | `fake-client-id` |
/// | [`client_secret`](Self::client_secret) | `fake-client-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHI` (64 bytes, as Kommo's secret keys; the widget token verifiers refuse shorter ones) |
/// | [`redirect_uri`](Self::redirect_uri) | `https://example.com/oauth` |
/// | [`access_token_lifetime`](Self::access_token_lifetime) | 24 hours (Kommo's) |
/// | [`refresh_token_lifetime`](Self::refresh_token_lifetime) | 90 days (users report 30 days to 3 months) |
/// | [`revoke_access_on_refresh`](Self::revoke_access_on_refresh) | `false` |
///
/// ```
/// use std::time::Duration;
/// use lead_intake_fake::{Config, OAuthConfig};
///
/// let config = Config::default().oauth(
///     OAuthConfig::new("my-client", "my-secret", "https://example.com/callback")
///         .access_token_lifetime(Duration::from_secs(2)),
/// );
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct OAuthConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    pub(crate) redirect_uri: String,
    pub(crate) access_lifetime: Duration,
    pub(crate) refresh_lifetime: Duration,
    pub(crate) revoke_access_on_refresh: bool,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self::new(
            "fake-client-id",
            "fake-client-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHI",
            "https://example.com/oauth",
        )
    }
}

impl OAuthConfig {
    /// An integration with these credentials and the default lifetimes.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            access_lifetime: Duration::from_secs(24 * 60 * 60),
            refresh_lifetime: Duration::from_secs(90 * 24 * 60 * 60),
            revoke_access_on_refresh: false,
        }
    }

    /// How long an access token works (24 hours by default, as Kommo's). The answer's
    /// `expires_in` is this in whole seconds, rounded up (at least 1), but the token stops
    /// working at exactly this time: a test can use half a second.
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_lifetime = lifetime;
        self
    }

    /// How long an unused refresh token works (90 days by default).
    pub fn refresh_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_lifetime = lifetime;
        self
    }

    /// Whether a refresh also revokes the access token issued with the refresh token it spends.
    /// Kommo does not document it (league/oauth2-server, which it builds on, can do either), so
    /// by default the old access token keeps working until it expires; `true` makes it answer
    /// `401` at once, the stricter case for a client to survive.
    pub fn revoke_access_on_refresh(mut self, revoke: bool) -> Self {
        self.revoke_access_on_refresh = revoke;
        self
    }

    /// The integration ID the token endpoint accepts.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The secret key it accepts.
    pub fn client_secret(&self) -> &Secret {
        &self.client_secret
    }

    /// The redirect URI registered with the integration: an `authorization_code` grant must
    /// send exactly this one.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }
}

/// What the token endpoint has done so far ([`FakeServer::oauth_stats`](crate::FakeServer::oauth_stats),
/// `GET /__admin/oauth`). Token requests answered by a fault before they were processed (a
/// `429`, a dropped connection) are not counted; one processed and then lost is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OAuthStats {
    /// Authorization codes handed out ([`FakeServer::authorization_code`](crate::FakeServer::authorization_code),
    /// `POST /__admin/oauth/code`, the program's banner).
    pub codes_issued: u64,
    /// Successful `authorization_code` grants.
    pub codes_exchanged: u64,
    /// Successful `refresh_token` grants.
    pub refreshes: u64,
    /// `refresh_token` grants with a refresh token already spent: answered `401` "Token has
    /// been revoked" (two clients refreshing with the same pair).
    pub revoked_reuses: u64,
    /// Every token request refused (`400` or `401`), the revoked reuses included.
    pub refused: u64,
    /// API requests refused (`401`) because their OAuth access token had expired or was revoked.
    pub expired_tokens_refused: u64,
    /// API requests accepted with an OAuth access token (not counting the long-lived token).
    pub authorized: u64,
    /// Calls of [`FakeServer::expire_access_tokens`](crate::FakeServer::expire_access_tokens)
    /// (`POST /__admin/oauth/expire`).
    pub forced_expiries: u64,
}

impl OAuthStats {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "codes_issued": self.codes_issued,
            "codes_exchanged": self.codes_exchanged,
            "refreshes": self.refreshes,
            "revoked_reuses": self.revoked_reuses,
            "refused": self.refused,
            "expired_tokens_refused": self.expired_tokens_refused,
            "authorized": self.authorized,
            "forced_expiries": self.forced_expiries,
        })
    }
}

struct Code {
    expires: Instant,
    used: bool,
}

struct Access {
    expires: Instant,
    revoked: bool,
}

struct Refresh {
    expires: Instant,
    used: bool,
    /// The access token issued with it.
    access: String,
}

/// What an access token is worth.
pub(crate) enum AccessCheck {
    /// Not one of the fake's OAuth tokens.
    Unknown,
    /// Valid: the request goes on as the main integration.
    Valid,
    /// Expired or revoked.
    Expired,
}

/// The token endpoint's state: codes and tokens handed out, and the counters.
pub(crate) struct OAuthState {
    rng: fastrand::Rng,
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    pub(crate) stats: OAuthStats,
}

/// One refused token request: status, title, detail and hint.
struct Refusal {
    status: StatusCode,
    title: &'static str,
    detail: &'static str,
    hint: Option<String>,
}

const INVALID_REQUEST: &str = "The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed";
const INVALID_GRANT: &str = "The provided authorization grant or refresh token is invalid, expired or revoked, does not match the redirection URI, or was issued to another client";

impl Refusal {
    fn invalid_request(status: StatusCode, hint: impl Into<String>) -> Self {
        Self {
            status,
            title: "Invalid request",
            detail: INVALID_REQUEST,
            hint: Some(hint.into()),
        }
    }

    fn missing(parameter: &str) -> Self {
        Self::invalid_request(
            StatusCode::BAD_REQUEST,
            format!("Check the `{parameter}` parameter"),
        )
    }

    fn invalid_client() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            title: "Invalid client",
            detail: "Client authentication failed",
            hint: None,
        }
    }

    fn invalid_grant(hint: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid grant",
            detail: INVALID_GRANT,
            hint: Some(hint.to_string()),
        }
    }

    fn into_reply(self) -> Reply {
        let mut body = Map::new();
        if let Some(hint) = self.hint {
            body.insert("hint".into(), Value::String(hint));
        }
        body.insert("title".into(), self.title.into());
        body.insert("type".into(), PROBLEM_TYPE.into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.detail.into());
        Reply::Problem(self.status, Value::Object(body))
    }
}

impl OAuthState {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed ^ 0x6f61_7574_685f_746b),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            stats: OAuthStats::default(),
        }
    }

    fn random(&mut self, prefix: &str) -> String {
        let mut out = String::with_capacity(prefix.len() + 40);
        out.push_str(prefix);
        for _ in 0..40 {
            out.push(char::from(b"0123456789abcdef"[self.rng.usize(..16)]));
        }
        out
    }

    /// A new single-use authorization code, valid for [`CODE_LIFETIME`].
    pub(crate) fn issue_code(&mut self) -> String {
        let now = Instant::now();
        if self.codes.len() >= KEEP {
            self.codes.retain(|_, c| !c.used && c.expires > now);
        }
        let code = self.random("def502");
        self.codes.insert(
            code.clone(),
            Code {
                expires: now + CODE_LIFETIME,
                used: false,
            },
        );
        self.stats.codes_issued += 1;
        code
    }

    /// Expires every access token now; returns how many were still valid.
    pub(crate) fn expire_all(&mut self) -> usize {
        let now = Instant::now();
        let mut expired = 0;
        for token in self.access.values_mut() {
            if !token.revoked && token.expires > now {
                expired += 1;
                token.expires = now;
            }
        }
        self.stats.forced_expiries += 1;
        expired
    }

    /// How many access tokens work now.
    pub(crate) fn valid_access_tokens(&self) -> usize {
        let now = Instant::now();
        self.access
            .values()
            .filter(|t| !t.revoked && t.expires > now)
            .count()
    }

    /// What an API request's bearer token is worth (and counts it).
    pub(crate) fn check_access(&mut self, token: &str) -> AccessCheck {
        match self.access.get(token) {
            None => AccessCheck::Unknown,
            Some(t) if !t.revoked && Instant::now() < t.expires => {
                self.stats.authorized += 1;
                AccessCheck::Valid
            }
            Some(_) => {
                self.stats.expired_tokens_refused += 1;
                AccessCheck::Expired
            }
        }
    }

    /// Whether `token` is one of the access tokens handed out (valid or not): the rate limit
    /// counts it as the main integration's.
    pub(crate) fn knows_access(&self, token: &str) -> bool {
        self.access.contains_key(token)
    }

    fn issue_pair(&mut self, config: &OAuthConfig) -> Value {
        let now = Instant::now();
        if self.access.len() >= KEEP {
            self.access.retain(|_, t| !t.revoked && t.expires > now);
        }
        if self.refresh.len() >= KEEP {
            self.refresh.retain(|_, t| !t.used && t.expires > now);
        }
        let access = self.random("fake-access-");
        let refresh = self.random("def502");
        self.access.insert(
            access.clone(),
            Access {
                expires: now + config.access_lifetime,
                revoked: false,
            },
        );
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                expires: now + config.refresh_lifetime,
                used: false,
                access: access.clone(),
            },
        );
        // Whole seconds, rounded up: a client that refreshes at `expires_in` never sends an
        // expired token because of the rounding (and the library refuses `expires_in` 0).
        let lifetime = config.access_lifetime;
        let seconds = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
        json!({
            "token_type": "Bearer",
            "expires_in": seconds.max(1),
            "access_token": access,
            "refresh_token": refresh,
        })
    }

    /// Answers a token request with its raw body and `Content-Type`.
    pub(crate) fn token_request(
        &mut self,
        config: &OAuthConfig,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        match self.grant(config, content_type, body) {
            Ok(pair) => Reply::Json(StatusCode::OK, pair),
            Err(refusal) => {
                self.stats.refused += 1;
                refusal.into_reply()
            }
        }
    }

    fn grant(
        &mut self,
        config: &OAuthConfig,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Value, Refusal> {
        let params = parameters(content_type, body);
        let param = |name: &str| {
            params
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        // league/oauth2-server's order: the grant type, the client, then the grant itself.
        let grant_type = param("grant_type");
        if !matches!(grant_type, Some("authorization_code" | "refresh_token")) {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                title: "Unsupported grant type",
                detail: "The authorization grant type is not supported by the authorization server",
                hint: Some("Check that all required parameters have been provided".to_string()),
            });
        }
        let Some(client_id) = param("client_id") else {
            return Err(Refusal::missing("client_id"));
        };
        if client_id != config.client_id
            || param("client_secret") != Some(config.client_secret.expose())
        {
            return Err(Refusal::invalid_client());
        }
        let now = Instant::now();
        if grant_type == Some("authorization_code") {
            let Some(code) = param("code") else {
                return Err(Refusal::missing("code"));
            };
            match param("redirect_uri") {
                None => return Err(Refusal::missing("redirect_uri")),
                Some(uri) if uri != config.redirect_uri => {
                    return Err(Refusal::invalid_request(
                        StatusCode::BAD_REQUEST,
                        "Invalid redirect URI",
                    ));
                }
                Some(_) => {}
            }
            let Some(entry) = self.codes.get_mut(code) else {
                return Err(Refusal::invalid_grant(
                    "Cannot decrypt the authorization code",
                ));
            };
            if entry.used {
                return Err(Refusal::invalid_grant(
                    "Authorization code has been revoked",
                ));
            }
            if now >= entry.expires {
                return Err(Refusal::invalid_grant("Authorization code has expired"));
            }
            entry.used = true;
            self.stats.codes_exchanged += 1;
            return Ok(self.issue_pair(config));
        }
        // The refresh grant: Kommo's documentation lists `redirect_uri` here too; league's
        // refresh grant does not read it, and neither does the fake.
        let Some(token) = param("refresh_token") else {
            return Err(Refusal::missing("refresh_token"));
        };
        let Some(entry) = self.refresh.get_mut(token) else {
            return Err(Refusal::invalid_request(
                StatusCode::UNAUTHORIZED,
                "Cannot decrypt the refresh token",
            ));
        };
        if entry.used {
            self.stats.revoked_reuses += 1;
            return Err(Refusal::invalid_request(
                StatusCode::UNAUTHORIZED,
                "Token has been revoked",
            ));
        }
        if now >= entry.expires {
            return Err(Refusal::invalid_request(
                StatusCode::UNAUTHORIZED,
                "Token has expired",
            ));
        }
        entry.used = true;
        let old_access = entry.access.clone();
        if config.revoke_access_on_refresh
            && let Some(access) = self.access.get_mut(&old_access)
        {
            access.revoked = true;
        }
        self.stats.refreshes += 1;
        Ok(self.issue_pair(config))
    }
}

/// The `client_id` of a token request's body, if it names one.
pub(crate) fn client_id_of(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    parameters(content_type, body).remove("client_id")
}

/// The request's parameters: a JSON object (string or number values), else a form-encoded body.
/// The `Content-Type` decides; without one, a body that starts with `{` is JSON.
fn parameters(content_type: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    let json = match media.as_deref() {
        Some(m) => m == "application/json" || m.ends_with("+json"),
        None => body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
    };
    if json {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return HashMap::new();
        };
        map.into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_form_bodies_give_the_same_parameters() {
        let json = parameters(
            Some("application/json"),
            br#"{"grant_type": "refresh_token", "client_id": 7}"#,
        );
        let form = parameters(
            Some("application/x-www-form-urlencoded"),
            b"grant_type=refresh_token&client_id=7",
        );
        assert_eq!(json, form);
        assert_eq!(json["client_id"], "7");
        assert_eq!(parameters(None, b" {\"a\": \"b\"}")["a"], "b");
        assert!(parameters(Some("application/json"), b"[1]").is_empty());
    }

    #[test]
    fn expires_in_rounds_a_fraction_of_a_second_up() {
        let mut state = OAuthState::new(0);
        let config = OAuthConfig::default().access_token_lifetime(Duration::from_millis(300));
        assert_eq!(state.issue_pair(&config)["expires_in"], 1);
        let config = config.access_token_lifetime(Duration::from_millis(2500));
        assert_eq!(state.issue_pair(&config)["expires_in"], 3);
        let config = config.access_token_lifetime(Duration::from_secs(86400));
        assert_eq!(state.issue_pair(&config)["expires_in"], 86400);
    }
}
