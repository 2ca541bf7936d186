//! Running the fake: embedded (start from anywhere, stop on shutdown or drop, one state per
//! server) and as the standalone `lead-intake-fake` program, which prints where it listens and
//! the credentials, serves both APIs with the options given, and refuses options it does not know.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const PROGRAM: &str = env!("CARGO_BIN_EXE_lead-intake-fake");

/// The running program, killed when dropped.
struct Program(Child);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the program and reads its banner: `(base URL, Kommo token, CloseBot key)`.
fn start(args: &[&str]) -> (Program, String, String, String) {
    let mut child = Command::new(PROGRAM)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the program starts");
    let stdout = child.stdout.take().expect("stdout");
    let program = Program(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut value = |label: &str| {
        let line = lines
            .next()
            .expect("a banner line")
            .expect("readable output");
        line.strip_prefix(label)
            .unwrap_or_else(|| panic!("{line:?} starts with {label:?}"))
            .trim()
            .to_string()
    };
    let base = value("base URL:");
    let token = value("Kommo token:");
    let key = value("CloseBot key:");
    // The last banner line too: the program must not find its stdout closed while it prints.
    value("try:");
    (program, base, token, key)
}

#[tokio::test]
async fn the_program_prints_its_base_url_and_credentials_and_serves_both_apis() {
    let (_program, base, token, key) = start(&[
        "--seed",
        "7",
        "--kommo-token",
        "cli-token",
        "--closebot-key",
        "cli-key",
        "--empty",
    ]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!((token.as_str(), key.as_str()), ("cli-token", "cli-key"));
    let http = reqwest::Client::new();
    let widgets = http
        .get(format!("{base}/api/v4/widgets"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(widgets.status(), 204, "--empty: no widgets");
    let sources = http
        .get(format!("{base}/agency/source"))
        .header("X-CB-KEY", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(sources.status(), 200);
    let wrong = http
        .get(format!("{base}/api/v4/widgets"))
        .bearer_auth("fake-kommo-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401, "only the token given is accepted");
}

#[tokio::test]
async fn the_program_applies_the_fault_options() {
    let (_program, base, token, _) = start(&["--blocked"]);
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v4/sources"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("403 Forbidden"));
}

#[tokio::test]
async fn the_program_applies_the_random_429_lost_answer_and_late_error_options() {
    let http = reqwest::Client::new();
    let (_program, base, token, _) = start(&["--random-429-rate", "1"]);
    let response = http
        .get(format!("{base}/api/v4/sources"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let (_program, base, token, _) = start(&["--lost-answer-rate", "1.0"]);
    let err = http
        .get(format!("{base}/api/v4/sources"))
        .bearer_auth(&token)
        .send()
        .await
        .expect_err("every answer is lost");
    assert!(!err.is_connect(), "connected, then closed: {err:?}");
    let (_program, base, token, _) = start(&["--late-error-rate", "1"]);
    let response = http
        .get(format!("{base}/api/v4/sources"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());
}

#[test]
fn help_succeeds_and_an_unknown_option_fails_with_the_usage() {
    let help = Command::new(PROGRAM).arg("--help").output().unwrap();
    assert!(help.status.success());
    let usage = String::from_utf8_lossy(&help.stdout);
    assert!(usage.contains("--rate-limit N"));
    for option in [
        "--lost-answer-rate F",
        "--random-429-rate F",
        "--late-error-rate F",
    ] {
        assert!(usage.contains(option), "{option}");
    }
    let bad = Command::new(PROGRAM).arg("--colour").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("unknown option \"--colour\""), "{stderr}");
    for option in [
        "--error-rate",
        "--lost-answer-rate",
        "--random-429-rate",
        "--late-error-rate",
    ] {
        let bad = Command::new(PROGRAM).args([option, "2"]).output().unwrap();
        assert_eq!(bad.status.code(), Some(2), "{option} 2");
    }
}

#[test]
fn an_embedded_fake_starts_outside_any_runtime_and_stops_when_dropped() {
    let fake = lead_intake::fake::FakeServer::start(lead_intake::fake::Config::default()).unwrap();
    let addr = fake.addr();
    assert!(addr.ip().is_loopback());
    std::net::TcpStream::connect(addr).expect("it listens");
    drop(fake);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens once it is dropped"
    );
}

#[tokio::test]
async fn shutdown_stops_the_server_and_two_fakes_keep_separate_state() {
    use lead_intake::fake::{Config, FakeServer};
    use lead_intake::prelude::*;
    let one = FakeServer::start(Config::default()).unwrap();
    let two = FakeServer::start(Config::default()).unwrap();
    assert_ne!(one.base_url(), two.base_url());
    let client = |fake: &FakeServer| {
        lead_intake::kommo::Client::builder()
            .base_url(&fake.base_url())
            .token(fake.kommo_token())
            .retry(lead_intake::retry::RetryPolicy::none())
            .build()
            .unwrap()
    };
    let body: lead_intake::kommo::types::AddSourcesRequest =
        serde_json::from_value(serde_json::json!([{"name": "a", "external_id": "a"}])).unwrap();
    client(&one)
        .add_sources()
        .body(body)
        .send()
        .body()
        .await
        .unwrap();
    let empty = client(&two).list_sources().send().or_empty().await.unwrap();
    assert!(empty.embedded.is_none(), "the second fake has no sources");

    let kommo = client(&one);
    kommo.list_sources().send().or_empty().await.unwrap();
    one.shutdown().await;
    let err = kommo.list_sources().send().or_empty().await.unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    two.shutdown().await;
}
