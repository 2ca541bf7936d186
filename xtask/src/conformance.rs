//! `cargo xtask conformance`: the exported documents (`openapi/export/`) checked by the tools other
//! languages use, at pinned versions, and the Rust client checked against an independent server.
//!
//! 1. installs the tools (`scripts/install-conformance-tools.sh`, idempotent);
//! 2. `export --check`;
//! 3. linters: openapi-spec-validator, Redocly CLI (`redocly.yaml`: `recommended`, example
//!    mismatches as errors, telemetry off), Spectral (`.spectral.yaml`: `spectral:oas`); zero
//!    errors, and zero warnings except those listed with their reason in
//!    `.redocly.lint-ignore.yaml`;
//! 4. generators: openapi-generator (`python`, `typescript-fetch`, `go`), openapi-python-client,
//!    openapi-typescript; each output must install and import, or compile; then each client
//!    (openapi-typescript's types through openapi-fetch) decodes every answer of
//!    `openapi/examples/` and `openapi/corpus/` and writes it back, with nothing raised or lost
//!    (`crate::decode`);
//! 5. Prism (`prism mock`) serving each exported document, with `tests/prism_contract.rs`
//!    calling every operation through it; then a negative control: a copy of the spec with one
//!    parameter renamed must make that test fail.
//!
//! Everything generated goes to `$CARGO_TARGET_DIR/conformance/` (default `target/`). Prints a
//! table (tool, version, result) and exits non-zero if any row failed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::export;

/// The APIs, by spec stem.
pub(crate) const APIS: &[&str] = &["kommo", "closebot"];
/// openapi-generator targets, each with the additional properties and other arguments the
/// CONTRIBUTING.md's recipe gives it.
const GENERATORS: &[(&str, &str, &[&str])] = &[
    // Without the option its models keep only declared fields and drop the rest when they decode;
    // with it they keep them in `additional_properties` and write them back.
    (
        "python",
        "disallowAdditionalPropertiesIfNotPresent=false",
        &[],
    ),
    // typescript-fetch's runtime-check helpers cannot take a oneOf whose branches are maps
    // (WidgetSettingValue: string | users map | users_lp map): it calls `instanceOfany`, which it
    // never defines. Without them the JSON is cast to the interfaces, so they must name the wire's
    // keys: original property names, and `default` kept as it is (a legal property name in
    // TypeScript, which the generator would rename `_default`).
    (
        "typescript-fetch",
        "withoutRuntimeChecks=true,modelPropertyNaming=original",
        &["--reserved-words-mappings", "default=default"],
    ),
    // The option gives models without `additionalProperties` an `AdditionalProperties` map
    // instead of a decoder that refuses unknown fields.
    ("go", "disallowAdditionalPropertiesIfNotPresent=false", &[]),
];

/// openapi-typescript's options in the CONTRIBUTING.md's recipe: every object open, as the wire's
/// are (real answers carry fields the specs do not declare).
const OPENAPI_TYPESCRIPT_ARGS: &[&str] = &["--additional-properties"];

pub fn main(args: &[String]) -> ExitCode {
    let mut install = true;
    let mut decode_only = false;
    for arg in args {
        match arg.as_str() {
            "--skip-install" => install = false,
            "--decode-only" => decode_only = true,
            other => {
                eprintln!(
                    "error: unexpected argument `{other}`\nusage: cargo xtask conformance [--skip-install] [--decode-only]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let root = crate::workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let cx = Cx {
        out: target.join("conformance"),
        tools: root.join(".tools"),
        root,
    };
    if let Err(e) = fs::create_dir_all(&cx.out) {
        eprintln!("error: cannot create {}: {e}", cx.out.display());
        return ExitCode::from(1);
    }

    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut step = |tool: &str, version: &dyn Fn(&Cx) -> String, f: &dyn Fn(&Cx) -> Outcome| {
        eprintln!("== {tool}");
        let t = Instant::now();
        let result = f(&cx);
        let secs = t.elapsed().as_secs_f64();
        match &result {
            Ok(detail) => eprintln!("   pass ({secs:.1} s): {detail}"),
            Err(why) => eprintln!("   FAIL ({secs:.1} s): {why}"),
        }
        rows.push(Row {
            tool: tool.to_string(),
            version: version(&cx),
            result,
            secs,
        });
    };

    if decode_only {
        // Only the decoding checks, on the clients a full run generated.
        for decoder in crate::decode::DECODERS {
            step(
                &format!("decode: {}", decoder.name),
                &|cx| decoder.version(cx),
                &|cx| crate::decode::run(cx, decoder),
            );
        }
        step(
            "decode: negative control",
            &|cx| cx.py_version("openapi-generator-cli"),
            &crate::decode::negative_control,
        );
        print_table(&rows);
        return if rows.iter().all(|r| r.result.is_ok()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    if install {
        step("install-conformance-tools.sh", &|_| "-".into(), &|cx| {
            cx.run(
                "install",
                Command::new("bash").arg(cx.root.join("scripts/install-conformance-tools.sh")),
            )
            .map(|_| "tools in .tools/ (pinned)".into())
        });
    }
    step("cargo xtask export --check", &|_| "-".into(), &export_check);
    step(
        "openapi-spec-validator",
        &|cx| cx.py_version("openapi-spec-validator"),
        &spec_validator,
    );
    step(
        "redocly lint (recommended)",
        &|cx| cx.npm_version("@redocly/cli"),
        &redocly,
    );
    step(
        "spectral lint (spectral:oas)",
        &|cx| cx.npm_version("@stoplight/spectral-cli"),
        &spectral,
    );
    for (generator, props, extra) in GENERATORS {
        step(
            &format!("openapi-generator {generator}"),
            &|cx| cx.py_version("openapi-generator-cli"),
            &|cx| openapi_generator(cx, generator, props, extra),
        );
    }
    step(
        "openapi-python-client",
        &|cx| cx.py_version("openapi-python-client"),
        &openapi_python_client,
    );
    step(
        "openapi-typescript + tsc --strict",
        &|cx| {
            format!(
                "{} + {}",
                cx.npm_version("openapi-typescript"),
                cx.npm_version("typescript")
            )
        },
        &openapi_typescript,
    );
    for decoder in crate::decode::DECODERS {
        step(
            &format!("decode: {}", decoder.name),
            &|cx| decoder.version(cx),
            &|cx| crate::decode::run(cx, decoder),
        );
    }
    step(
        "decode: negative control",
        &|cx| cx.py_version("openapi-generator-cli"),
        &crate::decode::negative_control,
    );
    step(
        "prism mock: Rust client contract",
        &|cx| cx.npm_version("@stoplight/prism-cli"),
        &prism_contract,
    );
    step(
        "prism mock: negative control",
        &|cx| cx.npm_version("@stoplight/prism-cli"),
        &prism_negative_control,
    );

    print_table(&rows);
    let failed = rows.iter().filter(|r| r.result.is_err()).count();
    let total = started.elapsed().as_secs_f64();
    if failed == 0 {
        println!(
            "conformance: all {} checks passed in {total:.0} s",
            rows.len()
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "conformance: {failed} of {} checks FAILED ({total:.0} s); logs in {}",
            rows.len(),
            cx.out.display()
        );
        ExitCode::from(1)
    }
}

pub(crate) type Outcome = Result<String, String>;

struct Row {
    tool: String,
    version: String,
    result: Outcome,
    secs: f64,
}

fn print_table(rows: &[Row]) {
    let result = |r: &Row| match &r.result {
        Ok(d) => format!("pass ({:.0} s): {d}", r.secs),
        Err(e) => format!("FAIL ({:.0} s): {}", r.secs, e.lines().next().unwrap_or("")),
    };
    let w0 = rows.iter().map(|r| r.tool.len()).max().unwrap_or(4).max(4);
    let w1 = rows
        .iter()
        .map(|r| r.version.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!();
    println!("| {:w0$} | {:w1$} | result", "tool", "version");
    println!("|-{}-|-{}-|-------", "-".repeat(w0), "-".repeat(w1));
    for r in rows {
        println!("| {:w0$} | {:w1$} | {}", r.tool, r.version, result(r));
    }
    println!();
}

pub(crate) struct Cx {
    pub(crate) root: PathBuf,
    pub(crate) tools: PathBuf,
    pub(crate) out: PathBuf,
}

impl Cx {
    pub(crate) fn node_bin(&self, name: &str) -> PathBuf {
        self.tools.join("node/node_modules/.bin").join(name)
    }

    pub(crate) fn py_bin(&self, name: &str) -> PathBuf {
        self.tools.join("python/bin").join(name)
    }

    pub(crate) fn export(&self, file: &str) -> PathBuf {
        self.root.join(export::EXPORT_DIR).join(file)
    }

    pub(crate) fn npm_version(&self, package: &str) -> String {
        self.npm_version_in("node", package)
    }

    /// The version of an npm package installed in `.tools/<dir>`.
    pub(crate) fn npm_version_in(&self, dir: &str, package: &str) -> String {
        let manifest = self
            .tools
            .join(dir)
            .join("node_modules")
            .join(package)
            .join("package.json");
        fs::read_to_string(manifest)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["version"].as_str().map(String::from))
            .unwrap_or_else(|| "(not installed)".into())
    }

    pub(crate) fn py_version(&self, package: &str) -> String {
        let out = Command::new(self.py_bin("python"))
            .args([
                "-c",
                "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))",
                package,
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            _ => "(not installed)".into(),
        }
    }

    /// Runs `cmd` with its output in `<out>/logs/<name>.log`; on failure, the log's tail.
    pub(crate) fn run(&self, name: &str, cmd: &mut Command) -> Result<String, String> {
        let logs = self.out.join("logs");
        let _ = fs::create_dir_all(&logs);
        let log = logs.join(format!("{name}.log"));
        let shown = format!("{cmd:?}");
        let output = cmd
            .env("REDOCLY_TELEMETRY", "off")
            .env("SCARF_ANALYTICS", "false")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let _ = fs::write(&log, format!("$ {shown}\n{text}"));
        if output.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "{shown} exited with {}; log {}:\n{}",
                output.status,
                log.display(),
                tail(&text, 40)
            ))
        }
    }

    /// A fresh output folder `<out>/<rel>`.
    pub(crate) fn fresh(&self, rel: &str) -> Result<PathBuf, String> {
        let dir = self.out.join(rel);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(dir)
    }
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---- export and linters -------------------------------------------------------------------------

fn export_check(cx: &Cx) -> Outcome {
    let files = export::render(&cx.root).map_err(|p| p.join("\n"))?;
    let stale = export::stale(&cx.root, &files);
    if stale.is_empty() {
        Ok(format!("{} files up to date", files.len()))
    } else {
        Err(format!(
            "stale: run `cargo xtask export` and commit\n{}",
            stale.join("\n")
        ))
    }
}

fn exported_files() -> Vec<String> {
    APIS.iter()
        .flat_map(|api| [format!("{api}.yaml"), format!("{api}.json")])
        .collect()
}

fn spec_validator(cx: &Cx) -> Outcome {
    let files = exported_files();
    for file in &files {
        cx.run(
            &format!("openapi-spec-validator-{file}"),
            Command::new(cx.py_bin("openapi-spec-validator")).arg(cx.export(file)),
        )?;
    }
    Ok(format!("{} documents valid", files.len()))
}

fn redocly(cx: &Cx) -> Outcome {
    let yamls: Vec<String> = APIS
        .iter()
        .map(|a| format!("{}/{a}.yaml", export::EXPORT_DIR))
        .collect();
    // Exit status 1 means errors; the JSON report (one object per document) says which.
    let out = Command::new(cx.node_bin("redocly"))
        .arg("lint")
        .args(&yamls)
        .arg("--format=json")
        .current_dir(&cx.root)
        .env("REDOCLY_TELEMETRY", "off")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run redocly: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = fs::create_dir_all(cx.out.join("logs"));
    let _ = fs::write(cx.out.join("logs/redocly.json"), text.as_bytes());
    let (mut errors, mut warnings, mut ignored) = (0, 0, 0);
    let mut problems = Vec::new();
    for report in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
        let report = report.map_err(|e| {
            format!(
                "unreadable redocly report ({e}):\n{}{}",
                tail(&text, 20),
                tail(&String::from_utf8_lossy(&out.stderr), 20)
            )
        })?;
        let count = |k: &str| report["totals"][k].as_u64().unwrap_or(0);
        errors += count("errors");
        warnings += count("warnings");
        ignored += count("ignored");
        for p in report["problems"].as_array().into_iter().flatten() {
            let at = p["location"][0]["pointer"].as_str().unwrap_or("?");
            problems.push(format!(
                "{} {}: {} ({at})",
                p["severity"].as_str().unwrap_or("?"),
                p["ruleId"].as_str().unwrap_or("?"),
                p["message"].as_str().unwrap_or("?")
            ));
        }
    }
    let summary = format!(
        "{errors} errors, {warnings} warnings, {ignored} accepted in .redocly.lint-ignore.yaml"
    );
    if errors == 0 && warnings == 0 && out.status.success() {
        Ok(summary)
    } else {
        Err(format!(
            "{summary} (fix each, or list it with its reason in .redocly.lint-ignore.yaml)\n{}",
            problems.join("\n")
        ))
    }
}

fn spectral(cx: &Cx) -> Outcome {
    let yamls: Vec<String> = APIS
        .iter()
        .map(|a| format!("{}/{a}.yaml", export::EXPORT_DIR))
        .collect();
    let report = cx.out.join("logs/spectral.json");
    let _ = fs::create_dir_all(cx.out.join("logs"));
    let _ = fs::remove_file(&report);
    // Exit status 1 means errors; the JSON report lists every result.
    let run = cx.run(
        "spectral",
        Command::new(cx.node_bin("spectral"))
            .arg("lint")
            .args(&yamls)
            .args([
                "--ruleset",
                ".spectral.yaml",
                "--format",
                "json",
                "--output",
            ])
            .arg(&report)
            .current_dir(&cx.root),
    );
    let results: Vec<Value> = fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| match &run {
            Err(e) => e.clone(),
            Ok(_) => format!("no report in {}", report.display()),
        })?;
    // Spectral severities: 0 error, 1 warning, 2 information, 3 hint.
    let by = |s: u64| {
        results
            .iter()
            .filter(|r| r["severity"].as_u64() == Some(s))
            .count()
    };
    let (errors, warnings, infos) = (by(0), by(1), by(2) + by(3));
    let summary = format!("{errors} errors, {warnings} warnings, {infos} hints");
    if errors == 0 && warnings == 0 && run.is_ok() {
        Ok(summary)
    } else {
        let lines: Vec<String> = results
            .iter()
            .map(|r| {
                format!(
                    "{} {}: {} ({})",
                    r["source"].as_str().unwrap_or("?"),
                    r["code"].as_str().unwrap_or("?"),
                    r["message"].as_str().unwrap_or("?"),
                    r["path"]
                        .as_array()
                        .map(|p| p
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join("."))
                        .unwrap_or_default()
                )
            })
            .collect();
        Err(format!("{summary}\n{}", lines.join("\n")))
    }
}

// ---- generators -----------------------------------------------------------------------------

/// openapi-generator's `generator` on the exported `api` into `dir`, with the additional
/// properties `props` and the other arguments `extra`.
pub(crate) fn generate(
    cx: &Cx,
    generator: &str,
    api: &str,
    dir: &Path,
    props: &str,
    extra: &[&str],
) -> Result<String, String> {
    let mut props = props.to_string();
    if generator == "go" {
        props = [format!("packageName={api}"), props]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(",");
    }
    let mut cmd = Command::new(cx.py_bin("openapi-generator-cli"));
    cmd.args(["generate", "-g", generator, "-i"])
        .arg(cx.export(&format!("{api}.yaml")))
        .arg("-o")
        .arg(dir)
        .args(["--package-name", &format!("{api}_client")]);
    if !props.is_empty() {
        cmd.arg(format!("--additional-properties={props}"));
    }
    cmd.args(extra);
    cx.run(&format!("openapi-generator-{generator}-{api}"), &mut cmd)
}

fn openapi_generator(cx: &Cx, generator: &str, props: &str, extra: &[&str]) -> Outcome {
    let base = cx.fresh(&format!("openapi-generator/{generator}"))?;
    let mut built = Vec::new();
    for api in APIS {
        let dir = base.join(api);
        generate(cx, generator, api, &dir, props, extra)?;
        let what = match generator {
            "python" => python_install_and_import(cx, &format!("og-python-{api}"), &dir)?,
            "typescript-fetch" => {
                cx.run(
                    &format!("tsc-typescript-fetch-{api}"),
                    Command::new(cx.node_bin("tsc"))
                        .args(TSC_FLAGS)
                        .args([
                            "--target",
                            "es2020",
                            "--lib",
                            "es2020,dom",
                            "--module",
                            "es2020",
                            "--moduleResolution",
                            "bundler",
                            "index.ts",
                        ])
                        .current_dir(&dir),
                )?;
                "tsc --strict".to_string()
            }
            "go" => go_build(cx, api, &dir)?,
            other => return Err(format!("no build step for {other}")),
        };
        built.push(format!("{api}: {what}"));
    }
    Ok(built.join("; "))
}

const TSC_FLAGS: &[&str] = &["--strict", "--noEmit"];

/// Installs a generated Python package into `.tools/python-clients` (offline: its dependencies
/// are already there) and imports every module of it.
fn python_install_and_import(cx: &Cx, name: &str, dir: &Path) -> Outcome {
    let python = cx.tools.join("python-clients/bin/python");
    cx.run(
        &format!("{name}-install"),
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-index",
                "--no-deps",
                "--no-build-isolation",
                "--force-reinstall",
            ])
            .arg(dir),
    )?;
    // The importable package: the folder beside pyproject.toml holding __init__.py.
    let mut packages: Vec<String> = fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .flatten()
        .filter(|e| e.path().join("__init__.py").is_file() && e.file_name() != "test")
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    packages.sort();
    if packages.is_empty() {
        return Err(format!("no Python package in {}", dir.display()));
    }
    const IMPORT_ALL: &str = "\
import importlib, pkgutil, sys
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    modules = [m.name for m in pkgutil.walk_packages(package.__path__, name + '.')]
    for m in modules:
        importlib.import_module(m)
    print(name, 1 + len(modules))
";
    let out = cx.run(
        &format!("{name}-import"),
        Command::new(&python)
            .args(["-c", IMPORT_ALL])
            .args(&packages)
            .current_dir(&cx.out),
    )?;
    let modules: usize = out
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
        .sum();
    Ok(format!(
        "pip install + import {} ({modules} modules)",
        packages.join(", ")
    ))
}

/// Builds a generated Go client with Debian's Go, offline: its one dependency,
/// gopkg.in/validator.v2, comes from Debian's golang-gopkg-validator.v2-dev.
pub(crate) fn go_build(cx: &Cx, api: &str, dir: &Path) -> Outcome {
    let validator = cx.out.join("go/validator.v2");
    if !validator.join("go.mod").is_file() {
        let source = Path::new("/usr/share/gocode/src/gopkg.in/validator.v2");
        fs::create_dir_all(&validator).map_err(|e| e.to_string())?;
        let entries = fs::read_dir(source).map_err(|e| {
            format!(
                "{}: {e} (scripts/install-conformance-tools.sh installs golang-gopkg-validator.v2-dev)",
                source.display()
            )
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".go") && !name.ends_with("_test.go") {
                fs::copy(entry.path(), validator.join(&name)).map_err(|e| e.to_string())?;
            }
        }
        fs::write(
            validator.join("go.mod"),
            "module gopkg.in/validator.v2\n\ngo 1.19\n",
        )
        .map_err(|e| e.to_string())?;
    }
    // The generated tests need testify, which is not packaged here; `go build` skips them.
    let _ = fs::remove_dir_all(dir.join("test"));
    let go = |args: &[&str], name: &str| {
        let mut cmd = Command::new("go");
        cmd.args(args)
            .current_dir(dir)
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOPATH", cx.out.join("go/path"))
            .env("GOCACHE", cx.out.join("go/cache"));
        cx.run(name, &mut cmd)
    };
    let replace = format!("-replace=gopkg.in/validator.v2={}", validator.display());
    go(&["mod", "edit", &replace], &format!("go-mod-edit-{api}"))?;
    go(&["build", "./..."], &format!("go-build-{api}"))?;
    let version = go(&["version"], "go-version")?;
    Ok(format!(
        "go build ({})",
        version.split_whitespace().nth(2).unwrap_or("go")
    ))
}

fn openapi_python_client(cx: &Cx) -> Outcome {
    let base = cx.fresh("openapi-python-client")?;
    let mut built = Vec::new();
    // It formats its output with ruff, found on PATH.
    let path = std::env::join_paths(std::iter::once(cx.tools.join("python/bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .map_err(|e| e.to_string())?;
    for api in APIS {
        let dir = base.join(api);
        let out = cx.run(
            &format!("openapi-python-client-{api}"),
            Command::new(cx.py_bin("openapi-python-client"))
                .args(["generate", "--path"])
                .arg(cx.export(&format!("{api}.yaml")))
                .arg("--output-path")
                .arg(&dir)
                .env("PATH", &path),
        )?;
        // It reports what it could not generate as warnings and still exits 0.
        if out.contains("Warning") || out.contains("Error") {
            return Err(format!(
                "{api}: openapi-python-client warned:\n{}",
                tail(&out, 40)
            ));
        }
        built.push(python_install_and_import(cx, &format!("opc-{api}"), &dir)?);
    }
    Ok(built.join("; "))
}

fn openapi_typescript(cx: &Cx) -> Outcome {
    let base = cx.fresh("openapi-typescript")?;
    let mut files = Vec::new();
    for api in APIS {
        let file = base.join(format!("{api}.d.ts"));
        cx.run(
            &format!("openapi-typescript-{api}"),
            Command::new(cx.node_bin("openapi-typescript"))
                .arg(cx.export(&format!("{api}.yaml")))
                .args(OPENAPI_TYPESCRIPT_ARGS)
                .arg("-o")
                .arg(&file),
        )?;
        files.push(file);
    }
    cx.run(
        "tsc-openapi-typescript",
        Command::new(cx.node_bin("tsc"))
            .args(TSC_FLAGS)
            .args(&files),
    )?;
    Ok(format!("{} .d.ts files, tsc --strict", files.len()))
}

// ---- Prism ----------------------------------------------------------------------------------

/// A `prism mock` on a loopback port of its own choosing, stopped (by its own process id) when
/// dropped.
struct Prism {
    child: Child,
    url: String,
}

/// What Prism prints once it accepts connections, followed by its URL.
const PRISM_LISTENING: &str = "Prism is listening on ";

impl Prism {
    /// Starts Prism on port 0, so the system picks a free port as Prism binds it (a port picked
    /// beforehand could be taken before Prism binds it), and reads the URL from Prism's own
    /// "listening" line: no polling, and no guessing whose server answers on the port.
    fn start(cx: &Cx, spec: &Path, name: &str) -> Result<Prism, String> {
        let logs = cx.out.join("logs");
        let _ = fs::create_dir_all(&logs);
        let log_path = logs.join(format!("prism-{name}.log"));
        let log = fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut child = Command::new(cx.node_bin("prism"))
            .arg("mock")
            .arg(spec)
            .args(["-h", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot start prism: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut prism = Prism {
            child,
            url: String::new(),
        };
        // The thread copies Prism's output into the log for as long as Prism runs (a full pipe
        // would stop it), and sends the URL of the "listening" line; the channel closes when
        // Prism's output ends.
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = log;
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                let _ = std::io::Write::write_all(&mut log, format!("{line}\n").as_bytes());
                if let Some((_, url)) = line.split_once(PRISM_LISTENING) {
                    let _ = url_tx.send(url.trim().to_string());
                }
            }
        });
        match url_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) if url.starts_with("http://127.0.0.1:") => {
                prism.url = url;
                Ok(prism)
            }
            Ok(url) => Err(format!(
                "prism listens on {url}, not on loopback; log {}",
                log_path.display()
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = prism.child.wait().map_err(|e| e.to_string())?;
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                Err(format!("prism exited with {status}:\n{}", tail(&log, 30)))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "prism did not say it listens within 60 s; log {}",
                log_path.display()
            )),
        }
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cargo test --test prism_contract` with the Prism URLs set: whether it passed, and its
/// whole output (also in the log).
fn contract_test(cx: &Cx, name: &str, env: &[(&str, &str)], filter: &str) -> (bool, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--quiet",
        "--package",
        "lead-intake",
        "--test",
        "prism_contract",
        "--",
        filter,
        "--nocapture",
    ])
    .current_dir(&cx.root)
    .env("RUST_BACKTRACE", "0")
    .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => return (false, format!("cannot run cargo test: {e}")),
    };
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let logs = cx.out.join("logs");
    let _ = fs::create_dir_all(&logs);
    let _ = fs::write(logs.join(format!("{name}.log")), &text);
    (output.status.success(), text)
}

fn prism_contract(cx: &Cx) -> Outcome {
    let kommo = Prism::start(cx, &cx.export("kommo.yaml"), "kommo")?;
    let closebot = Prism::start(cx, &cx.export("closebot.yaml"), "closebot")?;
    let (passed, out) = contract_test(
        cx,
        "prism-contract",
        &[
            ("LEAD_INTAKE_PRISM_KOMMO", &kommo.url),
            ("LEAD_INTAKE_PRISM_CLOSEBOT", &closebot.url),
        ],
        "every_",
    );
    if !passed {
        return Err(format!(
            "tests/prism_contract.rs failed; log {}:\n{}",
            cx.out.join("logs/prism-contract.log").display(),
            failure_lines(&out)
        ));
    }
    // Both tests must have run (not skipped) and every request been judged.
    let requests = out
        .lines()
        .filter(|l| l.starts_with("kommo: ") || l.starts_with("closebot: "))
        .count();
    if !out.contains("2 passed") || requests == 0 {
        return Err(format!(
            "the contract tests did not run:\n{}",
            tail(&out, 30)
        ));
    }
    Ok(format!(
        "{requests} requests, every operation, no 4xx or sl-violations"
    ))
}

/// The contract test must fail against a copy of the Kommo spec whose `limit` parameter is
/// renamed to a required `per_page`: proof that Prism and the test catch a spec the client
/// does not follow.
fn prism_negative_control(cx: &Cx) -> Outcome {
    let text = fs::read_to_string(cx.export("kommo.json")).map_err(|e| e.to_string())?;
    let mut doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let limit = doc
        .pointer_mut("/components/parameters/Limit")
        .and_then(Value::as_object_mut)
        .ok_or("kommo.json has no #/components/parameters/Limit to break")?;
    limit.insert("name".into(), "per_page".into());
    limit.insert("required".into(), true.into());
    let dir = cx.fresh("prism-negative-control")?;
    let broken = dir.join("kommo.json");
    fs::write(
        &broken,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    let prism = Prism::start(cx, &broken, "negative-control")?;
    let (passed, out) = contract_test(
        cx,
        "prism-negative-control",
        &[("LEAD_INTAKE_PRISM_KOMMO", &prism.url)],
        "every_kommo",
    );
    let refused = out
        .lines()
        // Prism refuses with 422, or with the operation's declared 400 when it has one.
        .filter(|l| l.starts_with("kommo: ") && (l.contains(" -> 422") || l.contains(" -> 400")))
        .count();
    if passed {
        Err(format!(
            "the contract test passed against a broken spec:\n{}",
            tail(&out, 20)
        ))
    } else if out.contains("per_page") && refused > 0 {
        Ok(format!(
            "`limit` renamed to a required `per_page`: the test fails as it must \
             ({refused} requests refused)"
        ))
    } else {
        Err(format!(
            "the contract test failed, but not on `per_page`:\n{}",
            failure_lines(&out)
        ))
    }
}

/// The lines of a failed test run that say what failed.
fn failure_lines(out: &str) -> String {
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.contains(" -> ") && !l.starts_with("kommo: ") && !l.starts_with("closebot: ")
                || l.contains("failure(s)")
                || l.contains("error")
                || l.contains("panicked")
        })
        .collect();
    if lines.is_empty() {
        tail(out, 30)
    } else {
        lines.join("\n")
    }
}
