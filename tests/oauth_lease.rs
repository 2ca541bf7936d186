//! Issue 20 §3: a refresh token is sent at most once, even when the token endpoint is slow.
//! Real processes (this binary re-run as workers, tests/common/worker.rs), a real Redis and the
//! fake's token endpoint made slow: it answers the first token request `429 Retry-After: 1`
//! twice, then takes 3 seconds to answer, while the refresh lock's time to live is 2 seconds.
//! The holder keeps its lock for as long as its token request may be sent or answered (a lease it
//! renews), the others wait for it, and nobody spends the refresh token twice.
//!
//! The fake's and Redis's clocks are real: the assertions are about counts (what the fake
//! answered, what the store holds, what each worker saw), never about elapsed time.

mod common;
#[path = "common/worker.rs"]
mod worker;

use std::time::Duration;

use common::redis_server::RedisServer;
use lead_intake::oauth::{self, TokenPair};
use lead_intake::shared::{RedisConnection, RedisTokenStore};
use lead_intake_fake::{Config, FakeServer, Fault, Faults};
use worker::{Job, Mode, OAuthWorker, WorkerConfig, Workers};

/// The worker role: runs only when the test starts this binary as a worker.
#[test]
#[ignore = "the worker process of the other tests; they run it with LEAD_INTAKE_WORKER set"]
fn worker_process() {
    assert!(
        worker::run_if_worker(),
        "this is the worker role of tests/oauth_lease.rs: it runs with {} set",
        worker::WORKER_ENV
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn store(redis: &RedisServer, key: &str) -> RedisTokenStore {
    RedisTokenStore::new(&RedisConnection::open(redis.url()).unwrap(), key).unwrap()
}

/// The first pair from the fake's code exchange, stored as already expired: every worker's
/// first request finds it due, and none can use it meanwhile.
fn store_due_pair(fake: &FakeServer, redis: &RedisServer, key: &str) {
    runtime().block_on(async {
        let mut pair: TokenPair = oauth::exchange_code(
            &fake.base_url(),
            &fake.oauth_app(),
            &fake.authorization_code(),
        )
        .await
        .expect("the code is exchanged");
        pair.expires_at = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
            - chrono::TimeDelta::seconds(1);
        let stored = oauth::store_tokens(&store(redis, key), pair)
            .await
            .expect("stored");
        assert_eq!(stored.version(), 1);
    })
}

fn stored_version(redis: &RedisServer, key: &str) -> u64 {
    runtime().block_on(async {
        store(redis, key)
            .load()
            .await
            .unwrap()
            .expect("a stored pair")
            .version()
    })
}

/// Three workers, the first pair due, a lock of 2 s, a token endpoint that answers the first
/// token request 429 (Retry-After: 1) twice and then after 3 s: the holder's token request
/// outlasts the lock's time to live. The refresh token is sent once (no revoked reuse), the new
/// pair is stored (version 2), `on_refresh` ran once, and every request of every worker is
/// authorised (no worker is logged out).
#[test]
fn a_slow_token_endpoint_that_answers_429_first_still_sees_each_refresh_token_once() {
    let redis = RedisServer::start();
    let fake = FakeServer::start(Config::default().faults(Faults::none())).expect("the fake");
    let key = "kommo:oauth-slow";
    store_due_pair(&fake, &redis, key);
    fake.inject_token_faults([
        Fault::RetryAfter(Duration::from_secs(1)),
        Fault::RetryAfter(Duration::from_secs(1)),
        Fault::Slow(Duration::from_secs(3)),
    ]);

    let configs: Vec<WorkerConfig> = (0..3)
        .map(|_| WorkerConfig {
            base_url: fake.base_url(),
            redis_url: redis.url(),
            key: key.to_string(),
            max: 50,
            period_ms: 1000,
            redis_timeout_ms: 2000,
            tasks: 2,
            mode: Mode::Redis,
            job: Job::List {
                requests_per_task: 2,
            },
            oauth: Some(OAuthWorker {
                key: key.to_string(),
                client_id: fake.oauth().client_id().to_string(),
                redirect_uri: fake.oauth().redirect_uri().to_string(),
                refresh_margin_ms: 1_000,
                lock_ttl_ms: 2_000,
            }),
        })
        .collect();
    let exe = std::env::current_exe().expect("the test binary's path");
    let args = [
        "worker_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    let token = fake.kommo_token();
    let secret = fake.oauth().client_secret().clone();
    let mut workers = Workers::start_with(
        &exe,
        &args,
        &[
            (worker::TOKEN_ENV, token.expose()),
            (worker::CLIENT_SECRET_ENV, secret.expose()),
            // The token request is sent again after a 429 (the default policy's 4 attempts).
            (worker::RETRY_ATTEMPTS_ENV, "4"),
        ],
        &configs,
    );
    workers.go();
    let reports = workers.reports();

    let total = worker::total(&reports);
    let oauth = fake.oauth_stats();
    let token_requests: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth2/access_token")
        .map(ToString::to_string)
        .collect();
    // The scenario happened: two 429s, then the slow answer.
    assert_eq!(
        fake.stats().rate_limited,
        2,
        "the two 429s of the token endpoint: {token_requests:#?}"
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.fault == Some(Fault::Slow(Duration::from_secs(3)))),
        "the slow token answer: {token_requests:#?}"
    );
    assert_eq!(
        oauth.revoked_reuses, 0,
        "a refresh token was sent twice: {oauth:?} {total:?} {token_requests:#?}"
    );
    assert_eq!(
        total.errors(),
        0,
        "every request authorised, no worker logged out: {total:?} {oauth:?} {token_requests:#?}"
    );
    assert_eq!(total.ok, 3 * 2 * 2);
    assert_eq!(oauth.refreshes, 1, "one refresh: {oauth:?}");
    assert_eq!(
        reports.iter().map(|r| r.refreshes).sum::<u64>(),
        1,
        "on_refresh once, where the refresh happened"
    );
    assert_eq!(stored_version(&redis, key), 2, "the new pair is stored");
}
