//! Running the fake: embedded (start from anywhere, stop on shutdown or drop, one state per
//! server) and as the standalone `lead-intake-fake` program, which prints where it listens (both
//! APIs and the admin API) and the credentials, logs a line per request unless `--quiet`, listens
//! where `--host` and `--port` say, serves both APIs with the options given, and refuses options
//! it does not know.

mod back_end;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PROGRAM: &str = env!("CARGO_BIN_EXE_lead-intake-fake");

/// How long to wait for a line the program is expected to print: an event, not a pause; only a
/// hung program takes this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// The running program, killed when dropped; its stderr lines arrive on `log`.
struct Program {
    child: Child,
    log: mpsc::Receiver<String>,
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Program {
    /// The next line on stderr.
    fn next_log_line(&self) -> String {
        self.log
            .recv_timeout(PATIENCE)
            .expect("the program logs a line")
    }

    /// Stops the program and returns what it wrote on stderr that was not read yet.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.iter().collect()
    }
}

/// The banner's lines, by label.
struct Banner(Vec<(String, String)>);

impl Banner {
    fn get(&self, label: &str) -> &str {
        self.0
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {label:?} in the banner: {:?}", self.0))
    }
}

/// Starts the program and reads its banner up to its last line (`try:`), so the program never
/// finds its stdout closed while it prints.
fn start(args: &[&str]) -> (Program, Banner) {
    let mut child = Command::new(PROGRAM)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (send, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let program = Program { child, log };
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("readable output");
        let (label, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("a banner line is `label: value`: {line:?}"));
        let done = label == "try";
        banner.push((label.to_string(), value.trim().to_string()));
        if done {
            break;
        }
    }
    (program, Banner(banner))
}

/// `(base URL, Kommo token, CloseBot key)` of a banner.
fn credentials(banner: &Banner) -> (String, String, String) {
    (
        banner.get("base URL").to_string(),
        banner.get("Kommo token").to_string(),
        banner.get("CloseBot key").to_string(),
    )
}

/// Asserts that the server closed `connection`, opened while it ran. Connecting again after the
/// stop would assume its port stays free; another server may take it at once.
fn assert_closed_by_the_server(mut connection: TcpStream) {
    // Only reached when the server kept the connection: then the test fails, it does not hang.
    connection
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    match connection.read(&mut [0u8; 1]) {
        Ok(0) => {}
        Err(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the server still holds the connection: {other:?}"),
    }
}

#[tokio::test]
async fn the_program_prints_its_base_url_and_credentials_and_serves_both_apis() {
    let (program, banner) = start(&[
        "--seed",
        "7",
        "--kommo-token",
        "cli-token",
        "--closebot-key",
        "cli-key",
        "--empty",
    ]);
    let (base, token, key) = credentials(&banner);
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
    drop(program);
}

#[tokio::test]
async fn the_program_applies_the_fault_options() {
    let (_program, banner) = start(&["--blocked"]);
    let (base, token, _) = credentials(&banner);
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
    let (_program, banner) = start(&["--random-429-rate", "1"]);
    let (base, token, _) = credentials(&banner);
    let response = http
        .get(format!("{base}/api/v4/sources"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let (_program, banner) = start(&["--lost-answer-rate", "1.0"]);
    let (base, token, _) = credentials(&banner);
    let err = http
        .get(format!("{base}/api/v4/sources"))
        .bearer_auth(&token)
        .send()
        .await
        .expect_err("every answer is lost");
    assert!(!err.is_connect(), "connected, then closed: {err:?}");
    let (_program, banner) = start(&["--late-error-rate", "1"]);
    let (base, token, _) = credentials(&banner);
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
    for option in ["--host ADDR", "--port N", "--quiet"] {
        assert!(usage.contains(option), "{option}");
    }
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
    let bad = Command::new(PROGRAM)
        .args(["--host", "localhost"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--host takes an IP address, not \"localhost\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_banner_names_the_real_port_both_apis_and_the_admin_base_and_each_request_is_logged() {
    let (program, banner) = start(&["--host", "127.0.0.1", "--port", "0"]);
    let base = banner.get("base URL").to_string();
    let port: u16 = base
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{base}"));
    assert_ne!(port, 0, "the real port, not the one asked for");
    assert!(
        banner
            .get("Kommo API")
            .starts_with(&format!("{base}/api/v4/ "))
    );
    assert!(
        banner
            .get("CloseBot API")
            .starts_with(&format!("{base}/agency/ "))
    );
    assert!(
        banner
            .get("admin API")
            .starts_with(&format!("{base}/__admin/ "))
    );

    let http = reqwest::Client::new();
    let token = banner.get("Kommo token");
    let answer = http
        .get(format!("{base}/api/v4/leads/unsorted?limit=2"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let line = program.next_log_line();
    let rest = line
        .strip_prefix("GET /api/v4/leads/unsorted 200 ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let ms = rest
        .strip_suffix(" ms")
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!(ms.parse::<u64>().is_ok(), "{line:?}");

    let unauthorized = http
        .get(format!("{base}/agency/source"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert!(
        program
            .next_log_line()
            .starts_with("GET /agency/source 401 ")
    );

    // The admin API answers without a token; its calls are not logged.
    let health: serde_json::Value = http
        .get(format!("{base}/__admin/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["kommo"], format!("{base}/api/v4/"));
    assert_eq!(health["requests"], 2);
    assert!(program.stop().is_empty(), "nothing more on stderr");
}

#[tokio::test]
async fn quiet_logs_no_request_and_any_host_listens_on_every_interface_with_a_warning() {
    let (program, banner) = start(&[
        "--quiet",
        "--host",
        "0.0.0.0",
        "--allow-remote",
        "--admin-token",
        "admin-s3cret",
    ]);
    let base = banner.get("base URL").to_string();
    let port = base
        .strip_prefix("http://0.0.0.0:")
        .unwrap_or_else(|| panic!("{base}"));
    assert!(
        banner
            .get("admin API")
            .contains("Authorization: Bearer <admin token>")
    );
    let warning = program.next_log_line();
    assert!(
        warning.starts_with("lead-intake-fake: warning: listening on 0.0.0.0")
            && warning.contains(&format!("port {port}")),
        "{warning}"
    );
    assert!(!warning.contains("admin-s3cret"), "{warning}");
    let http = reqwest::Client::new();
    let answer = http
        .get(format!("http://127.0.0.1:{port}/api/v4/widgets"))
        .bearer_auth(banner.get("Kommo token"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let health = format!("http://127.0.0.1:{port}/__admin/health");
    assert_eq!(http.get(&health).send().await.unwrap().status(), 401);
    let with_token = http
        .get(&health)
        .bearer_auth("admin-s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);
    let banner_text = format!("{:?}", banner.0);
    assert!(!banner_text.contains("admin-s3cret"), "{banner_text}");
    assert_eq!(program.stop(), Vec::<String>::new(), "--quiet: no log line");
}

#[test]
fn a_host_other_hosts_reach_is_refused_without_allow_remote_and_an_admin_token() {
    for host in ["0.0.0.0", "::", "192.0.2.1"] {
        let (code, stderr) = refused(&["--host", host]);
        assert_eq!(code, Some(2), "--host {host}: {stderr}");
        assert!(
            stderr.contains(&format!("listening on {host} lets other hosts"))
                && stderr.contains("--allow-remote"),
            "{stderr}"
        );
        let (code, stderr) = refused(&["--host", host, "--allow-remote"]);
        assert_eq!(code, Some(2), "--host {host} --allow-remote: {stderr}");
        assert!(
            stderr.contains(&format!("listening on {host} needs an admin token"))
                && stderr.contains("--admin-token"),
            "{stderr}"
        );
    }
    let (code, stderr) = refused(&["--admin-token", ""]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--admin-token takes a non-empty token"),
        "{stderr}"
    );
    for (option, bad) in [("--header-read-timeout", "0"), ("--max-connections", "0")] {
        let (code, stderr) = refused(&[option, bad]);
        assert_eq!(code, Some(2), "{option} {bad}: {stderr}");
    }
    let help = Command::new(PROGRAM).arg("--help").output().unwrap();
    let usage = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--allow-remote",
        "--admin-token T",
        "--header-read-timeout SECONDS",
        "--max-connections N",
    ] {
        assert!(usage.contains(option), "{option}");
    }
}

#[test]
fn the_port_asked_for_is_the_port_it_binds() {
    // A port this test holds: the program must fail on it, which shows it binds the port it is
    // given (and no test assumes a port stays free).
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let mut child = Command::new(PROGRAM)
        .args(["--port", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot start the fake server"), "{stderr}");
    drop(held);
}

#[test]
fn an_embedded_fake_starts_outside_any_runtime_and_stops_when_dropped() {
    let fake = lead_intake_fake::FakeServer::start(lead_intake_fake::Config::default()).unwrap();
    let addr = fake.addr();
    assert!(addr.ip().is_loopback());
    let connection = TcpStream::connect(addr).expect("it listens");
    drop(fake);
    assert_closed_by_the_server(connection);
}

#[tokio::test]
async fn shutdown_stops_the_server_and_two_fakes_keep_separate_state() {
    use lead_intake::prelude::*;
    use lead_intake_fake::{Config, FakeServer};
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
    let connection = TcpStream::connect(one.addr()).expect("it listens");
    one.shutdown().await;
    assert_closed_by_the_server(connection);
    two.shutdown().await;
}

#[tokio::test]
async fn the_banner_s_oauth_app_and_code_are_exchanged_for_tokens_of_the_lifetime_given() {
    let (_program, banner) = start(&[
        "--client-id",
        "cli-client",
        "--client-secret",
        "cli-secret",
        "--redirect-uri",
        "https://cli.example/cb",
        "--access-token-lifetime",
        "2.5",
    ]);
    let base = banner.get("base URL").to_string();
    assert!(
        banner
            .get("OAuth token")
            .starts_with(&format!("{base}/oauth2/access_token "))
    );
    assert_eq!(banner.get("client ID"), "cli-client");
    assert_eq!(banner.get("client secret"), "cli-secret");
    assert_eq!(banner.get("redirect URI"), "https://cli.example/cb");
    let code = banner
        .get("auth code")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(banner.get("try OAuth").contains(&code));
    let http = reqwest::Client::new();
    let pair: serde_json::Value = http
        .post(format!("{base}/oauth2/access_token"))
        .json(&serde_json::json!({
            "client_id": "cli-client", "client_secret": "cli-secret",
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": "https://cli.example/cb",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pair["expires_in"], 3, "2.5 s, rounded up: {pair}");
    let answer = http
        .get(format!("{base}/api/v4/sources"))
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let stats: serde_json::Value = http
        .get(format!("{base}/__admin/oauth"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["access_token_lifetime_ms"], 2500);
    assert_eq!(stats["stats"]["codes_exchanged"], 1);

    let bad = Command::new(PROGRAM)
        .args(["--access-token-lifetime", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("positive number of seconds"));
}

#[tokio::test]
async fn the_program_sends_webhooks_and_widget_requests_where_its_flags_say() {
    let mut back_end = back_end::BackEnd::start(200).await;
    let (webhook_url, widget_url) = (back_end.url("/hooks"), back_end.url("/widget"));
    let (_program, banner) = start(&[
        "--quiet",
        "--subdomain",
        "acme",
        "--webhook-url",
        &webhook_url,
        "--widget-url",
        &widget_url,
    ]);
    let (base, token, _) = credentials(&banner);
    let http = reqwest::Client::new();

    let sent = http
        .post(format!("{base}/__admin/widget_request"))
        .body(r#"{"bot_id": 4131, "entity_id": 5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let received = back_end.next().await;
    assert_eq!(received.path, "/widget");
    let request = lead_intake::widget::WidgetRequest::from_http(
        received.content_type.as_deref(),
        &received.body,
    )
    .unwrap();
    let verifier = lead_intake::widget::BotTokenVerifier::new(lead_intake::Secret::new(
        banner.get("client secret"),
    ))
    .expect("the default client secret is 64 bytes, as Kommo's");
    let verified = request
        .verify(&verifier)
        .expect("signed with the banner's client secret");
    let claims = verified.claims();
    assert_eq!((claims.subdomain.as_str(), claims.entity_id), ("acme", 5));
    assert_eq!(claims.client_uuid, banner.get("client ID"));
    assert!(
        request
            .return_url
            .starts_with(&format!("{base}/api/v4/salesbot/4131/continue/"))
    );

    let accepted = http
        .post(format!(
            "{base}/api/v4/leads/unsorted/5af9dedb6f2c6a29eaac6ee37fc75ffbb66e139e4603bdd0e14e39d4b319/accept"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let received = back_end.next().await;
    assert_eq!(received.path, "/hooks");
    let hook =
        lead_intake::webhooks::parse(received.content_type.as_deref(), &received.body).unwrap();
    assert_eq!(hook.account().map(|a| a.subdomain.as_str()), Some("acme"));
    assert_eq!(hook.events().len(), 1);
}

/// Runs the program with options it should refuse: its exit code and stderr. A program that
/// starts instead is killed, and the test fails rather than hangs.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(PROGRAM)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let mut stderr = child.stderr.take().expect("stderr");
    let (send, text) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out);
        let _ = send.send(out);
    });
    match text.recv_timeout(PATIENCE) {
        Ok(text) => (child.wait().expect("its status").code(), text),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: the program started instead of refusing the options");
        }
    }
}

#[test]
fn the_back_end_urls_must_be_plain_http_urls() {
    for option in ["--webhook-url", "--widget-url"] {
        for bad in [
            "localhost:8080/hooks",
            "https://example.com/hooks",
            "http://",
        ] {
            let (code, stderr) = refused(&[option, bad]);
            assert_eq!(code, Some(2), "{option} {bad}: {stderr}");
            assert!(
                stderr.contains(&format!("{option} takes an http:// URL")),
                "{stderr}"
            );
        }
        let (code, stderr) = refused(&[option]);
        assert_eq!(code, Some(2), "{option} without a value: {stderr}");
    }
    let help = Command::new(PROGRAM).arg("--help").output().unwrap();
    let usage = String::from_utf8_lossy(&help.stdout);
    for option in ["--subdomain S", "--webhook-url URL", "--widget-url URL"] {
        assert!(usage.contains(option), "{option}");
    }
}
