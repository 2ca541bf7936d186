//! The clients through the shared rate limit (feature `redis`), against a real Redis
//! (tests/common/redis_server.rs) and the fake server enforcing Kommo's rate limit.
//!
//! Redis's clock cannot be paused, so real time passes; the assertions are about what the fake
//! counted (429s, requests received), never about elapsed time.

mod common;

use std::time::Duration;

use common::redis_server::RedisServer;
use lead_intake::error::{ApiError, ResponseExt};
use lead_intake::kommo;
use lead_intake::ratelimit::RateLimiter;
use lead_intake::retry::RetryPolicy;
use lead_intake::shared::{RedisConnection, RedisRateLimit, SharedError};
use lead_intake_fake::{Config, FakeServer, Faults, Fixtures};

/// The fake's limit, and the shared limiter's: per second.
const LIMIT: u32 = 10;

fn fake() -> FakeServer {
    FakeServer::start(
        Config::default()
            .fixtures(Fixtures::empty())
            .faults(Faults::none().rate_limit(LIMIT)),
    )
    .expect("the fake starts")
}

/// A client that never retries, so every 429 the fake sends is an error the test sees.
fn client(fake: &FakeServer, limiter: impl Into<RateLimiter>) -> kommo::Client {
    kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .rate_limiter(limiter)
        .retry(RetryPolicy::default().with_max_attempts(1))
        .build()
        .expect("a loopback base URL is accepted")
}

/// `tasks` tasks spread over `clients`, `each` requests per task; returns the errors.
async fn load(clients: &[kommo::Client], tasks: usize, each: usize) -> Vec<String> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let client = clients[t % clients.len()].clone();
        handles.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..each {
                if let Err(e) = client.list_sources().send().or_empty().await {
                    errors.push(e.to_string());
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for handle in handles {
        errors.extend(handle.await.expect("a task panicked"));
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_sharing_one_redis_limit_get_no_429() {
    let redis = RedisServer::start();
    let fake = fake();
    let connection = RedisConnection::open(redis.url()).unwrap();
    // Two clients, as two processes would have: each its own `RedisRateLimit` value.
    let a = RedisRateLimit::new(&connection, "kommo:test", LIMIT, Duration::from_secs(1)).unwrap();
    let b = RedisRateLimit::new(
        &RedisConnection::open(redis.url()).unwrap(),
        "kommo:test",
        LIMIT,
        Duration::from_secs(1),
    )
    .unwrap();
    let clients = [client(&fake, a), client(&fake, b)];
    assert!(
        clients[0]
            .rate_limiter()
            .is_some_and(RateLimiter::is_shared)
    );
    let errors = load(&clients, 8, 4).await;
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 0, "429s: {errors:?}");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(stats.requests, 32);
}

/// The control, which shows the check above can fail: one in-process limiter per client, each
/// at the whole limit, send twice the rate and draw 429s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_with_their_own_local_limits_get_429s() {
    let fake = fake();
    let clients = [
        client(&fake, RateLimiter::per_second(LIMIT).unwrap()),
        client(&fake, RateLimiter::per_second(LIMIT).unwrap()),
    ];
    let errors = load(&clients, 8, 4).await;
    assert!(fake.stats().rate_limited > 0, "no 429 without sharing");
    assert!(!errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_nothing_is_sent_and_the_error_is_typed_then_requests_go_again() {
    let mut redis = RedisServer::start();
    let fake = fake();
    let connection = RedisConnection::open(redis.url())
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let limit =
        RedisRateLimit::new(&connection, "kommo:down", LIMIT, Duration::from_secs(1)).unwrap();
    let client = client(&fake, limit);
    client
        .list_sources()
        .send()
        .or_empty()
        .await
        .expect("Redis is up");
    assert_eq!(fake.stats().requests, 1);

    redis.stop();
    for _ in 0..3 {
        let error = client
            .list_sources()
            .send()
            .or_empty()
            .await
            .expect_err("Redis is down");
        let ApiError::RateLimiterUnavailable {
            endpoint,
            error: cause,
        } = &error
        else {
            panic!("not the limiter's error: {error:?}");
        };
        assert_eq!(endpoint, "/api/v4/sources");
        let shared = cause
            .cause()
            .downcast_ref::<SharedError>()
            .expect("the Redis limiter's error");
        assert!(shared.is_unavailable(), "{shared:?}");
        let text = error.to_string();
        assert!(
            text.contains(&redis.socket().display().to_string()),
            "{text}"
        );
        assert!(text.contains("kommo:down"), "{text}");
        assert!(error.certainly_not_applied());
    }
    assert_eq!(
        fake.stats().requests,
        1,
        "a request went out without a grant"
    );
    assert_eq!(fake.requests().len(), 1);

    redis.start_again();
    let mut sent = false;
    // Reconnecting is the connection's own business: it may take a few tries. The event is the
    // request going through; the deadline is a watchdog only a hung reconnect reaches, so a busy
    // machine never fails this.
    let watchdog = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < watchdog {
        match client.list_sources().send().or_empty().await {
            Ok(_) => {
                sent = true;
                break;
            }
            Err(ApiError::RateLimiterUnavailable { .. }) => tokio::task::yield_now().await,
            Err(other) => panic!("{other}"),
        }
    }
    assert!(sent, "requests never went again after Redis came back");
    assert_eq!(fake.stats().requests, 2);
}
