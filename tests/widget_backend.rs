//! End to end (issue 15 §5): the example back end (examples/widget_backend/app.rs, on axum)
//! against the fake playing Kommo's side. The fake sends Salesbot's `widget_request` (a token
//! signed with its client secret, a continue target on itself) and the back end verifies it and
//! continues the bot; the fake posts the incoming-lead webhooks of a run that adds, accepts and
//! declines leads, and the back end sees each event exactly once.
//!
//! Nothing sleeps: the test waits for what the back end reports, under a 60-second watchdog that
//! only a hang reaches.

#[path = "../examples/widget_backend/app.rs"]
mod app;

use std::collections::BTreeMap;
use std::time::Duration;

use app::Done;
use lead_intake::kommo::types;
use lead_intake::prelude::*;
use lead_intake::webhooks::{Decision, Event};
use lead_intake::widget::BotTokenVerifier;
use lead_intake_fake::{Config, FakeServer};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

const WATCHDOG: Duration = Duration::from_secs(60);

/// The back end on a free port, and the fake sending to it.
async fn start() -> (FakeServer, UnboundedReceiver<Done>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    let fake = FakeServer::start(
        Config::default()
            .subdomain("mycompany")
            .widget_url(format!("{backend}/widget"))
            .webhook_url(format!("{backend}/webhooks")),
    )
    .unwrap();
    let kommo =
        lead_intake::kommo::Client::from_base_url(&fake.base_url(), fake.kommo_token()).unwrap();
    let verifier = BotTokenVerifier::new(fake.oauth().client_secret().clone()).unwrap();
    let (router, done) = app::app(kommo, verifier);
    tokio::spawn(async move { axum::serve(listener, router).await });
    (fake, done, backend)
}

async fn next(done: &mut UnboundedReceiver<Done>) -> Done {
    tokio::time::timeout(WATCHDOG, done.recv())
        .await
        .expect("the back end reported nothing within the watchdog")
        .expect("the back end's worker ended")
}

#[tokio::test]
async fn the_back_end_verifies_the_fake_s_widget_request_and_continues_the_bot() {
    let (fake, mut done, backend) = start().await;
    let sent = fake
        .send_widget_request("salesbot", "4131", 1001, json!({"phone": "+1 415 555"}))
        .await
        .unwrap();
    assert_eq!(sent.status, Some(200), "answered at once: {sent:?}");

    let Done::Continued {
        bot_id,
        entity_id,
        result,
    } = next(&mut done).await
    else {
        panic!("not a continue")
    };
    assert_eq!((bot_id.as_str(), entity_id), ("4131", 1001));
    assert_eq!(result, Ok(()));
    let continued = fake.continued_bots();
    assert_eq!(continued.len(), 1, "{continued:?}");
    assert_eq!(continued[0].bot_id, "4131");
    assert_eq!(continued[0].continue_id, sent.continue_id);
    assert_eq!(
        continued[0].data,
        Some(json!({"checked_lead": 1001, "status": "done"}))
    );

    // A request signed with another secret is refused before anything happens.
    let forged = lead_intake::widget::sign_bot_token(
        &lead_intake::widget::BotTokenClaims::new(
            fake.base_url(),
            31361463,
            "mycompany",
            "fake-client-id",
            1001,
            lead_intake::widget::EntityType::Leads,
            lead_intake::widget::BotType::Salesbot,
            chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                + chrono::TimeDelta::minutes(5),
        ),
        &lead_intake::Secret::new("not-the-secret"),
    );
    let answer = reqwest::Client::new()
        .post(format!("{backend}/widget"))
        .json(&json!({"token": forged, "data": {}, "return_url": sent.return_url}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(fake.continued_bots().len(), 1, "nothing continued");

    // Issue 21 §3: another account's token (signed with the same integration secret, as Kommo
    // signs every account's) with a return_url on this account is refused, and the bot that
    // waits there is not continued.
    fake.add_waiting_bot("salesbot", "4131", "waiting-here");
    let requests_before = fake.requests().len();
    let other_account = lead_intake::widget::sign_bot_token(
        &lead_intake::widget::BotTokenClaims::new(
            "https://othercompany.kommo.com",
            555,
            "othercompany",
            "fake-client-id",
            1001,
            lead_intake::widget::EntityType::Leads,
            lead_intake::widget::BotType::Salesbot,
            chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                + chrono::TimeDelta::minutes(5),
        ),
        fake.oauth().client_secret(),
    );
    let answer = reqwest::Client::new()
        .post(format!("{backend}/widget"))
        .json(&json!({
            "token": other_account,
            "data": {},
            "return_url": format!("{}/api/v4/salesbot/4131/continue/waiting-here", fake.base_url()),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401, "another account's token");
    assert_eq!(fake.continued_bots().len(), 1, "nothing continued");
    assert_eq!(
        fake.requests().len(),
        requests_before,
        "nothing sent to the fake"
    );
}

#[tokio::test]
async fn the_back_end_sees_each_incoming_lead_event_of_a_run_exactly_once() {
    let (fake, mut done, _backend) = start().await;
    let kommo =
        lead_intake::kommo::Client::from_base_url(&fake.base_url(), fake.kommo_token()).unwrap();
    let forms: Vec<types::AddIncomingForm> = (0..3)
        .map(|i| {
            serde_json::from_value(json!({
                "source_uid": "site-forms",
                "source_name": "Site",
                "created_at": 1_700_000_000 + i,
                "metadata": {"form_id": format!("f-{i}"), "form_name": "Contact"},
                "_embedded": {"contacts": [{"name": format!("Visitor {i}")}]}
            }))
            .unwrap()
        })
        .collect();
    let created = kommo
        .add_incoming_forms()
        .body(forms)
        .send()
        .body()
        .await
        .unwrap();
    let uids: Vec<String> = created
        .embedded
        .unwrap()
        .unsorted
        .into_iter()
        .map(|lead| lead.uid)
        .collect();
    assert_eq!(uids.len(), 3);
    kommo
        .accept_incoming_lead()
        .uid(&uids[0])
        .send()
        .body()
        .await
        .unwrap();
    kommo
        .decline_incoming_lead()
        .uid(&uids[1])
        .send()
        .body()
        .await
        .unwrap();

    // Three added, one accepted, one declined: five events, from three webhooks.
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for _ in 0..5 {
        match next(&mut done).await {
            Done::Event(event) => match *event {
                Event::IncomingLeadAdded(added) => {
                    *seen.entry((added.uid, "add".into())).or_default() += 1
                }
                Event::IncomingLeadDeleted(deleted) => {
                    let word = match deleted.action {
                        Decision::Accept => "accept",
                        Decision::Decline => "decline",
                        _ => "other",
                    };
                    assert!(
                        deleted.result().is_some_and(|r| !r.leads.is_empty()),
                        "{deleted:?}"
                    );
                    *seen.entry((deleted.uid, word.into())).or_default() += 1
                }
                other => panic!("unexpected: {other:?}"),
            },
            other => panic!("unexpected: {other:?}"),
        }
    }
    let mut expected: BTreeMap<(String, String), usize> = uids
        .iter()
        .map(|uid| ((uid.clone(), "add".to_string()), 1))
        .collect();
    expected.insert((uids[0].clone(), "accept".into()), 1);
    expected.insert((uids[1].clone(), "decline".into()), 1);
    assert_eq!(seen, expected);

    // Exactly once: the fake sent three webhooks, each answered 200, and nothing more came.
    tokio::time::timeout(WATCHDOG, fake.webhooks_sent(3))
        .await
        .unwrap();
    let deliveries = fake.webhook_deliveries();
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|d| d.status == Some(200)),
        "{deliveries:?}"
    );
    assert!(done.try_recv().is_err(), "no event beyond the five");
}
