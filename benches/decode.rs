//! Benchmark 2: decoding one 250-item incoming-leads page (the vendor document's leads, 250 of
//! them, about 200 KB) into the typed model, as the clients decode an answer
//! (`lead_intake::list::from_slice`) and with `serde_json::from_slice`, and into
//! `serde_json::Value`.
//!
//! `cargo bench --bench decode`

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lead_intake::kommo::types::IncomingLeadList;
use std::hint::black_box;

fn decode(c: &mut Criterion) {
    let body = support::single_page();
    let typed: IncomingLeadList = lead_intake::list::from_slice(&body).expect("the page decodes");
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        serde_json::to_value(serde_json::from_slice::<IncomingLeadList>(&body).unwrap()).unwrap(),
        "both decoders give the same page"
    );
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
        b.iter(|| {
            lead_intake::list::from_slice::<IncomingLeadList>(black_box(&body)).expect("decodes")
        })
    });
    group.bench_function(BenchmarkId::new("typed_serde_json", body.len()), |b| {
        b.iter(|| serde_json::from_slice::<IncomingLeadList>(black_box(&body)).expect("decodes"))
    });
    group.bench_function(BenchmarkId::new("serde_json_value", body.len()), |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
