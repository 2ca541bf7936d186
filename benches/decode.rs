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
    let leads = &typed.embedded.as_ref().expect("_embedded").unsorted;
    assert_eq!(
        (leads.len(), leads.unrecognized().len()),
        (support::PAGE, 0),
        "every lead decodes into the typed model"
    );
    let kinds: std::collections::HashSet<_> = leads
        .iter()
        .filter_map(|lead| lead.metadata.as_ref())
        .filter(|m| m.unrecognized().is_none())
        .map(std::mem::discriminant)
        .collect();
    assert_eq!(
        kinds.len(),
        3,
        "forms, chats and sip metadata, none kept raw"
    );

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
