use std::fmt;

/// A secret string (a token, password or credential) whose `Debug` never shows it. It has no
/// `Display`, so it cannot be formatted into a message or a header by accident: call
/// [`Secret::expose`] where the value must be sent or stored.
///
/// ```
/// let s = lead_intake::Secret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret(\"[redacted]\")");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value itself. Call this only where the value must be sent or stored.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"[redacted]\")")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Secret {
    fn schema_name() -> String {
        "Secret".to_string()
    }
    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut schema = String::json_schema(generator).into_object();
        schema.format = Some("password".to_string());
        schema.into()
    }
}

/// The text that takes a secret's place in error messages and bodies.
pub(crate) const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for (replacing every `t` of a body because a test
/// used the token `t` would make messages unreadable, and such a value protects nothing).
const MIN_REDACTED_LEN: usize = 6;

/// The secrets a request was sent with, which an answer must not carry into an error: the
/// credentials give them, the transport puts them in the call's context, and the error layer
/// removes them from every error (see [`redact`] for the rule).
#[derive(Clone, Default)]
pub(crate) struct Redactions(pub(crate) std::sync::Arc<Vec<Secret>>);

impl fmt::Debug for Redactions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactions({} secrets)", self.0.len())
    }
}

impl Redactions {
    pub(crate) fn new(secrets: Vec<Secret>) -> Self {
        Self(std::sync::Arc::new(secrets))
    }

    fn searched(&self) -> impl Iterator<Item = &str> + Clone {
        self.0
            .iter()
            .map(Secret::expose)
            .filter(|s| s.len() >= MIN_REDACTED_LEN)
    }

    /// `text` with every spelling of the secrets replaced by `[redacted]` ([`redact`]).
    pub(crate) fn apply<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        redact(text, self.searched())
    }

    /// `text` with every secret removed ([`Redactions::apply_to`]), by value.
    pub(crate) fn scrubbed(&self, mut text: String) -> String {
        self.apply_to(&mut text);
        text
    }

    /// `text` redacted in place ([`Redactions::apply`]).
    pub(crate) fn apply_to(&self, text: &mut String) {
        if let std::borrow::Cow::Owned(redacted) = self.apply(text) {
            *text = redacted;
        }
    }

    /// The bytes with every spelling of the secrets replaced; `None` when none is found.
    pub(crate) fn apply_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        redact_bytes(bytes, &self.searched().collect::<Vec<_>>())
    }

    /// What an error keeps of a body: at most `limit` bytes, redacted; when the body was cut
    /// (it is `limit` bytes or more), also cut back before any unfinished escape and any start
    /// of a secret at its end, so that a cut never leaves a secret's first characters.
    pub(crate) fn keep(&self, body: &[u8], limit: usize) -> Vec<u8> {
        let secrets: Vec<&str> = self.searched().collect();
        let cut = body.len() >= limit;
        let head = &body[..body.len().min(limit)];
        let mut kept = redact_bytes(head, &secrets).unwrap_or_else(|| head.to_vec());
        if cut {
            kept.truncate(limit);
            let end = cut_back(&kept, &secrets);
            kept.truncate(end);
        }
        kept
    }

    /// Every string of a JSON value (keys too) redacted: what serde decoded from an answer, an
    /// escape read, still redacted.
    pub(crate) fn apply_to_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => self.apply_to(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.apply_to_json(item)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (mut key, mut item) in entries {
                    self.apply_to(&mut key);
                    self.apply_to_json(&mut item);
                    map.insert(key, item);
                }
            }
            _ => {}
        }
    }
}

/// `text` with every occurrence of each secret (of at least 6 bytes) replaced by `[redacted]`,
/// in any spelling a server may echo it with: as it is, or with any of its characters written
/// as a JSON or Rust escape (`\u0053`, `\u{53}`, `\/`, `\"`, `\\`; hex in either case, UTF-16
/// surrogate pairs), a percent escape (`%2F`, `+` for a space), or an HTML character reference
/// (`&#83;`, `&#x53;`, `&amp;`): any mix of escaped and plain characters, and up to three
/// layers of escaping (an escaped JSON document inside a JSON string). The whole spelled
/// occurrence is replaced. Text without a secret comes back borrowed.
pub(crate) fn redact<'a, 's>(
    text: &'a str,
    secrets: impl IntoIterator<Item = &'s str>,
) -> std::borrow::Cow<'a, str> {
    let secrets: Vec<&str> = secrets
        .into_iter()
        .filter(|s| s.len() >= MIN_REDACTED_LEN)
        .collect();
    match redact_bytes(text.as_bytes(), &secrets) {
        None => std::borrow::Cow::Borrowed(text),
        Some(bytes) => std::borrow::Cow::Owned(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
    }
}

/// One byte of a reading of the text, and the bytes of the text it was read from.
#[derive(Clone, Copy)]
struct Unit {
    byte: u8,
    start: usize,
    end: usize,
}

/// How a layer of escapes is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escapes {
    /// JSON's and Rust's backslash escapes.
    Backslash,
    /// `%XX`.
    Percent,
    /// `%XX` and `+` for a space (HTML forms).
    Form,
    /// HTML character references.
    Html,
}

const ESCAPES: [Escapes; 4] = [
    Escapes::Backslash,
    Escapes::Percent,
    Escapes::Form,
    Escapes::Html,
];

/// How many layers of escapes are read.
const LAYERS: usize = 3;

/// The text as it is and every reading of it with up to [`LAYERS`] layers of escapes read
/// (readings that read nothing are left out).
fn readings(text: &[u8]) -> Vec<Vec<Unit>> {
    let plain: Vec<Unit> = text
        .iter()
        .enumerate()
        .map(|(i, &byte)| Unit {
            byte,
            start: i,
            end: i + 1,
        })
        .collect();
    let mut all = vec![plain];
    // Readings read in another order are often the same: each is searched once.
    let mut seen = std::collections::HashSet::new();
    seen.insert(text.to_vec());
    let mut layer = vec![0usize];
    for _ in 0..LAYERS {
        let mut next = Vec::new();
        for &index in &layer {
            for escapes in ESCAPES {
                if let Some(read) = read_layer(&all[index], escapes)
                    && seen.insert(read.iter().map(|u| u.byte).collect::<Vec<u8>>())
                {
                    all.push(read);
                    next.push(all.len() - 1);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        layer = next;
    }
    all
}

fn hex(units: &[Unit]) -> Option<u32> {
    if units.is_empty() || units.len() > 6 {
        return None;
    }
    units.iter().try_fold(0u32, |n, u| {
        (u.byte as char).to_digit(16).map(|d| (n << 4) | d)
    })
}

fn decimal(units: &[Unit]) -> Option<u32> {
    if units.is_empty() || units.len() > 7 {
        return None;
    }
    units.iter().try_fold(0u32, |n, u| {
        (u.byte as char).to_digit(10).map(|d| n * 10 + d)
    })
}

/// A `\uXXXX` at `i`, as a code unit, with its length.
fn json_unit(units: &[Unit], i: usize) -> Option<u32> {
    if units.get(i)?.byte != b'\\' || units.get(i + 1)?.byte != b'u' {
        return None;
    }
    hex(units.get(i + 2..i + 6)?)
}

/// The escape at `i` (which starts with an escape character), read: the bytes it stands for and
/// how many units it takes.
fn read_escape(units: &[Unit], i: usize, escapes: Escapes) -> Option<(Vec<u8>, usize)> {
    let byte = |j: usize| units.get(j).map(|u| u.byte);
    let char_bytes = |c: char| c.to_string().into_bytes();
    match (escapes, units[i].byte) {
        (Escapes::Backslash, b'\\') => match byte(i + 1)? {
            b'u' if byte(i + 2) == Some(b'{') => {
                let close = (i + 3..units.len().min(i + 10)).find(|&j| units[j].byte == b'}')?;
                let c = char::from_u32(hex(&units[i + 3..close])?)?;
                Some((char_bytes(c), close + 1 - i))
            }
            b'u' => {
                let first = json_unit(units, i)?;
                if (0xD800..0xDC00).contains(&first) {
                    let second = json_unit(units, i + 6)?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return None;
                    }
                    let c = char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))?;
                    return Some((char_bytes(c), 12));
                }
                Some((char_bytes(char::from_u32(first)?), 6))
            }
            b @ (b'/' | b'\\' | b'"' | b'\'') => Some((vec![b], 2)),
            b'n' => Some((vec![b'\n'], 2)),
            b't' => Some((vec![b'\t'], 2)),
            b'r' => Some((vec![b'\r'], 2)),
            b'b' => Some((vec![8], 2)),
            b'f' => Some((vec![12], 2)),
            _ => None,
        },
        (Escapes::Percent | Escapes::Form, b'%') => {
            let value = hex(units.get(i + 1..i + 3)?)?;
            Some((vec![value as u8], 3))
        }
        (Escapes::Form, b'+') => Some((vec![b' '], 1)),
        (Escapes::Html, b'&') => {
            let close = (i + 1..units.len().min(i + 12)).find(|&j| units[j].byte == b';')?;
            let name = &units[i + 1..close];
            let c = match name.first()?.byte {
                b'#' => match name.get(1)?.byte {
                    b'x' | b'X' => char::from_u32(hex(&name[2..])?)?,
                    _ => char::from_u32(decimal(&name[1..])?)?,
                },
                _ => {
                    let name: Vec<u8> = name.iter().map(|u| u.byte).collect();
                    match name.as_slice() {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        b"sol" => '/',
                        _ => return None,
                    }
                }
            };
            Some((char_bytes(c), close + 1 - i))
        }
        _ => None,
    }
}

/// The reading of `units` with one layer of `escapes` read, or `None` when it has none.
fn read_layer(units: &[Unit], escapes: Escapes) -> Option<Vec<Unit>> {
    let starts: &[u8] = match escapes {
        Escapes::Backslash => b"\\",
        Escapes::Percent => b"%",
        Escapes::Form => b"%+",
        Escapes::Html => b"&",
    };
    if !units.iter().any(|u| starts.contains(&u.byte)) {
        return None;
    }
    let mut out = Vec::with_capacity(units.len());
    let mut read_any = false;
    let mut i = 0;
    while i < units.len() {
        if let Some((bytes, taken)) = read_escape(units, i, escapes) {
            let (start, end) = (units[i].start, units[i + taken - 1].end);
            out.extend(bytes.into_iter().map(|byte| Unit { byte, start, end }));
            read_any = true;
            i += taken;
        } else {
            out.push(units[i]);
            i += 1;
        }
    }
    read_any.then_some(out)
}

/// Where `needle` occurs in `haystack`'s bytes.
fn occurrences<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let first = needle[0];
    (0..(haystack.len() + 1).saturating_sub(needle.len()))
        .filter(move |&i| haystack[i] == first && haystack[i..].starts_with(needle))
}

/// `text` with every spelling of the secrets (each at least [`MIN_REDACTED_LEN`] bytes)
/// replaced, or `None` when there is none.
fn redact_bytes(text: &[u8], secrets: &[&str]) -> Option<Vec<u8>> {
    if secrets.is_empty() || text.is_empty() {
        return None;
    }
    let mut found: Vec<(usize, usize)> = Vec::new();
    for reading in readings(text) {
        let bytes: Vec<u8> = reading.iter().map(|u| u.byte).collect();
        for secret in secrets {
            let needle = secret.as_bytes();
            for at in occurrences(&bytes, needle) {
                found.push((reading[at].start, reading[at + needle.len() - 1].end));
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    found.sort_unstable();
    let mut out = Vec::with_capacity(text.len());
    let mut done = 0;
    for (start, end) in found {
        if end <= done {
            continue;
        }
        out.extend_from_slice(&text[done..start.max(done)]);
        out.extend_from_slice(REDACTED.as_bytes());
        done = end;
    }
    out.extend_from_slice(&text[done..]);
    Some(out)
}

/// Where a cut text should end so that it ends with neither an unfinished escape nor the start
/// of a secret (in any reading): the end itself when it does.
fn cut_back(text: &[u8], secrets: &[&str]) -> usize {
    // Only the end matters: the longest secret, each character spelled in the longest escape
    // (`\uD83D\uDE00`, 12 bytes) through every layer, and an unfinished escape after it.
    let longest = secrets.iter().map(|s| s.len()).max().unwrap_or(0);
    let window = (longest + 1) * 12usize.pow(LAYERS as u32 - 1) + 16;
    let mut end = text.len();
    loop {
        let mut cut = end;
        let from = end.saturating_sub(window);
        for mut reading in readings(&text[from..end]) {
            for unit in &mut reading {
                unit.start += from;
                unit.end += from;
            }
            let bytes: Vec<u8> = reading.iter().map(|u| u.byte).collect();
            if let Some(at) = unfinished_escape(&bytes) {
                cut = cut.min(reading[at].start);
            }
            for secret in secrets {
                let secret = secret.as_bytes();
                if let Some(len) = (1..secret.len())
                    .rev()
                    .find(|&len| bytes.ends_with(&secret[..len]))
                {
                    cut = cut.min(reading[bytes.len() - len].start);
                }
            }
        }
        if cut == end {
            return end;
        }
        end = cut;
    }
}

/// The start of an escape that the end of `bytes` leaves unfinished (`\`, `\u00`, `\u{5`,
/// `%2`, `&#x5`, `&am`).
fn unfinished_escape(bytes: &[u8]) -> Option<usize> {
    let from = bytes.len().saturating_sub(12);
    let tail = &bytes[from..];
    let at = |b: u8| {
        tail.iter()
            .rposition(|&c| c == b)
            .map(|i| (from + i, &tail[i + 1..]))
    };
    if let Some((i, rest)) = at(b'\\') {
        let unfinished = match rest {
            [] => true,
            [b'u', b'{', hexes @ ..] => hexes.iter().all(u8::is_ascii_hexdigit),
            [b'u', hexes @ ..] if hexes.len() < 4 => hexes.iter().all(u8::is_ascii_hexdigit),
            // A high surrogate (`\uD83D`) waiting for its low one.
            [b'u', hexes @ ..] if hexes.len() == 4 => std::str::from_utf8(hexes)
                .ok()
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .is_some_and(|n| (0xD800..0xDC00).contains(&n)),
            _ => false,
        };
        if unfinished {
            return Some(i);
        }
    }
    if let Some((i, rest)) = at(b'%')
        && rest.len() < 2
        && rest.iter().all(u8::is_ascii_hexdigit)
    {
        return Some(i);
    }
    if let Some((i, rest)) = at(b'&')
        && rest.len() < 11
        && rest.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'#')
    {
        return Some(i);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_secret_is_redacted() {
        let secret = "ab/cd+ef\"gh";
        let text = format!(
            "raw {secret} json {} php {} form {} short abc",
            serde_json::to_string(secret).unwrap(),
            serde_json::to_string(secret).unwrap().replace('/', "\\/"),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
        );
        let out = redact(&text, [secret, "abc"]);
        assert!(!out.contains("cd+ef"), "{out}");
        assert!(!out.contains("cd%2Bef"), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 4, "{out}");
        assert!(
            out.ends_with("short abc"),
            "short secrets are left alone: {out}"
        );
    }

    #[test]
    fn any_mix_of_escaped_and_plain_characters_is_redacted() {
        let secret = "SECRET/key";
        for spelled in [
            "\\u0053ECRET\\/key",
            "S\\u0045\\u0043RET/k\\u0065y",
            "\\u{53}ECRET/key",
            "&#83;ECRET&#x2f;key",
            "SECRET%2Fkey",
            // Escaped twice: a JSON document inside a JSON string.
            "\\\\u0053ECRET/key",
        ] {
            let text = format!("before {spelled} after");
            let out = redact(&text, [secret]);
            assert_eq!(out, "before [redacted] after", "{spelled}");
        }
    }

    #[test]
    fn a_cut_keeps_no_start_of_a_secret() {
        let secrets = Redactions::new(vec![Secret::new("SECRET-KEY-1")]);
        for spelled in [
            "SECRET-K",
            "S\\u0045CR",
            "SE\\u00",
            "&#83;EC&#x5",
            "SECRET\\",
        ] {
            let body = format!("{}{spelled}", "*".repeat(100));
            let kept = secrets.keep(body.as_bytes(), body.len());
            assert_eq!(kept, "*".repeat(100).into_bytes(), "{spelled}");
        }
        // An uncut body is kept whole.
        let body = b"*****SECRET-K";
        assert_eq!(secrets.keep(body, 100), body.to_vec());
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        assert!(matches!(
            redact("nothing here", ["SECRET-TOKEN"]),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
