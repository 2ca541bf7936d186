//! HAL link-following: relative and same-origin links are fetched with the client's auth;
//! a link to another origin, or outside the base URL's path, is refused before any request is
//! sent.

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

/// Issue 21 §4: a client whose base URL is under a path (a gateway in front of Kommo, say)
/// follows links under that path only. A real server on loopback records what arrives: the
/// refused links send nothing at all, whatever spelling of `..` they use, and a link under the
/// prefix is followed with the token. Before the path check, `/other/x` and
/// `/proxy/kommo/../../admin` went out with the token (as `/other/x` and `/admin`), and so did
/// the `%2e%2e` spellings.
#[tokio::test]
async fn under_a_base_path_links_that_leave_it_are_refused_and_nothing_is_sent() {
    let server =
        common::script::ScriptServer::start(|_, _| common::script::Reply::json(200, page_body()))
            .await;
    let client = Client::builder()
        .base_url(&format!("{}/proxy/kommo", server.base_url))
        .token(TOKEN)
        .retry(lead_intake::retry::RetryPolicy::none())
        .build()
        .unwrap();
    let origin = &server.base_url;

    for href in [
        "/other/x".to_string(),
        format!("{origin}/other/x"),
        "/proxy/kommo2/api/v4/widgets".to_string(),
        "/proxy/kommo/../../admin".to_string(),
        "/proxy/kommo/api/v4/../../../admin".to_string(),
        format!("{origin}/proxy/kommo/api/v4/../../../admin"),
        "/proxy/kommo/%2e%2e/%2e%2e/admin".to_string(),
        "/proxy/kommo/%2E%2E/admin".to_string(),
        "/proxy/kommo/.%2e/admin".to_string(),
        "/proxy/kommo\\..\\..\\admin".to_string(),
        "/proxy/kommo/%252e%252e/admin".to_string(),
        "/proxy/kommo/..%2f..%2fadmin".to_string(),
        "/proxy/kommo/..;/admin".to_string(),
    ] {
        let err = client.follow::<WidgetList>(&href).await.expect_err(&href);
        let ApiError::InvalidLink {
            href: refused,
            reason,
        } = &err
        else {
            panic!("{href}: not InvalidLink: {err:?}");
        };
        assert_eq!(refused, &href);
        assert!(
            reason.contains("base URL's path `/proxy/kommo/`"),
            "{href}: {reason}"
        );
        assert!(!format!("{err} {err:?}").contains(TOKEN));
    }
    assert_eq!(
        server.targets(),
        Vec::<String>::new(),
        "nothing may be sent"
    );

    // Under the prefix, relative or absolute, with dot segments that stay inside: followed.
    for href in [
        "/proxy/kommo/api/v4/widgets?page=2".to_string(),
        format!("{origin}/proxy/kommo/api/v4/widgets?page=3"),
        "/proxy/kommo/api/x/../v4/widgets?page=4".to_string(),
    ] {
        let page: Option<WidgetList> = client.follow(&href).await.expect(&href);
        assert!(page.is_some(), "{href}");
    }
    assert_eq!(
        server.targets(),
        [
            "/proxy/kommo/api/v4/widgets?page=2",
            "/proxy/kommo/api/v4/widgets?page=3",
            "/proxy/kommo/api/v4/widgets?page=4",
        ]
    );
    for request in server.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }
}
