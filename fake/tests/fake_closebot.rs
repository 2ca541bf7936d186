//! The fake's CloseBot: its one operation through the crate's client, zero-based pages, filters,
//! ordering, the token-refresh side effect, and both ways of sending the key.

mod fake_common;

use fake_common::{Fake, answer, status};
use lead_intake::closebot::KeyHeader;
use lead_intake::closebot::types::SourcePage;
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use lead_intake_fake::{Config, Fixtures};

fn ids(page: &SourcePage) -> Vec<String> {
    page.results
        .iter()
        .map(|s| s.source_id.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn pages_are_zero_based_and_carry_the_total() {
    let fake = Fake::default();
    let closebot = fake.closebot();
    let first = closebot.list_sources().send().body().await.unwrap();
    assert_eq!(
        (first.total, first.page, first.page_size),
        (Some(25), Some(0), Some(20)),
        "defaults: page 0, 20 per page"
    );
    assert_eq!(ids(&first).len(), 20);
    assert_eq!(ids(&first)[0], "src-001");

    let third = closebot
        .list_sources()
        .page(2)
        .page_size(10)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(third.page, Some(2));
    assert_eq!(
        ids(&third),
        ["src-021", "src-022", "src-023", "src-024", "src-025"]
    );
    let past = closebot.list_sources().page(9).send().body().await.unwrap();
    assert_eq!(past.total, Some(25));
    assert!(
        ids(&past).is_empty(),
        "past the end: an empty page, not 204"
    );
}

#[tokio::test]
async fn page_size_is_at_most_100_and_page_at_least_0() {
    let fake = Fake::default();
    let closebot = fake.closebot();
    closebot
        .list_sources()
        .page_size(100)
        .send()
        .body()
        .await
        .expect("100 is allowed");
    let err = closebot
        .list_sources()
        .page_size(101)
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    let Some(lead_intake::closebot::types::Problem::ProblemDetails(problem)) = err.problem() else {
        panic!("a problem document: {err:?}");
    };
    assert_eq!(problem.status, Some(400));
    let (code, content_type, text) = answer(
        reqwest::Client::new()
            .get(format!("{}/agency/source?page=-1", fake.base_url()))
            .header("X-CB-KEY", fake.closebot_key().expose()),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(
        text.contains("\"page\""),
        "the errors name the parameter: {text}"
    );
}

#[tokio::test]
async fn query_category_and_order_filter_and_sort() {
    let fake = Fake::default();
    let closebot = fake.closebot();
    let acme = closebot
        .list_sources()
        .query("acme")
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(acme.total, Some(5), "names are matched case-insensitively");
    assert!(
        acme.results
            .iter()
            .all(|s| s.name.as_deref().unwrap().starts_with("Acme"))
    );
    let hubspot = closebot
        .list_sources()
        .category("HubSpot")
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(hubspot.total, Some(9));
    let newest = closebot
        .list_sources()
        .order("-id")
        .page_size(3)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(ids(&newest), ["src-025", "src-024", "src-023"]);
    let by_name = closebot
        .list_sources()
        .order("+name")
        .page_size(1)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(by_name.results[0].name.as_deref(), Some("Acme 05"));
    let err = closebot
        .list_sources()
        .order("+colour")
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
}

#[tokio::test]
async fn force_token_refresh_rotates_the_access_tokens_of_the_returned_sources_only() {
    let fake = Fake::default();
    let closebot = fake.closebot();
    let token = |page: &SourcePage, i: usize| {
        page.results[i]
            .access_token
            .as_ref()
            .map(|s| s.expose().to_string())
    };
    let before = closebot
        .list_sources()
        .page_size(2)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(token(&before, 0).as_deref(), Some("crm-token-001-0"));
    let refreshed = closebot
        .list_sources()
        .page_size(1)
        .force_token_refresh(true)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(token(&refreshed, 0).as_deref(), Some("crm-token-001-1"));
    let after = closebot
        .list_sources()
        .page_size(2)
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(token(&after, 0).as_deref(), Some("crm-token-001-1"));
    assert_eq!(token(&after, 1).as_deref(), Some("crm-token-002-0"));
}

#[tokio::test]
async fn the_key_is_accepted_as_x_cb_key_or_authorization_key_and_refused_otherwise() {
    let fake = Fake::default();
    let by_authorization = lead_intake::closebot::Client::builder()
        .api_key(fake.closebot_key())
        .base_url(&fake.base_url())
        .key_header(KeyHeader::AuthorizationKey)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    by_authorization
        .list_sources()
        .send()
        .body()
        .await
        .expect("Authorization: Key <key>");
    let wrong = lead_intake::closebot::Client::builder()
        .api_key("wrong-key")
        .base_url(&fake.base_url())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = wrong.list_sources().send().body().await.unwrap_err();
    assert_eq!(status(&err), 401);
    let (code, content_type, text) =
        answer(reqwest::Client::new().get(format!("{}/agency/source", fake.base_url()))).await;
    assert_eq!(code, 401);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert!(text.contains("\"instance\":\"/agency/source\""), "{text}");
    // The Kommo token is not a CloseBot key.
    let (code, _, _) = answer(
        reqwest::Client::new()
            .get(format!("{}/agency/source", fake.base_url()))
            .bearer_auth(fake.kommo_token().expose()),
    )
    .await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn an_agency_without_sources_answers_an_empty_page() {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let page = fake.closebot().list_sources().send().body().await.unwrap();
    assert_eq!(page.total, Some(0));
    assert!(ids(&page).is_empty());
}
