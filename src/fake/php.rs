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

/// A parsed query string: PHP's structure, and the places where one key was given both as a
/// single value and as an array or map (PHP silently keeps whichever came last).
pub(crate) struct Query {
    pub(crate) root: Php,
    /// Dotted paths, e.g. `filter.created_at` for `filter[created_at]=1&filter[created_at][to]=2`.
    pub(crate) conflicts: Vec<String>,
}

/// Parses a raw (percent-encoded) query string into PHP's structure.
pub(crate) fn parse(query: &str) -> Query {
    let mut entries = Vec::new();
    let mut conflicts = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key.is_empty() {
            continue;
        }
        let (base, segments) = split_key(&key);
        let mut path = Vec::with_capacity(segments.len() + 1);
        path.push(base);
        path.extend(segments);
        let mut at = Vec::new();
        insert(
            &mut entries,
            &path,
            value.into_owned(),
            &mut at,
            &mut conflicts,
        );
    }
    Query {
        root: Php::Map(entries),
        conflicts,
    }
}

fn insert(
    entries: &mut Vec<(String, Php)>,
    path: &[String],
    value: String,
    at: &mut Vec<String>,
    conflicts: &mut Vec<String>,
) {
    let Some((first, rest)) = path.split_first() else {
        return;
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
    at.push(key.clone());
    let position = entries.iter().position(|(k, _)| *k == key);
    if rest.is_empty() {
        // A repeated plain key keeps only the last value; replacing an array is a conflict.
        match position {
            Some(i) => {
                if matches!(entries[i].1, Php::Map(_)) {
                    conflicts.push(at.join("."));
                }
                entries[i].1 = Php::Str(value);
            }
            None => entries.push((key, Php::Str(value))),
        }
        return;
    }
    let i = match position {
        Some(i) => {
            if matches!(entries[i].1, Php::Str(_)) {
                conflicts.push(at.join("."));
                entries[i].1 = Php::Map(Vec::new());
            }
            i
        }
        None => {
            entries.push((key, Php::Map(Vec::new())));
            entries.len() - 1
        }
    };
    if let Php::Map(children) = &mut entries[i].1 {
        insert(children, rest, value, at, conflicts);
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
        assert_eq!(strings(lookup(&q.root, "a")), ["one:2"]);
        assert!(q.conflicts.is_empty());
    }

    #[test]
    fn a_key_given_as_a_value_and_as_a_map_is_a_conflict() {
        let q = parse("filter[created_at]=1&filter[created_at][to]=2");
        assert_eq!(q.conflicts, ["filter.created_at"]);
        assert_eq!(
            strings(lookup(&q.root, "filter[created_at][to]")),
            ["one:2"]
        );
        let q = parse("a[]=1&a=2");
        assert_eq!(q.conflicts, ["a"]);
        assert_eq!(strings(lookup(&q.root, "a")), ["one:2"]);
    }

    #[test]
    fn appended_and_indexed_arrays_are_the_same_list() {
        let q = parse("filter%5Buid%5D%5B%5D=a&filter[uid][]=b");
        assert_eq!(strings(lookup(&q.root, "filter[uid][]")), ["a", "b"]);
        let q = parse("filter[uid][0]=a&filter[uid][1]=b");
        assert_eq!(strings(lookup(&q.root, "filter[uid][]")), ["a", "b"]);
        let q = parse("filter[uid]=a");
        assert_eq!(strings(lookup(&q.root, "filter[uid][]")), ["a"]);
        let q = parse("filter[uid][5]=a&filter[uid][]=b");
        assert_eq!(strings(lookup(&q.root, "filter[uid][]")), ["a", "b"]);
    }

    #[test]
    fn ranges_are_maps() {
        let q = parse("filter[created_at][from]=1&filter[created_at][to]=2");
        assert_eq!(
            strings(lookup(&q.root, "filter[created_at][from]")),
            ["one:1"]
        );
        assert_eq!(
            strings(lookup(&q.root, "filter[created_at]")),
            ["one:<map>"]
        );
        assert!(matches!(lookup(&q.root, "filter[uid][]"), Lookup::Missing));
    }

    #[test]
    fn unclosed_brackets_are_literal() {
        let q = parse("a[b=1");
        assert_eq!(strings(lookup(&q.root, "a[b")), ["one:1"]);
    }
}
