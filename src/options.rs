//! Settings for one call: [`CallOptions`], applied with `ResponseExt::with_options` (in
//! `lead_intake::prelude`); the guide below, and every default of the clients.
//!
#![doc = include_str!("guides/options.md")]

use std::fmt;
use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::retry::RetryRules;

/// Options for one call: a timeout per attempt, a deadline for the whole call, the number of
/// attempts and extra headers. Unset options keep the client's settings.
///
/// The deadline covers everything the call waits for: the rate limiter (local or shared through
/// Redis), each attempt's answer, the backoff between attempts and a server's `Retry-After`.
/// When it would be passed the call stops at once and fails with
/// `ApiError::DeadlineExceeded`, which says what the call was waiting for ([`Waiting`]); a wait that cannot end before the deadline (a
/// `Retry-After` or a backoff longer than the time left) is not begun.
///
/// `Debug` shows the names of the extra headers, not their values (a header may carry a secret).
#[derive(Clone, Default, PartialEq)]
#[must_use]
pub struct CallOptions {
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) headers: HeaderMap,
    pub(crate) rules: RetryRules,
}

impl fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("attempt_timeout", &self.attempt_timeout)
            .field("deadline", &self.deadline)
            .field("max_attempts", &self.max_attempts)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("rules", &self.rules)
            .finish()
    }
}

impl CallOptions {
    /// No options: the client's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long each attempt may take, from sending the request to the end of its answer's
    /// body (it replaces the HTTP client's request timeout for this call). An attempt that
    /// takes longer fails with a timeout (`TransportCause::Timeout` naming this bound) and is
    /// retried like any timeout.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// How long the whole call may take, from its first poll: every wait and attempt included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// How many times the request may be sent in all (at least 1; 0 is taken as 1), in place
    /// of the client's [`RetryPolicy::max_attempts`](crate::retry::RetryPolicy::max_attempts).
    /// Which failures are retried does not change.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// A header to send with the request (added to the call's own headers; the credentials'
    /// `Authorization` is set after it and wins).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Retry rules for this call, added to the client's (its builder's `retry_rules`); see
    /// [`crate::retry`].
    pub fn retry_rules(mut self, rules: RetryRules) -> Self {
        self.rules = self.rules.and(&rules);
        self
    }

    /// The extra headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// What a call was waiting for when its deadline came (`ApiError::DeadlineExceeded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Waiting {
    /// Its turn at the rate limiter (local or shared).
    Limiter,
    /// The backoff before a retry.
    Backoff,
    /// The server's `Retry-After` (header or Kommo's `retry_after`) before a retry.
    RetryAfter,
    /// An attempt's answer.
    Answer,
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Limiter => "its turn at the rate limiter",
            Self::Backoff => "the backoff before a retry",
            Self::RetryAfter => "the server's Retry-After before a retry",
            Self::Answer => "the answer",
        })
    }
}

tokio::task_local! {
    /// The options of the call being awaited (read by `Pipeline::execute`).
    static OPTIONS: CallOptions;
}

/// Runs `call` with `options` (for the raw call and `ResponseExt::with_options`).
pub(crate) fn with_options<F: Future>(
    call: F,
    options: CallOptions,
) -> impl Future<Output = F::Output> {
    OPTIONS.scope(options, call)
}

/// The options of the call in progress (none outside [`with_options`]).
pub(crate) fn current() -> Option<CallOptions> {
    OPTIONS.try_with(CallOptions::clone).ok()
}
