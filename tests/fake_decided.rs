//! Issue 24 §3: an incoming lead decided before (by another worker or a person) is a typed
//! meaning, not an anonymous 400: `Error::already_decided` and the idempotent
//! `accept_incoming_lead_idempotent` / `decline_incoming_lead_idempotent`, against the fake
//! and against scripted answers.

mod common;
// The fake crate's test helper (a server whose answers are checked against the spec).
#[path = "../fake/tests/fake_common/mod.rs"]
mod fake_common;

use common::script::{Reply, ScriptServer, http_without_timeouts};
use fake_common::Fake;
use lead_intake::kommo::types::{AcceptIncomingLeadRequest, DeclineIncomingLeadRequest};
use lead_intake::kommo::{Decided, PriorDecision};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use lead_intake_fake::{Config, Fixtures};
use serde_json::json;

fn fake_with_leads(n: usize) -> (Fake, Vec<String>) {
    let fake = Fake::start(Config::default().fixtures(Fixtures::empty()));
    let uids = (0..n)
        .map(|i| {
            fake.add_incoming_lead(json!({
                "category": "forms",
                "source_uid": "site",
                "source_name": "Site",
                "created_at": 1_700_000_000 + i as i64,
                "metadata": {"form_id": format!("f-{i}"), "form_name": "Contact"}
            }))
            .expect("a valid lead")
        })
        .collect();
    (fake, uids)
}

#[tokio::test]
async fn accepting_or_declining_a_lead_decided_before_says_who_decided_it() {
    let (fake, uids) = fake_with_leads(2);
    let kommo = fake.kommo();
    let accept = || AcceptIncomingLeadRequest::new();
    let decline = || DeclineIncomingLeadRequest::new();

    // The first worker accepts; the second finds it accepted before it.
    let first = kommo
        .accept_incoming_lead_idempotent(&uids[0], accept())
        .await
        .unwrap();
    assert!(matches!(&first, Decided::Accepted(answer) if answer.uid == uids[0]));
    assert!(first.is_accepted() && first.by_this_call().is_some());
    let second = kommo
        .accept_incoming_lead_idempotent(&uids[0], accept())
        .await
        .unwrap();
    assert_eq!(second, Decided::AlreadyAccepted);
    assert!(second.is_accepted() && second.by_this_call().is_none());
    // Declining it now says it was accepted.
    let late = kommo
        .decline_incoming_lead_idempotent(&uids[0], decline())
        .await
        .unwrap();
    assert_eq!(late, Decided::AlreadyAccepted);
    assert!(!late.is_declined());

    // Declined, then accepted by someone who had not heard.
    let declined = kommo
        .decline_incoming_lead_idempotent(&uids[1], decline())
        .await
        .unwrap();
    assert!(matches!(declined, Decided::Declined(_)) && declined.is_declined());
    assert_eq!(
        kommo
            .decline_incoming_lead_idempotent(&uids[1], decline())
            .await
            .unwrap(),
        Decided::AlreadyDeclined
    );
    let accepted_late = kommo
        .accept_incoming_lead_idempotent(&uids[1], accept())
        .await
        .unwrap();
    assert_eq!(accepted_late, Decided::AlreadyDeclined);
    assert_eq!(accepted_late.prior(), Some(PriorDecision::Declined));

    // The raw call's error carries the same meaning.
    let err = kommo
        .accept_incoming_lead()
        .uid(&uids[0])
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(err.already_decided(), Some(PriorDecision::Accepted));

    // A lead that does not exist stays an error (404), with no prior decision.
    let missing = kommo
        .accept_incoming_lead_idempotent("no-such-uid", accept())
        .await
        .unwrap_err();
    assert_eq!(missing.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(missing.already_decided(), None);
}

fn problem(status: u16, detail: &str) -> Reply {
    Reply::json(
        status,
        json!({"title": "Bad Request", "type": format!("https://httpstatus.es/{status}"),
               "status": status, "detail": detail}),
    )
    .header("content-type", "application/problem+json")
}

fn client(server: &ScriptServer) -> lead_intake::kommo::Client {
    lead_intake::kommo::Client::builder()
        .base_url(&server.base_url)
        .token("long-lived-token")
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn only_kommo_s_already_decided_answer_is_a_decision_other_400s_stay_errors() {
    let server = ScriptServer::sequence(vec![
        problem(400, "The incoming lead has already been declined"),
        problem(400, "The incoming lead has already been linked"),
        // Kommo's answer when the lead's contacts exist elsewhere (amocrm-api-php #477).
        problem(400, "Invalid data given"),
        Reply::json(
            400,
            json!({"validation-errors": [{"request_id": "0", "errors": [{"code": "NotSupportedChoice",
                "path": "status_id", "detail": "The value you selected is not a valid choice."}]}],
                "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400,
                "detail": "Request validation failed"}),
        )
        .header("content-type", "application/problem+json"),
        // The same words with another status are not Kommo's answer to a decided lead.
        problem(422, "The incoming lead has already been accepted"),
    ])
    .await;
    let kommo = client(&server);
    let accept = || AcceptIncomingLeadRequest::new();

    assert_eq!(
        kommo
            .accept_incoming_lead_idempotent("u1", accept())
            .await
            .unwrap(),
        Decided::AlreadyDeclined
    );
    assert_eq!(
        kommo
            .decline_incoming_lead_idempotent("u1", DeclineIncomingLeadRequest::new())
            .await
            .unwrap(),
        Decided::AlreadyLinked
    );
    for _ in 0..3 {
        let err = kommo
            .accept_incoming_lead_idempotent("u1", accept())
            .await
            .unwrap_err();
        assert_eq!(err.already_decided(), None, "{err}");
    }
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "POST /api/v4/leads/unsorted/u1/accept",
            "DELETE /api/v4/leads/unsorted/u1/decline",
            "POST /api/v4/leads/unsorted/u1/accept",
            "POST /api/v4/leads/unsorted/u1/accept",
            "POST /api/v4/leads/unsorted/u1/accept",
        ],
        "one request each, nothing read back"
    );
}
