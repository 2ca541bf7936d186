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
use lead_intake_fake::{Config, FakeServer, Faults};
use worker::{Job, Mode, WorkerConfig, Workers};

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
    let exe = std::env::current_exe().expect("the test binary's path");
    let args = [
        "worker_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    Workers::start(&exe, &args, fake.kommo_token().expose(), configs)
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

/// Redis killed (SIGKILL) in the middle of four batch imports, then started again. Redis keeps
/// an append-only file fsynced before each answer, so the window it held survives the restart
/// (without persistence a restart forgets the window, and the bound then holds only if the
/// outage outlasts one period plus the margin: the limiter cannot know what it forgot).
#[test]
fn redis_restarted_mid_import_no_request_over_the_limit_and_every_item_accounted_for() {
    let mut redis = RedisServer::start_persistent();
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
                "kommo:restart",
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
