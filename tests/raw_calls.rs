//! Raw calls (`client.request(method, path)`, `lead_intake::raw`) go through the client's own
//! pipeline, and cannot leave the base URL: against a server inside the test's runtime (paused
//! time), PHP's own `parse_str()` for the query and form bodies, and the fake.

mod common;
// The fake crate's test helper (a server whose answers are checked against the spec).
#[path = "../fake/tests/fake_common/mod.rs"]
mod fake_common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::script::{Reply, ScriptServer, http_without_timeouts};
use common::{API_KEY, KOMMO_ACCEPT, TOKEN, assert_not_leaked, example};
use lead_intake::error::{AnswerError, ApiError, PathParameterProblem, PathProblem};
use lead_intake::kommo::Client;
use lead_intake::kommo::types::SourceList;
use lead_intake::list::ListItem;
use lead_intake::oauth::{OAuth, OAuthApp, TokenPair};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

fn client_at(base_url: &str, retry: RetryPolicy) -> Client {
    Client::builder()
        .base_url(base_url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(retry)
        .http_client(http_without_timeouts())
        .build()
        .unwrap()
}

fn client(server: &ScriptServer) -> Client {
    client_at(&server.base_url, RetryPolicy::none())
}

fn retrying() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(3)
        .with_base_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(20))
}

/// PHP's reading of a query string or form body: `parse_str()`, printed as JSON.
fn php_parse_str(query: &str) -> Value {
    let output = Command::new("php")
        .args([
            "-r",
            "parse_str($argv[1], $out); echo json_encode($out);",
            "--",
            query,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `php` ({e}): run scripts/install-test-tools.sh to install it")
        });
    assert!(output.status.success(), "php failed on {query:?}");
    serde_json::from_slice(&output.stdout).expect("php printed JSON")
}

// --------------------------------------------------------------------------- the path

#[tokio::test(start_paused = true)]
async fn a_path_that_could_leave_the_base_url_is_refused_before_anything_is_sent() {
    let server = ScriptServer::sequence(vec![Reply::status(204)]).await;
    let kommo = client_at(
        &format!("{}/proxy/kommo", server.base_url),
        RetryPolicy::none(),
    );
    for (path, problem) in [
        ("//evil.example/api/v4/leads", PathProblem::SchemeRelative),
        ("http://evil.example/api/v4/leads", PathProblem::NotFromRoot),
        ("https:evil.example", PathProblem::NotFromRoot),
        ("api/v4/leads", PathProblem::NotFromRoot),
        ("/../admin", PathProblem::DotSegment),
        ("/api/v4/../../../admin", PathProblem::DotSegment),
        ("/%2e%2e/admin", PathProblem::DotSegment),
        ("/%2E%2e/%2e%2E/admin", PathProblem::DotSegment),
        ("/.%2e/admin", PathProblem::DotSegment),
        ("/%252e%252e/admin", PathProblem::DotSegment),
        ("/..;/admin", PathProblem::DotSegment),
        ("/api\\..\\..\\admin", PathProblem::Backslash),
        ("/..%2f..%2fadmin", PathProblem::EncodedSeparator),
        ("/..%5cadmin", PathProblem::EncodedSeparator),
        ("/api/v4/leads?x=/../../admin", PathProblem::QueryOrFragment),
        ("/api/v4/leads#/../admin", PathProblem::QueryOrFragment),
        ("/api//v4/leads", PathProblem::EmptySegment),
        ("/api/v4/le ads", PathProblem::Character),
        ("/api/v4/\u{2025}", PathProblem::Character),
        ("/api/%zz", PathProblem::BadEscape),
    ] {
        let err = kommo
            .request(Method::GET, path)
            .body::<Value>()
            .await
            .expect_err(path);
        let ApiError::InvalidPath(e) = &err else {
            panic!("{path}: {err:?}");
        };
        assert_eq!(e.problem(), problem, "{path}");
        assert!(err.certainly_not_applied());
        assert!(
            err.to_string().contains("the request was not sent"),
            "{err}"
        );
    }
    for (segments, index, problem) in [
        (
            &["api", "v4", "leads", ".."][..],
            3,
            PathParameterProblem::DotSegment,
        ),
        (
            &["api", "%2e%2e", "x"][..],
            1,
            PathParameterProblem::EncodedDotSegment,
        ),
        (&["api", "", "x"][..], 1, PathParameterProblem::Empty),
    ] {
        let err = kommo
            .request_segments(Method::DELETE, segments)
            .or_empty::<Value>()
            .await
            .unwrap_err();
        let ApiError::InvalidPath(e) = &err else {
            panic!("{segments:?}: {err:?}");
        };
        assert_eq!(e.problem(), PathProblem::Segment { index, problem });
    }
    assert!(server.requests().is_empty(), "{:?}", server.targets());

    // What is accepted lands under the base URL's path, each segment in its place.
    kommo
        .request(Method::GET, "/api/v4/leads/a%20b")
        .or_empty::<Value>()
        .await
        .unwrap();
    kommo
        .request_segments(Method::GET, &["api", "v4", "leads", "../..\\admin?x#y"])
        .or_empty::<Value>()
        .await
        .unwrap();
    assert_eq!(
        server.targets(),
        [
            "/proxy/kommo/api/v4/leads/a%20b",
            "/proxy/kommo/api/v4/leads/..%2F..%5Cadmin%3Fx%23y"
        ]
    );
}

// -------------------------------------------------------------------- query and bodies

#[derive(Serialize)]
struct Filter {
    id: Vec<u64>,
    name: String,
    created_at: Range,
    with_deleted: bool,
    missing: Option<String>,
}

#[derive(Serialize)]
struct Range {
    from: u64,
    to: u64,
}

#[derive(Serialize)]
struct LeadsQuery {
    filter: Filter,
    order: std::collections::BTreeMap<String, String>,
    with: String,
    page: u32,
}

fn leads_query() -> LeadsQuery {
    LeadsQuery {
        filter: Filter {
            id: vec![7, 8],
            name: "Ana & Bo [x]=1".to_string(),
            created_at: Range { from: 1, to: 2 },
            with_deleted: true,
            missing: None,
        },
        order: [("created_at".to_string(), "desc".to_string())].into(),
        with: "contacts,source_id".to_string(),
        page: 2,
    }
}

fn leads_query_as_php_reads_it() -> Value {
    json!({
        "filter": {
            "id": ["7", "8"],
            "name": "Ana & Bo [x]=1",
            "created_at": {"from": "1", "to": "2"},
            "with_deleted": "1"
        },
        "order": {"created_at": "desc"},
        "with": "contacts,source_id",
        "page": "2"
    })
}

#[tokio::test(start_paused = true)]
async fn the_query_reaches_php_as_the_caller_meant_it() {
    let server = ScriptServer::sequence(vec![Reply::status(204)]).await;
    let page: Value = client(&server)
        .request(Method::GET, "/api/v4/leads")
        .query(&leads_query())
        .query(
            &[("limit", 50)]
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .or_empty()
        .await
        .unwrap();
    assert_eq!(page, Value::Null);
    let target = &server.targets()[0];
    let (path, query) = target.split_once('?').expect("a query");
    assert_eq!(path, "/api/v4/leads");
    let mut expected = leads_query_as_php_reads_it();
    expected["limit"] = json!("50");
    assert_eq!(php_parse_str(query), expected, "{query}");
}

#[tokio::test(start_paused = true)]
async fn json_and_form_bodies_go_on_the_wire_with_their_content_type() {
    let server = ScriptServer::sequence(vec![Reply::json(200, json!({"ok": true}))]).await;
    let kommo = client(&server);
    let body = json!([{"name": "Lead", "price": 100, "_embedded": {"tags": [{"name": "web"}]}}]);
    let answer: Value = kommo
        .request(Method::POST, "/api/v4/leads")
        .json(&body)
        .body()
        .await
        .unwrap();
    assert_eq!(answer, json!({"ok": true}));
    let answer: Value = kommo
        .request(Method::PATCH, "/api/v4/leads")
        .form(&leads_query())
        .header("x-custom", "1")
        .body()
        .await
        .unwrap();
    assert_eq!(answer, json!({"ok": true}));

    let requests = server.requests();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(requests[0].json(), body);
    assert_eq!(requests[1].method, "PATCH");
    assert_eq!(
        requests[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(requests[1].header("x-custom"), Some("1"));
    let form = String::from_utf8(requests[1].body.clone()).unwrap();
    assert_eq!(
        php_parse_str(&form),
        leads_query_as_php_reads_it(),
        "{form}"
    );
    // The client's own headers: the credentials and Kommo's Accept (the `pre` hook).
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(request.header("accept"), Some(KOMMO_ACCEPT));
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_or_query_that_is_not_a_map_is_refused_before_sending() {
    let server = ScriptServer::sequence(vec![Reply::status(204)]).await;
    let err = client(&server)
        .request(Method::GET, "/api/v4/leads")
        .query(&[1, 2])
        .or_empty::<Value>()
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::InvalidRequest(_)), "{err:?}");
    assert!(err.to_string().contains("must serialize to a map"), "{err}");
    let err = client(&server)
        .request(Method::GET, "/api/v4/leads")
        .header("x-bad", "a\nb")
        .or_empty::<Value>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`x-bad`"), "{err}");
    assert!(server.requests().is_empty());
}

// ----------------------------------------------------------- what typed calls go through

#[tokio::test(start_paused = true)]
async fn a_401_on_a_raw_call_refreshes_the_token_once_and_sends_it_again() {
    const OLD: &str = "ACCESS-OLD-111";
    const NEW: &str = "ACCESS-NEW-333";
    let server = ScriptServer::start(|r, _| match r.path() {
        "/oauth2/access_token" => Reply::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 86400,
                   "access_token": NEW, "refresh_token": "REFRESH-NEW-444"}),
        ),
        _ if r.header("authorization") == Some(&format!("Bearer {NEW}")) => {
            Reply::json(200, json!({"id": 1}))
        }
        _ => Reply::json(401, json!({"title": "Unauthorized", "status": 401})),
    })
    .await;
    let stored: Arc<Mutex<Vec<TokenPair>>> = Arc::default();
    let sink = stored.clone();
    let oauth = OAuth::new(
        OAuthApp::new(
            "integration-id",
            "CLIENT-SECRET-789",
            "https://example.com/oauth",
        ),
        TokenPair {
            access_token: lead_intake::Secret::new(OLD),
            refresh_token: lead_intake::Secret::new("REFRESH-OLD-222"),
            expires_at: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                + chrono::Duration::hours(2),
        },
        move |pair: TokenPair| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(pair);
                Ok::<(), std::io::Error>(())
            }
        },
    );
    let kommo = Client::builder()
        .base_url(&server.base_url)
        .oauth(oauth)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();

    let lead: Value = kommo
        .request(Method::POST, "/api/v4/leads")
        .json(&json!([{"name": "x"}]))
        .body()
        .await
        .unwrap();

    assert_eq!(lead, json!({"id": 1}));
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(
        paths,
        ["/api/v4/leads", "/oauth2/access_token", "/api/v4/leads"]
    );
    assert_eq!(server.requests()[2].json(), json!([{"name": "x"}]));
    assert_eq!(stored.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_raw_post_is_not_sent_again_after_a_500_and_a_raw_get_is() {
    let server = ScriptServer::sequence(vec![Reply::html(500, "<h1>oops</h1>")]).await;
    let kommo = client_at(&server.base_url, retrying());
    let err = kommo
        .request(Method::POST, "/api/v4/leads")
        .json(&json!([{"name": "x"}]))
        .body::<Value>()
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    assert_eq!(
        server.requests().len(),
        1,
        "a POST that may have been applied is not resent"
    );

    let err = kommo
        .request(Method::GET, "/api/v4/leads")
        .body::<Value>()
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    assert_eq!(
        server.requests().len(),
        4,
        "a GET is retried up to the policy's 3 attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_s_retry_after_is_honoured_on_a_raw_call() {
    let server = ScriptServer::sequence(vec![
        Reply::html(429, "<h1>429</h1>").header("retry-after", "3"),
        Reply::json(200, json!({"_embedded": {"leads": []}})),
    ])
    .await;
    let kommo = client_at(&server.base_url, retrying());
    let answer: Value = kommo
        .request(Method::GET, "/api/v4/leads")
        .body()
        .await
        .unwrap();
    assert_eq!(answer["_embedded"]["leads"], json!([]));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(3));

    let server = ScriptServer::sequence(vec![Reply::html(429, "<h1>429</h1>")]).await;
    let err = client(&server)
        .request(Method::GET, "/api/v4/leads")
        .body::<Value>()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::RateLimited { attempts: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_raw_answer_is_read_within_the_client_s_size_bound() {
    let big = "x".repeat(8 * 1024);
    let server = ScriptServer::sequence(vec![
        Reply::status(200)
            .header("content-type", "application/json")
            .body(format!("{{\"a\":\"{big}\"}}")),
    ])
    .await;
    let kommo = Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .max_answer_size(1024)
        .build()
        .unwrap();
    for err in [
        kommo
            .request(Method::GET, "/api/v4/leads")
            .body::<Value>()
            .await
            .unwrap_err(),
        kommo
            .request(Method::GET, "/api/v4/leads")
            .bytes()
            .await
            .unwrap_err(),
    ] {
        let ApiError::Answer { endpoint, error } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(endpoint, "/api/v4/leads");
        assert!(
            matches!(error, AnswerError::TooLarge { limit: 1024, .. }),
            "{error:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_echoed_in_an_error_is_redacted_in_its_body_headers_and_debug() {
    let server = ScriptServer::sequence(vec![
        Reply::html(400, &format!("<p>bad token {TOKEN}</p>"))
            .header("x-echo", &format!("Bearer {TOKEN}"))
            .header("set-cookie", "session=abcdef123456")
            .header("x-request-id", "req-1"),
    ])
    .await;
    let err = client(&server)
        .request(Method::GET, "/api/v4/leads")
        .body::<Value>()
        .await
        .unwrap_err();
    let headers = err.headers().expect("the answer's headers");
    assert_eq!(headers.get("x-request-id").unwrap(), "req-1");
    assert_eq!(headers.get("x-echo").unwrap(), "Bearer [redacted]");
    assert_not_leaked("Display", &err.to_string(), TOKEN);
    let debug = format!("{err:?}");
    assert_not_leaked("Debug", &debug, TOKEN);
    assert!(!debug.contains("abcdef123456"), "{debug}");
    assert!(debug.contains("req-1"), "{debug}");
}

#[tokio::test(start_paused = true)]
async fn a_204_is_empty_for_or_empty_gone_for_or_gone_and_an_error_for_body() {
    let server = ScriptServer::sequence(vec![Reply::status(204).header("x-n", "0")]).await;
    let kommo = client(&server);
    let list: Vec<Value> = kommo
        .request(Method::GET, "/api/v4/leads")
        .or_empty()
        .await
        .unwrap();
    assert!(list.is_empty());
    let gone: Option<Value> = kommo
        .request(Method::GET, "/api/v4/leads/1")
        .or_gone()
        .await
        .unwrap();
    assert_eq!(gone, None);
    let err = kommo
        .request(Method::GET, "/api/v4/leads")
        .body::<Value>()
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(204));
    assert_eq!(err.headers().unwrap().get("x-n").unwrap(), "0");
    let raw = kommo
        .request(Method::GET, "/api/v4/leads")
        .bytes()
        .await
        .unwrap();
    assert_eq!((raw.status().as_u16(), raw.body().len()), (204, 0));
}

#[tokio::test(start_paused = true)]
async fn a_problem_document_is_decoded_with_its_headers() {
    let server = ScriptServer::sequence(vec![
        Reply::status(400)
            .header("content-type", "application/problem+json")
            .header("x-request-id", "req-9")
            .body(
                json!({"title": "Bad Request", "status": 400, "detail": "Request validation failed",
                       "validation-errors": [{"request_id": "0", "errors": [
                           {"code": "NotSupportedChoice", "path": "status_id", "detail": "The value you selected is not a valid choice."}]}]})
                .to_string(),
            ),
    ])
    .await;
    let err = client(&server)
        .request(Method::POST, "/api/v4/leads")
        .json(&json!([{"status_id": 1}]))
        .body::<Value>()
        .await
        .unwrap_err();
    let ApiError::Problem {
        status,
        problem,
        endpoint,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((status.as_u16(), endpoint.as_str()), (400, "/api/v4/leads"));
    assert_eq!(
        problem.validation_errors[0].errors[0].path.as_deref(),
        Some("status_id")
    );
    assert_eq!(err.headers().unwrap().get("x-request-id").unwrap(), "req-9");
    // 404 with the problem document: gone.
    let server = ScriptServer::sequence(vec![Reply::json(
        404,
        json!({"title": "Not Found", "status": 404}),
    )])
    .await;
    let gone = client(&server)
        .request(Method::GET, "/api/v4/leads/9")
        .or_gone::<Value>()
        .await
        .unwrap();
    assert_eq!(gone, None);
}

#[tokio::test(start_paused = true)]
async fn a_raw_call_keeps_the_answer_s_metadata_and_a_typed_call_can_too() {
    let server = ScriptServer::sequence(vec![
        Reply::json(200, example("listSources.response.200.json")).header("x-request-id", "abc"),
    ])
    .await;
    let kommo = client(&server);
    let typed = kommo
        .list_sources()
        .send()
        .body_with_metadata()
        .await
        .unwrap();
    assert_eq!(typed.status().as_u16(), 200);
    assert_eq!(typed.headers().get("x-request-id").unwrap(), "abc");
    assert_eq!(typed.body().total_items, Some(2));
    let raw = kommo
        .request(Method::GET, "/api/v4/sources")
        .body_with_metadata::<SourceList>()
        .await
        .unwrap();
    assert_eq!(raw.headers().get("x-request-id").unwrap(), "abc");
    assert_eq!(raw.into_body().total_items, Some(2));
    let bytes = kommo
        .request(Method::GET, "/api/v4/sources")
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(bytes.body()).unwrap(),
        example("listSources.response.200.json")
    );
    // A raw call's future can be spawned.
    let spawned = tokio::spawn(
        kommo
            .request(Method::GET, "/api/v4/sources")
            .body::<SourceList>(),
    );
    assert_eq!(spawned.await.unwrap().unwrap().total_items, Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_closebot_raw_call_carries_the_api_key() {
    let server = ScriptServer::sequence(vec![Reply::json(200, json!({"total": 0}))]).await;
    let closebot = lead_intake::closebot::Client::builder()
        .api_key(API_KEY)
        .base_url(&server.base_url)
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let answer: Value = closebot
        .request_segments(Method::GET, &["botops", "source", "a/b"])
        .query(&json!({"page": 0}))
        .body()
        .await
        .unwrap();
    assert_eq!(answer, json!({"total": 0}));
    let request = &server.requests()[0];
    assert_eq!(request.target, "/botops/source/a%2Fb?page=0");
    assert_eq!(request.header("x-cb-key"), Some(API_KEY));
}

// ------------------------------------------------------------------ pagers on any HAL list

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Lead {
    id: i64,
    name: String,
}

/// Page `n` of a leads list of 5 pages of 2 (the last with 1), with `next` links, the third
/// page's second lead an odd one.
fn leads_page(r: &common::script::Recorded, base: &str) -> Reply {
    let page: u32 = r
        .target
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let leads: Vec<Value> = match page {
        1 => vec![json!({"id": 1, "name": "a"}), json!({"id": 2, "name": "b"})],
        2 => vec![json!({"id": 3, "name": "c"}), json!({"id": 4, "name": "d"})],
        3 => vec![
            json!({"id": 5, "name": "e"}),
            json!({"id": "six", "name": 6}),
        ],
        _ => vec![json!({"id": 7, "name": "g"})],
    };
    let mut links = json!({"self": {"href": format!("{base}/api/v4/leads?limit=2&page={page}")}});
    if page < 4 {
        links["next"] =
            json!({"href": format!("{base}/api/v4/leads?limit=2&page={}&with=contacts", page + 1)});
    }
    Reply::json(
        200,
        json!({"_page": page, "_links": links, "_embedded": {"leads": leads, "other": {"x": 1}}}),
    )
}

#[tokio::test(start_paused = true)]
async fn a_pager_reads_any_hal_list_through_the_raw_call_and_keeps_odd_items() {
    let base = Arc::new(Mutex::new(String::new()));
    let shared = base.clone();
    let server = ScriptServer::start(move |r, _| leads_page(r, &shared.lock().unwrap())).await;
    *base.lock().unwrap() = server.base_url.clone();
    let kommo = client(&server);

    let items: Vec<ListItem<Lead>> = kommo
        .request(Method::GET, "/api/v4/leads")
        .query(&json!({"filter": {"pipeline_id": 7}}))
        .pager::<Lead>("leads")
        .page_size(2)
        .items()
        .try_collect()
        .await
        .unwrap();

    let ids: Vec<Option<i64>> = items.iter().map(|i| i.typed().map(|l| l.id)).collect();
    assert_eq!(
        ids,
        [Some(1), Some(2), Some(3), Some(4), Some(5), None, Some(7)]
    );
    let odd = items[5].unrecognized().unwrap();
    assert_eq!((odd.index(), odd.path()), (1, "id"));
    let targets = server.targets();
    assert_eq!(targets.len(), 4, "{targets:?}");
    let first = php_parse_str(targets[0].split_once('?').unwrap().1);
    assert_eq!(
        first,
        json!({"filter": {"pipeline_id": "7"}, "page": "1", "limit": "2"})
    );
    assert_eq!(targets[1], "/api/v4/leads?limit=2&page=2&with=contacts");
    for request in server.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }

    // `typed_items` stops on the odd item, as the typed pagers do.
    let err = kommo
        .request(Method::GET, "/api/v4/leads")
        .pager::<Lead>("leads")
        .page_size(2)
        .typed_items()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::UnrecognizedItem { count: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pager_refuses_a_next_link_to_another_origin_and_ends_on_204() {
    let server = ScriptServer::sequence(vec![Reply::json(
        200,
        json!({"_links": {"next": {"href": "https://evil.example/api/v4/leads?page=2"}},
                   "_embedded": {"leads": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}}),
    )])
    .await;
    let results: Vec<_> = client(&server)
        .request(Method::GET, "/api/v4/leads")
        .pager::<Lead>("leads")
        .page_size(2)
        .typed_items()
        .collect()
        .await;
    assert_eq!(results.len(), 3);
    assert!(
        matches!(results[2], Err(ApiError::InvalidLink { .. })),
        "{:?}",
        results[2]
    );
    assert_eq!(server.requests().len(), 1);

    let server = ScriptServer::sequence(vec![Reply::status(204)]).await;
    let none: Vec<Lead> = client(&server)
        .request(Method::GET, "/api/v4/leads")
        .pager::<Lead>("leads")
        .typed_items()
        .try_collect()
        .await
        .unwrap();
    assert!(none.is_empty());
}

// ------------------------------------------------------------------------------- the fake

#[tokio::test]
async fn against_the_fake_a_raw_call_creates_what_a_typed_call_then_reads() {
    let fake = fake_common::Fake::default();
    let kommo = fake.kommo();
    let created: SourceList = kommo
        .request(Method::POST, "/api/v4/sources")
        .json(&json!([{"name": "Raw chat", "external_id": "raw-chat-1"}]))
        .body()
        .await
        .unwrap();
    let id = created.sources()[0].id;
    let typed = kommo.get_source().id(id).send().body().await.unwrap();
    assert_eq!(typed.name.as_deref(), Some("Raw chat"));
    let raw: Option<Value> = kommo
        .request_segments(Method::GET, &["api", "v4", "sources", &id.to_string()])
        .or_gone()
        .await
        .unwrap();
    assert_eq!(raw.unwrap()["external_id"], "raw-chat-1");
    // The fake's 401 for another token is a problem document, as Kommo's.
    let err = fake
        .kommo_with("NOT-THE-FAKE-TOKEN")
        .request(Method::GET, "/api/v4/sources")
        .or_empty::<Value>()
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
    assert!(err.problem().is_some(), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_typed_call_s_error_keeps_the_answer_s_headers_with_cookies_hidden_in_debug() {
    let server = ScriptServer::sequence(vec![
        Reply::html(503, "<h1>down</h1>")
            .header("retry-after", "120")
            .header("set-cookie", "sid=COOKIE-VALUE-1")
            .header("x-trace", "t-42"),
    ])
    .await;
    let err = client(&server)
        .list_sources()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    let headers = err.headers().expect("made from an answer");
    assert_eq!(headers.get("x-trace").unwrap(), "t-42");
    assert_eq!(headers.get("set-cookie").unwrap(), "sid=COOKIE-VALUE-1");
    let debug = format!("{err:?}");
    assert!(
        debug.contains("t-42") && !debug.contains("COOKIE-VALUE-1"),
        "{debug}"
    );
    // An error without an answer has none.
    let refused = client(&server)
        .get_widget()
        .widget_code("..")
        .send()
        .body()
        .await
        .unwrap_err();
    assert!(refused.headers().is_none());
}

// ------------------------------------------------------------- batches on any endpoint

/// Answers a JSON list of leads as Kommo does: every lead created with its `request_id` (its
/// own, or its index), or a 400 naming the invalid ones (`name: "bad"`) and creating none.
fn create_leads(r: &common::script::Recorded, _: usize) -> Reply {
    let items = r.json();
    let items = items.as_array().expect("a list");
    let key = |i: usize, item: &Value| {
        item.get("request_id")
            .and_then(Value::as_str)
            .map_or_else(|| i.to_string(), str::to_string)
    };
    let invalid: Vec<Value> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| item["name"] == "bad")
        .map(|(i, item)| {
            json!({"request_id": key(i, item), "errors": [
                {"code": "InvalidType", "path": "name", "detail": "bad name"}]})
        })
        .collect();
    if !invalid.is_empty() {
        return Reply::status(400)
            .header("content-type", "application/problem+json")
            .body(
                json!({"title": "Bad Request", "status": 400, "detail": "Request validation failed",
                       "validation-errors": invalid})
                .to_string(),
            );
    }
    let leads: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| json!({"id": 1000 + i, "request_id": key(i, item), "name": item["name"]}))
        .collect();
    Reply::json(200, json!({"_embedded": {"leads": leads}}))
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_any_endpoint_reports_each_item_and_resends_the_valid_rest() {
    let server = ScriptServer::start(create_leads).await;
    let leads = vec![
        json!({"name": "a"}),
        json!({"name": "b"}),
        json!({"name": "c"}),
        json!({"name": "bad"}),
        json!({"name": "e", "request_id": "own-e"}),
    ];
    let report = client(&server)
        .request_batched(
            Method::POST,
            "/api/v4/leads",
            "leads",
            &leads,
            &BatchOptions::new().with_chunk_size(2),
        )
        .await;

    assert_eq!(report.to_string(), "5 items: 4 succeeded, 1 rejected");
    let names: Vec<(usize, String)> = report
        .succeeded()
        .map(|(i, lead)| (i, lead["name"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        names,
        [
            (0, "a".into()),
            (1, "b".into()),
            (2, "c".into()),
            (4, "e".into())
        ]
    );
    let rejected: Vec<usize> = report.rejected().map(|(i, _)| i).collect();
    assert_eq!(rejected, [3]);
    // Chunks of 2: [a, b], [c, bad] refused whole, [c] again, [e].
    let bodies: Vec<Value> = server.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert!(bodies.contains(&json!([{"name": "c"}])), "{bodies:?}");
    for request in server.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(request.path(), "/api/v4/leads");
    }

    // A path that could leave the base URL: nothing sent, every item not applied.
    let before = server.requests().len();
    let report = client(&server)
        .request_batched(
            Method::POST,
            "/api/v4/../admin",
            "leads",
            &leads,
            &BatchOptions::new(),
        )
        .await;
    assert_eq!(report.succeeded().count(), 0);
    assert_eq!(report.to_resend().len(), 5, "{report}");
    assert_eq!(server.requests().len(), before);
}
