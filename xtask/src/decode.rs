//! The run-time half of `cargo xtask conformance`: every answer of `openapi/examples/` and
//! `openapi/corpus/` decoded by each generated client's own decoder, written back with its own
//! serializer, and compared with the input.
//!
//! The cases (one per JSON answer: its API, the component schema its operation and status
//! declare, and the body) go to `<out>/decode/cases-<api>.json`; a driver per generator
//! (`scripts/conformance/decode/`) reads them and writes one result per case: the value its
//! serializer wrote back, or the error its decoder raised. [`lost`] compares; the rules are:
//! a `null` read back as absent, `[]` read back as `{}` (or the other way round) and the same
//! instant written in another format are not losses; anything else that differs is.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::conformance::{APIS, Cx, Outcome};

/// A generated client whose decoder the run checks, with the generator's output it reads.
pub struct Decoder {
    /// As the table shows it.
    pub name: &'static str,
    kind: Kind,
    /// Whether the CONTRIBUTING.md recommends it: a row that is not, and names no failures in
    /// `known`, reports its counts without failing the run (the CONTRIBUTING.md says which answers
    /// fail and why).
    recommended: bool,
    /// `(case id, why)`: answers the CONTRIBUTING.md names as failing with this generator. Each must
    /// still fail (else the list and the CONTRIBUTING.md are stale) and nothing else may.
    known: &'static [(&'static str, &'static str)],
}

#[derive(Clone, Copy)]
enum Kind {
    OpenapiPythonClient,
    GeneratorPython,
    OpenapiFetch,
    TypescriptFetch,
    Go,
}

/// The generated clients whose decoding the run checks (typescript-fetch and Go are reported, not
/// recommended; typescript-fetch is held to the failures the CONTRIBUTING.md names).
pub const DECODERS: &[Decoder] = &[
    Decoder {
        name: "openapi-python-client",
        kind: Kind::OpenapiPythonClient,
        recommended: true,
        known: &[],
    },
    Decoder {
        name: "openapi-generator python",
        kind: Kind::GeneratorPython,
        recommended: true,
        known: &[],
    },
    Decoder {
        name: "openapi-typescript + openapi-fetch",
        kind: Kind::OpenapiFetch,
        recommended: true,
        known: &[],
    },
    Decoder {
        name: "openapi-generator typescript-fetch",
        kind: Kind::TypescriptFetch,
        // Its runtime checks call an `instanceOfany` it never defines; without them, the answers
        // below fail (CONTRIBUTING.md).
        recommended: false,
        known: &[
            (
                "kommo examples BadRequest 400 validation",
                "the Problem interface names `validation-errors` `validation_errors` (a key that is \
                 not an identifier is renamed even with modelPropertyNaming=original: \
                 OpenAPITools/openapi-generator#4065)",
            ),
            (
                "corpus/kommo/listIncomingLeads.contact-model.json",
                "the contact's `custom_fields_values`, which the spec does not declare, fails the \
                 type check (TypeScript's excess property check); at run time the cast keeps it",
            ),
        ],
    },
    Decoder {
        name: "openapi-generator go",
        kind: Kind::Go,
        // Offline, its oneOf decoders run Debian's 2016 snapshot of gopkg.in/validator.v2, which
        // refuses every value that is not a struct (CONTRIBUTING.md).
        recommended: false,
        known: &[],
    },
];

impl Decoder {
    pub fn version(&self, cx: &Cx) -> String {
        match self.kind {
            Kind::OpenapiPythonClient => cx.py_version("openapi-python-client"),
            Kind::GeneratorPython | Kind::TypescriptFetch | Kind::Go => {
                cx.py_version("openapi-generator-cli")
            }
            Kind::OpenapiFetch => format!(
                "{} + {}",
                cx.npm_version("openapi-typescript"),
                cx.npm_version_in("node-clients", "openapi-fetch")
            ),
        }
    }

    fn slug(&self) -> String {
        self.name.replace(' ', "-")
    }

    /// Runs the driver on `cases` (a file of [`cases_json`]), writing its results to `results`.
    fn drive(
        &self,
        cx: &Cx,
        api: &str,
        schemas: &BTreeSet<String>,
        cases: &Path,
        results: &Path,
    ) -> Result<Vec<(String, String)>, String> {
        let driver = |file: &str| cx.root.join("scripts/conformance/decode").join(file);
        let python = cx.tools.join("python-clients/bin/python");
        let name = format!("decode-{}-{api}", self.slug());
        match self.kind {
            Kind::OpenapiPythonClient => {
                let dir = cx.out.join("openapi-python-client").join(api);
                let package = python_package(&dir)?;
                // The package this run generated, whatever the shared venv last installed.
                cx.run(
                    &name,
                    Command::new(&python)
                        .arg(driver("openapi_python_client.py"))
                        .arg(package)
                        .arg(cases)
                        .arg(results)
                        .env("PYTHONPATH", &dir),
                )?;
            }
            Kind::GeneratorPython => {
                let dir = cx.out.join("openapi-generator/python").join(api);
                generator_python(cx, &name, &dir, api, cases, results)?;
            }
            Kind::OpenapiFetch => {
                let dir = cx.out.join("openapi-fetch").join(api);
                fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                copy(
                    &cx.out
                        .join("openapi-typescript")
                        .join(format!("{api}.d.ts")),
                    &dir.join("schema.d.ts"),
                )?;
                copy(
                    &driver("openapi_fetch.ts"),
                    &dir.join("conformance_decode.ts"),
                )?;
                transpile(cx, &dir, &name)?;
                cx.run(
                    &name,
                    Command::new("node")
                        .arg(dir.join("conformance_decode_build/conformance_decode.js"))
                        .arg(cases)
                        .arg(results)
                        .env("NODE_PATH", cx.tools.join("node-clients/node_modules")),
                )?;
                // Each body as the type openapi-typescript gives the operation's answer.
                let type_of = |case: &Value| {
                    format!(
                        "operations[{}][\"responses\"][{}][\"content\"][{}]",
                        case["operation"], case["status"], case["media"]
                    )
                };
                return typescript_types(
                    cx,
                    &dir,
                    &name,
                    cases,
                    "import type { operations } from './schema';\n",
                    &type_of,
                );
            }
            Kind::TypescriptFetch => {
                let dir = cx.out.join("openapi-generator/typescript-fetch").join(api);
                copy(
                    &driver("typescript_fetch.ts"),
                    &dir.join("conformance_decode.ts"),
                )?;
                transpile(cx, &dir, &name)?;
                cx.run(
                    &name,
                    Command::new("node")
                        .arg(dir.join("conformance_decode_build/conformance_decode.js"))
                        .arg(cases)
                        .arg(results),
                )?;
                // With runtime checks the client maps wire keys to its own names
                // (`<Schema>FromJSON`), so the interfaces need not name the wire's keys: only the
                // cast (withoutRuntimeChecks) is type-checked.
                let models = fs::read_to_string(dir.join("models/index.ts")).unwrap_or_default();
                if models.contains("FromJSON(")
                    || fs::read_dir(dir.join("models")).is_ok_and(|d| d.count() > 1)
                {
                    return Ok(Vec::new());
                }
                let type_of =
                    |case: &Value| format!("M.{}", case["schema"].as_str().unwrap_or("unknown"));
                return typescript_types(
                    cx,
                    &dir,
                    &name,
                    cases,
                    "import type * as M from './models/index';\n",
                    &type_of,
                );
            }
            Kind::Go => {
                let dir = cx.out.join("openapi-generator/go").join(api);
                let template = fs::read_to_string(driver("go_main.go.txt"))
                    .map_err(|e| format!("scripts/conformance/decode/go_main.go.txt: {e}"))?;
                let constructors: String = schemas
                    .iter()
                    .map(|s| format!("\t\"{s}\": func() any {{ return new(client.{s}) }},\n"))
                    .collect();
                let main = template.replace("\t// MODELS\n", &constructors);
                let pkg = dir.join("conformance_decode");
                fs::create_dir_all(&pkg).map_err(|e| e.to_string())?;
                fs::write(pkg.join("main.go"), main).map_err(|e| e.to_string())?;
                let mut cmd = Command::new("go");
                cmd.args(["run", "./conformance_decode"])
                    .arg(cases)
                    .arg(results)
                    .current_dir(&dir)
                    .env("GOFLAGS", "-mod=mod")
                    .env("GOPROXY", "off")
                    .env("GOTOOLCHAIN", "local")
                    .env("GOPATH", cx.out.join("go/path"))
                    .env("GOCACHE", cx.out.join("go/cache"));
                cx.run(&name, &mut cmd)?;
            }
        }
        Ok(Vec::new())
    }
}

/// A TypeScript driver (`conformance_decode.ts` in `dir`) transpiled only, without type checks:
/// the answers' types are checked apart ([`typescript_types`]).
fn transpile(cx: &Cx, dir: &Path, name: &str) -> Result<String, String> {
    cx.run(
        &format!("{name}-tsc"),
        Command::new(cx.node_bin("tsc"))
            .args([
                "--noCheck",
                "--target",
                "es2020",
                "--lib",
                "es2020,dom",
                "--module",
                "commonjs",
                "--outDir",
                "conformance_decode_build",
                "conformance_decode.ts",
            ])
            .current_dir(dir),
    )
}

/// The TypeScript half of reading an answer: each case's body as a literal of the type the
/// operation declares (`type_of` the case; `header` imports what it names), under
/// `tsc --strict` (a wire key the type names differently, or does not name, is an excess
/// property; a value of another type is an error). Returns, per case, the compiler's
/// complaints.
fn typescript_types(
    cx: &Cx,
    dir: &Path,
    name: &str,
    cases: &Path,
    header: &str,
    type_of: &dyn Fn(&Value) -> String,
) -> Result<Vec<(String, String)>, String> {
    let cases: Value = fs::read_to_string(cases)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))?;
    let mut source = String::from(header);
    // (first line, last line, case id), 1-based as tsc counts.
    let mut spans = Vec::new();
    for (n, case) in cases.as_array().into_iter().flatten().enumerate() {
        let first = source.lines().count() + 1;
        let body = serde_json::to_string_pretty(&case["body"]).map_err(|e| e.to_string())?;
        source.push_str(&format!(
            "export const case{n}: {} = {body};\n",
            type_of(case)
        ));
        let last = source.lines().count();
        spans.push((first, last, case["id"].as_str().unwrap_or("?").to_string()));
    }
    fs::write(dir.join("conformance_types.ts"), source).map_err(|e| e.to_string())?;
    let out = Command::new(cx.node_bin("tsc"))
        .args([
            "--strict",
            "--noEmit",
            "--target",
            "es2020",
            "--lib",
            "es2020,dom",
            "--module",
            "es2020",
            "--moduleResolution",
            "bundler",
            "conformance_types.ts",
        ])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run tsc: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = fs::write(cx.out.join(format!("logs/{name}-types.log")), &text);
    let mut refused = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("conformance_types.ts(") else {
            continue;
        };
        let at: usize = rest
            .split(',')
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let message = rest.split_once("): ").map_or(rest, |(_, m)| m);
        if let Some((_, _, id)) = spans.iter().find(|(a, b, _)| (*a..=*b).contains(&at)) {
            refused.push((id.clone(), format!("tsc: {message}")));
        }
    }
    if !out.status.success() && refused.is_empty() {
        return Err(format!(
            "tsc refused the generated client itself:\n{}",
            crate::conformance::tail(&text, 20)
        ));
    }
    Ok(refused)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Runs the openapi-generator `python` driver on the client generated in `dir` (imported from
/// there, ahead of whatever the shared venv last installed under the same name).
fn generator_python(
    cx: &Cx,
    name: &str,
    dir: &Path,
    api: &str,
    cases: &Path,
    results: &Path,
) -> Result<String, String> {
    cx.run(
        name,
        Command::new(cx.tools.join("python-clients/bin/python"))
            .arg(
                cx.root
                    .join("scripts/conformance/decode/openapi_generator_python.py"),
            )
            .arg(format!("{api}_client"))
            .arg(cases)
            .arg(results)
            .env("PYTHONPATH", dir),
    )
}

/// The importable package of a generated Python project: the folder holding `__init__.py`.
fn python_package(dir: &Path) -> Result<String, String> {
    fs::read_dir(dir)
        .map_err(|e| format!("cannot list {} (was it generated?): {e}", dir.display()))?
        .flatten()
        .filter(|e| e.path().join("__init__.py").is_file() && e.file_name() != "test")
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .min()
        .ok_or_else(|| format!("no Python package in {}", dir.display()))
}

/// One generator's row: every case of both APIs through its decoder and serializer.
pub fn run(cx: &Cx, decoder: &Decoder) -> Outcome {
    let dir = cx.out.join("decode");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut tally = Tally::default();
    let mut total = 0;
    for api in APIS {
        let export = cx.export(&format!("{api}.json"));
        let doc: Value = fs::read_to_string(&export)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", export.display()))?;
        let mut cases = cases(&doc, &cx.root.join("openapi/corpus").join(api), api)?;
        // openapi-python-client and openapi-fetch read an answer through its operation, which
        // knows a top-level array; the others decode by component, and name none for an array:
        // its items then.
        if !matches!(decoder.kind, Kind::OpenapiPythonClient | Kind::OpenapiFetch) {
            cases = cases
                .into_iter()
                .flat_map(|case| answer_cases(&doc, case))
                .collect();
        }
        for case in &mut cases {
            if case.id.starts_with("examples ") {
                case.id = format!("{api} {}", case.id);
            }
        }
        total += cases.len();
        let cases_file = dir.join(format!("cases-{api}.json"));
        write_json(&cases_file, &cases_json(&cases))?;
        let results_file: PathBuf = dir.join(format!("results-{}-{api}.json", decoder.slug()));
        let _ = fs::remove_file(&results_file);
        let schemas = cases.iter().map(|c| c.schema.clone()).collect();
        let refused = decoder.drive(cx, api, &schemas, &cases_file, &results_file)?;
        let mut results: Value = fs::read_to_string(&results_file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", results_file.display()))?;
        // An answer its types refuse is not read, whatever the runtime did with it.
        for result in results.as_array_mut().into_iter().flatten() {
            let errors: Vec<&str> = refused
                .iter()
                .filter(|(id, _)| result["id"] == id.as_str())
                .map(|(_, e)| e.as_str())
                .collect();
            if !errors.is_empty() {
                *result = json!({"id": result["id"], "error": errors.join("; ")});
            }
        }
        let t = judge(&cases, &results)?;
        tally.decoded += t.decoded;
        tally.raised.extend(t.raised);
        tally.lost.extend(t.lost);
    }
    let report = cx.out.join(format!("logs/decode-{}.txt", decoder.slug()));
    let _ = fs::write(
        &report,
        format!("{}\n{}\n", tally.summary(total), tally.details(usize::MAX)),
    );
    let summary = tally.summary(total);
    // A row the CONTRIBUTING.md does not recommend and names no failures of is reported only;
    // one whose failures it names is held to them, as a recommended row is.
    let label = if decoder.recommended {
        ""
    } else {
        "not recommended (CONTRIBUTING.md): "
    };
    if !decoder.recommended && decoder.known.is_empty() {
        return Ok(format!("{label}{summary}"));
    }
    // The failures the CONTRIBUTING.md names, and whether each still fails.
    let failing: BTreeSet<&str> = tally
        .raised
        .iter()
        .chain(&tally.lost)
        .map(|(id, _)| id.as_str())
        .collect();
    let stale: Vec<&str> = decoder
        .known
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !failing.contains(id))
        .collect();
    tally
        .raised
        .retain(|(id, _)| !decoder.known.iter().any(|(k, _)| k == id));
    tally
        .lost
        .retain(|(id, _)| !decoder.known.iter().any(|(k, _)| k == id));
    let known = if decoder.known.is_empty() {
        String::new()
    } else {
        format!(
            " ({} known in the CONTRIBUTING.md: {})",
            decoder.known.len(),
            decoder
                .known
                .iter()
                .map(|(id, why)| format!("{id}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let stale = if stale.is_empty() {
        String::new()
    } else {
        format!(
            "\nknown failures that now pass (drop them from xtask/src/decode.rs and the CONTRIBUTING.md): {}",
            stale.join(", ")
        )
    };
    if tally.ok() && stale.is_empty() {
        Ok(format!("{label}{summary}{known}"))
    } else {
        Err(format!(
            "{label}{summary}{known}{stale}\n{}\n(all of it in {})",
            tally.details(25),
            report.display()
        ))
    }
}

/// The key the negative control adds to one answer.
const UNDECLARED: &str = "x_undeclared_by_the_spec";

/// Proof that the comparison catches a loss through a real driver, and that the recipe's option
/// is what keeps the value: one answer with a field the spec does not declare goes through
/// openapi-generator's `python` generated without `disallowAdditionalPropertiesIfNotPresent=false`
/// (whose models keep only declared fields), and must come back with exactly that value lost;
/// through the client of the recipe, with nothing lost.
pub fn negative_control(cx: &Cx) -> Outcome {
    let export = cx.export("kommo.json");
    let doc: Value = fs::read_to_string(&export)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", export.display()))?;
    let mut case = cases(&doc, &cx.root.join("openapi/corpus/kommo"), "kommo")?
        .into_iter()
        .find(|c| c.schema == "Source" && c.body.is_object())
        .ok_or("no example of a Source to alter")?;
    case.id = format!("negative control: {} + {UNDECLARED}", case.id);
    if let Some(body) = case.body.as_object_mut() {
        body.insert(UNDECLARED.into(), "a value real answers may carry".into());
    }
    let dir = cx.out.join("decode");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cases_file = dir.join("cases-negative-control.json");
    let cases = [case];
    write_json(&cases_file, &cases_json(&cases))?;
    let outcome = |client: &Path, results_file: &Path| -> Result<Tally, String> {
        let _ = fs::remove_file(results_file);
        generator_python(
            cx,
            "decode-negative-control",
            client,
            "kommo",
            &cases_file,
            results_file,
        )?;
        let results: Value = fs::read_to_string(results_file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", results_file.display()))?;
        judge(&cases, &results)
    };
    let without = cx.fresh("openapi-generator/python-without-option")?;
    crate::conformance::generate(cx, "python", "kommo", &without, "", &[])?;
    let dropped = outcome(&without, &dir.join("results-negative-control.json"))?;
    let expected = format!("/{UNDECLARED}: ");
    if !(dropped.raised.is_empty()
        && dropped.lost.len() == 1
        && dropped.lost[0].1.starts_with(&expected))
    {
        return Err(format!(
            "without the recipe's option, the altered answer should come back with exactly \
             `{UNDECLARED}` lost; got: {}\n{}",
            dropped.summary(1),
            dropped.details(10)
        ));
    }
    let kept = outcome(
        &cx.out.join("openapi-generator/python/kommo"),
        &dir.join("results-negative-control-recipe.json"),
    )?;
    if !kept.ok() {
        return Err(format!(
            "the recipe's client should keep `{UNDECLARED}`; got: {}\n{}",
            kept.summary(1),
            kept.details(10)
        ));
    }
    Ok(format!(
        "a Source with an undeclared `{UNDECLARED}`: openapi-generator python without \
         disallowAdditionalPropertiesIfNotPresent=false drops it, and the check reports it lost, \
         as it must; the recipe's client keeps it"
    ))
}

fn write_json(path: &Path, value: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One answer to decode.
#[derive(Debug, Clone)]
pub struct Case {
    /// Where it comes from: `examples <operation or component response> <status> <name>` or
    /// `corpus/<api>/<file>`.
    pub id: String,
    /// The component schema (`#/components/schemas/<name>`) the answer is declared with.
    pub schema: String,
    /// The media type the answer is declared with.
    pub media: String,
    /// An operation that declares it (the first, for a shared component response), its method,
    /// path and the status.
    pub operation: String,
    pub method: String,
    pub path: String,
    pub status: String,
    pub body: Value,
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The component schema a response (or a `$ref` to one) declares for its JSON body.
fn json_schema_of(doc: &Value, response: &Value) -> Option<(String, String, Value)> {
    let response = match response.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.strip_prefix('#')?)?,
        None => response,
    };
    let (media_type, media) = response
        .get("content")?
        .as_object()?
        .iter()
        .find(|(mt, _)| mt.ends_with("json"))?;
    let name = media
        .pointer("/schema/$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")?
        .to_string();
    Some((name, media_type.clone(), media.clone()))
}

/// The cases one answer makes: itself under `schema`, or, when `schema` is an array of a
/// component (`CreatedComplexLeads`: generators name no model for a top-level array, they decode
/// a list of its items), each of its items under the item's component, as `id[i]`.
fn answer_cases(doc: &Value, case: Case) -> Vec<Case> {
    let item = doc
        .pointer(&format!("/components/schemas/{}", case.schema))
        .filter(|s| s["type"] == "array")
        .and_then(|s| s.pointer("/items/$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .map(str::to_string);
    match (item, case.body.as_array()) {
        (Some(item), Some(items)) => items
            .iter()
            .enumerate()
            .map(|(i, body)| Case {
                id: format!("{}[{i}]", case.id),
                schema: item.clone(),
                body: body.clone(),
                ..case.clone()
            })
            .collect(),
        _ => vec![case],
    }
}

/// Every JSON answer of the exported document `doc` (its inlined examples: each shared
/// component response once) and of the corpus folder `corpus`.
pub fn cases(doc: &Value, corpus: &Path, api: &str) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    let mut seen_refs = BTreeSet::new();
    let mut by_op = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let op_id = op["operationId"].as_str().unwrap_or("?").to_string();
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                let Some((schema, media_type, media)) = json_schema_of(doc, response) else {
                    continue;
                };
                by_op.insert(
                    (op_id.clone(), status.clone()),
                    (schema.clone(), media_type.clone(), method, path),
                );
                let owner = match response.get("$ref").and_then(Value::as_str) {
                    Some(r) => {
                        if !seen_refs.insert(r.to_string()) {
                            continue;
                        }
                        r.rsplit('/').next().unwrap_or(r).to_string()
                    }
                    None => op_id.clone(),
                };
                for (name, example) in media["examples"].as_object().into_iter().flatten() {
                    if let Some(body) = example.get("value") {
                        let case = Case {
                            id: format!("examples {owner} {status} {name}"),
                            schema: schema.clone(),
                            media: media_type.clone(),
                            operation: op_id.clone(),
                            method: method.to_string(),
                            path: path.clone(),
                            status: status.clone(),
                            body: body.clone(),
                        };
                        out.push(case);
                    }
                }
            }
        }
    }
    let mut files: Vec<_> = fs::read_dir(corpus)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in files {
        let shown = format!(
            "corpus/{api}/{}",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
        let wrapper: Value = fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("{shown}: {e}"))?;
        let op = wrapper["operation"].as_str().unwrap_or("?").to_string();
        let status = match &wrapper["status"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return Err(format!("{shown}: no `status`")),
        };
        let (schema, media, method, path) = by_op
            .get(&(op.clone(), status.clone()))
            .ok_or_else(|| format!("{shown}: `{op}` declares no JSON {status} response"))?;
        let case = Case {
            id: shown,
            schema: schema.clone(),
            media: media.clone(),
            operation: op,
            method: method.to_string(),
            path: path.to_string(),
            status,
            body: wrapper["body"].clone(),
        };
        out.push(case);
    }
    Ok(out)
}

/// The cases as the drivers read them.
pub fn cases_json(cases: &[Case]) -> Value {
    Value::Array(
        cases
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "schema": c.schema,
                    "media": c.media,
                    "operation": c.operation,
                    "method": c.method,
                    "path": c.path,
                    "status": c.status,
                    "body": c.body,
                })
            })
            .collect(),
    )
}

/// What one generator made of the cases.
#[derive(Debug, Default)]
pub struct Tally {
    pub decoded: usize,
    /// `(case, error)` for each answer the decoder refused.
    pub raised: Vec<(String, String)>,
    /// `(case, JSON pointer and what became of it)` for each value lost.
    pub lost: Vec<(String, String)>,
}

impl Tally {
    pub fn ok(&self) -> bool {
        self.raised.is_empty() && self.lost.is_empty()
    }

    /// "N of M decoded, R raised, L values lost in K answers".
    pub fn summary(&self, total: usize) -> String {
        let answers: BTreeSet<&str> = self.lost.iter().map(|(c, _)| c.as_str()).collect();
        format!(
            "{} of {total} answers decoded and written back; {} raised; {} values lost in {} answers",
            self.decoded,
            self.raised.len(),
            self.lost.len(),
            answers.len()
        )
    }

    /// The first `n` problems, one a line.
    pub fn details(&self, n: usize) -> String {
        let mut lines: Vec<String> = self
            .raised
            .iter()
            .map(|(c, e)| format!("raised  {c}: {}", first_line(e)))
            .chain(self.lost.iter().map(|(c, l)| format!("lost    {c}: {l}")))
            .collect();
        let more = lines.len().saturating_sub(n);
        lines.truncate(n);
        if more > 0 {
            lines.push(format!("... and {more} more"));
        }
        lines.join("\n")
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut short: String = line.chars().take(200).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// Judges a driver's results (`[{"id", "value"} | {"id", "error"}]`) against the cases.
pub fn judge(cases: &[Case], results: &Value) -> Result<Tally, String> {
    let results = results
        .as_array()
        .ok_or("the driver's results are not a JSON array")?;
    let mut tally = Tally::default();
    for case in cases {
        let Some(result) = results.iter().find(|r| r["id"] == case.id.as_str()) else {
            tally
                .raised
                .push((case.id.clone(), "the driver gave no result".into()));
            continue;
        };
        if let Some(error) = result.get("error") {
            let error = error
                .as_str()
                .map_or_else(|| error.to_string(), String::from);
            tally.raised.push((case.id.clone(), error));
            continue;
        }
        let Some(value) = result.get("value") else {
            tally.raised.push((
                case.id.clone(),
                "the driver gave neither value nor error".into(),
            ));
            continue;
        };
        tally.decoded += 1;
        let mut losses = Vec::new();
        lost(&case.body, Some(value), &mut String::new(), &mut losses);
        tally
            .lost
            .extend(losses.into_iter().map(|l| (case.id.clone(), l)));
    }
    Ok(tally)
}

/// Appends to `out` every value of `input` that `output` (what the generated client wrote
/// back; `None`: absent) does not carry, as "`/json/pointer`: what became of it".
pub fn lost(input: &Value, output: Option<&Value>, at: &mut String, out: &mut Vec<String>) {
    let shown = |v: Option<&Value>| match v {
        None => "absent".to_string(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 60 {
                format!("{}…", s.chars().take(60).collect::<String>())
            } else {
                s
            }
        }
    };
    let empty = |v: &Value| match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    match (input, output) {
        (Value::Null, None | Some(Value::Null)) => {}
        (i, Some(o)) if empty(i) && empty(o) => {}
        (Value::Object(i), Some(Value::Object(o))) => {
            for (key, value) in i {
                let len = at.len();
                at.push('/');
                at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                lost(value, o.get(key), at, out);
                at.truncate(len);
            }
        }
        (Value::Array(i), Some(Value::Array(o))) if i.len() == o.len() => {
            for (n, value) in i.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{n}"));
                lost(value, o.get(n), at, out);
                at.truncate(len);
            }
        }
        (Value::Number(i), Some(Value::Number(o))) if i.as_f64() == o.as_f64() => {}
        (Value::String(i), Some(Value::String(o))) if i == o || same_instant(i, o) => {}
        (i, o) if Some(i) == o => {}
        (i, o) => out.push(format!(
            "{}: {} read back as {}",
            if at.is_empty() { "/" } else { at },
            shown(Some(i)),
            shown(o)
        )),
    }
}

/// Whether `a` and `b` are RFC 3339 date-times (or dates) naming the same instant.
fn same_instant(a: &str, b: &str) -> bool {
    match (instant(a), instant(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// An RFC 3339 date-time as (seconds since 1970 UTC, nanoseconds); a bare date as midnight UTC.
fn instant(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    if b.len() == 10 {
        return Some((days * 86_400, 0));
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = format!("{:0<9}", &frac[..digits]).parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn losses(input: Value, output: Value) -> Vec<String> {
        let mut out = Vec::new();
        lost(&input, Some(&output), &mut String::new(), &mut out);
        out
    }

    #[test]
    fn what_is_not_a_loss() {
        assert!(losses(json!({"a": null, "b": 1}), json!({"b": 1.0})).is_empty());
        assert!(losses(json!({"s": []}), json!({"s": {}})).is_empty());
        assert!(losses(json!({"s": {}}), json!({"s": []})).is_empty());
        assert!(
            losses(
                json!({"t": "2024-05-01T10:00:00+03:00"}),
                json!({"t": "2024-05-01T07:00:00.000Z"})
            )
            .is_empty()
        );
        // Added values are not losses.
        assert!(losses(json!({}), json!({"x": 1})).is_empty());
    }

    #[test]
    fn what_is_a_loss() {
        assert_eq!(
            losses(json!({"a": {"b": 1, "c": 2}}), json!({"a": {"b": 1}})),
            ["/a/c: 2 read back as absent"]
        );
        assert_eq!(
            losses(json!({"id": "5"}), json!({"id": 5})),
            ["/id: \"5\" read back as 5"]
        );
        assert_eq!(
            losses(json!({"l": [1, 2]}), json!({"l": [1]})),
            ["/l: [1,2] read back as [1]"]
        );
        assert_eq!(
            losses(json!({"s": {"k": 1}}), json!({"s": {}})),
            ["/s/k: 1 read back as absent"]
        );
        assert_eq!(
            losses(
                json!({"t": "2024-05-01T10:00:00+03:00"}),
                json!({"t": "2024-05-01T10:00:00Z"})
            ),
            ["/t: \"2024-05-01T10:00:00+03:00\" read back as \"2024-05-01T10:00:00Z\""]
        );
        assert_eq!(
            losses(json!({"a": 1}), json!(null)),
            ["/: {\"a\":1} read back as null"]
        );
    }
}
