//! Benchmark 6: four OS processes, eight concurrent tasks each, one account, against the fake
//! enforcing R requests per second per integration (Kommo's rule, R scaled up from 7 so a run
//! takes seconds) and blocking the account after 3 429s (issue 14 §5).
//!
//! - **redis**: every process limits through the shared Redis limiter (`RedisRateLimit`, R per
//!   second, default margin) on one `redis-server` of the benchmark's own (Unix socket).
//! - **local_control**: every process has its own in-process `RateLimiter` at R per second.
//!
//! The processes are this benchmark's binary started again as workers (tests/common/worker.rs,
//! the same worker as tests/multi_process.rs). Each run starts a fresh fake and uses a fresh key,
//! releases the four processes at once, and times the run until the last report. Each run
//! records the 429s and blocked answers the fake sent and the aggregate rate of successful
//! answers across the four processes: (answers - 1) / (last answer - first answer).
//!
//! With N = 256 requests and R = 85, N - 1 = 3 R: the fastest schedule the window allows starts
//! request k at floor(k / R) periods, so the last at exactly 3 s, and the aggregate rate of that
//! schedule is exactly R. The printed ratio is the achieved rate over R (the target: at least
//! 0.95, and no 429).
//!
//! `cargo bench --bench shared_limit` (needs redis-server: `scripts/install-redis.sh`)

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)] // the benchmark needs no persistence
mod redis_server;
#[path = "../tests/common/worker.rs"]
mod worker;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use lead_intake_fake::{Config, FakeServer, Faults};
use redis_server::RedisServer;
use worker::{Job, Mode, WorkerConfig, Workers};

/// The fake's limit and every limiter's, per second.
const RATE: u32 = 85;
const PROCESSES: usize = 4;
const TASKS: usize = 8;
const EACH: usize = 8;

struct Run {
    elapsed: Duration,
    rate: Option<f64>,
    sent: u64,
    ok: u64,
    rate_limited: u64,
    blocked: u64,
    account_blocked: bool,
    other_errors: u64,
}

fn run(redis: &RedisServer, mode: Mode, key: &str) -> Run {
    let fake =
        FakeServer::start(Config::default().faults(Faults::none().rate_limit(RATE).block_after(3)))
            .expect("the fake starts");
    let config = WorkerConfig {
        base_url: fake.base_url(),
        redis_url: redis.url(),
        key: key.to_string(),
        max: RATE,
        period_ms: 1000,
        redis_timeout_ms: 2000,
        tasks: TASKS,
        mode,
        job: Job::List {
            requests_per_task: EACH,
        },
        oauth: None,
    };
    let exe = std::env::current_exe().expect("the benchmark's path");
    let mut workers = Workers::start(
        &exe,
        &[],
        fake.kommo_token().expose(),
        &vec![config; PROCESSES],
    );
    let started = Instant::now();
    workers.go();
    let reports = workers.reports();
    let elapsed = started.elapsed();
    let total = worker::total(&reports);
    let stats = fake.stats();
    assert_eq!(
        total.rate_limited, stats.rate_limited,
        "the workers and the fake disagree"
    );
    Run {
        elapsed,
        rate: worker::aggregate_rate(&reports),
        sent: stats.requests,
        ok: total.ok,
        rate_limited: stats.rate_limited,
        blocked: stats.blocked,
        account_blocked: fake.is_blocked(),
        other_errors: total.errors() - total.rate_limited - total.blocked,
    }
}

fn shared_limit(c: &mut Criterion) {
    let redis = RedisServer::start();
    let keys = AtomicUsize::new(0);
    let mut group = c.benchmark_group("shared_limit_4x8");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(1));
    // A Redis run takes 3 s, a control run (blocked within milliseconds) a few dozen ms.
    let modes = [
        (Mode::Redis, "redis", 30),
        (Mode::LocalControl, "local_control", 1),
    ];
    for (mode, name, seconds) in modes {
        group.measurement_time(Duration::from_secs(seconds));
        let runs = Mutex::new(Vec::new());
        group.bench_function(BenchmarkId::new(name, format!("rate_{RATE}_per_s")), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let key = format!("bench:{}", keys.fetch_add(1, Ordering::Relaxed));
                    let run = run(&redis, mode, &key);
                    total += run.elapsed;
                    runs.lock().expect("not poisoned").push(run);
                }
                total
            })
        });
        let runs = runs.into_inner().expect("not poisoned");
        if runs.is_empty() {
            // Filtered out on the command line.
            continue;
        }
        let rates: Vec<f64> = runs.iter().filter_map(|r| r.rate).collect();
        let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
        let (min, max) = rates
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let sum = |f: fn(&Run) -> u64| runs.iter().map(f).sum::<u64>();
        let blocked_runs = runs.iter().filter(|r| r.account_blocked).count();
        let seconds = runs.iter().map(|r| r.elapsed.as_secs_f64()).sum::<f64>() / runs.len() as f64;
        let sent_rate = runs
            .iter()
            .map(|r| r.sent as f64 / r.elapsed.as_secs_f64())
            .sum::<f64>()
            / runs.len() as f64;
        let n = runs.len() as f64;
        println!(
            "shared_limit {name} rate {RATE}/s, {PROCESSES} processes x {TASKS} tasks x {EACH}: \
             {} runs, mean {seconds:.3} s; requests the fake received per second of run {sent_rate:.1}; \
             aggregate rate of ok answers mean {mean:.2}/s (min {min:.2}, max {max:.2}), \
             ratio to the bound {:.3} (min {:.3}, max {:.3}); per run: ok {:.1}, 429s {:.1}, \
             blocked 403s {:.1}; runs ending blocked {blocked_runs}; other errors {}",
            runs.len(),
            mean / f64::from(RATE),
            min / f64::from(RATE),
            max / f64::from(RATE),
            sum(|r| r.ok) as f64 / n,
            sum(|r| r.rate_limited) as f64 / n,
            sum(|r| r.blocked) as f64 / n,
            sum(|r| r.other_errors),
        );
    }
    group.finish();
}

fn main() {
    // The worker processes are this binary again.
    if worker::run_if_worker() {
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    shared_limit(&mut criterion);
    criterion.final_summary();
}
