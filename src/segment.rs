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

/// The path of a raw call (`client.request(method, path)`, `lead_intake::raw`) refused before
/// anything was sent, because it could reach something outside the client's base URL:
/// `ApiError::InvalidPath`.
///
/// ```
/// use lead_intake::error::{ApiError, PathProblem};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Nothing listens there: the request is refused before it would be sent.
/// let kommo = lead_intake::kommo::Client::builder()
///     .base_url("http://127.0.0.1:9/proxy/kommo")
///     .token("token")
///     .build()?;
/// let refused = kommo
///     .request(reqwest::Method::GET, "/api/v4/%2e%2e/%2e%2e/admin")
///     .body::<serde_json::Value>()
///     .await;
/// match refused {
///     Err(ApiError::InvalidPath(e)) => assert_eq!(e.problem(), PathProblem::DotSegment),
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the path {path:?} of a raw call {problem}; the request was not sent")]
pub struct InvalidPath {
    path: String,
    problem: PathProblem,
}

impl InvalidPath {
    pub(crate) fn new(path: &str, problem: PathProblem) -> Self {
        Self {
            path: path.chars().take(KEPT_CHARS * 2).collect(),
            problem,
        }
    }

    /// The refused path (its first 128 characters).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Why it was refused.
    pub fn problem(&self) -> PathProblem {
        self.problem
    }
}

/// Why the path of a raw call was refused: [`InvalidPath::problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathProblem {
    /// It does not start with `/` (a path relative to the base URL starts with one).
    NotFromRoot,
    /// It starts with `//`, which a URL parser reads as another host.
    SchemeRelative,
    /// It holds a `?` or `#`: give the query with `.query(..)`.
    QueryOrFragment,
    /// It holds a `\`, which a URL parser reads as `/` in `http(s)` URLs.
    Backslash,
    /// It holds a byte a URL path does not carry as it is (a space, a control, a non-ASCII
    /// character, `"`, `<`, ...): encode it, or give the path as segments.
    Character,
    /// It holds an empty segment (`a//b`), which some servers and proxies merge.
    EmptySegment,
    /// A segment is `.` or `..`, or percent-decodes (once or more) to one (`%2e%2e`, `..;`).
    DotSegment,
    /// A segment percent-decodes to a `/` or `\` (`%2f`, `%5c`): a server decoding it before
    /// routing would read another path.
    EncodedSeparator,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// Joined to the base URL, it is not under the base URL's origin and path.
    OutsideBase,
    /// A segment given with `request_segments` is empty, `.`, `..`, or decodes to one.
    Segment {
        /// The segment's index in the slice.
        index: usize,
        /// Why it cannot be one segment.
        problem: PathParameterProblem,
    },
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFromRoot => f.write_str("does not start with `/`"),
            Self::SchemeRelative => {
                f.write_str("starts with `//`, which a URL parser reads as another host")
            }
            Self::QueryOrFragment => {
                f.write_str("holds a `?` or `#` (give query parameters with `.query(..)`)")
            }
            Self::Backslash => f.write_str("holds a `\\`, which a URL parser reads as `/`"),
            Self::Character => f.write_str(
                "holds a character a URL path does not carry as it is (percent-encode it, or give the path as segments)",
            ),
            Self::EmptySegment => f.write_str("holds an empty segment (`//`)"),
            Self::DotSegment => f.write_str(
                "holds a dot segment (`.` or `..`, also percent-encoded), which would leave the base URL's path",
            ),
            Self::EncodedSeparator => f.write_str(
                "holds a segment that percent-decodes to a `/` or `\\`, which a server decoding it would read as another path",
            ),
            Self::BadEscape => f.write_str("holds a `%` not followed by two hex digits"),
            Self::OutsideBase => f.write_str("is not under the client's base URL"),
            Self::Segment { index, problem } => write!(f, "has a segment {index} that {problem}"),
        }
    }
}

/// A raw call's path, checked: one that starts with `/` and whose every segment stays in its
/// place, for a URL parser and for a server that percent-decodes before routing.
pub(crate) fn check_path(path: &str) -> Result<(), InvalidPath> {
    let fail = |problem| Err(InvalidPath::new(path, problem));
    if !path.starts_with('/') {
        return fail(PathProblem::NotFromRoot);
    }
    if path.starts_with("//") {
        return fail(PathProblem::SchemeRelative);
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let problem = match b {
            b'?' | b'#' => PathProblem::QueryOrFragment,
            b'\\' => PathProblem::Backslash,
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if hex(i + 1) && hex(i + 2) {
                    continue;
                }
                PathProblem::BadEscape
            }
            b'/' | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*'
            | b'+' | b',' | b';' | b'=' | b':' | b'@' => continue,
            b if b.is_ascii_alphanumeric() => continue,
            _ => PathProblem::Character,
        };
        return fail(problem);
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        // A trailing `/` is a path of its own (`/api/v4/leads/`), not a hole in one.
        if segment.is_empty() {
            if i == last {
                continue;
            }
            return fail(PathProblem::EmptySegment);
        }
        let mut current = segment.as_bytes().to_vec();
        loop {
            let name = current.split(|&b| b == b';').next().unwrap_or_default();
            if name == b"." || name == b".." {
                return fail(PathProblem::DotSegment);
            }
            if current.iter().any(|&b| b == b'/' || b == b'\\') {
                return fail(PathProblem::EncodedSeparator);
            }
            let decoded: Vec<u8> = percent_decode(&current).collect();
            if decoded == current {
                break;
            }
            current = decoded;
        }
    }
    Ok(())
}

/// Segments as a path from the root, each percent-encoded as one segment ([`encode`]).
pub(crate) fn join_segments(segments: &[&str]) -> Result<String, InvalidPath> {
    let mut path = String::new();
    for (index, segment) in segments.iter().enumerate() {
        let encoded = encode("request_segments", "segments", segment).map_err(|e| {
            let shown = segments.join("/");
            InvalidPath::new(
                &format!("/{shown}"),
                PathProblem::Segment {
                    index,
                    problem: e.problem(),
                },
            )
        })?;
        path.push('/');
        path.push_str(&encoded);
    }
    if path.is_empty() {
        path.push('/');
    }
    Ok(path)
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

    #[test]
    fn raw_paths_that_could_leave_the_base_are_refused() {
        use PathProblem::*;
        for (path, problem) in [
            ("api/v4/leads", NotFromRoot),
            ("http://evil.example/x", NotFromRoot),
            ("//evil.example/x", SchemeRelative),
            ("/api/v4/leads?x=1", QueryOrFragment),
            ("/api/v4/leads#x", QueryOrFragment),
            ("/api\\..\\admin", Backslash),
            ("/api/v4/a b", Character),
            ("/api/v4/\u{e9}", Character),
            ("/api/v4/\t", Character),
            ("/api//v4", EmptySegment),
            ("/api/../admin", DotSegment),
            ("/api/./v4", DotSegment),
            ("/api/%2e%2e/admin", DotSegment),
            ("/api/%2E./admin", DotSegment),
            ("/api/%252e%252e/admin", DotSegment),
            ("/api/..;/admin", DotSegment),
            ("/api/..%2fadmin", EncodedSeparator),
            ("/api/x%5cadmin", EncodedSeparator),
            ("/api/x%255cadmin", EncodedSeparator),
            ("/api/%zz", BadEscape),
            ("/api/%2", BadEscape),
        ] {
            let e = check_path(path).expect_err(path);
            assert_eq!(e.problem(), problem, "{path}");
        }
        for path in [
            "/",
            "/api/v4/leads",
            "/api/v4/leads/",
            "/api/v4/leads/a%20b",
            "/a/...",
            "/a:b@c",
        ] {
            check_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }

    #[test]
    fn segments_keep_their_place() {
        assert_eq!(
            join_segments(&["api", "v4", "a/b?c"]).unwrap(),
            "/api/v4/a%2Fb%3Fc"
        );
        let e = join_segments(&["api", "..", "x"]).unwrap_err();
        assert_eq!(
            e.problem(),
            PathProblem::Segment {
                index: 1,
                problem: PathParameterProblem::DotSegment
            }
        );
        assert_eq!(join_segments(&[]).unwrap(), "/");
    }
}
