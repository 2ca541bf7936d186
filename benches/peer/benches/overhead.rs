//! Benchmark 1: one `GET /api/v4/leads/unsorted?page=1&limit=250` answered by a loopback
//! server with the same 250-item page (about 200 KB), decoded into typed leads, by:
//!
//! - `hand_written`: reqwest + serde, decoding into lead-intake's generated types: the floor;
//! - `lead_intake`: the generated client with the hand-written layer on (auth header, retry
//!   policy, error classification), the rate limiter off;
//! - `openapi_generator`: the Rust client openapi-generator 7.26.0 (`-g rust`) makes from
//!   `openapi/export/kommo.json`, with its own models.
//!
//! All three share one `reqwest::Client` configuration and one server. Run it with
//! `scripts/bench-overhead.sh`, which makes the generated client first and prints the ratios.

#[path = "../../support/mod.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kommo_openapi::apis::configuration::Configuration;
use kommo_openapi::apis::incoming_leads_api;
use lead_intake::kommo::types::IncomingLeadList;
use lead_intake::prelude::*;
use support::{PAGE, PageServer, TOKEN};

async fn hand_written(http: &reqwest::Client, url: &str) -> IncomingLeadList {
    let response = http
        .get(url)
        .query(&[("page", "1"), ("limit", "250")])
        .bearer_auth(TOKEN)
        .header("accept", "application/hal+json")
        .send()
        .await
        .expect("sent")
        .error_for_status()
        .expect("a success");
    let body = response.bytes().await.expect("a body");
    serde_json::from_slice(&body).expect("decodes")
}

async fn lead_intake(client: &lead_intake::kommo::Client) -> IncomingLeadList {
    client
        .list_incoming_leads()
        .page(1u32)
        .limit(250u32)
        .send()
        .or_empty()
        .await
        .expect("a page")
}

async fn openapi_generator(config: &Configuration) -> kommo_openapi::models::IncomingLeadList {
    incoming_leads_api::list_incoming_leads(config, Some(1), Some(250), None, None, None, None)
        .await
        .expect("a page")
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let server = PageServer::start();
    let base = server.base_url();
    let url = format!("{base}/api/v4/leads/unsorted");

    let http = support::http_client();
    let ours = lead_intake::kommo::Client::builder()
        .base_url(&base)
        .token(TOKEN)
        .no_rate_limit()
        .http_client(support::http_client())
        .build()
        .expect("a loopback client");
    let mut peer = Configuration::new();
    peer.base_path = base.clone();
    peer.client = support::http_client();
    peer.bearer_access_token = Some(TOKEN.to_string());
    peer.user_agent = None;

    // All three get the whole page.
    let count = |page: &IncomingLeadList| page.embedded.as_ref().map_or(0, |e| e.unsorted.len());
    assert_eq!(count(&rt.block_on(hand_written(&http, &url))), PAGE);
    assert_eq!(count(&rt.block_on(lead_intake(&ours))), PAGE);
    let theirs = rt.block_on(openapi_generator(&peer));
    let theirs = theirs._embedded.and_then(|e| e.unsorted).unwrap_or_default();
    assert_eq!(theirs.len(), PAGE);

    let mut group = c.benchmark_group("overhead_250_leads");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("hand_written", |b| {
        b.iter(|| rt.block_on(hand_written(&http, &url)))
    });
    group.bench_function("lead_intake", |b| b.iter(|| rt.block_on(lead_intake(&ours))));
    group.bench_function("openapi_generator", |b| {
        b.iter(|| rt.block_on(openapi_generator(&peer)))
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
