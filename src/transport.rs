//! The path every request takes, from progenitor's `exec` hook: credentials, the rate limiter,
//! retries, and the OAuth refresh after a 401.
//!
//! `exec` can only return a `reqwest::Response` or a `reqwest::Error`, so a failure of our own
//! (an OAuth refresh that failed) travels as a synthetic 401 response carrying the typed error in
//! its extensions; [`crate::error`] takes it out again. Every response also carries the
//! secrets its request was sent with ([`Redactions`]), so an error built from it can remove
//! them when a server echoes them back.
//!
//! Events (README "Logging"): `lead_intake::transport` for each attempt and its answer,
//! `lead_intake::retry` for retry decisions. They name the method, host and path, never the
//! query string (it may carry values the caller would not log), headers or bodies.

use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Request, Response, StatusCode};
use tokio::time::Instant;

use crate::oauth::{AuthError, Session, TokenPair};
use crate::ratelimit::RateLimiter;
use crate::retry::{self, Attempt, GiveUp, Next, RetryPolicy};
use crate::secret::Redactions;

/// How a client authenticates.
pub(crate) enum Auth {
    /// A fixed header (a long-lived bearer token, CloseBot's key), and the secret in it.
    Header(HeaderName, HeaderValue, Redactions),
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
            Auth::Header(name, ..) => format!("{name}: [redacted]"),
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
        crate::error::note_endpoint(request.url().path());
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
    tracing::debug!(
        method = %request.method(),
        path = request.url().path(),
        error = %error,
        "request not sent: no valid OAuth token"
    );
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

/// Marks `result`'s response with the secrets its request carried.
fn mark(result: reqwest::Result<Response>, redactions: Redactions) -> reqwest::Result<Response> {
    result.map(|mut response| {
        response.extensions_mut().insert(redactions);
        response
    })
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
        Some(Auth::Header(name, value, redactions)) => {
            request.headers_mut().insert(name.clone(), value.clone());
            return mark(
                send(http, request, limiter, policy).await,
                redactions.clone(),
            );
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
        return mark(result, session.redactions());
    };
    if response.status() != StatusCode::UNAUTHORIZED {
        return mark(result, session.redactions());
    }
    tracing::debug!(
        target: "lead_intake::oauth",
        method = %again.method(),
        path = again.url().path(),
        "401 to the access token: refreshing it (unless another request already did) and sending again"
    );
    if let Err(e) = session.unauthorized(generation).await {
        return Ok(auth_failure(&again, e));
    }
    match session.authorization().await {
        Ok((value, _)) => {
            again.headers_mut().insert(AUTHORIZATION, value);
            mark(
                send(http, again, limiter, policy).await,
                session.redactions(),
            )
        }
        Err(e) => Ok(auth_failure(&again, e)),
    }
}

/// A transport error in words, without its URL (whose query string is not logged).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "connect"
    } else if error.is_timeout() {
        "timeout"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else if error.is_builder() {
        "request"
    } else if error.is_redirect() {
        "redirect"
    } else {
        "request"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends `request` as it is, through the limiter, retrying per `policy`.
pub(crate) async fn send(
    http: &reqwest::Client,
    mut request: Request,
    limiter: Option<&RateLimiter>,
    policy: &RetryPolicy,
) -> reqwest::Result<Response> {
    let method = request.method().clone();
    // The path only: a query string may carry values (search terms, a user's data) that do
    // not belong in logs.
    let host = request.url().host_str().unwrap_or("").to_string();
    let path = request.url().path().to_string();
    let mut attempt: u32 = 1;
    loop {
        // A body that cannot be cloned (a stream) is sent once.
        let spare = request.try_clone();
        let permit = match limiter {
            Some(limiter) => Some(limiter.acquire().await),
            None => None,
        };
        tracing::trace!(%method, host, path, attempt, "sending request");
        let started = Instant::now();
        let result = http.execute(request).await;
        // An answer (or an error) came: the server has counted the request, if it got it.
        if let Some(permit) = permit {
            permit.finish();
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        // A 429 without `Retry-After` may say how long to wait in its JSON body (Kommo's
        // `retry_after`): read it, and put the body back for whoever reads the answer next.
        let mut result = result;
        let mut wait_in_body = None;
        if let Ok(response) = &mut result
            && response.status() == StatusCode::TOO_MANY_REQUESTS
            && retry::retry_after(response.headers()).is_none()
            && is_json(response.headers())
        {
            let taken = std::mem::replace(response, empty_response());
            let (again, wait) = read_retry_after_in_body(taken).await;
            *response = again;
            wait_in_body = wait;
        }
        let outcome = match &result {
            Ok(response) => {
                tracing::debug!(
                    %method,
                    path,
                    attempt,
                    status = response.status().as_u16(),
                    elapsed_ms,
                    "response received"
                );
                Attempt::Status {
                    status: response.status(),
                    // The header wins when both are present.
                    retry_after: retry::retry_after(response.headers()).or(wait_in_body),
                }
            }
            Err(e) => {
                tracing::debug!(
                    %method,
                    path,
                    attempt,
                    elapsed_ms,
                    error = %describe(e),
                    "request failed"
                );
                Attempt::Failed {
                    nothing_sent: e.is_connect(),
                }
            }
        };
        match (retry::decide(policy, &method, attempt, &outcome), spare) {
            (Next::RetryAfter(wait), Some(spare)) => {
                let delay_from = match outcome {
                    Attempt::Status {
                        retry_after: Some(_),
                        ..
                    } if wait_in_body.is_some() => "retry_after",
                    Attempt::Status {
                        retry_after: Some(_),
                        ..
                    } => "Retry-After",
                    _ => "backoff",
                };
                tracing::debug!(
                    target: "lead_intake::retry",
                    %method,
                    path,
                    attempt,
                    reason = outcome.reason(),
                    delay_ms = wait.as_millis() as u64,
                    delay_from,
                    "retrying"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                request = spare;
            }
            (next, _) => {
                match next {
                    Next::RetryAfter(_) => tracing::debug!(
                        target: "lead_intake::retry",
                        %method,
                        path,
                        attempt,
                        reason = outcome.reason(),
                        "not retried: the body is a stream and cannot be sent again"
                    ),
                    Next::GiveUp(GiveUp::Exhausted) if policy.max_attempts() > 1 => tracing::warn!(
                        target: "lead_intake::retry",
                        %method,
                        path,
                        attempts = attempt,
                        reason = outcome.reason(),
                        "giving up: every attempt the retry policy allows failed"
                    ),
                    Next::GiveUp(GiveUp::Exhausted) => {}
                    Next::GiveUp(GiveUp::RetryAfterTooLong(wait)) => tracing::warn!(
                        target: "lead_intake::retry",
                        %method,
                        path,
                        attempts = attempt,
                        reason = outcome.reason(),
                        retry_after_s = wait.as_secs(),
                        max_delay_s = policy.max_delay().as_secs(),
                        "giving up: the server's Retry-After is longer than the retry policy's max delay"
                    ),
                    Next::GiveUp(GiveUp::NotIdempotent) => tracing::debug!(
                        target: "lead_intake::retry",
                        %method,
                        path,
                        attempts = attempt,
                        reason = outcome.reason(),
                        "not retried: the request may have been applied and the method is not idempotent"
                    ),
                    Next::Return => {}
                }
                return result.map(|mut response| {
                    response.extensions_mut().insert(Attempts(attempt));
                    response
                });
            }
        }
    }
}

/// Whether an answer's Content-Type is JSON (`application/json` or any `+json`).
fn is_json(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::error::is_json_media_type)
}

/// A placeholder while a response is taken apart.
fn empty_response() -> Response {
    Response::from(http::Response::new(reqwest::Body::from(Vec::<u8>::new())))
}

/// Reads a 429's body (at most 64 KiB, all an error keeps) for its `retry_after`, and returns
/// the answer rebuilt with the same status, headers, extensions, URL and body. A body that
/// breaks off is kept as far as it came.
async fn read_retry_after_in_body(response: Response) -> (Response, Option<std::time::Duration>) {
    use reqwest::ResponseBuilderExt;
    let url = response.url().clone();
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let extensions = response.extensions().clone();
    let bytes = crate::error::read_limited_lossy(response).await;
    let wait = retry::retry_after_in_body(&bytes);
    let mut rebuilt = http::Response::builder()
        .status(status)
        .version(version)
        .url(url)
        .body(reqwest::Body::from(bytes))
        .expect("status and version come from a response");
    *rebuilt.headers_mut() = headers;
    rebuilt.extensions_mut().extend(extensions);
    (Response::from(rebuilt), wait)
}
