//! Form bodies and query strings read the way PHP's `parse_str` reads them, within limits.
//!
//! Kommo is written in PHP: its webhooks are `application/x-www-form-urlencoded` bodies of PHP
//! arrays (`unsorted[add][0][uid]=...`), and its API reads query strings the same way. [`parse`]
//! builds what PHP builds, in the same order:
//!
//! - pairs are split at `&` (empty pieces are skipped) and at the first `=` (a pair without one
//!   has the value `""`); `+` is a space and `%XX` a byte; a `%` not followed by two hex digits
//!   stays as it is;
//! - `a=1&a=2` keeps the last value (in the place of the first); `a[]=1&a[]=2` and
//!   `a[0]=1&a[1]=2` are the same map `{0: "1", 1: "2"}`; `a[k]=1` is a map;
//! - `[]` appends one past the largest integer key so far (PHP's integer keys are canonical
//!   decimals within 64 bits: `7`, `-1`, not `07`, `+1`, `-0`), or at `0`;
//! - the name: leading spaces are dropped; in the base name (before the first `[`) `.` and ` `
//!   become `_`; a first `[` that is never closed is literal and becomes `_` too (`a[b=1` is
//!   `a_b`), as do the ` `, `.` and `[` after it; after a closed `]` anything but `[` ends the
//!   name (`a[b]c=1` is `a[b]`); an unclosed later `[` ends it as well (`a[b][c=1` is `a[b]`);
//!   the name ends at its first NUL byte (values keep theirs); a pair with an empty name (`=1`,
//!   `[a]=1`) is ignored, as PHP ignores it, and counted in [`Form::nameless`];
//! - a key given as a string and then as a map (or the reverse) is replaced by the later one,
//!   as PHP replaces it; [`Form::conflicts`] names every such place.
//!
//! These rules were checked against `php -r parse_str` (PHP 8.2; `tests/php_query.rs` and the
//! fake's property test compare the two on generated queries).
//!
//! Where PHP warns and drops data, this parser fails instead, with a [`FormError`] that says
//! which limit or field and at which byte offset: more fields than [`FormLimits::max_fields`]
//! (PHP's `max_input_vars`, 1000), a name nested deeper than [`FormLimits::max_depth`] (PHP's
//! `max_input_nesting_level`, 64), an append to a map whose largest key is `i64::MAX`, and a body
//! longer than [`FormLimits::max_bytes`]. Names and values must be UTF-8 once percent-decoded
//! (PHP keeps any bytes; a [`FormError::InvalidUtf8`] says where they are not). Errors never
//! quote a value; they name the field by its (shortened) name.
//!
//! ```
//! use lead_intake::form::{self, FormLimits};
//!
//! let form = form::parse(b"unsorted[add][0][uid]=a1&unsorted[add][0][pipeline_id]=7&a=1&a=2")?;
//! let add = form.root().get("unsorted").and_then(|u| u.get("add")).unwrap();
//! assert_eq!(add.get("0").and_then(|e| e.get("uid")).and_then(|v| v.as_str()), Some("a1"));
//! assert_eq!(form.root().get("a").and_then(|v| v.as_str()), Some("2"));
//! // As JSON, a map keyed 0, 1, ... is a list, as PHP's json_encode writes it.
//! assert_eq!(form.to_json()["unsorted"]["add"][0]["pipeline_id"], "7");
//!
//! let strict = FormLimits::new().with_max_fields(2);
//! let err = form::parse_with(b"a=1&b=2&c=3", &strict).unwrap_err();
//! assert_eq!(err.to_string(), "the form has more than 2 fields (the 3rd starts at byte 8)");
//! # Ok::<(), lead_intake::form::FormError>(())
//! ```

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

/// The limits a form is read within. The defaults are PHP's: 1000 fields, names nested 64 deep,
/// and 1 MiB of body.
///
/// ```
/// use lead_intake::form::FormLimits;
///
/// let limits = FormLimits::new().with_max_fields(200).with_max_bytes(64 * 1024);
/// assert_eq!((limits.max_fields(), limits.max_depth(), limits.max_bytes()), (200, 64, 65536));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormLimits {
    max_fields: usize,
    max_depth: usize,
    max_bytes: usize,
}

impl Default for FormLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl FormLimits {
    /// The most that [`with_max_depth`](Self::with_max_depth) accepts: values are built and
    /// dropped recursively, and this keeps that well within a thread's stack.
    pub const MAX_DEPTH: usize = 512;

    /// PHP's defaults: 1000 fields (`max_input_vars`), depth 64 (`max_input_nesting_level`),
    /// and 1 MiB of body.
    pub const fn new() -> Self {
        Self {
            max_fields: 1000,
            max_depth: 64,
            max_bytes: 1024 * 1024,
        }
    }

    /// At most this many `&`-separated fields (empty pieces do not count).
    pub const fn with_max_fields(mut self, fields: usize) -> Self {
        self.max_fields = fields;
        self
    }

    /// At most this many bracketed segments in one name (`a[b][c]` has 2); at most
    /// [`MAX_DEPTH`](Self::MAX_DEPTH) (a larger value is read as that).
    pub const fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = if depth > Self::MAX_DEPTH {
            Self::MAX_DEPTH
        } else {
            depth
        };
        self
    }

    /// At most this many bytes of body (before decoding).
    pub const fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The most fields.
    pub const fn max_fields(&self) -> usize {
        self.max_fields
    }

    /// The deepest nesting of a name.
    pub const fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// The most bytes.
    pub const fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

/// Why a form could not be read. Each says where: the field's position (1-based, counting
/// fields as PHP counts them), the byte offset where it starts, and its name, shortened to 64
/// characters; never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// The body is longer than [`FormLimits::max_bytes`].
    #[error("the form is {len} bytes long, more than the limit of {limit}")]
    TooLarge {
        /// The limit.
        limit: usize,
        /// The body's length.
        len: usize,
    },
    /// There are more fields than [`FormLimits::max_fields`].
    #[error(
        "the form has more than {limit} fields (the {} starts at byte {offset})",
        ordinal(*limit + 1)
    )]
    TooManyFields {
        /// The limit.
        limit: usize,
        /// Where the first field over the limit starts.
        offset: usize,
    },
    /// A name is nested deeper than [`FormLimits::max_depth`].
    #[error("field {field} (at byte {offset}, `{name}`) is nested deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// The field's position (1-based).
        field: usize,
        /// Where it starts.
        offset: usize,
        /// Its name as sent (decoded), shortened.
        name: String,
    },
    /// `[]` appended to a map whose largest integer key is already `i64::MAX` (PHP drops the
    /// field with a warning).
    #[error("field {field} (at byte {offset}, `{name}`) appends to a full map")]
    NoNextIndex {
        /// The field's position (1-based).
        field: usize,
        /// Where it starts.
        offset: usize,
        /// Its name, shortened.
        name: String,
    },
    /// A name or a value is not UTF-8 once percent-decoded.
    #[error("the {part} of field {field} (at byte {offset}) is not UTF-8 once decoded")]
    InvalidUtf8 {
        /// `"name"` or `"value"`.
        part: &'static str,
        /// The field's position (1-based).
        field: usize,
        /// Where the field starts.
        offset: usize,
    },
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A value of a form: a string, or an ordered map (a PHP array). A form holds nothing else,
/// so the enum is exhaustive.
#[derive(Clone, PartialEq, Eq)]
pub enum FormValue {
    /// A string (every scalar of a form is one: `7` is `"7"`).
    String(String),
    /// An ordered map, with unique keys.
    Map(FormMap),
}

impl FormValue {
    /// The string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FormValue::String(s) => Some(s),
            FormValue::Map(_) => None,
        }
    }

    /// The map, when it is one.
    pub fn as_map(&self) -> Option<&FormMap> {
        match self {
            FormValue::Map(m) => Some(m),
            FormValue::String(_) => None,
        }
    }

    /// The value under `key`, when this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&FormValue> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// The value as JSON: a string stays a string; a map whose keys are `0`, `1`, ... in that
    /// order is a list (as PHP's `json_encode` writes it), any other map an object. So typed
    /// structs can be deserialized from it (`serde_json::from_value`).
    pub fn to_json(&self) -> Value {
        match self {
            FormValue::String(s) => Value::String(s.clone()),
            FormValue::Map(m) => m.to_json(),
        }
    }
}

impl fmt::Debug for FormValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormValue::String(s) => fmt::Debug::fmt(s, f),
            FormValue::Map(m) => fmt::Debug::fmt(m, f),
        }
    }
}

/// An ordered map of a form (PHP's array): keys in the order they first came, each once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FormMap {
    entries: Vec<(String, FormValue)>,
}

impl FormMap {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&FormValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &FormValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, owned.
    pub fn into_entries(self) -> Vec<(String, FormValue)> {
        self.entries
    }

    /// Whether the keys are `0`, `1`, ... in order (PHP's list).
    pub fn is_list(&self) -> bool {
        self.entries
            .iter()
            .enumerate()
            .all(|(i, (k, _))| k.parse::<usize>().ok() == Some(i) && integer_key(k).is_some())
    }

    /// The map as JSON (see [`FormValue::to_json`]).
    pub fn to_json(&self) -> Value {
        if self.is_list() {
            Value::Array(self.entries.iter().map(|(_, v)| v.to_json()).collect())
        } else {
            Value::Object(
                self.entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            )
        }
    }

    /// The map written back as a form body (keys and values percent-encoded, brackets too), in
    /// order: [`parse`] reads it back as this map, for a map [`parse`] built.
    pub fn to_form(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.entries {
            let name: String = url::form_urlencoded::byte_serialize(k.as_bytes()).collect();
            write_form(&mut out, &name, v);
        }
        out
    }
}

/// A serialized value (a struct or a map) as a query string or form body in PHP's bracket form,
/// written by [`FormMap::to_form`]: a map's entries as `name[key]=..`, a list's as
/// `name[0]=..&name[1]=..` (PHP reads both back as the same array), `true`/`false` as `1`/`0` and
/// `null` left out, as PHP's `http_build_query` writes them. `Err` says why a value is not a map.
pub(crate) fn to_php_form(value: &Value) -> Result<String, String> {
    match (value.is_object(), from_json(value)) {
        (true, Some(FormValue::Map(map))) => Ok(map.to_form()),
        _ => Err(format!(
            "a query or form body must serialize to a map (a struct or a map), not {}",
            match value {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                Value::Null => "null",
                Value::Object(_) => "a map",
            }
        )),
    }
}

/// A JSON value as a form value (see [`to_php_form`]); `None` for `null`.
fn from_json(value: &Value) -> Option<FormValue> {
    let map = |entries: Vec<(String, FormValue)>| FormValue::Map(FormMap { entries });
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => FormValue::String(if *b { "1" } else { "0" }.to_string()),
        Value::Number(n) => FormValue::String(n.to_string()),
        Value::String(s) => FormValue::String(s.clone()),
        Value::Array(items) => map(items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i.to_string(), from_json(v)?)))
            .collect()),
        Value::Object(fields) => map(fields
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), from_json(v)?)))
            .collect()),
    })
}

fn write_form(out: &mut String, name: &str, value: &FormValue) {
    match value {
        FormValue::String(s) => {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            out.extend(url::form_urlencoded::byte_serialize(s.as_bytes()));
        }
        FormValue::Map(m) => {
            for (k, v) in &m.entries {
                let key: String = url::form_urlencoded::byte_serialize(k.as_bytes()).collect();
                write_form(out, &format!("{name}%5B{key}%5D"), v);
            }
        }
    }
}

impl fmt::Debug for FormMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

/// A parsed form: its top-level map, and what PHP would have replaced or ignored silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    root: FormMap,
    conflicts: Vec<String>,
    nameless: Vec<usize>,
}

impl Form {
    /// The top-level map.
    pub fn root(&self) -> &FormMap {
        &self.root
    }

    /// The top-level map, owned.
    pub fn into_root(self) -> FormMap {
        self.root
    }

    /// The places where one key was given both as a string and as a map, so that the later
    /// replaced the earlier (as PHP does), as dotted paths: `filter.created_at` for
    /// `filter[created_at]=1&filter[created_at][to]=2`.
    pub fn conflicts(&self) -> &[String] {
        &self.conflicts
    }

    /// The byte offsets of the fields that had no name (`=1`, `[a]=1`) and were ignored.
    pub fn nameless(&self) -> &[usize] {
        &self.nameless
    }

    /// The top-level map as JSON (see [`FormValue::to_json`]).
    pub fn to_json(&self) -> Value {
        self.root.to_json()
    }
}

/// Parses a form body or a raw query string with the default [`FormLimits`].
pub fn parse(input: &[u8]) -> Result<Form, FormError> {
    parse_with(input, &FormLimits::new())
}

/// Parses a form body or a raw query string within `limits`.
pub fn parse_with(input: &[u8], limits: &FormLimits) -> Result<Form, FormError> {
    if input.len() > limits.max_bytes {
        return Err(FormError::TooLarge {
            limit: limits.max_bytes,
            len: input.len(),
        });
    }
    let mut root = Builder::default();
    let mut conflicts = Vec::new();
    let mut nameless = Vec::new();
    let mut field = 0usize;
    let mut offset = 0usize;
    for piece in input.split(|&b| b == b'&') {
        let start = offset;
        offset += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        field += 1;
        if field > limits.max_fields {
            return Err(FormError::TooManyFields {
                limit: limits.max_fields,
                offset: start,
            });
        }
        let (raw_name, raw_value) = match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], piece.get(eq + 1..).unwrap_or_default()),
            None => (piece, &[][..]),
        };
        let mut name = decode(raw_name);
        if let Some(nul) = name.iter().position(|&b| b == 0) {
            name.truncate(nul);
        }
        let name = String::from_utf8(name).map_err(|_| FormError::InvalidUtf8 {
            part: "name",
            field,
            offset: start,
        })?;
        let value = String::from_utf8(decode(raw_value)).map_err(|_| FormError::InvalidUtf8 {
            part: "value",
            field,
            offset: start,
        })?;
        let Some(path) = key_path(&name, limits.max_depth).map_err(|()| FormError::TooDeep {
            limit: limits.max_depth,
            field,
            offset: start,
            name: shorten(&name),
        })?
        else {
            nameless.push(start);
            continue;
        };
        let mut at = Vec::new();
        root.insert(&path, value, &mut at, &mut conflicts)
            .map_err(|()| FormError::NoNextIndex {
                field,
                offset: start,
                name: shorten(&name),
            })?;
    }
    Ok(Form {
        root: root.finish(),
        conflicts,
        nameless,
    })
}

/// The name's first 64 characters, for an error.
fn shorten(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((at, _)) => format!("{}...", name.get(..at).unwrap_or_default()),
        None => name.to_string(),
    }
}

/// PHP's `php_url_decode`: `+` is a space, `%XX` a byte, any other `%` itself.
fn decode(raw: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = (
                    raw.get(i + 1).copied().and_then(hex),
                    raw.get(i + 2).copied().and_then(hex),
                );
                if let (Some(hi), Some(lo)) = pair {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// A decoded name as PHP's `php_register_variable_ex` reads it: the base name, then the
/// bracketed segments (`""` for `[]`). `None` for a name PHP ignores (empty); `Err` when it has
/// more than `max_depth` segments. All the characters it looks at are ASCII, so the slicing is
/// on character boundaries.
fn key_path(name: &str, max_depth: usize) -> Result<Option<Vec<String>>, ()> {
    let name = name.trim_start_matches(' ');
    let open = name.find('[');
    let base: String = name
        .get(..open.unwrap_or(name.len()))
        .unwrap_or_default()
        .chars()
        .map(|c| if c == ' ' || c == '.' { '_' } else { c })
        .collect();
    if base.is_empty() {
        return Ok(None);
    }
    let Some(open) = open else {
        return Ok(Some(vec![base]));
    };
    let mut path = vec![base];
    // `rest` starts just after a `[`.
    let mut rest = name.get(open + 1..).unwrap_or_default();
    loop {
        if path.len() > max_depth {
            return Err(());
        }
        let Some(close) = rest.find(']') else {
            if path.len() == 1 {
                // The first `[` is never closed: it and what follows are part of the name.
                let mut literal = path.pop().unwrap_or_default();
                literal.push('_');
                literal.extend(rest.chars().map(|c| match c {
                    ' ' | '.' | '[' => '_',
                    c => c,
                }));
                path.push(literal);
            }
            return Ok(Some(path));
        };
        path.push(rest.get(..close).unwrap_or_default().to_string());
        let after = rest.get(close + 1..).unwrap_or_default();
        match after.strip_prefix('[') {
            Some(next) => rest = next,
            None => return Ok(Some(path)),
        }
    }
}

/// The key as PHP's integer key: a canonical decimal (`7`, `-1`, `0`; not `05`, `+1`, `-0`)
/// within 64 bits.
fn integer_key(key: &str) -> Option<i64> {
    let digits = key.strip_prefix('-').unwrap_or(key);
    let canonical = match digits.as_bytes() {
        [b'0'] => key == "0",
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if canonical { key.parse().ok() } else { None }
}

/// A map while it is built: entries, an index over them, and PHP's next free integer key.
#[derive(Default)]
struct Builder {
    entries: Vec<(String, Node)>,
    index: HashMap<String, usize>,
    /// The largest integer key so far.
    largest: Option<i64>,
}

enum Node {
    Str(String),
    Map(Builder),
}

impl Builder {
    /// Inserts `value` at `path` below this map; `Err` when `[]` has no next index.
    fn insert(
        &mut self,
        path: &[String],
        value: String,
        at: &mut Vec<String>,
        conflicts: &mut Vec<String>,
    ) -> Result<(), ()> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(());
        };
        let key = if first.is_empty() {
            match self.largest {
                None => "0".to_string(),
                Some(n) => n.checked_add(1).ok_or(())?.to_string(),
            }
        } else {
            first.clone()
        };
        if let Some(n) = integer_key(&key) {
            self.largest = Some(self.largest.map_or(n, |m| m.max(n)));
        }
        at.push(key.clone());
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.entries.len();
                self.index.insert(key.clone(), i);
                let node = if rest.is_empty() {
                    Node::Str(String::new())
                } else {
                    Node::Map(Builder::default())
                };
                self.entries.push((key, node));
                i
            }
        };
        let Some((_, node)) = self.entries.get_mut(i) else {
            return Ok(());
        };
        if rest.is_empty() {
            if matches!(node, Node::Map(_)) {
                conflicts.push(at.join("."));
            }
            *node = Node::Str(value);
            return Ok(());
        }
        if matches!(node, Node::Str(_)) {
            // A string given earlier: replaced by a fresh array, as PHP replaces it (its next
            // index starts again at 0). A new entry is a map from the start.
            conflicts.push(at.join("."));
            *node = Node::Map(Builder::default());
        }
        match node {
            Node::Map(children) => children.insert(rest, value, at, conflicts),
            Node::Str(_) => Ok(()),
        }
    }

    fn finish(self) -> FormMap {
        FormMap {
            entries: self
                .entries
                .into_iter()
                .map(|(k, node)| {
                    let value = match node {
                        Node::Str(s) => FormValue::String(s),
                        Node::Map(b) => FormValue::Map(b.finish()),
                    };
                    (k, value)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(q: &str) -> Value {
        parse(q.as_bytes()).unwrap().to_json()
    }

    #[test]
    fn names_are_read_as_php_reads_them() {
        assert_eq!(json("a[b=1"), serde_json::json!({"a_b": "1"}));
        assert_eq!(json("a[b][c=1"), serde_json::json!({"a": {"b": "1"}}));
        assert_eq!(json("a[x]y[z]=1"), serde_json::json!({"a": {"x": "1"}}));
        assert_eq!(
            json(" a.b c[d.e]=1"),
            serde_json::json!({"a_b_c": {"d.e": "1"}})
        );
        assert_eq!(json("a%00b=1"), serde_json::json!({"a": "1"}));
        assert_eq!(json("a[b%00c]=1"), serde_json::json!({"a_b": "1"}));
        assert_eq!(json("a[b.c[d=1"), serde_json::json!({"a_b_c_d": "1"}));
        assert_eq!(json("a=%zz%4"), serde_json::json!({"a": "%zz%4"}));
        assert_eq!(json("a=%00x"), serde_json::json!({"a": "\u{0}x"}));
        let form = parse(b"=1&[a]=2& =3&b").unwrap();
        assert_eq!(form.nameless(), [0, 3, 9]);
        assert_eq!(form.to_json(), serde_json::json!({"b": ""}));
    }

    #[test]
    fn appends_follow_the_largest_integer_key() {
        assert_eq!(
            json("a[-5]=x&a[]=y"),
            serde_json::json!({"a": {"-5": "x", "-4": "y"}})
        );
        assert_eq!(
            json("a[05]=x&a[]=y&a[-0]=z&a[]=w"),
            serde_json::json!({"a": {"05": "x", "0": "y", "-0": "z", "1": "w"}})
        );
        let err = parse(b"a[9223372036854775807]=x&a[]=y").unwrap_err();
        assert!(
            matches!(
                err,
                FormError::NoNextIndex {
                    field: 2,
                    offset: 25,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_value_replaced_by_a_map_is_a_conflict() {
        let form = parse(b"filter[created_at]=1&filter[created_at][to]=2").unwrap();
        assert_eq!(form.conflicts(), ["filter.created_at"]);
        let form = parse(b"a[]=1&a=2&a[]=3").unwrap();
        assert_eq!(form.conflicts(), ["a", "a"]);
        assert_eq!(form.to_json(), serde_json::json!({"a": ["3"]}));
        assert!(parse(b"a[b]=1&a[c]=2").unwrap().conflicts().is_empty());
    }
}
