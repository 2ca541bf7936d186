//! Pagination on the wire: the exact requests each stream sends (path, `page`/`limit`/filters,
//! how many times), where it stops, and how it reports errors.
//!
//! Scripted servers answer each page with a small `limit` (2); every page the stream must not
//! fetch is mocked too, and asserted never called.

mod common;

use std::time::Duration;

use common::script::{Reply, ScriptServer, http_without_timeouts};
use common::{closebot, kommo, kommo_request, query_is};
use futures_util::{Stream, StreamExt, TryStreamExt};
use httpmock::Method::GET;
use httpmock::{Mock, MockServer, Then};
use lead_intake::closebot::types::SourcePage;
use lead_intake::kommo::types::{IncomingLeadCategory, SortOrder, WidgetList};
use lead_intake::prelude::*;
use serde_json::{Value, json};

const WIDGETS: &str = "/api/v4/widgets";
const UNSORTED: &str = "/api/v4/leads/unsorted";
const SOURCES: &str = "/agency/source";

/// Collects a whole stream; a stream that does not end (a broken loop guard) fails the test.
/// The limit is only reached by such a bug, so it is generous: a busy machine never needs it.
async fn collect<S: Stream + Unpin>(stream: S) -> Vec<S::Item> {
    tokio::time::timeout(Duration::from_secs(120), stream.collect())
        .await
        .expect("the stream ends")
}

// ------------------------------------------------------------------------------ Kommo helpers

/// An absolute href to `path?query` on the test server.
fn href(server: &MockServer, path: &str, query: &str) -> String {
    format!("{}{path}?{query}", server.base_url())
}

fn widgets(codes: &[&str]) -> Value {
    codes
        .iter()
        .enumerate()
        .map(|(i, code)| json!({"id": i, "code": code}))
        .collect()
}

/// A widgets page: `_page`, `_links.self` (when given), `_links.next` (when given), the widgets.
fn widget_page(number: u32, own: Option<&str>, next: Option<&str>, codes: &[&str]) -> Value {
    let mut links = serde_json::Map::new();
    if let Some(own) = own {
        links.insert("self".into(), json!({"href": own}));
    }
    if let Some(next) = next {
        links.insert("next".into(), json!({"href": next}));
    }
    json!({"_page": number, "_links": links, "_embedded": {"widgets": widgets(codes)}})
}

fn json_page(then: Then, body: Value) -> Then {
    then.status(200)
        .header("content-type", "application/hal+json")
        .json_body(body)
}

/// A mock of `GET {path}` with exactly `query`, answering as `answer` says.
async fn page_mock<'a>(
    server: &'a MockServer,
    path: &'static str,
    query: &'static str,
    answer: impl FnOnce(Then) -> Then,
) -> Mock<'a> {
    server
        .mock_async(|when, then| {
            kommo_request(when, GET, path)
                .is_true(query_is(query))
                .is_true(common::no_body);
            answer(then);
        })
        .await
}

/// A full widgets page `number` (limit 2) served at `limit=2&page={number}`, linking to the
/// next page.
async fn full_widget_page<'a>(
    server: &'a MockServer,
    number: u32,
    query: &'static str,
) -> Mock<'a> {
    let own = href(server, WIDGETS, query);
    let next = href(server, WIDGETS, &format!("limit=2&page={}", number + 1));
    let body = widget_page(number, Some(&own), Some(&next), &["a", "b"]);
    page_mock(server, WIDGETS, query, |then| json_page(then, body)).await
}

fn codes(
    items: Vec<Result<lead_intake::kommo::types::Widget, lead_intake::kommo::Error>>,
) -> Vec<String> {
    items
        .into_iter()
        .map(|w| w.expect("no error").code)
        .collect()
}

// -------------------------------------------------------------------------- Kommo end rules

#[tokio::test]
async fn kommo_first_page_204_is_an_empty_stream() {
    let (server, client) = kommo().await;
    let first = page_mock(&server, WIDGETS, "limit=2&page=1", |then| then.status(204)).await;

    let items = collect(
        client
            .list_widgets_pager(|req| req)
            .page_size(2)
            .typed_items(),
    )
    .await;

    assert!(items.is_empty(), "{items:?}");
    first.assert_calls_async(1).await;
}

#[tokio::test]
async fn kommo_one_item_is_a_short_page_and_its_next_link_is_not_followed() {
    let (server, client) = kommo().await;
    let next = href(&server, WIDGETS, "limit=2&page=2");
    let body = widget_page(1, None, Some(&next), &["only"]);
    let first = page_mock(&server, WIDGETS, "limit=2&page=1", |t| json_page(t, body)).await;
    let second = page_mock(&server, WIDGETS, "limit=2&page=2", |t| t.status(204)).await;

    let items = collect(
        client
            .list_widgets_pager(|req| req)
            .page_size(2)
            .typed_items(),
    )
    .await;

    assert_eq!(codes(items), ["only"]);
    first.assert_calls_async(1).await;
    second.assert_calls_async(0).await;
}

#[tokio::test]
async fn kommo_exactly_limit_items_then_a_204_ends_the_stream() {
    let (server, client) = kommo().await;
    let first = full_widget_page(&server, 1, "limit=2&page=1").await;
    let second = page_mock(&server, WIDGETS, "limit=2&page=2", |t| t.status(204)).await;

    let pages = collect(client.list_widgets_pager(|req| req).page_size(2).pages()).await;

    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].as_ref().expect("a page").page, Some(1));
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
}

#[tokio::test]
async fn kommo_limit_plus_one_items_come_in_two_pages_and_the_short_second_page_ends_it() {
    let (server, client) = kommo().await;
    let first = full_widget_page(&server, 1, "limit=2&page=1").await;
    let next = href(&server, WIDGETS, "limit=2&page=3");
    let body = widget_page(2, None, Some(&next), &["c"]);
    let second = page_mock(&server, WIDGETS, "limit=2&page=2", |t| json_page(t, body)).await;
    let third = page_mock(&server, WIDGETS, "limit=2&page=3", |t| t.status(204)).await;

    let items = collect(
        client
            .list_widgets_pager(|req| req)
            .page_size(2)
            .typed_items(),
    )
    .await;

    assert_eq!(codes(items), ["a", "b", "c"]);
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(0).await;
}

#[tokio::test]
async fn kommo_a_full_page_without_a_next_link_is_the_last() {
    let (server, client) = kommo().await;
    let body = widget_page(1, None, None, &["a", "b"]);
    let first = page_mock(&server, WIDGETS, "limit=2&page=1", |t| json_page(t, body)).await;
    let second = page_mock(&server, WIDGETS, "limit=2&page=2", |t| t.status(204)).await;

    let items = collect(
        client
            .list_widgets_pager(|req| req)
            .page_size(2)
            .typed_items(),
    )
    .await;

    assert_eq!(codes(items), ["a", "b"]);
    first.assert_calls_async(1).await;
    second.assert_calls_async(0).await;
}

#[tokio::test]
async fn kommo_an_empty_page_ends_the_stream_and_is_not_yielded() {
    let (server, client) = kommo().await;
    // The next link does not say its limit, so only the empty page can end the stream.
    let next = href(&server, WIDGETS, "page=2");
    let body = widget_page(1, None, Some(&next), &["a", "b"]);
    let first = page_mock(&server, WIDGETS, "limit=2&page=1", |t| json_page(t, body)).await;
    let empty = widget_page(2, None, Some(&href(&server, WIDGETS, "page=3")), &[]);
    let second = page_mock(&server, WIDGETS, "page=2", |t| json_page(t, empty)).await;
    let third = page_mock(&server, WIDGETS, "page=3", |t| t.status(204)).await;

    let pages = collect(client.list_widgets_pager(|req| req).page_size(2).pages()).await;

    assert_eq!(pages.len(), 1, "the empty page is not yielded: {pages:?}");
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(0).await;
}

#[tokio::test]
async fn kommo_a_next_link_to_a_page_already_followed_is_not_fetched_again() {
    let (server, client) = kommo().await;
    let first = full_widget_page(&server, 1, "limit=2&page=1").await;
    let second = full_widget_page(&server, 2, "limit=2&page=2").await;
    // Page 3 links back to page 2: relative, parameters in another order.
    let body = widget_page(3, None, Some("/api/v4/widgets?page=2&limit=2"), &["e", "f"]);
    let third = page_mock(&server, WIDGETS, "limit=2&page=3", |t| json_page(t, body)).await;

    let pages = collect(client.list_widgets_pager(|req| req).page_size(2).pages()).await;

    assert_eq!(pages.len(), 3);
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(1).await;
}

#[tokio::test]
async fn kommo_a_next_link_back_to_the_first_page_is_recognised_by_its_self_link() {
    let (server, client) = kommo().await;
    let first = full_widget_page(&server, 1, "limit=2&page=1").await;
    let own = href(&server, WIDGETS, "limit=2&page=2");
    let back = href(&server, WIDGETS, "limit=2&page=1");
    let body = widget_page(2, Some(&own), Some(&back), &["c", "d"]);
    let second = page_mock(&server, WIDGETS, "limit=2&page=2", |t| json_page(t, body)).await;

    let items = collect(
        client
            .list_widgets_pager(|req| req)
            .page_size(2)
            .typed_items(),
    )
    .await;

    assert_eq!(codes(items), ["a", "b", "c", "d"]);
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
}

#[tokio::test]
async fn kommo_max_pages_caps_the_requests() {
    let (server, client) = kommo().await;
    let first = full_widget_page(&server, 1, "limit=2&page=1").await;
    let second = full_widget_page(&server, 2, "limit=2&page=2").await;
    let third = full_widget_page(&server, 3, "limit=2&page=3").await;

    let pager = client.list_widgets_pager(|req| req).page_size(2);
    let pages = collect(pager.clone().max_pages(2).pages()).await;

    assert_eq!(pages.len(), 2);
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(0).await;

    let none = collect(pager.max_pages(0).pages()).await;
    assert!(none.is_empty());
    first.assert_calls_async(1).await;
}

// ----------------------------------------------------------------------------- Kommo errors

#[tokio::test]
async fn kommo_an_error_mid_stream_is_yielded_once_and_ends_the_stream() {
    let (server, client) = kommo().await;
    let first = full_widget_page(&server, 1, "limit=2&page=1").await;
    let second = page_mock(&server, WIDGETS, "limit=2&page=2", |t| {
        t.status(429)
            .header("content-type", "text/html")
            .body("<html>429</html>")
    })
    .await;
    let third = full_widget_page(&server, 3, "limit=2&page=3").await;

    let mut items = client
        .list_widgets_pager(|req| req)
        .page_size(2)
        .typed_items();
    assert_eq!(items.next().await.expect("a").expect("ok").code, "a");
    assert_eq!(items.next().await.expect("b").expect("ok").code, "b");
    let err = items.next().await.expect("the error").expect_err("429");
    assert!(err.is_rate_limited(), "{err}");
    assert!(items.next().await.is_none(), "the error ends the stream");
    assert!(items.next().await.is_none(), "and it stays ended");

    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
    third.assert_calls_async(0).await;
}

#[tokio::test]
async fn kommo_a_next_link_to_another_origin_is_yielded_as_invalid_link() {
    let (server, client) = kommo().await;
    let body = widget_page(
        1,
        None,
        Some("https://example.kommo.com/api/v4/widgets?limit=2&page=2"),
        &["a", "b"],
    );
    let first = page_mock(&server, WIDGETS, "limit=2&page=1", |t| json_page(t, body)).await;

    let pages = collect(client.list_widgets_pager(|req| req).page_size(2).pages()).await;

    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[0].is_ok());
    let err = pages[1].as_ref().expect_err("refused");
    assert!(matches!(err, ApiError::InvalidLink { .. }), "{err:?}");
    first.assert_calls_async(1).await;
}

#[tokio::test]
async fn kommo_page_size_and_start_out_of_range_are_errors_and_nothing_is_sent() {
    let (server, client) = kommo().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(204);
        })
        .await;

    for (pager, says) in [
        (
            client.list_widgets_pager(|req| req).page_size(0),
            "page size 0",
        ),
        (
            client.list_widgets_pager(|req| req).page_size(251),
            "page size 251",
        ),
        (client.list_widgets_pager(|req| req).start_at(0), "page 0"),
    ] {
        let mut pages = pager.pages();
        let err = pages.next().await.expect("an error").expect_err("refused");
        assert!(
            matches!(&err, ApiError::InvalidRequest(m) if m.contains(says)),
            "{err:?}"
        );
        assert!(pages.next().await.is_none());
    }
    let leads = collect(
        client
            .list_incoming_leads_pager(|r| r)
            .page_size(300)
            .typed_items(),
    )
    .await;
    assert!(
        matches!(leads[..], [Err(ApiError::InvalidRequest(_))]),
        "{leads:?}"
    );
    any.assert_calls_async(0).await;
}

// ------------------------------------------------------------------ waiting, on paused time

// Tests that wait (for a request that must not come, or for a prefetch) run on paused tokio
// time against a server inside the test's runtime: a wait costs no real time, and the clock
// only moves once the runtime has nothing left to do, so a busy machine changes nothing.

/// `/api/v4/widgets?limit=2&page={n}`.
fn widgets_page(n: u32) -> String {
    format!("{WIDGETS}?limit=2&page={n}")
}

/// A server answering pages 1 to `full` with full widget pages (limit 2, each linking to the
/// next) and later pages with a 204.
async fn scripted_widget_pages(full: u32) -> ScriptServer {
    ScriptServer::start(move |request, _| {
        let page = request
            .target
            .strip_prefix("/api/v4/widgets?limit=2&page=")
            .and_then(|n| n.parse::<u32>().ok());
        match page {
            Some(n) if (1..=full).contains(&n) => Reply::json(
                200,
                widget_page(n, None, Some(&widgets_page(n + 1)), &["a", "b"]),
            ),
            Some(_) => Reply::status(204),
            None => Reply::status(404),
        }
    })
    .await
}

/// A Kommo client of a scripted server: no retries, no rate limit, no timeouts (see
/// [`http_without_timeouts`]).
fn scripted_kommo(server: &ScriptServer) -> lead_intake::kommo::Client {
    lead_intake::kommo::Client::builder()
        .base_url(&server.base_url)
        .token(common::TOKEN)
        .no_rate_limit()
        .retry(lead_intake::retry::RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .expect("a loopback base URL is accepted")
}

/// Long enough for anything a stream might start on its own to reach the server.
const QUIET: Duration = Duration::from_secs(5);

// --------------------------------------------------------------- Kommo start, laziness, spawn

#[tokio::test]
async fn kommo_the_default_page_size_is_250() {
    let (server, client) = kommo().await;
    let first = page_mock(&server, WIDGETS, "limit=250&page=1", |t| t.status(204)).await;

    let items = collect(client.list_widgets_pager(|req| req).typed_items()).await;

    assert!(items.is_empty());
    first.assert_calls_async(1).await;
}

#[tokio::test(start_paused = true)]
async fn kommo_nothing_is_sent_before_the_stream_is_polled() {
    let server = scripted_widget_pages(1).await;
    let client = scripted_kommo(&server);

    let mut items = client
        .list_widgets_pager(|req| req)
        .page_size(2)
        .typed_items();
    tokio::time::sleep(QUIET).await;
    assert_eq!(server.targets(), [] as [String; 0]);

    assert_eq!(items.next().await.expect("a").expect("ok").code, "a");
    assert_eq!(server.targets(), [widgets_page(1)]);
    assert_eq!(items.next().await.expect("b").expect("ok").code, "b");
    assert_eq!(server.targets(), [widgets_page(1)]);
    assert!(items.next().await.is_none());
    assert_eq!(server.targets(), [widgets_page(1), widgets_page(2)]);
}

#[tokio::test]
async fn kommo_start_at_requests_that_page_first() {
    let (server, client) = kommo().await;
    let first = page_mock(&server, WIDGETS, "limit=2&page=1", |t| t.status(204)).await;
    let third = full_widget_page(&server, 3, "limit=2&page=3").await;
    let fourth = page_mock(&server, WIDGETS, "limit=2&page=4", |t| t.status(204)).await;

    let items = collect(
        client
            .list_widgets_pager(|req| req)
            .page_size(2)
            .start_at(3)
            .typed_items(),
    )
    .await;

    assert_eq!(codes(items), ["a", "b"]);
    first.assert_calls_async(0).await;
    third.assert_calls_async(1).await;
    fourth.assert_calls_async(1).await;
}

#[tokio::test]
async fn kommo_resume_after_follows_the_held_pages_next_link() {
    let (server, client) = kommo().await;
    let first = page_mock(&server, WIDGETS, "limit=2&page=1", |t| t.status(204)).await;
    let third = full_widget_page(&server, 3, "limit=2&page=3").await;
    let fourth = page_mock(&server, WIDGETS, "limit=2&page=4", |t| t.status(204)).await;
    let held: WidgetList = serde_json::from_value(widget_page(
        2,
        Some(&href(&server, WIDGETS, "limit=2&page=2")),
        Some(&href(&server, WIDGETS, "limit=2&page=3")),
        &["y", "z"],
    ))
    .unwrap();

    let pager = client.list_widgets_pager(|req| req).page_size(2);
    let pages = collect(pager.clone().resume_after(&held).pages()).await;

    let pages: Vec<WidgetList> = pages.into_iter().map(|p| p.expect("a page")).collect();
    assert_eq!(pages.iter().map(|p| p.page).collect::<Vec<_>>(), [Some(3)]);
    first.assert_calls_async(0).await;
    third.assert_calls_async(1).await;
    fourth.assert_calls_async(1).await;

    // A held page without a next link was the last one: nothing is sent.
    let last: WidgetList = serde_json::from_value(widget_page(9, None, None, &["z"])).unwrap();
    assert!(
        collect(pager.resume_after(&last).typed_items())
            .await
            .is_empty()
    );
    first.assert_calls_async(0).await;
    third.assert_calls_async(1).await;
}

#[tokio::test]
async fn kommo_incoming_leads_carry_the_filters_and_the_pager_sets_page_and_limit() {
    let (server, client) = kommo().await;
    let next = href(
        &server,
        UNSORTED,
        "filter%5Bcategory%5D%5B%5D=forms&limit=2&order%5Bcreated_at%5D=desc&page=2",
    );
    let body = json!({
        "_page": 1,
        "_links": {"next": {"href": next}},
        "_embedded": {"unsorted": [
            {"uid": "lead-1", "category": "forms"},
            {"uid": "lead-2", "category": "forms"},
        ]},
    });
    let first = page_mock(
        &server,
        UNSORTED,
        "filter%5Bcategory%5D%5B%5D=forms&limit=2&order%5Bcreated_at%5D=desc&page=1",
        |t| json_page(t, body),
    )
    .await;
    let second = page_mock(
        &server,
        UNSORTED,
        "filter%5Bcategory%5D%5B%5D=forms&limit=2&order%5Bcreated_at%5D=desc&page=2",
        |t| {
            json_page(
                t,
                json!({"_page": 2, "_embedded": {"unsorted": [{"uid": "lead-3", "category": "forms"}]}}),
            )
        },
    )
    .await;

    let leads: Vec<_> = collect(
        client
            .list_incoming_leads_pager(|req| {
                // page and limit here are overridden by the pager.
                req.filter_category(vec![IncomingLeadCategory::Forms])
                    .order_created_at(SortOrder::Desc)
                    .page(7)
                    .limit(9)
            })
            .page_size(2)
            .typed_items(),
    )
    .await;

    let uids: Vec<String> = leads
        .into_iter()
        .map(|l| l.expect("a lead").uid().to_string())
        .collect();
    assert_eq!(uids, ["lead-1", "lead-2", "lead-3"]);
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
}

#[tokio::test]
async fn kommo_a_stream_can_be_spawned() {
    let (server, client) = kommo().await;
    let first = full_widget_page(&server, 1, "limit=2&page=1").await;
    let second = page_mock(&server, WIDGETS, "limit=2&page=2", |t| t.status(204)).await;

    let items = client
        .list_widgets_pager(|req| req)
        .page_size(2)
        .typed_items();
    drop(client);
    let widgets = tokio::spawn(async move { items.try_collect::<Vec<_>>().await })
        .await
        .expect("the task completes")
        .expect("no error");

    assert_eq!(widgets.len(), 2);
    first.assert_calls_async(1).await;
    second.assert_calls_async(1).await;
}

// ---------------------------------------------------------------------------- prefetching

#[tokio::test(start_paused = true)]
async fn kommo_prefetch_fetches_the_next_page_while_the_consumer_holds_the_current_one() {
    let server = scripted_widget_pages(3).await;
    let client = scripted_kommo(&server);

    let mut pages = client
        .list_widgets_pager(|req| req)
        .page_size(2)
        .prefetch(1)
        .pages();
    let page = pages.next().await.expect("page 1").expect("ok");
    assert_eq!(page.page, Some(1));
    // Not polled again: page 2 is fetched anyway, and no further (one page ahead at most).
    server.until_requests(2).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(server.targets(), [widgets_page(1), widgets_page(2)]);

    let rest: Vec<_> = pages.map(|p| p.expect("ok").page).collect().await;
    assert_eq!(rest, [Some(2), Some(3)]);
    assert_eq!(
        server.targets(),
        (1..=4).map(widgets_page).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn kommo_prefetch_yields_the_same_items_and_the_error_last() {
    let (server, client) = kommo().await;
    full_widget_page(&server, 1, "limit=2&page=1").await;
    full_widget_page(&server, 2, "limit=2&page=2").await;
    let third = page_mock(&server, WIDGETS, "limit=2&page=3", |t| t.status(503)).await;
    let fourth = full_widget_page(&server, 4, "limit=2&page=4").await;

    for depth in [1, 3, usize::MAX] {
        let items = collect(
            client
                .list_widgets_pager(|req| req)
                .page_size(2)
                .prefetch(depth)
                .typed_items(),
        )
        .await;
        assert_eq!(items.len(), 5, "{items:?}");
        let codes: Vec<_> = items[..4]
            .iter()
            .map(|w| w.as_ref().expect("ok").code.as_str())
            .collect();
        assert_eq!(codes, ["a", "b", "a", "b"]);
        let err = items[4].as_ref().expect_err("the 503");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(503), "{err}");
    }
    third.assert_calls_async(3).await;
    fourth.assert_calls_async(0).await;
}

#[tokio::test(start_paused = true)]
async fn kommo_dropping_a_prefetching_stream_cancels_the_request_on_its_way() {
    let server = scripted_widget_pages(2).await;
    // One request per 400 ms: page 2's request waits in the limiter on the prefetch task.
    let client = lead_intake::kommo::Client::builder()
        .base_url(&server.base_url)
        .token(common::TOKEN)
        .retry(lead_intake::retry::RetryPolicy::none())
        .rate_limiter(
            lead_intake::ratelimit::RateLimiter::new(1, Duration::from_millis(400))
                .expect("a valid limit"),
        )
        .http_client(http_without_timeouts())
        .build()
        .expect("a loopback base URL is accepted");

    let mut pages = client
        .list_widgets_pager(|req| req)
        .page_size(2)
        .prefetch(2)
        .pages();
    pages.next().await.expect("page 1").expect("ok");
    drop(pages);
    // Without the abort, the task would send page 2 once the limiter lets it.
    tokio::time::sleep(QUIET).await;
    assert_eq!(server.targets(), [widgets_page(1)]);
}

#[tokio::test]
async fn closebot_prefetch_yields_every_page_in_order() {
    let (server, client) = closebot().await;
    let first = source_mock(
        &server,
        "page=0&pageSize=2",
        source_page(0, 2, Some(5), &["a", "b"]),
    )
    .await;
    let second = source_mock(
        &server,
        "page=1&pageSize=2",
        source_page(1, 2, Some(5), &["c", "d"]),
    )
    .await;
    let third = source_mock(
        &server,
        "page=2&pageSize=2",
        source_page(2, 2, Some(5), &["e"]),
    )
    .await;

    let items = collect(
        client
            .list_sources_pager(|req| req)
            .page_size(2)
            .prefetch(1)
            .typed_items(),
    )
    .await;

    assert_eq!(source_ids(items), ["a", "b", "c", "d", "e"]);
    for mock in [&first, &second, &third] {
        mock.assert_calls_async(1).await;
    }
}

// ---------------------------------------------------------------------------------- CloseBot

fn sources(ids: &[&str]) -> Value {
    ids.iter()
        .map(|id| json!({"sourceId": id, "name": format!("source {id}")}))
        .collect()
}

fn source_page(page: u32, page_size: u32, total: Option<u32>, ids: &[&str]) -> Value {
    let mut body = json!({"results": sources(ids), "page": page, "pageSize": page_size});
    if let Some(total) = total {
        body["total"] = json!(total);
    }
    body
}

async fn source_mock<'a>(server: &'a MockServer, query: &'static str, body: Value) -> Mock<'a> {
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(SOURCES)
                .header("x-cb-key", common::API_KEY)
                .is_true(query_is(query))
                .is_true(common::no_body);
            then.status(200)
                .header("content-type", "application/json")
                .json_body(body);
        })
        .await
}

fn source_ids(
    items: Vec<Result<lead_intake::closebot::types::Source, lead_intake::closebot::Error>>,
) -> Vec<String> {
    items
        .into_iter()
        .map(|s| s.expect("no error").source_id.expect("sourceId"))
        .collect()
}

#[tokio::test]
async fn closebot_pages_count_from_zero_carry_the_filters_and_end_at_total() {
    let (server, client) = closebot().await;
    let p0 = source_mock(
        &server,
        "page=0&pageSize=2&query=Acme",
        source_page(0, 2, Some(4), &["a", "b"]),
    )
    .await;
    let p1 = source_mock(
        &server,
        "page=1&pageSize=2&query=Acme",
        source_page(1, 2, Some(4), &["c", "d"]),
    )
    .await;
    let p2 = source_mock(
        &server,
        "page=2&pageSize=2&query=Acme",
        source_page(2, 2, Some(4), &["e", "f"]),
    )
    .await;

    let items = collect(
        client
            .list_sources_pager(|req| req.query("Acme").page(5).page_size(7))
            .page_size(2)
            .typed_items(),
    )
    .await;

    assert_eq!(source_ids(items), ["a", "b", "c", "d"]);
    p0.assert_calls_async(1).await;
    p1.assert_calls_async(1).await;
    p2.assert_calls_async(0).await;
}

#[tokio::test]
async fn closebot_a_short_page_is_the_last() {
    let (server, client) = closebot().await;
    let p0 = source_mock(
        &server,
        "page=0&pageSize=2",
        source_page(0, 2, None, &["a", "b"]),
    )
    .await;
    let p1 = source_mock(
        &server,
        "page=1&pageSize=2",
        source_page(1, 2, None, &["c"]),
    )
    .await;
    let p2 = source_mock(
        &server,
        "page=2&pageSize=2",
        source_page(2, 2, None, &["d", "e"]),
    )
    .await;

    let items = collect(
        client
            .list_sources_pager(|req| req)
            .page_size(2)
            .typed_items(),
    )
    .await;

    assert_eq!(source_ids(items), ["a", "b", "c"]);
    p0.assert_calls_async(1).await;
    p1.assert_calls_async(1).await;
    p2.assert_calls_async(0).await;
}

#[tokio::test]
async fn closebot_empty_results_end_the_stream_and_are_not_yielded() {
    let (server, client) = closebot().await;
    let p0 = source_mock(
        &server,
        "page=0&pageSize=2",
        source_page(0, 2, None, &["a", "b"]),
    )
    .await;
    let p1 = source_mock(&server, "page=1&pageSize=2", source_page(1, 2, None, &[])).await;
    let p2 = source_mock(
        &server,
        "page=2&pageSize=2",
        source_page(2, 2, None, &["c", "d"]),
    )
    .await;

    let pages = collect(client.list_sources_pager(|req| req).page_size(2).pages()).await;

    assert_eq!(pages.len(), 1, "the empty page is not yielded: {pages:?}");
    p0.assert_calls_async(1).await;
    p1.assert_calls_async(1).await;
    p2.assert_calls_async(0).await;
}

#[tokio::test]
async fn closebot_the_default_page_size_is_100_and_more_is_refused() {
    let (server, client) = closebot().await;
    let p0 = source_mock(
        &server,
        "page=0&pageSize=100",
        source_page(0, 100, Some(1), &["a"]),
    )
    .await;

    let items = collect(client.list_sources_pager(|req| req).typed_items()).await;
    assert_eq!(source_ids(items), ["a"]);
    p0.assert_calls_async(1).await;

    for size in [0, 101] {
        let mut pages = client.list_sources_pager(|req| req).page_size(size).pages();
        let err = pages.next().await.expect("an error").expect_err("refused");
        let says = format!("page size {size}");
        assert!(
            matches!(&err, ApiError::InvalidRequest(m) if m.contains(&says) && m.contains("100")),
            "{err:?}"
        );
        assert!(pages.next().await.is_none());
    }
    p0.assert_calls_async(1).await;
}

#[tokio::test]
async fn closebot_start_at_resume_after_and_max_pages() {
    let (server, client) = closebot().await;
    let p0 = source_mock(
        &server,
        "page=0&pageSize=2",
        source_page(0, 2, Some(9), &["a", "b"]),
    )
    .await;
    let p2 = source_mock(
        &server,
        "page=2&pageSize=2",
        source_page(2, 2, Some(9), &["e", "f"]),
    )
    .await;
    let p3 = source_mock(
        &server,
        "page=3&pageSize=2",
        source_page(3, 2, Some(9), &["g", "h"]),
    )
    .await;
    let pager = client
        .list_sources_pager(|req| req)
        .page_size(2)
        .max_pages(1);

    let started = collect(pager.clone().start_at(2).typed_items()).await;
    assert_eq!(source_ids(started), ["e", "f"]);

    let held: SourcePage = serde_json::from_value(source_page(2, 2, Some(9), &["e", "f"])).unwrap();
    let resumed = collect(pager.clone().resume_after(&held).typed_items()).await;
    assert_eq!(source_ids(resumed), ["g", "h"]);

    // The held page reaches total: nothing more to fetch.
    let last: SourcePage = serde_json::from_value(source_page(3, 2, Some(8), &["g", "h"])).unwrap();
    assert!(
        collect(pager.resume_after(&last).typed_items())
            .await
            .is_empty()
    );

    p0.assert_calls_async(0).await;
    p2.assert_calls_async(1).await;
    p3.assert_calls_async(1).await;
}

#[tokio::test]
async fn closebot_an_error_is_yielded_once_and_ends_the_stream() {
    let (server, client) = closebot().await;
    let p0 = source_mock(
        &server,
        "page=0&pageSize=2",
        source_page(0, 2, None, &["a", "b"]),
    )
    .await;
    let p1 = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(SOURCES)
                .is_true(query_is("page=1&pageSize=2"));
            then.status(401)
                .header("content-type", "application/json")
                .body(common::closebot_example_text(
                    "problem.unauthorized.401.json",
                ));
        })
        .await;

    let mut pages = client.list_sources_pager(|req| req).page_size(2).pages();
    assert!(pages.next().await.expect("page 0").is_ok());
    let err = pages.next().await.expect("the error").expect_err("401");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err}");
    assert!(pages.next().await.is_none());
    assert!(pages.next().await.is_none());

    p0.assert_calls_async(1).await;
    p1.assert_calls_async(1).await;
}

#[tokio::test(start_paused = true)]
async fn closebot_a_stream_can_be_spawned_and_is_lazy() {
    let page = format!("{SOURCES}?page=0&pageSize=2");
    let answered = page.clone();
    let server = ScriptServer::start(move |request, _| {
        if request.target == answered && request.header("x-cb-key") == Some(common::API_KEY) {
            Reply::status(200)
                .header("content-type", "application/json")
                .body(source_page(0, 2, Some(2), &["a", "b"]).to_string())
        } else {
            Reply::status(404)
        }
    })
    .await;
    let client = lead_intake::closebot::Client::builder()
        .api_key(common::API_KEY)
        .base_url(&server.base_url)
        .retry(lead_intake::retry::RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .expect("a loopback base URL is accepted");

    let items = client
        .list_sources_pager(|req| req)
        .page_size(2)
        .typed_items();
    tokio::time::sleep(QUIET).await;
    assert_eq!(server.targets(), [] as [String; 0]);

    let sources = tokio::spawn(items.try_collect::<Vec<_>>())
        .await
        .expect("the task completes")
        .expect("no error");
    assert_eq!(sources.len(), 2);
    assert_eq!(server.targets(), [page]);
}

#[test]
fn kommo_page_exposes_the_items_and_links_of_the_documented_page() {
    use lead_intake::pagination::KommoPage;
    let page: WidgetList =
        serde_json::from_str(&common::kommo_example_text("listWidgets.response.200.json")).unwrap();
    assert_eq!(page.items().len(), 2);
    assert!(page.links().and_then(|l| l.next.as_ref()).is_some());
}

// ------------------------------------------------------ Issue 21 §4: lists that do not end

/// The query value of `name` in a recorded target.
fn query_value(target: &str, name: &str) -> Option<u32> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

/// A Kommo server whose widget list never ends: every page is full (limit 2) and links to a
/// `next` page never asked for before (`page` counts up).
async fn endless_widget_pages() -> ScriptServer {
    ScriptServer::start(|request, _| match query_value(&request.target, "page") {
        Some(n) if request.path() == WIDGETS => Reply::json(
            200,
            widget_page(
                n,
                Some(&widgets_page(n)),
                Some(&widgets_page(n + 1)),
                &["a", "b"],
            ),
        ),
        _ => Reply::status(404),
    })
    .await
}

/// The stream's last item is `TooManyPages { pages }` and every one before it is a page.
fn ends_with_too_many_pages<
    T: std::fmt::Debug,
    P: std::fmt::Debug + lead_intake::error::ProblemSummary,
>(
    got: &[Result<T, ApiError<P>>],
    pages: u32,
) {
    let (last, before) = got.split_last().expect("the stream yields something");
    assert!(before.iter().all(Result::is_ok), "{before:?}");
    let Err(err @ ApiError::TooManyPages { pages: reached }) = last else {
        panic!("the stream ends with TooManyPages, not {last:?}");
    };
    assert_eq!(*reached, pages);
    let message = err.to_string();
    assert!(
        message.contains(&format!("after {pages} pages")) && message.contains(".page_limit(n)"),
        "{message}"
    );
}

/// Before the page limit, this stream never ended (the loop guard only knows links it has
/// seen): 6,990 requests in 10 s with the rate limiter off.
#[tokio::test(start_paused = true)]
async fn kommo_an_endless_chain_of_new_next_links_ends_at_the_page_limit() {
    let server = endless_widget_pages().await;
    let client = scripted_kommo(&server);

    let got = collect(
        client
            .list_widgets_pager(|req| req)
            .page_size(2)
            .page_limit(25)
            .pages(),
    )
    .await;

    assert_eq!(got.len(), 26, "25 pages, then the error");
    ends_with_too_many_pages(&got, 25);
    assert_eq!(server.requests().len(), 25, "no request past the limit");
}

/// `max_pages` below the page limit is a quiet end; the page limit below `max_pages` is the
/// error.
#[tokio::test(start_paused = true)]
async fn kommo_max_pages_ends_quietly_and_the_smaller_of_the_two_applies() {
    let server = endless_widget_pages().await;
    let client = scripted_kommo(&server);
    let pager = client
        .list_widgets_pager(|req| req)
        .page_size(2)
        .page_limit(5);

    let quiet = collect(pager.clone().max_pages(3).pages()).await;
    assert_eq!(quiet.len(), 3);
    assert!(quiet.iter().all(Result::is_ok), "{quiet:?}");

    let limited = collect(pager.max_pages(8).pages()).await;
    ends_with_too_many_pages(&limited, 5);
    assert_eq!(server.requests().len(), 3 + 5);
}

/// CloseBot's pages are asked for by number, so a server that ignores `page` and sends full
/// pages without a `total` looks like a list without end: it ends at the page limit too.
#[tokio::test(start_paused = true)]
async fn closebot_pages_without_end_end_at_the_page_limit() {
    let server = ScriptServer::start(|request, n| {
        if request.path() == SOURCES {
            Reply::status(200)
                .header("content-type", "application/json")
                .body(source_page(n as u32, 2, None, &["a", "b"]).to_string())
        } else {
            Reply::status(404)
        }
    })
    .await;
    let client = lead_intake::closebot::Client::builder()
        .api_key(common::API_KEY)
        .base_url(&server.base_url)
        .retry(lead_intake::retry::RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .expect("a loopback base URL is accepted");

    let got = collect(
        client
            .list_sources_pager(|req| req)
            .page_size(2)
            .page_limit(40)
            .pages(),
    )
    .await;

    ends_with_too_many_pages::<SourcePage, _>(&got, 40);
    assert_eq!(got.len(), 41);
    assert_eq!(server.requests().len(), 40);
}

/// Every pager starts with the documented default (10,000; a real run of 10,000 requests
/// against a scripted server took 33 s here, so the bound's effect is shown with small limits
/// above, through the same code).
#[test]
fn pagers_start_with_the_default_page_limit_of_10000() {
    assert_eq!(lead_intake::pagination::DEFAULT_PAGE_LIMIT, 10_000);
    let kommo = lead_intake::kommo::Client::builder()
        .base_url("https://mycompany.kommo.com")
        .token(common::TOKEN)
        .build()
        .unwrap();
    let closebot = lead_intake::closebot::Client::builder()
        .api_key(common::API_KEY)
        .build()
        .unwrap();
    for debug in [
        format!("{:?}", kommo.list_widgets_pager(|req| req)),
        format!("{:?}", kommo.list_incoming_leads_pager(|req| req)),
        format!("{:?}", closebot.list_sources_pager(|req| req)),
    ] {
        assert!(debug.contains("page_limit: 10000"), "{debug}");
    }
}

/// A server answering every page of the incoming leads with two leads never sent before: a
/// drain reads page 1 again and again, each time finding new leads. Before the page limit it
/// never ended, remembering every lead.
#[tokio::test(start_paused = true)]
async fn drain_of_new_leads_without_end_ends_at_the_page_limit() {
    let server = ScriptServer::start(|request, n| {
        if request.path() == UNSORTED {
            Reply::json(
                200,
                json!({"_page": 1, "_embedded": {"unsorted": [
                    {"uid": format!("lead-{n}-a"), "category": "forms"},
                    {"uid": format!("lead-{n}-b"), "category": "forms"},
                ]}}),
            )
        } else {
            Reply::status(404)
        }
    })
    .await;
    let client = scripted_kommo(&server);

    let got = collect(
        client
            .list_incoming_leads_pager(|req| req)
            .page_size(2)
            .page_limit(20)
            .drain(),
    )
    .await;

    assert_eq!(got.len(), 41, "2 new leads a request, then the error");
    ends_with_too_many_pages(&got, 20);
    assert_eq!(server.requests().len(), 20);
    assert!(
        server
            .targets()
            .iter()
            .all(|t| query_value(t, "page") == Some(1)),
        "{:?}",
        server.targets()
    );
}

/// A server answering every page number with the same full page: a drain finds nothing new
/// on it and steps to the next page, forever before the page limit.
#[tokio::test(start_paused = true)]
async fn drain_of_the_same_full_page_on_every_page_ends_at_the_page_limit() {
    let server = ScriptServer::start(|request, _| {
        if request.path() == UNSORTED {
            Reply::json(
                200,
                json!({"_page": 1, "_embedded": {"unsorted": [
                    {"uid": "lead-a", "category": "forms"},
                    {"uid": "lead-b", "category": "forms"},
                ]}}),
            )
        } else {
            Reply::status(404)
        }
    })
    .await;
    let client = scripted_kommo(&server);

    let got = collect(
        client
            .list_incoming_leads_pager(|req| req)
            .page_size(2)
            .page_limit(30)
            .drain(),
    )
    .await;

    assert_eq!(got.len(), 3, "each lead once, then the error");
    ends_with_too_many_pages(&got, 30);
    let pages: Vec<_> = server
        .targets()
        .iter()
        .map(|t| query_value(t, "page").unwrap())
        .collect();
    assert_eq!(pages, [1, 1].into_iter().chain(2..=29).collect::<Vec<_>>());
}
