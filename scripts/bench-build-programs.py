#!/usr/bin/env python3
"""Benchmark 5 (BENCHMARKS.md), side by side: what a user's program pays to build.

    scripts/bench-build-programs.py [--release] [--only NAME,...] [--out FILE]

Writes small user programs into target/bench-build-programs/ (never committed) and builds each
cold, one after the other, each in an empty target directory of its own that is deleted after
it is measured (dependencies already downloaded by `cargo fetch`, so the network is not timed):

  lead-intake             the crate with its default features (HTTPS: rustls with ring)
  lead-intake-aws-lc      `default-features = false, features = ["rustls-aws-lc"]`
  lead-intake-native-tls  `default-features = false, features = ["native-tls"]`
  reqwest-ring            the same calls written by hand on reqwest + serde, rustls with ring
  reqwest-aws-lc          the same, rustls with aws-lc-rs (reqwest's default provider)
  lead-intake-lean        as `lead-intake`, with the profile the README advises (no debug info
                          for dependencies, line tables for the program)
  openapi-generator       openapi-generator 7.26.0's `-g rust` client of openapi/export/kommo.json
                          (made by scripts/bench-overhead.sh --generate-only), its default features

The lead-intake programs use the crate as committed (`git archive HEAD`, or the commit given with
`--commit`, for a before/after), so a run names the commit it measured. Each program makes the same three calls (list the sources, accept an incoming
lead, read the summary) so that each monomorphises about as much as a small integration.

Printed per program: wall time, CPU time (user + system of cargo and everything it ran; steadier
than wall time on a busy machine), the longest units of cargo's `--timings` report (lead-intake's
own compile and build script, aws-lc-sys, ring, openssl-sys), the binary's size and the target
directory's size. The load average before each build is printed too.
"""
import argparse
import json
import os
import pathlib
import re
import resource
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

LEAD_INTAKE_MAIN = r'''
use lead_intake::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kommo = lead_intake::kommo::Client::builder()
        .subdomain("mycompany")
        .token("long-lived-token")
        .build()?;
    let sources = kommo.list_sources().send().or_empty().await?;
    for source in sources.into_sources() {
        println!("{} {:?}", source.id, source.name);
    }
    let accept = lead_intake::kommo::types::AcceptIncomingLeadRequest::new().with_user_id(1);
    kommo.accept_incoming_lead().uid("uid").body(accept).send().body().await?;
    let summary = kommo.get_incoming_leads_summary().send().body().await?;
    println!("{:?}", summary.total);
    Ok(())
}
'''

REQWEST_MAIN = r'''
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Sources { _embedded: Embedded }
#[derive(Deserialize)]
struct Embedded { sources: Vec<Source> }
#[derive(Deserialize)]
struct Source { id: i64, name: Option<String> }
#[derive(Serialize)]
struct Accept { user_id: i64 }
#[derive(Deserialize)]
struct Accepted { uid: String }
#[derive(Deserialize)]
struct Summary { total: i64 }

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    PROVIDER
    let http = reqwest::Client::builder().build()?;
    let base = "https://mycompany.kommo.com/api/v4";
    let sources: Sources = http.get(format!("{base}/sources")).bearer_auth("long-lived-token")
        .send().await?.error_for_status()?.json().await?;
    for source in sources._embedded.sources {
        println!("{} {:?}", source.id, source.name);
    }
    let accepted: Accepted = http.post(format!("{base}/leads/unsorted/uid/accept"))
        .bearer_auth("long-lived-token").json(&Accept { user_id: 1 })
        .send().await?.error_for_status()?.json().await?;
    println!("{}", accepted.uid);
    let summary: Summary = http.get(format!("{base}/leads/unsorted/summary"))
        .bearer_auth("long-lived-token").send().await?.error_for_status()?.json().await?;
    println!("{}", summary.total);
    Ok(())
}
'''

OPENAPI_GENERATOR_MAIN = r'''
use kommo_openapi::apis::{configuration::Configuration, incoming_leads_api, sources_api};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Configuration::new();
    config.base_path = "https://mycompany.kommo.com/api/v4".into();
    config.bearer_access_token = Some("long-lived-token".into());
    let sources = sources_api::list_sources(&config, None).await?;
    println!("{:?}", sources);
    let accepted = incoming_leads_api::accept_incoming_lead(&config, "uid", None).await?;
    println!("{:?}", accepted);
    let summary = incoming_leads_api::get_incoming_leads_summary(&config, None, None, None, None, None).await?;
    println!("{:?}", summary);
    Ok(())
}
'''

# What the README advises a user's Cargo.toml to set (section "Build cost").
LEAN_PROFILE = """
[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
debug = false
"""

TOKIO = 'tokio = { version = "1.48", features = ["macros", "rt-multi-thread"] }'


def programs(snapshot: pathlib.Path, peer: pathlib.Path):
    li = f'path = "{snapshot}"'
    reqwest = ('reqwest = {{ version = "0.13.4", default-features = false, features = '
               '["json", "query", "{tls}"] }}')
    return {
        "lead-intake": ([f"lead-intake = {{ {li} }}", TOKIO], LEAD_INTAKE_MAIN),
        "lead-intake-lean": ([f"lead-intake = {{ {li} }}", TOKIO], LEAD_INTAKE_MAIN, LEAN_PROFILE),
        "lead-intake-aws-lc": (
            [f'lead-intake = {{ {li}, default-features = false, features = ["rustls-aws-lc"] }}', TOKIO],
            LEAD_INTAKE_MAIN),
        "lead-intake-native-tls": (
            [f'lead-intake = {{ {li}, default-features = false, features = ["native-tls"] }}', TOKIO],
            LEAD_INTAKE_MAIN),
        "reqwest-ring": (
            [reqwest.format(tls="rustls-no-provider"),
             'rustls = { version = "0.23", default-features = false, features = ["std", "ring"] }',
             'serde = { version = "1.0.226", features = ["derive"] }', TOKIO],
            REQWEST_MAIN.replace(
                "PROVIDER",
                "let _ = rustls::crypto::ring::default_provider().install_default();")),
        "reqwest-aws-lc": (
            [reqwest.format(tls="rustls"), 'serde = { version = "1.0.226", features = ["derive"] }', TOKIO],
            REQWEST_MAIN.replace("PROVIDER", "")),
        "openapi-generator": ([f'kommo-openapi = {{ path = "{peer}" }}', TOKIO], OPENAPI_GENERATOR_MAIN),
    }


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def dir_size(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def units(timing_html: pathlib.Path):
    """(name, seconds) of each unit in cargo's --timings report, longest first."""
    text = timing_html.read_text()
    match = re.search(r"const UNIT_DATA = (\[.*?\]);\n", text, re.S)
    if not match:
        return []
    data = json.loads(match.group(1))
    out = []
    for unit in data:
        target = unit.get("target", "").strip()
        name = unit["name"] + (f" {target}" if target else "")
        out.append((name, unit["duration"]))
    return sorted(out, key=lambda u: -u[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--release", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--commit", default="HEAD",
                    help="the commit of lead-intake the lead-intake programs build (e.g. an earlier one, for a before/after)")
    args = ap.parse_args()
    profile = "release" if args.release else "debug"

    work = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "bench-build-programs"
    work.mkdir(parents=True, exist_ok=True)
    commit = run(["git", "rev-parse", "--short", args.commit], cwd=ROOT, capture_output=True,
                 text=True).stdout.strip()
    snapshot = work / f"lead-intake-{commit}"
    if not snapshot.exists():
        archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
        snapshot.mkdir()
        run(["tar", "-x", "-C", str(snapshot)], stdin=archive.stdout)
        archive.wait()
    peer = ROOT / ".tools" / "bench-peer" / "kommo-openapi"
    wanted = [n for n in args.only.split(",") if n]
    table = programs(snapshot, peer)
    if "openapi-generator" in (wanted or table) and not (peer / "Cargo.toml").exists():
        run([str(ROOT / "scripts" / "bench-overhead.sh"), "--generate-only"], cwd=ROOT)

    for name, (deps, main_rs, *profile_toml) in table.items():
        if wanted and name not in wanted:
            continue
        crate = work / name
        shutil.rmtree(crate, ignore_errors=True)
        (crate / "src").mkdir(parents=True)
        (crate / "Cargo.toml").write_text(
            f'[package]\nname = "{name}-program"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n'
            "[workspace]\n\n[dependencies]\n" + "\n".join(deps) + "\n" + "".join(profile_toml))
        (crate / "src" / "main.rs").write_text(main_rs)
        # Start from the crate's lockfile, so both sides build the same versions.
        shutil.copy(ROOT / "Cargo.lock", crate / "Cargo.lock")
        run(["cargo", "fetch", "-q"], cwd=crate)
        target = crate / "target"
        shutil.rmtree(target, ignore_errors=True)
        env = dict(os.environ, CARGO_TARGET_DIR=str(target), CARGO_INCREMENTAL="0")
        cmd = ["cargo", "build", "-q", "--timings"] + (["--release"] if args.release else [])
        load = os.getloadavg()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        run(cmd, cwd=crate, env=env)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        binary = target / profile / f"{name}-program"
        report = units(next((crate / "target" / "cargo-timings").glob("cargo-timing.html")))
        row = {
            "program": name, "profile": profile, "commit": commit,
            "load_before": [round(x, 2) for x in load],
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "binary_mb": round(binary.stat().st_size / 1e6, 1),
            "target_mb": round(dir_size(target) / 1e6),
            "longest_units": [(n, round(d, 1)) for n, d in report[:6]],
            "lead_intake_units": [(n, round(d, 1)) for n, d in report
                                  if n == "lead-intake" or n.startswith("lead-intake ")],
            "tls_units": [(n, round(d, 1)) for n, d in report
                          if re.match(r"(aws-lc-sys|aws-lc-rs|ring|openssl-sys|openssl|native-tls)( |$)", n)],
            "units_cpu_s": round(sum(d for _, d in report), 1),
            "units": [(n, round(d, 1)) for n, d in report],
        }
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
