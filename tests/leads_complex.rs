//! Leads with their contact, company and source (`POST /api/v4/leads/complex`) and the lead
//! pipelines (`GET /api/v4/leads/pipelines[/{id}]`): the bytes on the wire, the answers decoded,
//! the batch layer under Kommo's limit of 50 leads per request, the fake's state, and the
//! pipeline check of `sync_sources`.

mod common;

// The fake crate's test helper (a server whose answers are checked against the spec).
#[path = "../fake/tests/fake_common/mod.rs"]
mod fake_common;

use std::collections::HashSet;

use common::{hal, kommo, kommo_request, no_body, no_query};
use fake_common::Fake;
use httpmock::Method::{GET, POST};
use lead_intake::batch::{BatchOptions, ItemOutcome};
use lead_intake::kommo::types::{
    AddSource, ComplexCompany, ComplexContact, ComplexLead, CustomFieldValue, CustomFieldValueItem,
    LeadSource, PipelineList,
};
use lead_intake::prelude::*;
use lead_intake::sync::{SourceSync, SyncOptions};
use lead_intake_fake::{Config, Fixtures};
use serde_json::json;

/// A pipeline the fake's account does not have.
const MISSING_PIPELINE: i64 = 999_999;

/// The documented request, built with the typed builders.
fn documented_lead() -> ComplexLead {
    ComplexLead::new()
        .with_name("Lead from the website chat")
        .with_price(5000)
        .with_pipeline_id(6950551)
        .with_request_id("1")
        .with_custom_fields_values(vec![
            CustomFieldValue::new(vec![
                CustomFieldValueItem::new().with_value("Our first client"),
            ])
            .with_field_id(294471),
        ])
        .with_contact(
            ComplexContact::new()
                .with_first_name("Jane")
                .with_last_name("Doe")
                .with_phone("+15550100")
                .with_email("jane@example.com"),
        )
        .with_company(ComplexCompany::new().with_name("Example Inc."))
        .with_source(LeadSource::widget(
            "ufi7pscriq7foaaz2afxakxtuf2yytuh7vjg1pxr",
        ))
}

// ------------------------------------------------------------------------------------ wire

#[tokio::test]
async fn add_complex_leads_posts_the_builders_json_and_decodes_each_answer() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, "/api/v4/leads/complex")
                .is_true(no_query)
                .header("content-type", "application/json")
                .json_body(common::example("addComplexLeads.request.json"));
            hal(then, "addComplexLeads.response.200.json");
        })
        .await;

    let created = client
        .add_complex_leads()
        .body(vec![documented_lead()])
        .send()
        .body()
        .await
        .expect("the documented answer decodes");

    mock.assert_async().await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].id, 9774766);
    assert_eq!(created[0].contact_id, Some(12117258));
    assert_eq!(created[0].company_id, Some(12117260));
    assert_eq!(created[0].request_id, ["1"]);
    assert_eq!(created[0].merged, Some(false));
}

#[tokio::test]
async fn list_pipelines_gets_the_list_and_decodes_pipelines_with_their_statuses() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/leads/pipelines")
                .is_true(no_query)
                .is_true(no_body);
            hal(then, "listPipelines.response.200.json");
        })
        .await;

    let list = client
        .list_pipelines()
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(list.total_items, Some(1));
    assert_eq!(
        list.self_href(),
        Some("https://devteam.kommo.com/api/v4/leads/pipelines")
    );
    let main = list.main().expect("a main pipeline");
    assert_eq!(main.id, 6950551);
    assert_eq!(
        (
            main.is_unsorted_on,
            main.is_archive,
            main.account_id,
            main.sort
        ),
        (Some(true), Some(false), Some(31361463), Some(1))
    );
    let incoming = &main.statuses()[0];
    assert_eq!(incoming.id, 58141803);
    assert_eq!(
        (
            incoming.type_,
            incoming.is_editable,
            incoming.color.as_deref()
        ),
        (Some(1), Some(false), Some("#c1c1c1"))
    );
    assert_eq!(main.status(142).and_then(|s| s.pipeline_id), Some(6950551));
}

#[tokio::test]
async fn get_pipeline_gets_one_pipeline_by_id() {
    let (server, client) = kommo().await;
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/leads/pipelines/6950551")
                .is_true(no_query)
                .is_true(no_body);
            hal(then, "getPipeline.response.200.json");
        })
        .await;

    let pipeline = client
        .get_pipeline()
        .id(6950551)
        .send()
        .body()
        .await
        .expect("decodes");

    mock.assert_async().await;
    assert_eq!(pipeline.name.as_deref(), Some("Pipeline"));
    assert_eq!(pipeline.statuses().len(), 4);
}

#[test]
fn an_odd_pipeline_or_status_is_kept_aside_and_the_others_decode() {
    let list: PipelineList = serde_json::from_value(json!({"_embedded": {"pipelines": [
        {"id": 1, "_embedded": {"statuses": [{"id": 10}, {"id": "not a number"}]}},
        {"id": "odd"},
        {"id": 2}
    ]}}))
    .expect("one odd item never costs the list");
    let ids: Vec<i64> = list.pipelines().iter().map(|p| p.id).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(list.pipelines().unrecognized().len(), 1);
    let first = list.pipeline(1).expect("listed");
    assert_eq!(first.statuses().len(), 1);
    assert_eq!(first.statuses().unrecognized().len(), 1);
}

// ------------------------------------------------------------------------------------ fake

fn lead(i: usize) -> ComplexLead {
    let pipeline = if i.is_multiple_of(25) {
        MISSING_PIPELINE
    } else if i.is_multiple_of(2) {
        5867030
    } else {
        6950551
    };
    ComplexLead::new()
        .with_name(format!("Lead {i}"))
        .with_pipeline_id(pipeline)
        .with_contact(ComplexContact::new().with_name(format!("Visitor {i}")))
        .with_source(LeadSource::widget("site-chat"))
}

#[tokio::test]
async fn a_batch_of_120_goes_in_requests_of_at_most_50_with_an_outcome_per_lead() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();
    let inputs: Vec<ComplexLead> = (0..120).map(lead).collect();

    let report = kommo
        .add_complex_leads_batched(&inputs, &BatchOptions::new())
        .await;

    // 0, 25, 50, 75 and 100 name a pipeline the account does not have.
    assert_eq!(report.to_string(), "120 items: 115 succeeded, 5 rejected");
    assert!(report.errors().is_empty(), "{:?}", report.errors());
    // Three chunks (50, 50, 20), each refused once for its invalid items and its valid rest
    // sent again: six requests, none over Kommo's limit (the fake refuses a body of more than 50
    // with a 400, which would show here as an error).
    let sent: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v4/leads/complex")
        .collect();
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(sent.iter().all(|r| r.method == "POST"));

    let state = fake.state();
    let stored = state["kommo"]["leads"]
        .as_array()
        .expect("leads in the state");
    assert_eq!(stored.len(), 115);
    let mut ids = HashSet::new();
    for (i, outcome) in report.outcomes().iter().enumerate() {
        match outcome {
            ItemOutcome::Succeeded(created) => {
                assert!(!i.is_multiple_of(25), "input {i} succeeded");
                assert!(ids.insert(created.id), "lead id {} twice", created.id);
                // The outcome at index i is the lead made from input i.
                let kept = stored
                    .iter()
                    .find(|l| l["id"] == created.id)
                    .unwrap_or_else(|| panic!("lead {} not in the state", created.id));
                assert_eq!(kept["name"], format!("Lead {i}"));
                assert_eq!(kept["contact_id"], json!(created.contact_id));
                assert_eq!(kept["source_external_id"], "site-chat");
                assert_eq!(created.company_id, None);
            }
            ItemOutcome::Rejected(errors) => {
                assert!(i.is_multiple_of(25), "input {i} rejected: {errors:?}");
                assert_eq!(errors[0].path.as_deref(), Some("pipeline_id"));
            }
            other => panic!("input {i}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_chunk_over_kommos_limit_of_50_leads_is_refused_before_sending() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();
    let inputs: Vec<ComplexLead> = (1..=60).map(lead).collect();

    let report = kommo
        .add_complex_leads_batched(&inputs, &BatchOptions::new().with_chunk_size(51))
        .await;

    assert!(
        matches!(
            report.error(),
            Some(lead_intake::batch::BatchError::ChunkSize {
                chunk_size: 51,
                max: 50
            })
        ),
        "{:?}",
        report.error()
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn the_fake_keeps_the_leads_it_created_through_a_state_round_trip() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();
    let created = kommo
        .add_complex_leads()
        .body(vec![documented_lead()])
        .send()
        .body()
        .await
        .expect("created");
    let id = created[0].id;
    let saved = fake.state();
    let stored = &saved["kommo"]["leads"][0];
    assert_eq!(stored["id"], id);
    assert_eq!(stored["name"], "Lead from the website chat");
    assert_eq!(stored["pipeline_id"], 6950551);
    assert_eq!(stored["company_id"], json!(created[0].company_id));

    fake.reset(false);
    assert_eq!(fake.state()["kommo"]["leads"], json!([]));
    fake.load_state(saved.clone())
        .expect("the saved state loads");
    assert_eq!(fake.state(), saved);

    // A lead loaded from a state keeps its ids: the next one gets a new one.
    let next = kommo
        .add_complex_leads()
        .body(vec![ComplexLead::new().with_name("Next")])
        .send()
        .body()
        .await
        .expect("created");
    assert!(next[0].id > id);
    let err = fake
        .load_state(json!({"kommo": {"leads": [{"id": 1, "pipeline_id": MISSING_PIPELINE}]}}))
        .expect_err("a lead in a pipeline the state does not list");
    assert!(err.to_string().contains("kommo.leads[0]"), "{err}");
}

#[tokio::test]
async fn the_fake_lists_its_pipelines_and_refuses_a_lead_or_pipeline_it_does_not_have() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty().pipelines([1001, 1002])));
    let kommo = fake.kommo();

    let list = kommo.list_pipelines().send().body().await.expect("listed");
    let ids: Vec<i64> = list.pipelines().iter().map(|p| p.id).collect();
    assert_eq!(ids, [1001, 1002]);
    assert_eq!(list.main().map(|p| p.id), Some(1001));
    let second = kommo
        .get_pipeline()
        .id(1002)
        .send()
        .body()
        .await
        .expect("found");
    assert_eq!(second.is_main, Some(false));
    let won = second.status(142).expect("every pipeline has Closed - won");
    assert_eq!(won.pipeline_id, Some(1002));

    let missing = kommo
        .get_pipeline()
        .id(6950551)
        .send()
        .body()
        .await
        .expect_err("not this account's");
    assert_eq!(fake_common::status(&missing), 404);

    // A status of another pipeline is refused, by its item.
    let first_status = list.pipelines()[0].statuses()[1].id;
    let refused = kommo
        .add_complex_leads()
        .body(vec![
            ComplexLead::new()
                .with_pipeline_id(1002)
                .with_status_id(first_status),
        ])
        .send()
        .body()
        .await
        .expect_err("a status of pipeline 1001");
    assert_eq!(
        fake_common::rejected(&refused),
        [(
            "0".to_string(),
            "NotSupportedChoice".to_string(),
            "status_id".to_string()
        )]
    );
}

// ------------------------------------------------------------------------------------ sync

fn desired() -> Vec<AddSource> {
    vec![
        AddSource::new("Website chat", "site-chat"),
        AddSource::new("Old pipeline", "old").with_pipeline_id(MISSING_PIPELINE),
        AddSource::new("Phone line", "phone").with_pipeline_id(5867030),
    ]
}

#[tokio::test]
async fn with_the_pipeline_check_a_source_whose_pipeline_is_missing_is_not_sent() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();

    let report = kommo
        .sync_sources(&desired(), &SyncOptions::new().with_pipeline_check(true))
        .await
        .expect("synced");

    assert_eq!(
        report.to_string(),
        "2 created, 0 updated, 0 unchanged, 0 deleted, 1 failed"
    );
    assert!(!report.is_complete());
    let old = &report.sources()[1];
    assert_eq!(old.external_id(), "old");
    assert_eq!(
        old.outcome(),
        &SourceSync::UnknownPipeline {
            pipeline_id: MISSING_PIPELINE
        }
    );
    // One list of pipelines, one of sources, one add; the add carried the two others only.
    let sent: Vec<(String, String)> = fake
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        sent,
        [
            ("GET".to_string(), "/api/v4/leads/pipelines".to_string()),
            ("GET".into(), "/api/v4/sources".into()),
            ("POST".into(), "/api/v4/sources".into()),
        ]
    );
    let state = fake.state();
    let externals: Vec<&str> = state["kommo"]["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .filter_map(|s| s["external_id"].as_str())
        .collect();
    assert_eq!(externals, ["site-chat", "phone"]);
}

#[tokio::test]
async fn without_the_check_the_server_refuses_the_source_after_it_is_sent() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let kommo = fake.kommo();

    let report = kommo
        .sync_sources(&desired(), &SyncOptions::new())
        .await
        .expect("synced");

    assert!(matches!(
        report.sources()[1].outcome(),
        SourceSync::Failed(ItemOutcome::Rejected(_))
    ));
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path != "/api/v4/leads/pipelines")
    );
}
