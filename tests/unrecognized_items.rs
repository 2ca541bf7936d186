//! One odd item never costs a page: in every list answer an item that does not decode into its
//! type is kept as an unrecognized item (raw JSON, index, path, reason), and the pagers yield
//! it in its place, skip it, or stop on it, as asked.

mod common;

use common::{closebot, kommo, kommo_request};
use httpmock::Method::{GET, POST};
use lead_intake::kommo::types::{self, IncomingLeadCategory};
use lead_intake::pagination::OnUnrecognized;
use lead_intake::prelude::*;
use serde_json::{Value, json};

/// A forms lead, `i` in its uid.
fn lead(i: usize) -> Value {
    json!({
        "uid": format!("lead-{i:03}"),
        "source_uid": "site",
        "source_name": "Site",
        "category": "forms",
        "pipeline_id": 6950551,
        "created_at": 1686819152,
        "metadata": {"form_id": "1115559", "form_name": "Contact", "form_sent_at": 1686819152},
        "account_id": 31361463,
        "_embedded": {"contacts": [{"id": 583308}]}
    })
}

/// 250 leads; number 137 has a `pipeline_id` that is not a number.
fn page_with_one_odd_lead() -> Value {
    let mut leads: Vec<Value> = (0..250).map(lead).collect();
    leads[137]["pipeline_id"] = json!("main");
    json!({"_page": 1, "_links": {"self": {"href": "/api/v4/leads/unsorted?page=1&limit=250"}},
           "_embedded": {"unsorted": leads}})
}

async fn serve_leads(server: &httpmock::MockServer) -> httpmock::Mock<'_> {
    let body = page_with_one_odd_lead();
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/leads/unsorted");
            then.status(200)
                .header("content-type", "application/hal+json")
                .json_body(body);
        })
        .await
}

#[tokio::test]
async fn a_page_of_250_with_one_odd_lead_gives_249_typed_and_1_unrecognized_with_its_path() {
    let (server, client) = kommo().await;
    serve_leads(&server).await;

    let page = client
        .list_incoming_leads()
        .send()
        .or_empty()
        .await
        .expect("one odd lead does not fail the call");
    assert_eq!(
        page.self_href(),
        Some("/api/v4/leads/unsorted?page=1&limit=250")
    );
    assert_eq!(page.next_href(), None);
    let leads = page.into_incoming_leads();
    assert_eq!(leads.len(), 249);
    assert_eq!(leads.total(), 250);
    let odd = leads.unrecognized();
    assert_eq!(odd.len(), 1);
    assert_eq!(odd[0].index(), 137);
    assert_eq!(odd[0].path(), "pipeline_id");
    assert!(odd[0].reason().contains("expected i64"), "{}", odd[0]);
    assert_eq!(odd[0].raw()["uid"], "lead-137");
    // The typed ones keep their order around the gap.
    assert_eq!(leads[136].uid, "lead-136");
    assert_eq!(leads[137].uid, "lead-138");
    assert!(
        leads
            .iter()
            .all(|l| l.category == IncomingLeadCategory::Forms)
    );
}

#[tokio::test]
async fn the_pager_yields_all_250_in_order_by_default() {
    let (server, client) = kommo().await;
    serve_leads(&server).await;

    let items: Vec<ListItem<types::IncomingLead>> = client
        .list_incoming_leads_pager(|req| req)
        .items()
        .try_collect()
        .await
        .expect("no error");
    assert_eq!(items.len(), 250);
    for (i, item) in items.iter().enumerate() {
        let uid = match item {
            ListItem::Typed(lead) => lead.uid.clone(),
            ListItem::Unrecognized(odd) => {
                assert_eq!((i, odd.index()), (137, 137));
                odd.raw()["uid"].as_str().unwrap().to_string()
            }
        };
        assert_eq!(uid, format!("lead-{i:03}"));
    }
    assert_eq!(items.iter().filter(|i| i.typed().is_none()).count(), 1);
}

#[tokio::test]
async fn the_pager_skips_them_or_stops_on_them_when_asked() {
    let (server, client) = kommo().await;
    serve_leads(&server).await;

    let skipped: Vec<_> = client
        .list_incoming_leads_pager(|req| req)
        .on_unrecognized(OnUnrecognized::Skip)
        .typed_items()
        .try_collect()
        .await
        .expect("skipped, not an error");
    assert_eq!(skipped.len(), 249);

    // `typed_items` never drops one silently: without Skip it stops with the odd item.
    for stream in [
        client
            .list_incoming_leads_pager(|req| req)
            .typed_items()
            .boxed(),
        client
            .list_incoming_leads_pager(|req| req)
            .on_unrecognized(OnUnrecognized::Fail)
            .typed_items()
            .boxed(),
    ] {
        let got: Vec<_> = stream.collect().await;
        assert_eq!(got.len(), 1, "the error, before any item of that page");
        let Err(ApiError::UnrecognizedItem { item, count }) = &got[0] else {
            panic!("{:?}", got[0]);
        };
        assert_eq!((item.index(), item.path(), *count), (137, "pipeline_id", 1));
        assert!(!got[0].as_ref().unwrap_err().certainly_not_applied());
    }
    let pages: Vec<_> = client
        .list_incoming_leads_pager(|req| req)
        .on_unrecognized(OnUnrecognized::Fail)
        .pages()
        .collect()
        .await;
    assert!(matches!(
        pages.as_slice(),
        [Err(ApiError::UnrecognizedItem { .. })]
    ));
}

#[tokio::test]
async fn every_list_answer_keeps_its_odd_items() {
    let (server, client) = kommo().await;
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/sources");
            then.status(200)
                .header("content-type", "application/hal+json")
                .json_body(json!({"_total_items": 2, "_embedded": {"sources": [
                    {"id": 1, "name": "a", "external_id": "a"},
                    {"id": 2, "name": "b", "services": "not a list"}
                ]}}));
        })
        .await;
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, "/api/v4/widgets");
            then.status(200)
                .header("content-type", "application/hal+json")
                .json_body(json!({"_page": 1, "_embedded": {"widgets": [
                    {"id": 1},
                    {"id": 2, "code": "w2"}
                ]}}));
        })
        .await;
    server
        .mock_async(|when, then| {
            kommo_request(when, POST, "/api/v4/leads/unsorted/forms");
            then.status(200)
                .header("content-type", "application/hal+json")
                .json_body(json!({"_total_items": 2, "_embedded": {"unsorted": [
                    {"uid": "u1", "request_id": "0"},
                    {"uid": 42, "request_id": "1"}
                ]}}));
        })
        .await;

    let list = client.list_sources().send().or_empty().await.unwrap();
    assert_eq!(list.sources().total(), 2);
    let sources = list.into_sources();
    assert_eq!((sources.len(), sources.unrecognized()[0].index()), (1, 1));
    assert_eq!(sources.unrecognized()[0].path(), "services");

    let page = client.list_widgets().send().or_empty().await.unwrap();
    assert_eq!(page.widgets().len(), 1);
    let widgets = page.into_widgets();
    assert_eq!(widgets[0].code, "w2");
    assert_eq!(
        (
            widgets.unrecognized()[0].index(),
            widgets.unrecognized()[0].path()
        ),
        (0, ".")
    );
    assert!(
        widgets.unrecognized()[0]
            .reason()
            .contains("missing field `code`"),
        "{}",
        widgets.unrecognized()[0]
    );

    let forms: types::AddIncomingFormsRequest = common::example_as("addIncomingForms.request.json");
    let created = client
        .add_incoming_forms()
        .body(forms)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(created.incoming_leads().total(), 2);
    let created = created.into_incoming_leads();
    assert_eq!(created[0].uid, "u1");
    assert_eq!(created.unrecognized()[0].path(), "uid");

    let (server, closebot) = closebot().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/agency/source");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(json!({"total": 2, "page": 0, "pageSize": 100, "results": [
                    {"name": "odd", "connected": "a secret: CB-odd-secret"},
                    {"name": "ok"}
                ]}));
        })
        .await;
    let page = closebot.list_sources().send().body().await.unwrap();
    assert_eq!(page.results().len(), 1);
    let odd = &page.results.unrecognized()[0];
    assert_eq!(odd.index(), 0);
    // Neither Debug nor Display quotes a value of the item.
    let shown = format!("{odd} {odd:?} {:?}", page.results);
    assert!(!shown.contains("CB-odd-secret"), "{shown}");
}

#[test]
fn an_answer_that_is_not_the_lists_shape_is_still_a_decode_error() {
    for body in [
        json!({"_embedded": {"unsorted": {"uid": "x"}}}),
        json!({"_embedded": {"unsorted": "x"}}),
        json!([]),
    ] {
        assert!(
            serde_json::from_value::<types::IncomingLeadList>(body.clone()).is_err(),
            "{body}"
        );
    }
}
