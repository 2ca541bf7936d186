//! Batch calls on the wire: how items are split into requests (the exact JSON body of every
//! chunk, in input order, each sent once), and what the report says about every item when
//! requests succeed, reject items, fail, or are never sent.

mod common;

use std::ops::Range;
use std::time::Duration;

use common::{TOKEN, kommo, kommo_request};
use httpmock::Method::{DELETE, PATCH, POST};
use httpmock::{Mock, MockServer};
use lead_intake::batch::{BatchError, BatchOptions, BatchReport, ItemOutcome, MAX_CHUNK_SIZE};
use lead_intake::kommo::types;
use lead_intake::prelude::*;
use serde_json::{Value, json};

const SOURCES: &str = "/api/v4/sources";
const SIP: &str = "/api/v4/leads/unsorted/sip";
const FORMS: &str = "/api/v4/leads/unsorted/forms";

// ------------------------------------------------------------------------------------ helpers

fn source_json(i: usize) -> Value {
    json!({"name": format!("source {i}"), "external_id": format!("ext-{i}")})
}

fn sources(n: usize) -> Vec<types::AddSource> {
    (0..n)
        .map(|i| serde_json::from_value(source_json(i)).unwrap())
        .collect()
}

/// The exact body of the request carrying the input items `range`.
fn sources_body(range: Range<usize>) -> Value {
    Value::Array(range.map(source_json).collect())
}

fn source_id(i: usize) -> i64 {
    1000 + i as i64
}

/// Kommo's answer to `addSources` for the input items `range`: `request_id` is the index in the
/// request.
fn created_sources(range: Range<usize>) -> Value {
    let start = range.start;
    let sources: Vec<Value> = range
        .map(|i| {
            json!({
                "id": source_id(i),
                "name": format!("source {i}"),
                "external_id": format!("ext-{i}"),
                "request_id": (i - start).to_string(),
            })
        })
        .collect();
    json!({"_total_items": sources.len(), "_embedded": {"sources": sources}})
}

fn hal_json(then: httpmock::Then, body: &Value) -> httpmock::Then {
    then.status(200)
        .header("content-type", "application/hal+json")
        .body(body.to_string())
}

fn problem_json(then: httpmock::Then, status: u16, body: &Value) -> httpmock::Then {
    then.status(status)
        .header("content-type", "application/problem+json")
        .body(body.to_string())
}

/// A `POST /api/v4/sources` with exactly the items `range` that creates them all.
async fn add_chunk(server: &MockServer, range: Range<usize>) -> Mock<'_> {
    let body = sources_body(range.clone());
    let answer = created_sources(range);
    server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES)
                .header("content-type", "application/json")
                .json_body(body);
            hal_json(then, &answer);
        })
        .await
}

/// Answers anything the other mocks do not match; created last, so it only counts strays.
async fn strays(server: &MockServer) -> Mock<'_> {
    server
        .mock_async(|when, then| {
            when.any_request();
            then.status(404).body("unexpected request");
        })
        .await
}

fn validation_400(groups: Value) -> Value {
    json!({
        "validation-errors": groups,
        "title": "Bad Request",
        "type": "https://httpstatus.es/400",
        "status": 400,
        "detail": "Request validation failed"
    })
}

fn not_a_choice(path: &str) -> Value {
    json!({"code": "NotSupportedChoice", "path": path, "detail": "The value you selected is not a valid choice."})
}

/// Each outcome as a short label: `ok:<id>`, `rejected:<codes>`, `not-applied`,
/// `not-attempted`, `unknown`.
fn labels<R>(report: &BatchReport<R>, id: impl Fn(&R) -> String) -> Vec<String> {
    report
        .outcomes()
        .iter()
        .map(|o| match o {
            ItemOutcome::Succeeded(r) => format!("ok:{}", id(r)),
            ItemOutcome::Rejected(errors) => format!(
                "rejected:{}",
                errors
                    .iter()
                    .map(|e| e.code.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            ItemOutcome::NotApplied => "not-applied".into(),
            ItemOutcome::NotAttempted => "not-attempted".into(),
            ItemOutcome::Unknown => "unknown".into(),
            _ => "another outcome".into(),
        })
        .collect()
}

fn source_labels(report: &BatchReport<types::Source>) -> Vec<String> {
    labels(report, |s| s.id.to_string())
}

fn created(range: Range<usize>) -> Vec<String> {
    range.map(|i| format!("ok:{}", source_id(i))).collect()
}

fn repeat(label: &str, n: usize) -> Vec<String> {
    vec![label.to_string(); n]
}

fn concat(parts: Vec<Vec<String>>) -> Vec<String> {
    parts.into_iter().flatten().collect()
}

/// A batch where every chunk is created: one request per chunk (of the given sizes, in input
/// order) with exactly its items, once.
async fn add_all_and_check(n: usize, chunk_sizes: &[usize], options: &BatchOptions) {
    assert_eq!(chunk_sizes.iter().sum::<usize>(), n);
    let (server, client) = kommo().await;
    let mut mocks = Vec::new();
    let mut start = 0;
    for size in chunk_sizes {
        mocks.push(add_chunk(&server, start..start + size).await);
        start += size;
    }
    let strays = strays(&server).await;

    let items = sources(n);
    let report = client.add_sources_batched(&items, options).await;

    for mock in &mocks {
        mock.assert_calls_async(1).await;
    }
    strays.assert_calls_async(0).await;
    assert_eq!(source_labels(&report), created(0..n));
    assert!(report.is_complete(), "{report}");
    assert!(report.error().is_none());
    assert_eq!(report.len(), n);
    assert_eq!(items, sources(n), "the caller's items are unchanged");
}

// ----------------------------------------------------------------------------------- chunking

#[tokio::test]
async fn no_items_send_no_request_and_make_a_complete_empty_report() {
    let (server, client) = kommo().await;
    let strays = strays(&server).await;

    let report = client
        .add_sources_batched(Vec::<types::AddSource>::new(), &BatchOptions::default())
        .await;

    strays.assert_calls_async(0).await;
    assert!(report.is_empty());
    assert!(report.errors().is_empty());
    assert!(report.error().is_none());
    assert_eq!(report.to_string(), "0 items");
}

#[tokio::test]
async fn one_item_is_one_request() {
    add_all_and_check(1, &[1], &BatchOptions::default()).await;
}

#[tokio::test]
async fn fifty_items_are_one_request() {
    assert_eq!(MAX_CHUNK_SIZE, 50);
    add_all_and_check(50, &[50], &BatchOptions::default()).await;
}

/// The second request's item is `request_id` "0" in its answer: matched by its index in the
/// request, it is input item 50.
#[tokio::test]
async fn fifty_one_items_are_fifty_then_one() {
    add_all_and_check(51, &[50, 1], &BatchOptions::default()).await;
}

#[tokio::test]
async fn a_hundred_and_one_items_are_fifty_fifty_and_one_in_input_order() {
    add_all_and_check(101, &[50, 50, 1], &BatchOptions::default()).await;
}

#[tokio::test]
async fn a_smaller_chunk_size_makes_smaller_requests() {
    let options = BatchOptions::new().with_chunk_size(10);
    add_all_and_check(25, &[10, 10, 5], &options).await;
}

#[tokio::test]
async fn items_can_be_given_by_value() {
    let (server, client) = kommo().await;
    let mock = add_chunk(&server, 0..3).await;

    let report = client
        .add_sources_batched(sources(3), &BatchOptions::default())
        .await;

    mock.assert_calls_async(1).await;
    assert_eq!(source_labels(&report), created(0..3));
}

// ------------------------------------------------------------------------ rejections, failures

#[tokio::test]
async fn a_rejected_item_in_the_middle_chunk_is_rejected_the_rest_of_it_not_applied_and_later_chunks_sent()
 {
    let (server, client) = kommo().await;
    let first = add_chunk(&server, 0..50).await;
    let rejected = validation_400(json!([
        {"request_id": "3", "errors": [not_a_choice("pipeline_id")]}
    ]));
    let middle = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(50..100));
            problem_json(then, 400, &rejected);
        })
        .await;
    let last = add_chunk(&server, 100..101).await;
    let strays = strays(&server).await;

    let report = client
        .add_sources_batched(
            &sources(101),
            &BatchOptions::default().with_resend_valid_rest(false),
        )
        .await;

    first.assert_calls_async(1).await;
    middle.assert_calls_async(1).await;
    last.assert_calls_async(1).await;
    strays.assert_calls_async(0).await;
    assert_eq!(
        source_labels(&report),
        concat(vec![
            created(0..50),
            repeat("not-applied", 3),
            repeat("rejected:NotSupportedChoice", 1),
            repeat("not-applied", 46),
            created(100..101),
        ])
    );
    let rejections: Vec<_> = report.rejected().collect();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].0, 53);
    assert_eq!(rejections[0].1[0].path.as_deref(), Some("pipeline_id"));
    assert!(report.error().is_none(), "a validation error does not stop");
    assert!(!report.is_complete());
    let resend: Vec<usize> = (50..100).filter(|&i| i != 53).collect();
    assert_eq!(report.to_resend(), resend);
    assert!(report.unknown().is_empty());
    assert_eq!(report.succeeded().count(), 51);
    assert_eq!(
        report.to_string(),
        "101 items: 51 succeeded, 1 rejected, 49 not applied"
    );
}

/// A 500 may have been applied: the chunk is unknown, never sent again, and the batch stops.
#[tokio::test]
async fn a_500_on_the_second_of_three_chunks_makes_it_unknown_and_the_third_never_sent() {
    let (server, client) = kommo().await;
    let first = add_chunk(&server, 0..50).await;
    let second = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(50..100));
            problem_json(
                then,
                500,
                &json!({"title": "Internal Server Error", "status": 500}),
            );
        })
        .await;
    let third = add_chunk(&server, 100..101).await;
    let strays = strays(&server).await;

    let report = client
        .add_sources_batched(&sources(101), &BatchOptions::default())
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(0).await;
    strays.assert_calls_async(0).await;
    assert_eq!(
        source_labels(&report),
        concat(vec![
            created(0..50),
            repeat("unknown", 50),
            repeat("not-attempted", 1),
        ])
    );
    assert_eq!(report.unknown(), (50..100).collect::<Vec<_>>());
    assert_eq!(report.to_resend(), vec![100]);
    match report.error() {
        Some(BatchError::Request { items, source }) => {
            assert_eq!(*items, 50..100);
            assert_eq!(source.status().map(|s| s.as_u16()), Some(500));
        }
        other => panic!("the 500 should stop the batch: {other:?}"),
    }
    assert_eq!(report.errors().len(), 1);
    let shown = report.to_string();
    assert!(
        shown.starts_with(
            "101 items: 50 succeeded, 1 not attempted, 50 unknown; stopped: the request for items \
             50..100 failed: /api/v4/sources: the API answered 500"
        ),
        "{shown}"
    );
    common::assert_not_leaked("the report", &format!("{report} {report:?}"), TOKEN);
}

/// A 4xx other than a validation error: the server refused the request, so it was not applied;
/// the batch stops.
#[tokio::test]
async fn a_401_on_the_first_chunk_is_not_applied_and_stops_the_batch() {
    let (server, client) = kommo().await;
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(0..50));
            common::problem(then, 401, "problem.unauthorized.401.json");
        })
        .await;
    let second = add_chunk(&server, 50..60).await;

    let report = client
        .add_sources_batched(&sources(60), &BatchOptions::default())
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(0).await;
    assert_eq!(
        source_labels(&report),
        concat(vec![repeat("not-applied", 50), repeat("not-attempted", 10)])
    );
    assert_eq!(report.to_resend(), (0..60).collect::<Vec<_>>());
    let error = report
        .error()
        .and_then(BatchError::api_error)
        .expect("the 401");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(401));
}

/// A 400 naming a `request_id` the request did not carry cannot be matched to the items: the
/// request was refused (not applied), and the batch stops rather than guess.
#[tokio::test]
async fn a_400_naming_a_request_id_the_chunk_did_not_carry_stops_the_batch() {
    let (server, client) = kommo().await;
    let rejected = validation_400(json!([
        {"request_id": "7", "errors": [not_a_choice("pipeline_id")]}
    ]));
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(0..2));
            problem_json(then, 400, &rejected);
        })
        .await;
    let second = add_chunk(&server, 2..3).await;

    let report = client
        .add_sources_batched(&sources(3), &BatchOptions::new().with_chunk_size(2))
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(0).await;
    assert_eq!(
        source_labels(&report),
        vec!["not-applied", "not-applied", "not-attempted"]
    );
    assert!(matches!(
        report.error(),
        Some(BatchError::Request { items, .. }) if *items == (0..2)
    ));
}

#[tokio::test]
async fn a_success_answer_that_does_not_mention_an_item_leaves_it_unknown() {
    let (server, client) = kommo().await;
    let mut answer = created_sources(0..3);
    answer["_embedded"]["sources"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(0..3));
            hal_json(then, &answer);
        })
        .await;
    let next = add_chunk(&server, 3..4).await;

    let report = client
        .add_sources_batched(&sources(4), &BatchOptions::new().with_chunk_size(3))
        .await;

    mock.assert_calls_async(1).await;
    next.assert_calls_async(1).await;
    assert_eq!(
        source_labels(&report),
        vec!["ok:1000", "unknown", "ok:1002", "ok:1003"]
    );
    assert_eq!(report.unknown(), vec![1]);
    assert!(!report.is_complete());
}

#[tokio::test]
async fn a_success_answer_that_does_not_decode_makes_the_chunk_unknown_and_stops() {
    let (server, client) = kommo().await;
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(0..2));
            // Not the list's shape: `sources` is not a list.
            hal_json(then, &json!({"_embedded": {"sources": {"id": 1}}}));
        })
        .await;
    let second = add_chunk(&server, 2..3).await;

    let report = client
        .add_sources_batched(&sources(3), &BatchOptions::new().with_chunk_size(2))
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(0).await;
    assert_eq!(
        source_labels(&report),
        vec!["unknown", "unknown", "not-attempted"]
    );
    assert!(matches!(
        report.error().and_then(BatchError::api_error),
        Some(ApiError::Decode { .. })
    ));
}

#[tokio::test]
async fn a_created_item_that_does_not_decode_is_unknown_and_the_batch_goes_on() {
    let (server, client) = kommo().await;
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(0..2));
            hal_json(
                then,
                &json!({"_embedded": {"sources": [
                    {"id": 100, "request_id": "0", "name": "s0", "external_id": "e0"},
                    {"id": "not a number", "request_id": "1"}
                ]}}),
            );
        })
        .await;
    let second = add_chunk(&server, 2..3).await;

    let report = client
        .add_sources_batched(&sources(3), &BatchOptions::new().with_chunk_size(2))
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    // The odd item was answered, so it may well exist: check before sending it again.
    assert_eq!(
        source_labels(&report),
        vec![
            "ok:100".to_string(),
            "unknown".into(),
            format!("ok:{}", source_id(2))
        ]
    );
    assert!(report.error().is_none());
}

#[tokio::test]
async fn a_refused_connection_is_not_applied() {
    let refusing = common::Refusing::bind();
    let client = lead_intake::kommo::Client::from_base_url(&refusing.base_url(), TOKEN).unwrap();

    let report = client
        .add_sources_batched(&sources(3), &BatchOptions::new().with_chunk_size(2))
        .await;

    assert_eq!(
        source_labels(&report),
        vec!["not-applied", "not-applied", "not-attempted"]
    );
    match report.error().and_then(BatchError::api_error) {
        Some(ApiError::Transport(e)) => assert!(e.is_connect(), "{e:?}"),
        other => panic!("a refused connection: {other:?}"),
    }
}

/// A timeout after the request was sent: it may have been applied. On paused time with a
/// server inside the test's runtime: the clock only moves once the request has arrived, so the
/// client's 300 ms never run out before it is sent, however busy the machine.
#[tokio::test(start_paused = true)]
async fn a_timeout_is_unknown_and_stops_the_batch() {
    use common::script::{Reply, ScriptServer};
    let server = ScriptServer::start(|r, _| {
        if r.json() == sources_body(0..2) {
            Reply::json(200, created_sources(0..2)).after(Duration::from_secs(3))
        } else {
            Reply::json(200, created_sources(2..3))
        }
    })
    .await;
    lead_intake::http::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let client =
        lead_intake::kommo::Client::from_base_url_with_client(&server.base_url, TOKEN, http)
            .unwrap();

    let report = client
        .add_sources_batched(&sources(3), &BatchOptions::new().with_chunk_size(2))
        .await;

    let bodies: Vec<Value> = server.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies, [sources_body(0..2)], "the first chunk only, once");
    assert_eq!(
        source_labels(&report),
        vec!["unknown", "unknown", "not-attempted"]
    );
    match report.error().and_then(BatchError::api_error) {
        Some(ApiError::Transport(e)) => assert!(e.is_timeout(), "{e:?}"),
        other => panic!("a timeout: {other:?}"),
    }
}

// -------------------------------------------------------------------- update, delete, incoming

/// `updateSources` answers the updated sources without `request_id`, in any order: they are
/// matched by `id`. A validation error still names the item by its index in the request.
#[tokio::test]
async fn update_sources_are_matched_by_id() {
    let (server, client) = kommo().await;
    let items: Vec<types::UpdateSourcesItem> = [11, 12, 13, 14, 15]
        .iter()
        .map(|id| serde_json::from_value(json!({"id": id, "name": format!("n{id}")})).unwrap())
        .collect();
    let body = |ids: &[i64]| -> Value {
        ids.iter()
            .map(|id| json!({"id": id, "name": format!("n{id}")}))
            .collect()
    };
    let updated = |ids: &[i64]| -> Value {
        let sources: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "name": format!("n{id}")}))
            .collect();
        json!({"_total_items": sources.len(), "_embedded": {"sources": sources}})
    };
    // Answered in reverse order, and without source 12.
    let (body_1, answer_1) = (body(&[11, 12, 13]), updated(&[13, 11]));
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, PATCH, SOURCES)
                .header("content-type", "application/json")
                .json_body(body_1);
            hal_json(then, &answer_1);
        })
        .await;
    let rejected = validation_400(json!([
        {"request_id": "1", "errors": [not_a_choice("pipeline_id")]}
    ]));
    let body_2 = body(&[14, 15]);
    let second = server
        .mock_async(|when, then| {
            kommo_request(when, PATCH, SOURCES).json_body(body_2);
            problem_json(then, 400, &rejected);
        })
        .await;
    let strays = strays(&server).await;

    let report = client
        .update_sources_batched(
            &items,
            &BatchOptions::new()
                .with_chunk_size(3)
                .with_resend_valid_rest(false),
        )
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    strays.assert_calls_async(0).await;
    assert_eq!(
        source_labels(&report),
        vec![
            "ok:11",
            "unknown",
            "ok:13",
            "not-applied",
            "rejected:NotSupportedChoice"
        ]
    );
    assert_eq!(
        report.outcomes()[2]
            .succeeded()
            .and_then(|s| s.name.as_deref()),
        Some("n13")
    );
}

#[tokio::test]
async fn delete_sources_sends_delete_bodies_and_a_204_deletes_every_item() {
    let (server, client) = kommo().await;
    let items: Vec<types::DeleteSourcesItem> = (0..51)
        .map(|i| types::DeleteSourcesItem { id: source_id(i) })
        .collect();
    let body =
        |range: Range<usize>| -> Value { range.map(|i| json!({"id": source_id(i)})).collect() };
    let (body_1, body_2) = (body(0..50), body(50..51));
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, DELETE, SOURCES)
                .header("content-type", "application/json")
                .json_body(body_1);
            then.status(204);
        })
        .await;
    let second = server
        .mock_async(|when, then| {
            kommo_request(when, DELETE, SOURCES).json_body(body_2);
            then.status(204);
        })
        .await;
    let strays = strays(&server).await;

    let report = client
        .delete_sources_batched(&items, &BatchOptions::default())
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    strays.assert_calls_async(0).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!(
        report
            .succeeded()
            .map(|(i, id)| (i, *id))
            .collect::<Vec<_>>(),
        (0..51).map(|i| (i, source_id(i))).collect::<Vec<_>>()
    );
}

/// The vendor's incoming call, with `request_id` set (or removed) and a distinct `source_uid`.
fn call_json(i: usize, request_id: Option<&str>) -> Value {
    let mut call = common::example("addIncomingCalls.request.json")[0].clone();
    call["source_uid"] = json!(format!("uid-{i}"));
    match request_id {
        Some(id) => call["request_id"] = json!(id),
        None => {
            call.as_object_mut().unwrap().remove("request_id");
        }
    }
    call
}

fn created_leads(request_ids: &[&str]) -> Value {
    let unsorted: Vec<Value> = request_ids
        .iter()
        .map(|id| json!({"uid": format!("lead-{id}"), "account_id": 31361463, "request_id": id}))
        .collect();
    json!({"_total_items": unsorted.len(), "_embedded": {"unsorted": unsorted}})
}

fn lead_labels(report: &BatchReport<types::CreatedIncomingLead>) -> Vec<String> {
    labels(report, |lead| lead.uid.clone())
}

/// Calls with their own `request_id` are matched by it; one without is named by its index in
/// the request. Neither is changed: the body is exactly what was given.
#[tokio::test]
async fn incoming_calls_are_matched_by_their_own_request_id() {
    let (server, client) = kommo().await;
    let sent = vec![
        call_json(0, Some("call-c")),
        call_json(1, Some("call-a")),
        call_json(2, None),
        call_json(3, Some("call-b")),
    ];
    let items: Vec<types::AddIncomingCall> = sent
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let before = items.clone();
    let answer = created_leads(&["call-b", "2", "call-c", "call-a"]);
    let body = Value::Array(sent.clone());
    let mock = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SIP)
                .header("content-type", "application/json")
                .json_body(body);
            hal_json(then, &answer);
        })
        .await;
    let strays = strays(&server).await;

    let report = client
        .add_incoming_calls_batched(&items, &BatchOptions::default())
        .await;

    mock.assert_calls_async(1).await;
    strays.assert_calls_async(0).await;
    assert_eq!(
        lead_labels(&report),
        vec![
            "ok:lead-call-c",
            "ok:lead-call-a",
            "ok:lead-2",
            "ok:lead-call-b"
        ]
    );
    assert_eq!(items, before, "the caller's items are unchanged");
}

#[tokio::test]
async fn incoming_call_validation_errors_are_matched_by_the_own_request_id() {
    let (server, client) = kommo().await;
    let sent = [
        call_json(0, Some("x")),
        call_json(1, Some("y")),
        call_json(2, Some("z")),
    ];
    let items: Vec<types::AddIncomingCall> = sent
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let rejected = validation_400(json!([
        {"request_id": "y", "errors": [not_a_choice("metadata.phone")]},
        {"request_id": "y", "errors": [{"code": "Duplicate", "path": "source_uid", "detail": "d"}]}
    ]));
    let (body_1, body_2) = (Value::Array(sent[..2].to_vec()), json!([sent[2]]));
    let answer_2 = created_leads(&["z"]);
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SIP).json_body(body_1);
            problem_json(then, 400, &rejected);
        })
        .await;
    let second = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SIP).json_body(body_2);
            hal_json(then, &answer_2);
        })
        .await;

    let report = client
        .add_incoming_calls_batched(
            &items,
            &BatchOptions::new()
                .with_chunk_size(2)
                .with_resend_valid_rest(false),
        )
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    assert_eq!(
        lead_labels(&report),
        vec![
            "not-applied",
            "rejected:NotSupportedChoice,Duplicate",
            "ok:lead-z"
        ]
    );
    assert!(report.error().is_none());
}

fn form_json(i: usize) -> Value {
    let mut form = common::example("addIncomingForms.request.json")[0].clone();
    form.as_object_mut().unwrap().remove("request_id");
    form["source_uid"] = json!(format!("form-{i}"));
    form
}

/// Forms without `request_id` are named by their index in each request.
#[tokio::test]
async fn incoming_forms_post_to_forms_in_chunks_matched_by_index() {
    let (server, client) = kommo().await;
    let sent: Vec<Value> = (0..3).map(form_json).collect();
    let items: Vec<types::AddIncomingForm> = sent
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let (body_1, body_2) = (Value::Array(sent[..2].to_vec()), json!([sent[2]]));
    let (answer_1, answer_2) = (created_leads(&["1", "0"]), created_leads(&["0"]));
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, POST, FORMS)
                .header("content-type", "application/json")
                .json_body(body_1);
            hal_json(then, &answer_1);
        })
        .await;
    let second = server
        .mock_async(|when, then| {
            kommo_request(when, POST, FORMS).json_body(body_2);
            hal_json(then, &answer_2);
        })
        .await;
    let strays = strays(&server).await;

    let report = client
        .add_incoming_forms_batched(&items, &BatchOptions::new().with_chunk_size(2))
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    strays.assert_calls_async(0).await;
    // The second request's only form is "0" again: input item 2.
    assert_eq!(
        lead_labels(&report),
        vec!["ok:lead-0", "ok:lead-1", "ok:lead-0"]
    );
}

// ----------------------------------------------------------------------- refused before sending

#[tokio::test]
async fn a_duplicate_request_id_in_one_request_refuses_the_batch_before_sending() {
    let (server, client) = kommo().await;
    let strays = strays(&server).await;
    let call =
        |i, id| -> types::AddIncomingCall { serde_json::from_value(call_json(i, id)).unwrap() };

    // Item 60 (own "d") repeats item 55's; the first chunk is fine but is not sent either.
    let mut items: Vec<_> = (0..70).map(|i| call(i, None)).collect();
    items[55] = call(55, Some("d"));
    items[60] = call(60, Some("d"));
    let report = client
        .add_incoming_calls_batched(&items, &BatchOptions::default())
        .await;
    assert_eq!(lead_labels(&report), repeat("not-attempted", 70));
    match report.error() {
        Some(BatchError::DuplicateRequestId {
            request_id,
            first,
            second,
        }) => assert_eq!((request_id.as_str(), *first, *second), ("d", 55, 60)),
        other => panic!("a duplicate request_id: {other:?}"),
    }
    assert_eq!(report.to_resend(), (0..70).collect::<Vec<_>>());

    // An own request_id equal to another item's index in the same request.
    let items = vec![call(0, Some("1")), call(1, None)];
    let report = client
        .add_incoming_calls_batched(&items, &BatchOptions::default())
        .await;
    assert_eq!(lead_labels(&report), repeat("not-attempted", 2));
    assert!(matches!(
        report.error(),
        Some(BatchError::DuplicateRequestId { request_id, first: 0, second: 1 }) if request_id == "1"
    ));

    strays.assert_calls_async(0).await;
}

#[tokio::test]
async fn the_same_request_id_in_different_requests_is_allowed() {
    let (server, client) = kommo().await;
    let sent = [call_json(0, Some("same")), call_json(1, Some("same"))];
    let items: Vec<types::AddIncomingCall> = sent
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    let answer = created_leads(&["same"]);
    let mut mocks = Vec::new();
    for call in &sent {
        let body = json!([call]);
        let answer = answer.clone();
        mocks.push(
            server
                .mock_async(|when, then| {
                    kommo_request(when, POST, SIP).json_body(body);
                    hal_json(then, &answer);
                })
                .await,
        );
    }

    let report = client
        .add_incoming_calls_batched(&items, &BatchOptions::new().with_chunk_size(1))
        .await;

    for mock in &mocks {
        mock.assert_calls_async(1).await;
    }
    assert!(report.is_complete(), "{report}");
}

#[tokio::test]
async fn a_chunk_size_out_of_range_or_zero_concurrency_is_refused_before_sending() {
    let (server, client) = kommo().await;
    let strays = strays(&server).await;
    let items = sources(3);

    for chunk_size in [0, 51, 1000] {
        let report = client
            .add_sources_batched(&items, &BatchOptions::new().with_chunk_size(chunk_size))
            .await;
        assert_eq!(source_labels(&report), repeat("not-attempted", 3));
        match report.error() {
            Some(e @ BatchError::ChunkSize { chunk_size: c, max }) => {
                assert_eq!((*c, *max), (chunk_size, 50));
                assert_eq!(
                    e.to_string(),
                    format!(
                        "chunk_size must be between 1 and 50, not {chunk_size}; nothing was sent"
                    )
                );
            }
            other => panic!("chunk_size {chunk_size}: {other:?}"),
        }
    }
    // Checked even when there is nothing to send.
    let report = client
        .delete_sources_batched(
            Vec::<types::DeleteSourcesItem>::new(),
            &BatchOptions::new().with_chunk_size(51),
        )
        .await;
    assert!(matches!(report.error(), Some(BatchError::ChunkSize { .. })));
    assert!(!report.is_complete());

    let report = client
        .add_sources_batched(&items, &BatchOptions::new().with_concurrency(0))
        .await;
    assert_eq!(source_labels(&report), repeat("not-attempted", 3));
    assert!(matches!(report.error(), Some(BatchError::Concurrency)));

    strays.assert_calls_async(0).await;
}

// -------------------------------------------------------------------------------- concurrency

/// With two requests in flight, a slow first chunk does not reorder the outcomes. Paused time
/// and a server inside the test's runtime: arrival times are exact, nothing sleeps for real.
#[tokio::test(start_paused = true)]
async fn concurrency_two_sends_two_at_a_time_and_keeps_input_order() {
    use common::script::{Reply, ScriptServer, http_without_timeouts};
    // Chunk k (items 2k, 2k+1) is answered after these delays: the first is the slowest.
    let delays = [900u64, 100, 500, 500];
    let server = ScriptServer::start(move |r, _| {
        let body = r.json();
        let first = body[0]["external_id"].as_str().unwrap();
        let i: usize = first.trim_start_matches("ext-").parse().unwrap();
        Reply::json(200, created_sources(i..i + 2)).after(Duration::from_millis(delays[i / 2]))
    })
    .await;
    let client = lead_intake::kommo::Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(lead_intake::retry::RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();

    let report = client
        .add_sources_batched(
            &sources(8),
            &BatchOptions::new().with_chunk_size(2).with_concurrency(2),
        )
        .await;

    assert_eq!(source_labels(&report), created(0..8));
    let requests = server.requests();
    let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    for k in 0..4 {
        assert_eq!(
            bodies
                .iter()
                .filter(|b| **b == sources_body(k * 2..k * 2 + 2))
                .count(),
            1,
            "chunk {k} is sent exactly once"
        );
    }
    // The first two chunks were in flight together; one at a time, the second would have
    // waited 900 ms for the first.
    assert_eq!(requests[0].at, started);
    assert_eq!(
        requests[1].at, started,
        "the second chunk did not wait for the first"
    );
}

/// The same batch one at a time: each chunk is sent when the previous one is answered.
#[tokio::test(start_paused = true)]
async fn concurrency_one_sends_one_at_a_time() {
    use common::script::{Reply, ScriptServer, http_without_timeouts};
    let server = ScriptServer::start(move |r, _| {
        let body = r.json();
        let first = body[0]["external_id"].as_str().unwrap();
        let i: usize = first.trim_start_matches("ext-").parse().unwrap();
        Reply::json(200, created_sources(i..i + 2)).after(Duration::from_millis(500))
    })
    .await;
    let client = lead_intake::kommo::Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .no_rate_limit()
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();

    let report = client
        .add_sources_batched(&sources(4), &BatchOptions::new().with_chunk_size(2))
        .await;

    assert_eq!(source_labels(&report), created(0..4));
    let requests = server.requests();
    assert_eq!(requests[0].at, started);
    assert_eq!(requests[1].at, started + Duration::from_millis(500));
}

/// A failure stops new requests; the one already in flight is awaited, not abandoned. On
/// paused time, so the slow answer surely comes after the failure, however busy the machine.
#[tokio::test(start_paused = true)]
async fn with_concurrency_a_stopping_failure_lets_the_request_in_flight_finish_and_starts_no_more()
{
    use common::script::{Reply, ScriptServer, http_without_timeouts};
    let server = ScriptServer::start(|r, _| {
        let body = r.json();
        if body == sources_body(0..2) {
            Reply::json(200, created_sources(0..2)).after(Duration::from_millis(500))
        } else if body == sources_body(2..4) {
            Reply::status(502).body("<html>Bad Gateway</html>")
        } else {
            Reply::json(200, created_sources(4..6))
        }
    })
    .await;
    let client = lead_intake::kommo::Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .retry(lead_intake::retry::RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();

    let report = client
        .add_sources_batched(
            &sources(6),
            &BatchOptions::new().with_chunk_size(2).with_concurrency(2),
        )
        .await;

    // Both in flight at once, each sent once, and nothing after the failure.
    let mut bodies: Vec<Value> = server.requests().iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b.to_string());
    assert_eq!(bodies, [sources_body(0..2), sources_body(2..4)]);
    assert_eq!(
        tokio::time::Instant::now() - started,
        Duration::from_millis(500),
        "the slow answer was awaited"
    );
    assert_eq!(
        source_labels(&report),
        vec![
            "ok:1000",
            "ok:1001",
            "unknown",
            "unknown",
            "not-attempted",
            "not-attempted"
        ]
    );
    assert!(matches!(
        report.error(),
        Some(BatchError::Request { items, .. }) if *items == (2..4)
    ));
}

// ------------------------------------------------------------------------------------- shape

#[test]
fn batched_calls_are_send_futures_and_errors_are_send_and_sync() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync + std::error::Error>() {}
    let client = lead_intake::kommo::Client::from_base_url("http://127.0.0.1:1", TOKEN).unwrap();
    let options = BatchOptions::default();
    let items = sources(1);
    send(&client.add_sources_batched(&items, &options));
    send(&client.update_sources_batched(Vec::<types::UpdateSourcesItem>::new(), &options));
    send(&client.delete_sources_batched(Vec::<types::DeleteSourcesItem>::new(), &options));
    send(&client.add_incoming_calls_batched(Vec::<types::AddIncomingCall>::new(), &options));
    send(&client.add_incoming_forms_batched(Vec::<types::AddIncomingForm>::new(), &options));
    send_sync::<BatchError>();
}

/// A server that names one invalid item per answer: sources 0 and 1 are invalid. The first
/// request (0, 1, 2) is refused naming 0; the rest (1, 2, renumbered "0", "1") is refused naming
/// its "0"; the rest of that (2 alone) is created. With `max_sends(2)` the third request is
/// never sent and source 2 is left not applied.
async fn one_rejection_per_answer(server: &MockServer) -> [Mock<'_>; 3] {
    let reject_first =
        validation_400(json!([{"request_id": "0", "errors": [not_a_choice("pipeline_id")]}]));
    let first = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(0..3));
            problem_json(then, 400, &reject_first);
        })
        .await;
    let second = server
        .mock_async(|when, then| {
            kommo_request(when, POST, SOURCES).json_body(sources_body(1..3));
            problem_json(then, 400, &reject_first);
        })
        .await;
    let third = add_chunk(server, 2..3).await;
    [first, second, third]
}

#[tokio::test]
async fn the_valid_rest_is_resent_round_after_round_with_new_request_ids() {
    let (server, client) = kommo().await;
    let [first, second, third] = one_rejection_per_answer(&server).await;
    let strays = strays(&server).await;

    let report = client
        .add_sources_batched(&sources(3), &BatchOptions::new())
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(1).await;
    strays.assert_calls_async(0).await;
    assert_eq!(
        source_labels(&report),
        vec![
            "rejected:NotSupportedChoice".to_string(),
            "rejected:NotSupportedChoice".into(),
            format!("ok:{}", source_id(2)),
        ]
    );
    assert!(report.errors().is_empty());
}

#[tokio::test]
async fn an_item_is_sent_at_most_max_sends_times() {
    let (server, client) = kommo().await;
    let [first, second, third] = one_rejection_per_answer(&server).await;
    let strays = strays(&server).await;

    let report = client
        .add_sources_batched(&sources(3), &BatchOptions::new().with_max_sends(2))
        .await;

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(0).await;
    strays.assert_calls_async(0).await;
    assert_eq!(
        source_labels(&report)[1..],
        ["rejected:NotSupportedChoice", "not-applied"]
    );
}
