//! Nothing an answer carries is lost (issue 23 §4): every answer of `openapi/examples/` and
//! `openapi/corpus/` (success and error bodies) is decoded into the Rust type its operation
//! answers with, serialized back, and compared with the input. A field the spec does not declare
//! must survive in the value's map of other fields (`extra` on generated types, `other_fields`
//! on `IncomingLead`). As in `cargo xtask conformance` (xtask/src/decode.rs), a null read back as
//! absent, `[]` read back as an empty object (or the reverse), a number in another notation and
//! the same instant in another format are not losses; nor is an empty list or object read back as
//! absent (the generated types skip empty lists when they serialize: no value is in them).
//!
//! Shown to fail with build.rs's `keep_other_fields` call taken out (the code before issue 23
//! §4): `corpus/kommo/listIncomingLeads.contact-model.json` carries each contact's
//! `custom_fields_values`, which the spec does not declare, and the round trip reports
//! `/_embedded/unsorted/0/_embedded/contacts/0/custom_fields_values: [...] read back as absent`;
//! `undeclared_fields_stay_reachable_on_the_value_that_held_them` does not compile there (no
//! `extra` fields).

use std::path::{Path, PathBuf};

use lead_intake::closebot::types as ct;
use lead_intake::kommo::types as kt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

struct Case {
    shown: String,
    api: &'static str,
    operation: String,
    problem: bool,
    body: Value,
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every JSON answer of the examples (`<operation>.response.<status>.json`,
/// `problem.<name>.<status>.json`) and of the corpus.
fn cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi");
    let mut out = Vec::new();
    for api in ["kommo", "closebot"] {
        for file in files(&root.join("examples").join(api)) {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            let parts: Vec<&str> = name.split('.').collect();
            let (operation, problem) = match parts.as_slice() {
                ["problem", ..] => (String::new(), true),
                [op, "response", _status, "json"] => (op.to_string(), false),
                _ => continue,
            };
            out.push(Case {
                shown: format!("examples/{api}/{name}"),
                api,
                operation,
                problem,
                body: read(&file),
            });
        }
        for file in files(&root.join("corpus").join(api)) {
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            let wrapper = read(&file);
            let status = wrapper["status"].as_u64().expect("a status");
            out.push(Case {
                shown: format!("corpus/{api}/{name}"),
                api,
                operation: wrapper["operation"].as_str().expect("an operation").into(),
                problem: status >= 400,
                body: wrapper["body"].clone(),
            });
        }
    }
    out
}

/// The body decoded into `T` and serialized back.
fn through<T: DeserializeOwned + Serialize>(body: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(body.clone()).map_err(|e| format!("decoding: {e}"))?;
    serde_json::to_value(&typed).map_err(|e| format!("serializing: {e}"))
}

/// The Rust type each operation answers with (its success body, or its error body).
fn round_trip(case: &Case) -> Result<Value, String> {
    match (case.api, case.problem, case.operation.as_str()) {
        ("kommo", true, _) => through::<kt::Problem>(&case.body),
        ("closebot", true, _) => through::<ct::Problem>(&case.body),
        ("kommo", false, "listIncomingLeads") => through::<kt::IncomingLeadList>(&case.body),
        ("kommo", false, "addIncomingForms" | "addIncomingCalls") => {
            through::<kt::CreatedIncomingLeadList>(&case.body)
        }
        ("kommo", false, "getIncomingLeadsSummary") => {
            through::<kt::IncomingLeadsSummary>(&case.body)
        }
        ("kommo", false, "getIncomingLead") => through::<kt::IncomingLead>(&case.body),
        ("kommo", false, "acceptIncomingLead" | "declineIncomingLead") => {
            through::<kt::IncomingLeadDecision>(&case.body)
        }
        ("kommo", false, "linkIncomingLead") => through::<kt::LinkedIncomingLead>(&case.body),
        ("kommo", false, "listSources" | "addSources" | "updateSources") => {
            through::<kt::SourceList>(&case.body)
        }
        ("kommo", false, "getSource" | "updateSource") => through::<kt::Source>(&case.body),
        ("kommo", false, "listWidgets") => through::<kt::WidgetList>(&case.body),
        ("kommo", false, "getWidget" | "installWidget") => through::<kt::Widget>(&case.body),
        ("kommo", false, "addComplexLeads") => through::<kt::CreatedComplexLeads>(&case.body),
        ("kommo", false, "listPipelines") => through::<kt::PipelineList>(&case.body),
        ("kommo", false, "getPipeline") => through::<kt::Pipeline>(&case.body),
        ("closebot", false, "listSources") => through::<ct::SourcePage>(&case.body),
        (api, _, op) => Err(format!(
            "no Rust type for {api} `{op}` in tests/answers_round_trip.rs: add it to `round_trip`"
        )),
    }
}

/// Appends to `out` every value of `input` that `output` (`None`: absent) does not carry.
fn lost(input: &Value, output: Option<&Value>, at: &str, out: &mut Vec<String>) {
    let empty = |v: &Value| match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    match (input, output) {
        (Value::Null, None | Some(Value::Null)) => {}
        (i, None) if empty(i) => {}
        (i, Some(o)) if empty(i) && empty(o) => {}
        (Value::Object(i), Some(Value::Object(o))) => {
            for (key, value) in i {
                let key_at = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                lost(value, o.get(key), &key_at, out);
            }
        }
        (Value::Array(i), Some(Value::Array(o))) if i.len() == o.len() => {
            for (n, value) in i.iter().enumerate() {
                lost(value, o.get(n), &format!("{at}/{n}"), out);
            }
        }
        (Value::Number(i), Some(Value::Number(o))) if i.as_f64() == o.as_f64() => {}
        (Value::String(i), Some(Value::String(o))) if i == o || same_instant(i, o) => {}
        (i, o) if Some(i) == o => {}
        (i, o) => out.push(format!(
            "{}: {i} read back as {}",
            if at.is_empty() { "/" } else { at },
            o.map_or("absent".to_string(), Value::to_string)
        )),
    }
}

fn same_instant(a: &str, b: &str) -> bool {
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn losses(input: &Value, output: &Value) -> Vec<String> {
    let mut out = Vec::new();
    lost(input, Some(output), "", &mut out);
    out
}

#[test]
fn no_answer_loses_a_value_through_its_rust_type() {
    let cases = cases();
    assert!(cases.len() > 40, "found only {} answers", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match round_trip(case) {
            Err(e) => failures.push(format!("{}: {e}", case.shown)),
            Ok(back) => {
                for loss in losses(&case.body, &back) {
                    failures.push(format!("{}: {loss}", case.shown));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} answers lose values:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The comparison itself: what counts as a loss, and what does not.
#[test]
fn the_comparison_sees_a_dropped_field() {
    let input = serde_json::json!({"a": 1, "b": null, "c": [], "d": {"e": "x"}, "t": "2024-01-02T03:04:05Z"});
    let same =
        serde_json::json!({"a": 1.0, "c": {}, "d": {"e": "x"}, "t": "2024-01-02T03:04:05+00:00"});
    assert_eq!(losses(&input, &same), Vec::<String>::new());
    let dropped = serde_json::json!({"d": {}, "t": "2024-01-02T03:04:06Z"});
    assert_eq!(
        losses(&input, &dropped),
        vec![
            "/a: 1 read back as absent".to_string(),
            "/d/e: \"x\" read back as absent".to_string(),
            "/t: \"2024-01-02T03:04:05Z\" read back as \"2024-01-02T03:04:06Z\"".to_string(),
        ]
    );
}

/// Each kind of generated answer keeps an undeclared field at every level, reachable by name,
/// and writes it back.
#[test]
fn undeclared_fields_stay_reachable_on_the_value_that_held_them() {
    let source: kt::Source = serde_json::from_value(serde_json::json!({
        "id": 1, "name": "Site", "external_id": "site-1", "is_active": true,
        "services": [{"type": "whatsapp", "params": {"waba": true, "new_flag": 1}, "pages": []}],
        "_links": {"self": {"href": "https://x.kommo.com/api/v4/sources/1", "method": "get"}}
    }))
    .unwrap();
    assert_eq!(source.extra["is_active"], true);
    let service = &source.services.as_ref().unwrap()[0];
    assert_eq!(service.params.as_ref().unwrap().extra["new_flag"], 1);
    assert_eq!(
        source.links.as_ref().unwrap().self_.as_ref().unwrap().extra["method"],
        "get"
    );
    let back = serde_json::to_value(&source).unwrap();
    assert_eq!(back["is_active"], true);
    assert_eq!(back["services"][0]["params"]["new_flag"], 1);

    let page: ct::SourcePage = serde_json::from_value(serde_json::json!({
        "total": 1, "page": 1, "pageSize": 10, "nextCursor": "abc",
        "results": [{"sourceId": "s1", "name": "n", "channelType": "sms"}]
    }))
    .unwrap();
    assert_eq!(page.extra["nextCursor"], "abc");
    let back = serde_json::to_value(&page).unwrap();
    assert_eq!(back["results"][0]["channelType"], "sms");

    let lead: kt::IncomingLead = serde_json::from_value(serde_json::json!({
        "uid": "u", "category": "sip", "is_read": false,
        "metadata": {"from": "1", "call_status": 4},
        "_embedded": {"contacts": [{"id": 5, "name": "Ann", "responsible_user_id": 42}], "tags": [{"id": 1}]}
    }))
    .unwrap();
    assert_eq!(lead.other_fields["is_read"], false);
    let call = lead.metadata().and_then(|m| m.sip()).unwrap();
    assert_eq!(call.extra["call_status"], 4);
    let embedded = lead.embedded().unwrap();
    assert_eq!(embedded.contacts[0].name.as_deref(), Some("Ann"));
    assert_eq!(embedded.contacts[0].extra["responsible_user_id"], 42);
    assert_eq!(embedded.extra["tags"][0]["id"], 1);
    let back = serde_json::to_value(&lead).unwrap();
    assert_eq!(back["is_read"], false);
    assert_eq!(back["metadata"]["call_status"], 4);
    assert_eq!(back["_embedded"]["contacts"][0]["responsible_user_id"], 42);
    assert_eq!(back["_embedded"]["tags"][0]["id"], 1);
}

/// The decoders build.rs writes for these types (in place of serde's `flatten`) keep the derive's
/// rules: a required field that is absent and a key sent twice are errors naming the field, an
/// absent optional field is `None`, a null optional field is `None`, and a value of the wrong
/// type is an error.
#[test]
fn the_open_decoders_keep_the_derives_rules() {
    let missing = serde_json::from_str::<kt::Source>(r#"{"name": "Site", "external_id": "x"}"#)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing field `id`"), "{missing}");
    let twice = serde_json::from_str::<kt::Source>(
        r#"{"id": 1, "id": 2, "name": "Site", "external_id": "x"}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(twice.contains("duplicate field `id`"), "{twice}");
    let wrong =
        serde_json::from_str::<kt::Source>(r#"{"id": "one", "name": "Site", "external_id": "x"}"#)
            .unwrap_err()
            .to_string();
    assert!(wrong.contains("invalid type: string"), "{wrong}");
    let plain: kt::Source = serde_json::from_str(
        r#"{"id": 1, "name": "Site", "external_id": "x", "pipeline_id": null}"#,
    )
    .unwrap();
    assert_eq!((plain.pipeline_id, plain.default), (None, None));
    assert!(plain.extra.is_empty());
    // PHP's `[]` for an empty object still reads (a field with its own reader).
    let lead: kt::IncomingLeadDecision = serde_json::from_str(
        r#"{"uid": "u", "category": "forms", "pipeline_id": 1, "created_at": 2, "_embedded": []}"#,
    )
    .unwrap();
    assert_eq!(lead.extra.len(), 0);
}
