//! Retries: which failures are tried again, and how long to wait.
//!
//! Every call of both clients (generated operations, `kommo::Client::follow`, pagination,
//! batches) goes through the same policy:
//!
//! | Answer | Retried? |
//! |---|---|
//! | 429 Too Many Requests (JSON, HTML or empty, with or without `Retry-After`) | yes, any method: the server did not process it. `Retry-After` is honoured (seconds or an HTTP date), and so is a JSON body's `retry_after` (Kommo's problem document) when there is no header; without either, exponential backoff. A wait (header or body) longer than [`RetryPolicy::max_delay`] is not waited for: the error is returned with its `retry_after`. |
//! | connection refused, DNS failure, connect timeout | yes, any method: nothing was sent |
//! | 5xx, other transport errors (reset, timeout) | only for idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE): a POST or PATCH may have been applied |
//! | 401 with OAuth | the token is refreshed once and the request sent once more (see `lead_intake::oauth`) |
//! | 403 | never: Kommo answers it to a blocked account, and more requests keep it blocked (`ApiError::AccountBlocked`) |
//! | anything else | no |
//!
//! Backoff before retry *n* (1-based) is `min(max_delay, base_delay × 2ⁿ⁻¹)`, of which a random
//! half is jitter ("equal jitter"), so clients that failed together do not retry together.
//!
//! ```
//! use std::time::Duration;
//! use lead_intake::retry::RetryPolicy;
//!
//! let patient = RetryPolicy::default()
//!     .with_max_attempts(6)
//!     .with_base_delay(Duration::from_secs(1))
//!     .with_max_delay(Duration::from_secs(60));
//! let client = lead_intake::kommo::Client::builder()
//!     .subdomain("mycompany")
//!     .token("token")
//!     .retry(patient)
//!     .build()?;
//! let never = lead_intake::kommo::Client::builder()
//!     .subdomain("mycompany")
//!     .token("token")
//!     .retry(RetryPolicy::none())
//!     .build()?;
//! # let _ = (client, never);
//! # Ok::<(), lead_intake::ConfigError>(())
//! ```

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
pub(crate) fn decide(
    policy: &RetryPolicy,
    method: &Method,
    attempt: u32,
    outcome: &Attempt,
) -> Next {
    let wait = match outcome {
        Attempt::Status {
            status,
            retry_after,
        } if *status == StatusCode::TOO_MANY_REQUESTS
            || (status.is_server_error() && is_idempotent(method)) =>
        {
            match retry_after {
                Some(wait) if *wait > policy.max_delay => {
                    return Next::GiveUp(GiveUp::RetryAfterTooLong(*wait));
                }
                Some(wait) => *wait,
                None => policy.backoff(attempt),
            }
        }
        Attempt::Status { status, .. } if status.is_server_error() => {
            return Next::GiveUp(GiveUp::NotIdempotent);
        }
        Attempt::Status { .. } => return Next::Return,
        Attempt::Failed { nothing_sent } if *nothing_sent || is_idempotent(method) => {
            policy.backoff(attempt)
        }
        Attempt::Failed { .. } => return Next::GiveUp(GiveUp::NotIdempotent),
    };
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
            decide(&p, &post, 1, &status(429, Some(2))),
            Next::RetryAfter(Duration::from_secs(2))
        );
        assert!(matches!(
            decide(&p, &post, 1, &status(429, None)),
            Next::RetryAfter(_)
        ));
        assert_eq!(
            decide(&p, &get, 1, &status(429, Some(3600))),
            Next::GiveUp(GiveUp::RetryAfterTooLong(Duration::from_secs(3600)))
        );
        assert!(matches!(
            decide(&p, &get, 1, &status(503, None)),
            Next::RetryAfter(_)
        ));
        assert_eq!(
            decide(&p, &post, 1, &status(503, None)),
            Next::GiveUp(GiveUp::NotIdempotent)
        );
        assert_eq!(
            decide(&p, &patch, 1, &status(500, None)),
            Next::GiveUp(GiveUp::NotIdempotent)
        );
        assert_eq!(decide(&p, &get, 1, &status(403, None)), Next::Return);
        assert_eq!(decide(&p, &get, 1, &status(401, None)), Next::Return);
        assert_eq!(decide(&p, &get, 1, &status(400, None)), Next::Return);
        assert!(matches!(
            decide(&p, &post, 1, &Attempt::Failed { nothing_sent: true }),
            Next::RetryAfter(_)
        ));
        assert_eq!(
            decide(
                &p,
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
            decide(&p, &get, 4, &status(429, Some(1))),
            Next::GiveUp(GiveUp::Exhausted)
        );
        assert_eq!(
            decide(&RetryPolicy::none(), &get, 1, &status(503, None)),
            Next::GiveUp(GiveUp::Exhausted)
        );
        assert_eq!(decide(&p, &get, 4, &status(200, None)), Next::Return);
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
