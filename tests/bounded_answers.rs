//! Issue 20 §5: every body the library reads goes through one bounded reader. Against a real
//! server on loopback (a task of the test's runtime, streaming its bodies): an answer over the
//! client's `max_answer_size` stops at the limit with `AnswerError::TooLarge` naming the endpoint
//! and the limit (operations, `follow`, pagers, the OAuth token endpoint); a `Content-Length` over
//! it is refused before reading; a body that trickles or stops coming ends with
//! `AnswerError::TimedOut`, saying after how long; a `Decode` error keeps an excerpt, not the body.
//!
//! Timed cases run on paused tokio time: the server's pauses and the client's deadline are
//! virtual, so nothing here waits in real time. The memory side (the process's peak, in a
//! separate process) is tests/answer_memory.rs.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::script::http_without_timeouts;
use futures_util::StreamExt;
use http_body_util::StreamBody;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lead_intake::error::{AnswerError, ApiError, DEFAULT_ANSWER_TIMEOUT, DEFAULT_MAX_ANSWER_SIZE};
use lead_intake::kommo::types::SourceList;
use lead_intake::oauth::{AuthError, OAuth, OAuthApp, TokenPair};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use lead_intake::{Secret, kommo};
use tokio::net::TcpListener;

/// How a test server's answer's body comes.
#[derive(Clone, Copy, Debug)]
enum Body {
    /// Chunks of 64 KiB, as fast as the client reads them, without end (or `total` bytes).
    Endless { declared: Option<u64> },
    /// One byte every `every`, without end.
    Trickle { every: Duration },
    /// Headers, then nothing, ever.
    Silent,
    /// `len` bytes of a page that is not JSON.
    NotJson { len: usize },
}

/// A server answering 200 with `body` to every request; counts what it sent.
struct Server {
    base_url: String,
    sent: Arc<AtomicU64>,
}

async fn serve(body: Body) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: hyper::Request<Incoming>| {
                    let counter = counter.clone();
                    async move { Ok::<_, Infallible>(answer(body, counter)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { base_url, sent }
}

type Stream = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>;

fn answer(body: Body, sent: Arc<AtomicU64>) -> hyper::Response<StreamBody<Stream>> {
    let mut response = hyper::Response::builder()
        .status(200)
        .header("content-type", "application/hal+json");
    let chunks: Stream = match body {
        Body::Endless { declared } => {
            if let Some(n) = declared {
                response = response.header("content-length", n.to_string());
            }
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            futures_util::stream::repeat(chunk)
                .map(move |chunk| {
                    sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok(Frame::data(chunk))
                })
                .boxed()
        }
        Body::Trickle { every } => futures_util::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from_static(b" "))), ()))
        })
        .boxed(),
        Body::Silent => futures_util::stream::pending().boxed(),
        Body::NotJson { len } => {
            response = response.header("content-type", "text/html");
            let page = Bytes::from(vec![b'<'; len]);
            futures_util::stream::once(async move { Ok(Frame::data(page)) }).boxed()
        }
    };
    response.body(StreamBody::new(chunks)).unwrap()
}

fn client(server: &Server) -> kommo::Client {
    kommo::Client::builder()
        .base_url(&server.base_url)
        .token("SECRET-TOKEN-123")
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .max_answer_size(1024 * 1024)
        .build()
        .unwrap()
}

/// The error is `Answer` for this endpoint, with this `AnswerError`.
fn answer_error<P: std::fmt::Debug + lead_intake::error::ProblemSummary>(
    err: &ApiError<P>,
    endpoint: &str,
) -> AnswerError {
    match err {
        ApiError::Answer { endpoint: e, error } if e == endpoint => error.clone(),
        other => panic!("expected ApiError::Answer for {endpoint}: {other:?}"),
    }
}

#[tokio::test]
async fn the_defaults_are_documented() {
    assert_eq!(DEFAULT_MAX_ANSWER_SIZE, 32 * 1024 * 1024);
    assert_eq!(DEFAULT_ANSWER_TIMEOUT, Duration::from_secs(60));
}

#[tokio::test]
async fn an_endless_answer_stops_at_the_limit_with_a_typed_error_naming_endpoint_and_limit() {
    let server = serve(Body::Endless { declared: None }).await;
    let err = client(&server)
        .list_sources()
        .send()
        .or_empty()
        .await
        .unwrap_err();

    assert_eq!(
        answer_error(&err, "/api/v4/sources"),
        AnswerError::TooLarge {
            limit: 1024 * 1024,
            declared: None
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("/api/v4/sources") && text.contains("1048576 bytes"),
        "{text}"
    );
    assert!(!err.certainly_not_applied());
    // The read stopped at the limit: the server could push only what the socket buffers hold
    // beyond it before the client closed the connection.
    let sent = server.sent.load(Ordering::Relaxed);
    assert!(sent < 1024 * 1024 + 16 * 1024 * 1024, "{sent} bytes sent");
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_refused_before_reading() {
    let server = serve(Body::Endless {
        declared: Some(2 * 1024 * 1024 * 1024),
    })
    .await;
    let err = client(&server)
        .list_sources()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    assert_eq!(
        answer_error(&err, "/api/v4/sources"),
        AnswerError::TooLarge {
            limit: 1024 * 1024,
            declared: Some(2 * 1024 * 1024 * 1024)
        }
    );
    assert!(
        err.to_string().contains("Content-Length is 2147483648"),
        "{err}"
    );
}

#[tokio::test]
async fn follow_and_pagers_read_through_the_same_bound() {
    let server = serve(Body::Endless { declared: None }).await;
    let client = client(&server);

    let err = client
        .follow::<SourceList>("/api/v4/sources?page=2")
        .await
        .unwrap_err();
    assert!(matches!(
        answer_error(&err, "/api/v4/sources"),
        AnswerError::TooLarge { .. }
    ));

    let mut pages = client.list_incoming_leads_pager(|r| r).pages();
    let first = pages.next().await.expect("the pager yields the failure");
    let err = first.expect_err("an endless page is an error");
    assert!(
        matches!(
            answer_error(&err, "/api/v4/leads/unsorted"),
            AnswerError::TooLarge { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_token_endpoint_s_answer_is_bounded_too() {
    let server = serve(Body::Endless { declared: None }).await;
    let expired = TokenPair {
        access_token: Secret::new("ACCESS-OLD"),
        refresh_token: Secret::new("REFRESH-OLD"),
        expires_at: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
            - chrono::Duration::seconds(5),
    };
    let oauth = OAuth::new(
        OAuthApp::new("id", "CLIENT-SECRET", "https://example.com/oauth"),
        expired,
        |_pair: TokenPair| async { Ok::<(), std::io::Error>(()) },
    );
    let client = kommo::Client::builder()
        .base_url(&server.base_url)
        .oauth(oauth)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .max_answer_size(256 * 1024)
        .build()
        .unwrap();

    let err = client.list_sources().send().or_empty().await.unwrap_err();
    let ApiError::Auth {
        error: AuthError::Answer(answer),
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        *answer,
        AnswerError::TooLarge {
            limit: 256 * 1024,
            declared: None
        }
    );
    assert!(err.to_string().contains("/oauth2/access_token"), "{err}");
}

#[tokio::test]
async fn a_decode_error_keeps_an_excerpt_of_the_body_never_all_of_it() {
    let len = 900 * 1024;
    let server = serve(Body::NotJson { len }).await;
    let err = client(&server)
        .list_sources()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    let ApiError::Decode { body, body_len, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*body_len, len);
    assert_eq!(body.len(), 64 * 1024);
    assert!(format!("{err:?}").len() < 4096);
}

#[tokio::test(start_paused = true)]
async fn a_trickling_body_times_out_saying_after_how_long() {
    let server = serve(Body::Trickle {
        every: Duration::from_secs(7),
    })
    .await;
    let err = client(&server)
        .list_sources()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    let AnswerError::TimedOut { after, received } = answer_error(&err, "/api/v4/sources") else {
        panic!("{err:?}");
    };
    assert_eq!(after, DEFAULT_ANSWER_TIMEOUT);
    assert_eq!(received, 8, "a byte every 7 s for 60 s");
    assert!(
        err.to_string()
            .contains("timed out after 60.0 s, 8 bytes received"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_body_times_out_after_the_client_s_answer_timeout() {
    let server = serve(Body::Silent).await;
    let client = kommo::Client::builder()
        .base_url(&server.base_url)
        .token("SECRET-TOKEN-123")
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .answer_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = client.list_sources().send().or_empty().await.unwrap_err();
    assert_eq!(
        answer_error(&err, "/api/v4/sources"),
        AnswerError::TimedOut {
            after: Duration::from_secs(5),
            received: 0
        }
    );
}

/// The HTTP client's own timeout ending the read is said the same way, not as "error decoding
/// response body".
#[tokio::test(start_paused = true)]
async fn the_http_client_s_own_timeout_during_the_body_is_a_timed_out_answer() {
    let server = serve(Body::Silent).await;
    lead_intake::http::install_crypto_provider();
    let client = kommo::Client::builder()
        .base_url(&server.base_url)
        .token("SECRET-TOKEN-123")
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = client.list_sources().send().or_empty().await.unwrap_err();
    let AnswerError::TimedOut { after, received } = answer_error(&err, "/api/v4/sources") else {
        panic!("{err:?}");
    };
    assert!(after <= Duration::from_secs(3), "{after:?}");
    assert_eq!(received, 0);
    assert!(err.to_string().contains("timed out after"), "{err}");
}
