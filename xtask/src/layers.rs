//! `cargo xtask layers`: the library's top-level modules depend downwards only.
//!
//! Reads `src/**/*.rs` (not `src/bin/`, and not `src/fuzzing.rs`, the fuzz target's body, which
//! may use anything) and builds the graph of `crate::x` references between top-level modules:
//! `src/x.rs` and everything under `src/x/` are the module `x`; `src/lib.rs` is `prelude`, the
//! top. Every `crate::x` in the text counts, in code and in comments alike: an intra-doc link
//! breaks when its target moves, as a `use` does. `crate::{a, b::C}` counts `a` and `b`, and a
//! name that `lib.rs` re-exports (`pub use config::ConfigError;`) counts as its module. `super::`
//! stays inside a module and is not counted.
//!
//! With no cycle it prints the modules in layer order (a module's layer is one above the highest
//! of the modules it uses) and exits 0; otherwise it names each cycle, with the file and line of
//! every reference on it, and exits 1.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The node `src/lib.rs` stands for.
const TOP: &str = "prelude";
/// Modules left out of the graph.
const IGNORED: &[&str] = &["fuzzing"];

pub fn main(args: &[String]) -> ExitCode {
    let mut root = crate::workspace_root();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--root" => match it.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => {
                    eprintln!("error: --root needs a directory");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!(
                    "error: unknown option `{other}` (usage: cargo xtask layers [--root DIR])"
                );
                return ExitCode::from(2);
            }
        }
    }
    let graph = match Graph::read(&root.join("src")) {
        Ok(graph) => graph,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for note in &graph.notes {
        println!("note: {note}");
    }
    let cycles = graph.cycles();
    if cycles.is_empty() {
        print!("{}", graph.layers());
        println!(
            "ok: no import cycle among the {} modules of src/",
            graph.nodes.len()
        );
        return ExitCode::SUCCESS;
    }
    for (members, cycle) in &cycles {
        eprintln!(
            "error: {} modules use each other in a circle: {}",
            members.len(),
            members.join(", ")
        );
        eprintln!("error: import cycle: {}", cycle.join(" -> "));
        for pair in cycle.windows(2) {
            let (from, to) = (&pair[0], &pair[1]);
            if let Some(at) = graph.edges.get(from).and_then(|e| e.get(to)) {
                eprintln!("  {from} uses {to} at {at}");
            }
        }
    }
    eprintln!(
        "{} group(s) of modules in a cycle: a module must not use a module that uses it, directly or not",
        cycles.len()
    );
    ExitCode::FAILURE
}

/// The modules and, for each, the modules it uses with the first place it does.
struct Graph {
    nodes: BTreeSet<String>,
    edges: BTreeMap<String, BTreeMap<String, String>>,
    notes: Vec<String>,
}

impl Graph {
    fn read(src: &Path) -> Result<Self, String> {
        let lib = src.join("lib.rs");
        let lib_text =
            fs::read_to_string(&lib).map_err(|e| format!("cannot read {}: {e}", lib.display()))?;
        let mut files = Vec::new();
        let mut nodes = BTreeSet::from([TOP.to_string()]);
        let entries =
            fs::read_dir(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for path in entries {
            let Some(stem) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if path.is_dir() {
                if stem == "bin" || IGNORED.contains(&stem.as_str()) {
                    continue;
                }
                let mut found = Vec::new();
                rust_files(&path, &mut found)?;
                if !found.is_empty() {
                    nodes.insert(stem.clone());
                    files.extend(found.into_iter().map(|f| (stem.clone(), f)));
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && stem != "lib"
                && stem != "main"
                && !IGNORED.contains(&stem.as_str())
            {
                nodes.insert(stem.clone());
                files.push((stem, path));
            }
        }
        files.push((TOP.to_string(), lib));
        let aliases = reexports(&lib_text, &nodes);
        let mut graph = Graph {
            nodes,
            edges: BTreeMap::new(),
            notes: Vec::new(),
        };
        for (module, path) in files {
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let shown = path
                .strip_prefix(src.parent().unwrap_or(src))
                .unwrap_or(&path);
            for (line, name) in references(&text) {
                let target = if graph.nodes.contains(&name) {
                    name
                } else if let Some(target) = aliases.get(&name) {
                    target.clone()
                } else {
                    if !IGNORED.contains(&name.as_str()) {
                        graph.notes.push(format!(
                            "{}:{line}: `crate::{name}` is not a module or a re-export of lib.rs; not counted",
                            shown.display()
                        ));
                    }
                    continue;
                };
                if target != module && !IGNORED.contains(&target.as_str()) {
                    graph
                        .edges
                        .entry(module.clone())
                        .or_default()
                        .entry(target)
                        .or_insert_with(|| format!("{}:{line}", shown.display()));
                }
            }
        }
        Ok(graph)
    }

    fn uses(&self, module: &str) -> impl Iterator<Item = &String> {
        self.edges.get(module).into_iter().flat_map(|e| e.keys())
    }

    /// Each strongly connected component of more than one module, with the shortest cycle
    /// through its first module (repeated at the end).
    fn cycles(&self) -> Vec<(Vec<String>, Vec<String>)> {
        let mut cycles = Vec::new();
        for component in self.components() {
            if component.len() < 2 {
                continue;
            }
            let start = &component[0];
            // The shortest way from `start` back to itself inside the component.
            let mut previous: BTreeMap<&String, &String> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            'search: while let Some(at) = queue.pop_front() {
                for next in self.uses(at).filter(|n| component.contains(n)) {
                    if next == start {
                        // start -> ... -> at, read backwards from `at`, then back to start.
                        let mut cycle = vec![at.clone()];
                        let mut back = at;
                        while back != start {
                            back = previous[back];
                            cycle.push(back.clone());
                        }
                        cycle.reverse();
                        cycle.push(start.clone());
                        cycles.push((component.clone(), cycle));
                        break 'search;
                    }
                    if !previous.contains_key(next) && next != start {
                        previous.insert(next, at);
                        queue.push_back(next);
                    }
                }
            }
        }
        cycles
    }

    /// Tarjan's strongly connected components, each sorted by name.
    fn components(&self) -> Vec<Vec<String>> {
        struct State<'a> {
            index: BTreeMap<&'a String, usize>,
            low: BTreeMap<&'a String, usize>,
            stack: Vec<&'a String>,
            on_stack: BTreeSet<&'a String>,
            out: Vec<Vec<String>>,
        }
        fn visit<'a>(graph: &'a Graph, node: &'a String, s: &mut State<'a>) {
            let n = s.index.len();
            s.index.insert(node, n);
            s.low.insert(node, n);
            s.stack.push(node);
            s.on_stack.insert(node);
            for next in graph.uses(node) {
                let Some(next) = graph.nodes.get(next) else {
                    continue;
                };
                if !s.index.contains_key(next) {
                    visit(graph, next, s);
                    let low = s.low[node].min(s.low[next]);
                    s.low.insert(node, low);
                } else if s.on_stack.contains(next) {
                    let low = s.low[node].min(s.index[next]);
                    s.low.insert(node, low);
                }
            }
            if s.low[node] == s.index[node] {
                let mut component = Vec::new();
                while let Some(top) = s.stack.pop() {
                    s.on_stack.remove(top);
                    component.push(top.clone());
                    if top == node {
                        break;
                    }
                }
                component.sort();
                s.out.push(component);
            }
        }
        let mut state = State {
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for node in &self.nodes {
            if !state.index.contains_key(node) {
                visit(self, node, &mut state);
            }
        }
        state.out
    }

    /// The modules by layer, bottom first (call only without cycles).
    fn layers(&self) -> String {
        let mut layer: BTreeMap<&String, usize> = BTreeMap::new();
        // Tarjan's order puts every module after the modules it uses.
        for component in self.components() {
            for name in &component {
                let node = self.nodes.get(name).expect("components hold nodes");
                let level = self
                    .uses(node)
                    .filter_map(|u| layer.get(u))
                    .map(|l| l + 1)
                    .max()
                    .unwrap_or(0);
                layer.insert(node, level);
            }
        }
        let width = self.nodes.iter().map(String::len).max().unwrap_or(0);
        let mut out = String::from(
            "layers of src/, bottom first (each module uses only modules below it):\n",
        );
        let top = layer.values().copied().max().unwrap_or(0);
        for level in 0..=top {
            for (node, _) in layer.iter().filter(|(_, l)| **l == level) {
                let uses: Vec<&str> = self.uses(node).map(String::as_str).collect();
                let uses = if uses.is_empty() {
                    "(nothing)".to_string()
                } else {
                    uses.join(", ")
                };
                out.push_str(&format!("  {level:>2}  {node:<width$}  uses {uses}\n"));
            }
        }
        out
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The names `lib.rs` re-exports from its modules (`pub use config::ConfigError;`,
/// `pub use secret::{Secret, Other as Alias};`), each with its module.
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(at) = statement.find("pub use ") else {
            continue;
        };
        let path = statement[at + "pub use ".len()..].trim();
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains(module.trim()) {
            continue;
        }
        let rest = rest.trim().trim_start_matches('{').trim_end_matches('}');
        for item in rest.split(',') {
            let name = match item.split_once(" as ") {
                Some((_, alias)) => alias,
                None => item.rsplit("::").next().unwrap_or(item),
            };
            let name = name.trim();
            if !name.is_empty() && name != "*" && name != "self" {
                out.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// Every `crate::x` in `text` (not `$crate::x`), with its line: `x`, or each first segment of a
/// `crate::{...}` group.
fn references(text: &str) -> Vec<(usize, String)> {
    const KEY: &str = "crate::";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(KEY) {
        let at = from + found;
        from = at + KEY.len();
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let line = text[..at].matches('\n').count() + 1;
        let rest = &text[from..];
        if let Some(group) = rest.strip_prefix('{') {
            for name in group_heads(group) {
                out.push((line, name));
            }
        } else {
            let name = identifier(rest);
            if !name.is_empty() {
                out.push((line, name.to_string()));
            }
        }
    }
    out
}

/// The first segment of each item of a `{a, b::c, d::{e, f}}` group (the text after `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut expecting = true;
    let mut rest = group;
    while let Some(c) = rest.chars().next() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expecting = true,
            c if expecting && depth == 0 && (c.is_alphabetic() || c == '_') => {
                let name = identifier(rest);
                if name != "self" {
                    heads.push(name.to_string());
                }
                expecting = false;
                rest = &rest[name.len()..];
                continue;
            }
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    heads
}

fn identifier(text: &str) -> &str {
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(text.len(), |(i, _)| i);
    &text[..end]
}
