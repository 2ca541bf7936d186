//! Path parameters as exactly one segment of their operation's path.
//!
//! progenitor 0.15.1's `encode_path` leaves `.` and `\` as they are, and the URL parser then
//! resolves them (WHATWG: `..`, `%2e%2e` and, in `http(s)` URLs, `\` as `/`), so a path
//! parameter could move an authenticated request to another endpoint of the same host. build.rs
//! rewrites every generated `encode_path(..)` into the transport's `path_segment`, which calls
//! [`encode`] here: every byte but the unreserved characters is percent-encoded, and a
//! value that no encoding keeps in its segment (empty, `.`, `..`, or one of those once
//! percent-decoded) is refused with an [`InvalidPathParameter`] before anything is sent.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`): `/`, `\`, `?`, `#`,
/// `%`, `;`, spaces, controls and every byte of a non-ASCII character are percent-encoded.
/// `.` is unreserved (its encoding `%2E` means the same to a URL parser, so it is left as it
/// is); a segment of dots only is refused instead.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How many characters of a refused value an [`InvalidPathParameter`] keeps.
const KEPT_CHARS: usize = 64;

/// A path parameter that cannot be sent as one segment of its operation's path, refused before
/// the request was made: `ApiError::InvalidPathParameter`.
///
/// Every other value is sent, percent-encoded, as exactly one segment: `a/b` as `a%2Fb`, `a\b`
/// as `a%5Cb`, `日本` as `%E6%97%A5%E6%9C%AC`.
///
/// ```
/// use lead_intake::error::{ApiError, PathParameterProblem};
/// use lead_intake::prelude::*;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Nothing listens there: the request is refused before it would be sent.
/// let kommo = lead_intake::kommo::Client::builder()
///     .base_url("http://127.0.0.1:9")
///     .token("token")
///     .build()?;
/// // A UID from an (unsigned) webhook.
/// match kommo.accept_incoming_lead().uid("..").send().body().await {
///     Err(ApiError::InvalidPathParameter(e)) => {
///         assert_eq!((e.operation(), e.parameter()), ("accept_incoming_lead", "uid"));
///         assert_eq!(e.problem(), PathParameterProblem::DotSegment);
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{operation}()`: the path parameter `{parameter}` ({value:?}) {problem}; the request was not sent"
)]
pub struct InvalidPathParameter {
    operation: &'static str,
    parameter: &'static str,
    problem: PathParameterProblem,
    value: String,
}

impl InvalidPathParameter {
    /// The operation, as the client's method is named (e.g. `accept_incoming_lead`).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The path parameter, as its builder's setter is named (e.g. `uid`).
    pub fn parameter(&self) -> &'static str {
        self.parameter
    }

    /// Why the value cannot be one segment.
    pub fn problem(&self) -> PathParameterProblem {
        self.problem
    }

    /// The refused value (its first 64 characters).
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Why a path parameter cannot be one segment of its path: [`InvalidPathParameter::problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathParameterProblem {
    /// The value is empty: the path would lose its segment (`/api/v4/widgets/` is another
    /// endpoint than `/api/v4/widgets/{code}`).
    Empty,
    /// The value is `.` or `..`, which a URL parser removes or reads as the parent segment, even
    /// percent-encoded (`%2e%2e`).
    DotSegment,
    /// The value percent-decodes (once or more) to `.` or `..` (`%2e%2e`, `.%2E`, `%252e`): sent
    /// encoded it would be one segment, but a server or proxy that decodes it before routing
    /// would read a dot segment.
    EncodedDotSegment,
}

impl fmt::Display for PathParameterProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "is empty, which would drop its segment from the path",
            Self::DotSegment => {
                "is a dot segment (`.` or `..`), which a URL parser drops or reads as the parent"
            }
            Self::EncodedDotSegment => {
                "percent-decodes to a dot segment (`.` or `..`), which a server decoding it would read as the parent"
            }
        })
    }
}

/// The value as one path segment: every byte outside the unreserved characters percent-encoded;
/// or why it cannot be one.
pub(crate) fn encode(
    operation: &'static str,
    parameter: &'static str,
    value: &str,
) -> Result<String, InvalidPathParameter> {
    match problem(value) {
        None => Ok(utf8_percent_encode(value, SEGMENT).to_string()),
        Some(problem) => Err(InvalidPathParameter {
            operation,
            parameter,
            problem,
            value: value.chars().take(KEPT_CHARS).collect(),
        }),
    }
}

fn problem(value: &str) -> Option<PathParameterProblem> {
    let is_dots = |s: &[u8]| s == b"." || s == b"..";
    if value.is_empty() {
        return Some(PathParameterProblem::Empty);
    }
    if is_dots(value.as_bytes()) {
        return Some(PathParameterProblem::DotSegment);
    }
    // Decode until nothing changes: each round that changes the value shortens it, so this ends
    // within `value.len() / 3` rounds.
    let mut current: Vec<u8> = value.as_bytes().to_vec();
    loop {
        let decoded: Vec<u8> = percent_decode(&current).collect();
        if is_dots(&decoded) {
            return Some(PathParameterProblem::EncodedDotSegment);
        }
        if decoded == current {
            return None;
        }
        current = decoded;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: &str) -> Result<String, PathParameterProblem> {
        encode("op", "p", value).map_err(|e| e.problem())
    }

    #[test]
    fn every_byte_but_the_unreserved_ones_is_encoded() {
        assert_eq!(encoded("aZ09-._~").unwrap(), "aZ09-._~");
        assert_eq!(encoded("a/b").unwrap(), "a%2Fb");
        assert_eq!(encoded("a\\b").unwrap(), "a%5Cb");
        assert_eq!(encoded("..\\x").unwrap(), "..%5Cx");
        assert_eq!(encoded("?#%;:@ ").unwrap(), "%3F%23%25%3B%3A%40%20");
        assert_eq!(encoded("é").unwrap(), "%C3%A9");
        assert_eq!(encoded("%41").unwrap(), "%2541");
        assert_eq!(encoded("...").unwrap(), "...");
    }

    #[test]
    fn dot_segments_and_empty_values_are_refused() {
        use PathParameterProblem::*;
        assert_eq!(encoded(""), Err(Empty));
        assert_eq!(encoded("."), Err(DotSegment));
        assert_eq!(encoded(".."), Err(DotSegment));
        for value in ["%2e", "%2E%2e", ".%2E", "%2e.", "%252e%252e", "%25252E"] {
            assert_eq!(encoded(value), Err(EncodedDotSegment), "{value}");
        }
        // Invalid UTF-8 once decoded, and a lone `%`, end the loop.
        assert!(encoded("%ff%fe").is_ok());
        assert!(encoded("%").is_ok());
    }

    #[test]
    fn the_error_names_the_operation_the_parameter_and_why() {
        let e = encode("get_widget", "widget_code", "..").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`get_widget()`: the path parameter `widget_code` (\"..\") is a dot segment (`.` or `..`), which a URL parser drops or reads as the parent; the request was not sent"
        );
        // `.` percent-encoded 40 times over.
        let long = format!("%{}2e", "25".repeat(39));
        let e = encode("op", "p", &long).unwrap_err();
        assert_eq!(e.value().chars().count(), KEPT_CHARS);
    }
}
