//! Query strings read the way PHP's `parse_str` reads them, as Kommo does.
//!
//! `a=1&a=2` is `a = "2"` (a repeated plain key keeps only the last value); `a[]=1&a[]=2` and
//! `a[0]=1&a[1]=2` are both the list `[1, 2]`; `a[from]=1&a[to]=2` is a map.

use serde_json::Value;

/// A PHP value from a query string: a string, or an ordered map (PHP's arrays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Php {
    Str(String),
    Map(Vec<(String, Php)>),
}

impl Php {
    fn get(&self, key: &str) -> Option<&Php> {
        match self {
            Php::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Php::Str(_) => None,
        }
    }

    /// The value as JSON: strings stay strings, maps become objects.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Php::Str(s) => Value::String(s.clone()),
            Php::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Splits a PHP-style key into its base name and bracketed segments: `filter[uid][]` is
/// `("filter", ["uid", ""])`. A key with an unclosed bracket is taken literally, as PHP does.
pub(crate) fn split_key(key: &str) -> (String, Vec<String>) {
    let Some(open) = key.find('[') else {
        return (key.to_string(), Vec::new());
    };
    if open == 0 {
        return (key.to_string(), Vec::new());
    }
    let base = key[..open].to_string();
    let mut segments = Vec::new();
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            break;
        };
        segments.push(stripped[..close].to_string());
        rest = &stripped[close + 1..];
    }
    if segments.is_empty() {
        return (key.to_string(), Vec::new());
    }
    (base, segments)
}

/// Parses a raw (percent-encoded) query string into PHP's structure.
pub(crate) fn parse(query: &str) -> Php {
    let mut root = Php::Map(Vec::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key.is_empty() {
            continue;
        }
        let (base, segments) = split_key(&key);
        let mut path = Vec::with_capacity(segments.len() + 1);
        path.push(base);
        path.extend(segments);
        insert(&mut root, &path, value.into_owned());
    }
    root
}

fn insert(node: &mut Php, path: &[String], value: String) {
    if !matches!(node, Php::Map(_)) {
        *node = Php::Map(Vec::new());
    }
    let Php::Map(entries) = node else {
        return;
    };
    let (first, rest) = match path.split_first() {
        Some(split) => split,
        None => return,
    };
    let key = if first.is_empty() {
        // `[]`: the next integer key, one past the largest so far.
        let next = entries
            .iter()
            .filter_map(|(k, _)| k.parse::<i64>().ok())
            .max()
            .map_or(0, |n| n + 1);
        next.to_string()
    } else {
        first.clone()
    };
    let slot = match entries.iter().position(|(k, _)| *k == key) {
        Some(i) => &mut entries[i].1,
        None => {
            entries.push((key, Php::Str(String::new())));
            let last = entries.len() - 1;
            &mut entries[last].1
        }
    };
    if rest.is_empty() {
        *slot = Php::Str(value);
    } else {
        insert(slot, rest, value);
    }
}

/// Looks up a parameter declared with its PHP name (`filter[uid][]`, `filter[created_at][from]`,
/// `limit`). A name ending in `[]` is a list: a single value is a list of one (the documents allow
/// `filter[uid]=x`), a map (indexed or appended) is its values in order.
pub(crate) enum Lookup<'a> {
    Missing,
    One(&'a Php),
    List(Vec<&'a Php>),
}

pub(crate) fn lookup<'a>(root: &'a Php, declared: &str) -> Lookup<'a> {
    let (base, mut segments) = split_key(declared);
    let is_list = segments.last().is_some_and(String::is_empty);
    if is_list {
        segments.pop();
    }
    let mut node = match root.get(&base) {
        Some(n) => n,
        None => return Lookup::Missing,
    };
    for segment in &segments {
        node = match node.get(segment) {
            Some(n) => n,
            None => return Lookup::Missing,
        };
    }
    if !is_list {
        return Lookup::One(node);
    }
    match node {
        Php::Str(_) => Lookup::List(vec![node]),
        Php::Map(entries) => Lookup::List(entries.iter().map(|(_, v)| v).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(l: Lookup<'_>) -> Vec<String> {
        match l {
            Lookup::List(items) => items
                .into_iter()
                .map(|p| match p {
                    Php::Str(s) => s.clone(),
                    Php::Map(_) => "<map>".into(),
                })
                .collect(),
            Lookup::One(Php::Str(s)) => vec![format!("one:{s}")],
            Lookup::One(Php::Map(_)) => vec!["one:<map>".into()],
            Lookup::Missing => vec![],
        }
    }

    #[test]
    fn a_repeated_plain_key_keeps_only_the_last_value() {
        let q = parse("a=1&a=2");
        assert_eq!(strings(lookup(&q, "a")), ["one:2"]);
    }

    #[test]
    fn appended_and_indexed_arrays_are_the_same_list() {
        let q = parse("filter%5Buid%5D%5B%5D=a&filter[uid][]=b");
        assert_eq!(strings(lookup(&q, "filter[uid][]")), ["a", "b"]);
        let q = parse("filter[uid][0]=a&filter[uid][1]=b");
        assert_eq!(strings(lookup(&q, "filter[uid][]")), ["a", "b"]);
        let q = parse("filter[uid]=a");
        assert_eq!(strings(lookup(&q, "filter[uid][]")), ["a"]);
        let q = parse("filter[uid][5]=a&filter[uid][]=b");
        assert_eq!(strings(lookup(&q, "filter[uid][]")), ["a", "b"]);
    }

    #[test]
    fn ranges_are_maps() {
        let q = parse("filter[created_at][from]=1&filter[created_at][to]=2");
        assert_eq!(strings(lookup(&q, "filter[created_at][from]")), ["one:1"]);
        assert_eq!(strings(lookup(&q, "filter[created_at]")), ["one:<map>"]);
        assert!(matches!(lookup(&q, "filter[uid][]"), Lookup::Missing));
    }

    #[test]
    fn unclosed_brackets_are_literal() {
        let q = parse("a[b=1");
        assert_eq!(strings(lookup(&q, "a[b")), ["one:1"]);
    }
}
