//! Every answer of `openapi/corpus/` (realistic answers built from `openapi/EVIDENCE.md`, also
//! checked against the specs by `cargo xtask validate`) is served by a mock server and decoded by
//! the real client call of its operation, and every item comes out typed: no unrecognized list
//! item, no incoming lead whose metadata fell back to `IncomingLeadMetadata::Unrecognized`.
//!
//! Shown to fail on bad input: with `ChatsMetadata.client` back to a plain `$ref` (no PHP `[]`),
//! the `chats-empty` lead of `listIncomingLeads.every-category.json` comes out unrecognized and
//! `every_corpus_answer_decodes_fully_typed` fails; `a_lead_the_spec_refuses_is_reported` keeps
//! that check honest without editing the spec.

mod common;

use std::path::{Path, PathBuf};

use common::{closebot, example_as, kommo};
use lead_intake::kommo::types::{
    self as kt, IncomingLead, IncomingLeadCategory, IncomingLeadMetadata,
};
use lead_intake::list::Items;
use lead_intake::prelude::*;
use serde_json::Value;

struct Case {
    file: PathBuf,
    operation: String,
    status: u16,
    body: Value,
}

fn corpus(api: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("openapi/corpus")
        .join(api);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(
                v["rests_on"].as_array().is_some_and(|r| !r.is_empty()),
                "{}: no rests_on",
                file.display()
            );
            Case {
                operation: v["operation"].as_str().unwrap().to_string(),
                status: v["status"].as_u64().unwrap() as u16,
                body: v["body"].clone(),
                file,
            }
        })
        .collect()
}

/// What is not typed in a list: its unrecognized items.
fn list_problems<T>(what: &str, items: &Items<T>, out: &mut Vec<String>) {
    for odd in items.unrecognized() {
        out.push(format!("{what}: unrecognized item {odd}"));
    }
}

/// What is not typed in an incoming lead: metadata that fell back to `Unrecognized`, a known
/// category that came back as `Other`.
fn lead_problems(lead: &IncomingLead, out: &mut Vec<String>) {
    if let IncomingLeadCategory::Other(c) = &lead.category {
        out.push(format!("lead {}: unknown category {c}", lead.uid));
    }
    if let Some(IncomingLeadMetadata::Unrecognized(m)) = &lead.metadata {
        out.push(format!(
            "lead {}: metadata unrecognized: {}",
            lead.uid,
            m.reason()
        ));
    }
}

/// Serves `body` for any request and decodes it through the operation's client call; returns
/// what did not come out typed.
async fn decode_kommo(case: &Case) -> Result<Vec<String>, String> {
    let (server, client) = kommo().await;
    let body = serde_json::to_string(&case.body).unwrap();
    server
        .mock_async(|_, then| {
            then.status(case.status)
                .header("content-type", "application/hal+json")
                .body(body);
        })
        .await;
    let mut out = Vec::new();
    let e = |e: lead_intake::kommo::Error| e.to_string();
    match case.operation.as_str() {
        "listSources" => {
            let list = client.list_sources().send().body().await.map_err(e)?;
            list_problems(
                "sources",
                &list.embedded.unwrap_or_default().sources,
                &mut out,
            );
        }
        "addSources" => {
            let list = client
                .add_sources()
                .body(example_as::<kt::AddSourcesRequest>(
                    "addSources.request.json",
                ))
                .send()
                .body()
                .await
                .map_err(e)?;
            list_problems(
                "sources",
                &list.embedded.unwrap_or_default().sources,
                &mut out,
            );
        }
        "listWidgets" => {
            let list = client.list_widgets().send().body().await.map_err(e)?;
            list_problems(
                "widgets",
                &list.embedded.unwrap_or_default().widgets,
                &mut out,
            );
        }
        "getWidget" => {
            client
                .get_widget()
                .widget_code("amo_wa")
                .send()
                .body()
                .await
                .map_err(e)?;
        }
        "listIncomingLeads" => {
            let list = client
                .list_incoming_leads()
                .send()
                .body()
                .await
                .map_err(e)?;
            let leads = list.embedded.unwrap_or_default().unsorted;
            list_problems("incoming leads", &leads, &mut out);
            for lead in leads.iter() {
                lead_problems(lead, &mut out);
            }
        }
        "getIncomingLead" => {
            let lead = client
                .get_incoming_lead()
                .uid("x")
                .send()
                .body()
                .await
                .map_err(e)?;
            lead_problems(&lead, &mut out);
        }
        "getIncomingLeadsSummary" => {
            client
                .get_incoming_leads_summary()
                .send()
                .body()
                .await
                .map_err(e)?;
        }
        "addIncomingCalls" => {
            let list = client
                .add_incoming_calls()
                .body(example_as::<kt::AddIncomingCallsRequest>(
                    "addIncomingCalls.request.json",
                ))
                .send()
                .body()
                .await
                .map_err(e)?;
            list_problems(
                "created",
                &list.embedded.unwrap_or_default().unsorted,
                &mut out,
            );
        }
        "addIncomingForms" => {
            let list = client
                .add_incoming_forms()
                .body(example_as::<kt::AddIncomingFormsRequest>(
                    "addIncomingForms.request.json",
                ))
                .send()
                .body()
                .await
                .map_err(e)?;
            list_problems(
                "created",
                &list.embedded.unwrap_or_default().unsorted,
                &mut out,
            );
        }
        "acceptIncomingLead" => {
            client
                .accept_incoming_lead()
                .uid("x")
                .send()
                .body()
                .await
                .map_err(e)?;
        }
        "declineIncomingLead" => {
            client
                .decline_incoming_lead()
                .uid("x")
                .send()
                .body()
                .await
                .map_err(e)?;
        }
        "linkIncomingLead" => {
            client
                .link_incoming_lead()
                .uid("x")
                .body(example_as::<kt::LinkIncomingLeadRequest>(
                    "linkIncomingLead.request.json",
                ))
                .send()
                .body()
                .await
                .map_err(e)?;
        }
        other => panic!(
            "{}: no client call wired for `{other}` in tests/wire_corpus.rs",
            case.file.display()
        ),
    }
    Ok(out)
}

#[tokio::test]
async fn every_corpus_answer_decodes_fully_typed() {
    let mut failures = Vec::new();
    let kommo_cases = corpus("kommo");
    assert!(kommo_cases.len() >= 10, "the Kommo corpus is there");
    for case in &kommo_cases {
        match decode_kommo(case).await {
            Ok(problems) if problems.is_empty() => {}
            Ok(problems) => failures.push(format!("{}: {problems:?}", case.file.display())),
            Err(e) => failures.push(format!("{}: {e}", case.file.display())),
        }
    }
    for case in corpus("closebot") {
        assert_eq!(case.operation, "listSources", "{}", case.file.display());
        let (server, client) = closebot().await;
        let body = serde_json::to_string(&case.body).unwrap();
        server
            .mock_async(|_, then| {
                then.status(case.status)
                    .header("content-type", "application/json")
                    .body(body);
            })
            .await;
        match client.list_sources().send().body().await {
            Ok(page) => {
                let mut problems = Vec::new();
                list_problems("sources", &page.results, &mut problems);
                if !problems.is_empty() {
                    failures.push(format!("{}: {problems:?}", case.file.display()));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.file.display())),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The check above sees a bad item: a chats lead whose `client` is a list of one is refused by
/// the spec and must come out unrecognized (the test would not notice a regression otherwise).
#[tokio::test]
async fn a_lead_the_spec_refuses_is_reported() {
    let mut case = corpus("kommo")
        .into_iter()
        .find(|c| c.file.ends_with("listIncomingLeads.every-category.json"))
        .unwrap();
    let leads = case.body["_embedded"]["unsorted"].as_array_mut().unwrap();
    let chats = leads
        .iter_mut()
        .find(|l| l["uid"] == "chats-empty")
        .unwrap();
    chats["metadata"]["client"] = serde_json::json!([{"name": "Ann"}]);
    let sip = leads.iter_mut().find(|l| l["uid"] == "sip-num").unwrap();
    sip["pipeline_id"] = serde_json::json!("not a number");
    let problems = decode_kommo(&case).await.unwrap();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("unrecognized item"), "{problems:#?}");
    assert!(
        problems[1].contains("lead chats-empty: metadata unrecognized"),
        "{problems:#?}"
    );
}
