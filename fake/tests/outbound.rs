//! What the fake sends, as Kommo does, to a back end: incoming-lead webhooks after the requests
//! that add, accept, decline and link incoming leads (one form-encoded POST per request, in
//! request order, read by `lead_intake::webhooks`), and Salesbot's `widget_request` (a token
//! signed with the client secret, and a `return_url` that continues the bot on the fake). The
//! back end is a server of the test's own; every wait is on an event under a watchdog.

mod back_end;
mod fake_common;

use back_end::{BackEnd, PATIENCE, Received};
use fake_common::{Fake, answer, body, status};
use lead_intake::Secret;
use lead_intake::kommo::types::{self, IncomingLeadCategory};
use lead_intake::prelude::*;
use lead_intake::webhooks::{self, Decision, Event, IncomingLeadDeleted, IncomingLeadEvent};
use lead_intake::widget::{
    BotTokenVerifier, BotType, EntityType, RequestError, TokenError, WidgetRequest,
};
use lead_intake_fake::{Config, FakeError, Fault, Fixtures, WidgetRequestSent};
use reqwest::Method;
use serde_json::{Value, json};

const FORM_UID: &str = "5af9dedb6f2c6a29eaac6ee37fc75ffbb66e139e4603bdd0e14e39d4b319";
const CHAT_UID: &str = "9ca097816a45770002e406db35e2a1945364d570b765332cef7a57289fc0";
const CALL_UID: &str = "400c5eb65b9fa7bbfa813cf593b49d4942f325c7c3fbbcf3acf3bee79b63";
const ACCOUNT: i64 = 29512438;
const SUBDOMAIN: &str = "mycompany";
const FORM: &str = "application/x-www-form-urlencoded";

fn call(phone: &str) -> Value {
    json!({
        "source_name": "Acme Co.",
        "source_uid": "a1fee7c0fc436088e64ba2e8822ba2b3",
        "pipeline_id": 6950551,
        "created_at": 1510261200,
        "metadata": {
            "uniq": format!("uniq-{phone}"),
            "duration": 54,
            "service_code": "CkAvbEwPam6sad",
            "link": "https://example.com",
            "phone": phone,
            "called_at": 1510261200,
            "from": "onlinePBX"
        },
        "_embedded": {
            "leads": [{"name": "Tech maintenance", "price": 5000}],
            "contacts": [{"name": "Example contact"}]
        }
    })
}

/// A fake of account [`ACCOUNT`] / [`SUBDOMAIN`] posting webhooks to `hooks` at `/hooks`.
fn fake_posting_to(hooks: &BackEnd, fixtures: Fixtures) -> Fake {
    Fake::start(
        Config::default()
            .fixtures(fixtures)
            .account_id(ACCOUNT)
            .subdomain(SUBDOMAIN)
            .webhook_url(hooks.url("/hooks")),
    )
}

/// Reads a received webhook as a back end would, after checking how it was sent, and checks
/// the account it names; gives its events (all of them recognized).
fn read_webhook(fake: &Fake, received: &Received) -> Vec<Event> {
    assert_eq!(received.method, "POST");
    assert_eq!(received.path, "/hooks");
    assert_eq!(received.content_type.as_deref(), Some(FORM));
    let hook = webhooks::parse(received.content_type.as_deref(), &received.body)
        .unwrap_or_else(|e| panic!("{e}: {}", received.text()));
    let account = hook.account().expect("account[...]");
    assert_eq!(account.id, ACCOUNT);
    assert_eq!(account.subdomain, SUBDOMAIN);
    assert_eq!(account.link(), Some(fake.base_url().as_str()));
    assert!(
        hook.all_recognized(),
        "unrecognized: {:?}",
        hook.unrecognized()
    );
    assert!(hook.conflicts().is_empty(), "{:?}", hook.conflicts());
    hook.into_parts().1
}

fn added(event: &Event) -> &IncomingLeadEvent {
    match event {
        Event::IncomingLeadAdded(added) => added,
        other => panic!("not unsorted[add]: {other:?}"),
    }
}

fn deleted(event: &Event) -> &IncomingLeadDeleted {
    match event {
        Event::IncomingLeadDeleted(deleted) => deleted,
        other => panic!("not unsorted[delete]: {other:?}"),
    }
}

/// The ids of a list of `_embedded` references.
macro_rules! ids {
    ($refs:expr) => {
        $refs.iter().filter_map(|r| r.id).collect::<Vec<i64>>()
    };
}

#[tokio::test]
async fn adding_accepting_declining_and_linking_each_post_one_webhook_in_request_order() {
    let mut hooks = BackEnd::start(200).await;
    let fake = fake_posting_to(&hooks, Fixtures::default());
    let kommo = fake.kommo();

    // Two calls in one request: one webhook with both, in the answer's order.
    let created = kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([
            call("14155551234"),
            call("14155550000")
        ])))
        .send()
        .body()
        .await
        .unwrap();
    let created = created.embedded.unwrap().unsorted;
    let events = read_webhook(&fake, &hooks.next().await);
    assert_eq!(events.len(), 2, "{events:?}");
    for (event, lead) in events.iter().zip(&created) {
        let event = added(event);
        let embedded = lead.embedded.as_ref().unwrap();
        assert_eq!(event.uid, lead.uid);
        assert_eq!(event.category, Some(IncomingLeadCategory::Sip));
        assert_eq!(
            event.source_uid.as_deref(),
            Some("a1fee7c0fc436088e64ba2e8822ba2b3")
        );
        assert_eq!(event.pipeline_id, Some(6950551));
        assert_eq!(event.created_at, Some(1510261200));
        assert_eq!(
            event.lead_id.into_iter().collect::<Vec<_>>(),
            ids!(embedded.leads)
        );
        assert_eq!(
            event.extra.get("account_id"),
            Some(&json!(ACCOUNT.to_string()))
        );
    }

    // Accepting the first: its leads and contacts.
    let accepted = kommo
        .accept_incoming_lead()
        .uid(&created[0].uid)
        .body(body::<types::AcceptIncomingLeadRequest>(
            json!({"user_id": 8375357, "status_id": 58141807}),
        ))
        .send()
        .body()
        .await
        .unwrap();
    let events = read_webhook(&fake, &hooks.next().await);
    let [event] = events.as_slice() else {
        panic!("one event: {events:?}")
    };
    let event = deleted(event);
    let embedded = accepted.embedded.unwrap();
    assert_eq!(event.uid, created[0].uid);
    assert_eq!(event.action, Decision::Accept);
    assert_eq!(event.category, Some(IncomingLeadCategory::Sip));
    let result = event.result().expect("accept_result");
    assert_eq!(result.leads, ids!(embedded.leads));
    assert!(!result.leads.is_empty());
    assert_eq!(result.contacts, ids!(embedded.contacts));
    assert!(!result.contacts.is_empty());
    assert!(event.decline_result.is_none());

    // Declining the second: the lead it closed.
    let declined = kommo
        .decline_incoming_lead()
        .uid(&created[1].uid)
        .body(body::<types::DeclineIncomingLeadRequest>(
            json!({"user_id": 8375357}),
        ))
        .send()
        .body()
        .await
        .unwrap();
    let events = read_webhook(&fake, &hooks.next().await);
    let [event] = events.as_slice() else {
        panic!("one event: {events:?}")
    };
    let event = deleted(event);
    assert_eq!(event.uid, created[1].uid);
    assert_eq!(event.action, Decision::Decline);
    let result = event.result().expect("decline_result");
    assert_eq!(result.leads, ids!(declined.embedded.unwrap().leads));
    assert!(!result.leads.is_empty());
    assert!(event.accept_result.is_none());

    // Linking the fixtures' chat to a lead.
    let linked = kommo
        .link_incoming_lead()
        .uid(CHAT_UID)
        .body(body::<types::LinkIncomingLeadRequest>(
            json!({"link": {"entity_id": 152464, "entity_type": "leads"}}),
        ))
        .send()
        .body()
        .await
        .unwrap();
    let events = read_webhook(&fake, &hooks.next().await);
    let [event] = events.as_slice() else {
        panic!("one event: {events:?}")
    };
    let event = deleted(event);
    assert_eq!(event.uid, linked.uid);
    assert_eq!(event.action, Decision::Other("link".into()));
    assert_eq!(event.category, Some(IncomingLeadCategory::Chats));
    assert_eq!(
        event.extra.get("link_result"),
        Some(&json!({"leads": ["152464"]}))
    );

    // The journal: four, each answered, with the bodies the back end received.
    tokio::time::timeout(PATIENCE, fake.webhooks_sent(4))
        .await
        .expect("four webhooks sent");
    let journal = fake.webhook_deliveries();
    assert_eq!(journal.len(), 4, "{journal:?}");
    for delivery in &journal {
        assert_eq!(delivery.url, hooks.url("/hooks"));
        assert_eq!(
            (delivery.status, delivery.error.as_deref()),
            (Some(200), None)
        );
    }
    assert!(
        journal[0]
            .body
            .contains("unsorted%5Badd%5D%5B1%5D%5Buid%5D")
    );
    assert!(hooks.try_next().is_none(), "one webhook per request");
}

#[tokio::test]
async fn a_request_that_fails_sends_no_webhook_and_adds_no_event_to_the_next() {
    let mut hooks = BackEnd::start(200).await;
    let fake = fake_posting_to(&hooks, Fixtures::default());
    let kommo = fake.kommo();

    // Refused by the handler (an unknown pipeline; identical data twice in one batch), by the
    // schema, and on the wire (not JSON).
    let mut unknown_pipeline = call("1");
    unknown_pipeline["pipeline_id"] = json!(1);
    let err = kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([
            unknown_pipeline
        ])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    let err = kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([
            call("2"),
            call("2")
        ])))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    let (code, _, _) = answer(
        fake.raw(Method::POST, "/api/v4/leads/unsorted/sip")
            .header("content-type", "application/json")
            .body("[{\"source_uid\": 5}]"),
    )
    .await;
    assert_eq!(code, 400);
    let (code, _, _) = answer(
        fake.raw(Method::POST, "/api/v4/leads/unsorted/sip")
            .header("content-type", "application/json")
            .body("[{"),
    )
    .await;
    assert_eq!(code, 400);
    // An unknown uid, and a chat-only link of a call.
    let err = kommo
        .accept_incoming_lead()
        .uid("nope")
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);
    let err = kommo
        .link_incoming_lead()
        .uid(CALL_UID)
        .body(body::<types::LinkIncomingLeadRequest>(
            json!({"link": {"entity_id": 1, "entity_type": "leads"}}),
        ))
        .send()
        .body()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);

    // The first webhook is the first request that succeeded, with its event only.
    kommo
        .accept_incoming_lead()
        .uid(FORM_UID)
        .send()
        .body()
        .await
        .unwrap();
    let events = read_webhook(&fake, &hooks.next().await);
    let [event] = events.as_slice() else {
        panic!("only the accept: {events:?}")
    };
    assert_eq!(
        (deleted(event).uid.as_str(), &deleted(event).action),
        (FORM_UID, &Decision::Accept)
    );

    // Deciding it again fails (already accepted): again nothing, as the next webhook shows.
    for accept in [true, false] {
        let request = if accept {
            kommo
                .accept_incoming_lead()
                .uid(FORM_UID)
                .send()
                .body()
                .await
        } else {
            kommo
                .decline_incoming_lead()
                .uid(FORM_UID)
                .send()
                .body()
                .await
        };
        assert_eq!(status(&request.unwrap_err()), 400);
    }
    kommo
        .decline_incoming_lead()
        .uid(CALL_UID)
        .send()
        .body()
        .await
        .unwrap();
    let events = read_webhook(&fake, &hooks.next().await);
    let [event] = events.as_slice() else {
        panic!("only the decline: {events:?}")
    };
    assert_eq!(
        (deleted(event).uid.as_str(), &deleted(event).action),
        (CALL_UID, &Decision::Decline)
    );
    tokio::time::timeout(PATIENCE, fake.webhooks_sent(2))
        .await
        .expect("two webhooks sent");
    assert_eq!(fake.webhook_deliveries().len(), 2);
}

#[tokio::test]
async fn without_a_webhook_url_nothing_is_sent() {
    let mut back_end = BackEnd::start(200).await;
    let fake = Fake::start(Config::default().widget_url(back_end.url("/widget")));
    let kommo = fake.kommo();
    kommo
        .add_incoming_calls()
        .body(body::<types::AddIncomingCallsRequest>(json!([call("3")])))
        .send()
        .body()
        .await
        .unwrap();
    kommo
        .accept_incoming_lead()
        .uid(FORM_UID)
        .send()
        .body()
        .await
        .unwrap();
    kommo
        .link_incoming_lead()
        .uid(CHAT_UID)
        .body(body::<types::LinkIncomingLeadRequest>(
            json!({"link": {"entity_id": 5, "entity_type": "leads"}}),
        ))
        .send()
        .body()
        .await
        .unwrap();
    // One queue sends everything in order: a webhook queued by the requests above would reach
    // the back end before this widget_request, and be journaled before it returns.
    let sent = fake
        .send_widget_request("salesbot", "1", 1, Value::Null)
        .await
        .unwrap();
    assert_eq!(sent.status, Some(200));
    assert_eq!(back_end.next().await.path, "/widget", "the first request");
    assert!(back_end.try_next().is_none());
    assert!(fake.webhook_deliveries().is_empty());
}

#[tokio::test]
async fn a_back_end_that_fails_or_is_down_is_journaled_and_the_fake_goes_on() {
    let failing = BackEnd::start(503).await;
    let down = BackEnd::closing().await;
    for (url, expect_status) in [
        (failing.url("/hooks"), Some(503)),
        (format!("http://{down}/hooks"), None),
    ] {
        let fake = Fake::start(
            Config::default()
                .webhook_url(url.clone())
                .widget_url(url.replace("/hooks", "/widget")),
        );
        fake.kommo()
            .accept_incoming_lead()
            .uid(FORM_UID)
            .send()
            .body()
            .await
            .unwrap();
        tokio::time::timeout(PATIENCE, fake.webhooks_sent(1))
            .await
            .expect("the webhook was tried");
        let [delivery] = fake.webhook_deliveries().try_into().unwrap();
        assert_eq!(delivery.url, url);
        assert_eq!(delivery.status, expect_status);
        assert_eq!(
            delivery.error.is_some(),
            expect_status.is_none(),
            "{delivery:?}"
        );

        let sent = tokio::time::timeout(
            PATIENCE,
            fake.send_widget_request("salesbot", "7", 1, json!({"x": 1})),
        )
        .await
        .expect("the call returns")
        .unwrap();
        assert_eq!(sent.status, expect_status);
        assert_eq!(sent.error.is_some(), expect_status.is_none(), "{sent:?}");
        assert_eq!(fake.widget_requests().len(), 1);
        // The fake still serves requests.
        fake.kommo()
            .decline_incoming_lead()
            .uid(CALL_UID)
            .send()
            .body()
            .await
            .unwrap();
    }
}

/// The wall clock (chrono is built without its `clock` feature).
fn now() -> chrono::DateTime<chrono::Utc> {
    std::time::SystemTime::now().into()
}

/// The token and the `return_url` of a `widget_request` the back end received.
fn widget_request(received: &Received) -> WidgetRequest {
    assert_eq!(received.method, "POST");
    WidgetRequest::from_http(received.content_type.as_deref(), &received.body)
        .unwrap_or_else(|e| panic!("{e}: {}", received.text()))
}

#[tokio::test]
async fn widget_request_is_signed_with_the_client_secret_and_continues_the_bot_on_the_fake() {
    let mut back_end = BackEnd::start(200).await;
    let fake = Fake::start(
        Config::default()
            .account_id(ACCOUNT)
            .subdomain(SUBDOMAIN)
            .widget_url(back_end.url("/widget")),
    );
    let before = now();
    let sent = fake
        .send_widget_request("salesbot", "4131", 1001, json!({"phone": "+1 415 555"}))
        .await
        .unwrap();
    let received = back_end.next().await;
    assert_eq!(received.path, "/widget");
    assert_eq!(received.content_type.as_deref(), Some("application/json"));
    let request = widget_request(&received);

    let verifier = BotTokenVerifier::new(fake.oauth().client_secret().clone()).unwrap();
    let verified = request
        .verify(&verifier)
        .expect("signed with the client secret, for the fake's own account");
    let claims = verified.claims().clone();
    assert_eq!(claims.iss, fake.base_url());
    assert_eq!(claims.account_id, ACCOUNT);
    assert_eq!(claims.subdomain, SUBDOMAIN);
    assert_eq!(claims.client_uuid, fake.oauth().client_id());
    assert_eq!(claims.bot_type, BotType::Salesbot);
    assert_eq!(claims.entity_id, 1001);
    assert_eq!(claims.entity_type, EntityType::Leads);
    assert!(claims.exp > before, "not expired: {}", claims.exp);
    assert!(
        claims.exp <= now() + chrono::TimeDelta::minutes(10),
        "expires in 10 minutes: {}",
        claims.exp
    );
    let wrong = BotTokenVerifier::new(Secret::new("not-the-client-secret".repeat(4))).unwrap();
    assert_eq!(
        request.verify(&wrong).unwrap_err(),
        RequestError::Token(TokenError::BadSignature)
    );

    assert_eq!(request.data, json!({"phone": "+1 415 555"}));
    assert_eq!(request.return_url, sent.return_url);
    assert_eq!(
        sent.return_url,
        format!(
            "{}/api/v4/salesbot/4131/continue/{}",
            fake.base_url(),
            sent.continue_id
        )
    );
    assert_eq!(
        (sent.kind.as_str(), sent.bot_id.as_str()),
        ("salesbot", "4131")
    );
    assert_eq!((sent.status, sent.error.as_deref()), (Some(200), None));
    assert_eq!(sent.data, request.data);
    assert_eq!(fake.widget_requests(), std::slice::from_ref(&sent));

    // The back end continues the bot on the fake, from the verified request alone.
    fake.kommo()
        .continue_widget_request(&verified)
        .data(serde_json::Map::from_iter([(
            "status".to_string(),
            json!("done"),
        )]))
        .send()
        .await
        .expect("the bot was waiting on the fake");
    let [continued] = fake.continued_bots().try_into().unwrap();
    assert_eq!(
        (
            continued.kind.as_str(),
            continued.bot_id.as_str(),
            continued.continue_id.as_str()
        ),
        ("salesbot", "4131", sent.continue_id.as_str())
    );
    assert_eq!(continued.data, Some(json!({"status": "done"})));
    // Once: the bot no longer waits on that continue ID.
    let again = fake.kommo().continue_widget_request(&verified).send().await;
    assert_eq!(status(&again.unwrap_err()), 404);

    // A Marketingbot, and a second request to the same bot gets a continue ID of its own.
    let marketing = fake
        .send_widget_request("marketingbot", "12", 7, Value::Null)
        .await
        .unwrap();
    let request = widget_request(&back_end.next().await)
        .verify(&verifier)
        .unwrap();
    let claims = request.claims().clone();
    assert_eq!(
        (claims.bot_type, claims.entity_id),
        (BotType::Marketingbot, 7)
    );
    assert!(
        marketing
            .return_url
            .contains("/api/v4/marketingbot/12/continue/")
    );
    let first = fake
        .send_widget_request("salesbot", "4131", 1, Value::Null)
        .await
        .unwrap();
    assert_ne!(first.continue_id, sent.continue_id);
    fake.kommo()
        .continue_widget_request(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(fake.continued_bots().len(), 2);
}

#[tokio::test]
async fn an_unknown_bot_kind_or_no_widget_url_is_a_typed_error_and_sends_nothing() {
    let mut back_end = BackEnd::start(200).await;
    let fake = Fake::start(Config::default().widget_url(back_end.url("/widget")));
    let err = fake
        .send_widget_request("chatbot", "1", 1, Value::Null)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FakeError::InvalidBotKind(kind) if kind == "chatbot"),
        "{err:?}"
    );
    assert!(err.to_string().contains("chatbot"), "{err}");
    for bad in ["", "4131/continue/x", "..", "a b"] {
        let err = fake
            .send_widget_request("salesbot", bad, 1, Value::Null)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FakeError::InvalidBotId(id) if id == bad),
            "{bad:?}: {err:?}"
        );
    }
    assert!(fake.widget_requests().is_empty());

    let unconfigured = Fake::default();
    let err = unconfigured
        .send_widget_request("salesbot", "1", 1, Value::Null)
        .await
        .unwrap_err();
    assert!(matches!(err, FakeError::NotConfigured(_)), "{err:?}");
    assert!(err.to_string().contains("widget_url"), "{err}");
    assert!(unconfigured.widget_requests().is_empty());

    // The next request sent is the first one the back end sees.
    fake.send_widget_request("salesbot", "2", 1, Value::Null)
        .await
        .unwrap();
    let request = widget_request(&back_end.next().await);
    assert_eq!(request.continue_target().unwrap().bot_id(), "2");
    assert!(back_end.try_next().is_none());
}

async fn admin(fake: &Fake, method: Method, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/__admin{path}", fake.base_url()));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let (status, content_type, text) = answer(request).await;
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

#[tokio::test]
async fn the_admin_api_sends_widget_requests_and_lists_them_and_the_webhooks() {
    let mut back_end = BackEnd::start(200).await;
    let fake = Fake::start(
        Config::default()
            .widget_url(back_end.url("/widget"))
            .webhook_url(back_end.url("/hooks")),
    );
    let (code, sent) = admin(
        &fake,
        Method::POST,
        "/widget_request",
        Some(r#"{"kind": "marketingbot", "bot_id": 4131, "entity_id": 7, "data": {"a": 1}}"#),
    )
    .await;
    assert_eq!(code, 200, "{sent}");
    let request = widget_request(&back_end.next().await);
    let verified = request
        .verify(&BotTokenVerifier::new(fake.oauth().client_secret().clone()).unwrap())
        .unwrap();
    let claims = verified.claims().clone();
    assert_eq!(
        (claims.bot_type, claims.entity_id),
        (BotType::Marketingbot, 7)
    );
    assert_eq!(sent["kind"], "marketingbot");
    assert_eq!(sent["bot_id"], "4131");
    assert_eq!(sent["data"], json!({"a": 1}));
    assert_eq!(sent["status"], 200);
    assert_eq!(sent["error"], Value::Null);
    assert_eq!(sent["return_url"], request.return_url.as_str());
    assert!(
        request.return_url.starts_with(&format!(
            "{}/api/v4/marketingbot/4131/continue/",
            fake.base_url()
        )),
        "{}",
        request.return_url
    );
    assert!(
        !sent.to_string().contains(request.token.expose()),
        "no token in the answer"
    );
    fake.kommo()
        .continue_widget_request(&verified)
        .send()
        .await
        .unwrap();
    assert_eq!(fake.continued_bots().len(), 1);

    // The defaults: a Salesbot, lead 1, no data.
    let (code, sent) = admin(
        &fake,
        Method::POST,
        "/widget_request",
        Some(r#"{"bot_id": "9"}"#),
    )
    .await;
    assert_eq!(code, 200, "{sent}");
    let verified = widget_request(&back_end.next().await)
        .verify(&BotTokenVerifier::new(fake.oauth().client_secret().clone()).unwrap())
        .unwrap();
    let claims = verified.claims().clone();
    assert_eq!((claims.bot_type, claims.entity_id), (BotType::Salesbot, 1));
    assert_eq!(sent["data"], Value::Null);

    // Bad bodies: 400 with a message naming what is wrong, and nothing sent.
    for (bad, says) in [
        ("not json", "JSON object"),
        ("[1]", "JSON object"),
        ("{}", "bot_id"),
        (r#"{"bot_id": true}"#, "bot_id"),
        (r#"{"bot_id": "1", "entity_id": "x"}"#, "entity_id"),
        (r#"{"bot_id": "1", "entity_id": 1.5}"#, "entity_id"),
        (r#"{"bot_id": "1", "kind": "chatbot"}"#, "chatbot"),
        (r#"{"bot_id": "1", "kind": 5}"#, "kind"),
        (r#"{"bot_id": "1/continue/2"}"#, "bot ID"),
    ] {
        let (code, error) = admin(&fake, Method::POST, "/widget_request", Some(bad)).await;
        assert_eq!(code, 400, "{bad}: {error}");
        let message = error["error"].as_str().unwrap_or_else(|| panic!("{error}"));
        assert!(message.contains(says), "{bad}: {message}");
    }
    let (code, listed) = admin(&fake, Method::GET, "/widget_requests", None).await;
    assert_eq!(code, 200);
    let expected: Vec<WidgetRequestSent> = fake.widget_requests();
    assert_eq!(expected.len(), 2);
    assert_eq!(listed, json!({ "widget_requests": expected }));

    // Webhooks: none yet, then the accept's.
    let (code, listed) = admin(&fake, Method::GET, "/webhooks", None).await;
    assert_eq!((code, listed), (200, json!({"webhooks": []})));
    fake.kommo()
        .accept_incoming_lead()
        .uid(FORM_UID)
        .send()
        .body()
        .await
        .unwrap();
    let received = back_end.next().await;
    assert_eq!(received.path, "/hooks");
    tokio::time::timeout(PATIENCE, fake.webhooks_sent(1))
        .await
        .expect("sent");
    let (code, listed) = admin(&fake, Method::GET, "/webhooks", None).await;
    assert_eq!(code, 200);
    assert_eq!(
        listed,
        json!({"webhooks": [{
            "url": back_end.url("/hooks"),
            "body": received.text(),
            "status": 200,
            "error": null,
            "redirect": null,
        }]})
    );
    // A reset starts the data over, not the record of what was sent.
    let (code, _) = admin(&fake, Method::POST, "/reset", None).await;
    assert_eq!(code, 200);
    assert_eq!(fake.webhook_deliveries().len(), 1);
    assert_eq!(fake.widget_requests().len(), 2);
    // Only the documented methods.
    let (code, _) = admin(&fake, Method::GET, "/widget_request", None).await;
    assert_eq!(code, 405);
    let (code, _) = admin(&fake, Method::POST, "/webhooks", Some("{}")).await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn the_admin_widget_request_without_a_widget_url_is_a_400_naming_the_setting() {
    let fake = Fake::default();
    let (code, error) = admin(
        &fake,
        Method::POST,
        "/widget_request",
        Some(r#"{"bot_id": 1}"#),
    )
    .await;
    assert_eq!(code, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("widget_url"),
        "{error}"
    );
    let (code, listed) = admin(&fake, Method::GET, "/widget_requests", None).await;
    assert_eq!((code, listed), (200, json!({"widget_requests": []})));
}

#[tokio::test]
async fn a_request_processed_but_answered_with_a_fault_still_sends_its_webhook_and_one_refused_sends_none()
 {
    let mut hooks = BackEnd::start(200).await;
    let fake = fake_posting_to(&hooks, Fixtures::default());
    let kommo = fake.kommo();
    // Not processed: no webhook.
    fake.inject([Fault::ServerError(503), Fault::RateLimited, Fault::Drop]);
    for _ in 0..3 {
        kommo
            .accept_incoming_lead()
            .uid(FORM_UID)
            .send()
            .body()
            .await
            .unwrap_err();
    }
    // Processed, the answer lost or replaced by a 5xx: the lead changed, so Kommo tells the back
    // end, and so does the fake. (Declining FORM_UID works only if no accept above went through.)
    fake.inject([
        Fault::DropAfterProcessing,
        Fault::ServerErrorAfterProcessing(502),
    ]);
    kommo
        .decline_incoming_lead()
        .uid(FORM_UID)
        .send()
        .body()
        .await
        .unwrap_err();
    kommo
        .accept_incoming_lead()
        .uid(CALL_UID)
        .send()
        .body()
        .await
        .unwrap_err();
    for (uid, action) in [(FORM_UID, Decision::Decline), (CALL_UID, Decision::Accept)] {
        let events = read_webhook(&fake, &hooks.next().await);
        let [event] = events.as_slice() else {
            panic!("one event: {events:?}")
        };
        assert_eq!(
            (deleted(event).uid.as_str(), &deleted(event).action),
            (uid, &action)
        );
    }
    tokio::time::timeout(PATIENCE, fake.webhooks_sent(2))
        .await
        .expect("two webhooks sent");
    assert_eq!(fake.webhook_deliveries().len(), 2);
}
