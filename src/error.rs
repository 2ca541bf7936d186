//! Typed errors shared by both APIs, and the [`ResponseExt`] calls that produce them; the guide
//! below names every variant.
//!
#![doc = include_str!("guides/errors.md")]

use std::fmt;
use std::future::Future;

use progenitor_client::ResponseValue;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

pub use crate::answer::{AnswerError, DEFAULT_ANSWER_TIMEOUT, DEFAULT_MAX_ANSWER_SIZE};
pub use crate::cause::{TimeoutBound, TransportCause, TransportError};
pub use crate::options::Waiting;
use crate::secret::Redactions;
pub use crate::segment::{InvalidPath, InvalidPathParameter, PathParameterProblem, PathProblem};
use crate::text::{excerpt, is_json_media_type};
use crate::transport::CallContext;

/// One line describing a problem document, for error messages.
pub trait ProblemSummary {
    /// False when the body decoded but carries none of the problem's fields (any JSON object
    /// decodes into a problem whose fields are all optional); such a body is kept as text.
    fn is_problem_document(&self) -> bool;
    /// E.g. `Bad Request: Request validation failed (1 item rejected)`.
    fn summary(&self) -> String;
    /// The failure's identifier for the API's support (Kommo's `trace_id` on a 500), if any.
    fn trace_id(&self) -> Option<&str> {
        None
    }
    /// How long the problem asks to wait before sending again (Kommo's `retry_after`), if any.
    fn retry_after(&self) -> Option<std::time::Duration> {
        None
    }
    /// Whether a 403 that is not a problem document means the account is blocked (Kommo's
    /// nginx page after repeated rate-limit violations).
    fn forbidden_page_means_blocked() -> bool
    where
        Self: Sized,
    {
        false
    }
}

/// An error from a call to Kommo or CloseBot.
///
/// `P` is the API's problem document (`kommo::types::Problem`, `closebot::types::Problem`).
/// No error made from an answer holds a secret of the client's credentials (of 6 bytes or more)
/// in its `Display`, `Debug` or fields: an echo of one, in any spelling (plain, JSON, percent or
/// HTML escapes of any of its characters), is replaced by `[redacted]`, a problem document's
/// fields once decoded too, and a body kept in part never ends with the start of a secret. `Debug` shows a [`ApiError::Decode`]
/// body's length, not its bytes (a success answer may hold secrets, such as CloseBot's CRM keys).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ApiError<P: fmt::Debug + ProblemSummary> {
    /// The API answered an error status with its JSON problem document.
    #[error("{endpoint}: the API answered {status}: {}", problem.summary())]
    Problem {
        /// The path that was called, e.g. `/api/v4/sources`.
        endpoint: String,
        /// The HTTP status.
        status: StatusCode,
        /// The decoded problem document.
        problem: P,
        /// The answer's headers (also [`ApiError::headers`]); `Debug` hides the values of
        /// cookies and of credential-looking headers.
        headers: Box<HeaderMap>,
    },
    /// The API answered a status the call does not expect, or an error whose body is not the
    /// problem document (Kommo's gateway answers 429 and a blocked account's 403 with HTML).
    #[error(
        "{endpoint}: the API answered {status}{} {}",
        content_type_note(content_type),
        excerpt(body)
    )]
    UnexpectedResponse {
        /// The path that was called, e.g. `/api/v4/sources`.
        endpoint: String,
        /// The HTTP status.
        status: StatusCode,
        /// The `Retry-After` header in seconds, when present and numeric.
        retry_after: Option<u64>,
        /// The response's Content-Type, if any.
        content_type: Option<String>,
        /// The body as text (lossy UTF-8, at most 64 KiB).
        body: String,
        /// The answer's headers (also [`ApiError::headers`]).
        headers: Box<HeaderMap>,
    },
    /// 429 Too Many Requests, still after every retry the policy allows (or with a
    /// `Retry-After` longer than its maximum delay). The body is often an HTML page.
    #[error(
        "{endpoint}: rate limited (429) after {attempts} attempt(s){}",
        retry_after.map(|d| format!("; the server asks to wait {}s", d.as_secs())).unwrap_or_default()
    )]
    RateLimited {
        /// The path that was called.
        endpoint: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<std::time::Duration>,
        /// How many times the request was sent.
        attempts: u32,
        /// The body as text (lossy UTF-8, at most 64 KiB).
        body: String,
        /// The answer's headers (also [`ApiError::headers`]).
        headers: Box<HeaderMap>,
    },
    /// A 403 that is not the API's problem document: Kommo's page for an account blocked after
    /// exceeding the rate limits. It is never retried (more requests keep the account blocked);
    /// only Kommo's support can unblock it.
    #[error(
        "{endpoint}: 403 Forbidden with a non-API page: the account may be blocked for exceeding the rate limits (only Kommo support can unblock it) {}",
        excerpt(body)
    )]
    AccountBlocked {
        /// The path that was called.
        endpoint: String,
        /// The response's Content-Type, if any.
        content_type: Option<String>,
        /// The body as text (lossy UTF-8, at most 64 KiB).
        body: String,
        /// The answer's headers (also [`ApiError::headers`]).
        headers: Box<HeaderMap>,
    },
    /// OAuth failed: the refresh token was refused, the callback could not store new tokens,
    /// or the token endpoint failed. See [`crate::oauth::AuthError`].
    #[error("{endpoint}: not sent with a valid token: {error}")]
    Auth {
        /// The path that was called.
        endpoint: String,
        /// What went wrong.
        #[source]
        error: crate::auth::AuthError,
    },
    /// The rate limiter could not grant the request (a shared limiter whose Redis cannot be
    /// reached, without a local fallback), so it was not sent: never sent unthrottled. Trying
    /// again later may work.
    #[error("{endpoint}: {error}")]
    RateLimiterUnavailable {
        /// The path that was called.
        endpoint: String,
        /// What failed, and where (Redis's address without credentials, and the key).
        #[source]
        error: crate::ratelimit::RateLimiterUnavailable,
    },
    /// An answer whose body could not be read whole: larger than the client's
    /// `max_answer_size`, or not arrived within its `answer_timeout` (see [`AnswerError`]). It
    /// was not decoded, and at most the limit of it was held.
    #[error("{endpoint}: {error}")]
    Answer {
        /// The path that was called.
        endpoint: String,
        /// What went wrong: the size limit and the declared length, or the time and the bytes
        /// that came.
        #[source]
        error: AnswerError,
    },
    /// A success response whose body does not match the specification.
    #[error("cannot decode the answer{} at `{path}`: {message}", of_endpoint(.endpoint))]
    Decode {
        /// The path that was called (empty if the call was not made through this crate's
        /// clients).
        endpoint: String,
        /// Where in the body decoding failed, e.g. `_embedded.sources[1].id` (`.` for the root).
        path: String,
        /// What was wrong there.
        message: String,
        /// The start of the body as received: at most 64 KiB of it (an error never holds a whole
        /// answer, which may be as large as the client's `max_answer_size`).
        body: bytes::Bytes,
        /// The length of the whole body, in bytes.
        body_len: usize,
    },
    /// The request could not be sent, or the answer not received: the message names the path,
    /// the cause ([`TransportCause`]: refused, DNS, TLS, a timeout and which, a reset) and the
    /// attempts; see [`ApiError::is_timeout`] and [`ApiError::is_connect`].
    #[error("{0}")]
    Transport(#[source] TransportError),
    /// The call's deadline ([`CallOptions::deadline`](crate::options::CallOptions::deadline))
    /// came: every wait of the call counts (the rate limiter, each answer, backoffs,
    /// `Retry-After`). It says what the call was waiting for; a wait that could not end before
    /// the deadline was not begun.
    #[error(
        "{endpoint}: the call's deadline of {deadline:?} came while waiting for {waiting_for}, after {attempts} attempt(s)"
    )]
    DeadlineExceeded {
        /// The path that was called.
        endpoint: String,
        /// The deadline, as given.
        deadline: std::time::Duration,
        /// How many times the request was sent.
        attempts: u32,
        /// What the call was waiting for when it stopped.
        waiting_for: Waiting,
    },
    /// A HAL link that is not one of the client's own API (another origin, a path outside the
    /// base URL's path, or not a URL, such as the documents' placeholder `LINK`). It was not
    /// followed.
    #[error("refusing to follow the link {href:?}: {reason}")]
    InvalidLink {
        /// The href as given.
        href: String,
        /// Why it was refused.
        reason: String,
    },
    /// The request was refused before it was sent (e.g. a builder value that does not convert).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A list item that does not decode into its type, from a pager told to stop on one
    /// (`OnUnrecognized::Fail` in `lead_intake::pagination`). By default such items are yielded
    /// instead.
    #[error("{item} ({count} such item(s) on the page)")]
    UnrecognizedItem {
        /// The first such item of the page.
        item: Box<crate::list::UnrecognizedItem>,
        /// How many the page had.
        count: usize,
    },
    /// A path parameter that cannot be one segment of its operation's path (empty, `.`, `..`,
    /// or one of those percent-encoded): it names the operation, the parameter and why. Nothing
    /// was sent. Every other value is sent percent-encoded as exactly one segment, so no value
    /// (a UID from a webhook, a widget code) moves a request to another endpoint.
    #[error(transparent)]
    InvalidPathParameter(InvalidPathParameter),
    /// A pager's stream that has sent its page limit of requests and the list has not ended
    /// (`Pager::page_limit` in `lead_intake::pagination`, 10,000 by default): more likely a
    /// server sending `next` links or full pages without end than a list that long. Nothing
    /// more was sent; the pages before it were yielded.
    #[error(
        "the list did not end after {pages} pages, the pager's page limit: stopped rather than read a list without end (if the list really is longer, raise the limit with the pager's `.page_limit(n)`)"
    )]
    TooManyPages {
        /// How many pages (requests) the stream read: its page limit.
        pages: u32,
    },
    /// The request breaks a limit the API documents (e.g. continueBot's at most 10
    /// `execute_handlers`); it was refused before anything was sent.
    #[error("invalid request, not sent: {0}")]
    LimitExceeded(#[source] LimitExceeded),
    /// The path of a raw call (`client.request(method, path)`, `lead_intake::raw`) that could reach
    /// something outside the client's base URL (another origin, a dot segment, a query or a
    /// backslash in the path): refused before anything was sent.
    #[error(transparent)]
    InvalidPath(InvalidPath),
}

/// A value of a request over a limit the API documents, found before sending: where it is, which
/// limit, and by how much.
///
/// ```
/// # use lead_intake::error::{LimitExceeded, Limit};
/// let e = LimitExceeded { path: "execute_handlers[2].params.buttons".into(), handler: Some(2), limit: Limit::MaxItems(25), actual: 26 };
/// assert_eq!(e.to_string(), "`execute_handlers[2].params.buttons` (handler 2) has 26 items; at most 25 are allowed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{path}`{} has {actual} {}; at most {} are allowed",
    handler.map(|h| format!(" (handler {h})")).unwrap_or_default(),
    limit.unit(),
    limit.max()
)]
pub struct LimitExceeded {
    /// Where in the request body, e.g. `execute_handlers[2].params.buttons`.
    pub path: String,
    /// The index of the `execute_handlers` entry at fault, when the limit is one handler's.
    pub handler: Option<usize>,
    /// The limit.
    pub limit: Limit,
    /// What the request has: items, or characters (Unicode scalar values).
    pub actual: usize,
}

/// A documented limit of a request value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// At most this many items in a list.
    MaxItems(usize),
    /// At most this many characters in a string.
    MaxLength(usize),
}

impl Limit {
    /// The number the limit allows.
    pub fn max(&self) -> usize {
        match self {
            Self::MaxItems(n) | Self::MaxLength(n) => *n,
        }
    }

    fn unit(&self) -> &'static str {
        match self {
            Self::MaxItems(_) => "items",
            Self::MaxLength(_) => "characters",
        }
    }
}

fn content_type_note(content_type: &Option<String>) -> String {
    match content_type {
        Some(ct) => format!(" with a {ct} body:"),
        None => " with no Content-Type:".to_string(),
    }
}

impl<P: fmt::Debug + ProblemSummary> ApiError<P> {
    /// A transport failure of a call, its URL without the query ([`without_query`]).
    pub(crate) fn transport(e: reqwest::Error, context: &CallContext) -> Self {
        Self::Transport(TransportError::new(
            context.endpoint.clone(),
            without_query(e),
            context.attempts,
            context.attempt_timeout,
        ))
    }

    /// True when a call ended because something did not come in time: a connect or request
    /// timeout ([`ApiError::Transport`]), the answer's timeout ([`ApiError::Answer`]), or the
    /// call's deadline ([`ApiError::DeadlineExceeded`]).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Transport(e) => e.is_timeout(),
            Self::Answer { error, .. } => matches!(error, AnswerError::TimedOut { .. }),
            Self::DeadlineExceeded { .. } => true,
            _ => false,
        }
    }

    /// True when no connection could be made ([`ApiError::Transport`] with a refused
    /// connection, a DNS failure, a TLS failure or a connect timeout): nothing was sent.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Transport(e) if e.is_connect())
    }

    /// The HTTP status, when the API answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Problem { status, .. } | Self::UnexpectedResponse { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            Self::AccountBlocked { .. } => Some(StatusCode::FORBIDDEN),
            _ => None,
        }
    }

    /// The headers of the answer the error was made from (a problem, an unexpected status, a
    /// 429, a blocked account's 403), e.g. Kommo's rate-limit or request-ID headers; `None` for
    /// an error without an answer. Values that held a secret of the client's credentials are
    /// redacted like the body.
    ///
    /// ```no_run
    /// # async fn f(kommo: lead_intake::kommo::Client) {
    /// use lead_intake::prelude::*;
    /// if let Err(e) = kommo.list_sources().send().or_empty().await {
    ///     let server = e.headers().and_then(|h| h.get("server"));
    ///     println!("{e} (server: {server:?})");
    /// }
    /// # }
    /// ```
    pub fn headers(&self) -> Option<&HeaderMap> {
        match self {
            Self::Problem { headers, .. }
            | Self::UnexpectedResponse { headers, .. }
            | Self::RateLimited { headers, .. }
            | Self::AccountBlocked { headers, .. } => Some(headers),
            _ => None,
        }
    }

    /// The problem document, when the API sent one.
    pub fn problem(&self) -> Option<&P> {
        match self {
            Self::Problem { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The failure's identifier for the API's support, when the problem document carries one
    /// (Kommo's `trace_id`, shown on its 500s; support asks for it). It is also in the message.
    pub fn trace_id(&self) -> Option<&str> {
        self.problem().and_then(ProblemSummary::trace_id)
    }

    /// How long the server asks to wait before sending again: the `Retry-After` header, else a
    /// JSON body's `retry_after` (for [`ApiError::RateLimited`] and [`ApiError::Problem`]);
    /// `Retry-After` in whole seconds for [`ApiError::UnexpectedResponse`].
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            Self::UnexpectedResponse { retry_after, .. } => {
                retry_after.map(std::time::Duration::from_secs)
            }
            Self::Problem { problem, .. } => problem.retry_after(),
            _ => None,
        }
    }

    /// True for a 429: the rate limit was exceeded.
    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(StatusCode::TOO_MANY_REQUESTS)
    }

    /// True for [`ApiError::AccountBlocked`]: the page Kommo serves to an account blocked for
    /// exceeding the rate limits. Never retry it.
    pub fn is_account_blocked(&self) -> bool {
        matches!(self, Self::AccountBlocked { .. })
    }

    /// True when the request certainly had no effect on the server: it was refused before
    /// being sent, or answered with a 4xx (including 429 and 403), or its connection was
    /// refused. False when it may have been applied (a 5xx, a timeout, a success answer that
    /// did not decode).
    pub fn certainly_not_applied(&self) -> bool {
        match self {
            Self::InvalidLink { .. }
            | Self::InvalidRequest(_)
            | Self::InvalidPathParameter(_)
            | Self::InvalidPath(_)
            | Self::LimitExceeded(_)
            | Self::TooManyPages { .. }
            | Self::RateLimiterUnavailable { .. }
            | Self::Auth { .. } => true,
            Self::Transport(e) => e.is_connect() || e.is_builder(),
            Self::DeadlineExceeded { attempts, .. } => *attempts == 0,
            Self::Decode { .. } | Self::UnrecognizedItem { .. } | Self::Answer { .. } => false,
            other => other.status().is_some_and(|s| s.is_client_error()),
        }
    }
}

/// Ties a generated response type to its API's problem document, so [`ResponseExt`] knows how
/// to decode errors. Implemented by build.rs for every success type of both specifications.
pub trait ApiResponse {
    /// The API's problem document.
    type Problem: fmt::Debug + ProblemSummary + DeserializeOwned;
}

/// Turns a raw generated call into a typed result: implemented for every generated call's
/// future, so it reads `client.op().send().body().await?`.
///
/// ```no_run
/// # async fn f(client: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
/// use lead_intake::prelude::*;
/// let widget = client.get_widget().widget_code("amo_asterisk").send().body().await?;
/// let page = client.list_widgets().limit(250).send().or_empty().await?; // 204: an empty page
/// # let _ = (widget, page); Ok(()) }
/// ```
///
/// **Forgot `.send()`?** A request builder is not a call: `client.op().body()` does not compile,
/// and the compiler's message ("the method `body` exists ... but its trait bounds were not
/// satisfied", naming `Future` and a generated builder type) points into generated code. The
/// builder's `.send()` makes the call; `.body()`, `.or_empty()` and `.or_gone()` finish it.
///
/// ```compile_fail
/// # async fn f(client: lead_intake::kommo::Client) {
/// use lead_intake::prelude::*;
/// let page = client.list_widgets().or_empty().await; // missing .send()
/// # }
/// ```
pub trait ResponseExt<T>:
    Future<Output = Result<ResponseValue<T>, progenitor_client::Error<()>>> + Sized
{
    /// The decoded body. A 204, or any status the operation does not document, is an error
    /// ([`ApiError::UnexpectedResponse`], or [`ApiError::Problem`] when the body is one); use
    /// [`ResponseExt::or_empty`] for list calls.
    fn body(self) -> impl Future<Output = Result<T, ApiError<T::Problem>>>
    where
        T: DeserializeOwned + ApiResponse,
    {
        let call = answer(self);
        async move {
            match call.await? {
                Answer::Body(value) => Ok(value.into_inner()),
                no_content @ Answer::NoContent { .. } => Err(no_content.unexpected()),
            }
        }
    }

    /// Like [`ResponseExt::body`], with the answer's status and headers: for a header the API
    /// sends beside the body (a request ID, a rate-limit count), as Stainless's
    /// `with_raw_response` gives them. Errors are [`ResponseExt::body`]'s, and carry the headers
    /// too ([`ApiError::headers`]).
    ///
    /// ```no_run
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// use lead_intake::prelude::*;
    /// let answer = kommo.get_source().id(17619939).send().body_with_metadata().await?;
    /// println!("{} {:?}", answer.status(), answer.headers().get("date"));
    /// let source = answer.into_body();
    /// # let _ = source; Ok(()) }
    /// ```
    fn body_with_metadata(
        self,
    ) -> impl Future<Output = Result<WithMetadata<T>, ApiError<T::Problem>>>
    where
        T: DeserializeOwned + ApiResponse,
    {
        let call = answer(self);
        async move {
            match call.await? {
                Answer::Body(value) => Ok(WithMetadata::from(value)),
                no_content @ Answer::NoContent { .. } => Err(no_content.unexpected()),
            }
        }
    }

    /// Like [`ResponseExt::body`], but an entity that is gone is `Ok(None)`: a `204 No Content`
    /// (Kommo's answer to `getSource` for a deleted source), or a `404` with the API's problem
    /// document or no body. A 404 with any other body (an HTML page: the wrong host or path) is
    /// still an error, like every other status.
    ///
    /// ```no_run
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// use lead_intake::prelude::*;
    /// match kommo.get_source().id(17619939).send().or_gone().await? {
    ///     Some(source) => println!("{:?}", source.name),
    ///     None => println!("deleted"),
    /// }
    /// # Ok(()) }
    /// ```
    fn or_gone(self) -> impl Future<Output = Result<Option<T>, ApiError<T::Problem>>>
    where
        T: DeserializeOwned + ApiResponse,
    {
        let call = answer(self);
        async move {
            match call.await {
                Ok(Answer::Body(value)) => Ok(Some(value.into_inner())),
                Ok(Answer::NoContent { .. }) => Ok(None),
                Err(e) if is_gone(&e) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }

    /// The same call with options for it alone ([`CallOptions`](crate::options::CallOptions):
    /// a deadline, a timeout per attempt, the number of attempts, extra headers); every other
    /// call of the client keeps the client's settings. Finish it as any call:
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use lead_intake::prelude::*;
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// let options = CallOptions::new().deadline(Duration::from_secs(5)).max_attempts(2);
    /// let sources = kommo.list_sources().send().with_options(options).or_empty().await?;
    /// # let _ = sources; Ok(()) }
    /// ```
    fn with_options(
        self,
        options: crate::options::CallOptions,
    ) -> impl Future<Output = Result<ResponseValue<T>, progenitor_client::Error<()>>> {
        crate::options::with_options(self, options)
    }

    /// Like [`ResponseExt::body`], but `204 No Content` (Kommo's empty list, and the end of
    /// its pages) is `T::default()`: an empty collection, not an error.
    fn or_empty(self) -> impl Future<Output = Result<T, ApiError<T::Problem>>>
    where
        T: DeserializeOwned + Default + ApiResponse,
    {
        let call = answer(self);
        async move {
            match call.await? {
                Answer::Body(value) => Ok(value.into_inner()),
                Answer::NoContent { .. } => Ok(T::default()),
            }
        }
    }
}

/// What [`ResponseExt::or_gone`] reads as "gone".
pub(crate) fn is_gone<P: fmt::Debug + ProblemSummary>(error: &ApiError<P>) -> bool {
    match error {
        ApiError::Problem { status, .. } => *status == StatusCode::NOT_FOUND,
        ApiError::UnexpectedResponse { status, body, .. } => {
            *status == StatusCode::NOT_FOUND && body.trim().is_empty()
        }
        _ => false,
    }
}

impl<F, T> ResponseExt<T> for F where
    F: Future<Output = Result<ResponseValue<T>, progenitor_client::Error<()>>>
{
}

/// ` of {endpoint}`, or nothing when it is not known.
fn of_endpoint(endpoint: &str) -> String {
    if endpoint.is_empty() {
        String::new()
    } else {
        format!(" of {endpoint}")
    }
}

/// A raw generated call's outcome.
pub(crate) type RawCall<T> = Result<ResponseValue<T>, progenitor_client::Error<()>>;

/// A call's answer that is not an error: its body (with its status and headers), or `204 No
/// Content`.
pub(crate) enum Answer<T> {
    Body(ResponseValue<T>),
    NoContent {
        endpoint: String,
        headers: Box<HeaderMap>,
    },
}

impl<T> Answer<T> {
    /// A 204 where a body was expected, as the error [`ResponseExt::body`] returns.
    pub(crate) fn unexpected<P: fmt::Debug + ProblemSummary>(self) -> ApiError<P> {
        let (endpoint, headers) = match self {
            Answer::NoContent { endpoint, headers } => (endpoint, headers),
            Answer::Body(value) => (String::new(), Box::new(value.headers().clone())),
        };
        ApiError::UnexpectedResponse {
            endpoint,
            status: StatusCode::NO_CONTENT,
            retry_after: None,
            content_type: None,
            body: String::new(),
            headers,
        }
    }
}

/// A decoded body with the status and headers of its answer: from
/// [`ResponseExt::body_with_metadata`] and the raw call's `body_with_metadata`
/// (`lead_intake::raw`). `Debug` hides the values of cookies and credential-looking headers.
///
/// ```
/// use lead_intake::error::WithMetadata;
/// let answer = WithMetadata::new(reqwest::StatusCode::OK, reqwest::header::HeaderMap::new(), 7);
/// assert_eq!((answer.status().as_u16(), *answer.body()), (200, 7));
/// assert_eq!(answer.into_body(), 7);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct WithMetadata<T> {
    status: StatusCode,
    headers: HeaderMap,
    body: T,
}

impl<T> WithMetadata<T> {
    /// A body with its status and headers.
    pub fn new(status: StatusCode, headers: HeaderMap, body: T) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The decoded body.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The decoded body, without the rest.
    pub fn into_body(self) -> T {
        self.body
    }

    /// The status, the headers and the body.
    pub fn into_parts(self) -> (StatusCode, HeaderMap, T) {
        (self.status, self.headers, self.body)
    }
}

impl<T> From<ResponseValue<T>> for WithMetadata<T> {
    fn from(value: ResponseValue<T>) -> Self {
        let status = value.status();
        let headers = value.headers().clone();
        Self::new(status, headers, value.into_inner())
    }
}

impl<T: fmt::Debug> fmt::Debug for WithMetadata<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithMetadata")
            .field("status", &self.status)
            .field("headers", &SafeHeaders(&self.headers))
            .field("body", &self.body)
            .finish()
    }
}

/// Headers for `Debug`: the values of cookies and of headers whose name suggests a credential
/// (`authorization`, `*token*`, `*key*`, `*secret*`, `*session*`, `*auth*`) are shown as
/// `[redacted]`.
pub(crate) struct SafeHeaders<'a>(pub(crate) &'a HeaderMap);

impl fmt::Debug for SafeHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if is_sensitive_header(name.as_str()) {
                map.entry(&name.as_str(), &format_args!("[redacted]"));
            } else {
                map.entry(&name.as_str(), value);
            }
        }
        map.finish()
    }
}

/// Whether a header's value is hidden from `Debug` (see [`SafeHeaders`]).
fn is_sensitive_header(name: &str) -> bool {
    const WORDS: [&str; 6] = ["cookie", "auth", "token", "key", "secret", "session"];
    let name = name.to_ascii_lowercase();
    WORDS.iter().any(|w| name.contains(w))
}

/// Headers with every secret of `redactions` removed from their values (a value that is not a
/// valid header value once scrubbed is dropped).
fn redact_headers(headers: &HeaderMap, redactions: &Redactions) -> Box<HeaderMap> {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let scrubbed = redactions.scrubbed(text.clone());
        if scrubbed == text {
            out.append(name.clone(), value.clone());
        } else if let Ok(value) = reqwest::header::HeaderValue::from_str(&scrubbed) {
            out.append(name.clone(), value);
        }
    }
    Box::new(out)
}

/// Awaits a raw call (a generated one, or one made like it) and classifies its outcome.
///
/// Not an `async fn`: [`crate::transport::scope`] boxes the call now, so the future returned
/// here does not hold the call's kilobytes inline (see `scope`); the classification (which
/// reads an error's body and redacts it) is boxed too, for the same reason.
pub(crate) fn answer<T, P>(
    call: impl Future<Output = RawCall<T>>,
) -> impl Future<Output = Result<Answer<T>, ApiError<P>>>
where
    T: DeserializeOwned,
    P: fmt::Debug + ProblemSummary + DeserializeOwned,
{
    let scoped = crate::transport::scope(call);
    async move {
        let (result, context) = scoped.await;
        Box::pin(classify(result, context.unwrap_or_default())).await
    }
}

/// How a call's outcome becomes a value or an [`ApiError`]: every rule in one place. Every error
/// leaves through [`ApiError::redacted`] with the secrets of the call's credentials.
async fn classify<T, P>(result: RawCall<T>, context: CallContext) -> Result<Answer<T>, ApiError<P>>
where
    T: DeserializeOwned,
    P: fmt::Debug + ProblemSummary + DeserializeOwned,
{
    let redactions = context.redactions.clone();
    classify_answer(result, context)
        .await
        .map_err(|e| e.redacted(&redactions))
}

/// [`classify`] before the last redaction.
async fn classify_answer<T, P>(
    result: RawCall<T>,
    context: CallContext,
) -> Result<Answer<T>, ApiError<P>>
where
    T: DeserializeOwned,
    P: fmt::Debug + ProblemSummary + DeserializeOwned,
{
    use progenitor_client::Error as Raw;
    let CallContext {
        endpoint,
        redactions,
        attempts,
        auth_failure,
        limiter_failure,
        path_failure,
        deadline_hit,
        attempt_timeout,
    } = context;
    // A path parameter refused before the request was built (crate::transport::path_segment).
    if let Some(error) = path_failure {
        return Err(ApiError::InvalidPathParameter(error));
    }
    // The stand-in answer of a call whose deadline came (crate::transport's doc).
    if let Some((waiting_for, deadline)) = deadline_hit {
        return Err(ApiError::DeadlineExceeded {
            endpoint,
            deadline,
            attempts,
            waiting_for,
        });
    }
    // The context again, for the transport errors below (its parts are taken apart above).
    let context = CallContext {
        endpoint: endpoint.clone(),
        attempts,
        attempt_timeout,
        ..CallContext::default()
    };
    // The stand-in answer of a request the rate limiter could not grant, or whose token request
    // it could not grant (crate::transport's doc).
    if let Some(error) = limiter_failure {
        return Err(ApiError::RateLimiterUnavailable { endpoint, error });
    }
    if let Some(crate::auth::AuthError::RateLimiterUnavailable(error)) = auth_failure {
        return Err(ApiError::RateLimiterUnavailable { endpoint, error });
    }
    // The stand-in answer of a request whose credentials failed (crate::transport's doc).
    if let Some(error) = auth_failure {
        return Err(ApiError::Auth { endpoint, error });
    }
    let response = match result {
        Ok(value) => return Ok(Answer::Body(value)),
        Err(Raw::UnexpectedResponse(response)) => response,
        Err(Raw::InvalidResponsePayload(body, _)) => {
            return Err(decode_error::<T, P>(endpoint, body, &redactions));
        }
        Err(Raw::CommunicationError(e) | Raw::ResponseBodyError(e) | Raw::InvalidUpgrade(e)) => {
            return Err(body_failure(&context, e));
        }
        Err(Raw::ErrorResponse(value)) => {
            return Err(ApiError::UnexpectedResponse {
                endpoint,
                status: value.status(),
                retry_after: None,
                content_type: None,
                body: String::new(),
                headers: Box::new(value.headers().clone()),
            });
        }
        Err(Raw::InvalidRequest(message)) => {
            return Err(ApiError::InvalidRequest(in_user_terms(message)));
        }
        Err(Raw::Custom(message)) => return Err(ApiError::InvalidRequest(message)),
    };
    // An answer made without a client's pipeline has no context: its own URL says where.
    let endpoint = if endpoint.is_empty() {
        response.url().path().to_string()
    } else {
        endpoint
    };
    let status = response.status();
    let kept_headers = Box::new(response.headers().clone());
    if status == StatusCode::NO_CONTENT {
        return Ok(Answer::NoContent {
            endpoint,
            headers: kept_headers,
        });
    }
    let headers = response.headers();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let header_wait = crate::retry::retry_after(headers);
    // UnexpectedResponse keeps whole seconds (an HTTP date is turned into seconds from now).
    let retry_after = header_wait.map(|d| d.as_secs());
    let url = response.url().clone();
    let bytes = match crate::transport::read_limited(response).await {
        Ok(bytes) => bytes,
        // A body error carries no URL of its own: say which answer it was.
        Err(e) => return Err(body_failure(&context, e.with_url(url))),
    };
    // A server that echoes the request's credentials must not put them into the error, nor a
    // cut at the limit the first characters of one.
    let bytes = redactions.keep(&bytes, crate::transport::BODY_LIMIT);
    let text = || String::from_utf8_lossy(&bytes).into_owned();
    let is_json = content_type.as_deref().is_some_and(is_json_media_type);
    if status == StatusCode::TOO_MANY_REQUESTS {
        // The header wins; without it, a JSON body's `retry_after` (as the retry layer reads it).
        let body_wait = || {
            is_json
                .then(|| crate::retry::retry_after_in_body(&bytes))
                .flatten()
        };
        return Err(ApiError::RateLimited {
            endpoint,
            retry_after: header_wait.or_else(body_wait),
            attempts: attempts.max(1),
            body: text(),
            headers: kept_headers,
        });
    }
    if (is_json || content_type.is_none())
        && let Some(problem) = decode_problem::<P>(&bytes, &redactions)
        && problem.is_problem_document()
    {
        return Err(ApiError::Problem {
            endpoint,
            status,
            problem,
            headers: kept_headers,
        });
    }
    if status == StatusCode::FORBIDDEN && P::forbidden_page_means_blocked() {
        return Err(ApiError::AccountBlocked {
            endpoint,
            content_type,
            body: text(),
            headers: kept_headers,
        });
    }
    Err(ApiError::UnexpectedResponse {
        endpoint,
        status,
        retry_after,
        content_type,
        body: text(),
        headers: kept_headers,
    })
}

/// A failure to send or to read an answer: [`ApiError::Answer`] when the bounded reader gave up
/// on the body (too large, too slow), else [`ApiError::Transport`].
fn body_failure<P: fmt::Debug + ProblemSummary>(
    context: &CallContext,
    e: reqwest::Error,
) -> ApiError<P> {
    match AnswerError::find(&e) {
        Some(error) => ApiError::Answer {
            endpoint: context.endpoint.clone(),
            error: error.clone(),
        },
        None => ApiError::transport(e, context),
    }
}

/// progenitor's builder errors in the caller's terms: `conversion to `:: std :: num ::
/// NonZeroU32` for limit failed` says which Rust type the value did not fit, and `uid was not
/// initialized` names a setter the caller never called.
pub(crate) fn in_user_terms(message: String) -> String {
    // "uid was not initialized in accept_incoming_lead" (build.rs names the operation).
    if let Some((name, operation)) = message
        .split_once(" was not initialized")
        .map(|(name, rest)| (name, rest.strip_prefix(" in ").unwrap_or_default()))
    {
        let prefix = if operation.is_empty() {
            String::new()
        } else {
            format!("`{operation}()`: ")
        };
        return if name == "body" {
            format!("{prefix}the request body was not given: call `.body(..)` before `.send()`")
        } else {
            format!(
                "{prefix}the required parameter `{name}` was not given: call `.{name}(..)` before `.send()`"
            )
        };
    }
    if let Some(rest) = message.strip_prefix("conversion to `")
        && let Some((ty, tail)) = rest.split_once("` for ")
        && let Some(name) = tail.strip_suffix(" failed")
    {
        let ty: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
        let takes = match ty.rsplit("::").next().unwrap_or(&ty) {
            "NonZeroU32" | "NonZeroU64" | "NonZeroUsize" => "a whole number from 1",
            "u32" | "u64" | "usize" => "a whole number from 0",
            "i32" | "i64" => "a whole number",
            _ => "",
        };
        return if takes.is_empty() {
            format!("`{name}` has a value that is not a valid `{ty}`")
        } else {
            format!("`{name}` is out of range: it takes {takes}")
        };
    }
    message
}

/// A transport error with its URL's query and fragment removed. reqwest puts the whole URL into
/// the error's text, and a query carries the caller's data (filter values: a phone number, a
/// search term, a lead's uid), which error text, like the logs, leaves out. The path stays.
pub(crate) fn without_query(mut e: reqwest::Error) -> reqwest::Error {
    if let Some(url) = e.url_mut() {
        url.set_query(None);
        url.set_fragment(None);
    }
    e
}

/// The problem document of an error answer, its strings redacted once decoded (an escape that
/// the body's redaction could not read, such as one escaped twice, is read by then).
fn decode_problem<P: DeserializeOwned>(bytes: &[u8], redactions: &Redactions) -> Option<P> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    redactions.apply_to_json(&mut value);
    serde_json::from_value(value).ok()
}

/// Decodes again, tracking the path, to say where the body disagrees with the type. serde's
/// message quotes the value it refused: [`ApiError::redacted`] removes the secrets from it; the
/// kept body is redacted and cut here.
fn decode_error<T: DeserializeOwned, P: fmt::Debug + ProblemSummary>(
    endpoint: String,
    body: bytes::Bytes,
    redactions: &Redactions,
) -> ApiError<P> {
    let mut de = serde_json::Deserializer::from_slice(&body);
    let (path, message) = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => (e.path().to_string(), e.into_inner().to_string()),
        // Cannot happen for the same bytes and type; keep a clear message regardless.
        Ok(_) => (".".to_string(), "the body did not decode".to_string()),
    };
    let body_len = body.len();
    ApiError::Decode {
        endpoint,
        path,
        message,
        body: redactions.keep(&body, crate::transport::BODY_LIMIT).into(),
        body_len,
    }
}

impl<P: fmt::Debug + ProblemSummary> ApiError<P> {
    /// The error with every secret of `redactions` removed from every text it holds (see
    /// [`crate::secret::redact`] for the spellings). [`ApiError::Problem`]'s document is
    /// redacted when it is decoded (`P` is opaque here).
    pub(crate) fn redacted(self, redactions: &Redactions) -> Self {
        if redactions.0.is_empty() {
            return self;
        }
        let text = |text| redactions.scrubbed(text);
        match self {
            Self::Problem {
                endpoint,
                status,
                problem,
                headers,
            } => Self::Problem {
                endpoint: text(endpoint),
                status,
                problem,
                headers: redact_headers(&headers, redactions),
            },
            Self::UnexpectedResponse {
                endpoint,
                status,
                retry_after,
                content_type,
                body,
                headers,
            } => Self::UnexpectedResponse {
                endpoint: text(endpoint),
                status,
                retry_after,
                content_type: content_type.map(text),
                body: text(body),
                headers: redact_headers(&headers, redactions),
            },
            Self::RateLimited {
                endpoint,
                retry_after,
                attempts,
                body,
                headers,
            } => Self::RateLimited {
                endpoint: text(endpoint),
                retry_after,
                attempts,
                body: text(body),
                headers: redact_headers(&headers, redactions),
            },
            Self::AccountBlocked {
                endpoint,
                content_type,
                body,
                headers,
            } => Self::AccountBlocked {
                endpoint: text(endpoint),
                content_type: content_type.map(text),
                body: text(body),
                headers: redact_headers(&headers, redactions),
            },
            Self::Auth { endpoint, error } => Self::Auth {
                endpoint: text(endpoint),
                error: error.redacted(redactions),
            },
            Self::Decode {
                endpoint,
                path,
                message,
                body,
                body_len,
            } => Self::Decode {
                endpoint: text(endpoint),
                path: text(path),
                message: text(message),
                body: match redactions.apply_bytes(&body) {
                    Some(redacted) => redacted.into(),
                    None => body,
                },
                body_len,
            },
            Self::InvalidLink { href, reason } => Self::InvalidLink {
                href: text(href),
                reason: text(reason),
            },
            Self::InvalidRequest(message) => Self::InvalidRequest(text(message)),
            Self::UnrecognizedItem { item, count } => Self::UnrecognizedItem {
                item: Box::new(item.redacted(redactions)),
                count,
            },
            // No text from a server: a value the caller gave, counts, limits.
            other @ (Self::RateLimiterUnavailable { .. }
            | Self::Answer { .. }
            | Self::Transport(_)
            | Self::DeadlineExceeded { .. }
            | Self::LimitExceeded(_)
            | Self::InvalidPathParameter(_)
            | Self::InvalidPath(_)
            | Self::TooManyPages { .. }) => other,
        }
    }
}

impl<P: fmt::Debug + ProblemSummary> fmt::Debug for ApiError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Problem {
                endpoint,
                status,
                problem,
                headers,
            } => f
                .debug_struct("Problem")
                .field("endpoint", endpoint)
                .field("status", status)
                .field("problem", problem)
                .field("headers", &SafeHeaders(headers))
                .finish(),
            Self::UnexpectedResponse {
                endpoint,
                status,
                retry_after,
                content_type,
                body,
                headers,
            } => f
                .debug_struct("UnexpectedResponse")
                .field("endpoint", endpoint)
                .field("status", status)
                .field("retry_after", retry_after)
                .field("content_type", content_type)
                .field("body", body)
                .field("headers", &SafeHeaders(headers))
                .finish(),
            Self::RateLimited {
                endpoint,
                retry_after,
                attempts,
                body,
                headers,
            } => f
                .debug_struct("RateLimited")
                .field("endpoint", endpoint)
                .field("retry_after", retry_after)
                .field("attempts", attempts)
                .field("body", body)
                .field("headers", &SafeHeaders(headers))
                .finish(),
            Self::AccountBlocked {
                endpoint,
                content_type,
                body,
                headers,
            } => f
                .debug_struct("AccountBlocked")
                .field("endpoint", endpoint)
                .field("content_type", content_type)
                .field("body", body)
                .field("headers", &SafeHeaders(headers))
                .finish(),
            Self::Auth { endpoint, error } => f
                .debug_struct("Auth")
                .field("endpoint", endpoint)
                .field("error", error)
                .finish(),
            Self::RateLimiterUnavailable { endpoint, error } => f
                .debug_struct("RateLimiterUnavailable")
                .field("endpoint", endpoint)
                .field("error", error)
                .finish(),
            Self::Decode {
                endpoint,
                path,
                message,
                body,
                body_len,
            } => f
                .debug_struct("Decode")
                .field("endpoint", endpoint)
                .field("path", path)
                .field("message", message)
                .field("body", &format_args!("<{} bytes>", body.len()))
                .field("body_len", body_len)
                .finish(),
            Self::Answer { endpoint, error } => f
                .debug_struct("Answer")
                .field("endpoint", endpoint)
                .field("error", error)
                .finish(),
            Self::Transport(e) => f.debug_tuple("Transport").field(e).finish(),
            Self::DeadlineExceeded {
                endpoint,
                deadline,
                attempts,
                waiting_for,
            } => f
                .debug_struct("DeadlineExceeded")
                .field("endpoint", endpoint)
                .field("deadline", deadline)
                .field("attempts", attempts)
                .field("waiting_for", waiting_for)
                .finish(),
            Self::InvalidLink { href, reason } => f
                .debug_struct("InvalidLink")
                .field("href", href)
                .field("reason", reason)
                .finish(),
            Self::InvalidRequest(message) => {
                f.debug_tuple("InvalidRequest").field(message).finish()
            }
            Self::UnrecognizedItem { item, count } => f
                .debug_struct("UnrecognizedItem")
                .field("item", item)
                .field("count", count)
                .finish(),
            Self::LimitExceeded(limit) => f.debug_tuple("LimitExceeded").field(limit).finish(),
            Self::InvalidPathParameter(e) => {
                f.debug_tuple("InvalidPathParameter").field(e).finish()
            }
            Self::InvalidPath(e) => f.debug_tuple("InvalidPath").field(e).finish(),
            Self::TooManyPages { pages } => f
                .debug_struct("TooManyPages")
                .field("pages", pages)
                .finish(),
        }
    }
}

#[cfg(test)]
mod user_terms_tests {
    use super::in_user_terms;

    #[test]
    fn builder_errors_are_said_in_the_callers_terms() {
        assert_eq!(
            in_user_terms("conversion to `:: std :: num :: NonZeroU32` for limit failed".into()),
            "`limit` is out of range: it takes a whole number from 1"
        );
        assert_eq!(
            in_user_terms("uid was not initialized".into()),
            "the required parameter `uid` was not given: call `.uid(..)` before `.send()`"
        );
        assert_eq!(
            in_user_terms("uid was not initialized in accept_incoming_lead".into()),
            "`accept_incoming_lead()`: the required parameter `uid` was not given: call `.uid(..)` before `.send()`"
        );
        assert_eq!(
            in_user_terms("body was not initialized".into()),
            "the request body was not given: call `.body(..)` before `.send()`"
        );
        assert_eq!(
            in_user_terms("conversion to `types :: Foo` for x failed".into()),
            "`x` has a value that is not a valid `types::Foo`"
        );
        assert_eq!(in_user_terms("anything else".into()), "anything else");
    }
}
