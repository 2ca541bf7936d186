//! Rate limiting and retries, on paused tokio time: every request is recorded at its virtual
//! arrival time by a server inside the test's runtime, so delays are asserted exactly and no
//! test sleeps for real.

mod common;

use std::time::Duration;

use common::script::{Recorded, Reply, ScriptServer, http_without_timeouts};
use common::{NGINX_FORBIDDEN_PAGE, RATE_LIMIT_PAGE, TOKEN, example};
use lead_intake::error::ApiError;
use lead_intake::kommo::Client;
use lead_intake::prelude::*;
use lead_intake::ratelimit::RateLimiter;
use lead_intake::retry::RetryPolicy;
use tokio::time::Instant;

fn sources() -> Reply {
    Reply::json(200, example("listSources.response.200.json"))
}

fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(4)
        .with_base_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(20))
}

fn client(server: &ScriptServer, retry: RetryPolicy) -> Client {
    Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(retry)
        .http_client(http_without_timeouts())
        .build()
        .unwrap()
}

fn gaps(requests: &[Recorded]) -> Vec<Duration> {
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn add_source_body() -> serde_json::Value {
    serde_json::json!([{"name": "chat", "external_id": "x1"}])
}

async fn add_source(
    client: &Client,
) -> Result<lead_intake::kommo::types::SourceList, lead_intake::kommo::Error> {
    client
        .add_sources()
        .body(
            serde_json::from_value::<lead_intake::kommo::types::AddSourcesRequest>(
                add_source_body(),
            )
            .unwrap(),
        )
        .send()
        .body()
        .await
}

// ------------------------------------------------------------------------------------- 429

#[tokio::test(start_paused = true)]
async fn an_html_429_without_retry_after_is_backed_off_and_retried() {
    let server = ScriptServer::sequence(vec![Reply::html(429, RATE_LIMIT_PAGE), sources()]).await;
    let client = client(&server, policy());

    let list = client.list_sources().send().or_empty().await.unwrap();

    assert_eq!(list.total_items, Some(2));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    // Retry 1 waits between half the base delay and the base delay (equal jitter).
    let gap = gaps(&requests)[0];
    assert!(
        gap >= Duration::from_millis(500) && gap <= Duration::from_secs(1),
        "{gap:?}"
    );
    // The retry is the same request, credentials included.
    for r in &requests {
        assert_eq!(r.target, "/api/v4/sources");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_seconds_is_honoured_exactly() {
    let server = ScriptServer::sequence(vec![
        Reply::html(429, RATE_LIMIT_PAGE).header("retry-after", "3"),
        sources(),
    ])
    .await;
    let client = client(&server, policy());

    client.list_sources().send().or_empty().await.unwrap();

    assert_eq!(gaps(&server.requests()), [Duration::from_secs(3)]);
}

/// Kommo's JSON 429 (its page "HTTP status codes"), with `retry_after` in the body.
fn json_429(retry_after: serde_json::Value) -> Reply {
    Reply::json(
        429,
        serde_json::json!({
            "title": "Too Many Requests",
            "type": "https://httpstatus.es/429",
            "status": 429,
            "detail": "You have sent too many requests in a given amount of time. Please try again later.",
            "retry_after": retry_after,
        }),
    )
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_a_json_429_body_is_honoured_exactly_like_the_header() {
    // 7 s: nowhere near the policy's backoff (0.5 to 1 s before the first retry).
    let server = ScriptServer::sequence(vec![json_429(7.into()), sources()]).await;
    let client = client(&server, policy());

    let list = client.list_sources().send().or_empty().await.unwrap();

    assert_eq!(list.total_items, Some(2));
    assert_eq!(gaps(&server.requests()), [Duration::from_secs(7)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_in_the_body_is_honoured_for_a_post_too() {
    let server = ScriptServer::sequence(vec![
        json_429(5.into()),
        Reply::json(200, example("addSources.response.200.json")),
    ])
    .await;
    let client = client(&server, policy());

    add_source(&client).await.unwrap();

    let requests = server.requests();
    assert_eq!(gaps(&requests), [Duration::from_secs(5)]);
    assert_eq!(requests[0].body, requests[1].body);
}

#[tokio::test(start_paused = true)]
async fn the_retry_after_header_wins_over_the_body() {
    let server = ScriptServer::sequence(vec![
        json_429(9.into()).header("retry-after", "3"),
        sources(),
    ])
    .await;
    let client = client(&server, policy());

    client.list_sources().send().or_empty().await.unwrap();

    assert_eq!(gaps(&server.requests()), [Duration::from_secs(3)]);
}

#[tokio::test(start_paused = true)]
async fn a_body_retry_after_beyond_max_delay_is_not_waited_for() {
    // Kommo's page shows 300 s; the policy allows 20 s.
    let server = ScriptServer::sequence(vec![json_429(300.into()), sources()]).await;
    let client = client(&server, policy());
    let begin = Instant::now();

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    assert_eq!(server.requests().len(), 1);
    assert!(begin.elapsed() < Duration::from_secs(1));
    let ApiError::RateLimited {
        retry_after,
        attempts,
        body,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(300)));
    assert_eq!(*attempts, 1);
    // The body the retry layer read is still the error's, whole.
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["retry_after"], 300);
    assert_eq!(body["title"], "Too Many Requests");
}

#[tokio::test(start_paused = true)]
async fn the_final_rate_limited_error_reports_the_body_retry_after() {
    let server = ScriptServer::sequence(vec![json_429("2".into())]).await;
    let client = client(&server, policy().with_max_attempts(3));

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    assert_eq!(
        gaps(&server.requests()),
        [Duration::from_secs(2), Duration::from_secs(2)]
    );
    assert!(
        matches!(
            err,
            ApiError::RateLimited { retry_after: Some(d), attempts: 3, .. } if d == Duration::from_secs(2)
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("the server asks to wait 2s"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_html_429_body_is_not_read_for_a_retry_after() {
    // Not JSON: a number on the page is not a wait.
    let server = ScriptServer::sequence(vec![
        Reply::html(429, "<html>retry_after: 9</html>"),
        sources(),
    ])
    .await;
    let client = client(&server, policy());

    client.list_sources().send().or_empty().await.unwrap();

    let gap = gaps(&server.requests())[0];
    assert!(gap <= Duration::from_secs(1), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn a_429_is_retried_even_for_a_post_since_the_server_did_not_process_it() {
    let server = ScriptServer::sequence(vec![
        Reply::html(429, RATE_LIMIT_PAGE),
        Reply::json(200, example("addSources.response.200.json")),
    ])
    .await;
    let client = client(&server, policy());

    add_source(&client).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same body is resent"
    );
    assert_eq!(requests[1].json(), add_source_body());
}

#[tokio::test(start_paused = true)]
async fn a_429_that_persists_ends_as_rate_limited_after_max_attempts() {
    let server = ScriptServer::sequence(vec![Reply::html(429, RATE_LIMIT_PAGE)]).await;
    let client = client(&server, policy());

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    assert_eq!(server.requests().len(), 4);
    let ApiError::RateLimited { attempts, body, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*attempts, 4);
    assert_eq!(body, RATE_LIMIT_PAGE);
    // Backoff grows: retry n waits within [2^(n-1) / 2, 2^(n-1)] seconds.
    let gaps = gaps(&server.requests());
    for (n, gap) in gaps.iter().enumerate() {
        let cap = Duration::from_secs(1 << n);
        assert!(*gap >= cap / 2 && *gap <= cap, "retry {}: {gap:?}", n + 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_max_delay_is_not_waited_for() {
    let server = ScriptServer::sequence(vec![
        Reply::html(429, RATE_LIMIT_PAGE).header("retry-after", "3600"),
        sources(),
    ])
    .await;
    let client = client(&server, policy());
    let begin = Instant::now();

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    assert_eq!(server.requests().len(), 1);
    assert!(begin.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(
            err,
            ApiError::RateLimited { retry_after: Some(d), attempts: 1, .. } if d == Duration::from_secs(3600)
        ),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_followed_link_takes_the_same_retry_and_limit_path() {
    let server = ScriptServer::sequence(vec![
        Reply::html(429, RATE_LIMIT_PAGE).header("retry-after", "2"),
        Reply::json(200, example("listWidgets.response.200.json")),
    ])
    .await;
    let client = Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .rate_limiter(RateLimiter::per_second(1).unwrap())
        .retry(policy())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();

    let page: Option<lead_intake::kommo::types::WidgetList> =
        client.follow("/api/v4/widgets?page=2").await.unwrap();

    assert!(page.is_some());
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(gaps(&requests), [Duration::from_secs(2)]);
    for r in &requests {
        assert_eq!(r.target, "/api/v4/widgets?page=2");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

// ------------------------------------------------------------------------------------- 5xx

#[tokio::test(start_paused = true)]
async fn a_503_then_success_is_retried_for_a_get() {
    let server = ScriptServer::sequence(vec![Reply::status(503), sources()]).await;
    let client = client(&server, policy());

    let list = client.list_sources().send().or_empty().await.unwrap();

    assert_eq!(list.total_items, Some(2));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_post_is_not_retried_on_a_5xx_since_it_may_have_been_applied() {
    let server = ScriptServer::sequence(vec![Reply::status(503), sources()]).await;
    let client = client(&server, policy());

    let err = add_source(&client).await.unwrap_err();

    assert_eq!(server.requests().len(), 1);
    assert_eq!(err.status(), Some(reqwest::StatusCode::SERVICE_UNAVAILABLE));
    assert!(!err.certainly_not_applied());
}

#[tokio::test(start_paused = true)]
async fn a_patch_is_not_retried_on_a_5xx_either() {
    let server = ScriptServer::sequence(vec![Reply::status(500), sources()]).await;
    let client = client(&server, policy());

    let err = client
        .update_sources()
        .body(
            serde_json::from_value::<lead_intake::kommo::types::UpdateSourcesRequest>(
                serde_json::json!([{"id": 1, "name": "x"}]),
            )
            .unwrap(),
        )
        .send()
        .body()
        .await
        .unwrap_err();

    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        err.status(),
        Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR)
    );
}

#[tokio::test(start_paused = true)]
async fn retry_none_sends_once() {
    let server = ScriptServer::sequence(vec![Reply::status(503), sources()]).await;
    let client = client(&server, RetryPolicy::none());

    client.list_sources().send().or_empty().await.unwrap_err();

    assert_eq!(server.requests().len(), 1);
}

// ------------------------------------------------------------------------------------- 403

#[tokio::test(start_paused = true)]
async fn a_403_is_never_retried_and_says_the_account_may_be_blocked() {
    let server =
        ScriptServer::sequence(vec![Reply::html(403, NGINX_FORBIDDEN_PAGE), sources()]).await;
    let client = client(&server, policy());

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    assert_eq!(server.requests().len(), 1);
    assert!(err.is_account_blocked(), "{err:?}");
    assert!(
        err.to_string()
            .contains("may be blocked for exceeding the rate limits"),
        "{err}"
    );
}

// ------------------------------------------------------------------------------- transport

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_retried_even_for_a_post() {
    // A bound port that never listens: every connection is refused.
    let refusing = common::Refusing::bind();
    let url = refusing.base_url();
    let client = Client::builder()
        .base_url(&url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(policy().with_max_attempts(3))
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let begin = Instant::now();

    let err = add_source(&client).await.unwrap_err();

    // Two backoffs happened: at least 0.5 s + 1 s of (virtual) waiting.
    assert!(
        begin.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        begin.elapsed()
    );
    assert!(
        matches!(&err, ApiError::Transport(e) if e.is_connect()),
        "{err:?}"
    );
    assert!(err.certainly_not_applied());
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_not_retried_with_retries_off() {
    // A bound port that never listens: every connection is refused.
    let refusing = common::Refusing::bind();
    let url = refusing.base_url();
    let client = Client::builder()
        .base_url(&url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let begin = Instant::now();
    add_source(&client).await.unwrap_err();
    assert_eq!(begin.elapsed(), Duration::ZERO);
}

// ------------------------------------------------------------------------------ rate limit

/// No window of one second holds more than `max` request arrivals.
fn assert_at_most_per_second(requests: &[Recorded], max: usize) {
    let mut at: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    at.sort();
    for (i, start) in at.iter().enumerate() {
        let in_window = at[i..]
            .iter()
            .take_while(|t| **t < *start + Duration::from_secs(1))
            .count();
        assert!(
            in_window <= max,
            "{in_window} requests within one second (max {max})"
        );
    }
}

async fn concurrent_lists(clients: Vec<Client>, each: usize) {
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..each {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                client.list_sources().send().or_empty().await.unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn the_default_limiter_allows_seven_per_second_across_clones() {
    let server = ScriptServer::sequence(vec![sources()]).await;
    let client = Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let begin = Instant::now();

    // Two clones, 15 requests each, all at once.
    concurrent_lists(vec![client.clone(), client], 15).await;

    let requests = server.requests();
    assert_eq!(requests.len(), 30);
    assert_at_most_per_second(&requests, 7);
    // 30 requests at 7 per second need 4 full seconds, and no more.
    assert_eq!(
        requests.iter().map(|r| r.at).max().unwrap() - begin,
        Duration::from_secs(4)
    );
}

#[tokio::test(start_paused = true)]
async fn one_limiter_can_be_shared_by_several_clients() {
    let server = ScriptServer::sequence(vec![sources()]).await;
    let shared = RateLimiter::per_second(3).unwrap();
    let make = || {
        Client::builder()
            .base_url(&server.base_url)
            .token(TOKEN)
            .rate_limiter(shared.clone())
            .http_client(http_without_timeouts())
            .build()
            .unwrap()
    };

    concurrent_lists(vec![make(), make()], 6).await;

    assert_at_most_per_second(&server.requests(), 3);
}

#[tokio::test(start_paused = true)]
async fn retries_count_against_the_limit() {
    // Every first attempt gets a 429 with Retry-After: 0; the retries must still be throttled.
    let server = ScriptServer::start(|r, _| {
        if r.header("x-n").is_none() {
            Reply::html(429, RATE_LIMIT_PAGE).header("retry-after", "0")
        } else {
            sources()
        }
    })
    .await;
    let client = Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .rate_limiter(RateLimiter::per_second(2).unwrap())
        .retry(policy())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();

    // Each call: 4 attempts, all 429 (the server never sees `x-n`).
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.list_sources().send().or_empty().await.unwrap_err()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_rate_limited());
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 8);
    assert_at_most_per_second(&requests, 2);
}

#[tokio::test(start_paused = true)]
async fn without_a_limiter_requests_go_at_once() {
    let server = ScriptServer::sequence(vec![sources()]).await;
    let client = client(&server, RetryPolicy::none());
    let begin = Instant::now();

    concurrent_lists(vec![client], 20).await;

    let requests = server.requests();
    assert_eq!(requests.len(), 20);
    assert!(requests.iter().all(|r| r.at == begin));
}

#[test]
fn the_window_check_fails_on_a_burst() {
    // The assertion used above must catch eight requests in one second.
    let now = Instant::now();
    let burst: Vec<Recorded> = (0..8)
        .map(|i| Recorded {
            at: now + Duration::from_millis(100 * i),
            method: "GET".into(),
            target: "/".into(),
            headers: Default::default(),
            body: Vec::new(),
        })
        .collect();
    assert!(std::panic::catch_unwind(|| assert_at_most_per_second(&burst, 7)).is_err());
}
