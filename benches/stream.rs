//! Benchmark 3: streaming incoming leads with `list_incoming_leads_pager(..).typed_items()` from a
//! loopback server (250 leads a page, linked by `_links.next`).
//!
//! - `stream_100k`: 100,000 leads (400 pages), items per second, without and with prefetching.
//! - `stream_10k_rtt5ms_work5ms`: 10,000 leads with a 5 ms round trip per page and 5 ms of
//!   consumer work per page (an async wait, like a database write): what `.prefetch(1)` is for.
//! - Peak memory (printed before the timings): the most bytes the client's threads held at
//!   once above what they held before the stream started, counted by a global allocator, for
//!   10,000, 100,000 and 1,000,000 leads. It must not grow with the total.
//!
//! `cargo bench --bench stream`

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use futures_util::TryStreamExt;
use lead_intake::kommo::Client;
use support::{Counting, PAGE, PageServer};

#[global_allocator]
static ALLOC: Counting = Counting;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn client(server: &PageServer) -> Client {
    Client::builder()
        .base_url(&server.base_url())
        .token(support::TOKEN)
        .no_rate_limit()
        .http_client(support::http_client())
        .build()
        .expect("a loopback client")
}

/// Streams every lead, working `work` on each page's last item; returns how many came.
async fn stream_all(client: &Client, prefetch: usize, work: Duration) -> usize {
    let mut items = client
        .list_incoming_leads_pager(|req| req)
        .prefetch(prefetch)
        .typed_items();
    let mut n = 0;
    while let Some(lead) = items.try_next().await.expect("no error") {
        std::hint::black_box(&lead);
        n += 1;
        if !work.is_zero() && n % PAGE == 0 {
            tokio::time::sleep(work).await;
        }
    }
    n
}

fn memory_report() {
    let rt = runtime();
    let server = PageServer::start();
    let client = client(&server);
    println!("peak memory while streaming (client threads, above the baseline):");
    for prefetch in [0, 1] {
        for (total, runs) in [(10_000usize, 5), (100_000, 5), (1_000_000, 2)] {
            server.set_pages((total / PAGE) as u64);
            // Warm the connection pool so every run starts from the same state.
            rt.block_on(stream_all(&client, prefetch, Duration::ZERO));
            let mut peaks = Vec::new();
            for _ in 0..runs {
                let baseline = support::reset_peak();
                let n = rt.block_on(stream_all(&client, prefetch, Duration::ZERO));
                peaks.push(support::peak_since(baseline) as f64 / 1_048_576.0);
                assert_eq!(n, total);
            }
            let min = peaks.iter().copied().fold(f64::MAX, f64::min);
            let max = peaks.iter().copied().fold(0.0, f64::max);
            println!(
                "  prefetch {prefetch}, {total:>9} leads, {runs} runs: peak {min:.2} to {max:.2} MiB"
            );
        }
    }
}

fn stream(c: &mut Criterion) {
    let rt = runtime();
    let server = PageServer::start();
    let client = client(&server);

    let mut group = c.benchmark_group("stream_100k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(100_000));
    for prefetch in [0, 1] {
        group.bench_function(BenchmarkId::new("prefetch", prefetch), |b| {
            server.set_pages(400);
            server.set_latency(Duration::ZERO);
            b.iter(|| {
                assert_eq!(
                    rt.block_on(stream_all(&client, prefetch, Duration::ZERO)),
                    100_000
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("stream_10k_rtt5ms_work5ms");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(10_000));
    for prefetch in [0, 1] {
        group.bench_function(BenchmarkId::new("prefetch", prefetch), |b| {
            server.set_pages(40);
            server.set_latency(Duration::from_millis(5));
            b.iter(|| {
                let n = rt.block_on(stream_all(&client, prefetch, Duration::from_millis(5)));
                assert_eq!(n, 10_000)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stream);

fn main() {
    memory_report();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
