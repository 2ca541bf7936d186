//! How a request gets its credentials: the [`Authorizer`] interface the transport calls, the
//! fixed header that a long-lived token or an API key is, and the error of credentials that
//! could not be had ([`AuthError`], re-exported as `lead_intake::oauth::AuthError`).
//!
//! The transport knows only this interface. The OAuth session implements it in a module above
//! the transport (it sends its own token requests through the transport).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Request, StatusCode};

use crate::config::ConfigError;
use crate::secret::{Redactions, Secret};

/// Which grant a token request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// `authorization_code`: the code from the installation redirect.
    AuthorizationCode,
    /// `refresh_token`.
    RefreshToken,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Grant::AuthorizationCode => "authorization code",
            Grant::RefreshToken => "refresh token",
        })
    }
}

/// An OAuth failure. Never contains a token or the client secret.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token endpoint refused the grant: the refresh token is revoked, expired or already
    /// used (or the code is). The user must authorize the integration again; until then every
    /// request fails with this error without contacting Kommo.
    ///
    /// Only Kommo's own refusal is this error: a 400 or 401 whose body is its OAuth problem
    /// document (with a `hint` such as "Token has been revoked", or the `OAuthProblemJson` type)
    /// or an RFC 6749 error code such as `invalid_grant`. Any other 400 or 401 (a gateway's HTML
    /// page, an empty body) is [`AuthError::TokenEndpoint`], a passing failure.
    #[error(
        "Kommo refused the {grant} ({status}{}): the integration must be authorized again",
        describe(title, detail, hint)
    )]
    Rejected {
        /// The grant that was refused.
        grant: Grant,
        /// The token endpoint's status (400 or 401).
        status: StatusCode,
        /// The problem's title, e.g. `Unauthorized`.
        title: Option<String>,
        /// The problem's detail.
        detail: Option<String>,
        /// Kommo's hint, e.g. `Token has been revoked`.
        hint: Option<String>,
    },
    /// Your callback failed to store the new token pair, so it was not used. The pair is kept in
    /// memory and offered to the callback again on the next request.
    ///
    /// This is your callback's error, unless its text (or its sources') contains a token or the
    /// client secret: then it is replaced by a plain error with that text, the secrets removed.
    #[error(
        "the refreshed tokens could not be stored ({0}); they were not used and will be offered to the callback again"
    )]
    Callback(#[source] Arc<dyn StdError + Send + Sync>),
    /// The token endpoint answered something else (a 5xx, a 429 after every retry, a 400 or 401
    /// that is not Kommo's refusal, such as a gateway's HTML page). A passing failure: the
    /// session is not ended, and the refresh is tried again (after a pause while the current
    /// access token is still valid, and on the next request otherwise).
    #[error("the token endpoint answered {status}: {body}")]
    TokenEndpoint {
        /// The status.
        status: StatusCode,
        /// The start of the body, without the refresh token, code or client secret if the server
        /// echoed them.
        body: String,
    },
    /// A 2xx from the token endpoint that is not a usable token pair.
    #[error("the token endpoint's answer is not a usable token pair: {0}")]
    InvalidTokenResponse(String),
    /// The token request could not be sent or its answer not received.
    #[error("the token request failed: {0}")]
    Transport(#[source] Arc<reqwest::Error>),
    /// The token endpoint's answer could not be read whole: larger than the client's
    /// `max_answer_size`, or not arrived within its `answer_timeout`. A passing failure.
    #[error(
        "the token endpoint's answer ({path}) could not be read: {0}",
        path = "/oauth2/access_token"
    )]
    Answer(#[source] crate::answer::AnswerError),
    /// The rate limiter could not grant the token request (a shared limiter whose Redis is
    /// down), so it was not sent; the refresh token is unspent and may work later.
    #[error("the token request was not sent: {0}")]
    RateLimiterUnavailable(#[source] crate::ratelimit::RateLimiterUnavailable),
    /// The shared token store failed (e.g. its Redis is down), or waiting for its refresh lock
    /// timed out, or it holds no token pair. No refresh token was sent: the stored pair is
    /// unspent and trying again later may work.
    #[error("the token store failed: {0}")]
    Store(#[source] Arc<dyn StdError + Send + Sync>),
    /// With a token store: the refresh was abandoned before its refresh lock could run out.
    /// The lock was found lost, or could not be renewed (the store unreachable) in time, or the
    /// refresh took longer than `OAuth::refresh_timeout`. Its token request was cut off at that
    /// moment (attempts, back-off and `Retry-After` waits included) and is not sent again, so a
    /// refresh token is never sent by a process whose lock may have passed to another. A passing
    /// failure: the next request tries again (were the cut-off request already answered by
    /// Kommo, its refresh token would be spent, as after a timeout).
    #[error("the token refresh was abandoned before its refresh lock could run out: {0}")]
    RefreshAbandoned(String),
    /// The base URL or credentials given to `oauth::exchange_code` are not usable.
    #[error(transparent)]
    Config(Arc<ConfigError>),
}

impl AuthError {
    /// True when the failure may pass (a 5xx, a timeout): the same refresh token may work later.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            // Kommo's refusal is `Rejected`: whatever else the endpoint answers may pass.
            AuthError::TokenEndpoint { .. }
            | AuthError::Transport(_)
            | AuthError::Answer(_)
            | AuthError::RateLimiterUnavailable(_)
            | AuthError::Store(_)
            | AuthError::RefreshAbandoned(_) => true,
            _ => false,
        }
    }
}

impl AuthError {
    /// The error with every secret of `redactions` removed from every text it holds: the
    /// token endpoint's fields and body, and an error of the callback or the store whose text
    /// holds one (then replaced by its text, redacted).
    pub(crate) fn redacted(self, redactions: &Redactions) -> Self {
        if redactions.0.is_empty() {
            return self;
        }
        let text = |text| redactions.scrubbed(text);
        match self {
            AuthError::Rejected {
                grant,
                status,
                title,
                detail,
                hint,
            } => AuthError::Rejected {
                grant,
                status,
                title: title.map(text),
                detail: detail.map(text),
                hint: hint.map(text),
            },
            AuthError::TokenEndpoint { status, body } => AuthError::TokenEndpoint {
                status,
                body: text(body),
            },
            AuthError::InvalidTokenResponse(message) => {
                AuthError::InvalidTokenResponse(text(message))
            }
            AuthError::RefreshAbandoned(message) => AuthError::RefreshAbandoned(text(message)),
            AuthError::Callback(error) => AuthError::Callback(without_secrets(error, redactions)),
            AuthError::Store(error) => AuthError::Store(without_secrets(error, redactions)),
            other => other,
        }
    }
}

/// An error as it is, or a plain error with its text (its sources' included), redacted, when
/// its text or `Debug` holds a secret: a database error may quote the value it failed to store.
pub(crate) fn without_secrets(
    error: Arc<dyn StdError + Send + Sync>,
    secrets: &Redactions,
) -> Arc<dyn StdError + Send + Sync> {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    let debug = format!("{error:?}");
    let leaks = |text: &str| matches!(secrets.apply(text), std::borrow::Cow::Owned(_));
    if !leaks(&chain) && !leaks(&debug) {
        return error;
    }
    Arc::new(RedactedError(secrets.apply(&chain).into_owned()))
}

/// An error's text with the secrets removed (see [`without_secrets`]).
#[derive(Debug)]
struct RedactedError(String);

impl fmt::Display for RedactedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for RedactedError {}

fn describe(title: &Option<String>, detail: &Option<String>, hint: &Option<String>) -> String {
    let parts: Vec<&str> = [title, detail, hint]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(", {}", parts.join(": "))
    }
}

/// Which credentials a request was sent with (for OAuth, the access token's generation), so
/// that a 401 to it can tell whether they were renewed since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Issued(pub(crate) u64);

/// A boxed future of an [`Authorizer`] (the pipeline holds authorizers of different types).
pub(crate) type AuthFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AuthError>> + Send + 'a>>;

/// The credentials of a client, as the transport uses them.
pub(crate) trait Authorizer: Send + Sync {
    /// Puts the credentials on `request` (renewing them first if they are about to expire).
    fn authorize<'a>(&'a self, request: &'a mut Request) -> AuthFuture<'a, Issued>;

    /// After a 401 to a request sent with `issued`: `Ok(true)` when the request should be sent
    /// once more with [`Authorizer::authorize`]'s new credentials, `Ok(false)` when the 401 is
    /// the answer.
    fn on_unauthorized(&self, issued: Issued) -> AuthFuture<'_, bool>;

    /// Every secret the credentials have put or may put on a request, to remove from error
    /// texts when a server echoes one back.
    fn redactions(&self) -> Redactions;

    /// The credentials for `Debug`, without their secrets, e.g. `authorization: [redacted]`.
    fn describe(&self) -> String;
}

/// A header that never changes: a long-lived token, CloseBot's API key.
pub(crate) struct FixedHeader {
    name: HeaderName,
    value: HeaderValue,
    redactions: Redactions,
}

impl FixedHeader {
    /// `name: {prefix}{secret}`; `what` names the credential in the error of a blank or
    /// unsendable secret.
    pub(crate) fn new(
        name: HeaderName,
        prefix: &str,
        secret: Secret,
        what: &'static str,
    ) -> Result<Self, ConfigError> {
        let value = crate::config::secret_header(prefix, &secret, what)?;
        Ok(Self {
            name,
            value,
            redactions: Redactions::new(vec![secret]),
        })
    }
}

impl Authorizer for FixedHeader {
    fn authorize<'a>(&'a self, request: &'a mut Request) -> AuthFuture<'a, Issued> {
        request
            .headers_mut()
            .insert(self.name.clone(), self.value.clone());
        Box::pin(std::future::ready(Ok(Issued(0))))
    }

    fn on_unauthorized(&self, _issued: Issued) -> AuthFuture<'_, bool> {
        Box::pin(std::future::ready(Ok(false)))
    }

    fn redactions(&self) -> Redactions {
        self.redactions.clone()
    }

    fn describe(&self) -> String {
        format!("{}: [redacted]", self.name)
    }
}
