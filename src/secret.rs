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
/// removes them from error bodies.
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

    /// `text` with every occurrence of the secrets replaced by `[redacted]`.
    pub(crate) fn apply<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        redact(text, self.0.iter().map(Secret::expose))
    }
}

/// `text` with every occurrence of each secret replaced by `[redacted]`: as it is, as JSON
/// escapes it (serde's escaping, and PHP's, which also escapes `/` as `\/`) and
/// percent-encoded, since a server that echoes a request back may use any of them.
pub(crate) fn redact<'a, 's>(
    text: &'a str,
    secrets: impl IntoIterator<Item = &'s str>,
) -> std::borrow::Cow<'a, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for secret in secrets {
        if secret.len() < MIN_REDACTED_LEN {
            continue;
        }
        for form in forms(secret) {
            if out.contains(form.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(form.as_str(), REDACTED));
            }
        }
    }
    out
}

/// The spellings of a secret an echo may use, longest first (so a longer escaped form is
/// replaced before the plain form inside it would be).
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(secret);
    forms.push(json.to_string());
    forms.push(json.replace('/', "\\/"));
    forms.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
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
    fn text_without_secrets_is_borrowed() {
        assert!(matches!(
            redact("nothing here", ["SECRET-TOKEN"]),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
