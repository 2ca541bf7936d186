//! Benchmark 2: decoding one 250-item incoming-leads page (the vendor document's leads, 250 of
//! them, about 200 KB) into the typed model and into `serde_json::Value`.
//!
//! `cargo bench --bench decode`

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lead_intake::kommo::types::IncomingLeadList;
use std::hint::black_box;

fn decode(c: &mut Criterion) {
    let body = support::single_page();
    let typed: IncomingLeadList = serde_json::from_slice(&body).expect("the page decodes");
    let items = typed.embedded.as_ref().map_or(0, |e| e.unsorted.len());
    assert_eq!(
        items,
        support::PAGE,
        "every lead decodes into the typed model"
    );
    let kinds: std::collections::HashSet<_> = typed
        .embedded
        .iter()
        .flat_map(|e| &e.unsorted)
        .map(std::mem::discriminant)
        .collect();
    assert_eq!(kinds.len(), 3, "forms, chats and sip leads, not a fallback");

    let mut group = c.benchmark_group("decode_250_leads");
    group.throughput(Throughput::Elements(support::PAGE as u64));
    group.bench_function(BenchmarkId::new("typed", body.len()), |b| {
        b.iter(|| serde_json::from_slice::<IncomingLeadList>(black_box(&body)).expect("decodes"))
    });
    group.bench_function(BenchmarkId::new("serde_json_value", body.len()), |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
