//! The path every request takes, from progenitor's `exec` hook: credentials (the client's
//! [`Authorizer`]), the rate limiter, retries, and one more round after a 401 when the
//! credentials could be renewed.
//!
//! What an error made from a call's answer must know and the answer does not carry (the path
//! called, the secrets the request was sent with, how many times it was sent, credentials that
//! could not be had) is the call's [`CallContext`]: one value, made by [`Pipeline::execute`]
//! when the call ends and read by the error layer through [`scope`].
//!
//! ## Around progenitor's `exec` hook
//!
//! `exec` can return only a `reqwest::Response` or a `reqwest::Error`, and no code outside
//! reqwest can make a `reqwest::Error`. So when the credentials fail (an OAuth refresh that was
//! refused), the request is not sent and `exec` returns a stand-in answer: a `401` whose body is
//! the error's text, which is what a raw generated call shows; the typed error is in the call's
//! context. The same goes for a shared rate limiter that cannot grant (Redis is down): a `503`
//! stand-in, and the typed error in the context. For the same reason the context travels beside the answer (a task-local that
//! [`scope`] opens around the call), not inside it: progenitor's decode error keeps only the
//! body. This module is the only one that works around the hook.
//!
//! Events (the logging guide, `lead_intake::_texts::logging`): `lead_intake::transport` for each attempt and its answer,
//! `lead_intake::retry` for retry decisions. They name the method, host and path, never the
//! query string (it may carry values the caller would not log), headers or bodies.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Request, Response, StatusCode};
use tokio::time::Instant;

pub(crate) use crate::answer::{AnswerError, AnswerLimits};
use crate::auth::{AuthError, Authorizer};
use crate::options::{CallOptions, Waiting};
use crate::ratelimit::{RateLimiter, RateLimiterUnavailable};
use crate::retry::{self, Attempt, CallRules, GiveUp, Next, RetryPolicy, RetryRules};
use crate::secret::Redactions;
use crate::segment::InvalidPathParameter;

/// How much of a body an error keeps (the HTML pages are small; this bounds memory).
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// What the error layer needs to know about a call besides its answer (see the module doc).
#[derive(Clone, Debug, Default)]
pub(crate) struct CallContext {
    /// The path of the request, e.g. `/api/v4/sources` (never its query).
    pub(crate) endpoint: String,
    /// The secrets of the client's credentials (as they were when the call ended), to remove
    /// from error texts.
    pub(crate) redactions: Redactions,
    /// How many times the request was sent in its last round (0 when it never was).
    pub(crate) attempts: u32,
    /// The credentials could not be had: the request was not sent and the answer is the
    /// stand-in 401.
    pub(crate) auth_failure: Option<AuthError>,
    /// The rate limiter could not grant: the request was not sent and the answer is the
    /// stand-in 503.
    pub(crate) limiter_failure: Option<RateLimiterUnavailable>,
    /// A path parameter could not be one segment: the request was never built.
    pub(crate) path_failure: Option<InvalidPathParameter>,
    /// The call's deadline ([`CallOptions::deadline`]) came: what the call was waiting for, and
    /// the deadline. The answer is the stand-in 504 or the last attempt's.
    pub(crate) deadline_hit: Option<(Waiting, std::time::Duration)>,
    /// The timeout the attempts were sent with when the call's options set one
    /// ([`CallOptions::attempt_timeout`]), to name it when an attempt timed out.
    pub(crate) attempt_timeout: Option<std::time::Duration>,
}

/// The bounds of one call beyond the client's retry policy (from its [`CallOptions`]), and what
/// the retry rules say of it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bounds {
    /// The client's and the call's [`RetryRules`], for this call.
    pub(crate) rules: CallRules,
    /// When the whole call must have ended, and the deadline as given.
    pub(crate) deadline: Option<(Instant, std::time::Duration)>,
    /// Each attempt's timeout.
    pub(crate) attempt_timeout: Option<std::time::Duration>,
}

impl Bounds {
    /// The bounds of a call with `options`, starting now.
    fn of(options: &CallOptions, rules: CallRules) -> Self {
        Self {
            rules,
            deadline: options.deadline.map(|d| (Instant::now() + d, d)),
            attempt_timeout: options.attempt_timeout,
        }
    }

    /// The time left before the deadline (`None` without one).
    fn left(&self) -> Option<std::time::Duration> {
        self.deadline
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
    }
}

tokio::task_local! {
    /// The context the pipeline leaves for the call that [`scope`] awaits.
    static CONTEXT: RefCell<Option<CallContext>>;
}

/// Awaits a call and returns its output with the context its pipeline left (none when the call
/// never reached a client's pipeline: a builder error, an answer made by hand).
///
/// The call is boxed here, before anything holds it: its future is kilobytes, and held inline
/// it made the future of every `body()`/`or_empty()`, and of every caller's `async fn`, as large
/// again (a test awaiting each operation in turn overflowed its stack in a debug build).
pub(crate) fn scope<F: Future>(call: F) -> impl Future<Output = (F::Output, Option<CallContext>)> {
    let call = Box::pin(call);
    CONTEXT.scope(RefCell::new(None), async move {
        let output = call.await;
        (output, CONTEXT.with(RefCell::take))
    })
}

/// A path parameter of a generated operation as one segment of its path (build.rs rewrites
/// every generated `encode_path(..)` into this). A value that cannot be one segment is refused:
/// the typed error goes into the call's context (for [`scope`]), and progenitor's
/// `InvalidRequest` carries its text (for a raw generated call).
// The error is progenitor's, the type every generated `send()` returns.
#[allow(clippy::result_large_err)]
pub(crate) fn path_segment(
    operation: &'static str,
    parameter: &'static str,
    value: &str,
) -> Result<String, progenitor_client::Error<()>> {
    crate::segment::encode(operation, parameter, value).map_err(|error| {
        let message = error.to_string();
        let _ = CONTEXT.try_with(|slot| {
            *slot.borrow_mut() = Some(CallContext {
                path_failure: Some(error),
                ..CallContext::default()
            })
        });
        progenitor_client::Error::InvalidRequest(message)
    })
}

/// The operation id the hooks see for a raw call (`client.request(..)`); they pass no operation
/// id on to the pipeline for it, so retry rules match a raw call by its method and path only.
pub(crate) const RAW_OPERATION_ID: &str = "raw_request";

/// The operation id an `exec` hook passes on to [`Pipeline::execute_operation`]: a generated
/// operation's, or none for a raw call (whose retry rules match its method and path).
pub(crate) fn operation_id(info: &progenitor_client::OperationInfo) -> Option<&'static str> {
    (info.operation_id != RAW_OPERATION_ID).then_some(info.operation_id)
}

/// Everything a client shares with its clones: credentials, limiter, retry policy.
pub(crate) struct Pipeline {
    authorizer: Arc<dyn Authorizer>,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) retry: RetryPolicy,
    pub(crate) limits: AnswerLimits,
    /// The client's extensions of the retry table.
    pub(crate) rules: RetryRules,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("auth", &self.authorizer.describe())
            .field("limiter", &self.limiter)
            .field("retry", &self.retry)
            .field("limits", &self.limits)
            .field("rules", &self.rules)
            .finish()
    }
}

impl Pipeline {
    pub(crate) fn new(
        authorizer: Arc<dyn Authorizer>,
        limiter: Option<RateLimiter>,
        retry: RetryPolicy,
        limits: AnswerLimits,
        rules: RetryRules,
    ) -> Arc<Self> {
        Arc::new(Self {
            authorizer,
            limiter,
            retry,
            limits,
            rules,
        })
    }

    /// The secrets of the client's credentials as they are now, for errors made outside a
    /// call's context (a pager refusing an odd item).
    pub(crate) fn redactions(&self) -> crate::secret::Redactions {
        self.authorizer.redactions()
    }

    /// Sends a request of a client (its `exec` hook, with the generated operation's id), and
    /// leaves the call's context for [`scope`].
    pub(crate) async fn execute_operation(
        &self,
        http: &reqwest::Client,
        request: Request,
        operation: Option<&str>,
    ) -> reqwest::Result<Response> {
        let mut context = CallContext {
            endpoint: request.url().path().to_string(),
            ..CallContext::default()
        };
        // The call's own options (crate::options), if it has any: extra headers (before the
        // credentials, which win), its number of attempts, its timeouts.
        let options = crate::options::current().unwrap_or_default();
        let mut request = request;
        for (name, value) in &options.headers {
            request.headers_mut().append(name, value.clone());
        }
        let policy = match options.max_attempts {
            Some(n) => self.retry.with_max_attempts(n),
            None => self.retry,
        };
        let rules = self.rules.and(&options.rules).of(&retry::Call {
            operation,
            method: request.method(),
            path: request.url().path(),
        });
        let bounds = Bounds::of(&options, rules);
        context.attempt_timeout = bounds.attempt_timeout;
        let result = self
            .run(http, request, &policy, &bounds, &mut context)
            .await;
        // Taken after the call: a refresh during it added the new tokens.
        context.redactions = self.authorizer.redactions();
        // Outside a scope (a raw generated call) nobody reads it.
        let _ = CONTEXT.try_with(|slot| *slot.borrow_mut() = Some(context));
        result
    }

    /// With credentials, through the limiter, retrying per the policy; after a 401, once more
    /// if the authorizer renewed the credentials (or another request did).
    async fn run(
        &self,
        http: &reqwest::Client,
        mut request: Request,
        policy: &RetryPolicy,
        bounds: &Bounds,
        context: &mut CallContext,
    ) -> reqwest::Result<Response> {
        let limiter = self.limiter.as_ref();
        // A body that cannot be cloned (a stream) is sent once.
        let spare = request.try_clone();
        let issued = match self.authorizer.authorize(&mut request).await {
            Ok(issued) => issued,
            Err(e) => return Ok(not_sent(&request, e, context)),
        };
        let (method, path) = (request.method().clone(), request.url().path().to_string());
        let (result, attempts, hit) =
            send_within(http, request, limiter, policy, self.limits, bounds).await;
        context.attempts = attempts;
        if let Some(waiting) = hit {
            return Ok(deadline_passed(&method, &path, waiting, bounds, context));
        }
        let result = match result {
            Ok(result) => result,
            Err(e) => return Ok(not_granted(&method, &path, e, context)),
        };
        let (Ok(response), Some(mut again)) = (&result, spare) else {
            return result;
        };
        if response.status() != StatusCode::UNAUTHORIZED {
            return result;
        }
        match self.authorizer.on_unauthorized(issued).await {
            Ok(true) => drop(result),
            Ok(false) => return result,
            Err(e) => return Ok(not_sent(&again, e, context)),
        }
        if let Err(e) = self.authorizer.authorize(&mut again).await {
            return Ok(not_sent(&again, e, context));
        }
        let (result, attempts, hit) =
            send_within(http, again, limiter, policy, self.limits, bounds).await;
        context.attempts = attempts;
        if let Some(waiting) = hit {
            return Ok(deadline_passed(&method, &path, waiting, bounds, context));
        }
        match result {
            Ok(result) => result,
            Err(e) => Ok(not_granted(&method, &path, e, context)),
        }
    }
}

/// The stand-in answer of a call whose deadline came (see the module doc): a `504`; the typed
/// error goes into the context.
fn deadline_passed(
    method: &reqwest::Method,
    path: &str,
    waiting: Waiting,
    bounds: &Bounds,
    context: &mut CallContext,
) -> Response {
    let deadline = bounds.deadline.map(|(_, d)| d).unwrap_or_default();
    tracing::debug!(
        %method,
        path,
        attempts = context.attempts,
        deadline_ms = deadline.as_millis() as u64,
        waiting_for = %waiting,
        "call stopped: its deadline came"
    );
    let mut response = http::Response::new(format!(
        "the call's deadline of {deadline:?} came while waiting for {waiting}"
    ));
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    context.deadline_hit = Some((waiting, deadline));
    Response::from(response)
}

/// The stand-in answer to a request the rate limiter could not grant (see the module doc); the
/// typed error goes into the context.
fn not_granted(
    method: &reqwest::Method,
    path: &str,
    error: RateLimiterUnavailable,
    context: &mut CallContext,
) -> Response {
    tracing::warn!(
        %method,
        path,
        error = %error,
        "request not sent: the rate limiter cannot grant it"
    );
    let mut response = http::Response::new(error.to_string());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    context.limiter_failure = Some(error);
    Response::from(response)
}

/// The stand-in answer to a request whose credentials failed (see the module doc); the typed
/// error goes into the context.
fn not_sent(request: &Request, error: AuthError, context: &mut CallContext) -> Response {
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
    context.auth_failure = Some(error);
    Response::from(response)
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

/// Sends `request` as it is, through the limiter, retrying per `policy`; returns the last
/// result and how many times the request was sent. When the limiter cannot grant an attempt,
/// that attempt is not sent and the limiter's error is the result. Every answer's body is read
/// within `limits` ([`bounded`]), whoever reads it.
pub(crate) async fn send(
    http: &reqwest::Client,
    request: Request,
    limiter: Option<&RateLimiter>,
    policy: &RetryPolicy,
    limits: AnswerLimits,
) -> (
    Result<reqwest::Result<Response>, RateLimiterUnavailable>,
    u32,
) {
    let bounds = Bounds::default();
    let (result, attempts, _) = send_within(http, request, limiter, policy, limits, &bounds).await;
    (result, attempts)
}

/// [`send`] within a call's [`Bounds`]: each attempt is sent with the attempt timeout, or the
/// time left before the deadline when that is shorter, and no wait (the limiter, a backoff, a
/// `Retry-After`) goes past the deadline. When the deadline came, the third value says what the
/// call was waiting for (the first is then of no use).
pub(crate) async fn send_within(
    http: &reqwest::Client,
    mut request: Request,
    limiter: Option<&RateLimiter>,
    policy: &RetryPolicy,
    limits: AnswerLimits,
    bounds: &Bounds,
) -> (
    Result<reqwest::Result<Response>, RateLimiterUnavailable>,
    u32,
    Option<Waiting>,
) {
    let method = request.method().clone();
    // The path only: a query string may carry values (search terms, a user's data) that do
    // not belong in logs.
    let host = request.url().host_str().unwrap_or("").to_string();
    let path = request.url().path().to_string();
    let endpoint = crate::metrics::endpoint(&request);
    let mut attempt: u32 = 1;
    loop {
        // A body that cannot be cloned (a stream) is sent once.
        let spare = request.try_clone();
        // The wait for the limiter ends at the deadline (a cancelled wait takes no place).
        let acquired = match (limiter, bounds.deadline) {
            (Some(limiter), Some((at, _))) => {
                match tokio::time::timeout_at(at, crate::metrics::acquire(limiter, &endpoint)).await
                {
                    Ok(acquired) => Some(acquired),
                    Err(_) => {
                        let none = Ok(Ok(empty_response()));
                        return (none, attempt - 1, Some(Waiting::Limiter));
                    }
                }
            }
            (Some(limiter), None) => Some(crate::metrics::acquire(limiter, &endpoint).await),
            (None, _) => None,
        };
        let permit = match acquired {
            Some(Ok(permit)) => Some(permit),
            Some(Err(e)) => return (Err(e), attempt - 1, None),
            None => None,
        };
        // This attempt's timeout: the call's own, cut to the time left before its deadline
        // (reqwest applies it to the whole attempt, body included, in place of the client's).
        let left = bounds.left();
        let by_deadline = left.is_some_and(|left| bounds.attempt_timeout.is_none_or(|t| left < t));
        if let Some(timeout) = if by_deadline {
            left
        } else {
            bounds.attempt_timeout
        } {
            *request.timeout_mut() = Some(timeout);
        }
        tracing::trace!(%method, host, path, attempt, "sending request");
        let started = Instant::now();
        let result = http.execute(request).await.map(|r| bounded(r, limits));
        // An answer (or an error) came: the server has counted the request, if it got it.
        if let Some(permit) = permit {
            permit.finish();
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        crate::metrics::answered(&endpoint, &method, &result, started.elapsed());
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
        // An attempt cut short by the deadline: the call ends here.
        if by_deadline && matches!(&result, Err(e) if e.is_timeout()) {
            return (Ok(result), attempt, Some(Waiting::Answer));
        }
        match (
            retry::decide(policy, &bounds.rules, &method, attempt, &outcome),
            spare,
        ) {
            (Next::RetryAfter(wait), Some(spare))
                if bounds.left().is_some_and(|left| wait >= left) =>
            {
                // A wait that cannot end before the deadline is not begun.
                let waiting = match outcome {
                    Attempt::Status {
                        retry_after: Some(_),
                        ..
                    } => Waiting::RetryAfter,
                    _ => Waiting::Backoff,
                };
                drop(spare);
                return (Ok(result), attempt, Some(waiting));
            }
            (Next::RetryAfter(wait), Some(spare)) => {
                crate::metrics::retrying(&endpoint, &outcome);
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
                    Next::GiveUp(GiveUp::NeverRetry) => tracing::debug!(
                        target: "lead_intake::retry",
                        %method,
                        path,
                        attempts = attempt,
                        reason = outcome.reason(),
                        "not retried: the retry rules say never to retry this operation"
                    ),
                    Next::Return => {}
                }
                return (Ok(result), attempt, None);
            }
        }
    }
}

/// The answer with its body read through the one bounded reader every body of the library
/// goes through (operations, `follow`, pagers, the token endpoint): it yields at most
/// `limits.max_size` bytes, then fails with [`AnswerError::TooLarge`] (at once when the
/// `Content-Length` is over the limit), and fails with [`AnswerError::TimedOut`] when the whole
/// body has not come within `limits.timeout` of the headers (a silent server, a trickle) or the
/// HTTP client's own timeout ends the read. Nothing is read before someone reads the body, and
/// what was read is not kept here: whoever collects the body holds at most the limit.
pub(crate) fn bounded(response: Response, limits: AnswerLimits) -> Response {
    use reqwest::ResponseBuilderExt;
    let declared = response.content_length();
    let url = response.url().clone();
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let extensions = response.extensions().clone();
    let started = Instant::now();
    let deadline = started + limits.timeout;
    struct Reading {
        response: Response,
        received: u64,
    }
    type Failure = Box<dyn std::error::Error + Send + Sync>;
    let fail = |error: AnswerError| -> Option<(Result<bytes::Bytes, Failure>, Option<Reading>)> {
        Some((Err(Box::new(error)), None))
    };
    let reading = Reading {
        response,
        received: 0,
    };
    let body = futures_util::stream::unfold(Some(reading), move |reading| async move {
        let mut reading = reading?;
        let limit = limits.max_size;
        if let Some(declared) = declared.filter(|&n| n > limit) {
            return fail(AnswerError::TooLarge {
                limit,
                declared: Some(declared),
            });
        }
        let timed_out = |received| AnswerError::TimedOut {
            after: started.elapsed(),
            received,
        };
        match tokio::time::timeout_at(deadline, reading.response.chunk()).await {
            Err(_) => fail(timed_out(reading.received)),
            Ok(Err(e)) if e.is_timeout() => fail(timed_out(reading.received)),
            Ok(Err(e)) => Some((Err(Box::new(e) as Failure), None)),
            Ok(Ok(None)) => None,
            Ok(Ok(Some(chunk))) => {
                reading.received = reading.received.saturating_add(chunk.len() as u64);
                if reading.received > limit {
                    return fail(AnswerError::TooLarge {
                        limit,
                        declared: None,
                    });
                }
                Some((Ok(chunk), Some(reading)))
            }
        }
    });
    let mut rebuilt = http::Response::builder()
        .status(status)
        .version(version)
        .url(url)
        .body(reqwest::Body::wrap_stream(body))
        .expect("status and version come from a response");
    *rebuilt.headers_mut() = headers;
    rebuilt.extensions_mut().extend(extensions);
    Response::from(rebuilt)
}

/// Whether an answer's Content-Type is JSON (`application/json` or any `+json`).
fn is_json(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::text::is_json_media_type)
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
    let bytes = read_limited_lossy(response).await;
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

/// The body, at most 64 KiB of it, and as far as it came when it breaks off.
async fn read_limited_lossy(mut response: Response) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = BODY_LIMIT.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= BODY_LIMIT {
            break;
        }
    }
    out
}

/// The body of an error answer, at most 64 KiB of it (all an error keeps).
pub(crate) async fn read_limited(mut response: Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = BODY_LIMIT.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= BODY_LIMIT {
            break;
        }
    }
    Ok(out)
}
