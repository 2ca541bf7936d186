//! Runs the real `xtask layers` binary on small trees in temporary directories, and on the
//! repository.

use std::fs;
use std::path::Path;
use std::process::Command;

struct Run {
    code: Option<i32>,
    out: String,
}

fn layers(root: Option<&Path>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("layers");
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

/// A tree of `src/` files: (path under `src/`, contents).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join("src").join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

const LIB: &str = "mod clock;\nmod error;\nmod kommo;\nmod transport;\nmod fuzzing;\n\
    pub use clock::Now;\n\
    pub mod prelude {\n    pub use crate::error::ApiError;\n    pub use crate::kommo::Client;\n}\n";

/// clock <- transport <- error <- kommo (a file under a directory counts as its module), with
/// a grouped import and a re-export of lib.rs; fuzzing may use anything.
fn layered() -> Vec<(&'static str, &'static str)> {
    vec![
        ("lib.rs", LIB),
        ("clock.rs", "pub struct Now;\n"),
        ("transport.rs", "use crate::Now;\n"),
        (
            "error.rs",
            "use crate::{transport::Send, clock};\n/// See [`crate::error::ApiError`].\n",
        ),
        ("kommo/mod.rs", "mod leads;\nuse super::leads;\n"),
        ("kommo/leads.rs", "use crate::error::ApiError;\n"),
        ("fuzzing.rs", "use crate::kommo;\nuse crate::prelude::*;\n"),
        ("bin/tool.rs", "use crate::whatever;\n"),
    ]
}

#[test]
fn a_tree_without_a_cycle_passes_and_prints_its_layers_bottom_first() {
    let dir = tree(&layered());
    let run = layers(Some(dir.path()));
    assert_eq!(run.code, Some(0), "{}", run.out);
    let lines: Vec<&str> = run.out.lines().collect();
    let at = |module: &str| {
        lines
            .iter()
            .position(|l| l.split_whitespace().nth(1) == Some(module))
            .unwrap_or_else(|| panic!("{module} not listed:\n{}", run.out))
    };
    assert!(at("clock") < at("transport"), "{}", run.out);
    assert!(at("transport") < at("error"), "{}", run.out);
    assert!(at("error") < at("kommo"), "{}", run.out);
    assert!(at("kommo") < at("prelude"), "{}", run.out);
    assert!(run.out.contains("  0  clock"), "{}", run.out);
    assert!(run.out.contains("uses clock, transport"), "{}", run.out);
    assert!(!run.out.contains("fuzzing"), "{}", run.out);
    assert!(
        run.out.contains("ok: no import cycle among the 5 modules"),
        "{}",
        run.out
    );
}

#[test]
fn a_cycle_fails_and_is_named_with_where_each_reference_is() {
    let mut files = layered();
    // The clock, at the bottom, reaches up to kommo through a doc link in a submodule file.
    files.push((
        "clock.rs",
        "pub struct Now;\n\n/// Used by [`crate::kommo::Client`].\n",
    ));
    let dir = tree(&files);
    let run = layers(Some(dir.path()));
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out
            .contains("import cycle: clock -> kommo -> error -> clock"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("clock uses kommo at src/clock.rs:3"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("kommo uses error at src/kommo/leads.rs:1"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("error uses clock at src/error.rs:1"),
        "{}",
        run.out
    );
}

#[test]
fn a_module_that_uses_the_prelude_makes_a_cycle_with_the_top() {
    let mut files = layered();
    files.push((
        "transport.rs",
        "use crate::Now;\nuse crate::prelude::ApiError;\n",
    ));
    let dir = tree(&files);
    let run = layers(Some(dir.path()));
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(run.out.contains("prelude"), "{}", run.out);
    assert!(
        run.out
            .contains("transport uses prelude at src/transport.rs:2"),
        "{}",
        run.out
    );
}

#[test]
fn a_re_exported_name_counts_as_its_module() {
    let mut files = layered();
    // `crate::Now` is the clock's: a cycle clock -> transport -> clock.
    files.push((
        "clock.rs",
        "pub struct Now;\nfn f() { crate::transport::x(); }\n",
    ));
    let dir = tree(&files);
    let run = layers(Some(dir.path()));
    assert_eq!(run.code, Some(1), "{}", run.out);
    assert!(
        run.out
            .contains("import cycle: clock -> transport -> clock"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("transport uses clock at src/transport.rs:1"),
        "{}",
        run.out
    );
}

#[test]
fn the_repository_has_no_cycle() {
    let run = layers(None);
    assert_eq!(
        run.code,
        Some(0),
        "run `cargo xtask layers` and fix the cycle it names:\n{}",
        run.out
    );
}
