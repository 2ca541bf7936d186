//! Issue 24 §1 and §2: `sync_sources` run by several copies at once converges, and deletes only
//! the sources it manages. Four OS processes (this
//! test binary started again with the ignored test [`sync_worker`] selected and
//! [`WORKER_ENV`] set) sync the same desired sources against one fake at the same moment: each
//! builds its client, says it is ready, and waits for a line on stdin, so all list before any
//! adds. The fake handles every request a second late ([`Faults::slow`]), so every worker sees
//! no source and adds them all; Kommo (and the fake) refuses all but the first add of an
//! `external_id` with `NotUnique`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lead_intake::kommo::types::AddSource;
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use lead_intake::sync::{SourceSync, SyncOptions};
use lead_intake_fake::{Config, FakeServer, Faults, Fixtures};

use common::script::{Reply, ScriptServer, http_without_timeouts};

/// Set in a worker's environment: the fake's base URL and token, tab-separated.
const WORKER_ENV: &str = "LEAD_INTAKE_SYNC_WORKER";
const PROCESSES: usize = 4;

fn desired() -> Vec<AddSource> {
    vec![
        AddSource::new("Website chat", "cb-site-chat"),
        AddSource::new("Phone line", "cb-phone").with_pipeline_id(5867030),
        AddSource::new("Landing page form", "cb-landing"),
        AddSource::new("Instagram", "cb-instagram"),
        AddSource::new("Referral partners", "cb-referral"),
    ]
}

/// Every worker deletes the undesired sources it manages: those whose `external_id` starts
/// with `cb-`.
fn options() -> SyncOptions {
    SyncOptions::new()
        .with_delete_undesired(true)
        .managing_prefix("cb-")
}

fn word(outcome: &SourceSync) -> &'static str {
    match outcome {
        SourceSync::Created(_) => "created",
        SourceSync::Updated(_) => "updated",
        SourceSync::Unchanged(_) => "unchanged",
        SourceSync::AlreadyExisted(_) => "already_existed",
        SourceSync::Deleted(_) => "deleted",
        SourceSync::LeftAlone(_) => "left_alone",
        _ => "failed",
    }
}

/// The worker role: runs only when [`four_processes_syncing_at_once_all_complete_each_source_once`]
/// starts this binary as a worker.
#[test]
#[ignore = "the worker process of the race test; it runs with LEAD_INTAKE_SYNC_WORKER set"]
fn sync_worker() {
    let setting = std::env::var(WORKER_ENV).expect("run by the race test with its setting");
    let (base_url, token) = setting.split_once('\t').expect("URL<TAB>token");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let kommo = lead_intake::kommo::Client::builder()
            .base_url(base_url)
            .token(token.to_string())
            .no_rate_limit()
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        println!("READY");
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).unwrap();
        let report = kommo.sync_sources(&desired(), &options()).await.unwrap();
        let outcomes: Vec<(String, &str)> = report
            .sources()
            .iter()
            .map(|s| (s.external_id().to_string(), word(s.outcome())))
            .collect();
        let line = serde_json::json!({
            "complete": report.is_complete(),
            "outcomes": outcomes,
            "report": report.to_string(),
            "failed": report
                .sources()
                .iter()
                .filter(|s| word(s.outcome()) == "failed")
                .map(|s| format!("{:?}", s.outcome()))
                .collect::<Vec<_>>(),
        });
        println!("REPORT {line}");
    });
}

fn start_worker(fake: &FakeServer) -> (Child, BufReader<std::process::ChildStdout>) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([
            "sync_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            WORKER_ENV,
            format!("{}\t{}", fake.base_url(), fake.kommo_token().expose()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the worker starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // Wait for the worker's client: nothing is sent before every worker is ready.
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the worker ended before it was ready"
        );
        // libtest may have written "test sync_worker ... " on the same line.
        if line.trim_end().ends_with("READY") {
            break;
        }
    }
    (child, out)
}

fn report_of(mut child: Child, out: BufReader<std::process::ChildStdout>) -> serde_json::Value {
    // Read to the end: libtest writes its summary after the report.
    let lines: Vec<String> = out.lines().map(Result::unwrap).collect();
    let report = lines
        .iter()
        .find_map(|l| l.split_once("REPORT ").map(|(_, r)| r.to_string()))
        .expect("the worker reports");
    assert!(child.wait().unwrap().success(), "the worker succeeds");
    serde_json::from_str(&report).unwrap()
}

#[test]
fn four_processes_syncing_at_once_all_complete_each_source_once() {
    // Every request is handled a second after it arrives: a worker's add arrives after its
    // list's answer, so it is handled at least a second after every list that arrived within
    // a second of that list: all four workers read the sources before any add is handled.
    let fake = FakeServer::start(
        Config::default()
            .fixtures(
                Fixtures::empty()
                    .source(serde_json::json!({"name": "Retired bot", "external_id": "cb-retired"}))
                    .source(serde_json::json!({"name": "Old form", "external_id": "cb-old-form"}))
                    .source(serde_json::json!({"name": "Made by hand", "external_id": "manual-1"})),
            )
            .faults(Faults::none().slow(1.0, Duration::from_secs(1))),
    )
    .unwrap();
    let mut workers: Vec<_> = (0..PROCESSES).map(|_| start_worker(&fake)).collect();
    for (child, _) in &mut workers {
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }
    let reports: Vec<serde_json::Value> = workers
        .into_iter()
        .map(|(child, out)| report_of(child, out))
        .collect();

    for report in &reports {
        assert_eq!(report["complete"], true, "an incomplete report: {report}");
    }
    // Each desired source exists once, as desired.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sources = runtime.block_on(async {
        lead_intake::kommo::Client::builder()
            .base_url(&fake.base_url())
            .token(fake.kommo_token())
            .no_rate_limit()
            .build()
            .unwrap()
            .list_sources()
            .send()
            .body()
            .await
            .unwrap()
            .into_sources()
            .into_vec()
    });
    let mut listed: Vec<String> = sources
        .iter()
        .filter_map(|s| s.external_id.as_ref().map(|e| e.to_string()))
        .collect();
    listed.sort();
    let mut wanted: Vec<String> = desired().into_iter().map(|s| s.external_id).collect();
    let mut expected = wanted.clone();
    expected.push("manual-1".into());
    expected.sort();
    wanted.sort();
    assert_eq!(
        listed, expected,
        "each desired source exists once, the managed undesired ones are gone, the other is kept"
    );
    // Each undesired source is deleted for every worker (by it or by another at the same
    // time); the unmanaged one is left alone by all.
    for (external_id, expected) in [
        ("cb-retired", "deleted"),
        ("cb-old-form", "deleted"),
        ("manual-1", "left_alone"),
    ] {
        for report in &reports {
            let words: Vec<&str> = report["outcomes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o[0] == external_id)
                .map(|o| o[1].as_str().unwrap())
                .collect();
            assert_eq!(words, [expected], "{external_id}: {report}");
        }
    }
    // One worker created each source; the others found it created by another worker.
    for external_id in &wanted {
        let words: Vec<&str> = reports
            .iter()
            .flat_map(|r| r["outcomes"].as_array().unwrap())
            .filter(|o| o[0] == external_id.as_str())
            .map(|o| o[1].as_str().unwrap())
            .collect();
        assert_eq!(words.len(), PROCESSES, "{external_id}: {words:?}");
        assert_eq!(
            words.iter().filter(|w| **w == "created").count(),
            1,
            "{external_id}: {words:?}"
        );
        assert!(
            words
                .iter()
                .all(|w| matches!(*w, "created" | "already_existed" | "unchanged")),
            "{external_id}: {words:?}"
        );
    }
    // The race happened: some worker's adds were refused as duplicates and settled.
    assert!(
        reports
            .iter()
            .any(|r| r["report"].as_str().unwrap().contains("already existed")),
        "no worker met another's source: {reports:?}"
    );
}

fn sources_page(sources: serde_json::Value) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"_total_items": 1, "_embedded": {"sources": sources}}),
    )
    .header("content-type", "application/hal+json")
}

/// The loser of a race whose winner created the source with other values makes it as it
/// desires: the duplicate is read again and updated, one list, one add, one list, one update.
#[tokio::test(start_paused = true)]
async fn a_source_another_worker_created_differently_is_read_again_and_updated() {
    let theirs = serde_json::json!({"id": 17619939, "name": "Phone", "pipeline_id": 1,
        "external_id": "cb-phone", "services": [], "default": false, "origin_code": null});
    let mut ours = theirs.clone();
    ours["name"] = "Phone line".into();
    ours["pipeline_id"] = 5867030.into();
    let server = ScriptServer::sequence(vec![
        Reply::status(204),
        Reply::json(
            400,
            serde_json::json!({"validation-errors": [{"request_id": "0", "errors": [{"code": "NotUnique",
                "path": "external_id", "detail": "A source with the external_id \"cb-phone\" already exists."}]}],
                "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400,
                "detail": "Request validation failed"}),
        )
        .header("content-type", "application/problem+json"),
        sources_page(serde_json::json!([theirs])),
        sources_page(serde_json::json!([ours])),
    ])
    .await;
    let kommo = lead_intake::kommo::Client::builder()
        .base_url(&server.base_url)
        .token("long-lived-token")
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();

    let desired = [AddSource::new("Phone line", "cb-phone").with_pipeline_id(5867030)];
    let report = kommo
        .sync_sources(&desired, &SyncOptions::new())
        .await
        .unwrap();

    assert!(report.is_complete(), "{report:?}");
    let SourceSync::AlreadyExisted(source) = report.sources()[0].outcome() else {
        panic!("{report:?}")
    };
    assert_eq!(
        (source.name.as_deref(), source.pipeline_id),
        (Some("Phone line"), Some(5867030))
    );
    assert_eq!(
        report.to_string(),
        "0 created, 0 updated, 0 unchanged, 0 deleted, 0 failed, 1 already existed (created by another worker)"
    );
    let sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        sent,
        [
            "GET /api/v4/sources",
            "POST /api/v4/sources",
            "GET /api/v4/sources",
            "PATCH /api/v4/sources"
        ]
    );
    assert_eq!(
        server.requests()[3].json(),
        serde_json::json!([{"id": 17619939, "name": "Phone line", "pipeline_id": 5867030}])
    );
}
