//! A request that could not be sent or whose answer did not come, with its cause in words:
//! [`TransportError`], the payload of `ApiError::Transport`.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Why a request could not be sent, or its answer did not come. Read from the HTTP client's
/// error and the call's options; [`TransportCause::Other`] when it is none of the causes below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportCause {
    /// Nothing listens at the host's port (the request was not sent).
    ConnectionRefused,
    /// The host's name did not resolve (the request was not sent).
    Dns,
    /// The TLS handshake failed: a certificate that is not trusted, a server that does not speak
    /// TLS (the request was not sent).
    Tls,
    /// The connection was not made within the HTTP client's connect timeout (the request was
    /// not sent).
    ConnectTimeout,
    /// The connection could not be made for another reason (the request was not sent).
    Connect,
    /// The connection was reset or closed by the peer before the answer came.
    ConnectionReset,
    /// No answer came within a timeout: the bound says which.
    Timeout(TimeoutBound),
    /// Another failure (see the error's source).
    Other,
}

/// Which timeout ended an attempt ([`TransportCause::Timeout`]). The answer's own timeout is
/// `ApiError::Answer` and the call's deadline `ApiError::DeadlineExceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutBound {
    /// The call's own timeout per attempt
    /// ([`CallOptions::attempt_timeout`](crate::options::CallOptions::attempt_timeout)).
    Attempt(Duration),
    /// The HTTP client's request timeout (60 s by default; "Defaults" in `lead_intake::options`).
    Client,
}

impl fmt::Display for TransportCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionRefused => f.write_str("the connection was refused"),
            Self::Dns => f.write_str("the host name did not resolve (DNS)"),
            Self::Tls => f.write_str("the TLS handshake failed"),
            Self::ConnectTimeout => f.write_str("the connection timed out"),
            Self::Connect => f.write_str("the connection could not be made"),
            Self::ConnectionReset => f.write_str("the connection was reset"),
            Self::Timeout(TimeoutBound::Attempt(d)) => {
                write!(f, "no answer within the call's attempt timeout of {d:?}")
            }
            Self::Timeout(TimeoutBound::Client) => {
                f.write_str("no answer within the HTTP client's request timeout")
            }
            Self::Other => f.write_str("the request failed"),
        }
    }
}

impl TransportCause {
    /// The cause of `error`; `attempt_timeout` is the call's own timeout per attempt, when it
    /// set one (it then replaced the HTTP client's).
    pub(crate) fn of(error: &reqwest::Error, attempt_timeout: Option<Duration>) -> Self {
        let chain = || causes(error);
        let io_kind = || {
            chain()
                .into_iter()
                .find_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind))
        };
        let says = |words: &[&str]| {
            chain().into_iter().any(|e| {
                let text = e.to_string().to_ascii_lowercase();
                words.iter().any(|w| text.contains(w))
            })
        };
        use std::io::ErrorKind as Kind;
        if error.is_connect() {
            if error.is_timeout() || io_kind() == Some(Kind::TimedOut) {
                Self::ConnectTimeout
            } else if io_kind() == Some(Kind::ConnectionRefused) {
                Self::ConnectionRefused
            } else if says(&["dns error", "failed to lookup address"]) {
                Self::Dns
            } else if io_kind() == Some(Kind::InvalidData)
                || says(&["certificate", "tls", "handshake", "corrupt message"])
            {
                // rustls reports through an `io::Error` of kind InvalidData.
                Self::Tls
            } else {
                Self::Connect
            }
        } else if error.is_timeout() {
            Self::Timeout(match attempt_timeout {
                Some(d) => TimeoutBound::Attempt(d),
                None => TimeoutBound::Client,
            })
        } else if matches!(
            io_kind(),
            Some(Kind::ConnectionReset | Kind::ConnectionAborted | Kind::BrokenPipe)
        ) || says(&[
            "connection reset",
            "connection closed",
            "incomplete message",
        ]) {
            Self::ConnectionReset
        } else {
            Self::Other
        }
    }
}

/// A request that could not be sent or whose answer did not come: the path, the cause, and how
/// many times the request was sent. Its message names all three (never the query string);
/// the HTTP client's error is its source.
///
/// ```
/// # use lead_intake::error::{TransportCause, TimeoutBound};
/// assert_eq!(TransportCause::ConnectionRefused.to_string(), "the connection was refused");
/// let t = TransportCause::Timeout(TimeoutBound::Attempt(std::time::Duration::from_secs(2)));
/// assert_eq!(t.to_string(), "no answer within the call's attempt timeout of 2s");
/// ```
#[derive(Debug)]
pub struct TransportError {
    endpoint: String,
    cause: TransportCause,
    attempts: u32,
    error: reqwest::Error,
}

impl TransportError {
    /// `error` (its URL already without the query) of a call to `endpoint`, sent `attempts`
    /// times.
    pub(crate) fn new(
        endpoint: String,
        error: reqwest::Error,
        attempts: u32,
        attempt_timeout: Option<Duration>,
    ) -> Self {
        Self {
            endpoint,
            cause: TransportCause::of(&error, attempt_timeout),
            attempts,
            error,
        }
    }

    /// The path that was called, e.g. `/api/v4/sources` (empty when the call was not made
    /// through this crate's clients).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What went wrong.
    pub fn cause(&self) -> TransportCause {
        self.cause
    }

    /// How many times the request was sent (or tried: a refused connection counts).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// True when no answer came in time: a connect timeout or a request timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.cause,
            TransportCause::ConnectTimeout | TransportCause::Timeout(_)
        ) || self.error.is_timeout()
    }

    /// True when no connection could be made (refused, DNS, TLS, connect timeout): the request
    /// was not sent.
    pub fn is_connect(&self) -> bool {
        self.error.is_connect()
    }

    /// True when the request could not be built (it was not sent).
    pub fn is_builder(&self) -> bool {
        self.error.is_builder()
    }

    /// The HTTP client's error (its URL without the query string).
    pub fn reqwest_error(&self) -> &reqwest::Error {
        &self.error
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.endpoint.is_empty() {
            f.write_str("the request failed")?;
        } else {
            write!(f, "the request to {} failed", self.endpoint)?;
        }
        write!(f, " after {} attempt(s): {}", self.attempts, self.cause)?;
        // The innermost cause says the rest (an OS error, a certificate's problem); the chain's
        // texts carry no URL.
        if let Some(detail) = causes(&self.error).last() {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

/// The sources of `error`, outermost first.
fn causes(error: &reqwest::Error) -> Vec<&(dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = StdError::source(error);
    while let Some(cause) = next {
        out.push(cause);
        next = cause.source();
    }
    out
}

impl StdError for TransportError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}
