//! Issue 14 §5, the rate limit: four OS processes, eight concurrent tasks each, one account,
//! against the fake enforcing Kommo's rule (R requests per second per integration, the account
//! blocked after repeated 429s), with R scaled up so a run takes seconds.
//!
//! The processes are this test binary started again with the ignored test [`worker_process`]
//! selected and [`worker::WORKER_ENV`] set (tests/common/worker.rs): each builds its client, says
//! it is ready, and waits for a line on stdin, so all start at once; each prints one JSON report.
//!
//! The fake's and Redis's clocks are real: the assertions are about counts (what the fake
//! answered, what each worker saw), never about elapsed time.

mod common;
// Only this test (and benches/shared_limit.rs) runs workers.
#[path = "common/worker.rs"]
mod worker;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, mpsc};

use common::redis_server::RedisServer;
use lead_intake::oauth::{self, TokenPair};
use lead_intake::shared::{RedisConnection, RedisTokenStore};
use lead_intake_fake::{Config, FakeServer, Faults, OAuthConfig};
use worker::{Job, Mode, OAuthWorker, WorkerConfig, Workers};

/// The fake's limit and the limiters': per second.
const LIMIT: u32 = 50;
/// The fake blocks the account after this many 429s.
const BLOCK_AFTER: u32 = 3;
const PROCESSES: usize = 4;
const TASKS: usize = 8;

/// The worker role: runs only when the other tests start this binary as a worker.
#[test]
#[ignore = "the worker process of the other tests; they run it with LEAD_INTAKE_WORKER set"]
fn worker_process() {
    assert!(
        worker::run_if_worker(),
        "this is the worker role of tests/multi_process.rs: it runs with {} set",
        worker::WORKER_ENV
    );
}

/// This binary, re-run as one worker.
fn start(fake: &FakeServer, configs: &[WorkerConfig]) -> Workers {
    start_with(&[(worker::TOKEN_ENV, fake.kommo_token().expose())], configs)
}

/// This binary, re-run as workers (its ignored test [`worker_process`] selected), with `env`.
fn start_with(env: &[(&str, &str)], configs: &[WorkerConfig]) -> Workers {
    let exe = std::env::current_exe().expect("the test binary's path");
    let args = [
        "worker_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    Workers::start_with(&exe, &args, env, configs)
}

fn config(fake: &FakeServer, redis: &str, key: &str, mode: Mode, job: Job) -> WorkerConfig {
    WorkerConfig {
        base_url: fake.base_url(),
        redis_url: redis.to_string(),
        key: key.to_string(),
        max: LIMIT,
        period_ms: 1000,
        redis_timeout_ms: 2000,
        tasks: TASKS,
        mode,
        job,
        oauth: None,
    }
}

fn fake(config: Config) -> FakeServer {
    FakeServer::start(config.faults(Faults::none().rate_limit(LIMIT).block_after(BLOCK_AFTER)))
        .expect("the fake starts")
}

#[test]
fn four_processes_sharing_the_redis_limit_get_no_429_and_every_request_through() {
    let redis = RedisServer::start();
    let fake = fake(Config::default());
    let each = 4;
    let job = Job::List {
        requests_per_task: each,
    };
    let configs: Vec<_> = (0..PROCESSES)
        .map(|_| config(&fake, &redis.url(), "kommo:multi", Mode::Redis, job.clone()))
        .collect();
    let mut workers = start(&fake, &configs);
    workers.go();
    let reports = workers.reports();
    let total = worker::total(&reports);
    let stats = fake.stats();
    let sent = (PROCESSES * TASKS * each) as u64;
    assert_eq!(stats.rate_limited, 0, "429s: {total:?}");
    assert!(!fake.is_blocked());
    assert_eq!(total.errors(), 0, "{total:?}");
    assert_eq!(total.ok, sent);
    assert_eq!(stats.requests, sent);
    for (n, report) in reports.iter().enumerate() {
        assert_eq!(report.counts.ok, (TASKS * each) as u64, "worker {n}");
    }
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// The control, which shows the check above can fail: each process with its own in-process
/// limiter at the whole limit. Each process runs for more than two periods, so their windows
/// overlap however the machine schedules them: 429s, and the account blocked.
#[test]
fn four_processes_with_their_own_limiters_get_429s_and_the_account_blocked() {
    let fake = fake(Config::default());
    let job = Job::List {
        requests_per_task: 16,
    };
    let configs: Vec<_> = (0..PROCESSES)
        .map(|_| config(&fake, "", "", Mode::LocalControl, job.clone()))
        .collect();
    let mut workers = start(&fake, &configs);
    workers.go();
    let reports = workers.reports();
    let total = worker::total(&reports);
    let stats = fake.stats();
    assert!(
        stats.rate_limited >= u64::from(BLOCK_AFTER),
        "{stats:?} {total:?}"
    );
    assert!(fake.is_blocked(), "the account was not blocked");
    assert_eq!(total.rate_limited, stats.rate_limited, "{total:?}");
    assert_eq!(total.blocked, stats.blocked, "{total:?}");
    assert!(total.blocked > 0, "{total:?}");
    assert_eq!(total.limiter_unavailable, 0);
    assert!(total.other.is_empty(), "{total:?}");
}

/// Redis killed (SIGKILL) in the middle of four batch imports, then started again. This Redis
/// keeps an append-only file fsynced before each answer, so the window it held survives the
/// restart.
#[test]
fn redis_restarted_mid_import_no_request_over_the_limit_and_every_item_accounted_for() {
    restart_mid_import(RedisServer::start_persistent(), "kommo:restart");
}

/// The same with a Redis that comes back without its data: the window is forgotten, and the
/// limit, finding no history, grants nothing for a period and the margin.
#[test]
fn redis_restarted_without_its_data_still_sends_nothing_over_the_limit() {
    restart_mid_import(RedisServer::start(), "kommo:restart-lost");
}

fn restart_mid_import(mut redis: RedisServer, key: &str) {
    // The outage starts once the fake has answered this many requests: mid-run.
    const OUTAGE_AFTER: usize = 60;
    let (outage_tx, outage) = mpsc::channel::<()>();
    let outage_tx = Mutex::new(Some(outage_tx));
    let seen = Arc::new(Mutex::new(0usize));
    let fake = fake(Config::default().on_request(move |_| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen += 1;
        if *seen == OUTAGE_AFTER
            && let Some(tx) = outage_tx.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = tx.send(());
        }
    }));
    let items: usize = 60;
    let invalid_every = 10;
    let configs: Vec<_> = (0..PROCESSES)
        .map(|n| {
            let mut config = config(
                &fake,
                &redis.url(),
                key,
                Mode::Redis,
                Job::Batch {
                    items,
                    prefix: format!("w{n}"),
                    chunk_size: 2,
                    invalid_every: Some(invalid_every),
                    give_up_after_ms: 120_000,
                },
            );
            config.redis_timeout_ms = 500;
            config
        })
        .collect();
    let mut workers = start(&fake, &configs);
    workers.go();

    outage
        .recv_timeout(worker::WATCHDOG)
        .expect("the fake saw the run's first requests");
    redis.stop();
    // Every worker tries to send while Redis is down, and is told so with the typed error.
    workers.wait_unavailable(PROCESSES);
    redis.start_again();
    let reports = workers.reports();

    let total = worker::total(&reports);
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 0, "a request went over the limit");
    assert!(!fake.is_blocked());
    assert!(total.limiter_unavailable >= PROCESSES as u64, "{total:?}");
    assert_eq!(
        total.errors(),
        total.limiter_unavailable,
        "errors other than the typed one: {total:?}"
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());

    // What the fake holds, by request_id: nothing twice.
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for lead in fake.incoming_leads() {
        if lead.lead["source_uid"] == "multi-process" {
            let id = lead.request_id.expect("created with a request_id");
            *stored.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "created more than once: {twice:?}");

    let mut accounted = 0;
    for (n, report) in reports.iter().enumerate() {
        let batch = report.batch.as_ref().expect("a batch report");
        assert!(batch.rounds > 1, "worker {n} never had to send again");
        assert!(
            batch.not_sent.is_empty(),
            "worker {n} gave up on {:?}",
            batch.not_sent
        );
        let parts = [&batch.succeeded, &batch.rejected, &batch.unknown];
        let listed: Vec<&String> = parts.iter().flat_map(|p| p.iter()).collect();
        assert_eq!(listed.len(), items, "worker {n}: {batch:?}");
        let distinct: std::collections::BTreeSet<_> = listed.iter().collect();
        assert_eq!(distinct.len(), items, "worker {n} reported an item twice");
        for id in &batch.succeeded {
            assert_eq!(stored.get(id), Some(&1), "worker {n}: {id} succeeded");
        }
        for id in &batch.rejected {
            assert_eq!(stored.get(id), None, "worker {n}: {id} was rejected");
            let i: usize = id
                .rsplit('-')
                .next()
                .and_then(|i| i.parse().ok())
                .expect("an index");
            assert_eq!(i % invalid_every, 0, "worker {n}: a valid {id} rejected");
        }
        assert_eq!(batch.rejected.len(), items.div_ceil(invalid_every));
        accounted += listed.len();
    }
    assert_eq!(accounted, PROCESSES * items);
    // Every stored lead is one a worker reported as created (or as unknown).
    let reported: std::collections::BTreeSet<&String> = reports
        .iter()
        .filter_map(|r| r.batch.as_ref())
        .flat_map(|b| b.succeeded.iter().chain(&b.unknown))
        .collect();
    for id in stored.keys() {
        assert!(
            reported.contains(id),
            "{id} is stored, but no worker says so"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth tokens through the shared store (issue 14 §2 and §5).

/// `configs` as OAuth workers of the fake's integration, sharing the store `key`.
///
/// Their shared limit is one below the fake's: the code exchange that made the first pair went
/// to the fake around the limiter, just before the run, and is still in the fake's window.
fn with_oauth(
    mut configs: Vec<WorkerConfig>,
    fake: &FakeServer,
    key: &str,
    lock_ttl_ms: u64,
    refresh_margin_ms: u64,
) -> Vec<WorkerConfig> {
    for config in &mut configs {
        config.max = LIMIT - 1;
        config.oauth = Some(OAuthWorker {
            key: key.to_string(),
            client_id: fake.oauth().client_id().to_string(),
            redirect_uri: fake.oauth().redirect_uri().to_string(),
            refresh_margin_ms,
            lock_ttl_ms,
        });
    }
    configs
}

/// The OAuth workers of `configs` (this binary re-run), with the client secret in their
/// environment only.
fn start_oauth(fake: &FakeServer, configs: &[WorkerConfig]) -> Workers {
    let token = fake.kommo_token();
    let secret = fake.oauth().client_secret().clone();
    start_with(
        &[
            (worker::TOKEN_ENV, token.expose()),
            (worker::CLIENT_SECRET_ENV, secret.expose()),
        ],
        configs,
    )
}

/// The first pair from the fake's code exchange, stored for every worker (`due`: expired a
/// second ago, so the first request of every worker finds it due).
fn store_first_pair(fake: &FakeServer, redis: &RedisServer, key: &str, due: bool) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut pair: TokenPair = oauth::exchange_code(
            &fake.base_url(),
            &fake.oauth_app(),
            &fake.authorization_code(),
        )
        .await
        .expect("the code is exchanged");
        if due {
            pair.expires_at = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                - chrono::TimeDelta::seconds(1);
        }
        let store =
            RedisTokenStore::new(&RedisConnection::open(redis.url()).unwrap(), key).unwrap();
        oauth::store_tokens(&store, pair)
            .await
            .expect("stored")
            .version()
    })
}

/// The store's version now.
fn stored_version(redis: &RedisServer, key: &str) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store =
            RedisTokenStore::new(&RedisConnection::open(redis.url()).unwrap(), key).unwrap();
        store
            .load()
            .await
            .unwrap()
            .expect("a stored pair")
            .version()
    })
}

/// Access tokens that last 2 seconds, refreshed 1 second before they expire, under the load of
/// the rate-limit test (4 processes × 8 tasks through the shared limit): each pair is refreshed
/// by exactly one process (a second refresh of it would spend its refresh token again, which the
/// fake counts as a revoked reuse), every refresh is stored, and every request is authorised.
#[test]
fn under_load_with_tokens_expiring_every_two_seconds_each_pair_is_refreshed_once() {
    let redis = RedisServer::start();
    let fake = fake(
        Config::default()
            .oauth(OAuthConfig::default().access_token_lifetime(std::time::Duration::from_secs(2))),
    );
    let key = "kommo:oauth-load";
    assert_eq!(store_first_pair(&fake, &redis, key, false), 1);
    // 4 × 8 × 12 = 384 requests at 50 per second: about 8 seconds, some 7 refreshes.
    let job = Job::List {
        requests_per_task: 12,
    };
    let configs: Vec<_> = (0..PROCESSES)
        .map(|_| config(&fake, &redis.url(), key, Mode::Redis, job.clone()))
        .collect();
    let configs = with_oauth(configs, &fake, key, 5_000, 1_000);
    let mut workers = start_oauth(&fake, &configs);
    workers.go();
    let reports = workers.reports();

    let total = worker::total(&reports);
    let oauth = fake.oauth_stats();
    assert_eq!(
        total.errors(),
        0,
        "every request authorised: {total:?} {oauth:?}"
    );
    assert_eq!(total.ok, (PROCESSES * TASKS * 12) as u64);
    assert_eq!(
        oauth.revoked_reuses, 0,
        "a refresh token was spent twice: {oauth:?}"
    );
    assert!(
        oauth.refreshes >= 3,
        "the run outlasted several expiries: {oauth:?}"
    );
    let callbacks: u64 = reports.iter().map(|r| r.refreshes).sum();
    assert_eq!(
        callbacks, oauth.refreshes,
        "on_refresh once per refresh, where it happened"
    );
    assert_eq!(
        stored_version(&redis, key),
        1 + oauth.refreshes,
        "every refresh stored"
    );
    assert_eq!(
        fake.stats().rate_limited,
        0,
        "token requests go through the shared limit too"
    );
    assert!(!fake.is_blocked());
}

/// The same load, half of it raw calls (`client.request`, issue 22 §1) of an endpoint the
/// typed calls do not use: the raw calls go through the same shared limit and the same token
/// store, so there is still no 429, and each pair is still refreshed once.
#[test]
fn typed_and_raw_calls_mixed_share_the_limit_and_each_pair_is_refreshed_once() {
    let redis = RedisServer::start();
    let fake = fake(
        Config::default()
            .oauth(OAuthConfig::default().access_token_lifetime(std::time::Duration::from_secs(2))),
    );
    let key = "kommo:oauth-mixed";
    assert_eq!(store_first_pair(&fake, &redis, key, false), 1);
    let job = Job::Mixed {
        requests_per_task: 12,
    };
    let configs: Vec<_> = (0..PROCESSES)
        .map(|_| config(&fake, &redis.url(), key, Mode::Redis, job.clone()))
        .collect();
    let configs = with_oauth(configs, &fake, key, 5_000, 1_000);
    let mut workers = start_oauth(&fake, &configs);
    workers.go();
    let reports = workers.reports();

    let total = worker::total(&reports);
    let oauth = fake.oauth_stats();
    let stats = fake.stats();
    assert_eq!(
        total.errors(),
        0,
        "every request authorised: {total:?} {oauth:?}"
    );
    assert_eq!(total.ok, (PROCESSES * TASKS * 12) as u64);
    let answered = |operation: &str| {
        stats
            .by_operation
            .get(operation)
            .map(|by_status| {
                by_status
                    .iter()
                    .filter(|(status, _)| (200..300).contains(*status))
                    .map(|(_, n)| n)
                    .sum::<u64>()
            })
            .unwrap_or_default()
    };
    // Answered with a success (the sources' list is empty: 204).
    let half = (PROCESSES * TASKS * 6) as u64;
    assert_eq!(
        answered("kommo.listWidgets"),
        half,
        "the raw calls: {stats:?}"
    );
    assert_eq!(
        answered("kommo.listSources"),
        half,
        "the typed calls: {stats:?}"
    );
    assert_eq!(
        oauth.revoked_reuses, 0,
        "a refresh token was spent twice: {oauth:?}"
    );
    assert!(
        oauth.refreshes >= 3,
        "the run outlasted several expiries: {oauth:?}"
    );
    let callbacks: u64 = reports.iter().map(|r| r.refreshes).sum();
    assert_eq!(callbacks, oauth.refreshes, "on_refresh once per refresh");
    assert_eq!(
        stored_version(&redis, key),
        1 + oauth.refreshes,
        "every refresh stored"
    );
    assert_eq!(
        stats.rate_limited, 0,
        "raw calls go through the shared limit too"
    );
    assert!(!fake.is_blocked());
}

/// A process that holds the refresh lock is killed (SIGKILL) while its token request hangs (it
/// went to a server that never answers, so the refresh token is unspent). The others wait for
/// the lock to run out, then one of them refreshes, once.
#[test]
fn a_process_killed_while_it_holds_the_refresh_lock_costs_only_the_lock_s_lifetime() {
    let redis = RedisServer::start();
    let fake = fake(Config::default());
    let key = "kommo:oauth-kill";
    store_first_pair(&fake, &redis, key, true);

    // The victim's Kommo is a listener that reads the request and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_url = format!("http://{}", hole.local_addr().unwrap());
    let (asked_tx, asked) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for stream in hole.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut head = [0u8; 64];
            let n = std::io::Read::read(&mut stream, &mut head).unwrap_or(0);
            let _ = asked_tx.send(String::from_utf8_lossy(&head[..n]).into_owned());
            kept.push(stream); // never answered, never closed
        }
    });
    let lock_ttl_ms = 1_500;
    let job = Job::List {
        requests_per_task: 1,
    };
    let mut victim_config = config(&fake, &redis.url(), key, Mode::Redis, job.clone());
    victim_config.base_url = hole_url;
    victim_config.tasks = 1;
    let victim_config = with_oauth(vec![victim_config], &fake, key, lock_ttl_ms, 1_000);
    let mut victim = start_oauth(&fake, &victim_config);
    victim.go();
    let first = asked
        .recv_timeout(worker::WATCHDOG)
        .expect("the victim asked for a token");
    assert!(first.starts_with("POST /oauth2/access_token"), "{first}");
    // It holds the lock now (the token request is made under it): kill it there.
    victim.kill();

    let others: Vec<_> = (0..3)
        .map(|_| {
            config(
                &fake,
                &redis.url(),
                key,
                Mode::Redis,
                Job::List {
                    requests_per_task: 2,
                },
            )
        })
        .collect();
    let others = with_oauth(others, &fake, key, lock_ttl_ms, 1_000);
    let mut workers = start_oauth(&fake, &others);
    workers.go();
    let reports = workers.reports();

    let total = worker::total(&reports);
    let oauth = fake.oauth_stats();
    assert_eq!(total.errors(), 0, "{total:?} {oauth:?}");
    assert_eq!(
        oauth.refreshes, 1,
        "refreshed once, after the lock ran out: {oauth:?}"
    );
    assert_eq!(oauth.revoked_reuses, 0, "{oauth:?}");
    assert_eq!(reports.iter().map(|r| r.refreshes).sum::<u64>(), 1);
    assert_eq!(stored_version(&redis, key), 2);
}
