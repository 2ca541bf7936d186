//! Text helpers for error messages and media types.

/// How much of a body an error message shows.
const EXCERPT: usize = 200;

/// The body as one line, cut to its first 200 characters, for error messages.
pub(crate) fn excerpt(body: &str) -> String {
    let text: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    match text.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Whether a Content-Type is JSON: `application/json` or any `+json` (`application/problem+json`).
pub(crate) fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_one_line_of_at_most_200_characters() {
        assert_eq!(excerpt("  a\n\tb  "), "a b");
        assert_eq!(excerpt(" \n "), "(empty body)");
        let long = "é".repeat(300);
        assert_eq!(excerpt(&long), format!("{}…", "é".repeat(200)));
    }

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type(
            "Application/Problem+JSON; charset=utf-8"
        ));
        assert!(!is_json_media_type("text/html"));
        assert!(!is_json_media_type(""));
    }
}
