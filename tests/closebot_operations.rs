//! CloseBot's one operation on the wire: the query string and API key the client sends, the
//! documented page it decodes, its two error shapes, and the secrets it never prints.

mod common;

use common::{API_KEY, assert_not_leaked, closebot, closebot_example_text};
use httpmock::Method::GET;
use lead_intake::closebot::types::{Problem, SourcePage};
use lead_intake::closebot::{Client, KeyHeader};
use lead_intake::prelude::*;
use serde_json::json;

/// Answers 200 with CloseBot's documented page, byte for byte.
fn documented_page(then: httpmock::Then) -> httpmock::Then {
    then.status(200)
        .header("content-type", "application/json")
        .body(closebot_example_text("listSources.response.200.json"))
}

#[tokio::test]
async fn list_sources_sends_all_six_query_parameters_and_the_x_cb_key_and_decodes_the_page() {
    let (server, client) = closebot().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/agency/source")
                .header("x-cb-key", API_KEY)
                .header_missing("authorization")
                .query_param("pageSize", "100")
                .query_param("page", "0")
                .query_param("query", "Acme Co")
                .query_param("category", "GHL")
                .query_param("order", "+id")
                .query_param("forceTokenRefresh", "true")
                .is_true(common::query_is(
                    "category=GHL&forceTokenRefresh=true&order=%2Bid&page=0&pageSize=100&query=Acme+Co",
                ))
                .is_true(common::no_body);
            documented_page(then);
        })
        .await;

    let page: SourcePage = client
        .list_sources()
        .page_size(100)
        .page(0)
        .query("Acme Co")
        .category("GHL")
        .order("+id")
        .force_token_refresh(true)
        .send()
        .body()
        .await
        .expect("the documented page decodes");

    mock.assert_async().await;
    assert_eq!(
        (page.total, page.page, page.page_size),
        (Some(123), Some(123), Some(123))
    );
    let results = page.results;
    assert_eq!(results.len(), 1);
    let source = &results[0];
    assert_eq!(source.source_id.as_deref(), Some("<string>"));
    assert_eq!(source.connected, Some(true));
    assert_eq!(source.key.as_ref().map(Secret::expose), Some("<string>"));
    let bot = &source.bots.as_ref().expect("bots")[0];
    assert_eq!(bot.enabled, Some(true));
    assert_eq!(bot.tags.as_ref().expect("tags")[0].approve_deny, Some(true));
    let seen = source.script_last_seen_at.expect("scriptLastSeenAt");
    assert_eq!(seen.to_rfc3339(), "2023-11-07T05:31:56+00:00");
    assert_eq!(
        source.wallet.as_ref().and_then(|w| w.top_up_amount),
        Some(123)
    );
}

#[tokio::test]
async fn the_key_can_be_sent_as_authorization_key_instead() {
    let server = httpmock::MockServer::start_async().await;
    lead_intake::http::install_crypto_provider();
    let client = Client::with_options(
        &server.base_url(),
        API_KEY,
        KeyHeader::AuthorizationKey,
        reqwest::Client::new(),
    )
    .expect("a loopback base URL is accepted");
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/agency/source")
                .header("authorization", format!("Key {API_KEY}"))
                .header_missing("x-cb-key")
                .is_true(common::no_query);
            documented_page(then);
        })
        .await;

    let page = client.list_sources().send().body().await.expect("decodes");

    mock.assert_async().await;
    assert_eq!(page.total, Some(123));
}

#[tokio::test]
async fn a_401_problem_document_is_a_problem() {
    let (server, client) = closebot().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET).path("/agency/source");
            then.status(401)
                .header("content-type", "application/problem+json")
                .body(closebot_example_text("problem.unauthorized.401.json"));
        })
        .await;

    let err = client.list_sources().send().body().await.unwrap_err();

    mock.assert_async().await;
    let ApiError::Problem {
        endpoint,
        status,
        problem: Problem::ProblemDetails(details),
        ..
    } = &err
    else {
        panic!("a problem+json 401 is a Problem with details: {err:?}");
    };
    assert_eq!(endpoint, "/agency/source");
    assert_eq!(*status, 401);
    assert_eq!(details.status, Some(401));
    assert_eq!(details.title.as_deref(), Some("Unauthorized"));
    assert_eq!(
        details.detail.as_deref(),
        Some("The API key is missing or invalid.")
    );
    assert_eq!(details.instance.as_deref(), Some("/agency/source"));
    assert!(
        err.to_string()
            .contains("The API key is missing or invalid."),
        "{err}"
    );
}

#[tokio::test]
async fn a_plain_json_string_error_is_a_string_problem() {
    let (server, client) = closebot().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET).path("/agency/source");
            then.status(400)
                .header("content-type", "application/json")
                .json_body(json!("Page size must be between 1 and 100"));
        })
        .await;

    let err = client
        .list_sources()
        .page_size(100)
        .send()
        .body()
        .await
        .unwrap_err();

    mock.assert_async().await;
    let ApiError::Problem {
        status,
        problem: Problem::String(text),
        ..
    } = &err
    else {
        panic!("a JSON string error is Problem::String: {err:?}");
    };
    assert_eq!(*status, 400);
    assert_eq!(text, "Page size must be between 1 and 100");
    assert!(
        err.to_string()
            .contains("Page size must be between 1 and 100"),
        "{err}"
    );
}

#[tokio::test]
async fn the_api_key_never_appears_in_the_client_or_its_errors() {
    let (server, client) = closebot().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/agency/source");
            then.status(401)
                .header("content-type", "application/problem+json")
                .body(closebot_example_text("problem.unauthorized.401.json"));
        })
        .await;
    let problem = client.list_sources().send().body().await.unwrap_err();
    let decode = {
        server.reset_async().await;
        server
            .mock_async(|when, then| {
                when.method(GET).path("/agency/source");
                then.status(200)
                    .header("content-type", "application/json")
                    .body(r#"{"total":"x"}"#);
            })
            .await;
        client.list_sources().send().body().await.unwrap_err()
    };
    assert!(
        matches!(decode, ApiError::Decode { ref path, .. } if path == "total"),
        "{decode:?}"
    );
    lead_intake::http::install_crypto_provider();
    let with_authorization = Client::with_options(
        "https://api.closebot.com",
        API_KEY,
        KeyHeader::AuthorizationKey,
        reqwest::Client::new(),
    )
    .unwrap();

    for (what, printed) in [
        ("the client's Debug", format!("{client:?} {client:#?}")),
        (
            "the Authorization-key client's Debug",
            format!("{with_authorization:?}"),
        ),
        ("a problem error", format!("{problem} {problem:?}")),
        ("a decode error", format!("{decode} {decode:?}")),
    ] {
        assert_not_leaked(what, &printed, API_KEY);
    }
}

#[test]
fn a_source_s_crm_key_and_access_token_are_secrets_that_debug_never_shows() {
    let mut page: serde_json::Value =
        serde_json::from_str(&closebot_example_text("listSources.response.200.json")).unwrap();
    page["results"][0]["key"] = json!("crm-key-7f3a");
    page["results"][0]["accessToken"] = json!("crm-access-token-9c1e");
    let page: SourcePage = serde_json::from_value(page).expect("decodes");
    let source = &page.results[0];

    assert_eq!(
        source.key.as_ref().map(Secret::expose),
        Some("crm-key-7f3a")
    );
    assert_eq!(
        source.access_token.as_ref().map(Secret::expose),
        Some("crm-access-token-9c1e")
    );
    for printed in [
        format!("{source:?}"),
        format!("{source:#?}"),
        format!("{page:?}"),
    ] {
        assert_not_leaked("a source's Debug", &printed, "crm-key-7f3a");
        assert_not_leaked("a source's Debug", &printed, "crm-access-token-9c1e");
    }
    // Serializing is deliberate, and gives the values back.
    let json = serde_json::to_value(source).unwrap();
    assert_eq!(json["key"], json!("crm-key-7f3a"));
    assert_eq!(json["accessToken"], json!("crm-access-token-9c1e"));
}

/// BUG (src/config.rs `secret_header`): the emptiness check runs on `"Key {key}"`, never blank,
/// so the `Authorization: Key` form accepts an empty key (the `X-CB-KEY` form refuses it).
#[test]
fn an_empty_api_key_is_refused_in_either_header_form() {
    lead_intake::http::install_crypto_provider();
    for form in [KeyHeader::XCbKey, KeyHeader::AuthorizationKey] {
        for blank in ["", "  "] {
            let built = Client::with_options(
                "https://api.closebot.com",
                blank,
                form,
                reqwest::Client::new(),
            );
            assert!(
                matches!(
                    built,
                    Err(ConfigError::InvalidCredential { what: "API key" })
                ),
                "the key {blank:?} sent as {form:?} should be an InvalidCredential: {built:?}"
            );
        }
    }
}
