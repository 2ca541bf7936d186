//! A transport failure's message names its path, its cause and the attempts, never the query
//! string or the token; `ApiError::is_connect`/`is_timeout` classify it (issue 24 §4).

mod common;

use std::time::Duration;

use common::TOKEN;
use common::script::{Reply, ScriptServer, http_without_timeouts};
use lead_intake::error::{ApiError, TimeoutBound, TransportCause};
use lead_intake::kommo::Client;
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn quick() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(3)
        .with_base_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(20))
}

fn client(base_url: &str, retry: RetryPolicy, http: reqwest::Client) -> Client {
    Client::builder()
        .base_url(base_url)
        .allow_insecure_http()
        .token(TOKEN)
        .no_rate_limit()
        .retry(retry)
        .http_client(http)
        .build()
        .unwrap()
}

/// A call with a query string (`limit=250`), which no message may show.
async fn list(kommo: &Client) -> lead_intake::kommo::Error {
    kommo
        .list_widgets()
        .limit(250)
        .send()
        .or_empty()
        .await
        .unwrap_err()
}

fn transport(err: &lead_intake::kommo::Error) -> &lead_intake::error::TransportError {
    match err {
        ApiError::Transport(e) => e,
        other => panic!("a transport error: {other:?}"),
    }
}

fn shows_nothing_private(err: &lead_intake::kommo::Error) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("limit=250"), "the query string: {text}");
        assert!(!text.contains(TOKEN), "the token: {text}");
    }
}

#[tokio::test]
async fn a_refused_connection_says_so_with_its_attempts() {
    // A socket bound and held but not listening: connecting to its port is refused, and no one
    // else can take the port while the test holds it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let kommo = client(
        &format!("http://127.0.0.1:{port}"),
        quick(),
        http_without_timeouts(),
    );
    let err = list(&kommo).await;
    let e = transport(&err);
    assert_eq!(e.cause(), TransportCause::ConnectionRefused);
    assert_eq!(e.attempts(), 3);
    assert_eq!(e.endpoint(), "/api/v4/widgets");
    assert!(err.is_connect() && !err.is_timeout());
    let text = err.to_string();
    assert!(
        text.starts_with(
            "the request to /api/v4/widgets failed after 3 attempt(s): the connection was refused"
        ),
        "{text}"
    );
    shows_nothing_private(&err);
    drop(socket);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_dns_failure() {
    // `.invalid` never resolves (RFC 6761).
    let kommo = client(
        "http://lead-intake-test.invalid",
        RetryPolicy::none(),
        http_without_timeouts(),
    );
    let err = list(&kommo).await;
    assert_eq!(transport(&err).cause(), TransportCause::Dns, "{err}");
    assert!(err.is_connect());
    assert!(err.to_string().contains("did not resolve (DNS)"), "{err}");
    shows_nothing_private(&err);
}

#[tokio::test]
async fn a_server_that_does_not_speak_tls_is_a_tls_failure() {
    // It answers plain HTTP to the client's TLS hello.
    lead_intake::http::install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = tokio::io::AsyncWriteExt::write_all(
                    &mut stream,
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
            });
        }
    });
    let kommo = client(
        &format!("https://127.0.0.1:{port}"),
        RetryPolicy::none(),
        reqwest::Client::builder().build().unwrap(),
    );
    let err = list(&kommo).await;
    assert_eq!(transport(&err).cause(), TransportCause::Tls, "{err}");
    assert!(err.is_connect() && !err.is_timeout());
    assert!(
        err.to_string().contains("the TLS handshake failed"),
        "{err}"
    );
    shows_nothing_private(&err);
}

#[tokio::test]
async fn a_connection_closed_before_the_answer_is_a_reset() {
    // Reads the request, then closes the connection without an answer.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            drop(stream);
        }
    });
    let kommo = client(
        &format!("http://127.0.0.1:{port}"),
        quick(),
        http_without_timeouts(),
    );
    let err = list(&kommo).await;
    let e = transport(&err);
    assert_eq!(e.cause(), TransportCause::ConnectionReset, "{err}");
    // A GET is idempotent: retried after a broken connection.
    assert_eq!(e.attempts(), 3, "{err}");
    assert!(!err.is_connect() && !err.is_timeout());
    assert!(
        err.to_string().contains("the connection was reset"),
        "{err}"
    );
    shows_nothing_private(&err);
}

#[tokio::test(start_paused = true)]
async fn the_http_clients_timeout_and_the_calls_are_told_apart() {
    let server =
        ScriptServer::sequence(vec![Reply::status(200).after(Duration::from_secs(300))]).await;
    lead_intake::http::install_crypto_provider();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let kommo = client(&server.base_url, RetryPolicy::none(), impatient);
    let err = list(&kommo).await;
    assert_eq!(
        transport(&err).cause(),
        TransportCause::Timeout(TimeoutBound::Client),
        "{err}"
    );
    assert!(err.is_timeout() && !err.is_connect());
    assert!(
        err.to_string()
            .contains("the HTTP client's request timeout"),
        "{err}"
    );
    shows_nothing_private(&err);

    let err = kommo
        .list_widgets()
        .limit(250)
        .send()
        .with_options(CallOptions::new().attempt_timeout(Duration::from_secs(2)))
        .or_empty()
        .await
        .unwrap_err();
    assert_eq!(
        transport(&err).cause(),
        TransportCause::Timeout(TimeoutBound::Attempt(Duration::from_secs(2))),
        "{err}"
    );
    assert!(err.is_timeout());
    shows_nothing_private(&err);
}
