//! `cargo xtask validate`: every `openapi/*.yaml` must be a structurally valid
//! OpenAPI 3.0 document whose refs resolve, whose operations are uniquely
//! named, and whose examples satisfy their schemas. Examples are what the
//! generated client is tested against, so a wrong one hides a wrong schema.
//!
//! It also checks the corpus (`openapi/corpus/<api>/*.json`): realistic answers
//! built from `openapi/EVIDENCE.md`, each a wrapper
//! `{"rests_on": [...], "operation": "<operationId>", "status": <code>, "body": ...}`.
//! Every body must match its operation's response schema for that status, and
//! every `rests_on` entry (`"<heading>: <field>"`) must name a row of
//! EVIDENCE.md: a table row whose first cell is `<field>` under a heading that
//! starts with `<heading>`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jsonschema::Validator;
use serde_json::{Map, Value};

use crate::oas::{Converter, Direction, deref, escape_token, resolve_ref};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// Keys whose values are maps from user-chosen names to objects: a child named
/// `example` or `$ref` there is a name, not a keyword.
const NAME_MAPS: &[&str] = &[
    "paths",
    "schemas",
    "responses",
    "parameters",
    "examples",
    "requestBodies",
    "headers",
    "securitySchemes",
    "links",
    "callbacks",
    "content",
    "properties",
    "patternProperties",
    "encoding",
    "variables",
    "scopes",
    "mapping",
];
/// Fixed fields holding instance data, where a `$ref` key is just data.
const DATA_FIELDS: &[&str] = &["example", "default", "enum", "const", "value"];
const MAX_MESSAGE: usize = 300;

pub fn main(args: &[String]) -> ExitCode {
    let mut root = crate::workspace_root();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--root" {
            match it.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage_error("--root needs a directory"),
            }
        } else if let Some(dir) = arg.strip_prefix("--root=") {
            root = PathBuf::from(dir);
        } else {
            return usage_error(&format!("unexpected argument `{arg}`"));
        }
    }

    let report = run(&root);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for s in &report.summaries {
        println!("{s}");
    }
    for p in &report.problems {
        eprintln!("error: {p}");
    }
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "validate: {} problem(s) in {}",
            report.problems.len(),
            root.display()
        );
        ExitCode::from(1)
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\nusage: cargo xtask validate [--root DIR]");
    ExitCode::from(2)
}

#[derive(Default)]
pub struct Report {
    pub summaries: Vec<String>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn run(root: &Path) -> Report {
    let mut report = Report::default();
    let root = match fs::canonicalize(root) {
        Ok(r) => r,
        Err(e) => {
            report
                .problems
                .push(format!("cannot open root {}: {e}", root.display()));
            return report;
        }
    };
    let api_dir = root.join("openapi");
    let specs = match list_specs(&api_dir) {
        Ok(s) if s.is_empty() => {
            report
                .problems
                .push(format!("no *.yaml specs in {}", api_dir.display()));
            return report;
        }
        Ok(s) => s,
        Err(e) => {
            report
                .problems
                .push(format!("cannot list {}: {e}", api_dir.display()));
            return report;
        }
    };

    let mut referenced = BTreeSet::new();
    let evidence = fs::read_to_string(api_dir.join("EVIDENCE.md")).ok();
    for spec in &specs {
        check_spec(
            &root,
            spec,
            &mut report,
            &mut referenced,
            evidence.as_deref(),
        );
    }
    // A corpus directory needs a spec of the same name.
    if let Ok(entries) = fs::read_dir(api_dir.join("corpus")) {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let stem = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !specs
                .iter()
                .any(|s| s.file_stem().and_then(|n| n.to_str()) == Some(stem))
            {
                report.problems.push(format!(
                    "{}: no spec openapi/{stem}.yaml for this corpus",
                    rel(&root, &dir)
                ));
            }
        }
    }

    // An example file nothing points at is dead weight, or a forgotten wiring.
    let mut files = Vec::new();
    collect_files(&api_dir.join("examples"), &mut files);
    for f in files {
        if !referenced.contains(&f) {
            report
                .warnings
                .push(format!("{}: not referenced by any spec", rel(&root, &f)));
        }
    }
    report
}

pub fn list_specs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut specs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            specs.push(path);
        }
    }
    specs.sort();
    Ok(specs)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect_files(&p, out);
        } else if let Ok(c) = fs::canonicalize(&p) {
            out.push(c);
        }
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn check_spec(
    root: &Path,
    path: &Path,
    report: &mut Report,
    referenced: &mut BTreeSet<PathBuf>,
    evidence: Option<&str>,
) {
    let name = rel(root, path);
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.problems.push(format!("{name}: cannot read: {e}"));
            return;
        }
    };
    let doc: Value = match serde_norway::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            report.problems.push(format!("{name}: invalid YAML: {e}"));
            return;
        }
    };
    let mut c = Checker {
        name: name.clone(),
        root,
        dir: path.parent().unwrap_or(root).to_path_buf(),
        doc: &doc,
        problems: Vec::new(),
        warnings: Vec::new(),
        referenced,
        refs_ok: true,
        defs: HashMap::new(),
        validators: HashMap::new(),
        seen_schemas: HashSet::new(),
        checked_media: HashMap::new(),
        operations: 0,
        examples_ok: 0,
        known_invalid_ok: 0,
        corpus_ok: 0,
    };

    match doc.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0.") => {}
        Some(v) => c.problem(format!("`openapi: {v}` is not 3.0.x")),
        None => c.problem("missing `openapi` version string".into()),
    }
    // openapiv3 is what build.rs feeds the generator; parsing the text (not
    // the Value) keeps serde_norway's line/column in the message.
    if let Err(e) = serde_norway::from_str::<openapiv3::OpenAPI>(&text) {
        c.problem(format!("not a valid OpenAPI 3.0 document: {e}"));
    }

    c.check_refs();
    c.check_inline_names();
    c.check_operations();
    c.check_component_schema_examples();
    let api = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    c.check_corpus(&root.join("openapi").join("corpus").join(api), evidence);

    let mut summary = format!(
        "{name}: {} operations, {} examples OK",
        c.operations, c.examples_ok
    );
    if c.corpus_ok > 0 {
        let _ = write!(summary, ", {} corpus answers OK", c.corpus_ok);
    }
    if c.known_invalid_ok > 0 {
        let _ = write!(
            summary,
            ", {} known-invalid rejected as expected",
            c.known_invalid_ok
        );
    }
    let (problems, warnings) = (c.problems, c.warnings);
    report.problems.extend(problems);
    report.warnings.extend(warnings);
    report.summaries.push(summary);
}

struct Checker<'a> {
    name: String,
    root: &'a Path,
    dir: PathBuf,
    doc: &'a Value,
    problems: Vec<String>,
    warnings: Vec<String>,
    referenced: &'a mut BTreeSet<PathBuf>,
    /// Schema validation is skipped when refs dangle: every example would
    /// fail to compile with the same root cause already reported.
    refs_ok: bool,
    defs: HashMap<Direction, Result<Map<String, Value>, String>>,
    /// Keyed by direction and the schema's JSON pointer; `None` when the
    /// schema could not be compiled (reported once).
    validators: HashMap<(Direction, String), Option<Validator>>,
    seen_schemas: HashSet<String>,
    /// Media-type-like holders already checked, with their example count.
    checked_media: HashMap<(Direction, String), usize>,
    operations: usize,
    examples_ok: usize,
    known_invalid_ok: usize,
    corpus_ok: usize,
}

/// How an example's instance was obtained.
enum Loaded {
    Json(Value),
    NotJson(String),
}

struct Example {
    /// `None` for an inline `example`.
    name: Option<String>,
    file: Option<String>,
    known_invalid: Option<String>,
    loaded: Loaded,
}

impl<'a> Checker<'a> {
    fn problem(&mut self, msg: String) {
        self.problems.push(format!("{}: {msg}", self.name));
    }

    fn warning(&mut self, msg: String) {
        self.warnings.push(format!("{}: {msg}", self.name));
    }

    // ---- $refs ---------------------------------------------------------

    fn check_refs(&mut self) {
        let mut found = Vec::new();
        walk_refs(self.doc, String::new(), false, &mut found);
        for (ptr, reference, has_nullable) in found {
            let at = if ptr.is_empty() { "/" } else { &ptr };
            match reference {
                Some(r) => {
                    if let Err(e) = resolve_ref(self.doc, &r) {
                        self.refs_ok = false;
                        self.problem(format!("$ref at #{at}: {e}"));
                    } else if has_nullable {
                        self.warning(format!(
                            "#{at}: `nullable` beside `$ref` is ignored in OAS 3.0 (and by the \
                             generated code); use `allOf: [{{$ref: ...}}]` with `nullable: true`"
                        ));
                    }
                }
                None => {
                    self.refs_ok = false;
                    self.problem(format!("$ref at #{at} is not a string"));
                }
            }
        }
    }

    // ---- inline schemas a generator must name --------------------------

    /// Other languages' generators give a class to every object with properties and every
    /// union (`oneOf`/`anyOf` of two or more branches). Written inline as a property's value,
    /// an array's items, a map's values, a branch, a parameter's schema or a body's schema,
    /// such a schema gets a name made up from its first user (every category's `_embedded`
    /// became `SipIncomingLeadEmbedded`), so each must be a component of its own.
    fn check_inline_names(&mut self) {
        let mut found = Vec::new();
        let doc = self.doc;
        if let Some(schemas) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, schema) in schemas {
                let ptr = format!("/components/schemas/{}", escape_token(name));
                inline_schemas(schema, &ptr, None, &mut found);
            }
        }
        let holder_schemas = |holder: &Value, ptr: &str, out: &mut Vec<(String, String)>| {
            if let Some(schema) = holder.get("schema") {
                inline_schemas(
                    schema,
                    &format!("{ptr}/schema"),
                    Some("a parameter's schema"),
                    out,
                );
            }
            for (media, m) in holder
                .get("content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                if let Some(schema) = m.get("schema") {
                    let at = format!("{ptr}/content/{}/schema", escape_token(media));
                    inline_schemas(schema, &at, Some("a body's schema"), out);
                }
            }
        };
        for kind in ["parameters", "requestBodies", "responses", "headers"] {
            let at = format!("/components/{kind}");
            for (name, holder) in doc
                .pointer(&at)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                holder_schemas(holder, &format!("{at}/{}", escape_token(name)), &mut found);
            }
        }
        for (path, item) in doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let item_ptr = format!("/paths/{}", escape_token(path));
            let mut params = vec![(item.get("parameters"), format!("{item_ptr}/parameters"))];
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                let op_ptr = format!("{item_ptr}/{method}");
                params.push((op.get("parameters"), format!("{op_ptr}/parameters")));
                if let Some(body) = op.get("requestBody") {
                    holder_schemas(body, &format!("{op_ptr}/requestBody"), &mut found);
                }
                for (status, r) in op
                    .get("responses")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    holder_schemas(
                        r,
                        &format!("{op_ptr}/responses/{}", escape_token(status)),
                        &mut found,
                    );
                }
            }
            for (list, ptr) in params {
                for (i, p) in list
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    holder_schemas(p, &format!("{ptr}/{i}"), &mut found);
                }
            }
        }
        for (ptr, what) in found {
            self.problem(format!(
                "#{ptr}: {what} written inline, which generators name after its first user: \
                 make it a component schema and `$ref` it"
            ));
        }
    }

    // ---- operations ----------------------------------------------------

    fn check_operations(&mut self) {
        let doc = self.doc;
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            self.problem("no `paths` object".into());
            return;
        };
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for (path, item) in paths {
            let Some((item, item_ptr)) =
                self.deref_obj(item, format!("/paths/{}", escape_token(path)))
            else {
                continue;
            };
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                self.operations += 1;
                let op_ptr = format!("{item_ptr}/{method}");
                let route = format!("{} {path}", method.to_uppercase());
                let label = match op.get("operationId").and_then(Value::as_str) {
                    Some(id) if !id.trim().is_empty() => {
                        if let Some(prev) = ids.insert(id.to_string(), route.clone()) {
                            self.problem(format!(
                                "duplicate operationId `{id}`: {prev} and {route}"
                            ));
                        }
                        id.to_string()
                    }
                    _ => {
                        self.problem(format!("{route}: missing operationId"));
                        route.clone()
                    }
                };
                let params = [
                    (item.get("parameters"), format!("{item_ptr}/parameters")),
                    (op.get("parameters"), format!("{op_ptr}/parameters")),
                ];
                for (list, ptr) in params {
                    for (i, p) in list
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        self.check_parameter(&label, p, format!("{ptr}/{i}"), Direction::Request);
                    }
                }
                if let Some(body) = op.get("requestBody") {
                    self.check_body(
                        &format!("{label} request"),
                        body,
                        format!("{op_ptr}/requestBody"),
                        Direction::Request,
                        true,
                    );
                }
                let responses = op.get("responses").and_then(Value::as_object);
                for (status, resp) in responses.into_iter().flatten() {
                    let ptr = format!("{op_ptr}/responses/{}", escape_token(status));
                    // `2XX` ranges count as success too.
                    let success = status.starts_with('2');
                    let rlabel = format!("{label} response {status}");
                    let Some(resolved) =
                        self.check_body(&rlabel, resp, ptr.clone(), Direction::Response, success)
                    else {
                        continue;
                    };
                    let (resp, rptr) = resolved;
                    let headers = resp.get("headers").and_then(Value::as_object);
                    for (h, header) in headers.into_iter().flatten() {
                        let hptr = format!("{rptr}/headers/{}", escape_token(h));
                        self.check_parameter(
                            &format!("{rlabel} header {h}"),
                            header,
                            hptr,
                            Direction::Response,
                        );
                    }
                }
            }
        }
    }

    /// A Request Body or Response object: every media type's examples are
    /// validated; with `require`, each media type must have one. Returns the
    /// resolved object for further checks.
    fn check_body(
        &mut self,
        label: &str,
        body: &'a Value,
        ptr: String,
        dir: Direction,
        require: bool,
    ) -> Option<(&'a Value, String)> {
        let (body, bptr) = self.deref_obj(body, ptr.clone())?;
        let label = via(label, &ptr, &bptr);
        let content = body.get("content").and_then(Value::as_object);
        for (mt, media) in content.into_iter().flatten() {
            let mptr = format!("{bptr}/content/{}", escape_token(mt));
            let mlabel = format!("{label} {mt}");
            let Some(media) = media.as_object() else {
                self.problem(format!("{mlabel}: media type is not an object"));
                continue;
            };
            let present = self.check_media(&mlabel, media, &mptr, dir);
            if require && present == 0 {
                self.problem(format!(
                    "{mlabel}: no example (add `example`, or `examples.<name>.value` / \
                     `examples.<name>.externalValue`; x-known-invalid ones don't count)"
                ));
            }
        }
        Some((body, bptr))
    }

    /// Parameters and headers carry `schema` + `example(s)` like a media
    /// type, or a `content` map.
    fn check_parameter(&mut self, label: &str, p: &'a Value, ptr: String, dir: Direction) {
        let Some((p, pptr)) = self.deref_obj(p, ptr.clone()) else {
            return;
        };
        let Some(obj) = p.as_object() else {
            return;
        };
        let label = match (obj.get("name").and_then(Value::as_str), obj.get("in")) {
            (Some(name), Some(Value::String(loc))) => format!("{label} parameter {name} ({loc})"),
            (Some(name), _) => format!("{label} parameter {name}"),
            _ => label.to_string(),
        };
        let label = via(&label, &ptr, &pptr);
        self.check_media(&label, obj, &pptr, dir);
        let content = obj.get("content").and_then(Value::as_object);
        for (mt, media) in content.into_iter().flatten() {
            if let Some(media) = media.as_object() {
                let mptr = format!("{pptr}/content/{}", escape_token(mt));
                self.check_media(&format!("{label} {mt}"), media, &mptr, dir);
            }
        }
    }

    /// Validates the examples of anything with `schema`/`example`/`examples`;
    /// returns how many (not known-invalid) examples it has.
    fn check_media(
        &mut self,
        label: &str,
        holder: &'a Map<String, Value>,
        ptr: &str,
        dir: Direction,
    ) -> usize {
        // Shared components (responses, parameters) are checked once, so a
        // broken shared example is reported once, not per operation.
        let key = (dir, ptr.to_string());
        if let Some(&present) = self.checked_media.get(&key) {
            return present;
        }
        let present = self.check_media_once(label, holder, ptr, dir);
        self.checked_media.insert(key, present);
        present
    }

    fn check_media_once(
        &mut self,
        label: &str,
        holder: &'a Map<String, Value>,
        ptr: &str,
        dir: Direction,
    ) -> usize {
        let examples = self.collect_examples(label, holder, ptr);
        let schema = holder.get("schema").map(|s| (s, format!("{ptr}/schema")));
        if let Some((s, sptr)) = &schema {
            self.check_schema_examples(s, sptr.clone());
        }
        self.check_examples(label, schema, dir, examples)
    }

    fn collect_examples(
        &mut self,
        label: &str,
        holder: &'a Map<String, Value>,
        ptr: &str,
    ) -> Vec<Example> {
        let mut out = Vec::new();
        if holder.contains_key("example") && holder.contains_key("examples") {
            self.problem(format!(
                "{label}: `example` and `examples` are mutually exclusive"
            ));
        }
        if let Some(v) = holder.get("example") {
            out.push(Example {
                name: None,
                file: None,
                known_invalid: None,
                loaded: Loaded::Json(v.clone()),
            });
        }
        let Some(examples) = holder.get("examples") else {
            return out;
        };
        let Some(examples) = examples.as_object() else {
            self.problem(format!("{label}: `examples` is not a map"));
            return out;
        };
        for (name, ex) in examples {
            let eptr = format!("{ptr}/examples/{}", escape_token(name));
            let Some((ex, _)) = self.deref_obj(ex, eptr) else {
                continue;
            };
            let elabel = format!("{label} example \"{name}\"");
            let known_invalid = match ex.get("x-known-invalid") {
                None => None,
                Some(Value::String(r)) if !r.trim().is_empty() => Some(r.clone()),
                Some(_) => {
                    self.problem(format!(
                        "{elabel}: `x-known-invalid` must be a non-empty reason string"
                    ));
                    Some("(no reason given)".to_string())
                }
            };
            let (file, loaded) = match (ex.get("value"), ex.get("externalValue")) {
                (Some(_), Some(_)) => {
                    self.problem(format!(
                        "{elabel}: `value` and `externalValue` are mutually exclusive"
                    ));
                    continue;
                }
                (Some(v), None) => (None, Loaded::Json(v.clone())),
                (None, Some(Value::String(f))) => match self.load_external(&elabel, f) {
                    Some((file, loaded)) => (Some(file), loaded),
                    None => continue,
                },
                (None, Some(_)) => {
                    self.problem(format!("{elabel}: `externalValue` is not a string"));
                    continue;
                }
                (None, None) => {
                    self.problem(format!("{elabel}: has neither `value` nor `externalValue`"));
                    continue;
                }
            };
            out.push(Example {
                name: Some(name.clone()),
                file,
                known_invalid,
                loaded,
            });
        }
        out
    }

    /// `externalValue` is resolved against the spec file's directory.
    fn load_external(&mut self, elabel: &str, f: &str) -> Option<(String, Loaded)> {
        if f.contains("://") || Path::new(f).is_absolute() {
            self.problem(format!(
                "{elabel}: externalValue `{f}` must be a path relative to the spec's directory"
            ));
            return None;
        }
        let joined = self.dir.join(f);
        let path = fs::canonicalize(&joined).unwrap_or(joined);
        let display = rel(self.root, &path);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.problem(format!(
                    "{elabel}: cannot read external example {display}: {e}"
                ));
                return None;
            }
        };
        self.referenced.insert(path);
        let loaded = match serde_json::from_str(&text) {
            Ok(v) => Loaded::Json(v),
            Err(e) => Loaded::NotJson(e.to_string()),
        };
        Some((display, loaded))
    }

    /// Returns how many examples count toward "has an example".
    fn check_examples(
        &mut self,
        label: &str,
        schema: Option<(&'a Value, String)>,
        dir: Direction,
        examples: Vec<Example>,
    ) -> usize {
        let mut present = 0;
        for ex in examples {
            let mut ctx = match &ex.name {
                Some(n) => format!("{label} example \"{n}\""),
                None => format!("{label} example"),
            };
            if let Some(f) = &ex.file {
                let _ = write!(ctx, " [{f}]");
            }
            if ex.known_invalid.is_none() {
                present += 1;
            }
            let instance = match (&ex.loaded, &ex.known_invalid) {
                (Loaded::NotJson(_), Some(_)) => {
                    self.known_invalid_ok += 1;
                    continue;
                }
                (Loaded::NotJson(e), None) => {
                    self.problem(format!("{ctx}: not JSON: {e}"));
                    continue;
                }
                (Loaded::Json(v), _) => v,
            };
            let Some(errors) = self.validate(schema.as_ref(), dir, instance) else {
                continue;
            };
            match (&ex.known_invalid, errors.is_empty()) {
                (Some(reason), true) => self.problem(format!(
                    "{ctx}: marked x-known-invalid ({reason}) but it is JSON and passes \
                     its schema: drop the mark or tighten the schema"
                )),
                (Some(_), false) => self.known_invalid_ok += 1,
                (None, true) => self.examples_ok += 1,
                (None, false) => {
                    for e in errors {
                        self.problem(format!("{ctx} at {e}"));
                    }
                }
            }
        }
        present
    }

    /// Validation errors as `<instance path>: <message> (schema: ...)`;
    /// `None` when the schema is unusable (already reported).
    fn validate(
        &mut self,
        schema: Option<&(&'a Value, String)>,
        dir: Direction,
        instance: &Value,
    ) -> Option<Vec<String>> {
        if !self.refs_ok {
            return None;
        }
        const ANY: &Value = &Value::Bool(true);
        let (schema, sptr) = schema.map_or((ANY, "<none>"), |(s, p)| (*s, p.as_str()));
        // Media types sharing a `$ref`ed schema share one compiled validator.
        let key_ptr = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r.trim_start_matches('#').to_string(),
            None => sptr.to_string(),
        };
        let key = (dir, key_ptr);
        if !self.validators.contains_key(&key) {
            let built = match self.build_validator(schema, dir) {
                Ok(v) => Some(v),
                Err(Some(e)) => {
                    self.problem(format!("schema at #{sptr}: {e}"));
                    None
                }
                Err(None) => None,
            };
            self.validators.insert(key.clone(), built);
        }
        let validator = self.validators.get(&key)?.as_ref()?;
        let errors = validator
            .iter_errors(instance)
            .map(|e| {
                let path = e.instance_path().as_str();
                let path = if path.is_empty() { "<root>" } else { path };
                format!(
                    "{path}: {} (schema: {})",
                    truncate(&e.to_string()),
                    e.schema_path()
                )
            })
            .collect();
        Some(errors)
    }

    /// `Err(None)`: the failure was already reported once for the document.
    fn build_validator(
        &mut self,
        schema: &Value,
        dir: Direction,
    ) -> Result<Validator, Option<String>> {
        let conv = Converter::new(self.doc, dir);
        if !self.defs.contains_key(&dir) {
            let defs = conv.defs();
            if let Err(e) = &defs {
                self.problem(format!("components.schemas: {e}"));
            }
            self.defs.insert(dir, defs);
        }
        let Some(Ok(defs)) = self.defs.get(&dir) else {
            return Err(None);
        };
        let root = conv.root(defs, schema)?;
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .with_format("byte", is_base64)
            .build(&root)
            .map_err(|e| Some(format!("does not compile as JSON Schema: {e}")))
    }

    /// Schema-level `example`s (components and inline schemas, recursively).
    /// Either side of the wire may use a schema, so this is `Neutral`.
    fn check_component_schema_examples(&mut self) {
        let doc = self.doc;
        let schemas = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object);
        for (name, schema) in schemas.into_iter().flatten() {
            self.check_schema_examples(
                schema,
                format!("/components/schemas/{}", escape_token(name)),
            );
        }
    }

    fn check_schema_examples(&mut self, schema: &'a Value, ptr: String) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        // Siblings of `$ref` are ignored by OAS 3.0, and the target is checked
        // where it is defined.
        if obj.contains_key("$ref") || !self.seen_schemas.insert(ptr.clone()) {
            return;
        }
        if let Some(ex) = obj.get("example") {
            let example = Example {
                name: None,
                file: None,
                known_invalid: None,
                loaded: Loaded::Json(ex.clone()),
            };
            self.check_examples(
                &format!("schema #{ptr}"),
                Some((schema, ptr.clone())),
                Direction::Neutral,
                vec![example],
            );
        }
        for key in ["properties", "patternProperties"] {
            for (name, sub) in obj
                .get(key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                self.check_schema_examples(sub, format!("{ptr}/{key}/{}", escape_token(name)));
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for (i, sub) in obj
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.check_schema_examples(sub, format!("{ptr}/{key}/{i}"));
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(sub) = obj.get(key) {
                self.check_schema_examples(sub, format!("{ptr}/{key}"));
            }
        }
    }

    // ---- corpus ---------------------------------------------------------

    /// Every `*.json` file of `dir` (the API's corpus): its wrapper, its
    /// `rests_on` rows, and its body against the operation's response schema.
    fn check_corpus(&mut self, dir: &Path, evidence: Option<&str>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let shown = rel(self.root, &file);
            if file.extension().is_none_or(|e| e != "json") {
                self.problem(format!("corpus {shown}: not a .json file"));
                continue;
            }
            let wrapper = match fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            {
                Ok(v) => v,
                Err(e) => {
                    self.problem(format!("corpus {shown}: cannot read it as JSON: {e}"));
                    continue;
                }
            };
            if let Err(e) = self.check_corpus_file(&wrapper, evidence) {
                self.problem(format!("corpus {shown}: {e}"));
            }
        }
    }

    fn check_corpus_file(&mut self, wrapper: &Value, evidence: Option<&str>) -> Result<(), String> {
        let rests_on = match wrapper.get("rests_on") {
            Some(Value::Array(rows)) if !rows.is_empty() => rows,
            _ => {
                return Err(
                    "no `rests_on`: name the openapi/EVIDENCE.md rows the answer rests on \
                     (a non-empty list of \"<heading>: <field>\")"
                        .into(),
                );
            }
        };
        for row in rests_on {
            let Some(row) = row.as_str() else {
                return Err(format!("`rests_on` entry {row} is not a string"));
            };
            match evidence {
                None => return Err("`rests_on` cannot be checked: no openapi/EVIDENCE.md".into()),
                Some(text) if !evidence_has_row(text, row) => {
                    return Err(format!(
                        "`rests_on` entry \"{row}\" names no row of openapi/EVIDENCE.md \
                         (\"<heading>: <field>\": a table row whose first cell is <field>, under a \
                         heading starting with <heading>)"
                    ));
                }
                Some(_) => {}
            }
        }
        let op_id = wrapper
            .get("operation")
            .and_then(Value::as_str)
            .ok_or("no `operation` (an operationId)")?;
        let status = match wrapper.get("status") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => return Err("no `status`".into()),
        };
        let body = wrapper.get("body").ok_or("no `body`")?;
        let doc = self.doc;
        let mut found = None;
        for (path, item) in doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            for method in METHODS {
                if let Some(op) = item.get(*method)
                    && op.get("operationId").and_then(Value::as_str) == Some(op_id)
                {
                    found = Some((op, format!("/paths/{}/{method}", escape_token(path))));
                }
            }
        }
        let (op, op_ptr) = found.ok_or_else(|| format!("unknown operation `{op_id}`"))?;
        let resp = op
            .pointer(&format!("/responses/{}", escape_token(&status)))
            .ok_or_else(|| format!("`{op_id}` declares no {status} response"))?;
        let rptr = format!("{op_ptr}/responses/{}", escape_token(&status));
        let (resp, rptr) = deref(doc, resp, rptr).map_err(|e| e.to_string())?;
        let (media, media_value) = resp
            .get("content")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .find(|(mt, _)| mt.ends_with("json"))
            .ok_or_else(|| format!("`{op_id}` {status} has no JSON body"))?;
        let schema = media_value
            .get("schema")
            .ok_or_else(|| format!("`{op_id}` {status} {media} has no schema"))?;
        let sptr = format!("{rptr}/content/{}/schema", escape_token(media));
        let errors = self
            .validate(Some(&(schema, sptr)), Direction::Response, body)
            .ok_or("its schema could not be used (reported above)")?;
        if errors.is_empty() {
            self.corpus_ok += 1;
            Ok(())
        } else {
            Err(format!(
                "body does not match `{op_id}` {status} {media}: {}",
                errors.join("; ")
            ))
        }
    }

    /// Follow `$ref`s (reporting failures) to an object.
    fn deref_obj(&mut self, value: &'a Value, ptr: String) -> Option<(&'a Value, String)> {
        match deref(self.doc, value, ptr.clone()) {
            Ok((v, p)) if v.is_object() => Some((v, p)),
            Ok((_, p)) => {
                self.problem(format!("#{p}: expected an object"));
                None
            }
            // Dangling refs are already reported by check_refs.
            Err(_) if !self.refs_ok => None,
            Err(e) => {
                self.problem(format!("#{ptr}: {e}"));
                None
            }
        }
    }
}

/// Whether EVIDENCE.md has the row `"<heading>: <field>"`: a table row whose
/// first cell (without `**` and backticks) is `<field>`, in the section of a
/// `#` heading whose text starts with `<heading>` (then a space, `:` or `(`).
fn evidence_has_row(text: &str, row: &str) -> bool {
    let Some((heading, field)) = row.rsplit_once(": ") else {
        return false;
    };
    let (heading, field) = (heading.trim(), field.trim());
    let clean = |s: &str| s.replace("**", "").replace('`', "").trim().to_string();
    let mut in_section = false;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix('#') {
            let h = h.trim_start_matches('#').trim();
            in_section = h
                .strip_prefix(heading)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':', '(']));
        } else if in_section
            && let Some(cells) = line.trim().strip_prefix('|')
            && let Some(first) = cells.split('|').next()
            && clean(first) == field
        {
            return true;
        }
    }
    false
}

/// Names the shared component a label's object came from, if any.
fn via(label: &str, ptr: &str, resolved: &str) -> String {
    if ptr == resolved {
        label.to_string()
    } else {
        format!("{label} [#{resolved}]")
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// OAS `format: byte` is base64 (RFC 4648, padded).
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Collect every `$ref` in keyword position as (pointer of the holding
/// object, the ref if it is a string, whether `nullable` sits beside it).
fn walk_refs(
    v: &Value,
    ptr: String,
    in_name_map: bool,
    out: &mut Vec<(String, Option<String>, bool)>,
) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if !in_name_map {
                    if k == "$ref" {
                        let nullable = m.get("nullable") == Some(&Value::Bool(true));
                        out.push((ptr.clone(), child.as_str().map(str::to_string), nullable));
                        continue;
                    }
                    if DATA_FIELDS.contains(&k.as_str()) || k.starts_with("x-") {
                        continue;
                    }
                }
                let child_is_map = !in_name_map && NAME_MAPS.contains(&k.as_str());
                walk_refs(
                    child,
                    format!("{ptr}/{}", escape_token(k)),
                    child_is_map,
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                walk_refs(child, format!("{ptr}/{i}"), false, out);
            }
        }
        _ => {}
    }
}

/// What makes a schema a class of its own in other languages' generators: an object with
/// properties, or a union of two or more branches. `None` for a `$ref` or anything else.
fn needs_name(schema: &Value) -> Option<&'static str> {
    let m = schema.as_object()?;
    if m.contains_key("$ref") {
        return None;
    }
    if m.get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty())
    {
        return Some("an object with properties");
    }
    for key in ["oneOf", "anyOf"] {
        if m.get(key)
            .and_then(Value::as_array)
            .is_some_and(|b| b.len() > 1)
        {
            return Some(if key == "oneOf" {
                "a `oneOf` union"
            } else {
                "an `anyOf` union"
            });
        }
    }
    None
}

/// Every schema under `schema` (itself included when `position` says where it sits) that
/// `needs_name`, as (pointer, what and where).
fn inline_schemas(
    schema: &Value,
    ptr: &str,
    position: Option<&str>,
    out: &mut Vec<(String, String)>,
) {
    let Some(m) = schema.as_object() else {
        return;
    };
    if let (Some(position), Some(what)) = (position, needs_name(schema)) {
        out.push((ptr.to_string(), format!("{what} as {position}")));
    }
    for (name, child) in m
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let at = format!("{ptr}/properties/{}", escape_token(name));
        inline_schemas(child, &at, Some("a property's value"), out);
    }
    if let Some(items) = m.get("items") {
        inline_schemas(
            items,
            &format!("{ptr}/items"),
            Some("an array's items"),
            out,
        );
    }
    if let Some(values) = m.get("additionalProperties").filter(|v| v.is_object()) {
        let at = format!("{ptr}/additionalProperties");
        inline_schemas(values, &at, Some("a map's values"), out);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, branch) in m
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let position = format!("a branch of `{key}`");
            inline_schemas(branch, &format!("{ptr}/{key}/{i}"), Some(&position), out);
        }
    }
    if let Some(not) = m.get("not") {
        // A `not` is only ever checked, never given a class.
        inline_schemas(not, &format!("{ptr}/not"), None, out);
    }
}
