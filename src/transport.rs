//! The path every request takes, from progenitor's `exec` hook: credentials, the rate limiter,
//! retries, and the OAuth refresh after a 401.
//!
//! `exec` can only return a `reqwest::Response` or a `reqwest::Error`, so a failure of our own
//! (an OAuth refresh that failed) travels as a synthetic 401 response carrying the typed error in
//! its extensions; [`crate::error`] takes it out again.

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Request, Response, StatusCode};

use crate::oauth::{AuthError, Session, TokenPair};
use crate::ratelimit::RateLimiter;
use crate::retry::{self, Attempt, Next, RetryPolicy};

/// How a client authenticates.
pub(crate) enum Auth {
    /// A fixed header (a long-lived bearer token, CloseBot's key).
    Header(HeaderName, HeaderValue),
    /// Kommo OAuth with refresh.
    OAuth(Box<Session>),
}

/// Everything a client shares with its clones: auth, limiter, retry policy.
pub(crate) struct Pipeline {
    pub(crate) auth: Auth,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) retry: RetryPolicy,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            Auth::Header(name, _) => format!("{name}: [redacted]"),
            Auth::OAuth(_) => "OAuth [redacted]".to_string(),
        };
        f.debug_struct("Pipeline")
            .field("auth", &auth)
            .field("limiter", &self.limiter)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Pipeline {
    pub(crate) fn new(auth: Auth, limiter: Option<RateLimiter>, retry: RetryPolicy) -> Arc<Self> {
        Arc::new(Self {
            auth,
            limiter,
            retry,
        })
    }

    /// Sends a request of a client.
    pub(crate) async fn execute(
        &self,
        http: &reqwest::Client,
        request: Request,
    ) -> reqwest::Result<Response> {
        execute(
            http,
            request,
            self.limiter.as_ref(),
            &self.retry,
            Some(&self.auth),
        )
        .await
    }

    /// The OAuth tokens in use, for clients built with OAuth.
    pub(crate) async fn tokens(&self) -> Option<TokenPair> {
        match &self.auth {
            Auth::OAuth(session) => Some(session.tokens().await),
            Auth::Header(..) => None,
        }
    }
}

/// The error of our own that made a synthetic response (see the module doc).
#[derive(Clone, Debug)]
pub(crate) struct AuthFailure(pub(crate) AuthError);

/// The path of the request a synthetic response answers (reqwest cannot set its URL).
#[derive(Clone, Debug)]
pub(crate) struct Endpoint(pub(crate) String);

/// How many times the request was sent before this answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempts(pub(crate) u32);

fn auth_failure(request: &Request, error: AuthError) -> Response {
    let mut response = http::Response::new(error.to_string());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .extensions_mut()
        .insert(Endpoint(request.url().path().to_string()));
    response.extensions_mut().insert(AuthFailure(error));
    Response::from(response)
}

/// Sends `request` with credentials (when `auth` is given), through the limiter, retrying per
/// `policy`. With OAuth, a 401 makes one refresh (or picks up another request's) and one more
/// round of attempts.
pub(crate) async fn execute(
    http: &reqwest::Client,
    mut request: Request,
    limiter: Option<&RateLimiter>,
    policy: &RetryPolicy,
    auth: Option<&Auth>,
) -> reqwest::Result<Response> {
    let session = match auth {
        None => return send(http, request, limiter, policy).await,
        Some(Auth::Header(name, value)) => {
            request.headers_mut().insert(name.clone(), value.clone());
            return send(http, request, limiter, policy).await;
        }
        Some(Auth::OAuth(session)) => session,
    };
    let spare = request.try_clone();
    let generation = match session.authorization().await {
        Ok((value, generation)) => {
            request.headers_mut().insert(AUTHORIZATION, value);
            generation
        }
        Err(e) => return Ok(auth_failure(&request, e)),
    };
    let result = send(http, request, limiter, policy).await;
    let (Ok(response), Some(mut again)) = (&result, spare) else {
        return result;
    };
    if response.status() != StatusCode::UNAUTHORIZED {
        return result;
    }
    if let Err(e) = session.unauthorized(generation).await {
        return Ok(auth_failure(&again, e));
    }
    match session.authorization().await {
        Ok((value, _)) => {
            again.headers_mut().insert(AUTHORIZATION, value);
            send(http, again, limiter, policy).await
        }
        Err(e) => Ok(auth_failure(&again, e)),
    }
}

/// Sends `request` as it is, through the limiter, retrying per `policy`.
pub(crate) async fn send(
    http: &reqwest::Client,
    mut request: Request,
    limiter: Option<&RateLimiter>,
    policy: &RetryPolicy,
) -> reqwest::Result<Response> {
    let method = request.method().clone();
    let mut attempt: u32 = 1;
    loop {
        // A body that cannot be cloned (a stream) is sent once.
        let spare = request.try_clone();
        let permit = match limiter {
            Some(limiter) => Some(limiter.acquire().await),
            None => None,
        };
        let result = http.execute(request).await;
        // An answer (or an error) came: the server has counted the request, if it got it.
        if let Some(permit) = permit {
            permit.finish();
        }
        let outcome = match &result {
            Ok(response) => Attempt::Status {
                status: response.status(),
                retry_after: retry::retry_after(response.headers()),
            },
            Err(e) => Attempt::Failed {
                nothing_sent: e.is_connect(),
            },
        };
        match (retry::decide(policy, &method, attempt, &outcome), spare) {
            (Next::RetryAfter(wait), Some(spare)) => {
                tokio::time::sleep(wait).await;
                attempt += 1;
                request = spare;
            }
            _ => {
                return result.map(|mut response| {
                    response.extensions_mut().insert(Attempts(attempt));
                    response
                });
            }
        }
    }
}
