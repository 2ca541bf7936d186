//! OpenAPI 3.0 helpers: JSON-pointer `$ref` resolution and the conversion of OAS 3.0 Schema
//! Objects into JSON Schema Draft 2020-12.
//!
//! The one home of the conversion rules: the fake validates requests and answers with them, and
//! `cargo xtask validate` checks every example of the specs with them, so the two cannot drift.
//! OAS 3.0's `nullable` becomes a `null` in `type` (or an `anyOf` with `null` around a
//! composite), `exclusiveMinimum: true` carries its bound, an integer `format` becomes its
//! bounds, `readOnly` / `writeOnly` properties leave `required` on the side of the wire that does
//! not carry them ([`Direction`]), and `$ref`s into `components/schemas` point into `$defs`.
//!
//! Errors are messages naming the place in the document (`#/components/schemas/...`).
//!
//! ```
//! use lead_intake_fake::schema::{Converter, Direction};
//! use serde_json::json;
//!
//! let doc = json!({"components": {"schemas": {
//!     "Source": {"type": "object", "required": ["id", "name"], "properties": {
//!         "id": {"type": "integer", "readOnly": true},
//!         "name": {"type": "string", "nullable": true}
//!     }}
//! }}});
//! let converter = Converter::new(&doc, Direction::Request);
//! let defs = converter.defs()?;
//! let root = converter.root(&defs, &json!({"$ref": "#/components/schemas/Source"}))?;
//! assert_eq!(root["$ref"], "#/$defs/Source");
//! // A request does not carry the read-only `id`; `name` may be null.
//! assert_eq!(defs["Source"]["required"], json!(["name"]));
//! assert_eq!(defs["Source"]["properties"]["name"]["type"], json!(["string", "null"]));
//! # Ok::<(), String>(())
//! ```

use serde_json::{Map, Value, json};

/// The `$schema` of every converted root.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
const COMPONENT_SCHEMAS: &str = "#/components/schemas/";
const DEFS: &str = "#/$defs/";
/// Guards against `$ref` chains that loop (a -> b -> a).
const MAX_REF_HOPS: usize = 32;

/// Which side of the wire an instance travels on; decides how
/// `readOnly`/`writeOnly` relax `required`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// Request bodies and parameters: `readOnly` properties are not sent.
    Request,
    /// Responses: `writeOnly` properties are not returned.
    Response,
    /// Schema-level `example`s: could be either side, so relax both.
    Neutral,
}

impl Direction {
    fn omits(self, prop: &Value, doc: &Value) -> bool {
        let flag = |key| is_flagged(prop, key, doc);
        match self {
            Direction::Request => flag("readOnly"),
            Direction::Response => flag("writeOnly"),
            Direction::Neutral => flag("readOnly") || flag("writeOnly"),
        }
    }
}

/// Escape one JSON-pointer reference token (RFC 6901).
pub fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Resolve an in-document `$ref` (`#/a/b~1c`, optionally percent-encoded).
pub fn resolve_ref<'d>(doc: &'d Value, reference: &str) -> Result<&'d Value, String> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Err(format!(
            "`{reference}` is not an in-document reference (must start with `#/`)"
        ));
    };
    let fragment = percent_decode(fragment)
        .ok_or_else(|| format!("`{reference}` has an invalid percent-encoding"))?;
    if fragment.is_empty() {
        return Ok(doc);
    }
    let Some(rest) = fragment.strip_prefix('/') else {
        return Err(format!(
            "`{reference}` is not a JSON pointer (fragment must start with `/`)"
        ));
    };
    let mut cur = doc;
    for raw in rest.split('/') {
        let token = unescape_token(raw)
            .ok_or_else(|| format!("`{reference}` has an invalid `~` escape in `{raw}`"))?;
        cur = match cur {
            Value::Object(m) => m.get(&token),
            Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("`{reference}` does not resolve: no `{token}`"))?;
    }
    Ok(cur)
}

/// Follow `$ref`s until a non-reference object. Returns the final JSON
/// pointer (for messages and caching) alongside the value.
pub fn deref<'d>(
    doc: &'d Value,
    mut value: &'d Value,
    mut pointer: String,
) -> Result<(&'d Value, String), String> {
    for _ in 0..MAX_REF_HOPS {
        match value.get("$ref") {
            Some(Value::String(r)) => {
                value = resolve_ref(doc, r)?;
                pointer = r.trim_start_matches('#').to_string();
            }
            Some(_) => return Err(format!("`$ref` at `{pointer}` is not a string")),
            None => return Ok((value, pointer)),
        }
    }
    Err(format!("`$ref` chain at `{pointer}` loops"))
}

fn unescape_token(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next()? {
                '0' => out.push('~'),
                '1' => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Percent-decodes `s` (`%2F` to `/`); `None` for a broken escape or bytes that are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// True if the (possibly `$ref`ed) schema sets `key: true`.
fn is_flagged(schema: &Value, key: &str, doc: &Value) -> bool {
    if schema.get(key) == Some(&Value::Bool(true)) {
        return true;
    }
    match deref(doc, schema, String::new()) {
        Ok((target, _)) => target.get(key) == Some(&Value::Bool(true)),
        Err(_) => false,
    }
}

/// Converts OAS 3.0 Schema Objects of one document into Draft 2020-12.
#[derive(Clone, Copy, Debug)]
pub struct Converter<'d> {
    doc: &'d Value,
    dir: Direction,
}

/// OAS-only keywords with no JSON Schema meaning (or, like `example`,
/// data that must not be read as schema).
const DROPPED: &[&str] = &[
    "nullable",
    "discriminator",
    "xml",
    "externalDocs",
    "example",
    "deprecated",
];
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties"];
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf"];
const SUBSCHEMAS: &[&str] = &["items", "additionalProperties", "not"];

/// `format`s that typify maps to fixed-width Rust integers: an example out of
/// range would not deserialize into the generated type.
fn integer_bounds(format: &str) -> Option<(Value, Value)> {
    Some(match format {
        "int8" => (json!(i8::MIN), json!(i8::MAX)),
        "int16" => (json!(i16::MIN), json!(i16::MAX)),
        "int32" => (json!(i32::MIN), json!(i32::MAX)),
        "int64" => (json!(i64::MIN), json!(i64::MAX)),
        "uint8" => (json!(0), json!(u8::MAX)),
        "uint16" => (json!(0), json!(u16::MAX)),
        "uint32" => (json!(0), json!(u32::MAX)),
        "uint64" => (json!(0), json!(u64::MAX)),
        _ => return None,
    })
}

impl<'d> Converter<'d> {
    /// A converter of schemas of `doc` (the whole OpenAPI document, for `$ref`s), for `dir`.
    pub fn new(doc: &'d Value, dir: Direction) -> Self {
        Self { doc, dir }
    }

    /// `components.schemas`, converted, for use as `$defs`.
    pub fn defs(&self) -> Result<Map<String, Value>, String> {
        let mut defs = Map::new();
        let schemas = self
            .doc
            .pointer("/components/schemas")
            .and_then(Value::as_object);
        for (name, schema) in schemas.into_iter().flatten() {
            let converted = self
                .convert(schema)
                .map_err(|e| format!("#/components/schemas/{}: {e}", escape_token(name)))?;
            defs.insert(name.clone(), converted);
        }
        Ok(defs)
    }

    /// A self-contained 2020-12 root: the converted target with the converted
    /// components beside it as `$defs`, so rewritten refs resolve.
    pub fn root(&self, defs: &Map<String, Value>, schema: &Value) -> Result<Value, String> {
        let mut root = Map::new();
        root.insert("$schema".into(), json!(DRAFT_2020_12));
        root.insert("$defs".into(), Value::Object(defs.clone()));
        match self.convert(schema)? {
            Value::Object(m) => root.extend(m),
            Value::Bool(true) => {}
            _ => {
                root.insert("not".into(), json!({}));
            }
        }
        Ok(root.into())
    }

    /// One schema, converted; its `$ref`s point into `$defs` (see [`Converter::root`]).
    pub fn convert(&self, schema: &Value) -> Result<Value, String> {
        let obj = match schema {
            Value::Object(obj) => obj,
            // Not legal in OAS 3.0, but harmless: 2020-12 gives them meaning.
            Value::Bool(_) => return Ok(schema.clone()),
            other => return Err(format!("schema must be an object, found {other}")),
        };
        if let Some(r) = obj.get("$ref") {
            // OAS 3.0: siblings of `$ref` are ignored, and so are they by
            // the generated code; keeping them would validate a different type.
            let r = r.as_str().ok_or("`$ref` is not a string")?;
            return Ok(json!({ "$ref": rewrite_ref(r)? }));
        }
        let mut out = Map::new();
        for (key, value) in obj {
            let k = key.as_str();
            if DROPPED.contains(&k) || k.starts_with("x-") || k.starts_with('$') {
                // `$id`/`$defs`/... are not OAS 3.0 and would rebase our refs.
                continue;
            }
            let converted = if SCHEMA_MAPS.contains(&k) {
                let m = value.as_object().ok_or(format!("`{k}` is not an object"))?;
                let mut props = Map::new();
                for (name, sub) in m {
                    let sub = self
                        .convert(sub)
                        .map_err(|e| format!("{k}/{}: {e}", escape_token(name)))?;
                    props.insert(name.clone(), sub);
                }
                Value::Object(props)
            } else if SCHEMA_LISTS.contains(&k) {
                let list = value.as_array().ok_or(format!("`{k}` is not an array"))?;
                let mut subs = Vec::with_capacity(list.len());
                for (i, sub) in list.iter().enumerate() {
                    subs.push(self.convert(sub).map_err(|e| format!("{k}/{i}: {e}"))?);
                }
                Value::Array(subs)
            } else if SUBSCHEMAS.contains(&k) {
                self.convert(value).map_err(|e| format!("{k}: {e}"))?
            } else {
                value.clone()
            };
            out.insert(key.clone(), converted);
        }

        self.exclusive_bound(&mut out, "exclusiveMinimum", "minimum");
        self.exclusive_bound(&mut out, "exclusiveMaximum", "maximum");
        self.relax_required(obj, &mut out);
        tighten_integer_format(&mut out);

        if obj.get("nullable") == Some(&Value::Bool(true)) {
            return Ok(make_nullable(out));
        }
        Ok(Value::Object(out))
    }

    /// OAS 3.0 `exclusiveMinimum: true` modifies `minimum`; 2020-12 carries the
    /// bound itself.
    fn exclusive_bound(&self, out: &mut Map<String, Value>, exclusive: &str, bound: &str) {
        match out.get(exclusive) {
            Some(Value::Bool(true)) => match out.remove(bound) {
                Some(b) => {
                    out.insert(exclusive.into(), b);
                }
                None => {
                    out.remove(exclusive);
                }
            },
            Some(Value::Bool(false)) => {
                out.remove(exclusive);
            }
            _ => {}
        }
    }

    fn relax_required(&self, obj: &Map<String, Value>, out: &mut Map<String, Value>) {
        let Some(Value::Array(required)) = out.get("required") else {
            return;
        };
        let props = obj.get("properties").and_then(Value::as_object);
        let kept: Vec<Value> = required
            .iter()
            .filter(|name| {
                let prop = name.as_str().and_then(|n| props.and_then(|p| p.get(n)));
                !prop.is_some_and(|p| self.dir.omits(p, self.doc))
            })
            .cloned()
            .collect();
        if kept.is_empty() {
            out.remove("required");
        } else {
            out.insert("required".into(), Value::Array(kept));
        }
    }
}

fn rewrite_ref(r: &str) -> Result<String, String> {
    match r.strip_prefix(COMPONENT_SCHEMAS) {
        Some(rest) => Ok(format!("{DEFS}{rest}")),
        None => Err(format!(
            "schema `$ref: {r}` must point into `{COMPONENT_SCHEMAS}`"
        )),
    }
}

fn tighten_integer_format(out: &mut Map<String, Value>) {
    let is_integer = match out.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    let Some((lo, hi)) = out
        .get("format")
        .and_then(Value::as_str)
        .and_then(integer_bounds)
    else {
        return;
    };
    if !is_integer {
        return;
    }
    let tighter = |cur: Option<&Value>, bound: Value, keep_cur: fn(f64, f64) -> bool| match cur {
        Some(c)
            if c.as_f64()
                .zip(bound.as_f64())
                .is_some_and(|(c, b)| keep_cur(c, b)) =>
        {
            c.clone()
        }
        _ => bound,
    };
    let min = tighter(out.get("minimum"), lo, |c, b| c >= b);
    let max = tighter(out.get("maximum"), hi, |c, b| c <= b);
    out.insert("minimum".into(), min);
    out.insert("maximum".into(), max);
}

fn make_nullable(mut out: Map<String, Value>) -> Value {
    // A composite can't be made nullable by widening `type`: each branch
    // would still reject null.
    let composite = ["allOf", "anyOf", "oneOf", "not", "$ref"]
        .iter()
        .any(|k| out.contains_key(*k));
    if composite {
        return json!({ "anyOf": [Value::Object(out), { "type": "null" }] });
    }
    let null = json!("null");
    match out.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            out.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(ts)) if !ts.contains(&null) => ts.push(null),
        _ => {}
    }
    if let Some(Value::Array(values)) = out.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(dir: Direction, schema: Value) -> Value {
        Converter::new(&Value::Null, dir).convert(&schema).unwrap()
    }

    fn valid(doc: &Value, dir: Direction, schema: &Value, instance: &Value) -> bool {
        let c = Converter::new(doc, dir);
        let root = c.root(&c.defs().unwrap(), schema).unwrap();
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap()
            .is_valid(instance)
    }

    #[test]
    fn nullable_scalar_adds_null_type() {
        let out = conv(
            Direction::Response,
            json!({"type": "string", "nullable": true}),
        );
        assert_eq!(out, json!({"type": ["string", "null"]}));
        let out = conv(Direction::Response, json!({"type": "string"}));
        assert_eq!(out, json!({"type": "string"}));
    }

    #[test]
    fn nullable_enum_adds_null_member() {
        let out = conv(
            Direction::Response,
            json!({"type": "string", "enum": ["a", "b"], "nullable": true}),
        );
        assert_eq!(
            out,
            json!({"type": ["string", "null"], "enum": ["a", "b", null]})
        );
        let s = json!({"type": "string", "enum": ["a"], "nullable": true});
        assert!(valid(&Value::Null, Direction::Response, &s, &Value::Null));
        assert!(!valid(&Value::Null, Direction::Response, &s, &json!("c")));
    }

    #[test]
    fn nullable_composite_wraps_in_any_of() {
        let out = conv(
            Direction::Response,
            json!({"nullable": true, "allOf": [{"$ref": "#/components/schemas/A"}]}),
        );
        assert_eq!(
            out,
            json!({"anyOf": [{"allOf": [{"$ref": "#/$defs/A"}]}, {"type": "null"}]})
        );
        let doc = json!({"components": {"schemas": {"A": {"type": "object", "required": ["x"]}}}});
        let s = json!({"nullable": true, "allOf": [{"$ref": "#/components/schemas/A"}]});
        assert!(valid(&doc, Direction::Response, &s, &Value::Null));
        assert!(valid(&doc, Direction::Response, &s, &json!({"x": 1})));
        assert!(!valid(&doc, Direction::Response, &s, &json!({})));
    }

    #[test]
    fn ref_siblings_are_dropped() {
        let out = conv(
            Direction::Response,
            json!({"$ref": "#/components/schemas/A", "nullable": true, "description": "d"}),
        );
        assert_eq!(out, json!({"$ref": "#/$defs/A"}));
        let doc = json!({"components": {"schemas": {"A": {"type": "integer"}}}});
        let s = json!({"$ref": "#/components/schemas/A", "nullable": true});
        assert!(!valid(&doc, Direction::Response, &s, &Value::Null));
    }

    #[test]
    fn ref_outside_component_schemas_is_an_error() {
        let err = Converter::new(&Value::Null, Direction::Response)
            .convert(&json!({"$ref": "#/components/responses/A"}))
            .unwrap_err();
        assert!(err.contains("#/components/schemas/"), "{err}");
    }

    #[test]
    fn boolean_exclusive_bounds_become_numeric() {
        let out = conv(
            Direction::Request,
            json!({"type": "number", "minimum": 0, "exclusiveMinimum": true,
                   "maximum": 10, "exclusiveMaximum": false}),
        );
        assert_eq!(
            out,
            json!({"type": "number", "exclusiveMinimum": 0, "maximum": 10})
        );
        let s = json!({"type": "number", "minimum": 0, "exclusiveMinimum": true});
        assert!(!valid(&Value::Null, Direction::Request, &s, &json!(0)));
        assert!(valid(&Value::Null, Direction::Request, &s, &json!(0.5)));
    }

    #[test]
    fn read_only_and_write_only_relax_required_by_direction() {
        let doc = json!({"components": {"schemas": {
            "Id": {"type": "integer", "readOnly": true}
        }}});
        let s = json!({
            "type": "object",
            "required": ["id", "ref_id", "secret", "name"],
            "properties": {
                "id": {"type": "integer", "readOnly": true},
                "ref_id": {"$ref": "#/components/schemas/Id"},
                "secret": {"type": "string", "writeOnly": true},
                "name": {"type": "string"}
            }
        });
        let req = Converter::new(&doc, Direction::Request)
            .convert(&s)
            .unwrap();
        assert_eq!(req["required"], json!(["secret", "name"]));
        let resp = Converter::new(&doc, Direction::Response)
            .convert(&s)
            .unwrap();
        assert_eq!(resp["required"], json!(["id", "ref_id", "name"]));
        let neutral = Converter::new(&doc, Direction::Neutral)
            .convert(&s)
            .unwrap();
        assert_eq!(neutral["required"], json!(["name"]));
    }

    #[test]
    fn oas_only_keywords_dropped_but_property_names_kept() {
        let out = conv(
            Direction::Response,
            json!({"type": "object", "example": {"a": 1}, "x-rust-type": "u8",
                   "deprecated": true, "discriminator": {"propertyName": "k"},
                   "properties": {"example": {"type": "string", "xml": {}}}}),
        );
        assert_eq!(
            out,
            json!({"type": "object", "properties": {"example": {"type": "string"}}})
        );
    }

    #[test]
    fn integer_formats_bound_the_range() {
        let s = json!({"type": "integer", "format": "int32"});
        assert!(valid(&Value::Null, Direction::Response, &s, &json!(5)));
        assert!(!valid(
            &Value::Null,
            Direction::Response,
            &s,
            &json!(3_000_000_000u64)
        ));
        let out = conv(
            Direction::Response,
            json!({"type": "integer", "format": "int64", "minimum": 1}),
        );
        assert_eq!(out["minimum"], json!(1));
        assert_eq!(out["maximum"], json!(i64::MAX));
    }

    #[test]
    fn format_validation_is_on() {
        let s = json!({"type": "string", "format": "date-time"});
        assert!(valid(
            &Value::Null,
            Direction::Response,
            &s,
            &json!("2024-01-01T00:00:00Z")
        ));
        assert!(!valid(
            &Value::Null,
            Direction::Response,
            &s,
            &json!("yesterday")
        ));
    }

    #[test]
    fn refs_resolve_with_escapes() {
        let doc = json!({"paths": {"/a/{b}": {"x~y": 1}}});
        assert_eq!(
            resolve_ref(&doc, "#/paths/~1a~1{b}/x~0y").unwrap(),
            &json!(1)
        );
        assert_eq!(
            resolve_ref(&doc, "#/paths/~1a~1%7Bb%7D/x~0y").unwrap(),
            &json!(1)
        );
        assert!(resolve_ref(&doc, "#/paths/missing").is_err());
        assert!(resolve_ref(&doc, "other.yaml#/a").is_err());
        assert!(resolve_ref(&doc, "#/paths/~2").is_err());
    }
}
