//! The fake's Kommo endpoints beyond the spec, for raw calls: `GET /api/v4/leads/{id}` and
//! `GET /api/v4/leads`, serving the leads created through `leads/complex`, with the spec's
//! credentials check, faults and journal.

mod fake_common;

use fake_common::{Fake, answer, body};
use lead_intake::kommo::types;
use lead_intake::prelude::*;
use lead_intake_fake::Fault;
use reqwest::Method;
use serde_json::{Value, json};

const PIPELINE: i64 = 5_867_030;

/// Creates `count` leads through `leads/complex` (the first with a contact, a company and the
/// source `site-chat`), and gives their IDs.
async fn create_leads(fake: &Fake, count: usize) -> Vec<i64> {
    fake.kommo()
        .add_sources()
        .body(body::<types::AddSourcesRequest>(
            json!([{"name": "Site chat", "external_id": "site-chat"}]),
        ))
        .send()
        .body()
        .await
        .expect("the source is added");
    let items: Vec<Value> = (0..count)
        .map(|i| {
            if i == 0 {
                json!({
                    "name": "Lead 0", "price": 500, "pipeline_id": PIPELINE,
                    "_embedded": {"contacts": [{"name": "Jane"}], "companies": [{"name": "Co"}],
                                  "source": {"external_id": "site-chat", "type": "widget"}}
                })
            } else {
                json!({ "name": format!("Lead {i}"), "pipeline_id": PIPELINE })
            }
        })
        .collect();
    let created = fake
        .kommo()
        .add_complex_leads()
        .body(body::<types::AddComplexLeadsRequest>(Value::Array(items)))
        .send()
        .body()
        .await
        .expect("the leads are created");
    created.iter().map(|c| c.id).collect()
}

async fn json_of(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let (status, content_type, text) = answer(request).await;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    };
    (status, content_type, value)
}

#[tokio::test]
async fn get_lead_shows_a_lead_created_through_leads_complex() {
    let fake = Fake::default();
    let ids = create_leads(&fake, 1).await;
    let (status, content_type, lead) = json_of(fake.raw(
        Method::GET,
        &format!("/api/v4/leads/{}?with=contacts,source", ids[0]),
    ))
    .await;
    assert_eq!(status, 200, "{lead}");
    assert_eq!(content_type.as_deref(), Some("application/hal+json"));
    assert_eq!(lead["id"], ids[0]);
    assert_eq!(lead["name"], "Lead 0");
    assert_eq!(lead["price"], 500);
    assert_eq!(lead["pipeline_id"], PIPELINE);
    assert!(lead["status_id"].is_i64(), "{lead}");
    assert!(lead["created_at"].as_i64().is_some_and(|t| t > 0), "{lead}");
    let embedded = &lead["_embedded"];
    assert_eq!(embedded["contacts"].as_array().map(Vec::len), Some(1));
    assert_eq!(embedded["contacts"][0]["is_main"], true);
    assert_eq!(embedded["companies"].as_array().map(Vec::len), Some(1));
    assert_eq!(embedded["source"]["name"], "Site chat", "{lead}");
    assert!(
        lead["_links"]["self"]["href"]
            .as_str()
            .is_some_and(|h| h.ends_with(&format!("/api/v4/leads/{}", ids[0])))
    );

    // Contacts only with `with=contacts`, as Kommo; companies always.
    let (_, _, plain) = json_of(fake.raw(Method::GET, &format!("/api/v4/leads/{}", ids[0]))).await;
    assert!(plain["_embedded"].get("contacts").is_none(), "{plain}");
    assert!(plain["_embedded"].get("source").is_none(), "{plain}");
    assert_eq!(
        plain["_embedded"]["companies"].as_array().map(Vec::len),
        Some(1)
    );

    // Recorded as an operation of its own.
    let operations: Vec<Option<String>> =
        fake.requests().into_iter().map(|r| r.operation).collect();
    assert_eq!(
        operations.last().cloned().flatten().as_deref(),
        Some("kommo.getLead")
    );
}

#[tokio::test]
async fn an_unknown_lead_is_404_and_no_token_is_401() {
    let fake = Fake::default();
    let ids = create_leads(&fake, 1).await;
    for path in ["/api/v4/leads/999999999", "/api/v4/leads/not-a-number"] {
        let (status, content_type, problem) = json_of(fake.raw(Method::GET, path)).await;
        assert_eq!(status, 404, "{path}: {problem}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(problem["status"], 404, "{problem}");
        assert_eq!(problem["title"], "Not Found", "{problem}");
    }
    let url = format!("{}/api/v4/leads/{}", fake.base_url(), ids[0]);
    for request in [
        reqwest::Client::new().get(&url),
        reqwest::Client::new()
            .get(&url)
            .bearer_auth("not-the-token"),
        reqwest::Client::new().get(format!("{}/api/v4/leads", fake.base_url())),
    ] {
        let (status, content_type, problem) = json_of(request).await;
        assert_eq!(status, 401, "{problem}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    }
}

#[tokio::test]
async fn list_leads_pages_by_page_and_limit_and_answers_204_past_the_end() {
    let fake = Fake::default();
    let ids = create_leads(&fake, 5).await;
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (status, _, list) =
            json_of(fake.raw(Method::GET, &format!("/api/v4/leads?page={page}&limit=2"))).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["_page"], page);
        let leads = list["_embedded"]["leads"].as_array().expect("leads");
        seen.extend(leads.iter().map(|l| l["id"].as_i64().expect("an id")));
        // `next` only on a full page.
        assert_eq!(
            list["_links"].get("next").is_some(),
            leads.len() == 2,
            "{list}"
        );
    }
    assert_eq!(seen, ids);
    let (status, _, _) = json_of(fake.raw(Method::GET, "/api/v4/leads?page=4&limit=2")).await;
    assert_eq!(status, 204);
    for bad in ["limit=251", "limit=0", "page=x"] {
        let (status, _, problem) =
            json_of(fake.raw(Method::GET, &format!("/api/v4/leads?{bad}"))).await;
        assert_eq!(status, 400, "{bad}: {problem}");
    }

    // No lead at all: 204, as Kommo's empty lists.
    let empty = Fake::default();
    let (status, _, _) = json_of(empty.raw(Method::GET, "/api/v4/leads")).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn the_extra_routes_take_the_faults_of_the_spec_routes() {
    let fake = Fake::default();
    let ids = create_leads(&fake, 1).await;
    fake.inject([Fault::RateLimited]);
    let (status, _, _) = answer(fake.raw(Method::GET, &format!("/api/v4/leads/{}", ids[0]))).await;
    assert_eq!(status, 429);
    fake.inject([Fault::ServerError(500)]);
    let (status, _, _) = answer(fake.raw(Method::GET, "/api/v4/leads")).await;
    assert_eq!(status, 500);
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(stats.server_errors, 1);
    let (status, _, _) = answer(fake.raw(Method::GET, "/api/v4/leads")).await;
    assert_eq!(status, 200);
    assert_eq!(
        fake.stats()
            .by_operation
            .get("kommo.listLeads")
            .and_then(|s| s.get(&200)),
        Some(&1)
    );
}
