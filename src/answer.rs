//! The bounds of an answer's body, and the error when a body is over them: the bottom layer that
//! the transport (which reads every body through them), the OAuth errors and the API errors share.

use std::time::Duration;

/// The most bytes of an answer's body a client reads by default: 32 MiB. Kommo's largest pages
/// (250 incoming leads with their contacts and metadata, 250 widgets with their settings) are a
/// few MiB at most; CloseBot's pages of 100 sources are smaller. Set it per client with
/// `max_answer_size` on either builder.
pub const DEFAULT_MAX_ANSWER_SIZE: u64 = 32 * 1024 * 1024;

/// How long an answer's body may take to arrive by default, from its headers: 60 s, the default
/// HTTP client's timeout for a whole request. Set it per client with `answer_timeout`.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of an answer's body a client reads, and for how long (see `transport::bounded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AnswerLimits {
    pub(crate) max_size: u64,
    pub(crate) timeout: Duration,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        Self {
            max_size: DEFAULT_MAX_ANSWER_SIZE,
            timeout: DEFAULT_ANSWER_TIMEOUT,
        }
    }
}

/// An answer whose body could not be read whole: larger than the client's limit, or not
/// arrived in time. It was not decoded; what came is dropped (never held past the limit).
///
/// In `ApiError::Answer` (`lead_intake::error`, with the endpoint) and
/// `AuthError::Answer` (`lead_intake::oauth`, the token endpoint's answer).
///
/// ```
/// use lead_intake::error::AnswerError;
/// let e = AnswerError::TooLarge { limit: 1024, declared: None };
/// assert_eq!(e.to_string(), "the answer is larger than the limit of 1024 bytes; the read stopped there");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The body is larger than the client's limit (`max_answer_size`, by default
    /// [`DEFAULT_MAX_ANSWER_SIZE`]): the read stopped at the limit, or before it began when the
    /// `Content-Length` said so.
    #[error(
        "the answer is larger than the limit of {limit} bytes{}; the read stopped there",
        declared.map(|n| format!(" (its Content-Length is {n})")).unwrap_or_default()
    )]
    TooLarge {
        /// The client's limit, in bytes.
        limit: u64,
        /// The answer's `Content-Length`, when it declared one over the limit.
        declared: Option<u64>,
    },
    /// The body did not arrive whole in time: a server that stopped sending, or sends too
    /// slowly (`answer_timeout`, by default [`DEFAULT_ANSWER_TIMEOUT`], from the headers; or
    /// the HTTP client's own timeout).
    #[error(
        "the answer's body timed out after {:.1} s, {received} bytes received",
        after.as_secs_f64()
    )]
    TimedOut {
        /// How long after the answer's headers the read gave up.
        after: Duration,
        /// How many bytes of the body had come.
        received: u64,
    },
}

impl AnswerError {
    /// The answer error somewhere in a transport error's chain of sources: reqwest wraps what
    /// `transport::bounded`'s body yields.
    pub(crate) fn find<'a>(
        error: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a AnswerError> {
        let mut source: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            if let Some(found) = cause.downcast_ref::<AnswerError>() {
                return Some(found);
            }
            source = cause.source();
        }
        None
    }
}
