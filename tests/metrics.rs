//! What operators watch (feature `metrics`; `lead_intake::metrics`): each
//! counter and histogram of the table moves as documented, read back from `metrics-util`'s
//! in-memory recorder, installed for the test's thread only (the runtime is single-threaded, so
//! every request of the test records there). Labels carry operation ids and templated paths,
//! never a query string, a path parameter's value or a host.
//!
//! | claim | test |
//! |---|---|
//! | requests by endpoint, method and status; 429s; retries by reason; their durations | `requests_429s_and_retries_are_counted_by_endpoint` |
//! | labels never carry a query string or an id | the same test, over every key recorded |
//! | rate-limiter waits and their time | `rate_limiter_waits_are_counted_with_their_time` |
//! | token refreshes by outcome (and the token request under its path) | `token_refreshes_are_counted_by_outcome` |
//! | odd list items | `unrecognized_list_items_are_counted` |

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::script::{Reply, ScriptServer, http_without_timeouts};
use common::{RATE_LIMIT_PAGE, TOKEN, example};
use lead_intake::kommo::Client;
use lead_intake::metrics::{
    RATE_LIMITED, RATE_LIMITER_WAIT, RATE_LIMITER_WAITS, REQUEST_DURATION, REQUESTS, RETRIES,
    TOKEN_REFRESHES, UNRECOGNIZED_ITEMS,
};
use lead_intake::prelude::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;

/// Every metric recorded, as `name{label=value,...}` (labels sorted) with its value.
#[derive(Debug, Default)]
struct Recorded {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<String, Vec<f64>>,
}

impl Recorded {
    fn read(snapshotter: &Snapshotter) -> Self {
        let mut out = Self::default();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            match value {
                DebugValue::Counter(n) => {
                    out.counters.insert(name, n);
                }
                DebugValue::Histogram(values) => {
                    out.histograms
                        .insert(name, values.into_iter().map(|v| v.into_inner()).collect());
                }
                DebugValue::Gauge(_) => panic!("no gauge is documented: {name}"),
            }
        }
        out
    }

    fn counter(&self, name: &str, labels: &str) -> u64 {
        self.counters
            .get(&format!("{name}{{{labels}}}"))
            .copied()
            .unwrap_or(0)
    }

    fn histogram(&self, name: &str, labels: &str) -> Vec<f64> {
        self.histograms
            .get(&format!("{name}{{{labels}}}"))
            .cloned()
            .unwrap_or_default()
    }

    fn keys(&self) -> Vec<&String> {
        self.counters.keys().chain(self.histograms.keys()).collect()
    }
}

fn client(server: &ScriptServer) -> lead_intake::kommo::ClientBuilder {
    Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(
            RetryPolicy::default()
                .with_max_attempts(4)
                .with_base_delay(Duration::from_secs(1)),
        )
        .http_client(http_without_timeouts())
}

const UID: &str = "a1b2c3d4e5f6";
const EXTERNAL_ID: &str = "ext-77";

#[tokio::test(start_paused = true)]
async fn requests_429s_and_retries_are_counted_by_endpoint() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let lead_path = format!("/api/v4/leads/unsorted/{UID}");
    let server = ScriptServer::start(move |r, n| match r.path() {
        path if path == lead_path && n == 0 => {
            Reply::html(429, RATE_LIMIT_PAGE).header("retry-after", "1")
        }
        path if path == lead_path && n == 1 => Reply::html(500, "<html>down</html>"),
        path if path == lead_path => Reply::json(200, example("getIncomingLead.response.200.json")),
        "/api/v4/sources" => Reply::json(200, example("listSources.response.200.json")),
        "/api/v4/widgets" => Reply::json(200, example("listWidgets.response.200.json")),
        _ => Reply::status(404),
    })
    .await;
    let kommo = client(&server).build().unwrap();

    kommo
        .get_incoming_lead()
        .uid(UID)
        .send()
        .body()
        .await
        .unwrap();
    kommo
        .list_sources()
        .filter_external_id(vec![EXTERNAL_ID.to_string()])
        .send()
        .or_empty()
        .await
        .unwrap();
    let _: Option<lead_intake::kommo::types::WidgetList> = kommo
        .follow(&format!("/api/v4/widgets?page=2&uid={UID}"))
        .await
        .unwrap();

    let m = Recorded::read(&snapshotter);
    let lead = "endpoint=get_incoming_lead,method=GET";
    assert_eq!(
        m.counter(REQUESTS, &format!("{lead},status=429")),
        1,
        "{m:#?}"
    );
    assert_eq!(
        m.counter(REQUESTS, &format!("{lead},status=500")),
        1,
        "{m:#?}"
    );
    assert_eq!(
        m.counter(REQUESTS, &format!("{lead},status=200")),
        1,
        "{m:#?}"
    );
    assert_eq!(m.histogram(REQUEST_DURATION, lead).len(), 3, "{m:#?}");
    assert_eq!(
        m.counter(REQUESTS, "endpoint=list_sources,method=GET,status=200"),
        1,
        "{m:#?}"
    );
    assert_eq!(
        m.counter(REQUESTS, "endpoint=follow_link,method=GET,status=200"),
        1,
        "{m:#?}"
    );
    assert_eq!(m.counter(RATE_LIMITED, "endpoint=get_incoming_lead"), 1);
    assert_eq!(
        m.counter(RETRIES, "endpoint=get_incoming_lead,reason=rate_limited"),
        1,
        "{m:#?}"
    );
    assert_eq!(
        m.counter(RETRIES, "endpoint=get_incoming_lead,reason=server_error"),
        1,
        "{m:#?}"
    );
    let retries: u64 = m
        .counters
        .iter()
        .filter(|(k, _)| k.starts_with(RETRIES))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(retries, 2, "{m:#?}");
    // No limiter: nothing about it.
    assert!(
        !m.keys()
            .iter()
            .any(|k| k.starts_with(RATE_LIMITER_WAIT) || k.starts_with(RATE_LIMITER_WAITS)),
        "{m:#?}"
    );
    // No label carries a value of the request: the uid, the query, the host.
    let host = server.base_url.trim_start_matches("http://");
    for key in m.keys() {
        for leak in [UID, EXTERNAL_ID, "?", "page=", host, "/api/v4"] {
            assert!(!key.contains(leak), "{leak:?} in the metric {key}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_waits_are_counted_with_their_time() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server =
        ScriptServer::start(|_, _| Reply::json(200, example("listSources.response.200.json")))
            .await;
    let kommo = client(&server)
        .rate_limiter(RateLimiter::per_second(1).unwrap())
        .build()
        .unwrap();

    for _ in 0..3 {
        kommo.list_sources().send().or_empty().await.unwrap();
    }

    let m = Recorded::read(&snapshotter);
    let waits = m.histogram(RATE_LIMITER_WAIT, "endpoint=list_sources");
    assert_eq!(waits.len(), 3, "every acquisition: {m:#?}");
    assert_eq!(waits[0], 0.0, "the first request is not held");
    assert!(
        waits[1..].iter().all(|&w| w > 0.5 && w <= 1.5),
        "each later one about a second: {waits:?}"
    );
    assert_eq!(
        m.counter(RATE_LIMITER_WAITS, "endpoint=list_sources"),
        2,
        "{m:#?}"
    );
}

fn now() -> DateTime<Utc> {
    std::time::SystemTime::now().into()
}

/// A client whose access token expires in 30 s (inside the refresh margin), with the token
/// endpoint answering `token`.
async fn expiring(token: Reply) -> (ScriptServer, Client) {
    let server = ScriptServer::start(move |r, _| match r.path() {
        "/oauth2/access_token" => token.clone(),
        _ => Reply::json(200, example("listSources.response.200.json")),
    })
    .await;
    let tokens = TokenPair {
        access_token: Secret::new("ACCESS-OLD-111"),
        refresh_token: Secret::new("REFRESH-OLD-222"),
        expires_at: now() + chrono::Duration::seconds(30),
    };
    let stored = Arc::new(Mutex::new(Vec::new()));
    let oauth = OAuth::new(
        OAuthApp::new(
            "integration-id",
            "CLIENT-SECRET",
            "https://example.com/oauth",
        ),
        tokens,
        move |pair: TokenPair| {
            let stored = stored.clone();
            async move {
                stored.lock().unwrap().push(pair);
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
    (server, kommo)
}

#[tokio::test(start_paused = true)]
async fn token_refreshes_are_counted_by_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let new_pair = Reply::status(200)
        .header("content-type", "application/json")
        .body(
            json!({"token_type": "Bearer", "expires_in": 86400,
                   "access_token": "ACCESS-NEW-333", "refresh_token": "REFRESH-NEW-444"})
            .to_string(),
        );
    let revoked = Reply::json(
        401,
        json!({"hint": "Token has been revoked", "title": "Unauthorized",
               "status": 401, "detail": "Incorrect refresh token"}),
    );
    let down = Reply::html(503, "<html>down</html>");

    let (_a, refreshed) = expiring(new_pair).await;
    refreshed.list_sources().send().or_empty().await.unwrap();
    let (_b, rejected) = expiring(revoked).await;
    rejected.list_sources().send().or_empty().await.unwrap_err();
    // The token endpoint is down: the still valid token is used meanwhile.
    let (_c, failed) = expiring(down).await;
    failed.list_sources().send().or_empty().await.unwrap();

    let m = Recorded::read(&snapshotter);
    assert_eq!(m.counter(TOKEN_REFRESHES, "outcome=refreshed"), 1, "{m:#?}");
    assert_eq!(m.counter(TOKEN_REFRESHES, "outcome=rejected"), 1, "{m:#?}");
    assert_eq!(m.counter(TOKEN_REFRESHES, "outcome=failed"), 1, "{m:#?}");
    // The token requests are requests too, under their path (not the operation's id).
    let token = "endpoint=/oauth2/access_token,method=POST";
    for status in [200, 401, 503] {
        assert_eq!(
            m.counter(REQUESTS, &format!("{token},status={status}")),
            1,
            "{m:#?}"
        );
    }
    assert_eq!(
        m.counter(REQUESTS, "endpoint=list_sources,method=GET,status=200"),
        2,
        "{m:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unrecognized_list_items_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut page = example("listIncomingLeads.response.200.json");
    let leads = page["_embedded"]["unsorted"].as_array_mut().unwrap();
    assert!(leads.len() >= 2, "the example has two leads or more");
    leads[0]["pipeline_id"] = json!("main");
    leads[1]["created_at"] = json!({"not": "a time"});
    let server = ScriptServer::start(move |_, _| Reply::json(200, page.clone())).await;
    let kommo = client(&server).build().unwrap();

    let page = kommo.list_incoming_leads().send().or_empty().await.unwrap();

    assert_eq!(page.into_incoming_leads().unrecognized().len(), 2);
    let m = Recorded::read(&snapshotter);
    assert_eq!(m.counter(UNRECOGNIZED_ITEMS, ""), 2, "{m:#?}");
}

/// A raw call (`client.request(..)`) has no operation id: it is counted under its path, with
/// every value in it templated.
#[tokio::test(start_paused = true)]
async fn a_raw_call_is_counted_under_its_templated_path() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = ScriptServer::start(|_, _| Reply::json(200, json!({"id": 4242}))).await;
    let kommo = client(&server).build().unwrap();

    let lead: serde_json::Value = kommo
        .request_segments(reqwest::Method::GET, &["api", "v4", "leads", "4242"])
        .query(&json!({"with": "contacts"}))
        .body()
        .await
        .unwrap();

    assert_eq!(lead["id"], 4242);
    let m = Recorded::read(&snapshotter);
    assert_eq!(
        m.counter(
            REQUESTS,
            "endpoint=/api/v4/leads/{id},method=GET,status=200"
        ),
        1,
        "{m:#?}"
    );
    for key in m.keys() {
        assert!(
            !key.contains("raw_request") && !key.contains("4242"),
            "{key}"
        );
    }
}
