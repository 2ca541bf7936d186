//! Query strings read the way PHP's `parse_str` reads them, as Kommo does.
//!
//! `a=1&a=2` is `a = "2"` (a repeated plain key keeps only the last value); `a[]=1&a[]=2` and
//! `a[0]=1&a[1]=2` are both the list `[1, 2]`; `a[from]=1&a[to]=2` is a map.

use lead_intake::form::{self, FormError, FormValue};
#[cfg(test)]
use serde_json::Value;

/// A PHP value from a query string: the library's form value (one parser for both).
pub(crate) type Php = FormValue;

/// Splits a declared PHP-style name into its base name and bracketed segments, as PHP reads it
/// (the library's parser, on the name alone): `filter[uid][]` is `("filter", ["uid", ""])`.
pub(crate) fn split_key(key: &str) -> (String, Vec<String>) {
    let (name, list) = match key.strip_suffix("[]") {
        Some(name) if !name.is_empty() => (name, true),
        _ => (key, false),
    };
    let mut path = Vec::new();
    if let Ok(parsed) = form::parse(format!("{name}=").as_bytes()) {
        let mut node = parsed.root().iter().next();
        while let Some((k, v)) = node {
            path.push(k.to_string());
            node = v.as_map().and_then(|m| m.iter().next());
        }
    }
    if list {
        path.push(String::new());
    }
    let mut path = path.into_iter();
    let base = path.next().unwrap_or_default();
    (base, path.collect())
}

/// A parsed query string: PHP's structure, and the places where one key was given both as a
/// single value and as an array or map (PHP silently keeps whichever came last).
pub(crate) struct Query {
    pub(crate) root: Php,
    /// Dotted paths, e.g. `filter.created_at` for `filter[created_at]=1&filter[created_at][to]=2`.
    pub(crate) conflicts: Vec<String>,
}

/// Parses a raw (percent-encoded) query string into PHP's structure, within PHP's limits
/// (`lead_intake::form`).
pub(crate) fn parse(query: &str) -> Result<Query, FormError> {
    let parsed = form::parse(query.as_bytes())?;
    let conflicts = parsed.conflicts().to_vec();
    Ok(Query {
        root: FormValue::Map(parsed.into_root()),
        conflicts,
    })
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
        Php::String(_) => Lookup::List(vec![node]),
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
                    Php::String(s) => s.clone(),
                    Php::Map(_) => "<map>".into(),
                })
                .collect(),
            Lookup::One(Php::String(s)) => vec![format!("one:{s}")],
            Lookup::One(Php::Map(_)) => vec!["one:<map>".into()],
            Lookup::Missing => vec![],
        }
    }

    #[test]
    fn a_repeated_plain_key_keeps_only_the_last_value() {
        let q = parse("a=1&a=2").unwrap();
        assert_eq!(strings(lookup(&q.root, "a")), ["one:2"]);
        assert!(q.conflicts.is_empty());
    }

    #[test]
    fn a_key_given_as_a_value_and_as_a_map_is_a_conflict() {
        let q = parse("filter[created_at]=1&filter[created_at][to]=2").unwrap();
        assert_eq!(q.conflicts, ["filter.created_at"]);
        assert_eq!(
            strings(lookup(&q.root, "filter[created_at][to]")),
            ["one:2"]
        );
        let q = parse("a[]=1&a=2").unwrap();
        assert_eq!(q.conflicts, ["a"]);
        assert_eq!(strings(lookup(&q.root, "a")), ["one:2"]);
    }

    #[test]
    fn appended_and_indexed_arrays_are_the_same_list() {
        let q = parse("filter%5Buid%5D%5B%5D=a&filter[uid][]=b").unwrap();
        assert_eq!(strings(lookup(&q.root, "filter[uid][]")), ["a", "b"]);
        let q = parse("filter[uid][0]=a&filter[uid][1]=b").unwrap();
        assert_eq!(strings(lookup(&q.root, "filter[uid][]")), ["a", "b"]);
        let q = parse("filter[uid]=a").unwrap();
        assert_eq!(strings(lookup(&q.root, "filter[uid][]")), ["a"]);
        let q = parse("filter[uid][5]=a&filter[uid][]=b").unwrap();
        assert_eq!(strings(lookup(&q.root, "filter[uid][]")), ["a", "b"]);
    }

    #[test]
    fn ranges_are_maps() {
        let q = parse("filter[created_at][from]=1&filter[created_at][to]=2").unwrap();
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
    fn only_canonical_integers_set_the_next_index() {
        // Found by `the_reader_agrees_with_php`: PHP's `a[05]` is a string key.
        let q = parse("a[05]=x&a[]=y&a[%2B1]=z&a[-0]=w&a[]=v").unwrap();
        assert_eq!(
            pairs_of(&q.root),
            [
                ("05", "x"),
                ("0", "y"),
                ("+1", "z"),
                ("-0", "w"),
                ("1", "v")
            ]
        );
        let q = parse("a[7]=x&a[]=y&a[-1]=z&a[]=w").unwrap();
        assert_eq!(
            pairs_of(&q.root),
            [("7", "x"), ("8", "y"), ("-1", "z"), ("9", "w")]
        );
    }

    fn pairs_of(root: &Php) -> Vec<(&str, &str)> {
        match root.get("a") {
            Some(Php::Map(entries)) => entries
                .iter()
                .map(|(k, v)| match v {
                    Php::String(s) => (k, s.as_str()),
                    Php::Map(_) => (k, "<map>"),
                })
                .collect(),
            _ => vec![],
        }
    }

    #[test]
    fn an_unclosed_first_bracket_becomes_part_of_the_name() {
        // As PHP reads it: `a[b=1` is `a_b`.
        let q = parse("a[b=1").unwrap();
        assert_eq!(strings(lookup(&q.root, "a_b")), ["one:1"]);
    }
}

/// The reader against PHP itself (needs `php`, like tests/php_query.rs): on queries encoded as
/// the client encodes them (`form_urlencoded`, reqwest's `query`), and on the same keys with
/// their brackets left raw, [`parse`] builds exactly what PHP's `parse_str()` builds, in the same
/// order. Mutations seen to fail it (then reverted): `[]` appending at the largest key instead
/// of one past it (shrunk: `a[]=&a[]=`); a repeated plain key keeping the first value (shrunk:
/// `a=&a=`); `0` and `05`-style keys alike when computing the next index (shrunk, before the fix
/// below: `a[05]=&a[]=`).
#[cfg(test)]
mod php_properties {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    use proptest::prelude::*;

    use super::*;

    /// One `php` process for every case: it reads a query per line and prints `parse_str()`'s
    /// result as ordered `[key, value]` pairs (an array keeps its order, which `json_encode`
    /// would hide behind a JSON list or object).
    struct PhpProcess {
        _child: std::process::Child,
        stdin: std::process::ChildStdin,
        stdout: BufReader<std::process::ChildStdout>,
    }

    fn php_parse_str(query: &str) -> Value {
        static PHP: std::sync::OnceLock<std::sync::Mutex<PhpProcess>> = std::sync::OnceLock::new();
        let php = PHP.get_or_init(|| {
            let mut child = Command::new("php")
                .args([
                    "-r",
                    r#"function pairs($v) {
                        if (!is_array($v)) return $v;
                        $out = [];
                        foreach ($v as $k => $x) $out[] = [(string)$k, pairs($x)];
                        return $out;
                    }
                    while (($line = fgets(STDIN)) !== false) {
                        parse_str(rtrim($line, "\n"), $q);
                        echo json_encode(pairs($q)), "\n";
                        flush();
                    }"#,
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("these tests need PHP's CLI: run scripts/install-test-tools.sh");
            let stdin = child.stdin.take().unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            std::sync::Mutex::new(PhpProcess {
                _child: child,
                stdin,
                stdout,
            })
        });
        let mut php = php.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(php.stdin, "{query}").unwrap();
        php.stdin.flush().unwrap();
        let mut line = String::new();
        php.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("php: {e}: {line:?}"))
    }

    fn pairs(php: &Php) -> Value {
        match php {
            Php::String(s) => Value::String(s.clone()),
            Php::Map(entries) => Value::Array(
                entries
                    .iter()
                    .map(|(k, v)| Value::Array(vec![Value::String(k.to_string()), pairs(v)]))
                    .collect(),
            ),
        }
    }

    /// Keys the way Kommo's parameters are named (a plain base, then bracketed segments) with
    /// the segments that decide PHP's array indices: appends, integers, and look-alikes.
    fn key() -> impl Strategy<Value = String> {
        // Also the names PHP rewrites: `.` and ` ` in the base, leading spaces, an unclosed
        // `[` (the library's rules, `lead_intake::form`).
        let base = prop::sample::select(vec!["filter", "order", "page", "a", "a.b", " x y", "c[d"]);
        let segment = prop::sample::select(vec![
            "",
            "",
            "uid",
            "created_at",
            "from",
            "0",
            "1",
            "7",
            "05",
            "-1",
            "-5",
            "-0",
            "+1",
            "x y",
        ]);
        (base, prop::collection::vec(segment, 0..3)).prop_map(|(base, segments)| {
            let mut key = base.to_string();
            for s in segments {
                key.push_str(&format!("[{s}]"));
            }
            key
        })
    }

    fn value() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("&".to_string()),
                Just("=".to_string()),
                Just("[]".to_string()),
                Just("%".to_string()),
                Just("+".to_string()),
                Just(" ".to_string()),
                "[a-z0-9]{1,3}",
                any::<char>()
                    .prop_filter("no newline", |c| !matches!(c, '\n' | '\r'))
                    .prop_map(String::from),
            ],
            0..4,
        )
        .prop_map(|v| v.concat())
    }

    fn query() -> impl Strategy<Value = (String, String)> {
        prop::collection::vec((key(), value()), 0..8).prop_map(|pairs| {
            let mut encoded = url::form_urlencoded::Serializer::new(String::new());
            let mut raw = Vec::new();
            for (k, v) in &pairs {
                encoded.append_pair(k, v);
                let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
                raw.push(format!("{k}={v}"));
            }
            (encoded.finish(), raw.join("&"))
        })
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 400,
            failure_persistence: None,
            ..Default::default()
        })]

        #[test]
        fn the_reader_agrees_with_php((encoded, raw) in query()) {
            for q in [encoded, raw] {
                prop_assert_eq!(pairs(&parse(&q).unwrap().root), php_parse_str(&q), "query {:?}", q);
            }
        }
    }
}
