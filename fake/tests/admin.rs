//! The admin API under `/__admin/`, over HTTP as another language would use it: health, reset
//! (to the fixtures or empty), the request journal, the whole state (GET, PUT, round trip, bad
//! documents refused with the place named), faults (set, inject, clear), and what it is not
//! (no token needed, not in the journal or the stats, unknown calls and methods refused).

mod fake_common;

use fake_common::Fake;
use lead_intake::kommo::types::AddSource;
use lead_intake::prelude::*;
use lead_intake_fake::{Config, Fault, Faults};
use reqwest::Method;
use serde_json::{Value, json};

/// An admin call: status and JSON body (no credentials).
async fn admin(fake: &Fake, method: Method, call: &str, body: Option<Value>) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/__admin/{call}", fake.base_url()));
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("the admin API answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(content_type.as_deref(), Some("application/json"), "{call}");
    (status, response.json().await.expect("a JSON body"))
}

async fn get(fake: &Fake, call: &str) -> Value {
    let (status, body) = admin(fake, Method::GET, call, None).await;
    assert_eq!(status, 200, "{call}: {body}");
    body
}

fn sources_of(state: &Value) -> Vec<String> {
    state["kommo"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["external_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn health_names_both_apis_and_the_admin_base_and_needs_no_token() {
    let fake = Fake::default();
    let base = fake.base_url();
    let health = get(&fake, "health").await;
    assert_eq!(
        health,
        json!({
            "status": "ok",
            "base_url": base,
            "kommo": format!("{base}/api/v4/"),
            "closebot": format!("{base}/agency/"),
            "admin": format!("{base}/__admin/"),
            "requests": 0,
        })
    );
    // Admin calls are not requests of the APIs: not counted, not in the journal.
    assert_eq!(fake.stats().requests, 0);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn reset_goes_back_to_the_fixtures_or_to_nothing() {
    let fake = Fake::default();
    let kommo = fake.kommo();
    kommo
        .add_sources()
        .body(vec![AddSource::new("Chat", "chat-1")])
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(sources_of(&fake.state()), ["chat-1"]);
    fake.inject([Fault::RateLimited]);

    let (status, body) = admin(&fake, Method::POST, "reset", None).await;
    assert_eq!((status, &body["fixtures"]), (200, &json!("configured")));
    assert!(sources_of(&fake.state()).is_empty(), "the source is gone");
    assert_eq!(fake.incoming_leads().len(), 3, "the documented leads");
    assert_eq!(fake.stats().requests, 0, "stats start over");
    assert!(fake.requests().is_empty(), "so does the journal");
    let widgets = kommo.list_widgets().send().or_empty().await.unwrap();
    assert_eq!(widgets.widgets().len(), 3, "the injected 429 is gone too");

    let (status, body) = admin(&fake, Method::POST, "reset?empty=true", None).await;
    assert_eq!((status, &body["fixtures"]), (200, &json!("none")));
    assert!(fake.incoming_leads().is_empty());
    let state = fake.state();
    assert_eq!(state["kommo"]["widgets"], json!([]));
    assert_eq!(state["closebot"]["sources"], json!([]));

    let (status, _) = admin(&fake, Method::POST, "reset", Some(json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(fake.incoming_leads().len(), 3);
    let (status, _) = admin(&fake, Method::POST, "reset", Some(json!({"empty": true}))).await;
    assert_eq!(status, 200);
    assert!(fake.incoming_leads().is_empty(), "the body's option");

    let (status, body) = admin(&fake, Method::POST, "reset", Some(json!({"empty": "yes"}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "`empty` takes true or false, not \"yes\"");
}

#[tokio::test]
async fn the_journal_lists_every_request_in_order_with_its_status_and_sizes() {
    let fake = Fake::default();
    let body = r#"[{"name": "Chat", "external_id": "chat-1"}]"#;
    let (status, _, answer) =
        fake_common::answer(fake.raw(Method::POST, "/api/v4/sources").body(body)).await;
    assert_eq!(status, 200);
    let (status, _, _) =
        fake_common::answer(fake.raw(Method::GET, "/api/v4/widgets?limit=2&page=1")).await;
    assert_eq!(status, 200);
    get(&fake, "state").await; // not in the journal
    let unauthorized = reqwest::get(format!("{}/api/v4/sources", fake.base_url()))
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let refused_size = unauthorized.bytes().await.unwrap().len();
    fake.inject([Fault::Drop]);
    let dropped = fake.raw(Method::GET, "/api/v4/sources").send().await;
    assert!(dropped.is_err(), "closed without an answer");

    let journal = get(&fake, "requests").await;
    assert_eq!(journal["total"], 4);
    let requests = journal["requests"].as_array().unwrap();
    let seen: Vec<Value> = requests
        .iter()
        .map(|r| {
            json!([
                r["number"],
                r["method"],
                r["path"],
                r["query"],
                r["status"],
                r["request_bytes"],
                r["response_bytes"],
                r["operation"],
                r["fault"]
            ])
        })
        .collect();
    assert_eq!(
        seen,
        [
            json!([
                1,
                "POST",
                "/api/v4/sources",
                null,
                200,
                body.len(),
                answer.len(),
                "kommo.addSources",
                null
            ]),
            json!([
                2,
                "GET",
                "/api/v4/widgets",
                "limit=2&page=1",
                200,
                0,
                requests[1]["response_bytes"],
                "kommo.listWidgets",
                null
            ]),
            json!([
                3,
                "GET",
                "/api/v4/sources",
                null,
                401,
                0,
                refused_size,
                "kommo.listSources",
                null
            ]),
            json!([4, "GET", "/api/v4/sources", null, null, 0, 0, null, "drop"]),
        ]
    );
    assert!(requests[1]["response_bytes"].as_u64().unwrap() > 100);
    assert!(requests.iter().all(|r| r["elapsed_ms"].is_u64()));
    // The Rust view is the same journal.
    let rust: Vec<_> = fake.requests();
    assert_eq!(rust.len(), 4);
    assert_eq!(rust[3].fault, Some(Fault::Drop));
    assert_eq!(rust[1].query.as_deref(), Some("limit=2&page=1"));
    assert!(rust[0].to_string().starts_with("POST /api/v4/sources 200 "));
    assert!(
        rust[3].to_string().ends_with(" ms (fault: drop)"),
        "{}",
        rust[3]
    );
}

#[tokio::test]
async fn the_state_goes_out_and_back_in_unchanged_and_the_fake_goes_on_from_it() {
    let fake = Fake::start(Config::default().other_integration("second-token"));
    let kommo = fake.kommo();
    let sources = vec![
        AddSource::new("Chat", "chat-1"),
        AddSource::new("Form", "form-1").with_pipeline_id(5867030),
    ];
    kommo
        .add_sources()
        .body(sources)
        .send()
        .body()
        .await
        .unwrap();
    fake.kommo_with("second-token")
        .add_sources()
        .body(vec![AddSource::new("Theirs", "theirs-1")])
        .send()
        .body()
        .await
        .unwrap();
    let state = fake.state();
    let form_id = state["kommo"]["sources"][1]["id"].as_i64().unwrap();
    kommo.delete_source().id(form_id).send().await.unwrap();
    let lead = fake.incoming_leads()[0].uid.clone();
    kommo
        .accept_incoming_lead()
        .uid(&lead)
        .send()
        .body()
        .await
        .unwrap();
    fake_common::answer(
        fake.raw(Method::POST, "/api/v4/widgets/amo_dropbox")
            .body(r#"{"conf": "x"}"#),
    )
    .await;
    fake_common::answer(
        fake.raw(Method::POST, "/api/v4/salesbot/4131/continue/7a1c2e")
            .body(r#"{"data": {"status": "ok"}}"#),
    )
    .await;
    let form = r#"[{"request_id": "order-17", "source_uid": "site", "source_name": "Site",
        "metadata": {"form_id": "contact", "form_name": "Contact us"}, "_embedded": {}}]"#;
    let (status, _, created) = fake_common::answer(
        fake.raw(Method::POST, "/api/v4/leads/unsorted/forms")
            .body(form),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let refreshed = reqwest::Client::new()
        .get(format!(
            "{}/agency/source?page=0&pageSize=2&forceTokenRefresh=true",
            fake.base_url()
        ))
        .header("X-CB-KEY", fake.closebot_key().expose())
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);

    let saved = get(&fake, "state").await;
    assert_eq!(saved, fake.state(), "the Rust view is the same document");
    let kommo_state = &saved["kommo"];
    assert_eq!(sources_of(&saved), ["chat-1", "theirs-1"]);
    assert_eq!(kommo_state["sources"][1]["integration"], 1);
    assert_eq!(kommo_state["deleted_sources"][0]["external_id"], "form-1");
    assert_eq!(kommo_state["incoming_leads"][0]["state"], "accepted");
    assert!(kommo_state["incoming_leads"][0]["decided_at"].is_i64());
    assert_eq!(kommo_state["widgets"][0]["settings"], json!({"conf": "x"}));
    assert_eq!(kommo_state["waiting_bots"].as_array().unwrap().len(), 1);
    assert_eq!(
        kommo_state["continued_bots"][0]["data"],
        json!({"status": "ok"})
    );
    assert_eq!(saved["closebot"]["token_refreshes"], 1);
    let created = &kommo_state["incoming_leads"][3];
    assert_eq!(created["request_id"], "order-17");
    assert!(created["fingerprint"].is_string());

    // Out, empty, back in: the same state.
    admin(&fake, Method::POST, "reset?empty=true", None).await;
    assert_ne!(fake.state(), saved);
    let (status, answered) = admin(&fake, Method::PUT, "state", Some(saved.clone())).await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered, saved, "PUT answers the state it now holds");
    assert_eq!(get(&fake, "state").await, saved);

    // And the fake goes on from it: the deleted external_id gets its old id back, the accepted
    // lead is not listed, the installed widget is installed.
    let again = kommo
        .add_sources()
        .body(vec![AddSource::new("Form", "form-1")])
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(again.sources()[0].id, form_id);
    let waiting = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    assert_eq!(waiting.incoming_leads().len(), 3);
    assert!(waiting.incoming_leads().iter().all(|l| l.uid != lead));
    let (status, _, refused) = fake_common::answer(
        fake.raw(Method::POST, "/api/v4/leads/unsorted/forms")
            .body(form),
    )
    .await;
    assert_eq!(status, 400, "identical data is still waiting: {refused}");
    assert!(refused.contains("Duplicate"), "{refused}");
    let widget = kommo
        .get_widget()
        .widget_code("amo_dropbox")
        .send()
        .body()
        .await
        .unwrap();
    assert_eq!(widget.is_active_in_account, Some(true));
}

#[tokio::test]
async fn a_state_written_by_hand_loads_as_fixtures_from_any_language() {
    let fake = Fake::default();
    let lead = json!({
        "uid": "hand-written-lead",
        "category": "forms",
        "source_uid": "site",
        "source_name": "Site",
        "pipeline_id": 5867030,
        "created_at": 1700000000,
        "metadata": {"form_id": "contact", "form_name": "Contact us"}
    });
    let state = json!({
        "kommo": {
            "sources": [{"id": 101, "name": "Chat", "external_id": "chat-1"}],
            "incoming_leads": [{"lead": lead}],
        },
        "closebot": {"sources": [fake.state()["closebot"]["sources"][0].clone()]},
    });
    let (status, body) = admin(&fake, Method::PUT, "state", Some(state)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["kommo"]["sources"][0]["pipeline_id"], 6950551,
        "the main pipeline"
    );
    let kommo = fake.kommo();
    let leads = kommo.list_incoming_leads().send().or_empty().await.unwrap();
    assert_eq!(leads.incoming_leads().len(), 1);
    assert_eq!(leads.incoming_leads()[0].uid, "hand-written-lead");
    let widgets = kommo.list_widgets().send().or_empty().await.unwrap();
    assert!(widgets.widgets().is_empty(), "left out: none");
    let sources = kommo.list_sources().send().or_empty().await.unwrap();
    assert_eq!(sources.sources()[0].id, 101);
    // A new source never takes an id in use.
    let created = kommo
        .add_sources()
        .body(vec![AddSource::new("Form", "form-1")])
        .send()
        .body()
        .await
        .unwrap();
    assert!(created.sources()[0].id > 101);
}

#[tokio::test]
async fn a_bad_state_is_refused_with_the_place_named_and_changes_nothing() {
    let fake = Fake::default();
    let before = fake.state();
    let lead = |extra: Value| {
        let mut lead = json!({"uid": "u1", "category": "forms", "source_uid": "s",
                              "source_name": "S", "metadata": {"form_id": "f"}});
        lead.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        lead
    };
    let cases = [
        (json!([]), "the state must be an object, not a list"),
        (
            json!({"kommo": [], "x": 1}),
            "unknown key \"x\" (known: kommo, closebot)",
        ),
        (json!({"kommo": []}), "kommo: must be an object, not a list"),
        (
            json!({"kommo": {"sources": [{"name": "no id"}]}}),
            "kommo.sources[0]: needs an integer `id`",
        ),
        (
            json!({"kommo": {"pipelines": []}}),
            "kommo.pipelines: at least one pipeline is needed",
        ),
        (
            json!({"kommo": {"sources": [{"id": 1, "integration": 3, "name": "a", "external_id": "a"}]}}),
            "kommo.sources[0]: `integration` is 0 (the main token), not 3",
        ),
        (
            json!({"kommo": {"sources": [{"id": 1, "name": "a", "external_id": "a"},
                                         {"id": 1, "name": "b", "external_id": "b"}]}}),
            "kommo.sources[1]: the id 1 is already taken",
        ),
        (
            json!({"kommo": {"incoming_leads": [{"lead": lead(json!({})), "state": "lost"}]}}),
            "kommo.incoming_leads[0]: `state` is waiting, accepted, declined or linked, not \"lost\"",
        ),
        (
            json!({"kommo": {"incoming_leads": [lead(json!({}))]}}),
            "kommo.incoming_leads[0]: unknown key \"category\" (known: state, decided_at, request_id, fingerprint, lead; the lead itself goes under `lead`)",
        ),
        (
            json!({"kommo": {"incoming_leads": [{"lead": lead(json!({})) }, {"lead": lead(json!({}))}]}}),
            "kommo.incoming_leads[1]: incoming lead: the uid u1 is already taken",
        ),
        (
            json!({"kommo": {"widgets": [{"id": "742"}]}}),
            "kommo.widgets[0]: not a valid Widget",
        ),
        (
            json!({"closebot": {"sources": [{"sourceId": 5}]}}),
            "closebot.sources[0]: not a valid Source",
        ),
        (
            json!({"kommo": {"waiting_bots": [{"kind": "bot"}]}}),
            "kommo.waiting_bots[0]: `kind` is salesbot or marketingbot, not \"bot\"",
        ),
        (
            json!({"kommo": {"waiting_bots": [{"kind": "salesbot"}]}}),
            "kommo.waiting_bots[0]: needs a string `bot_id`",
        ),
    ];
    for (state, message) in cases {
        let (status, body) = admin(&fake, Method::PUT, "state", Some(state.clone())).await;
        assert_eq!(status, 400, "{state}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("invalid state: {message}")),
            "{state}\n  {error}\n  should start with: invalid state: {message}"
        );
    }
    // Not JSON at all.
    let response = reqwest::Client::new()
        .put(format!("{}/__admin/state", fake.base_url()))
        .body("{kommo")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the body is not JSON"),
        "{body}"
    );
    assert_eq!(fake.state(), before, "nothing changed");
}

#[tokio::test]
async fn faults_are_set_injected_and_cleared_with_the_flags_names() {
    let fake = Fake::default();
    let status_of = |path: &'static str| {
        let request = fake.raw(Method::GET, path);
        async move { fake_common::answer(request).await.0 }
    };

    let (status, faults) = admin(
        &fake,
        Method::POST,
        "faults",
        Some(json!({"error_rate": 1.0})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(faults["error_rate"], 1.0);
    assert!((500..=504).contains(&status_of("/api/v4/widgets").await));
    assert_eq!(fake.faults(), Faults::none().server_errors(1.0));

    let (_, faults) = admin(
        &fake,
        Method::POST,
        "faults",
        Some(json!({"blocked": true})),
    )
    .await;
    assert_eq!(
        (faults["blocked"].clone(), faults["error_rate"].clone()),
        (json!(true), Value::Null)
    );
    assert_eq!(status_of("/api/v4/widgets").await, 403);

    let inject = json!({"inject": ["server_error:503", "rate_limited", "slow:1"]});
    let (_, faults) = admin(&fake, Method::POST, "faults", Some(inject)).await;
    assert_eq!(
        faults["blocked"], false,
        "the body is the whole configuration"
    );
    assert_eq!(
        faults["injected"],
        json!(["server_error:503", "rate_limited", "slow:1"])
    );
    assert_eq!(get(&fake, "faults").await, faults);
    assert_eq!(status_of("/api/v4/widgets").await, 503);
    assert_eq!(status_of("/api/v4/widgets").await, 429);
    assert_eq!(status_of("/api/v4/widgets").await, 200);

    // A limit of 0 a second: every request is over it, whatever the clock says.
    let limited = json!({"rate_limit": 0, "block_after": 1});
    admin(&fake, Method::POST, "faults", Some(limited)).await;
    assert_eq!(status_of("/api/v4/widgets").await, 429, "over the limit");
    assert_eq!(
        status_of("/api/v4/widgets").await,
        403,
        "blocked after one 429"
    );

    let (_, faults) = admin(&fake, Method::POST, "faults", Some(json!({}))).await;
    assert_eq!(faults["rate_limit"], Value::Null);
    assert_eq!(faults["blocked"], false);
    assert_eq!(status_of("/api/v4/widgets").await, 200, "cleared");
    assert_eq!(fake.faults(), Faults::none());

    for (bad, message) in [
        (
            json!({"error_rate": 1.5}),
            "`error_rate` takes a share from 0.0 to 1.0, not 1.5",
        ),
        (json!({"drop-rate": 0.1}), "unknown fault \"drop-rate\""),
        (json!({"inject": ["boom"]}), "unknown fault \"boom\""),
        (
            json!({"rate_limit": "7"}),
            "`rate_limit` takes a whole number, not \"7\"",
        ),
    ] {
        let (status, body) = admin(&fake, Method::POST, "faults", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"].as_str().unwrap().starts_with(message),
            "{body}"
        );
    }
    assert_eq!(fake.faults(), Faults::none(), "a bad body changes nothing");
}

#[tokio::test]
async fn unknown_calls_and_methods_are_refused_and_api_paths_still_need_a_token() {
    let fake = Fake::default();
    let (status, body) = admin(&fake, Method::GET, "mappings", None).await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("/__admin/health"),
        "{body}"
    );
    let response = reqwest::Client::new()
        .delete(format!("{}/__admin/state", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, PUT");
    let (status, _) = admin(&fake, Method::GET, "reset", None).await;
    assert_eq!(status, 405, "a reset is a POST");
    // The admin API is no way around the APIs' credentials.
    let response = reqwest::get(format!("{}/api/v4/sources", fake.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(fake.stats().requests, 1, "only the API request counts");
}
