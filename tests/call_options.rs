//! Options for one call (`CallOptions` through `ResponseExt::with_options`), on paused tokio
//! time with the in-runtime scripted server: the deadline cuts every wait of the call short
//! (the rate limiter, the backoff, a `Retry-After`, an answer) and says which; the per-attempt
//! timeout, the number of attempts and the extra headers hold for that call alone.

mod common;

use std::time::Duration;

use common::script::{Reply, ScriptServer, http_without_timeouts};
use common::{TOKEN, example};
use lead_intake::error::{ApiError, TimeoutBound, TransportCause, Waiting};
use lead_intake::kommo::Client;
use lead_intake::prelude::*;
use lead_intake::ratelimit::RateLimiter;
use lead_intake::retry::RetryPolicy;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use tokio::time::Instant;

fn sources() -> Reply {
    Reply::json(200, example("listSources.response.200.json"))
}

/// Patient: long waits are allowed, so only the call's deadline can cut them.
fn patient() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(4)
        .with_base_delay(Duration::from_secs(4))
        .with_max_delay(Duration::from_secs(600))
}

fn client(server: &ScriptServer, limiter: Option<RateLimiter>) -> Client {
    let builder = Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .retry(patient())
        .http_client(http_without_timeouts());
    let builder = match limiter {
        Some(limiter) => builder.rate_limiter(limiter),
        None => builder.no_rate_limit(),
    };
    builder.build().unwrap()
}

fn deadline(seconds: u64) -> CallOptions {
    CallOptions::new().deadline(Duration::from_secs(seconds))
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_time_left_is_not_waited_for() {
    let server = ScriptServer::sequence(vec![
        Reply::json(
            429,
            serde_json::json!({"title": "Too Many Requests", "status": 429}),
        )
        .header("retry-after", "60"),
        sources(),
    ])
    .await;
    let kommo = client(&server, None);
    let started = Instant::now();
    let err = kommo
        .list_sources()
        .send()
        .with_options(deadline(10))
        .or_empty()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::DeadlineExceeded {
                waiting_for: Waiting::RetryAfter,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 1);
    let text = err.to_string();
    assert!(text.contains("/api/v4/sources"), "{text}");
    assert!(text.contains("deadline of 10s"), "{text}");
    assert!(text.contains("Retry-After"), "{text}");
    assert!(err.is_timeout());

    // Without the option the same client waits the 60 s and succeeds: the deadline was the
    // call's alone.
    let server = ScriptServer::sequence(vec![
        Reply::json(
            429,
            serde_json::json!({"title": "Too Many Requests", "status": 429}),
        )
        .header("retry-after", "60"),
        sources(),
    ])
    .await;
    let kommo = client(&server, None);
    let started = Instant::now();
    kommo.list_sources().send().or_empty().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_backoff_that_would_pass_the_deadline_is_not_begun() {
    let server = ScriptServer::sequence(vec![Reply::status(503)]).await;
    let kommo = client(&server, None);
    let started = Instant::now();
    let err = kommo
        .list_sources()
        .send()
        .with_options(deadline(5))
        .or_empty()
        .await
        .unwrap_err();
    // Backoff before retry 1 is 2-4 s (fits), before retry 2 4-8 s (does not fit in what is
    // left of 5 s).
    assert!(
        matches!(
            err,
            ApiError::DeadlineExceeded {
                waiting_for: Waiting::Backoff,
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_the_rate_limiter_ends_at_the_deadline() {
    let server = ScriptServer::sequence(vec![sources()]).await;
    // One request a minute: the second call waits ~60 s for its turn.
    let limiter = RateLimiter::new(1, Duration::from_secs(60)).unwrap();
    let kommo = client(&server, Some(limiter));
    kommo.list_sources().send().or_empty().await.unwrap();
    let started = Instant::now();
    let err = kommo
        .list_sources()
        .send()
        .with_options(deadline(5))
        .or_empty()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::DeadlineExceeded {
                waiting_for: Waiting::Limiter,
                attempts: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "the second request was not sent"
    );
    assert!(err.certainly_not_applied());
    // The cancelled wait took no place: the next call gets the next minute's turn.
    let started = Instant::now();
    kommo.list_sources().send().or_empty().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(100),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_would_come_after_the_deadline_is_not_awaited() {
    let server = ScriptServer::sequence(vec![sources().after(Duration::from_secs(30))]).await;
    let kommo = client(&server, None);
    let started = Instant::now();
    let err = kommo
        .list_sources()
        .send()
        .with_options(deadline(5))
        .or_empty()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::DeadlineExceeded {
                waiting_for: Waiting::Answer,
                attempts: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_names_itself_and_each_attempt_gets_it() {
    let server = ScriptServer::sequence(vec![sources().after(Duration::from_secs(30))]).await;
    let kommo = client(&server, None);
    let options = CallOptions::new()
        .attempt_timeout(Duration::from_secs(2))
        .max_attempts(2);
    let err = kommo
        .list_sources()
        .send()
        .with_options(options)
        .or_empty()
        .await
        .unwrap_err();
    let ApiError::Transport(e) = &err else {
        panic!("a transport error: {err:?}");
    };
    assert_eq!(
        e.cause(),
        TransportCause::Timeout(TimeoutBound::Attempt(Duration::from_secs(2)))
    );
    assert_eq!(e.attempts(), 2);
    assert!(err.is_timeout() && !err.is_connect());
    let text = err.to_string();
    assert!(text.contains("attempt timeout of 2s"), "{text}");
    assert!(text.contains("after 2 attempt(s)"), "{text}");
    server.until_requests(2).await;
}

#[tokio::test(start_paused = true)]
async fn max_attempts_is_the_calls_alone() {
    let server = ScriptServer::sequence(vec![Reply::status(503)]).await;
    let kommo = client(&server, None);
    let err = kommo
        .list_sources()
        .send()
        .with_options(CallOptions::new().max_attempts(2))
        .or_empty()
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(server.requests().len(), 2);
    // The client's own policy (4 attempts) still holds for a call without options.
    kommo.list_sources().send().or_empty().await.unwrap_err();
    assert_eq!(server.requests().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn extra_headers_are_sent_and_the_credentials_win() {
    let server = ScriptServer::sequence(vec![sources()]).await;
    let kommo = client(&server, None);
    let options = CallOptions::new()
        .header(
            HeaderName::from_static("x-request-id"),
            HeaderValue::from_static("lead-42"),
        )
        .header(AUTHORIZATION, HeaderValue::from_static("Bearer not-mine"));
    assert!(
        !format!("{options:?}").contains("not-mine"),
        "Debug shows header names only: {options:?}"
    );
    kommo
        .list_sources()
        .send()
        .with_options(options)
        .or_empty()
        .await
        .unwrap();
    kommo.list_sources().send().or_empty().await.unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].header("x-request-id"), Some("lead-42"));
    let authorizations: Vec<_> = requests[0]
        .headers
        .get_all("authorization")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(authorizations, vec![format!("Bearer {TOKEN}")]);
    assert_eq!(requests[1].header("x-request-id"), None, "the call's alone");
}

mod retry_rules {
    use super::*;
    use lead_intake::retry::{Operation, RetryRules};
    use reqwest::{Method, StatusCode};

    fn conflict_then_sources() -> Vec<Reply> {
        vec![
            Reply::json(409, serde_json::json!({"title": "Conflict", "status": 409})),
            sources(),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_retries_a_status_its_rules_add() {
        let server = ScriptServer::sequence(conflict_then_sources()).await;
        let kommo = Client::builder()
            .base_url(&server.base_url)
            .token(TOKEN)
            .no_rate_limit()
            .retry(patient())
            .retry_rules(RetryRules::new().retry_status(StatusCode::CONFLICT))
            .http_client(http_without_timeouts())
            .build()
            .unwrap();
        kommo.list_sources().send().or_empty().await.unwrap();
        assert_eq!(server.requests().len(), 2);

        // The default client does not.
        let server = ScriptServer::sequence(conflict_then_sources()).await;
        let err = client(&server, None)
            .list_sources()
            .send()
            .or_empty()
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::CONFLICT));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_can_add_a_status_or_stop_retrying_its_operation() {
        let server = ScriptServer::sequence(conflict_then_sources()).await;
        let kommo = client(&server, None);
        let add_409 = RetryRules::new().retry_status(StatusCode::CONFLICT);
        kommo
            .list_sources()
            .send()
            .with_options(CallOptions::new().retry_rules(add_409))
            .or_empty()
            .await
            .unwrap();
        assert_eq!(server.requests().len(), 2);

        let server = ScriptServer::sequence(vec![Reply::status(503)]).await;
        let kommo = client(&server, None);
        let never = RetryRules::new().never_retry(Operation::id("list_sources"));
        let err = kommo
            .list_sources()
            .send()
            .with_options(CallOptions::new().retry_rules(never))
            .or_empty()
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(server.requests().len(), 1);
        // A rule for another operation changes nothing.
        let other = RetryRules::new().never_retry(Operation::id("list_widgets"));
        kommo
            .list_sources()
            .send()
            .with_options(CallOptions::new().retry_rules(other))
            .or_empty()
            .await
            .unwrap_err();
        assert_eq!(server.requests().len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_marked_safe_is_sent_again_after_a_5xx() {
        let add = |kommo: Client, rules: RetryRules| async move {
            kommo
                .add_sources()
                .body(
                    serde_json::from_value::<lead_intake::kommo::types::AddSourcesRequest>(
                        serde_json::json!([{"name": "chat", "external_id": "x1"}]),
                    )
                    .unwrap(),
                )
                .send()
                .with_options(CallOptions::new().retry_rules(rules))
                .body()
                .await
        };
        let replies = || {
            vec![
                Reply::status(503),
                Reply::json(200, example("addSources.response.200.json")),
            ]
        };
        let server = ScriptServer::sequence(replies()).await;
        let safe = RetryRules::new().safe_to_resend(Operation::id("add_sources"));
        add(client(&server, None), safe).await.unwrap();
        assert_eq!(server.requests().len(), 2);

        let server = ScriptServer::sequence(replies()).await;
        let by_route =
            RetryRules::new().safe_to_resend(Operation::route(Method::POST, "/api/v4/sources"));
        add(client(&server, None), by_route).await.unwrap();
        assert_eq!(server.requests().len(), 2);

        // Without the mark a POST is not sent again after a 5xx.
        let server = ScriptServer::sequence(replies()).await;
        let err = add(client(&server, None), RetryRules::new())
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(server.requests().len(), 1);
    }
}

/// The deadline against a limit shared through a real Redis (its clock cannot be paused: real
/// time passes, and only lower bounds on it are asserted).
mod shared_limit {
    use super::*;
    use common::redis_server::RedisServer;
    use lead_intake::shared::{RedisConnection, RedisRateLimit};

    async fn queued(server: &RedisServer, key: &str) -> i64 {
        let mut con = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wait_for_a_shared_limit_ends_at_the_deadline_and_leaves_the_queue() {
        let redis = RedisServer::start();
        let server = ScriptServer::sequence(vec![sources()]).await;
        // One request in 30 s for every client of the key.
        let limit = RedisRateLimit::new(
            &RedisConnection::open(redis.url()).unwrap(),
            "deadline",
            1,
            Duration::from_secs(30),
        )
        .unwrap();
        let kommo = client(&server, Some(limit.into()));
        kommo.list_sources().send().or_empty().await.unwrap();
        let started = std::time::Instant::now();
        let err = kommo
            .list_sources()
            .send()
            .with_options(CallOptions::new().deadline(Duration::from_millis(300)))
            .or_empty()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ApiError::DeadlineExceeded {
                    waiting_for: Waiting::Limiter,
                    attempts: 0,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            server.requests().len(),
            1,
            "the second request was not sent"
        );
        // The cancelled wait gave its place in the shared queue up.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while queued(&redis, "{deadline}:limit:queue").await != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the queue kept the waiter"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
