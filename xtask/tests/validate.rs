//! Runs the real `xtask validate` binary against the repository's specs and
//! against small fixture specs written into temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

struct Run {
    ok: bool,
    code: Option<i32>,
    out: String,
}

fn validate(root: Option<&Path>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("validate");
    if let Some(root) = root {
        cmd.arg("--root").arg(root);
    }
    let output = cmd.output().expect("run xtask");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!out.contains("panicked"), "xtask panicked:\n{out}");
    Run {
        ok: output.status.success(),
        code: output.status.code(),
        out,
    }
}

/// Like `validate`, but the run must fail with exit code 1.
fn validate_fails(root: &Path) -> String {
    let run = validate(Some(root));
    assert_eq!(run.code, Some(1), "expected failure:\n{}", run.out);
    run.out
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const SPEC: &str = r##"openapi: 3.0.3
info: {title: fixture, version: "1"}
paths:
  /things/{id}:
    parameters:
      - name: id
        in: path
        required: true
        schema: {type: integer, format: int64}
        example: 7
    get:
      operationId: getThing
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Thing"}
              examples:
                one:
                  externalValue: examples/test/getThing.json
        "404":
          description: missing
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
    put:
      operationId: putThing
      requestBody:
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Thing"}
            example: {name: "a", items: []}
      responses:
        "204": {description: done}
components:
  schemas:
    Thing:
      type: object
      required: [id, name]
      properties:
        id: {type: integer, format: int64, readOnly: true}
        name: {type: string}
        note: {type: string, nullable: true}
        items:
          type: array
          items: {$ref: "#/components/schemas/Item"}
    Item:
      type: object
      required: [count]
      properties:
        count: {type: integer}
    Error:
      type: object
      properties:
        message: {type: string}
"##;

const GET_THING: &str = r#"{"id": 1, "name": "x", "note": null, "items": [{"count": 2}]}"#;
const SPEC_FILE: &str = "openapi/test.yaml";
const EXAMPLE_FILE: &str = "openapi/examples/test/getThing.json";
const REQUEST_EXAMPLE: &str = r#"            example: {name: "a", items: []}"#;

/// The fixture with `edits` (from, to) applied to the spec, and the
/// `getThing` example file replaced if given.
fn fixture(edits: &[(&str, &str)], get_thing: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SPEC.to_string();
    for (from, to) in edits {
        assert!(spec.contains(from), "fixture edit not applicable: {from}");
        spec = spec.replacen(from, to, 1);
    }
    write(dir.path(), SPEC_FILE, &spec);
    write(dir.path(), EXAMPLE_FILE, get_thing.unwrap_or(GET_THING));
    dir
}

/// The request body's inline example replaced by named `examples` (YAML
/// entries indented for that spot).
fn request_examples(entries: &str) -> String {
    format!("            examples:\n{entries}")
}

const OK_ENTRY: &str = concat!("              ok:\n", "                value: {name: a}\n",);
const FAITHFUL_ENTRIES: &str = concat!(
    "              faithful:\n",
    "                externalValue: examples/test/put.faithful.txt\n",
    "                x-known-invalid: unquoted key\n",
    "              schema_fail:\n",
    "                value: {name: 1}\n",
    "                x-known-invalid: wrong type\n",
);

#[test]
fn real_specs_validate() {
    // No --root: the binary must find the workspace on its own.
    let run = validate(None);
    println!("{}", run.out);
    assert!(run.ok, "the repository's specs must validate:\n{}", run.out);
    assert!(run.out.contains("kommo.yaml"), "{}", run.out);
}

#[test]
fn fixture_baseline_passes() {
    let dir = fixture(&[], None);
    let run = validate(Some(dir.path()));
    assert!(run.ok, "{}", run.out);
    // path parameter, request (readOnly `id` omitted) and response examples.
    assert!(
        run.out
            .contains("openapi/test.yaml: 2 operations, 3 examples OK"),
        "{}",
        run.out
    );
}

#[test]
fn wrong_type_names_spec_example_file_and_path() {
    let bad = r#"{"id": 1, "name": "x", "items": [{"count": 2}, {"count": "three"}]}"#;
    let dir = fixture(&[], Some(bad));
    let out = validate_fails(dir.path());
    let line = out
        .lines()
        .find(|l| l.contains("/items/1/count"))
        .unwrap_or_else(|| panic!("no line names the JSON path:\n{out}"));
    assert!(line.contains(SPEC_FILE), "{line}");
    assert!(line.contains(EXAMPLE_FILE), "{line}");
    assert!(
        line.contains("getThing response 200 application/json"),
        "{line}"
    );
    assert!(line.contains("\"integer\""), "{line}");
}

#[test]
fn all_problems_are_reported() {
    let bad = r#"{"id": "1", "name": 2, "items": [{}]}"#;
    let dir = fixture(&[], Some(bad));
    let out = validate_fails(dir.path());
    for path in [" at /id:", " at /name:", " at /items/0:"] {
        assert!(out.contains(path), "missing {path}:\n{out}");
    }
}

#[test]
fn nullable_accepts_null_and_plain_field_rejects_it() {
    // The baseline example has `"note": null` (nullable) and passes.
    let dir = fixture(&[], Some(r#"{"id": 1, "name": null, "note": null}"#));
    let out = validate_fails(dir.path());
    assert!(out.contains(" at /name: null is not of type"), "{out}");
    assert!(!out.contains("/note"), "{out}");
}

#[test]
fn read_only_is_still_required_in_responses() {
    let dir = fixture(&[], Some(r#"{"name": "x"}"#));
    let out = validate_fails(dir.path());
    assert!(out.contains("\"id\" is a required property"), "{out}");
}

#[test]
fn dangling_ref_is_reported() {
    let dir = fixture(
        &[(
            "items: {$ref: \"#/components/schemas/Item\"}",
            "items: {$ref: \"#/components/schemas/Missing\"}",
        )],
        None,
    );
    let out = validate_fails(dir.path());
    assert!(out.contains("#/components/schemas/Missing"), "{out}");
    assert!(out.contains("does not resolve"), "{out}");
}

#[test]
fn external_ref_is_rejected() {
    let dir = fixture(
        &[(
            "{$ref: \"#/components/schemas/Error\"}",
            "{$ref: \"common.yaml#/Error\"}",
        )],
        None,
    );
    let out = validate_fails(dir.path());
    assert!(out.contains("common.yaml#/Error"), "{out}");
    assert!(out.contains("not an in-document reference"), "{out}");
}

#[test]
fn duplicate_operation_id_is_reported() {
    let dir = fixture(&[("operationId: putThing", "operationId: getThing")], None);
    let out = validate_fails(dir.path());
    assert!(out.contains("duplicate operationId `getThing`"), "{out}");
}

#[test]
fn missing_operation_id_is_reported() {
    let dir = fixture(&[("      operationId: putThing\n", "")], None);
    let out = validate_fails(dir.path());
    assert!(
        out.contains("PUT /things/{id}: missing operationId"),
        "{out}"
    );
}

#[test]
fn missing_success_example_is_reported() {
    let dir = fixture(
        &[(
            "              examples:\n                one:\n                  externalValue: examples/test/getThing.json\n",
            "",
        )],
        None,
    );
    let out = validate_fails(dir.path());
    assert!(
        out.contains("getThing response 200 application/json: no example"),
        "{out}"
    );
}

#[test]
fn missing_request_example_is_reported() {
    let dir = fixture(&[(&format!("{REQUEST_EXAMPLE}\n"), "")], None);
    let out = validate_fails(dir.path());
    assert!(
        out.contains("putThing request application/json: no example"),
        "{out}"
    );
}

#[test]
fn known_invalid_that_passes_is_an_error() {
    let wrong = concat!(
        "              wrong:\n",
        "                value: {name: b}\n",
        "                x-known-invalid: the docs say so\n",
    );
    let examples = request_examples(&format!("{OK_ENTRY}{wrong}"));
    let dir = fixture(&[(REQUEST_EXAMPLE, &examples)], None);
    let out = validate_fails(dir.path());
    let line = out
        .lines()
        .find(|l| l.contains("x-known-invalid"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("putThing request application/json example \"wrong\""),
        "{line}"
    );
    assert!(line.contains("the docs say so"), "{line}");
}

#[test]
fn known_invalid_that_fails_is_fine_but_does_not_count() {
    let faithful = "{name: \"a\"}";
    let examples = request_examples(&format!("{FAITHFUL_ENTRIES}{OK_ENTRY}"));
    let dir = fixture(&[(REQUEST_EXAMPLE, &examples)], None);
    write(
        dir.path(),
        "openapi/examples/test/put.faithful.txt",
        faithful,
    );
    let run = validate(Some(dir.path()));
    assert!(run.ok, "{}", run.out);
    assert!(
        run.out.contains("2 known-invalid rejected as expected"),
        "{}",
        run.out
    );

    // Without a valid example, the request body has none that counts.
    let examples = request_examples(FAITHFUL_ENTRIES);
    let dir = fixture(&[(REQUEST_EXAMPLE, &examples)], None);
    write(
        dir.path(),
        "openapi/examples/test/put.faithful.txt",
        faithful,
    );
    let out = validate_fails(dir.path());
    assert!(
        out.contains("putThing request application/json: no example"),
        "{out}"
    );
}

#[test]
fn external_example_that_is_not_json_is_reported() {
    let dir = fixture(&[], Some("{\n  \"id\": 1,\n  name: \"x\"\n}\n"));
    let out = validate_fails(dir.path());
    let line = out
        .lines()
        .find(|l| l.contains("not JSON"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(SPEC_FILE), "{line}");
    assert!(line.contains(EXAMPLE_FILE), "{line}");
    assert!(line.contains("line 3 column 3"), "{line}");
}

#[test]
fn missing_external_example_file_is_reported() {
    let dir = fixture(
        &[("examples/test/getThing.json", "examples/test/nope.json")],
        None,
    );
    let out = validate_fails(dir.path());
    assert!(out.contains("openapi/examples/test/nope.json"), "{out}");
}

#[test]
fn parameter_example_is_validated() {
    let dir = fixture(&[("        example: 7", "        example: seven")], None);
    let out = validate_fails(dir.path());
    assert!(out.contains("parameter id (path)"), "{out}");
}

#[test]
fn error_response_example_is_validated() {
    let dir = fixture(
        &[(
            "schema: {$ref: \"#/components/schemas/Error\"}",
            "schema: {$ref: \"#/components/schemas/Error\"}\n              example: {message: 404}",
        )],
        None,
    );
    let out = validate_fails(dir.path());
    assert!(
        out.contains("getThing response 404 application/json example at /message"),
        "{out}"
    );
}

#[test]
fn example_refs_into_components_are_followed() {
    let examples =
        request_examples("              shared: {$ref: \"#/components/examples/Put\"}\n");
    let components = concat!(
        "components:\n",
        "  examples:\n",
        "    Put:\n",
        "      value: {name: 5}\n",
    );
    let dir = fixture(
        &[(REQUEST_EXAMPLE, &examples), ("components:\n", components)],
        None,
    );
    let out = validate_fails(dir.path());
    assert!(
        out.contains("putThing request application/json example \"shared\" at /name"),
        "{out}"
    );
}

#[test]
fn nullable_beside_ref_warns_and_is_ignored() {
    let dir = fixture(
        &[(
            "items: {$ref: \"#/components/schemas/Item\"}",
            "items: {$ref: \"#/components/schemas/Item\", nullable: true}",
        )],
        Some(r#"{"id": 1, "name": "x", "items": [null]}"#),
    );
    let out = validate_fails(dir.path());
    assert!(out.contains("warning: openapi/test.yaml: #/components/schemas/Thing/properties/items/items: `nullable` beside `$ref`"), "{out}");
    assert!(
        out.contains(" at /items/0: null is not of type \"object\""),
        "{out}"
    );
}

#[test]
fn bad_input_fails_cleanly() {
    // Malformed YAML.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), SPEC_FILE, "openapi: 3.0.3\npaths: [unclosed\n");
    let out = validate_fails(dir.path());
    assert!(out.contains("openapi/test.yaml: invalid YAML"), "{out}");

    // Not OpenAPI 3.0.
    let dir = fixture(&[("openapi: 3.0.3", "openapi: 3.1.0")], None);
    let out = validate_fails(dir.path());
    assert!(out.contains("is not 3.0.x"), "{out}");

    // Structurally invalid (no `info`).
    let dir = fixture(&[("info: {title: fixture, version: \"1\"}\n", "")], None);
    let out = validate_fails(dir.path());
    assert!(out.contains("not a valid OpenAPI 3.0 document"), "{out}");

    // No specs at all, and a root that does not exist.
    let dir = tempfile::tempdir().unwrap();
    validate_fails(dir.path());
    validate_fails(&dir.path().join("absent"));
}

// ---- the real specs, with one real example broken ---------------------------

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

/// JSON pointers of every integer, in document order.
fn integer_pointers(v: &Value, ptr: String, out: &mut Vec<String>) {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => out.push(ptr),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                integer_pointers(x, format!("{ptr}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                integer_pointers(x, format!("{ptr}/{k}"), out);
            }
        }
        _ => {}
    }
}

/// True if `path` is `pointer` or one of its ancestors (`<root>` included).
fn is_ancestor(path: &str, pointer: &str) -> bool {
    path == "<root>" || pointer == path || pointer.starts_with(&format!("{path}/"))
}

#[test]
fn broken_real_example_is_reported_with_file_and_path() {
    let real = workspace_root().join("openapi");
    let mut files = Vec::new();
    json_files(&real.join("examples"), &mut files);
    assert!(
        !files.is_empty(),
        "no example files under {}",
        real.display()
    );

    // Turning an integer into a string breaks any example whose schema types
    // it; try candidates in order so an untyped field can't make this flaky.
    let mut tries = 0;
    for file in &files {
        let rel = file.strip_prefix(workspace_root()).unwrap();
        let original: Value = match serde_json::from_str(&fs::read_to_string(file).unwrap()) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let mut pointers = Vec::new();
        integer_pointers(&original, String::new(), &mut pointers);
        for pointer in pointers {
            tries += 1;
            assert!(tries <= 40, "no mutated integer made validation fail");
            let dir = tempfile::tempdir().unwrap();
            copy_dir(&real, &dir.path().join("openapi"));
            let mut mutated = original.clone();
            let slot = mutated.pointer_mut(&pointer).unwrap();
            *slot = Value::String(format!("{slot} as a string"));
            fs::write(
                dir.path().join(rel),
                serde_json::to_string_pretty(&mutated).unwrap(),
            )
            .unwrap();

            let run = validate(Some(dir.path()));
            if run.ok {
                continue;
            }
            println!("mutated {} at {pointer}:\n{}", rel.display(), run.out);
            let rel = rel.to_string_lossy();
            let named: Vec<&str> = run
                .out
                .lines()
                .filter(|l| l.starts_with("error: ") && l.contains(rel.as_ref()))
                .collect();
            assert!(!named.is_empty(), "no error names {rel}:\n{}", run.out);
            let has_path = named.iter().any(|l| {
                l.split(" at ")
                    .nth(1)
                    .and_then(|rest| rest.split(": ").next())
                    .is_some_and(|path| is_ancestor(path, &pointer))
            });
            assert!(has_path, "no error names a path to {pointer}:\n{}", run.out);
            return;
        }
    }
    panic!("no integer in any example file made validation fail");
}

// ---- the corpus (openapi/corpus/<api>/*.json) ------------------------------

/// A copy of the repository's `openapi/` (specs, examples, corpus, EVIDENCE.md).
fn repo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &workspace_root().join("openapi"),
        &dir.path().join("openapi"),
    );
    fs::remove_dir_all(dir.path().join("openapi/export")).unwrap();
    dir
}

fn edit_json(root: &Path, rel: &str, edit: impl FnOnce(&mut Value)) {
    let path = root.join(rel);
    let mut v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

const CB_CORPUS: &str = "openapi/corpus/closebot/listSources.null-objects.json";

#[test]
fn the_real_corpus_is_checked() {
    let run = validate(None);
    assert!(run.ok, "{}", run.out);
    assert!(run.out.contains("corpus answers OK"), "{}", run.out);
    assert!(repo_copy().path().join(CB_CORPUS).is_file());
}

#[test]
fn a_corpus_body_off_its_schema_fails() {
    // Negative control: a body the schema refuses.
    let root = repo_copy();
    edit_json(root.path(), CB_CORPUS, |v| {
        v["body"]["results"][0]["wallet"] = Value::from("not a wallet");
    });
    let out = validate_fails(root.path());
    assert!(
        out.contains("corpus openapi/corpus/closebot/listSources.null-objects.json: body does not match `listSources` 200"),
        "{out}"
    );
    assert!(out.contains("/results/0/wallet"), "{out}");
}

#[test]
fn a_spec_without_the_evidence_change_fails_its_corpus() {
    // Negative control: take back `nullable: true` on CloseBot's `SourceWallet` (what lets a
    // source's `wallet` be null).
    let root = repo_copy();
    let spec = root.path().join("openapi/closebot.yaml");
    let text = fs::read_to_string(&spec).unwrap();
    let reverted = text.replacen(
        "    SourceWallet:\n      type: object\n      nullable: true\n",
        "    SourceWallet:\n      type: object\n",
        1,
    );
    assert_ne!(text, reverted, "the SourceWallet schema changed shape");
    fs::write(&spec, reverted).unwrap();
    let out = validate_fails(root.path());
    assert!(out.contains("/results/0/wallet"), "{out}");
}

#[test]
fn a_corpus_file_naming_an_unknown_operation_or_status_fails() {
    let root = repo_copy();
    edit_json(root.path(), CB_CORPUS, |v| {
        v["operation"] = Value::from("listSourcez");
    });
    assert!(validate_fails(root.path()).contains("unknown operation `listSourcez`"));
    edit_json(root.path(), CB_CORPUS, |v| {
        v["operation"] = Value::from("listSources");
        v["status"] = Value::from(299);
    });
    assert!(validate_fails(root.path()).contains("`listSources` declares no 299 response"));
}

#[test]
fn a_corpus_file_must_name_evidence_rows() {
    let root = repo_copy();
    edit_json(root.path(), CB_CORPUS, |v| {
        v.as_object_mut().unwrap().remove("rests_on");
    });
    assert!(validate_fails(root.path()).contains("no `rests_on`"));
    edit_json(root.path(), CB_CORPUS, |v| {
        v["rests_on"] = serde_json::json!(["CloseBot: Source.nonsense"]);
    });
    assert!(
        validate_fails(root.path())
            .contains("`rests_on` entry \"CloseBot: Source.nonsense\" names no row")
    );
}

#[test]
fn a_corpus_without_a_spec_fails() {
    let root = repo_copy();
    write(root.path(), "openapi/corpus/nosuchapi/x.json", "{}");
    assert!(validate_fails(root.path()).contains("no spec openapi/nosuchapi.yaml"));
}

#[test]
fn inline_object_and_union_that_generators_must_name_fail() {
    // An array's items written inline as an object with properties.
    let dir = fixture(
        &[(
            "items: {$ref: \"#/components/schemas/Item\"}",
            "items: {type: object, properties: {count: {type: integer}}}",
        )],
        None,
    );
    let out = validate_fails(dir.path());
    assert!(
        out.contains("#/components/schemas/Thing/properties/items/items: an object with properties as an array's items written inline"),
        "{out}"
    );
    // A property's value written as an inline union (PHP's `[]` beside an object).
    let dir = fixture(
        &[(
            "note: {type: string, nullable: true}",
            "note: {oneOf: [{$ref: \"#/components/schemas/Item\"}, {type: array, maxItems: 0}]}",
        )],
        Some(r#"{"id": 1, "name": "x", "note": [], "items": []}"#),
    );
    let out = validate_fails(dir.path());
    assert!(
        out.contains("#/components/schemas/Thing/properties/note: a `oneOf` union as a property's value written inline"),
        "{out}"
    );
    // A response body written inline.
    let dir = fixture(
        &[(
            "schema: {$ref: \"#/components/schemas/Error\"}",
            "schema: {type: object, properties: {message: {type: string}}}",
        )],
        None,
    );
    let out = validate_fails(dir.path());
    assert!(
        out.contains("/responses/404/content/application~1json/schema: an object with properties as a body's schema written inline"),
        "{out}"
    );
}
