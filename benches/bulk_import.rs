//! Benchmark 4: 10,000 incoming leads through `add_incoming_forms_batched` (chunks of 50, so
//! 200 requests) against the fake server enforcing a rate limit of R requests per second per
//! integration, the way Kommo does (7 there; scaled up here so a run takes seconds). The
//! client's limiter is set to the same R. The ideal is (10,000 / 50) / R seconds; each run
//! prints its time, its ratio to the ideal and the 429s the fake answered (the target is zero).
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
    rate: u32,
    concurrency: usize,
) -> Run {
    let fake = FakeServer::start(Config::default().faults(Faults::none().rate_limit(rate)))
        .expect("the fake starts");
    let client = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .rate_limiter(RateLimiter::per_second(rate).expect("a valid limit"))
        .http_client(reqwest::Client::new())
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
    for (rate, concurrency) in [(50, 1), (50, 4)] {
        let runs = Mutex::new(Vec::new());
        let id = BenchmarkId::new(
            format!("rate_{rate}_per_s"),
            format!("concurrency_{concurrency}"),
        );
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = import(&rt, &forms, rate, concurrency);
                    total += run.elapsed;
                    runs.lock().expect("not poisoned").push(run);
                }
                total
            })
        });
        let runs = runs.into_inner().expect("not poisoned");
        let ideal = (LEADS / CHUNK) as f64 / f64::from(rate);
        let ratios: Vec<f64> = runs
            .iter()
            .map(|r| r.elapsed.as_secs_f64() / ideal)
            .collect();
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let (min, max) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let limited: u64 = runs.iter().map(|r| r.rate_limited).sum();
        println!(
            "bulk_import rate {rate}/s concurrency {concurrency}: {} runs, ideal {ideal:.2} s, \
             ratio mean {mean:.3} (min {min:.3}, max {max:.3}), 429s in all runs: {limited}",
            runs.len()
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
