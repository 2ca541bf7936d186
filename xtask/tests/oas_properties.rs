//! Property tests (proptest) of the OAS 3.0 to JSON Schema 2020-12 conversion
//! (`lead_intake_fake::schema`, `fake/src/schema.rs`, shared by the fake and `cargo xtask
//! validate`):
//!
//! - **null**: for generated OAS schemas (type, format, nullable, enum, properties, required,
//!   items, oneOf, anyOf, allOf, `$ref` with and without siblings), the converted schema accepts
//!   `null` exactly when OAS 3.0 does (an independent reading of the rules, in `oas_accepts_null`).
//! - **integer formats**: for `type: integer` with any of the eight integer formats, optional
//!   `minimum`/`maximum` and boolean `exclusiveMinimum`/`exclusiveMaximum`, the converted schema
//!   accepts an integer exactly when it is in the format's range and within the bounds.
//! - **real specs**: for every schema of `openapi/kommo.yaml` and `openapi/closebot.yaml`,
//!   instances generated from the OAS schema (by an independent generator, below) validate
//!   against the converted schema.
//!
//! Mutations of fake/src/schema.rs seen to fail them (then reverted), with the shrunk cases:
//!
//! | mutation | property failing | shrunk case |
//! |---|---|---|
//! | `make_nullable` not called | null; real specs | `{"type": "string", "nullable": true}`; an instance with `"visitor_uid": null` |
//! | composites made nullable by widening `type` (no `anyOf` wrapper) | null | a nullable `allOf` of a `string` |
//! | `$ref` siblings kept (`nullable` next to a `$ref` honoured) | null | `{"$ref": "#/components/schemas/A", "nullable": true}` |
//! | `int32` given `int64`'s bounds | integer formats | `int32`, `2147483648` |
//! | `int64` given `int32`'s bounds | integer formats; real specs | `int64`, `-2147483649`; `{"status_id": -9223372036854775808}` |
//! | `tighten_integer_format` keeping the looser `minimum` | integer formats | `int32`, `minimum: 0`, `-32768` |
//! | `exclusiveMinimum: true` turned into an inclusive `minimum` | integer formats | `int8`, `minimum: 127` exclusive, `127` |

use lead_intake_fake::schema::{self as oas, Converter, Direction, deref};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let converter = Converter::new(doc, Direction::Response);
    let root = converter
        .root(&converter.defs().expect("defs convert"), schema)
        .expect("the schema converts");
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the converted schema is not valid JSON Schema: {e}\n{root}"))
}

// ---------------------------------------------------------------------------------- null

/// Whether OAS 3.0 (as this project reads it: `nullable: true` adds `null` to the type and to
/// an `enum`) accepts `null` for `schema`.
fn oas_accepts_null(doc: &Value, schema: &Value) -> bool {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        // Siblings of `$ref` are ignored in OAS 3.0.
        return oas_accepts_null(doc, oas::resolve_ref(doc, r).unwrap());
    }
    if schema.get("nullable") == Some(&Value::Bool(true)) {
        return true;
    }
    let branches = |key: &str| -> Vec<bool> {
        schema
            .get(key)
            .and_then(Value::as_array)
            .map(|bs| bs.iter().map(|b| oas_accepts_null(doc, b)).collect())
            .unwrap_or_default()
    };
    let type_ok = schema.get("type").is_none();
    let enum_ok = schema
        .get("enum")
        .and_then(Value::as_array)
        .is_none_or(|values| values.contains(&Value::Null));
    let all_of = branches("allOf").iter().all(|b| *b);
    let any_of = schema.get("anyOf").is_none() || branches("anyOf").iter().any(|b| *b);
    let one_of =
        schema.get("oneOf").is_none() || branches("oneOf").iter().filter(|b| **b).count() == 1;
    type_ok && enum_ok && all_of && any_of && one_of
}

fn nullable_flag() -> impl Strategy<Value = Option<bool>> {
    prop_oneof![Just(None), Just(Some(true)), Just(Some(false))]
}

fn leaf() -> impl Strategy<Value = Value> {
    let typed = (
        prop::sample::select(vec![
            ("string", None),
            ("string", Some("date-time")),
            ("string", Some("password")),
            ("integer", None),
            ("integer", Some("int32")),
            ("integer", Some("int64")),
            ("number", None),
            ("boolean", None),
            ("object", None),
            ("array", None),
        ]),
        nullable_flag(),
        prop::option::of(prop::sample::select(vec![
            json!(["a", "b"]),
            json!(["a", null]),
            json!([1, 2]),
        ])),
    )
        .prop_map(|((ty, format), nullable, enumeration)| {
            let mut s = Map::new();
            s.insert("type".into(), json!(ty));
            if let Some(f) = format {
                s.insert("format".into(), json!(f));
            }
            if let Some(n) = nullable {
                s.insert("nullable".into(), json!(n));
            }
            if let Some(e) = enumeration {
                s.insert("enum".into(), e);
            }
            Value::Object(s)
        });
    let reference = (prop::sample::select(vec!["A", "B", "N"]), nullable_flag()).prop_map(
        |(name, nullable)| {
            let mut s = json!({"$ref": format!("#/components/schemas/{name}")});
            if let Some(n) = nullable {
                s["nullable"] = json!(n);
            }
            s
        },
    );
    prop_oneof![4 => typed, 1 => reference, 1 => Just(json!({}))]
}

/// OAS schemas: leaves, objects, arrays and compositions of them, any of them nullable or not.
fn oas_schema() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        let object = (
            prop::collection::btree_map("[a-c]", inner.clone(), 0..3),
            nullable_flag(),
        )
            .prop_map(|(props, nullable)| {
                let required: Vec<&String> = props.keys().take(1).collect();
                let mut s = json!({"type": "object", "properties": props, "required": required});
                if required.is_empty() {
                    s.as_object_mut().unwrap().remove("required");
                }
                if let Some(n) = nullable {
                    s["nullable"] = json!(n);
                }
                s
            });
        let array = (inner.clone(), nullable_flag()).prop_map(|(items, nullable)| {
            let mut s = json!({"type": "array", "items": items});
            if let Some(n) = nullable {
                s["nullable"] = json!(n);
            }
            s
        });
        let composite = (
            prop::sample::select(vec!["allOf", "anyOf", "oneOf"]),
            prop::collection::vec(inner, 1..4),
            nullable_flag(),
        )
            .prop_map(|(key, branches, nullable)| {
                let mut s = json!({ key: branches });
                if let Some(n) = nullable {
                    s["nullable"] = json!(n);
                }
                s
            });
        prop_oneof![object, array, composite]
    })
}

/// A document whose components the generated `$ref`s point to: a plain, an object and a
/// nullable schema.
fn components_doc() -> Value {
    json!({"components": {"schemas": {
        "A": {"type": "integer", "format": "int32"},
        "B": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
        "N": {"type": "string", "nullable": true},
    }}})
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_converted_schema_accepts_null_exactly_when_oas_does(schema in oas_schema()) {
        let doc = components_doc();
        let expected = oas_accepts_null(&doc, &schema);
        let accepted = validator(&doc, &schema).is_valid(&Value::Null);
        prop_assert_eq!(accepted, expected, "schema {}", schema);
    }
}

// ------------------------------------------------------------------------- integer formats

fn format_range(format: &str) -> (i128, i128) {
    match format {
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" => (i64::MIN.into(), i64::MAX.into()),
        "uint8" => (0, u8::MAX.into()),
        "uint16" => (0, u16::MAX.into()),
        "uint32" => (0, u32::MAX.into()),
        "uint64" => (0, u64::MAX.into()),
        _ => unreachable!(),
    }
}

/// Integers near every bound that matters, and anywhere.
fn interesting_integer() -> impl Strategy<Value = i128> {
    let edges: Vec<i128> = [
        0i128,
        i8::MIN.into(),
        i8::MAX.into(),
        u8::MAX.into(),
        i16::MIN.into(),
        i16::MAX.into(),
        u16::MAX.into(),
        i32::MIN.into(),
        i32::MAX.into(),
        u32::MAX.into(),
        i64::MIN.into(),
        i64::MAX.into(),
        u64::MAX.into(),
        -(1 << 40),
        1 << 40,
    ]
    .into();
    prop_oneof![
        (prop::sample::select(edges), -1i128..=1).prop_map(|(e, d)| e + d),
        any::<i64>().prop_map(i128::from),
        any::<u64>().prop_map(i128::from),
    ]
}

fn json_integer(v: i128) -> Option<Value> {
    i64::try_from(v)
        .map(Value::from)
        .or_else(|_| u64::try_from(v).map(Value::from))
        .ok()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn integer_formats_and_bounds_are_enforced(
        format in prop::sample::select(vec![
            "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        ]),
        minimum in prop::option::of(interesting_integer()),
        maximum in prop::option::of(interesting_integer()),
        exclusive_minimum in any::<bool>(),
        exclusive_maximum in any::<bool>(),
        value in interesting_integer(),
    ) {
        let (Some(instance), Some(min_json), Some(max_json)) = (
            json_integer(value),
            minimum.map_or(Some(Value::Null), json_integer),
            maximum.map_or(Some(Value::Null), json_integer),
        ) else {
            return Ok(());
        };
        let mut schema = json!({"type": "integer", "format": format});
        if minimum.is_some() {
            schema["minimum"] = min_json;
            schema["exclusiveMinimum"] = json!(exclusive_minimum);
        }
        if maximum.is_some() {
            schema["maximum"] = max_json;
            schema["exclusiveMaximum"] = json!(exclusive_maximum);
        }
        let (lo, hi) = format_range(format);
        let expected = (lo..=hi).contains(&value)
            && minimum.is_none_or(|m| if exclusive_minimum { value > m } else { value >= m })
            && maximum.is_none_or(|m| if exclusive_maximum { value < m } else { value <= m });
        let accepted = validator(&Value::Null, &schema).is_valid(&instance);
        prop_assert_eq!(accepted, expected, "{} against {}", instance, schema);
    }
}

// ------------------------------------------------------------------------------ real specs

/// Instances of an OAS schema, generated from the OAS document itself (not from the converted
/// schema): required properties always, optional ones sometimes, `null` where `nullable`, a
/// branch of each `oneOf`, the merged branches of an `allOf`, in-range integers, valid dates.
fn instance(doc: &Value, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let (schema, _) = deref(doc, schema, String::new()).expect("refs resolve");
    let inner = instance_not_null(doc, schema, depth);
    if schema.get("nullable") == Some(&Value::Bool(true)) {
        prop_oneof![1 => Just(Value::Null), 3 => inner].boxed()
    } else {
        inner
    }
}

fn any_json() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,6}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({"k": [1, "v"]})),
    ]
    .boxed()
}

fn instance_not_null(doc: &Value, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return prop::sample::select(values.clone()).boxed();
    }
    if let Some(not) = schema.get("not") {
        // Only `not: {enum}` occurs: anything of the rest of the schema but those values.
        let banned = not["enum"].as_array().expect("`not` with an enum").clone();
        let mut rest = schema.clone();
        rest.as_object_mut().unwrap().remove("not");
        return instance_not_null(doc, &rest, depth)
            .prop_filter("a value `not` bans", move |v| !banned.contains(v))
            .boxed();
    }
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        let options: Vec<BoxedStrategy<Value>> = branches
            .iter()
            .map(|b| instance(doc, b, depth + 1))
            .collect();
        return proptest::strategy::Union::new(options).boxed();
    }
    if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
        let parts: Vec<BoxedStrategy<Value>> = branches
            .iter()
            .map(|b| instance(doc, b, depth + 1))
            .collect();
        return parts
            .prop_map(|parts| {
                let mut merged: Option<Value> = None;
                for part in parts {
                    merged = Some(match (merged, part) {
                        (Some(Value::Object(mut a)), Value::Object(b)) => {
                            a.extend(b);
                            Value::Object(a)
                        }
                        (_, part) => part,
                    });
                }
                merged.unwrap_or(Value::Null)
            })
            .boxed();
    }
    let ty = schema.get("type").and_then(Value::as_str);
    match ty {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => prop::sample::select(vec![
                json!("2023-06-15T09:12:32Z"),
                json!("1970-01-01T00:00:00+03:00"),
                json!("2024-02-29T23:59:60.5Z"),
            ])
            .boxed(),
            _ => "\\PC{0,8}".prop_map(Value::from).boxed(),
        },
        Some("integer") => {
            let (mut lo, mut hi) = match schema.get("format").and_then(Value::as_str) {
                Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
                _ => (i64::MIN, i64::MAX),
            };
            if let Some(m) = schema.get("minimum").and_then(Value::as_i64) {
                lo = lo.max(m);
            }
            if let Some(m) = schema.get("maximum").and_then(Value::as_i64) {
                hi = hi.min(m);
            }
            prop_oneof![Just(lo), Just(hi), lo..=hi]
                .prop_map(Value::from)
                .boxed()
        }
        Some("number") => prop_oneof![
            any::<i32>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
        ]
        .boxed(),
        Some("boolean") => any::<bool>().prop_map(Value::from).boxed(),
        Some("array") => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .map_or(min + 3, |m| (m as usize).min(min + 3));
            let max = if depth > 4 { min } else { max };
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            prop::collection::vec(instance(doc, &items, depth + 1), min..=max)
                .prop_map(Value::Array)
                .boxed()
        }
        Some("object") | None if schema.get("properties").is_some() || ty.is_some() => {
            object(doc, schema, depth)
        }
        _ => any_json(),
    }
}

fn object(doc: &Value, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
    for (name, prop) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let name = name.clone();
        let value = instance(doc, prop, depth + 1);
        if required.contains(&name.as_str()) {
            fields.push(value.prop_map(move |v| Some((name.clone(), v))).boxed());
        } else if depth <= 4 {
            fields.push(
                prop::option::weighted(0.6, value)
                    .prop_map(move |v| v.map(|v| (name.clone(), v)))
                    .boxed(),
            );
        }
    }
    let min_extra = schema
        .get("minProperties")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let extra: BoxedStrategy<Vec<(String, Value)>> = match schema.get("additionalProperties") {
        Some(Value::Bool(false)) | None => Just(Vec::new()).boxed(),
        Some(Value::Bool(true)) => {
            prop::collection::vec(("x_[a-z]{1,3}", any_json()), min_extra..=min_extra + 2).boxed()
        }
        Some(ap) => prop::collection::vec(
            ("x_[a-z]{1,3}", instance(doc, ap, depth + 1)),
            min_extra..=min_extra + if depth > 4 { 0 } else { 2 },
        )
        .boxed(),
    };
    (fields, extra)
        .prop_map(|(fields, extra)| {
            let mut out = Map::new();
            for (k, v) in extra.into_iter().chain(fields.into_iter().flatten()) {
                out.insert(k, v);
            }
            Value::Object(out)
        })
        .boxed()
}

fn spec(name: &str) -> Value {
    let path = format!("{}/../openapi/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `(spec, schema name)` of every component schema of both specifications.
fn spec_schemas() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for name in ["kommo.yaml", "closebot.yaml"] {
        for schema in spec(name)["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
        {
            out.push((name, schema.clone()));
        }
    }
    out
}

#[test]
fn instances_of_every_spec_schema_validate_against_the_converted_schema() {
    let docs = [
        ("kommo.yaml", spec("kommo.yaml")),
        ("closebot.yaml", spec("closebot.yaml")),
    ];
    let schemas = spec_schemas();
    assert!(schemas.len() > 80, "only {} schemas", schemas.len());
    for (file, name) in schemas {
        let doc = &docs.iter().find(|(f, _)| *f == file).unwrap().1;
        let reference = json!({ "$ref": format!("#/components/schemas/{name}") });
        let validator = validator(doc, &reference);
        let strategy = instance(doc, &reference, 0);
        let mut runner = proptest::test_runner::TestRunner::new(config(24));
        let result = runner.run(&strategy, |value| {
            prop_assert!(
                validator.is_valid(&value),
                "{file} {name}: {value} rejected: {:?}",
                validator
                    .iter_errors(&value)
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
            );
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}
