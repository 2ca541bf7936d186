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
//! After the timed runs, one more import (default limiter, 4 chunks at a time) runs with a
//! recorder of the client's own tracing events, and prints its profile: when each request was
//! sent and answered, per one-second window. That is where the time of an import goes.
//!
//! `cargo bench --bench bulk_import`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group};
use lead_intake::kommo::types::AddIncomingForm;
use lead_intake::prelude::*;
use lead_intake::ratelimit::RateLimiter;
use lead_intake_fake::{Config, FakeServer, Faults};
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
        .with_chunk_size(CHUNK)
        .with_concurrency(concurrency);
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
        if runs.is_empty() {
            // Filtered out on the command line.
            continue;
        }
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

/// Records when the client sent each request and when each answer came, from its own tracing
/// events ("sending request" at TRACE, "response received" at DEBUG, in `transport`).
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<(Instant, Sent)>>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Sent {
    Request,
    Answer,
}

struct Message(Option<String>);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("lead_intake::transport")
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let now = Instant::now();
        let mut message = Message(None);
        event.record(&mut message);
        let kind = match message.0.as_deref() {
            Some("sending request") => Sent::Request,
            Some("response received") | Some("request failed") => Sent::Answer,
            _ => return,
        };
        self.events.lock().expect("not poisoned").push((now, kind));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// One import on a single-threaded runtime with the recorder on, then its profile.
fn profile(forms: &[AddIncomingForm], rate: u32, concurrency: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let recorder = Recorder::default();
    let run = tracing::subscriber::with_default(recorder.clone(), || {
        import(&rt, forms, Some(rate), concurrency, None)
    });
    let events = recorder.events.lock().expect("not poisoned").clone();
    // Times from the first request sent (the fake's start-up is not part of the profile).
    let Some(&(started, _)) = events.first() else {
        panic!("no request recorded: is the tracing event \"sending request\" still there?");
    };
    let at = |kind: Sent| -> Vec<f64> {
        events
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(t, _)| t.duration_since(started).as_secs_f64())
            .collect()
    };
    let (sent, answered) = (at(Sent::Request), at(Sent::Answer));
    assert_eq!(
        sent.len(),
        LEADS.div_ceil(CHUNK),
        "one request per chunk, no retry"
    );
    assert_eq!(answered.len(), sent.len(), "every request answered");
    // The most requests sent within any one second: what the server's window sees, less the
    // arrival delays.
    let busiest = sent
        .iter()
        .map(|&t| sent.iter().filter(|&&u| u >= t && u < t + 1.0).count())
        .max()
        .unwrap_or(0);
    println!(
        "bulk_import profile (rate {rate}/s, concurrency {concurrency}, limiter default): \
         {:.3} s, 429s: {}; most requests sent within any 1 s: {busiest}",
        run.elapsed.as_secs_f64(),
        run.rate_limited
    );
    let last = answered.iter().cloned().fold(0.0, f64::max);
    for second in 0..=(last as usize) {
        let window = |times: &[f64]| -> (usize, f64, f64) {
            let inside: Vec<f64> = times
                .iter()
                .copied()
                .filter(|&t| t >= second as f64 && t < second as f64 + 1.0)
                .collect();
            let first = inside.iter().cloned().fold(f64::MAX, f64::min);
            let last = inside.iter().cloned().fold(0.0, f64::max);
            (inside.len(), first, last)
        };
        let (n, first, last_sent) = window(&sent);
        let (m, _, last_answer) = window(&answered);
        if n + m == 0 {
            continue;
        }
        println!(
            "  [{second} s, {} s): {n:3} sent (first at {first:.3} s, last at {last_sent:.3} s), \
             {m:3} answered (last at {last_answer:.3} s)",
            second + 1
        );
    }
}

fn profile_main() {
    let forms: Vec<_> = (0..LEADS).map(form).collect();
    profile(&forms, 50, 4);
}

criterion_group!(benches, bulk_import);

fn main() {
    benches();
    if !std::env::args().any(|a| a == "--list") {
        profile_main();
    }
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
