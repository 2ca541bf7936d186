//! What operators watch (feature `metrics`): counters and histograms of the request path; the
//! guide below names each one.
//!
#![doc = include_str!("guides/metrics.md")]

use std::time::Duration;

use reqwest::{Method, Request, Response};
use tokio::time::Instant;

use crate::ratelimit::{Permit, RateLimiter, RateLimiterUnavailable};
use crate::retry::Attempt;

/// Requests sent, by `endpoint`, `method` and `status` (counter).
pub const REQUESTS: &str = "lead_intake_requests_total";
/// Time from sending a request to its answer's headers, by `endpoint` and `method` (histogram,
/// seconds).
pub const REQUEST_DURATION: &str = "lead_intake_request_duration_seconds";
/// Answers `429`, by `endpoint` (counter).
pub const RATE_LIMITED: &str = "lead_intake_rate_limited_total";
/// Requests sent again, by `endpoint` and `reason` (counter).
pub const RETRIES: &str = "lead_intake_retries_total";
/// Requests the rate limiter held back, by `endpoint` (counter).
pub const RATE_LIMITER_WAITS: &str = "lead_intake_rate_limiter_waits_total";
/// How long the rate limiter held each request, by `endpoint` (histogram, seconds).
pub const RATE_LIMITER_WAIT: &str = "lead_intake_rate_limiter_wait_seconds";
/// OAuth refresh-token grants, by `outcome` (counter).
pub const TOKEN_REFRESHES: &str = "lead_intake_token_refreshes_total";
/// List items that did not fit their type (counter).
pub const UNRECOGNIZED_ITEMS: &str = "lead_intake_unrecognized_items_total";

tokio::task_local! {
    /// The operation a client's `exec` hook is sending, and the path of its request.
    static OPERATION: (&'static str, String);
}

/// The `endpoint` label of a request.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint(::metrics::SharedString);

/// Sends `request` with `send` (the clients' `exec` hooks), under the operation it was made
/// for: what [`endpoint`] names it by.
pub(crate) async fn operation<F, Fut>(
    operation: Option<&'static str>,
    request: Request,
    send: F,
) -> Fut::Output
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future,
{
    // A raw call has no operation id: its label is its path, templated.
    let Some(id) = operation else {
        return send(request).await;
    };
    let path = request.url().path().to_string();
    OPERATION.scope((id, path), send(request)).await
}

/// The `endpoint` label of `request`: the operation it was made for, or its path templated
/// (a request sent during an operation to another path: the OAuth token request).
pub(crate) fn endpoint(request: &Request) -> Endpoint {
    let path = request.url().path();
    let operation = OPERATION
        .try_with(|(id, sent)| (sent == path).then_some(*id))
        .ok()
        .flatten();
    match operation {
        Some(id) => Endpoint(::metrics::SharedString::const_str(id)),
        None => Endpoint(template(path).into()),
    }
}

/// The path with every segment that is not a plain word replaced by `{id}`: a plain word is
/// ASCII lowercase letters, `_` and `-`, with at most two digits at its end (`v4`, `oauth2`),
/// at most 32 bytes long.
fn template(path: &str) -> String {
    let plain = |segment: &str| {
        let word = segment.trim_end_matches(|c: char| c.is_ascii_digit());
        // An empty segment (a trailing slash) stays empty.
        segment.is_empty()
            || !word.is_empty()
                && segment.len() - word.len() <= 2
                && segment.len() <= 32
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
    };
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/').skip(1) {
        out.push('/');
        out.push_str(if plain(segment) { segment } else { "{id}" });
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Waits for the rate limiter's grant, recording how long it held the request.
pub(crate) async fn acquire(
    limiter: &RateLimiter,
    endpoint: &Endpoint,
) -> Result<Permit, RateLimiterUnavailable> {
    let asked = Instant::now();
    let granted = limiter.acquire().await;
    waited(endpoint, asked.elapsed());
    granted
}

fn waited(endpoint: &Endpoint, wait: Duration) {
    let endpoint = endpoint.0.clone();
    ::metrics::histogram!(RATE_LIMITER_WAIT, "endpoint" => endpoint.clone())
        .record(wait.as_secs_f64());
    if wait >= Duration::from_millis(1) {
        ::metrics::counter!(RATE_LIMITER_WAITS, "endpoint" => endpoint).increment(1);
    }
}

/// Records an attempt's answer (or its failure) and how long it took.
pub(crate) fn answered(
    endpoint: &Endpoint,
    method: &Method,
    result: &reqwest::Result<Response>,
    elapsed: Duration,
) {
    let endpoint = endpoint.0.clone();
    let method = method_label(method);
    let status = match result {
        Ok(response) => status_label(response.status().as_u16()),
        Err(_) => "error".into(),
    };
    if matches!(result, Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS) {
        ::metrics::counter!(RATE_LIMITED, "endpoint" => endpoint.clone()).increment(1);
    }
    ::metrics::counter!(
        REQUESTS,
        "endpoint" => endpoint.clone(),
        "method" => method,
        "status" => status
    )
    .increment(1);
    ::metrics::histogram!(REQUEST_DURATION, "endpoint" => endpoint, "method" => method)
        .record(elapsed.as_secs_f64());
}

/// Records a retry decided after `outcome`.
pub(crate) fn retrying(endpoint: &Endpoint, outcome: &Attempt) {
    let reason = match outcome {
        Attempt::Status { status, .. } if status.as_u16() == 429 => "rate_limited",
        Attempt::Status { status, .. } if status.is_server_error() => "server_error",
        Attempt::Status { .. } => "status",
        Attempt::Failed { nothing_sent: true } => "connect",
        Attempt::Failed { .. } => "transport",
    };
    ::metrics::counter!(RETRIES, "endpoint" => endpoint.0.clone(), "reason" => reason).increment(1);
}

/// Records the outcome of a refresh-token grant: new tokens came, or the refresh token was
/// refused, or it failed otherwise.
pub(crate) fn token_refresh(refreshed: bool, rejected: bool) {
    let outcome = match (refreshed, rejected) {
        (true, _) => "refreshed",
        (false, true) => "rejected",
        (false, false) => "failed",
    };
    ::metrics::counter!(TOKEN_REFRESHES, "outcome" => outcome).increment(1);
}

/// Records list items that did not fit their type.
pub(crate) fn unrecognized_items(count: usize) {
    ::metrics::counter!(UNRECOGNIZED_ITEMS).increment(count as u64);
}

/// The standard methods by name; any other is `other` (a label with a fixed set of values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_label(status: u16) -> ::metrics::SharedString {
    status.to_string().into()
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn paths_keep_only_plain_words() {
        assert_eq!(
            template("/api/v4/leads/unsorted/9f2c1e0a/accept"),
            "/api/v4/leads/unsorted/{id}/accept"
        );
        assert_eq!(template("/api/v4/sources/123"), "/api/v4/sources/{id}");
        assert_eq!(template("/oauth2/access_token"), "/oauth2/access_token");
        assert_eq!(
            template("/api/v4/x%2F..%2F/Leads/a1234"),
            "/api/v4/{id}/{id}/{id}"
        );
        assert_eq!(
            template("/api/v4/widgets/abcdefghijklmnopqrstuvwxyzabcdefg"),
            "/api/v4/widgets/{id}"
        );
        assert_eq!(template("/"), "/");
        assert_eq!(template("/api/v4/sources/"), "/api/v4/sources/");
        assert_eq!(template("/api/v4/sources/12/"), "/api/v4/sources/{id}/");
        assert_eq!(template(""), "/");
    }
}
