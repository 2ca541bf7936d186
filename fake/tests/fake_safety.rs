//! The fake is safe to run: it listens where other hosts reach it only when told to, and then
//! only with an admin token; the admin API asks for that token when it has one; a connection that
//! never finishes a request's headers is closed, and past the connection cap a connection waits
//! for another to close; and what it sends to a back end (webhooks,
//! Salesbot's `widget_request`, with a signed token) never follows a redirect elsewhere. Every
//! wait is on an event (a socket's end, a delivery journaled) under a watchdog.

mod back_end;
mod fake_common;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::time::Duration;

use back_end::{BackEnd, PATIENCE};
use fake_common::Fake;
use lead_intake::prelude::*;
use lead_intake_fake::{Config, FakeError, FakeServer};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-4b1d";

#[test]
fn a_host_other_hosts_reach_needs_allow_remote_and_an_admin_token() {
    for host in [
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ] {
        let config = Config::default().host(host);
        match FakeServer::start(config.clone()) {
            Err(FakeError::RemoteNotAllowed(refused)) => assert_eq!(refused, host),
            other => panic!("{host}: {other:?}"),
        }
        let message = FakeError::RemoteNotAllowed(host).to_string();
        assert!(message.contains("allow_remote"), "{message}");
        match FakeServer::start(config.clone().allow_remote()) {
            Err(FakeError::RemoteWithoutAdminToken(refused)) => assert_eq!(refused, host),
            other => panic!("{host}: {other:?}"),
        }
    }
    // Both given: it listens on every interface (IPv4 here: the machine may have no IPv6).
    let fake = FakeServer::start(
        Config::default()
            .host([0, 0, 0, 0])
            .allow_remote()
            .admin_token(ADMIN_TOKEN),
    )
    .expect("allowed, with a token");
    assert!(fake.addr().ip().is_unspecified());
    // Loopback, in every spelling, needs neither.
    for host in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
    ] {
        match FakeServer::start(Config::default().host(host)) {
            Ok(_) => {}
            // An address the machine lacks (no IPv6): refused by the system, not by the check.
            Err(FakeError::Io(_)) => {}
            Err(other) => panic!("{host}: {other}"),
        }
    }
}

/// An admin call with `authorization` (none when `None`): status and JSON body.
async fn admin(
    fake: &Fake,
    method: reqwest::Method,
    call: &str,
    authorization: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/__admin/{call}", fake.base_url()));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("the admin API answers");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        challenge,
        response.json().await.expect("a JSON body"),
    )
}

#[tokio::test]
async fn with_an_admin_token_every_admin_call_needs_it_and_one_without_changes_nothing() {
    let fake = Fake::start(Config::default().admin_token(ADMIN_TOKEN));
    let leads = fake.incoming_leads().len();
    assert!(leads > 0, "the fixtures have incoming leads");
    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    let short = format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]);
    let other_scheme = format!("Basic {ADMIN_TOKEN}");
    for authorization in [
        None,
        Some(wrong.as_str()),
        Some(short.as_str()),
        Some(other_scheme.as_str()),
        Some("Bearer "),
        Some("Bearer fake-kommo-token"),
    ] {
        for (method, call) in [
            (reqwest::Method::GET, "health"),
            (reqwest::Method::GET, "state"),
            (reqwest::Method::POST, "reset?empty=true"),
            (reqwest::Method::POST, "oauth/code"),
            (reqwest::Method::GET, "no-such-call"),
        ] {
            let (status, challenge, body) = admin(&fake, method.clone(), call, authorization).await;
            assert_eq!(
                status, 401,
                "{method} {call} with {authorization:?}: {body}"
            );
            assert_eq!(
                challenge.as_deref(),
                Some("Bearer realm=\"lead-intake-fake admin\"")
            );
            let message = body["error"].as_str().expect("an error message");
            assert!(message.contains("--admin-token"), "{message}");
            assert!(!message.contains(ADMIN_TOKEN), "{message}");
        }
    }
    assert_eq!(
        fake.incoming_leads().len(),
        leads,
        "the refused reset did nothing"
    );
    assert_eq!(fake.oauth_stats().codes_issued, 0, "no code was minted");

    let right = format!("Bearer {ADMIN_TOKEN}");
    let lower = format!("bearer {ADMIN_TOKEN}");
    for authorization in [right.as_str(), lower.as_str()] {
        let (status, _, body) =
            admin(&fake, reqwest::Method::GET, "health", Some(authorization)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
    }
    let (status, _, _) = admin(
        &fake,
        reqwest::Method::POST,
        "reset?empty=true",
        Some(&right),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        fake.incoming_leads().is_empty(),
        "the reset with the token was done"
    );
    // The APIs keep their own credentials; the admin token is none of them.
    let widgets = fake
        .raw(reqwest::Method::GET, "/api/v4/widgets")
        .send()
        .await
        .unwrap();
    assert_eq!(widgets.status(), 204);
    let config = format!("{:?}", Config::default().admin_token(ADMIN_TOKEN));
    assert!(!config.contains(ADMIN_TOKEN), "{config}");
}

#[tokio::test]
async fn without_an_admin_token_the_admin_api_on_loopback_answers_as_before() {
    let fake = Fake::default();
    let (status, _, body) = admin(&fake, reqwest::Method::GET, "health", None).await;
    assert_eq!(status, 200, "{body}");
}

/// Reads `connection` to its end: the bytes the fake sent before closing it. Fails (rather than
/// hangs) when the fake keeps it open past the watchdog.
fn read_to_close(connection: &mut TcpStream) -> Vec<u8> {
    connection.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match connection.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the fake kept the connection open past the watchdog ({PATIENCE:?})")
            }
            // Closed with a reset: closed all the same.
            Err(_) => return received,
        }
    }
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed_and_others_are_served() {
    // Short, for the test; the watchdog, not this, bounds how long the test may take.
    let fake = Fake::start(Config::default().header_read_timeout(Duration::from_secs(1)));
    let addr = fake.addr();
    let (half, silent) = tokio::task::spawn_blocking(move || {
        let mut half = TcpStream::connect(addr).unwrap();
        half.write_all(b"GET /api/v4/widgets HTTP/1.1\r\nHost: fake\r\nAuthoriz")
            .unwrap();
        let silent = TcpStream::connect(addr).unwrap();
        (half, silent)
    })
    .await
    .unwrap();
    let closed = tokio::task::spawn_blocking(move || {
        let (mut half, mut silent) = (half, silent);
        (read_to_close(&mut half), read_to_close(&mut silent))
    });
    let (half_answer, silent_answer) = closed.await.unwrap();
    // Closed, and no request was processed for either.
    for answer in [&half_answer, &silent_answer] {
        let text = String::from_utf8_lossy(answer);
        assert!(!text.contains(" 200 ") && !text.contains(" 204 "), "{text}");
    }
    assert_eq!(fake.stats().requests, 0);

    // A client that sends its request at once is served.
    let widgets = fake
        .raw(reqwest::Method::GET, "/api/v4/widgets")
        .send()
        .await
        .unwrap();
    assert_eq!(widgets.status(), 200);
}

#[tokio::test]
async fn webhooks_and_widget_requests_do_not_follow_redirects_and_journal_them() {
    for status in [301, 302, 303, 307, 308] {
        let mut elsewhere = BackEnd::start(200).await;
        let target = elsewhere.url("/stolen");
        let mut redirecting = BackEnd::redirecting(status, &target).await;
        let fake = Fake::start(
            Config::default()
                .webhook_url(redirecting.url("/hooks"))
                .widget_url(redirecting.url("/widget")),
        );
        // An accepted incoming lead: one webhook.
        let uid = fake.incoming_leads()[0].uid.clone();
        fake.kommo()
            .accept_incoming_lead()
            .uid(uid)
            .send()
            .body()
            .await
            .unwrap();
        tokio::time::timeout(PATIENCE, fake.webhooks_sent(1))
            .await
            .expect("the webhook was sent");
        assert_eq!(redirecting.next().await.path, "/hooks");
        // A followed redirect is sent before the answer is journaled: anything sent elsewhere
        // would be there by now.
        assert!(
            elsewhere.try_next().is_none(),
            "{status}: the webhook's redirect was followed"
        );
        let [delivery] = fake.webhook_deliveries().try_into().unwrap();
        assert_eq!(delivery.status, Some(status), "{delivery:?}");
        assert_eq!(delivery.redirect.as_deref(), Some(target.as_str()));
        assert_eq!(delivery.error, None);

        let sent = tokio::time::timeout(
            PATIENCE,
            fake.send_widget_request("salesbot", "7", 1, json!({"x": 1})),
        )
        .await
        .expect("the call returns")
        .unwrap();
        assert_eq!(redirecting.next().await.path, "/widget");
        assert_eq!(sent.status, Some(status), "{sent:?}");
        assert_eq!(sent.redirect.as_deref(), Some(target.as_str()));

        assert!(
            elsewhere.try_next().is_none(),
            "{status}: the widget_request's redirect was followed"
        );
        assert!(redirecting.try_next().is_none());

        // The admin API journals them the same way.
        let webhooks: Value = reqwest::get(format!("{}/__admin/webhooks", fake.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(webhooks["webhooks"][0]["redirect"], target.as_str());
        assert_eq!(webhooks["webhooks"][0]["status"], status);
    }
}

/// Reads one answer's head from a kept-alive `connection` (up to the blank line), and its body
/// when it declares one.
fn read_answer_head(connection: &mut TcpStream) -> String {
    connection.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        match connection.read(&mut byte) {
            Ok(1) => received.push(byte[0]),
            other => panic!("no answer: {other:?}"),
        }
    }
    let head = String::from_utf8_lossy(&received).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    connection.read_exact(&mut body).unwrap();
    head
}

#[test]
fn past_max_connections_a_connection_waits_until_one_closes() {
    let fake = FakeServer::start(
        Config::default()
            .max_connections(1)
            .header_read_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let request = format!(
        "GET /api/v4/widgets HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {}\r\n\r\n",
        fake.kommo_token().expose()
    );
    // The first connection is served (so it holds the only place), then stays idle.
    let mut first = TcpStream::connect(fake.addr()).unwrap();
    first.write_all(request.as_bytes()).unwrap();
    let head = read_answer_head(&mut first);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The second is answered only once the fake closed the first (its header timeout).
    let mut second = TcpStream::connect(fake.addr()).unwrap();
    second.write_all(request.as_bytes()).unwrap();
    let head = read_answer_head(&mut second);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    first.set_nonblocking(true).unwrap();
    match first.read(&mut [0u8; 1]) {
        Ok(0) => {}
        Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {}
        other => panic!("the second connection was served while the first was open: {other:?}"),
    }
}
