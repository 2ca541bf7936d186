//! `cargo xtask export`: one self-contained document per API, in JSON and YAML, for other
//! languages' generators, written to [`EXPORT_DIR`] (checked in).
//!
//! The export is the hand-written spec (not build.rs's copy adapted for progenitor) with every
//! `externalValue` example inlined as `value`, so a tool needs no other file. Keys keep the
//! hand-written order (and each example file's order), so the output is byte-identical on every
//! run and a diff of the export reads like a diff of the spec.
//!
//! An example marked `x-known-invalid` (a vendor example kept verbatim although it is broken) is
//! moved out of `examples` into the media type's `x-known-invalid-examples`: linters validate
//! every entry of `examples` against its schema, and those are wrong on purpose.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::ordered::Node;

/// Where the exported documents live, relative to the workspace root.
pub const EXPORT_DIR: &str = "openapi/export";
/// Where known-invalid examples go, beside `examples`.
pub const KNOWN_INVALID_KEY: &str = "x-known-invalid-examples";
/// Fixed fields holding instance data, not OpenAPI objects.
const DATA_FIELDS: &[&str] = &["example", "default", "enum", "value"];
/// Fields whose values map user-chosen names to objects: a child named `default` or `value`
/// there is a name, not a keyword (`examples` is handled on its own).
const NAME_MAPS: &[&str] = &[
    "paths",
    "schemas",
    "responses",
    "parameters",
    "requestBodies",
    "headers",
    "securitySchemes",
    "links",
    "callbacks",
    "content",
    "properties",
    "encoding",
    "variables",
    "scopes",
    "mapping",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    Fields,
    Names,
    ExampleNames,
}

pub fn main(args: &[String]) -> ExitCode {
    let mut root = crate::workspace_root();
    let mut check = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--root" => match it.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage_error("--root needs a directory"),
            },
            other => match other.strip_prefix("--root=") {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage_error(&format!("unexpected argument `{other}`")),
            },
        }
    }
    let files = match render(&root) {
        Ok(files) => files,
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!("export: {} problem(s); nothing written", problems.len());
            return ExitCode::from(1);
        }
    };
    if check {
        let stale = stale(&root, &files);
        if stale.is_empty() {
            println!(
                "export: {} files in {EXPORT_DIR} are up to date",
                files.len()
            );
            return ExitCode::SUCCESS;
        }
        for s in &stale {
            eprintln!("error: {s}");
        }
        eprintln!("export: {EXPORT_DIR} is stale: run `cargo xtask export` and commit the result");
        return ExitCode::from(1);
    }
    let dir = root.join(EXPORT_DIR);
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    for extra in extra_files(&root, &files) {
        if let Err(e) = fs::remove_file(root.join(&extra)) {
            eprintln!("error: cannot remove {extra}: {e}");
            return ExitCode::from(1);
        }
        println!("removed {extra}");
    }
    for file in &files {
        let path = root.join(&file.path);
        if fs::read(&path).is_ok_and(|old| old == file.bytes) {
            println!("unchanged {}", file.path);
            continue;
        }
        if let Err(e) = fs::write(&path, &file.bytes) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
        println!("wrote {}", file.path);
    }
    ExitCode::SUCCESS
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\nusage: cargo xtask export [--check] [--root DIR]");
    ExitCode::from(2)
}

/// One file of the export: its path relative to the root, and its exact bytes.
pub struct File {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Every exported file, in a fixed order, or every problem found.
pub fn render(root: &Path) -> Result<Vec<File>, Vec<String>> {
    let api_dir = root.join("openapi");
    let specs = crate::validate::list_specs(&api_dir)
        .map_err(|e| vec![format!("cannot list {}: {e}", api_dir.display())])?;
    if specs.is_empty() {
        return Err(vec![format!("no *.yaml specs in {}", api_dir.display())]);
    }
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for spec in &specs {
        let stem = spec
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shown = format!(
            "openapi/{}",
            spec.file_name().unwrap_or_default().to_string_lossy()
        );
        match export_one(spec, &shown) {
            Ok(doc) => {
                let json = serde_json::to_string_pretty(&doc)
                    .map_err(|e| format!("{shown}: cannot write JSON: {e}"));
                let yaml = serde_norway::to_string(&doc)
                    .map_err(|e| format!("{shown}: cannot write YAML: {e}"));
                match (json, yaml) {
                    (Ok(json), Ok(yaml)) => {
                        files.push(File {
                            path: format!("{EXPORT_DIR}/{stem}.json"),
                            bytes: format!("{json}\n").into_bytes(),
                        });
                        let header = format!(
                            "# Generated by `cargo xtask export` from {shown} and its examples. \
                             Do not edit.\n"
                        );
                        files.push(File {
                            path: format!("{EXPORT_DIR}/{stem}.yaml"),
                            bytes: format!("{header}{yaml}").into_bytes(),
                        });
                    }
                    (json, yaml) => problems.extend(json.err().into_iter().chain(yaml.err())),
                }
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

/// Differences between the rendered files and the export folder, one line each.
pub fn stale(root: &Path, files: &[File]) -> Vec<String> {
    let mut out = Vec::new();
    for file in files {
        match fs::read(root.join(&file.path)) {
            Ok(old) if old == file.bytes => {}
            Ok(old) => {
                let line = first_difference(&old, &file.bytes);
                out.push(format!(
                    "{} differs from the spec (first at line {line})",
                    file.path
                ));
            }
            Err(e) => out.push(format!("{} is missing: {e}", file.path)),
        }
    }
    for extra in extra_files(root, files) {
        out.push(format!("{extra} is not exported from any spec (remove it)"));
    }
    out
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    1 + a[..at].iter().filter(|&&c| c == b'\n').count()
}

/// `*.json`/`*.yaml` files in the export folder that no spec produces (e.g. a removed spec).
fn extra_files(root: &Path, files: &[File]) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root.join(EXPORT_DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let exported = name.ends_with(".json") || name.ends_with(".yaml");
            let path = format!("{EXPORT_DIR}/{name}");
            (exported && !files.iter().any(|f| f.path == path)).then_some(path)
        })
        .collect();
    out.sort();
    out
}

fn export_one(spec: &Path, shown: &str) -> Result<Node, Vec<String>> {
    let text = fs::read_to_string(spec).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    let mut doc: Node =
        serde_norway::from_str(&text).map_err(|e| vec![format!("{shown}: invalid YAML: {e}")])?;
    let mut cx = Cx {
        shown,
        dir: spec.parent().unwrap_or(Path::new(".")).to_path_buf(),
        problems: Vec::new(),
    };
    cx.walk(&mut doc, &mut Vec::new(), Keys::Fields);
    // Nothing may still point at a file (an `externalValue` somewhere the walk did not expect).
    doc.each_key("externalValue", &mut |at| {
        cx.problems.push(format!(
            "{shown}: #/{at}: `externalValue` left in the export"
        ));
    });
    // Self-contained: every reference stays inside the document.
    doc.each_ref(&mut |r| {
        if !r.starts_with("#/") {
            cx.problems
                .push(format!("{shown}: `$ref: {r}` points outside the document"));
        }
    });
    if cx.problems.is_empty() {
        Ok(doc)
    } else {
        Err(cx.problems)
    }
}

struct Cx<'a> {
    shown: &'a str,
    dir: PathBuf,
    problems: Vec<String>,
}

impl Cx<'_> {
    /// `trail` is the key path from the root, for messages. `keys` says what this object's keys
    /// are: OpenAPI fields, user-chosen names (of paths, schemas, properties, ...), or the names
    /// of an `examples` map, whose values are Example Objects.
    fn walk(&mut self, node: &mut Node, trail: &mut Vec<String>, keys: Keys) {
        match node {
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    trail.push(i.to_string());
                    self.walk(item, trail, Keys::Fields);
                    trail.pop();
                }
            }
            Node::Object(entries) => {
                for (k, v) in entries.iter_mut() {
                    trail.push(k.clone());
                    let child = match keys {
                        Keys::Names => Keys::Fields,
                        Keys::ExampleNames => {
                            if let Node::Object(example) = v {
                                self.inline(example, trail);
                            }
                            Keys::Fields
                        }
                        Keys::Fields
                            if DATA_FIELDS.contains(&k.as_str()) || k.starts_with("x-") =>
                        {
                            trail.pop();
                            continue;
                        }
                        Keys::Fields if k == "examples" => Keys::ExampleNames,
                        Keys::Fields if NAME_MAPS.contains(&k.as_str()) => Keys::Names,
                        Keys::Fields => Keys::Fields,
                    };
                    self.walk(v, trail, child);
                    trail.pop();
                }
                if keys == Keys::Fields {
                    move_known_invalid(entries);
                }
            }
            _ => {}
        }
    }

    /// Replaces `externalValue: <file>` with `value: <the file's JSON>`, in place.
    fn inline(&mut self, entries: &mut [(String, Node)], trail: &[String]) {
        let known_invalid = entries.iter().any(|(k, _)| k == "x-known-invalid");
        let Some(slot) = entries.iter_mut().find(|(k, _)| k == "externalValue") else {
            return;
        };
        let at = format!("{}: #/{}", self.shown, trail.join("/"));
        let Node::String(file) = &slot.1 else {
            self.problems
                .push(format!("{at}: `externalValue` is not a string"));
            return;
        };
        if file.contains("://") || Path::new(file).is_absolute() {
            self.problems.push(format!(
                "{at}: externalValue `{file}` must be a path relative to the spec's directory"
            ));
            return;
        }
        let text = match fs::read_to_string(self.dir.join(file)) {
            Ok(t) => t,
            Err(e) => {
                self.problems
                    .push(format!("{at}: cannot read external example {file}: {e}"));
                return;
            }
        };
        let value = match serde_json::from_str::<Node>(&text) {
            Ok(v) => v,
            // Kept verbatim, as the text it is: it moves to `x-known-invalid-examples`.
            Err(_) if known_invalid => Node::String(text),
            Err(e) => {
                self.problems
                    .push(format!("{at}: external example {file} is not JSON: {e}"));
                return;
            }
        };
        *slot = ("value".to_string(), value);
    }
}

/// Moves `x-known-invalid` entries of this object's `examples` map to a sibling
/// `x-known-invalid-examples` map (dropping `examples` if nothing else is left).
fn move_known_invalid(entries: &mut Vec<(String, Node)>) {
    let Some(pos) = entries.iter().position(|(k, _)| k == "examples") else {
        return;
    };
    let Node::Object(examples) = &mut entries[pos].1 else {
        return;
    };
    let (invalid, valid): (Vec<_>, Vec<_>) = std::mem::take(examples)
        .into_iter()
        .partition(|(_, ex)| ex.get("x-known-invalid").is_some());
    *examples = valid;
    if invalid.is_empty() {
        return;
    }
    let keep_examples = !examples.is_empty();
    let slot = (KNOWN_INVALID_KEY.to_string(), Node::Object(invalid));
    if keep_examples {
        entries.insert(pos + 1, slot);
    } else {
        entries[pos] = slot;
    }
}
