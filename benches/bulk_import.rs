//! Benchmark 4: 10,000 incoming leads through `add_incoming_forms_batched` (chunks of 50, so
//! 200 requests) against the fake server enforcing a rate limit of R requests per second per
//! integration, the way Kommo does (7 there; scaled up here so a run takes seconds). The
//! client's limiter is set to the same R. The ideal is (10,000 / 50) / R seconds; each run
//! prints its time, its ratio to the ideal and the 429s the fake answered (the target is zero).
//!
//! The sliding window lets the first R requests go at once, so the fastest schedule the
//! server's rule allows is shorter than the ideal: request k cannot start before
//! floor(k / R) periods, so the last starts after floor((N - 1) / R) periods, and the requests
//! of the last window still have to be served (the fake serves one request at a time). The
//! benchmark also times the same import with no limit at all (`unthrottled`), and prints the
//! resulting bound: floor((N - 1) / R) s + (R / N) x unthrottled time.
//!
//! `cargo bench --bench bulk_import`

use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group};
use lead_intake::fake::{Config, FakeServer, Faults};
use lead_intake::kommo::types::AddIncomingForm;
use lead_intake::prelude::*;
use lead_intake::ratelimit::RateLimiter;
use serde_json::json;

const LEADS: usize = 10_000;
const CHUNK: usize = 50;

/// A web form submission, different for each `i` (the fake refuses identical ones).
fn form(i: usize) -> AddIncomingForm {
    serde_json::from_value(json!({
        "source_name": "Landing page form",
        "source_uid": "bench-form",
        "pipeline_id": 6950551,
        "created_at": 1_700_000_000 + i as i64,
        "request_id": format!("req-{i}"),
        "_embedded": {
            "leads": [{"name": format!("Request #{i}"), "price": 100 * (i as i64 % 7 + 1)}],
            "contacts": [{"name": format!("Visitor {i}")}]
        },
        "metadata": {
            "ip": "203.0.113.7",
            "form_id": "bench-form",
            "form_sent_at": 1_700_000_000 + i as i64,
            "form_name": "Contact us",
            "form_page": "https://example.com/contact",
            "referer": "https://www.example.org"
        }
    }))
    .expect("a valid form")
}

struct Run {
    elapsed: Duration,
    rate_limited: u64,
}

/// One import into a fresh fake limited to `rate` per second; only the import is timed.
fn import(
    rt: &tokio::runtime::Runtime,
    forms: &[AddIncomingForm],
    rate: Option<u32>,
    concurrency: usize,
    margin: Option<Duration>,
) -> Run {
    let faults = match rate {
        Some(rate) => Faults::none().rate_limit(rate),
        None => Faults::none(),
    };
    let fake = FakeServer::start(Config::default().faults(faults)).expect("the fake starts");
    let builder = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .http_client(reqwest::Client::new());
    let client = match rate {
        Some(rate) => {
            let limiter = RateLimiter::per_second(rate).expect("a valid limit");
            builder.rate_limiter(match margin {
                Some(margin) => limiter.with_margin(margin),
                None => limiter,
            })
        }
        None => builder.no_rate_limit(),
    }
    .build()
    .expect("a loopback client");
    let options = BatchOptions::new()
        .chunk_size(CHUNK)
        .concurrency(concurrency);
    let started = Instant::now();
    let report = rt.block_on(client.add_incoming_forms_batched(forms, &options));
    let elapsed = started.elapsed();
    assert_eq!(
        report.counts().succeeded,
        forms.len(),
        "{:?}",
        report.counts()
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    Run {
        elapsed,
        rate_limited: fake.stats().rate_limited,
    }
}

fn bulk_import(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let forms: Vec<_> = (0..LEADS).map(form).collect();
    let mut group = c.benchmark_group("bulk_import_10k");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(40));
    let free = Mutex::new(Vec::new());
    group.bench_function(BenchmarkId::new("unthrottled", "concurrency_1"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let run = import(&rt, &forms, None, 1, None);
                total += run.elapsed;
                free.lock()
                    .expect("not poisoned")
                    .push(run.elapsed.as_secs_f64());
            }
            total
        })
    });
    let free = free.into_inner().expect("not poisoned");
    let free = free.iter().sum::<f64>() / free.len() as f64;
    let requests = LEADS.div_ceil(CHUNK);
    // The default limiter, and one counting request starts only (margin zero), which is
    // what a limiter that ignores arrival delays does.
    let configs = [
        (50u32, 1, None),
        (50, 4, None),
        (50, 4, Some(Duration::ZERO)),
    ];
    for (rate, concurrency, margin) in configs {
        let runs = Mutex::new(Vec::new());
        let id = BenchmarkId::new(
            format!("rate_{rate}_per_s"),
            match margin {
                None => format!("concurrency_{concurrency}"),
                Some(m) => format!("concurrency_{concurrency}_margin_{}ms", m.as_millis()),
            },
        );
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = import(&rt, &forms, Some(rate), concurrency, margin);
                    total += run.elapsed;
                    runs.lock().expect("not poisoned").push(run);
                }
                total
            })
        });
        let runs = runs.into_inner().expect("not poisoned");
        let ideal = requests as f64 / f64::from(rate);
        let bound =
            ((requests - 1) / rate as usize) as f64 + free * f64::from(rate) / requests as f64;
        let ratios: Vec<f64> = runs
            .iter()
            .map(|r| r.elapsed.as_secs_f64() / ideal)
            .collect();
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let (min, max) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let limited: u64 = runs.iter().map(|r| r.rate_limited).sum();
        let seconds = runs.iter().map(|r| r.elapsed.as_secs_f64()).sum::<f64>() / runs.len() as f64;
        println!(
            "bulk_import rate {rate}/s concurrency {concurrency} margin {margin:?}: {} runs, mean {seconds:.2} s; \
             ideal {ideal:.2} s, ratio mean {mean:.3} (min {min:.3}, max {max:.3}); \
             window bound {bound:.2} s (unthrottled {free:.2} s), ratio {:.3}; \
             429s in all runs: {limited}",
            runs.len(),
            seconds / bound
        );
    }
    group.finish();
}

criterion_group!(benches, bulk_import);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
