//! Runs the real `xtask export` binary against the repository and against copies of it in
//! temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const EXPORT_DIR: &str = "openapi/export";
const APIS: &[&str] = &["kommo", "closebot"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

struct Run {
    code: Option<i32>,
    out: String,
}

fn export(root: Option<&Path>, check: bool) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("export");
    if check {
        cmd.arg("--check");
    }
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
        code: output.status.code(),
        out,
    }
}

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

/// A copy of the repository's `openapi/` (specs, examples and the checked-in export).
fn copy_of_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &workspace_root().join("openapi"),
        &dir.path().join("openapi"),
    );
    dir
}

fn exported(root: &Path, file: &str) -> Vec<u8> {
    fs::read(root.join(EXPORT_DIR).join(file)).unwrap()
}

fn exported_json(api: &str) -> Value {
    serde_json::from_slice(&exported(&workspace_root(), &format!("{api}.json"))).unwrap()
}

#[test]
fn the_checked_in_export_is_up_to_date() {
    let run = export(None, true);
    assert_eq!(
        run.code,
        Some(0),
        "run `cargo xtask export` and commit openapi/export:\n{}",
        run.out
    );
}

#[test]
fn two_runs_write_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &workspace_root().join("openapi"),
        &dir.path().join("openapi"),
    );
    fs::remove_dir_all(dir.path().join(EXPORT_DIR)).unwrap();

    assert_eq!(export(Some(dir.path()), false).code, Some(0));
    let first: Vec<Vec<u8>> = APIS
        .iter()
        .flat_map(|a| [format!("{a}.json"), format!("{a}.yaml")])
        .map(|f| exported(dir.path(), &f))
        .collect();
    let run = export(Some(dir.path()), false);
    assert_eq!(run.code, Some(0));
    assert!(
        run.out.contains("unchanged openapi/export/kommo.json"),
        "{}",
        run.out
    );
    let second: Vec<Vec<u8>> = APIS
        .iter()
        .flat_map(|a| [format!("{a}.json"), format!("{a}.yaml")])
        .map(|f| exported(dir.path(), &f))
        .collect();
    assert!(first == second, "a second run wrote different bytes");
    // And both equal what is checked in.
    for api in APIS {
        for ext in ["json", "yaml"] {
            let file = format!("{api}.{ext}");
            assert!(
                exported(dir.path(), &file) == exported(&workspace_root(), &file),
                "{file} differs from the checked-in export"
            );
        }
    }
}

#[test]
fn check_fails_on_a_hand_edited_export_and_passes_after_export() {
    let dir = copy_of_repo();
    assert_eq!(export(Some(dir.path()), true).code, Some(0));

    let file = dir.path().join(EXPORT_DIR).join("kommo.yaml");
    let edited = fs::read_to_string(&file).unwrap().replacen(
        "title: Kommo CRM v4",
        "title: Kommo CRM v5",
        1,
    );
    fs::write(&file, edited).unwrap();
    let run = export(Some(dir.path()), true);
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out
            .contains("openapi/export/kommo.yaml differs from the spec (first at line 4)"),
        "{}",
        run.out
    );
    assert!(run.out.contains("run `cargo xtask export`"), "{}", run.out);

    assert_eq!(export(Some(dir.path()), false).code, Some(0));
    let run = export(Some(dir.path()), true);
    assert_eq!(run.code, Some(0), "{}", run.out);
}

#[test]
fn check_fails_when_a_spec_or_an_example_changes() {
    let dir = copy_of_repo();
    let spec = dir.path().join("openapi/closebot.yaml");
    let text = fs::read_to_string(&spec).unwrap();
    assert!(
        text.contains("summary: List sources"),
        "fixture assumption changed"
    );
    fs::write(
        &spec,
        text.replacen("summary: List sources", "summary: List them", 1),
    )
    .unwrap();
    let run = export(Some(dir.path()), true);
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out.contains("openapi/export/closebot.json differs"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("openapi/export/closebot.yaml differs"),
        "{}",
        run.out
    );
    assert!(!run.out.contains("kommo"), "{}", run.out);

    // An example file is part of the export too.
    let dir = copy_of_repo();
    let example = dir
        .path()
        .join("openapi/examples/kommo/getWidget.response.200.json");
    let text = fs::read_to_string(&example).unwrap();
    assert!(text.contains("amo_dropbox"), "fixture assumption changed");
    fs::write(&example, text.replacen("amo_dropbox", "amo_other", 1)).unwrap();
    let run = export(Some(dir.path()), true);
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out.contains("openapi/export/kommo.json differs"),
        "{}",
        run.out
    );
}

#[test]
fn check_fails_on_a_missing_or_an_extra_file() {
    let dir = copy_of_repo();
    fs::remove_file(dir.path().join(EXPORT_DIR).join("closebot.json")).unwrap();
    fs::write(
        dir.path().join(EXPORT_DIR).join("old.yaml"),
        "openapi: 3.0.3\n",
    )
    .unwrap();
    let run = export(Some(dir.path()), true);
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out.contains("openapi/export/closebot.json is missing"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("openapi/export/old.yaml is not exported from any spec"),
        "{}",
        run.out
    );

    // Exporting restores the missing file and removes the extra one.
    let run = export(Some(dir.path()), false);
    assert!(
        run.out.contains("removed openapi/export/old.yaml"),
        "{}",
        run.out
    );
    assert_eq!(export(Some(dir.path()), true).code, Some(0));
}

fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push((at.clone(), k.as_str(), x));
                walk(x, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_export_is_self_contained() {
    for api in APIS {
        let doc = exported_json(api);
        let mut entries = Vec::new();
        walk(&doc, String::new(), &mut entries);
        let mut examples = 0;
        for (at, key, value) in entries {
            assert_ne!(key, "externalValue", "{api}: externalValue left at {at}");
            if key == "$ref" {
                let r = value.as_str().unwrap();
                assert!(
                    r.starts_with("#/"),
                    "{api}: $ref {r} at {at} leaves the document"
                );
            }
            if key == "examples" && !at.ends_with("/properties") {
                for (name, example) in value.as_object().unwrap() {
                    assert!(
                        example.get("value").is_some() || example.get("$ref").is_some(),
                        "{api}: example {name} at {at} has no value"
                    );
                    examples += 1;
                }
            }
        }
        assert!(examples > 0, "{api}: no examples exported");
    }
}

#[test]
fn json_and_yaml_hold_the_same_document() {
    for api in APIS {
        let json = exported_json(api);
        let yaml: Value =
            serde_norway::from_slice(&exported(&workspace_root(), &format!("{api}.yaml"))).unwrap();
        assert!(json == yaml, "{api}.json and {api}.yaml differ");
    }
}

#[test]
fn keys_keep_the_hand_written_order() {
    let root = workspace_root();
    let text = String::from_utf8(exported(&root, "kommo.json")).unwrap();
    let top: Vec<usize> = [
        "\n  \"openapi\"",
        "\n  \"info\"",
        "\n  \"servers\"",
        "\n  \"security\"",
        "\n  \"tags\"",
        "\n  \"paths\"",
        "\n  \"components\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap_or_else(|| panic!("no {k}")))
    .collect();
    assert!(
        top.windows(2).all(|w| w[0] < w[1]),
        "top-level keys reordered"
    );
    // An inlined example keeps its file's order (`_total_items` before `_links` before `_embedded`
    // in listSources' answer; sorted, `_embedded` would come first).
    let example =
        fs::read_to_string(root.join("openapi/examples/kommo/listSources.response.200.json"))
            .unwrap();
    let file: Vec<usize> = ["\"_total_items\"", "\"_links\"", "\"_embedded\""]
        .iter()
        .map(|k| example.find(k).unwrap())
        .collect();
    assert!(
        file.windows(2).all(|w| w[0] < w[1]),
        "the fixture assumption changed"
    );
    // The first example of the document is listSources' answer.
    let at = text.find("\"documented\"").unwrap();
    let exported_keys: Vec<usize> = ["\"_total_items\"", "\"_links\"", "\"_embedded\""]
        .iter()
        .map(|k| at + text[at..].find(k).unwrap())
        .collect();
    assert!(
        exported_keys.windows(2).all(|w| w[0] < w[1]),
        "the example's keys were reordered"
    );
}

#[test]
fn the_known_invalid_vendor_example_leaves_examples_but_is_kept_verbatim() {
    let doc = exported_json("kommo");
    let media = &doc["paths"]["/api/v4/widgets/{widget_code}"]["post"]["requestBody"]["content"]["application/json"];
    let examples = media["examples"].as_object().unwrap();
    assert_eq!(
        examples.keys().collect::<Vec<_>>(),
        ["corrected"],
        "only valid examples stay where linters validate them"
    );
    let faithful = &media["x-known-invalid-examples"]["faithful"];
    let verbatim = fs::read_to_string(
        workspace_root().join("openapi/examples/kommo/installWidget.request.faithful.txt"),
    )
    .unwrap();
    assert_eq!(faithful["value"].as_str(), Some(verbatim.as_str()));
    assert!(
        faithful["x-known-invalid"]
            .as_str()
            .unwrap()
            .contains("unquoted object key"),
        "{faithful}"
    );
}

const FIXTURE: &str = r##"openapi: 3.0.3
info: {title: fixture, version: "1"}
paths:
  /things:
    get:
      operationId: getThings
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Thing"}
              examples:
                one: {externalValue: examples/thing.json}
        default:
          description: any error
          content:
            application/json:
              schema: {type: object}
              examples:
                error: {externalValue: examples/error.json}
components:
  schemas:
    Thing:
      type: object
      properties:
        default: {type: string, default: "externalValue"}
        value: {type: string, example: "examples"}
"##;

fn fixture(error_example: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("openapi");
    fs::create_dir_all(api.join("examples")).unwrap();
    fs::write(api.join("test.yaml"), FIXTURE).unwrap();
    fs::write(
        api.join("examples/thing.json"),
        r#"{"value": "x", "default": "y"}"#,
    )
    .unwrap();
    if let Some(text) = error_example {
        fs::write(api.join("examples/error.json"), text).unwrap();
    }
    dir
}

#[test]
fn examples_under_a_default_response_are_inlined_and_names_are_not_keywords() {
    let dir = fixture(Some(r#"{"message": "no"}"#));
    let run = export(Some(dir.path()), false);
    assert_eq!(run.code, Some(0), "{}", run.out);
    let doc: Value = serde_json::from_slice(&exported(dir.path(), "test.json")).unwrap();
    let responses = &doc["paths"]["/things"]["get"]["responses"];
    assert_eq!(
        responses["200"]["content"]["application/json"]["examples"]["one"]["value"],
        serde_json::json!({"value": "x", "default": "y"})
    );
    assert_eq!(
        responses["default"]["content"]["application/json"]["examples"]["error"]["value"],
        serde_json::json!({"message": "no"})
    );
    // Schema properties named `default` and `value` are schemas, left as they were.
    assert_eq!(
        doc["components"]["schemas"]["Thing"]["properties"]["default"]["default"],
        "externalValue"
    );
}

#[test]
fn a_broken_example_stops_the_export_with_the_file_named() {
    let dir = fixture(Some("{message: no}"));
    let run = export(Some(dir.path()), false);
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out
            .contains("external example examples/error.json is not JSON"),
        "{}",
        run.out
    );
    assert!(run.out.contains("nothing written"), "{}", run.out);
    assert!(!dir.path().join(EXPORT_DIR).exists());

    let dir = fixture(None);
    let run = export(Some(dir.path()), false);
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out
            .contains("cannot read external example examples/error.json"),
        "{}",
        run.out
    );
}
