//! HAL link-following: relative and same-origin links are fetched with the client's auth;
//! a link to another origin is refused before any request is sent.

mod common;

use httpmock::prelude::*;
use lead_intake::kommo::{Client, types::WidgetList};
use lead_intake::prelude::*;

const TOKEN: &str = "SECRET-TOKEN-123";

fn page_body() -> serde_json::Value {
    serde_json::from_str(include_str!(
        "../openapi/examples/kommo/listWidgets.response.200.json"
    ))
    .unwrap()
}

async fn server_and_client() -> (MockServer, Client) {
    let server = MockServer::start_async().await;
    // Retries off: each call is one exchange (tests/retries.rs retries a followed link).
    let client = Client::builder()
        .base_url(&server.base_url())
        .token(TOKEN)
        .retry(lead_intake::retry::RetryPolicy::none())
        .build()
        .unwrap();
    (server, client)
}

#[tokio::test]
async fn a_relative_link_resolves_against_the_base_url_and_carries_the_token() {
    let (server, client) = server_and_client().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/widgets")
                .query_param("page", "2")
                .query_param("limit", "2")
                .header("authorization", format!("Bearer {TOKEN}"));
            then.status(200)
                .header("content-type", "application/hal+json")
                .json_body(page_body());
        })
        .await;

    let page: Option<WidgetList> = client
        .follow("/api/v4/widgets?limit=2&page=2")
        .await
        .expect("followed");

    mock.assert_async().await;
    let page = page.expect("a 200 is a page");
    assert_eq!(page.page, Some(1));
    assert_eq!(page.embedded.expect("_embedded").widgets.len(), 2);
}

#[tokio::test]
async fn an_absolute_link_to_the_same_origin_is_followed_and_204_is_none() {
    let (server, client) = server_and_client().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/widgets")
                .query_param("page", "3");
            then.status(204);
        })
        .await;

    let href = format!("{}/api/v4/widgets?limit=2&page=3", server.base_url());
    let page: Option<WidgetList> = client.follow(&href).await.expect("followed");

    mock.assert_async().await;
    assert!(page.is_none(), "204 is the end: no page");
}

#[tokio::test]
async fn a_link_to_another_origin_is_refused_and_nothing_is_sent() {
    let (server, client) = server_and_client().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200);
        })
        .await;

    let err = client
        .follow::<WidgetList>("https://example.kommo.com/api/v4/widgets?page=2")
        .await
        .expect_err("another origin is refused");

    assert!(matches!(err, ApiError::InvalidLink { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("https://example.kommo.com"), "{message}");
    assert!(!message.contains(TOKEN));
    assert_eq!(any.calls_async().await, 0, "no request may reach any host");
}

#[tokio::test]
async fn a_followed_link_reports_errors_like_any_call() {
    let (server, client) = server_and_client().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/widgets");
            then.status(429)
                .header("content-type", "text/html")
                .body("<html>429</html>");
        })
        .await;

    let err = client
        .follow::<WidgetList>("/api/v4/widgets?page=2")
        .await
        .unwrap_err();
    assert!(err.is_rate_limited(), "{err}");
}

#[tokio::test]
async fn the_documents_placeholder_and_relative_paths_are_refused_and_nothing_is_sent() {
    let (server, client) = server_and_client().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200);
        })
        .await;

    for href in [
        "LINK",
        "widgets?page=2",
        "//example.kommo.com/api/v4/widgets",
    ] {
        let err = client
            .follow::<WidgetList>(href)
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, ApiError::InvalidLink { href: h, .. } if h == href),
            "{href}: {err:?}"
        );
    }
    assert_eq!(any.calls_async().await, 0, "nothing may be sent");
}

#[tokio::test]
async fn a_followed_answer_that_does_not_decode_names_its_endpoint_and_where() {
    let (server, client) = server_and_client().await;
    let mut body = page_body();
    // A field of the page itself: an odd widget would be kept as an unrecognized item instead.
    body["_page"] = serde_json::json!("not a number");
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/widgets");
            then.status(200)
                .header("content-type", "application/hal+json")
                .json_body(body);
        })
        .await;

    let err = client
        .follow::<WidgetList>("/api/v4/widgets?page=2&filter=PRIVATE")
        .await
        .unwrap_err();

    let ApiError::Decode { endpoint, path, .. } = &err else {
        panic!("a page off the contract is a Decode error: {err:?}");
    };
    assert_eq!(endpoint, "/api/v4/widgets");
    assert_eq!(path, "_page");
    let text = err.to_string();
    assert!(text.contains("of /api/v4/widgets at `_page`"), "{text}");
    assert!(!text.contains("PRIVATE"), "{text}");
}

#[tokio::test]
async fn a_followed_link_that_fails_in_transit_names_the_path_not_the_query() {
    // A bound port that never listens: the connection is refused.
    let refusing = common::Refusing::bind();
    let client = Client::builder()
        .base_url(&refusing.base_url())
        .token(TOKEN)
        .retry(lead_intake::retry::RetryPolicy::none())
        .build()
        .unwrap();

    let err = client
        .follow::<WidgetList>("/api/v4/widgets?page=2&filter=PRIVATE")
        .await
        .unwrap_err();

    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("/api/v4/widgets"), "{text}");
    assert!(!text.contains("PRIVATE"), "{text}");
}
