//! The fake's deliberate misbehaviour: Kommo's HTML 429 and the blocked account's HTML 403,
//! 5xx answers, dropped connections and slow answers, all decided from the seed (or scripted),
//! and what the crate's client makes of each.

mod fake_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_common::{Fake, answer, body, status};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use lead_intake_fake::{Config, Fault, Faults, Stats};
use reqwest::Method;
use serde_json::json;

fn add_one(external_id: &str) -> lead_intake::kommo::types::AddSourcesRequest {
    body(json!([{"name": "chat", "external_id": external_id}]))
}

/// Marks the requests of a scenario that must fall into one window of the fake's rate limit:
/// from [`open`](Self::open) to [`close`](Self::close).
#[derive(Clone, Default)]
struct Window(Arc<Mutex<(Option<Instant>, Option<Duration>)>>);

impl Window {
    fn open(&self) {
        self.0.lock().unwrap().0 = Some(Instant::now());
    }
    fn close(&self) {
        let mut span = self.0.lock().unwrap();
        let opened = span.0.expect("opened");
        span.1.get_or_insert(opened.elapsed());
    }
    /// How long the marked requests took (so far, if the scenario stopped before closing).
    fn took(&self) -> Duration {
        match *self.0.lock().unwrap() {
            (_, Some(took)) => took,
            (Some(opened), None) => opened.elapsed(),
            (None, None) => Duration::ZERO,
        }
    }
}

/// Runs `scenario` until it passes, or fails with its window's requests sent within a second.
/// The fake's rate-limit window is a second of real time: on a machine that stalled for that
/// long, those requests may fall into different windows, so such a failed run proves nothing
/// and runs again (at most five times). A run within the second is judged.
async fn in_one_window<F: Future<Output = ()> + Send + 'static>(scenario: fn(Window) -> F) {
    for _ in 0..5 {
        let window = Window::default();
        match tokio::spawn(scenario(window.clone())).await {
            Ok(()) => return,
            Err(_) if window.took() >= Duration::from_secs(1) => eprintln!(
                "the window's requests took {:?}, over the fake's one second: again",
                window.took()
            ),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    panic!("five runs each took over the fake's one-second window");
}

#[tokio::test]
async fn over_the_rate_limit_kommo_answers_429_with_an_html_page_and_no_retry_after() {
    in_one_window(over_the_rate_limit).await;
}

async fn over_the_rate_limit(window: Window) {
    let fake = Fake::start(Config::default().faults(Faults::none().rate_limit(1)));
    window.open();
    let first = fake
        .raw(Method::GET, "/api/v4/sources")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 204);
    let second = fake
        .raw(Method::GET, "/api/v4/sources")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
    assert!(second.headers().get("retry-after").is_none());
    assert_eq!(
        second.headers().get("content-type").unwrap(),
        "text/html",
        "the gateway's page, not JSON"
    );
    assert!(
        second
            .text()
            .await
            .unwrap()
            .contains("<h1>429 Too Many Requests</h1>")
    );

    let err = fake
        .kommo()
        .list_sources()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    window.close();
    assert!(err.is_rate_limited(), "{err:?}");
    let ApiError::RateLimited {
        attempts,
        retry_after,
        body,
        ..
    } = &err
    else {
        panic!("RateLimited: {err:?}");
    };
    assert_eq!((*attempts, *retry_after), (1, None));
    assert!(body.contains("nginx"));
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 2);
    assert_eq!(stats.by_status.get(&429), Some(&2));
}

#[tokio::test]
async fn the_rate_limit_is_per_integration_and_not_for_closebot() {
    let fake = Fake::start(
        Config::default()
            .other_integration("other-token")
            .faults(Faults::none().rate_limit(1)),
    );
    fake.kommo().list_sources().send().or_empty().await.unwrap();
    fake.kommo_with("other-token")
        .list_sources()
        .send()
        .or_empty()
        .await
        .expect("another integration has its own budget");
    for _ in 0..3 {
        fake.closebot()
            .list_sources()
            .send()
            .body()
            .await
            .expect("CloseBot documents no rate limit");
    }
    assert_eq!(fake.stats().rate_limited, 0);
}

#[tokio::test]
async fn repeated_429s_block_the_account_with_an_html_403_until_support_unblocks_it() {
    in_one_window(repeated_429s_block_the_account).await;
}

async fn repeated_429s_block_the_account(window: Window) {
    let fake = Fake::start(
        Config::default()
            .other_integration("other-token")
            .faults(Faults::none().rate_limit(1).block_after(2)),
    );
    let kommo = fake.kommo();
    window.open();
    kommo.list_sources().send().or_empty().await.unwrap();
    for _ in 0..2 {
        let err = kommo.list_sources().send().or_empty().await.unwrap_err();
        assert!(err.is_rate_limited());
    }
    window.close();
    assert!(fake.is_blocked());
    let err = kommo.list_widgets().send().or_empty().await.unwrap_err();
    assert!(err.is_account_blocked(), "{err:?}");
    assert_eq!(status(&err), 403);
    let (code, content_type, text) =
        answer(fake.raw(Method::GET, "/api/v4/leads/unsorted/summary")).await;
    assert_eq!(code, 403);
    assert_eq!(content_type.as_deref(), Some("text/html"));
    assert!(text.contains("<h1>403 Forbidden</h1>"));
    // Every integration of the account is blocked; CloseBot is another service.
    let err = fake
        .kommo_with("other-token")
        .list_sources()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    assert!(err.is_account_blocked());
    fake.closebot().list_sources().send().body().await.unwrap();

    fake.set_blocked(false);
    fake.kommo_with("other-token")
        .list_sources()
        .send()
        .or_empty()
        .await
        .expect("unblocked (and within this integration's budget)");
    let stats = fake.stats();
    assert_eq!((stats.rate_limited, stats.blocked), (2, 3));
}

#[tokio::test]
async fn a_blocked_account_answers_403_html_to_every_kommo_request() {
    let fake = Fake::start(Config::default().faults(Faults::none().blocked()));
    let kommo = fake.kommo();
    let err = kommo
        .add_sources()
        .body(add_one("x"))
        .send()
        .body()
        .await
        .unwrap_err();
    assert!(err.is_account_blocked());
    assert!(err.certainly_not_applied());
    let err = kommo
        .get_incoming_lead()
        .uid("x")
        .send()
        .body()
        .await
        .unwrap_err();
    assert!(err.is_account_blocked());
    fake.set_blocked(false);
    let list = kommo.list_sources().send().or_empty().await.unwrap();
    assert!(list.embedded.is_none(), "the blocked POST was not applied");
}

#[tokio::test]
async fn server_errors_are_500_problem_json_or_gateway_html_pages_and_change_nothing() {
    let fake = Fake::start(
        Config::default()
            .seed(3)
            .faults(Faults::none().server_errors(1.0)),
    );
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..12 {
        let response = fake
            .raw(Method::POST, "/api/v4/sources")
            .json(&json!([{"name": "a", "external_id": format!("e{i}")}]))
            .send()
            .await
            .unwrap();
        let code = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        match code {
            500 => assert_eq!(content_type, "application/problem+json"),
            502..=504 => assert_eq!(content_type, "text/html"),
            other => panic!("not a server error: {other}"),
        }
        seen.insert(code);
    }
    assert!(
        seen.len() >= 2,
        "the seed picks among 500, 502, 503, 504: {seen:?}"
    );
    let stats = fake.stats();
    assert_eq!(stats.server_errors, 12);
    assert!(
        stats.by_operation.is_empty(),
        "no request reached an operation"
    );

    // Through the client: a typed error with the status and page.
    let fake = Fake::default();
    fake.inject([Fault::ServerError(502)]);
    let err = fake
        .kommo()
        .add_sources()
        .body(add_one("x"))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 502);
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
    let list = fake.kommo().list_sources().send().or_empty().await.unwrap();
    assert!(list.embedded.is_none(), "the source was not added");
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error_and_the_request_is_not_applied() {
    let fake = Fake::default();
    fake.inject([Fault::Drop]);
    let kommo = fake.kommo();
    let err = kommo
        .add_sources()
        .body(add_one("x"))
        .send()
        .body()
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    let list = kommo.list_sources().send().or_empty().await.unwrap();
    assert!(list.embedded.is_none());
    let stats = fake.stats();
    assert_eq!(stats.dropped, 1);
    assert_eq!(stats.requests, 2);
    assert_eq!(
        stats.by_status.values().sum::<u64>(),
        1,
        "a drop is no answer"
    );

    let fake = Fake::start(Config::default().faults(Faults::none().drops(1.0)));
    for _ in 0..3 {
        let err = fake
            .kommo()
            .list_widgets()
            .send()
            .or_empty()
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    }
    assert_eq!(fake.stats().dropped, 3);
}

#[tokio::test]
async fn an_answer_lost_after_processing_leaves_the_effect_and_a_resend_is_refused() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    fake.inject([Fault::DropAfterProcessing]);
    let err = kommo
        .add_sources()
        .body(add_one("once"))
        .send()
        .body()
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    assert!(!err.certainly_not_applied());
    let list = kommo.list_sources().send().or_empty().await.unwrap();
    assert_eq!(list.total_items, Some(1), "the source was added");
    let err = kommo
        .add_sources()
        .body(add_one("once"))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400, "sending it again is refused: NotUnique");
}

#[tokio::test]
async fn slow_answers_arrive_after_the_delay_and_trip_a_shorter_client_timeout() {
    let delay = Duration::from_millis(300);
    let fake = Fake::start(Config::default().faults(Faults::none().slow(1.0, delay)));
    let started = Instant::now();
    fake.kommo().list_widgets().send().or_empty().await.unwrap();
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    assert_eq!(fake.stats().slowed, 1);

    let impatient = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(
            reqwest::Client::builder()
                .timeout(Duration::from_millis(50))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = impatient
        .list_widgets()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    let ApiError::Transport(e) = &err else {
        panic!("a transport error: {err:?}");
    };
    assert!(e.is_timeout(), "{e:?}");
    // On a loaded machine the client can give up before it has even sent the request, so the
    // fake may never see it: every request it did see was slowed (counted together, so no race).
    let stats = fake.stats();
    assert!((1..=2).contains(&stats.requests), "{stats:?}");
    assert_eq!(stats.slowed, stats.requests, "{stats:?}");
}

/// Sends the same 40 requests to a fresh fake and returns the faults it applied.
async fn fault_sequence(seed: u64) -> Vec<(u64, Fault)> {
    let fake = Fake::start(
        Config::default().seed(seed).faults(
            Faults::none()
                .server_errors(0.3)
                .drops(0.1)
                .slow(0.2, Duration::from_millis(1)),
        ),
    );
    for i in 0..40 {
        let path = if i % 2 == 0 {
            "/api/v4/widgets"
        } else {
            "/agency/source"
        };
        let _ = fake
            .raw(Method::GET, path)
            .header("x-cb-key", fake.closebot_key().expose())
            .send()
            .await;
    }
    let stats = fake.stats();
    assert_eq!(stats.requests, 40);
    stats.faults
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults_and_another_seed_others() {
    let first = fault_sequence(42).await;
    let again = fault_sequence(42).await;
    let other = fault_sequence(43).await;
    assert!(
        first.len() >= 10,
        "about half of 40 requests misbehave: {first:?}"
    );
    assert!(first.iter().any(|(_, f)| *f == Fault::Drop));
    assert!(
        first
            .iter()
            .any(|(_, f)| matches!(f, Fault::ServerError(_)))
    );
    assert!(first.iter().any(|(_, f)| matches!(f, Fault::Slow(_))));
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[tokio::test]
async fn injected_faults_hit_the_next_requests_in_order() {
    let fake = Fake::default();
    fake.inject([
        Fault::RateLimited,
        Fault::Blocked,
        Fault::ServerError(503),
        Fault::Slow(Duration::from_millis(10)),
    ]);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (code, _, _) = answer(fake.raw(Method::GET, "/api/v4/widgets")).await;
        statuses.push(code);
    }
    assert_eq!(statuses, [429, 403, 503, 200, 200]);
    assert_eq!(
        fake.stats().faults,
        [
            (1, Fault::RateLimited),
            (2, Fault::Blocked),
            (3, Fault::ServerError(503)),
            (4, Fault::Slow(Duration::from_millis(10))),
        ]
    );
    assert!(
        !fake.is_blocked(),
        "one injected 403 does not block the account"
    );
}

#[tokio::test]
async fn a_retrying_client_gets_through_429_and_5xx_but_never_resends_a_post_after_5xx() {
    let fake = Fake::default();
    let patient = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .no_rate_limit()
        .retry(
            RetryPolicy::default()
                .with_max_attempts(4)
                .with_base_delay(Duration::from_millis(1))
                .with_max_delay(Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    fake.inject([Fault::RateLimited, Fault::ServerError(503), Fault::Drop]);
    patient
        .list_widgets()
        .send()
        .or_empty()
        .await
        .expect("the fourth attempt gets through");
    assert_eq!(fake.stats().requests, 4);

    fake.inject([Fault::ServerError(503)]);
    let err = patient
        .add_sources()
        .body(add_one("x"))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 503);
    assert_eq!(
        fake.stats().requests,
        5,
        "a POST is not sent again after a 5xx"
    );

    fake.inject([Fault::Blocked]);
    let err = patient.list_widgets().send().or_empty().await.unwrap_err();
    assert!(err.is_account_blocked());
    assert_eq!(fake.stats().requests, 6, "a 403 is never retried");
}

/// Sends the same 200 Kommo requests to a fresh fake and returns the faults it applied.
async fn kommo_fault_sequence(seed: u64, faults: Faults) -> (Vec<(u64, Fault)>, Stats) {
    let fake = Fake::start(Config::default().seed(seed).faults(faults));
    for _ in 0..200 {
        let _ = fake.raw(Method::GET, "/api/v4/widgets").send().await;
    }
    let stats = fake.stats();
    assert_eq!(stats.requests, 200);
    (stats.faults.clone(), stats)
}

#[tokio::test]
async fn random_429s_lost_answers_and_late_5xx_are_seeded_counted_and_leave_older_faults_alone() {
    let old = Faults::none()
        .server_errors(0.1)
        .drops(0.1)
        .slow(0.1, Duration::from_millis(1));
    let new = old
        .clone()
        .rate_limited(0.1)
        .lost_answers(0.1)
        .late_server_errors(0.1);
    let (before, _) = kommo_fault_sequence(5, old).await;
    let (first, stats) = kommo_fault_sequence(5, new.clone()).await;
    let (again, _) = kommo_fault_sequence(5, new.clone()).await;
    let (other, _) = kommo_fault_sequence(6, new).await;
    assert_eq!(first, again, "the same seed, the same faults");
    assert_ne!(first, other);

    let count = |f: fn(&Fault) -> bool| first.iter().filter(|(_, x)| f(x)).count() as u64;
    assert_eq!(stats.rate_limited, count(|f| *f == Fault::RateLimited));
    assert_eq!(
        stats.lost_answers,
        count(|f| *f == Fault::DropAfterProcessing)
    );
    assert_eq!(stats.dropped, count(|f| *f == Fault::Drop));
    assert_eq!(
        stats.server_errors,
        count(|f| matches!(f, Fault::ServerError(_)))
    );
    assert_eq!(
        stats.late_server_errors,
        count(|f| matches!(f, Fault::ServerErrorAfterProcessing(500 | 502 | 504)))
    );
    for (name, n) in [
        ("429", stats.rate_limited),
        ("lost", stats.lost_answers),
        ("late 5xx", stats.late_server_errors),
    ] {
        assert!((8..=35).contains(&n), "about 10% of 200 are {name}: {n}");
    }
    assert_eq!(stats.by_status.get(&429), Some(&stats.rate_limited));
    assert!(!stats.faults.iter().any(|(_, f)| *f == Fault::Blocked));

    // The new kinds draw from a stream of their own: where they do not strike, a request meets
    // the fault it met before they existed (a lost answer or a late 5xx only takes a slow
    // answer's place).
    let before: std::collections::HashMap<u64, Fault> = before.into_iter().collect();
    let after: std::collections::HashMap<u64, Fault> = first.into_iter().collect();
    for n in 1..=200 {
        match (before.get(&n), after.get(&n)) {
            (old, Some(Fault::RateLimited)) => assert!(old != Some(&Fault::RateLimited)),
            (
                None | Some(Fault::Slow(_)),
                Some(Fault::DropAfterProcessing | Fault::ServerErrorAfterProcessing(_)),
            ) => {}
            (old, new) => assert_eq!(old, new, "request {n}"),
        }
    }
}

#[tokio::test]
async fn random_429s_spare_closebot_and_never_block_the_account() {
    let fake =
        Fake::start(Config::default().faults(Faults::none().rate_limited(1.0).block_after(1)));
    for _ in 0..3 {
        let err = fake
            .kommo()
            .list_widgets()
            .send()
            .or_empty()
            .await
            .unwrap_err();
        assert!(err.is_rate_limited(), "{err:?}");
    }
    fake.closebot().list_sources().send().body().await.unwrap();
    assert!(
        !fake.is_blocked(),
        "only the rate limit's window counts towards blocking"
    );
    assert_eq!(fake.stats().rate_limited, 3);
}

#[tokio::test]
async fn a_lost_answer_or_a_late_5xx_to_a_post_keeps_its_effect() {
    let fake = Fake::start(
        Config::default()
            .fixtures(lead_intake_fake::Fixtures::empty())
            .faults(Faults::none().lost_answers(1.0)),
    );
    let form: lead_intake::kommo::types::AddIncomingFormsRequest = body(json!([{
        "request_id": "r-1",
        "source_uid": "site",
        "source_name": "Site",
        "metadata": {"form_id": "f-1"},
        "_embedded": {}
    }]));
    let err = fake
        .kommo()
        .add_incoming_forms()
        .body(form)
        .send()
        .body()
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    assert!(!err.certainly_not_applied());
    let err = fake
        .kommo()
        .list_incoming_leads()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    let stored = fake.incoming_leads();
    assert_eq!(stored.len(), 1, "the POST was applied");
    assert_eq!(stored[0].request_id.as_deref(), Some("r-1"));
    assert_eq!(stored[0].lead["metadata"]["form_id"], "f-1");
    let stats = fake.stats();
    assert_eq!((stats.lost_answers, stats.dropped), (2, 0));
    assert!(stats.by_status.is_empty(), "a lost answer is no answer");
    assert!(
        stats.by_operation.is_empty(),
        "nor is it counted as the operation's"
    );

    // A 5xx after processing: the gateway's page, and the POST applied all the same.
    let fake = Fake::start(
        Config::default()
            .fixtures(lead_intake_fake::Fixtures::empty())
            .seed(1)
            .faults(Faults::none().late_server_errors(1.0)),
    );
    let mut statuses = std::collections::BTreeSet::new();
    for i in 0..12 {
        let form: lead_intake::kommo::types::AddIncomingFormsRequest = body(json!([{
            "source_uid": "site",
            "source_name": "Site",
            "metadata": {"form_id": format!("f-{i}")},
            "_embedded": {}
        }]));
        let err = fake
            .kommo()
            .add_incoming_forms()
            .body(form)
            .send()
            .body()
            .await
            .unwrap_err();
        assert!(!err.certainly_not_applied(), "{err:?}");
        statuses.insert(status(&err));
    }
    assert_eq!(fake.incoming_leads().len(), 12, "every POST was applied");
    assert!(
        statuses.len() >= 2 && statuses.is_subset(&[500, 502, 504].into()),
        "{statuses:?}"
    );
    let stats = fake.stats();
    assert_eq!((stats.late_server_errors, stats.server_errors), (12, 0));
    assert!(
        stats.by_operation.is_empty(),
        "the operation's answer was not sent"
    );
}
