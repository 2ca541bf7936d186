//! Kommo OAuth 2.0: exchanging the authorization code, and keeping the access token fresh
//! ([`OAuth`]); the guide below.
//!
#![doc = include_str!("../guides/oauth.md")]

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

mod store;

use crate::answer::{AnswerError, AnswerLimits};
pub use crate::auth::{AuthError, Grant};
use crate::auth::{AuthFuture, Authorizer, Issued};
use crate::clock::now_utc;
use crate::config::ConfigError;
use crate::ratelimit::RateLimiter;
use crate::retry::RetryPolicy;
use crate::secret::{Redactions, Secret};
use store::DynStore;
pub use store::{RefreshLock, Saved, StoredTokens, TokenStore};

/// How long a refresh that failed for a passing reason (a 5xx, a timeout) is not tried again
/// while the current access token is still valid.
const REFRESH_COOLDOWN: Duration = Duration::from_secs(10);

/// The shared refresh lock's time to live by default ([`OAuth::lock_ttl`]): a lease. The
/// refreshing process renews it every third of it while its token request is in flight, and cuts
/// the request off before the lease could run out when a renewal fails; a process that dies
/// holding the lock holds it this long after its last renewal at most.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(90);

/// The longest one refresh may hold the shared refresh lock by default
/// ([`OAuth::refresh_timeout`]): its token request, attempts, back-off and `Retry-After` waits
/// included, is abandoned after it. Longer than the worst case of the default retry policy on
/// the default HTTP client is likely to reach (a token request is retried only after a `429` or a
/// refused connection).
pub const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(300);

/// How much longer than a refresh may take ([`OAuth::refresh_timeout`]) and the lock's time to
/// live a process that needs a token waits for the refresh lock before it gives up with
/// [`AuthError::Store`]: a live holder releases it within the refresh timeout, and one that died
/// holds it for the time to live after its last renewal at most.
const LOCK_WAIT_SLACK: Duration = Duration::from_secs(5);

/// How long a process whose access token is still valid for more than half the refresh margin
/// waits for the refresh lock another process holds, at most, before it goes on with its current
/// token (a refresh normally takes far less: the process then uses the new pair at once).
const LOCK_BUSY_WAIT: Duration = Duration::from_secs(1);

/// How soon such a process asks again for the refresh lock (never later than when half the
/// refresh margin is left; from then on it waits for the lock).
const LOCK_BUSY_RECHECK: Duration = Duration::from_secs(5);

/// The integration's OAuth credentials (from its settings in Kommo). `Debug` hides the secret.
#[derive(Clone, Debug)]
pub struct OAuthApp {
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
}

impl OAuthApp {
    /// The integration ID, its secret key, and the redirect URI registered with it.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
        }
    }

    /// The integration ID.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The redirect URI registered with the integration.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The secret key, for the widget token verifiers (`lead_intake::widget`).
    pub(crate) fn client_secret(&self) -> &Secret {
        &self.client_secret
    }
}

/// An access token with its refresh token. Serializes with the token values in clear (to store
/// them); `Debug` hides them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// The bearer token sent with every request.
    pub access_token: Secret,
    /// The single-use token that obtains the next pair.
    pub refresh_token: Secret,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
}

type BoxError = Box<dyn StdError + Send + Sync>;
type CallbackFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type Callback = Arc<dyn Fn(TokenPair) -> CallbackFuture + Send + Sync>;

/// OAuth settings for a Kommo client: the integration, the current tokens, and the callback
/// that stores each new pair. Give it to `kommo::ClientBuilder::oauth`.
pub struct OAuth {
    pub(crate) app: OAuthApp,
    pub(crate) tokens: TokenPair,
    pub(crate) callback: Callback,
    pub(crate) margin: Duration,
    pub(crate) shared: Option<SharedTokens>,
}

/// The token store of an [`OAuth`] made by [`OAuth::from_store`].
#[derive(Clone)]
pub(crate) struct SharedTokens {
    store: Arc<dyn DynStore>,
    /// The store's version of the pair the session starts with.
    version: u64,
    lock_ttl: Duration,
    refresh_timeout: Duration,
}

/// A user's `on_refresh`, boxed.
fn boxed_callback<F, Fut, E>(on_refresh: F) -> Callback
where
    F: Fn(TokenPair) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    Arc::new(move |pair| {
        let fut = on_refresh(pair);
        Box::pin(async move { fut.await.map_err(Into::into) })
    })
}

/// The callback of an [`OAuth`] made from a store without [`OAuth::on_refresh`]: the store
/// already holds every new pair.
fn no_callback() -> Callback {
    Arc::new(|_pair| Box::pin(async { Ok(()) }))
}

/// An [`AuthError::Store`] with a message of ours.
fn store_error(message: &'static str) -> AuthError {
    AuthError::Store(Arc::new(StoreProblem(message)))
}

/// A token store failure found by the session itself (an empty store, a lock wait that timed out).
#[derive(Debug)]
struct StoreProblem(&'static str);

impl fmt::Display for StoreProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl StdError for StoreProblem {}

impl fmt::Debug for OAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("app", &self.app)
            .field("tokens", &self.tokens)
            .field("refresh_margin", &self.margin)
            .field("token_store", &self.shared.is_some())
            .field(
                "lock_ttl",
                &self.shared.as_ref().map(|shared| shared.lock_ttl),
            )
            .field(
                "refresh_timeout",
                &self.shared.as_ref().map(|shared| shared.refresh_timeout),
            )
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// `on_refresh` receives each new token pair and must store it before it is used; an error
    /// from it fails the request with [`AuthError::Callback`].
    pub fn new<F, Fut, E>(app: OAuthApp, tokens: TokenPair, on_refresh: F) -> Self
    where
        F: Fn(TokenPair) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self {
            app,
            tokens,
            callback: boxed_callback(on_refresh),
            margin: Duration::from_secs(300),
            shared: None,
        }
    }

    /// OAuth for one of several processes that share a token pair through `store` (e.g.
    /// `lead_intake::shared::RedisTokenStore`, feature `redis`): loads the stored pair now.
    ///
    /// Refreshes then follow [`TokenStore`]'s protocol: under the store's refresh lock, after
    /// reading the store again, so a refresh token is sent at most once across every process; a
    /// process that finds a pair refreshed elsewhere uses it, and after a 401 a process first
    /// reads the store for a newer pair before refreshing. [`on_refresh`](Self::on_refresh),
    /// when set, runs once per refresh, in the process that refreshed.
    ///
    /// Fails with [`AuthError::Store`] when the store cannot be read or holds no pair (store the
    /// first one with [`store_tokens`]).
    pub async fn from_store<S>(app: OAuthApp, store: S) -> Result<Self, AuthError>
    where
        S: TokenStore + 'static,
    {
        let store: Arc<dyn DynStore> = Arc::new(store);
        let stored = store
            .load()
            .await
            .map_err(AuthError::Store)?
            .ok_or_else(|| {
                store_error(
                    "the token store holds no token pair (store one with oauth::store_tokens)",
                )
            })?;
        let version = stored.version();
        Ok(Self {
            app,
            tokens: stored.into_pair(),
            callback: no_callback(),
            margin: Duration::from_secs(300),
            shared: Some(SharedTokens {
                store,
                version,
                lock_ttl: DEFAULT_LOCK_TTL,
                refresh_timeout: DEFAULT_REFRESH_TIMEOUT,
            }),
        })
    }

    /// Sets the callback that receives each new token pair (see [`OAuth::new`]). With a token
    /// store it runs only in the process that refreshed, after the store holds the new pair.
    pub fn on_refresh<F, Fut, E>(mut self, on_refresh: F) -> Self
    where
        F: Fn(TokenPair) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.callback = boxed_callback(on_refresh);
        self
    }

    /// With a token store: the time to live of the store's refresh lock, a lease
    /// ([`DEFAULT_LOCK_TTL`], 90 s, by default). The refreshing process renews it
    /// ([`TokenStore::extend`]) every third of it while its token request is in flight, so a slow
    /// token endpoint (`429`s with `Retry-After`, a slow answer) never outlasts it; when a renewal
    /// fails (the store unreachable) or finds the lock lost, the token request is cut off before
    /// the lease could run out ([`AuthError::RefreshAbandoned`]), a tenth of it early. A process
    /// that dies holding the lock holds it this long after its last renewal; the processes that
    /// need a token wait for it. Shorter: a dead process blocks the others for less time, at the
    /// cost of more renewals (and a token request cut off sooner when the store is unreachable).
    /// No effect without a store.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        if let Some(shared) = &mut self.shared {
            shared.lock_ttl = ttl.max(Duration::from_millis(1));
        }
        self
    }

    /// With a token store: the longest one refresh may hold the store's refresh lock
    /// ([`DEFAULT_REFRESH_TIMEOUT`], 5 minutes, by default). Its token request, attempts,
    /// back-off and `Retry-After` waits included, is abandoned after it
    /// ([`AuthError::RefreshAbandoned`]). A process whose access token has expired (or was
    /// answered 401) waits for another's refresh this long, plus the lock's time to live and
    /// 5 s, before it gives up with [`AuthError::Store`]; one whose token is still valid does
    /// not wait (it uses its token, and looks for the new pair a second later). No effect without
    /// a store.
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        if let Some(shared) = &mut self.shared {
            shared.refresh_timeout = timeout;
        }
        self
    }

    /// How long before expiry the access token is refreshed (default 5 minutes).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }
}

/// Exchanges the authorization code from the installation redirect for the first token pair,
/// at `{base_url}/oauth2/access_token` (the account's host, e.g. `https://mycompany.kommo.com`).
pub async fn exchange_code(
    base_url: &str,
    app: &OAuthApp,
    code: &str,
) -> Result<TokenPair, AuthError> {
    let http = crate::config::http_client().map_err(|e| AuthError::Config(Arc::new(e)))?;
    exchange_code_with_client(&http, base_url, app, code).await
}

/// Like [`exchange_code`], with your own `reqwest::Client`.
pub async fn exchange_code_with_client(
    http: &reqwest::Client,
    base_url: &str,
    app: &OAuthApp,
    code: &str,
) -> Result<TokenPair, AuthError> {
    let base_url =
        crate::config::base_url(base_url, false).map_err(|e| AuthError::Config(Arc::new(e)))?;
    if code.trim().is_empty() {
        return Err(AuthError::Config(Arc::new(
            ConfigError::InvalidCredential {
                what: "authorization code",
            },
        )));
    }
    let body = serde_json::json!({
        "client_id": app.client_id,
        "client_secret": app.client_secret.expose(),
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": app.redirect_uri,
    });
    let sent = Redactions::new(vec![app.client_secret.clone(), Secret::new(code)]);
    tracing::debug!(
        client_id = app.client_id,
        "exchanging the authorization code"
    );
    let channel = Channel {
        http,
        limiter: None,
        retry: &RetryPolicy::default(),
        limits: AnswerLimits::default(),
    };
    let result = token_request(
        &channel,
        &token_url(&base_url),
        &body,
        Grant::AuthorizationCode,
        &sent,
    )
    .await;
    match &result {
        Ok(pair) => tracing::info!(
            client_id = app.client_id,
            expires_at = %pair.expires_at,
            "authorization code exchanged for a token pair"
        ),
        Err(e) => tracing::warn!(
            client_id = app.client_id,
            error = %e,
            "the authorization code exchange failed"
        ),
    }
    result
}

/// Stores `tokens` in `store` as the current pair, replacing whatever it holds (under its refresh
/// lock, so no refresh in another process is overwritten mid-way): after the integration is
/// installed or authorized again ([`exchange_code`]), so that [`OAuth::from_store`] finds it.
/// Processes whose session was refused (the old refresh token revoked) pick the new pair up on
/// their next request.
pub async fn store_tokens<S>(store: &S, tokens: TokenPair) -> Result<StoredTokens, AuthError>
where
    S: TokenStore + ?Sized,
{
    let erase = |e: S::Error| AuthError::Store(Arc::new(e));
    let lock = tokio::time::timeout(
        DEFAULT_REFRESH_TIMEOUT + DEFAULT_LOCK_TTL + LOCK_WAIT_SLACK,
        store.lock(DEFAULT_LOCK_TTL),
    )
    .await
    .map_err(|_| store_error("timed out waiting for the token store's refresh lock"))?
    .map_err(erase)?;
    let result = async {
        // Under the lock only our own save, or that of a refresh whose lock ran out after its
        // token answer, can change the pair; a second try covers either.
        for _ in 0..2 {
            let current = store.load().await.map_err(erase)?;
            match store
                .save_if_current(&lock, current.as_ref(), tokens.clone())
                .await
                .map_err(erase)?
            {
                Saved::Stored(stored) => return Ok(stored),
                Saved::Changed(_) => continue,
                Saved::LockLost => break,
            }
        }
        Err(store_error(
            "the token pair could not be stored: the refresh lock ran out or the store kept changing",
        ))
    }
    .await;
    if let Err(e) = store.release(lock).await {
        tracing::warn!(error = %e, "the token store's refresh lock could not be released; it ends with its time to live");
    }
    result
}

pub(crate) fn token_url(base_url: &str) -> String {
    format!("{base_url}/oauth2/access_token")
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: String,
    expires_in: i64,
}

/// The fields of an error answer of the token endpoint that tell Kommo's refusal of a grant
/// from anything else (see [`refusal`]).
#[derive(Deserialize, Default)]
struct TokenProblem {
    /// Kommo's problem document (league/oauth2-server's error, as a problem+json).
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    title: Option<serde_json::Value>,
    detail: Option<serde_json::Value>,
    hint: Option<serde_json::Value>,
    /// RFC 6749 §5.2's error code (`invalid_grant`), which OAuth servers send.
    error: Option<serde_json::Value>,
    error_description: Option<serde_json::Value>,
}

/// The error codes of RFC 6749 §5.2: the authorization server's own refusal of a token request.
const OAUTH_ERROR_CODES: [&str; 6] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
];

/// Kommo's refusal of a grant, read from a 400 or 401 of the token endpoint: its OAuth problem
/// document (a `hint`, or the `OAuthProblemJson` type; `fake/src/oauth.rs` and
/// `../shared/notes/kommo-api.md` show its shape) or an RFC 6749 error code (`invalid_grant`).
/// `None` for anything else: an nginx or load balancer page, an empty body, JSON without those
/// fields. Those do not say the token is spent, so they do not end the session.
///
/// Returns the problem's title, detail and hint.
#[allow(clippy::type_complexity)]
fn refusal(text: &str) -> Option<(Option<String>, Option<String>, Option<String>)> {
    let problem: TokenProblem = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => serde_json::from_value(value).ok()?,
        _ => return None,
    };
    let string = |value: &Option<serde_json::Value>| match value {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    };
    let (title, detail, hint) = (
        string(&problem.title),
        string(&problem.detail),
        string(&problem.hint),
    );
    let kommo_problem = hint.is_some()
        || string(&problem.kind).is_some_and(|kind| kind.ends_with("/OAuthProblemJson"));
    if kommo_problem {
        return Some((title, detail, hint));
    }
    let code = string(&problem.error)?;
    if !OAUTH_ERROR_CODES.contains(&code.as_str()) {
        return None;
    }
    Some((
        Some(code),
        string(&problem.error_description).or(detail),
        None,
    ))
}

/// How a token request is sent: the HTTP client, the rate limiter, the retry policy and the
/// bounds of the answer's body, as the client's other requests are.
#[derive(Clone, Copy)]
struct Channel<'a> {
    http: &'a reqwest::Client,
    limiter: Option<&'a RateLimiter>,
    retry: &'a RetryPolicy,
    limits: AnswerLimits,
}

/// POSTs a grant to the token endpoint (through the rate limiter; only a 429 or a refused
/// connection is retried, since a grant that reached the server is spent). `sent` are the
/// secrets in the request: an error answer that echoes them loses them.
async fn token_request(
    channel: &Channel<'_>,
    url: &str,
    body: &serde_json::Value,
    grant: Grant,
    sent: &Redactions,
) -> Result<TokenPair, AuthError> {
    let Channel {
        http,
        limiter,
        retry,
        limits,
    } = *channel;
    let request = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .json(body)
        .build()
        .map_err(|e| AuthError::Transport(Arc::new(e)))?;
    let (response, _attempts) = crate::transport::send(http, request, limiter, retry, limits).await;
    let response = response
        .map_err(AuthError::RateLimiterUnavailable)?
        .map_err(|e| AuthError::Transport(Arc::new(e)))?;
    let status = response.status();
    // Read through the client's bounded reader (`transport::bounded`): an answer over the limit
    // or too slow is `AuthError::Answer`, and at most the limit is held.
    let bytes = response
        .bytes()
        .await
        .map_err(|e| match AnswerError::find(&e) {
            Some(answer) => AuthError::Answer(answer.clone()),
            None => AuthError::Transport(Arc::new(e)),
        })?;
    read_token_answer(status, &bytes, grant, sent)
}

/// The longest token lifetime taken as given: ten years. A longer `expires_in` (or a
/// `TokenPair::expires_at` further away) is read as this, so the client refreshes in ten years
/// rather than overflowing a clock; Kommo's access tokens last a day.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Reads the token endpoint's answer: a new pair on a 2xx, else the typed error. `sent` are the
/// secrets of the request, removed from any error text.
pub(crate) fn read_token_answer(
    status: StatusCode,
    bytes: &[u8],
    grant: Grant,
    sent: &Redactions,
) -> Result<TokenPair, AuthError> {
    read_token_answer_unredacted(status, bytes, grant, sent).map_err(|e| e.redacted(sent))
}

/// [`read_token_answer`] before the last redaction.
fn read_token_answer_unredacted(
    status: StatusCode,
    bytes: &[u8],
    grant: Grant,
    sent: &Redactions,
) -> Result<TokenPair, AuthError> {
    if status.is_success() {
        // serde's messages quote the values they refuse, and this body holds new tokens: say
        // only where it is wrong.
        let answer: TokenAnswer = serde_json::from_slice(bytes)
            .map_err(|e| AuthError::InvalidTokenResponse(token_answer_problem(bytes, &e)))?;
        if answer.access_token.trim().is_empty() || answer.refresh_token.trim().is_empty() {
            return Err(AuthError::InvalidTokenResponse(
                "a token is empty".to_string(),
            ));
        }
        if HeaderValue::from_str(&format!("Bearer {}", answer.access_token)).is_err() {
            return Err(AuthError::InvalidTokenResponse(
                "the access token cannot be sent in an HTTP header".to_string(),
            ));
        }
        if answer.expires_in <= 0 {
            return Err(AuthError::InvalidTokenResponse(format!(
                "expires_in is {}",
                answer.expires_in
            )));
        }
        return Ok(TokenPair {
            access_token: Secret::new(answer.access_token),
            refresh_token: Secret::new(answer.refresh_token),
            expires_at: expires_at(now_utc(), answer.expires_in),
        });
    }
    // Only Kommo's own refusal says the grant is spent; a gateway's 400 or 401 page does not
    // (issue 20 §4), and is a passing failure like a 5xx. Its fields are redacted once decoded
    // (by `read_token_answer`), and the body an error keeps is cut and redacted first.
    if (status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED)
        && let Some((title, detail, hint)) = refusal(&String::from_utf8_lossy(bytes))
    {
        return Err(AuthError::Rejected {
            grant,
            status,
            title,
            detail,
            hint,
        });
    }
    let kept = sent.keep(bytes, crate::transport::BODY_LIMIT);
    Err(AuthError::TokenEndpoint {
        status,
        body: crate::text::excerpt(&String::from_utf8_lossy(&kept)),
    })
}

/// `now` plus `expires_in` seconds, at most [`MAX_LIFETIME`] away (never a panic, whatever the
/// server says).
fn expires_at(now: DateTime<Utc>, expires_in: i64) -> DateTime<Utc> {
    let max = MAX_LIFETIME.as_secs() as i64;
    if expires_in > max {
        tracing::warn!(
            expires_in,
            max,
            "the token endpoint's expires_in is longer than the client takes; it will refresh sooner"
        );
    }
    let seconds = expires_in.clamp(0, max);
    chrono::TimeDelta::try_seconds(seconds)
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(now)
}

/// Why a 2xx token answer did not decode, without quoting any value of it.
fn token_answer_problem(bytes: &[u8], error: &serde_json::Error) -> String {
    let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice::<serde_json::Value>(bytes)
    else {
        return format!(
            "not a JSON object (line {}, column {})",
            error.line(),
            error.column()
        );
    };
    for field in ["access_token", "refresh_token"] {
        match answer.get(field) {
            None => return format!("`{field}` is missing"),
            Some(serde_json::Value::String(_)) => {}
            Some(_) => return format!("`{field}` is not a string"),
        }
    }
    match answer.get("expires_in") {
        None => "`expires_in` is missing".to_string(),
        Some(_) => "`expires_in` is not an integer number of seconds".to_string(),
    }
}

/// The live OAuth state of a client, shared by its clones.
pub(crate) struct Session {
    token_url: String,
    app: OAuthApp,
    http: reqwest::Client,
    limiter: Option<RateLimiter>,
    retry: RetryPolicy,
    limits: AnswerLimits,
    callback: Callback,
    margin: Duration,
    /// The store shared with other processes, if any.
    shared: Option<SharedTokens>,
    state: tokio::sync::Mutex<State>,
    /// Every secret of the session (client secret, current, pending and previous tokens), for
    /// responses to carry (see [`Redactions`]). Behind its own lock: a refresh in progress
    /// holds `state`, and the answers of other requests must not wait for it.
    redactions: std::sync::Mutex<Redactions>,
}

struct State {
    tokens: TokenPair,
    header: HeaderValue,
    /// When to refresh (expiry minus the margin), on tokio's clock.
    refresh_at: Instant,
    /// When the access token expires, on tokio's clock.
    expires: Instant,
    /// Bumped on every new token, so a 401 can tell whether someone already refreshed.
    generation: u64,
    /// A refreshed pair the callback has not accepted yet, with its version in the store.
    pending: Option<(TokenPair, Option<u64>)>,
    /// With a store: the store's version of `tokens` (`None` when `tokens` is a pair this
    /// process refreshed but could not store; see `unsaved`).
    version: Option<u64>,
    /// With a store: the stored pair that `tokens` was refreshed from, when storing `tokens`
    /// failed. The next refresh under the lock stores `tokens` first, if the store still holds
    /// this pair, since its refresh token is spent.
    unsaved: Option<StoredTokens>,
    /// The refresh token was refused: fail fast.
    dead: Option<AuthError>,
    /// No refresh attempt before this (after a passing failure).
    cooldown_until: Option<Instant>,
}

fn bearer(token: &Secret) -> Result<HeaderValue, ConfigError> {
    crate::config::secret_header("Bearer ", token, "access token")
}

/// When to refresh and when the token expires, on tokio's clock. An `expires_at` more than
/// [`MAX_LIFETIME`] away counts as that far (a caller's `DateTime::MAX_UTC` is 260,000 years
/// away), as a token answer's `expires_in` does.
pub(crate) fn deadlines(expires_at: DateTime<Utc>, margin: Duration) -> (Instant, Instant) {
    let now = Instant::now();
    let left = expires_at
        .signed_duration_since(now_utc())
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(MAX_LIFETIME);
    (now + left.saturating_sub(margin), now + left)
}

impl Session {
    pub(crate) fn new(
        oauth: OAuth,
        base_url: &str,
        http: reqwest::Client,
        limiter: Option<RateLimiter>,
        retry: RetryPolicy,
        limits: AnswerLimits,
    ) -> Result<Self, ConfigError> {
        if oauth.tokens.refresh_token.expose().trim().is_empty() {
            return Err(ConfigError::InvalidCredential {
                what: "refresh token",
            });
        }
        let header = bearer(&oauth.tokens.access_token)?;
        let (refresh_at, expires) = deadlines(oauth.tokens.expires_at, oauth.margin);
        let redactions = std::sync::Mutex::new(Redactions::new(vec![
            oauth.app.client_secret.clone(),
            oauth.tokens.access_token.clone(),
            oauth.tokens.refresh_token.clone(),
        ]));
        let version = oauth.shared.as_ref().map(|shared| shared.version);
        Ok(Self {
            redactions,
            token_url: token_url(base_url),
            app: oauth.app,
            http,
            limiter,
            retry,
            limits,
            callback: oauth.callback,
            margin: oauth.margin,
            shared: oauth.shared,
            state: tokio::sync::Mutex::new(State {
                tokens: oauth.tokens,
                header,
                refresh_at,
                expires,
                generation: 0,
                pending: None,
                version,
                unsaved: None,
                dead: None,
                cooldown_until: None,
            }),
        })
    }

    /// The current token pair (after any refresh).
    pub(crate) async fn tokens(&self) -> TokenPair {
        self.state.lock().await.tokens.clone()
    }

    /// The session's secrets, to remove from error bodies.
    pub(crate) fn redactions(&self) -> Redactions {
        self.redactions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Adds a new pair to the secrets to remove, keeping the client secret and the two pairs
    /// before it (a server may echo a token that was just replaced).
    fn remember(&self, pair: &TokenPair) {
        let mut redactions = self
            .redactions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut secrets: Vec<Secret> = redactions.0.iter().cloned().collect();
        secrets.extend([pair.access_token.clone(), pair.refresh_token.clone()]);
        // The client secret first, then at most three pairs.
        let keep_from = secrets.len().saturating_sub(6).max(1);
        let mut kept = vec![secrets[0].clone()];
        kept.extend(secrets.drain(keep_from..));
        *redactions = Redactions::new(kept);
    }

    /// The Authorization header to send now, refreshing first when the token is about to
    /// expire, and the generation it belongs to.
    pub(crate) async fn authorization(&self) -> Result<(HeaderValue, u64), AuthError> {
        let mut state = self.state.lock().await;
        if state.dead.is_some() {
            self.revive(&mut state).await;
        }
        if let Some(dead) = &state.dead {
            tracing::debug!(
                "not refreshing: the refresh token was refused earlier; the integration must be authorized again"
            );
            return Err(dead.clone());
        }
        if let Some((pair, version)) = state.pending.take() {
            self.adopt(&mut state, pair, version).await?;
        }
        let now = Instant::now();
        let cooling = state.cooldown_until.is_some_and(|until| now < until);
        if now >= state.refresh_at && !(cooling && now < state.expires) {
            let reason = if now < state.expires {
                "the access token expires soon"
            } else {
                "the access token has expired"
            };
            // A process whose token still works for more than half the margin does not wait
            // long for another's refresh: it goes on with its token, and asks again a little
            // later. With less left, it waits (a request can queue in the rate limiter after
            // its token was put on it).
            let comfort = state
                .expires
                .saturating_duration_since(now)
                .saturating_sub(self.margin / 2);
            let patience =
                (!comfort.is_zero()).then(|| (LOCK_BUSY_WAIT.min(comfort), now + comfort));
            match self.refresh(&mut state, reason, patience).await {
                Ok(()) => {}
                // The current token still works: use it, and try again a little later.
                Err(e) if e.is_transient() && now < state.expires => {
                    tracing::debug!(
                        cooldown_s = REFRESH_COOLDOWN.as_secs(),
                        "the refresh failed for a passing reason; the current access token is still valid and is used meanwhile"
                    );
                    state.cooldown_until = Some(now + REFRESH_COOLDOWN);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((state.header.clone(), state.generation))
    }

    /// After a 401 to a request sent with token `generation`: refresh, unless another request
    /// already did. Ok means "send it again".
    pub(crate) async fn unauthorized(&self, generation: u64) -> Result<(), AuthError> {
        let mut state = self.state.lock().await;
        if state.dead.is_some() {
            self.revive(&mut state).await;
        }
        if let Some(dead) = &state.dead {
            return Err(dead.clone());
        }
        if state.generation != generation || state.pending.is_some() {
            tracing::debug!("another request already refreshed the access token");
            return Ok(());
        }
        // Another process may have refreshed: its pair is in the store, no lock needed to read it.
        if let Some(shared) = &self.shared
            && state.unsaved.is_none()
        {
            match shared.store.load().await {
                Ok(Some(stored)) if Some(stored.version()) != state.version => {
                    tracing::debug!(
                        version = stored.version(),
                        "another process refreshed the access token: using its pair from the token store"
                    );
                    self.take_stored(&mut state, stored)?;
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the token store could not be read after a 401");
                    return Err(AuthError::Store(e));
                }
            }
        }
        self.refresh(&mut state, "the API answered 401", None).await
    }

    /// With a store, after the refresh token was refused: a pair stored since (the integration
    /// authorized again, in any process) brings the session back.
    async fn revive(&self, state: &mut State) {
        let Some(shared) = &self.shared else { return };
        match shared.store.load().await {
            Ok(Some(stored)) if Some(stored.version()) != state.version => {
                tracing::info!(
                    version = stored.version(),
                    "a new token pair is in the token store: the session works again"
                );
                if self.take_stored(state, stored).is_ok() {
                    state.dead = None;
                    state.unsaved = None;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "the token store could not be read for a new token pair")
            }
        }
    }

    /// Uses a pair another process refreshed and stored (no callback: it ran there).
    fn take_stored(&self, state: &mut State, stored: StoredTokens) -> Result<(), AuthError> {
        let version = stored.version();
        let pair = stored.into_pair();
        let header = bearer(&pair.access_token).map_err(|e| AuthError::Config(Arc::new(e)))?;
        self.remember(&pair);
        self.use_pair(state, pair, header, Some(version));
        Ok(())
    }

    /// Makes `pair` the session's tokens (a new generation); `version` is its place in the
    /// store, when it is stored.
    fn use_pair(
        &self,
        state: &mut State,
        pair: TokenPair,
        header: HeaderValue,
        version: Option<u64>,
    ) {
        let (refresh_at, expires) = deadlines(pair.expires_at, self.margin);
        state.tokens = pair;
        state.header = header;
        state.refresh_at = refresh_at;
        state.expires = expires;
        state.generation += 1;
        if self.shared.is_some() && version.is_some() {
            state.version = version;
        }
        state.cooldown_until = None;
    }

    /// Refreshes (with a store: under its lock). `patience` is `None` when the current token
    /// must be replaced: wait for the store's lock (as long as another process's refresh may
    /// take). Otherwise it is how long to wait for the lock, and until when the current token
    /// may be used: a lock still held after that wait means "another process is refreshing";
    /// the current token is used meanwhile, and the lock asked for again after
    /// [`LOCK_BUSY_RECHECK`] (no later than that instant).
    async fn refresh(
        &self,
        state: &mut State,
        reason: &'static str,
        patience: Option<(Duration, Instant)>,
    ) -> Result<(), AuthError> {
        let Some(shared) = &self.shared else {
            return match self.token_refresh(state, reason).await {
                Ok(pair) => self.adopt(state, pair, None).await,
                Err(e) => Err(self.refresh_failed(state, e)),
            };
        };
        let lock = if let Some((wait, usable_until)) = patience {
            match lock_within(shared, wait).await {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    tracing::debug!(
                        "another process is refreshing the access token; the current one is still valid and used meanwhile"
                    );
                    let recheck = (Instant::now() + LOCK_BUSY_RECHECK).min(usable_until);
                    state.cooldown_until = Some(recheck);
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the token store's refresh lock could not be taken");
                    return Err(AuthError::Store(e));
                }
            }
        } else {
            // A live holder releases within its refresh timeout; a dead one's lease ends within
            // the time to live after its last renewal.
            let bound = shared
                .refresh_timeout
                .saturating_add(shared.lock_ttl)
                .saturating_add(LOCK_WAIT_SLACK);
            match tokio::time::timeout(bound, shared.store.lock(shared.lock_ttl)).await {
                Ok(Ok(lock)) => lock,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the token store's refresh lock could not be taken");
                    return Err(AuthError::Store(e));
                }
                Err(_) => {
                    tracing::warn!(
                        wait_s = bound.as_secs_f64(),
                        "timed out waiting for the token store's refresh lock"
                    );
                    return Err(store_error(
                        "timed out waiting for the token store's refresh lock",
                    ));
                }
            }
        };
        let taken = Instant::now();
        tracing::debug!(fence = lock.fence(), "took the token store's refresh lock");
        let result = self
            .refresh_locked(state, reason, shared, &lock, taken)
            .await;
        match shared.store.release(lock).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "the token store's refresh lock had run out before the refresh ended (after its token request: storing the new pair or the on_refresh callback took longer than OAuth::lock_ttl)"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "the token store's refresh lock could not be released; it ends with its time to live"
            ),
        }
        result
    }

    /// The refresh protocol of [`TokenStore`], under its lock: read the store again, use a pair
    /// refreshed elsewhere, else refresh and store the new pair only over the one refreshed from.
    async fn refresh_locked(
        &self,
        state: &mut State,
        reason: &'static str,
        shared: &SharedTokens,
        lock: &RefreshLock,
        taken: Instant,
    ) -> Result<(), AuthError> {
        let current = shared
            .store
            .load()
            .await
            .map_err(AuthError::Store)?
            .ok_or_else(|| store_error("the token store holds no token pair"))?;
        if let Some(from) = state.unsaved.clone() {
            // This process refreshed from `from` earlier and could not store the result.
            if current.version() == from.version() {
                match shared
                    .store
                    .save_if_current(lock, Some(&from), state.tokens.clone())
                    .await
                {
                    Ok(Saved::Stored(stored)) => {
                        tracing::info!(
                            version = stored.version(),
                            "stored the token pair this process refreshed earlier"
                        );
                        state.version = Some(stored.version());
                        state.unsaved = None;
                        if Instant::now() < state.refresh_at {
                            return Ok(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(AuthError::Store(e)),
                }
            } else {
                state.unsaved = None;
            }
        }
        let current = if state.version.is_some() && Some(current.version()) == state.version {
            current
        } else {
            if state.unsaved.is_none() {
                tracing::debug!(
                    version = current.version(),
                    "another process refreshed the access token: using its pair from the token store"
                );
                self.take_stored(state, current.clone())?;
                let now = Instant::now();
                // Its pair is fresh, or the reason to refresh was a 401 to the old token.
                if now < state.refresh_at {
                    return Ok(());
                }
            }
            current
        };
        match self
            .token_refresh_leased(state, reason, shared, lock, taken)
            .await
        {
            Ok(pair) => match shared
                .store
                .save_if_current(lock, Some(&current), pair.clone())
                .await
            {
                Ok(Saved::Stored(stored)) => {
                    tracing::debug!(
                        version = stored.version(),
                        "the new token pair is in the token store"
                    );
                    self.adopt(state, pair, Some(stored.version())).await
                }
                Ok(Saved::Changed(Some(newer))) => {
                    // Not under a held lock; the newer pair is what every other process uses.
                    tracing::warn!(
                        version = newer.version(),
                        "the token store changed during the refresh: using its newer pair"
                    );
                    self.take_stored(state, newer)
                }
                outcome => {
                    match outcome {
                        Ok(Saved::LockLost) => tracing::warn!(
                            "the token store refused the new pair: the refresh lock ran out before it was stored; the new pair is used in this process and stored on its next refresh"
                        ),
                        Err(e) => tracing::warn!(
                            error = %e,
                            "the new token pair could not be stored: it is used in this process and stored on its next refresh"
                        ),
                        _ => tracing::warn!(
                            "the token store was emptied during the refresh: the new pair is used in this process only"
                        ),
                    }
                    state.unsaved = Some(current);
                    self.adopt(state, pair, None).await
                }
            },
            Err(e @ AuthError::Rejected { .. }) => {
                // A pair stored meanwhile (an authorization again) makes the refusal moot.
                if let Ok(Some(stored)) = shared.store.load().await
                    && stored.version() != current.version()
                {
                    self.take_stored(state, stored)?;
                    state.unsaved = None;
                    return Ok(());
                }
                Err(self.refresh_failed(state, e))
            }
            Err(e) => Err(self.refresh_failed(state, e)),
        }
    }

    /// [`Session::token_refresh`] under the store's lock, a lease: renewed every third of its
    /// time to live while the token request is in flight; the request (its attempts, back-off
    /// and waits) is cut off before the lease could run out when a renewal fails or finds the
    /// lock lost, or when the refresh has held the lock for [`OAuth::refresh_timeout`].
    async fn token_refresh_leased(
        &self,
        state: &State,
        reason: &'static str,
        shared: &SharedTokens,
        lock: &RefreshLock,
        taken: Instant,
    ) -> Result<TokenPair, AuthError> {
        let request = std::pin::pin!(self.token_refresh(state, reason));
        let lease = std::pin::pin!(keep_lease(shared, lock, taken));
        match futures_util::future::select(request, lease).await {
            futures_util::future::Either::Left((result, _)) => result,
            futures_util::future::Either::Right((abandoned, _)) => {
                tracing::warn!(
                    client_id = self.app.client_id,
                    error = %abandoned,
                    "the token request was cut off before the refresh lock could run out"
                );
                Err(abandoned)
            }
        }
    }

    /// Sends the refresh grant with the session's refresh token; the new pair's secrets join
    /// the redactions.
    async fn token_refresh(
        &self,
        state: &State,
        reason: &'static str,
    ) -> Result<TokenPair, AuthError> {
        tracing::debug!(
            client_id = self.app.client_id,
            reason,
            "refreshing the access token"
        );
        let body = serde_json::json!({
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret.expose(),
            "grant_type": "refresh_token",
            "refresh_token": state.tokens.refresh_token.expose(),
            "redirect_uri": self.app.redirect_uri,
        });
        let channel = Channel {
            http: &self.http,
            limiter: self.limiter.as_ref(),
            retry: &self.retry,
            limits: self.limits,
        };
        let pair = token_request(
            &channel,
            &self.token_url,
            &body,
            Grant::RefreshToken,
            &self.redactions(),
        )
        .await;
        crate::metrics::token_refresh(
            pair.is_ok(),
            matches!(pair, Err(AuthError::Rejected { .. })),
        );
        let pair = pair?;
        self.remember(&pair);
        tracing::info!(
            client_id = self.app.client_id,
            expires_at = %pair.expires_at,
            "access token refreshed"
        );
        Ok(pair)
    }

    /// Logs a failed refresh; a refused refresh token makes every later request fail fast.
    fn refresh_failed(&self, state: &mut State, e: AuthError) -> AuthError {
        if let AuthError::Rejected { .. } = e {
            tracing::error!(
                client_id = self.app.client_id,
                error = %e,
                "the refresh token was refused: every request fails until the integration is authorized again"
            );
            state.dead = Some(e.clone());
        } else {
            tracing::warn!(
                client_id = self.app.client_id,
                error = %e,
                "the access token could not be refreshed"
            );
        }
        e
    }

    /// Hands a new pair to the callback, and uses it only if the callback succeeds.
    async fn adopt(
        &self,
        state: &mut State,
        pair: TokenPair,
        version: Option<u64>,
    ) -> Result<(), AuthError> {
        let header = match bearer(&pair.access_token) {
            Ok(header) => header,
            Err(e) => return Err(AuthError::Config(Arc::new(e))),
        };
        if let Err(e) = (self.callback)(pair.clone()).await {
            let e = without_secrets(e, &self.redactions());
            tracing::warn!(
                error = %e,
                "the on_refresh callback failed to store the new tokens; they are kept in memory and offered again on the next request"
            );
            state.pending = Some((pair, version));
            return Err(AuthError::Callback(e));
        }
        tracing::debug!("the new tokens were stored by the callback and are in use");
        self.use_pair(state, pair, header, version);
        Ok(())
    }
}

/// Takes the store's refresh lock if it is free within `wait`: tries now, then as
/// [`TokenStore::lock`] does, never cancelling a try in flight (a try cancelled just as it took
/// the lock would leave it held for its time to live). `None`: still held by another process.
async fn lock_within(
    shared: &SharedTokens,
    wait: Duration,
) -> Result<Option<RefreshLock>, store::StoreError> {
    let deadline = Instant::now() + wait;
    let mut pause = store::LOCK_BACKOFF_MIN;
    loop {
        if let Some(lock) = shared.store.try_lock(shared.lock_ttl).await? {
            return Ok(Some(lock));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep_until((now + pause).min(deadline)).await;
        pause = (pause * 2).min(store::LOCK_BACKOFF_MAX);
    }
}

/// Keeps the refresh lock `lock` (taken at `taken`) while a token request is in flight: renews
/// it every third of its time to live, and returns the error to abandon the request with, a
/// tenth of the time to live before the lease could run out, once it can no longer be confirmed
/// (a renewal failed and none succeeded since, or the lock was lost), or when the refresh has
/// held the lock for its refresh timeout. Never returns while the lease holds.
///
/// A lease is counted from the moment its command was sent (the store counts from when it got
/// it, later), and the first from when the lock was had: the tenth covers that round trip.
async fn keep_lease(shared: &SharedTokens, lock: &RefreshLock, taken: Instant) -> AuthError {
    let ttl = shared.lock_ttl;
    let early = ttl / 10;
    let limit = taken + shared.refresh_timeout;
    let mut confirmed = taken;
    let mut next = taken + ttl / 3;
    let mut failure: Option<String> = None;
    loop {
        let lease_cutoff = confirmed + ttl.saturating_sub(early);
        let cutoff = lease_cutoff.min(limit);
        tokio::time::sleep_until(next.min(cutoff)).await;
        let now = Instant::now();
        if now >= cutoff {
            return if lease_cutoff <= limit {
                AuthError::RefreshAbandoned(match failure {
                    Some(e) => format!("the refresh lock could not be renewed: {e}"),
                    None => "the refresh lock could not be renewed in time".to_string(),
                })
            } else {
                AuthError::RefreshAbandoned(format!(
                    "the refresh took longer than its timeout ({:?}, OAuth::refresh_timeout)",
                    shared.refresh_timeout
                ))
            };
        }
        match tokio::time::timeout_at(cutoff, shared.store.extend(lock, ttl)).await {
            Ok(Ok(true)) => {
                tracing::trace!(
                    fence = lock.fence(),
                    "renewed the token store's refresh lock"
                );
                confirmed = now;
                next = now + ttl / 3;
                failure = None;
            }
            Ok(Ok(false)) => {
                return AuthError::RefreshAbandoned(
                    "the refresh lock was lost (it ran out, or the store lost it)".to_string(),
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(
                    error = %e,
                    "the token store's refresh lock could not be renewed; trying again until the lease would run out"
                );
                failure = Some(e.to_string());
                next = now + early.max(Duration::from_millis(1));
            }
            // The cutoff came first: the next turn abandons.
            Err(_) => {}
        }
    }
}

/// The callback's error, or a plain error with its text when that text (or a source's) holds a
/// secret: a database error may quote the value it failed to store.
fn without_secrets(error: BoxError, secrets: &Redactions) -> Arc<dyn StdError + Send + Sync> {
    crate::auth::without_secrets(Arc::from(error), secrets)
}

/// The session as the transport uses it: the bearer header, refreshed when it is about to
/// expire or after a 401.
impl Authorizer for Session {
    fn authorize<'a>(&'a self, request: &'a mut reqwest::Request) -> AuthFuture<'a, Issued> {
        Box::pin(async move {
            let (value, generation) = self.authorization().await?;
            request.headers_mut().insert(AUTHORIZATION, value);
            Ok(Issued(generation))
        })
    }

    fn on_unauthorized(&self, issued: Issued) -> AuthFuture<'_, bool> {
        Box::pin(async move {
            tracing::debug!(
                client_id = self.app.client_id,
                "401 to the access token: refreshing it (unless another request already did) and sending again"
            );
            self.unauthorized(issued.0).await.map(|()| true)
        })
    }

    fn redactions(&self) -> Redactions {
        Session::redactions(self)
    }

    fn describe(&self) -> String {
        "OAuth [redacted]".to_string()
    }
}
