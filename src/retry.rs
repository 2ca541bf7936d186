//! Retries: which failures are tried again, and how long to wait. Every decision is made here, in
//! one place, from [`RetryPolicy`] and the [`RetryRules`] of the client and of the call.
//!
//! The table of what is retried, the backoff, the rules with examples: "Rate limiting and
//! retries", the guide of [`lead_intake::ratelimit`](crate::ratelimit).

use std::time::Duration;

use reqwest::{Method, StatusCode};

/// How many times to try a request and how long to wait between tries.
///
/// Defaults: 4 attempts (the first and 3 retries), base delay 500 ms, maximum delay 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retry: every request is sent once.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// How many times a request may be sent in all, the first included (at least 1; 0 is
    /// taken as 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff before the first retry; it doubles with each retry.
    pub fn with_base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The longest backoff, and the longest `Retry-After` that is waited for.
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The configured number of attempts.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The configured base delay.
    pub fn base_delay(&self) -> Duration {
        self.base_delay
    }

    /// The configured maximum delay.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The upper bound of the backoff before retry `n` (1-based), before jitter.
    pub(crate) fn backoff_cap(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The backoff before retry `n`: half fixed, half random.
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let cap = self.backoff_cap(n);
        let half = cap / 2;
        let jitter_nanos = fastrand::u64(0..=(cap - half).as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(jitter_nanos)
    }
}

/// Which requests a [`RetryRules`] entry is about: an operation of a generated client by its id
/// (the snake_case name of its method, e.g. `"add_sources"` for `Client::add_sources`), or a
/// method and a path (relative to the host, without the query: `/api/v4/sources`), for calls
/// that are not generated operations.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// A generated operation, by its id.
    Id(String),
    /// A method and a path.
    Route {
        /// The HTTP method.
        method: Method,
        /// The path, e.g. `/api/v4/sources`.
        path: String,
    },
}

impl Operation {
    /// A generated operation, by its id (`"add_sources"`).
    pub fn id(id: impl Into<String>) -> Self {
        Self::Id(id.into())
    }

    /// A method and a path (`Method::POST, "/api/v4/leads/complex"`).
    pub fn route(method: Method, path: impl Into<String>) -> Self {
        Self::Route {
            method,
            path: path.into(),
        }
    }

    fn matches(&self, call: &Call<'_>) -> bool {
        match self {
            Self::Id(id) => call.operation == Some(id.as_str()),
            Self::Route { method, path } => method == call.method && path == call.path,
        }
    }
}

/// Extensions of the retry table (see the module doc): statuses to retry, operations never to
/// retry, and requests that are safe to send again although their method is not idempotent.
/// The default extends nothing: the table holds as it is.
///
/// A client's rules and a call's add up: a call's options can add to the client's rules, not
/// take them away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct RetryRules {
    statuses: Vec<StatusCode>,
    never: Vec<Operation>,
    safe: Vec<Operation>,
}

impl RetryRules {
    /// No extension.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retries `status` as a 5xx is retried: for idempotent methods, and for requests marked
    /// [`RetryRules::safe_to_resend`]; with backoff, or the answer's `Retry-After`.
    pub fn retry_status(mut self, status: StatusCode) -> Self {
        if !self.statuses.contains(&status) {
            self.statuses.push(status);
        }
        self
    }

    /// Never retries `operation`, whatever its failure (a 429 and a refused connection too):
    /// every request of it is sent once (the OAuth round after a 401 still happens).
    pub fn never_retry(mut self, operation: Operation) -> Self {
        self.never.push(operation);
        self
    }

    /// Retries `operation` as if its method were idempotent: after a 5xx or a broken
    /// connection, when it may have been applied already. Only for requests that do no harm
    /// twice.
    pub fn safe_to_resend(mut self, operation: Operation) -> Self {
        self.safe.push(operation);
        self
    }

    /// These rules and `more`.
    pub(crate) fn and(&self, more: &RetryRules) -> RetryRules {
        let mut rules = self.clone();
        for status in &more.statuses {
            rules = rules.retry_status(*status);
        }
        rules.never.extend(more.never.iter().cloned());
        rules.safe.extend(more.safe.iter().cloned());
        rules
    }

    /// What the rules say of one call.
    pub(crate) fn of(&self, call: &Call<'_>) -> CallRules {
        CallRules {
            statuses: self.statuses.clone(),
            never: self.never.iter().any(|o| o.matches(call)),
            safe: self.safe.iter().any(|o| o.matches(call)),
        }
    }
}

/// A call, as [`RetryRules`] match it.
pub(crate) struct Call<'a> {
    pub(crate) operation: Option<&'a str>,
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
}

/// What [`RetryRules`] say of one call: the input of [`decide`] besides the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CallRules {
    /// Statuses retried as a 5xx is.
    pub(crate) statuses: Vec<StatusCode>,
    /// Never retried.
    pub(crate) never: bool,
    /// Retried as if idempotent.
    pub(crate) safe: bool,
}

/// Whether an HTTP method may be repeated without changing the result (RFC 9110, 9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// What to do after one attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Hand this result to the caller: a success, or a failure that is never retried.
    Return,
    /// Wait this long, then send again.
    RetryAfter(Duration),
    /// A failure that could be retried, but is not: hand it to the caller (and say why).
    GiveUp(GiveUp),
}

/// Why a failure that could be retried was not.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// Every attempt the policy allows was made.
    Exhausted,
    /// The server's `Retry-After` is longer than the policy's maximum delay.
    RetryAfterTooLong(Duration),
    /// A 5xx or a broken connection on a POST or PATCH, which may have been applied.
    NotIdempotent,
    /// The retry rules say never to retry this operation.
    NeverRetry,
}

/// The outcome of an attempt, reduced to what the decision needs.
#[derive(Debug)]
pub(crate) enum Attempt {
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// A transport error; `nothing_sent` when it proves the request never left (a refused
    /// connection, a DNS failure, a connect timeout).
    Failed { nothing_sent: bool },
}

impl Attempt {
    /// What went wrong, in a few words, for logs.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Attempt::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "rate limited (429)"
            }
            Attempt::Status { status, .. } if status.is_server_error() => "server error (5xx)",
            Attempt::Status { .. } => "status",
            Attempt::Failed { nothing_sent: true } => "connection failed before sending",
            Attempt::Failed { .. } => "transport error",
        }
    }
}

/// Decides whether attempt number `attempt` (1-based) is retried.
///
/// The one place where retries are decided: the module doc's table, extended by the call's
/// [`RetryRules`] (`rules`).
pub(crate) fn decide(
    policy: &RetryPolicy,
    rules: &CallRules,
    method: &Method,
    attempt: u32,
    outcome: &Attempt,
) -> Next {
    let resendable = is_idempotent(method) || rules.safe;
    // A 5xx, or a status the rules add.
    let like_5xx =
        |status: &StatusCode| status.is_server_error() || rules.statuses.contains(status);
    let wait = match outcome {
        Attempt::Status {
            status,
            retry_after,
        } if *status == StatusCode::TOO_MANY_REQUESTS || (like_5xx(status) && resendable) => {
            match retry_after {
                Some(wait) if *wait > policy.max_delay => {
                    return Next::GiveUp(GiveUp::RetryAfterTooLong(*wait));
                }
                Some(wait) => *wait,
                None => policy.backoff(attempt),
            }
        }
        Attempt::Status { status, .. } if like_5xx(status) => {
            return Next::GiveUp(GiveUp::NotIdempotent);
        }
        Attempt::Status { .. } => return Next::Return,
        Attempt::Failed { nothing_sent } if *nothing_sent || resendable => policy.backoff(attempt),
        Attempt::Failed { .. } => return Next::GiveUp(GiveUp::NotIdempotent),
    };
    if rules.never {
        return Next::GiveUp(GiveUp::NeverRetry);
    }
    if attempt >= policy.max_attempts {
        return Next::GiveUp(GiveUp::Exhausted);
    }
    Next::RetryAfter(wait)
}

/// The `Retry-After` of an answer, when present and readable.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// The `retry_after` of a JSON error body (Kommo's 429 problem document: `"retry_after": 300`),
/// in seconds: a non-negative integer, a number, or a string read like `Retry-After` (seconds or
/// an HTTP date). Anything else, or a body that is not a JSON object, is `None`.
pub(crate) fn retry_after_in_body(body: &[u8]) -> Option<Duration> {
    let body = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    match body.as_object()?.get("retry_after")? {
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(seconds) => Some(Duration::from_secs(seconds)),
            None => n
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
        },
        serde_json::Value::String(text) => parse_retry_after(text),
        _ => None,
    }
}

/// Parses `Retry-After`: delay-seconds, or an HTTP date (IMF-fixdate, which RFC 2822 parsing
/// accepts). A date in the past means "now".
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - crate::clock::now_utc();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> Attempt {
        Attempt::Status {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn the_table() {
        let p = RetryPolicy::default();
        let get = Method::GET;
        let post = Method::POST;
        let patch = Method::PATCH;
        assert_eq!(
            decide(&p, &CallRules::default(), &post, 1, &status(429, Some(2))),
            Next::RetryAfter(Duration::from_secs(2))
        );
        assert!(matches!(
            decide(&p, &CallRules::default(), &post, 1, &status(429, None)),
            Next::RetryAfter(_)
        ));
        assert_eq!(
            decide(&p, &CallRules::default(), &get, 1, &status(429, Some(3600))),
            Next::GiveUp(GiveUp::RetryAfterTooLong(Duration::from_secs(3600)))
        );
        assert!(matches!(
            decide(&p, &CallRules::default(), &get, 1, &status(503, None)),
            Next::RetryAfter(_)
        ));
        assert_eq!(
            decide(&p, &CallRules::default(), &post, 1, &status(503, None)),
            Next::GiveUp(GiveUp::NotIdempotent)
        );
        assert_eq!(
            decide(&p, &CallRules::default(), &patch, 1, &status(500, None)),
            Next::GiveUp(GiveUp::NotIdempotent)
        );
        assert_eq!(
            decide(&p, &CallRules::default(), &get, 1, &status(403, None)),
            Next::Return
        );
        assert_eq!(
            decide(&p, &CallRules::default(), &get, 1, &status(401, None)),
            Next::Return
        );
        assert_eq!(
            decide(&p, &CallRules::default(), &get, 1, &status(400, None)),
            Next::Return
        );
        assert!(matches!(
            decide(
                &p,
                &CallRules::default(),
                &post,
                1,
                &Attempt::Failed { nothing_sent: true }
            ),
            Next::RetryAfter(_)
        ));
        assert_eq!(
            decide(
                &p,
                &CallRules::default(),
                &post,
                1,
                &Attempt::Failed {
                    nothing_sent: false
                }
            ),
            Next::GiveUp(GiveUp::NotIdempotent)
        );
        assert!(matches!(
            decide(
                &p,
                &CallRules::default(),
                &Method::DELETE,
                1,
                &Attempt::Failed {
                    nothing_sent: false
                }
            ),
            Next::RetryAfter(_)
        ));
        // The last attempt is never retried.
        assert_eq!(
            decide(&p, &CallRules::default(), &get, 4, &status(429, Some(1))),
            Next::GiveUp(GiveUp::Exhausted)
        );
        assert_eq!(
            decide(
                &RetryPolicy::none(),
                &CallRules::default(),
                &get,
                1,
                &status(503, None)
            ),
            Next::GiveUp(GiveUp::Exhausted)
        );
        assert_eq!(
            decide(&p, &CallRules::default(), &get, 4, &status(200, None)),
            Next::Return
        );
    }

    /// The default rules are the table: whatever the operation, nothing changes.
    #[test]
    fn the_default_rules_say_nothing() {
        let call = Call {
            operation: Some("add_sources"),
            method: &Method::POST,
            path: "/api/v4/sources",
        };
        assert_eq!(RetryRules::default().of(&call), CallRules::default());
    }

    #[test]
    fn an_added_status_is_retried_like_a_5xx() {
        let p = RetryPolicy::default();
        let call = |method| Call {
            operation: None,
            method,
            path: "/x",
        };
        let rules = RetryRules::new()
            .retry_status(StatusCode::REQUEST_TIMEOUT)
            .retry_status(StatusCode::CONFLICT);
        for code in [408, 409] {
            let get = rules.of(&call(&Method::GET));
            assert!(matches!(
                decide(&p, &get, &Method::GET, 1, &status(code, None)),
                Next::RetryAfter(_)
            ));
            assert_eq!(
                decide(&p, &get, &Method::GET, 1, &status(code, Some(3))),
                Next::RetryAfter(Duration::from_secs(3))
            );
            let post = rules.of(&call(&Method::POST));
            assert_eq!(
                decide(&p, &post, &Method::POST, 1, &status(code, None)),
                Next::GiveUp(GiveUp::NotIdempotent)
            );
            assert_eq!(
                decide(&p, &get, &Method::GET, 4, &status(code, None)),
                Next::GiveUp(GiveUp::Exhausted)
            );
        }
        // Others are not.
        let get = rules.of(&call(&Method::GET));
        assert_eq!(
            decide(&p, &get, &Method::GET, 1, &status(400, None)),
            Next::Return
        );
    }

    #[test]
    fn an_operation_never_retried_is_sent_once() {
        let p = RetryPolicy::default();
        let rules = RetryRules::new().never_retry(Operation::id("list_sources"));
        let listed = rules.of(&Call {
            operation: Some("list_sources"),
            method: &Method::GET,
            path: "/api/v4/sources",
        });
        for outcome in [
            status(429, Some(1)),
            status(503, None),
            Attempt::Failed { nothing_sent: true },
        ] {
            assert_eq!(
                decide(&p, &listed, &Method::GET, 1, &outcome),
                Next::GiveUp(GiveUp::NeverRetry)
            );
        }
        assert_eq!(
            decide(&p, &listed, &Method::GET, 1, &status(200, None)),
            Next::Return
        );
        // Another operation keeps the table.
        let other = rules.of(&Call {
            operation: Some("list_widgets"),
            method: &Method::GET,
            path: "/api/v4/widgets",
        });
        assert!(matches!(
            decide(&p, &other, &Method::GET, 1, &status(503, None)),
            Next::RetryAfter(_)
        ));
    }

    #[test]
    fn a_post_marked_safe_is_resent() {
        let p = RetryPolicy::default();
        let rules = RetryRules::new()
            .safe_to_resend(Operation::route(Method::POST, "/api/v4/leads/complex"));
        let safe = rules.of(&Call {
            operation: None,
            method: &Method::POST,
            path: "/api/v4/leads/complex",
        });
        assert!(matches!(
            decide(&p, &safe, &Method::POST, 1, &status(503, None)),
            Next::RetryAfter(_)
        ));
        assert!(matches!(
            decide(
                &p,
                &safe,
                &Method::POST,
                1,
                &Attempt::Failed {
                    nothing_sent: false
                }
            ),
            Next::RetryAfter(_)
        ));
        // The same path with another method, or another path, is not.
        for (method, path) in [
            (Method::PATCH, "/api/v4/leads/complex"),
            (Method::POST, "/api/v4/leads"),
        ] {
            let not = rules.of(&Call {
                operation: None,
                method: &method,
                path,
            });
            assert_eq!(
                decide(&p, &not, &method, 1, &status(503, None)),
                Next::GiveUp(GiveUp::NotIdempotent)
            );
        }
    }

    #[test]
    fn a_calls_rules_add_to_the_clients() {
        let client = RetryRules::new().retry_status(StatusCode::CONFLICT);
        let call = RetryRules::new()
            .retry_status(StatusCode::CONFLICT)
            .never_retry(Operation::id("add_sources"));
        let both = client.and(&call);
        assert_eq!(both.statuses, vec![StatusCode::CONFLICT]);
        assert_eq!(both.never, vec![Operation::id("add_sources")]);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let p = RetryPolicy::default()
            .with_base_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_millis(1000));
        assert_eq!(p.backoff_cap(1), Duration::from_millis(100));
        assert_eq!(p.backoff_cap(2), Duration::from_millis(200));
        assert_eq!(p.backoff_cap(4), Duration::from_millis(800));
        assert_eq!(p.backoff_cap(5), Duration::from_millis(1000));
        assert_eq!(p.backoff_cap(80), Duration::from_millis(1000));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = p.backoff(3);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
            seen.insert(d);
        }
        assert!(seen.len() > 1, "no jitter");
    }

    #[test]
    fn retry_after_in_a_json_body() {
        let read = |body: &str| retry_after_in_body(body.as_bytes());
        assert_eq!(
            read(r#"{"title":"Too Many Requests","status":429,"retry_after":300}"#),
            Some(Duration::from_secs(300))
        );
        assert_eq!(read(r#"{"retry_after":"7"}"#), Some(Duration::from_secs(7)));
        assert_eq!(
            read(r#"{"retry_after":1.5}"#),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(read(r#"{"retry_after":-1}"#), None);
        assert_eq!(read(r#"{"retry_after":null}"#), None);
        assert_eq!(read(r#"{"retry_after":[1]}"#), None);
        assert_eq!(read(r#"{"detail":"no wait"}"#), None);
        assert_eq!(read("<html>429</html>"), None);
        assert_eq!(read("[300]"), None);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let future = (crate::clock::now_utc() + chrono::Duration::seconds(120))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = parse_retry_after(&future).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }
}
