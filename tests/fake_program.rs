//! The standalone `lead-intake-fake` program: it prints where it listens and the credentials,
//! serves both APIs with the options given, and refuses options it does not know.

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

#[test]
fn help_succeeds_and_an_unknown_option_fails_with_the_usage() {
    let help = Command::new(PROGRAM).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--rate-limit N"));
    let bad = Command::new(PROGRAM).arg("--colour").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("unknown option \"--colour\""), "{stderr}");
    let bad = Command::new(PROGRAM)
        .args(["--error-rate", "2"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
