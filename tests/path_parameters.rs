//! Path parameters cannot leave their segment (issue 21 §1).
//!
//! Every operation of both clients that takes a path parameter is read from the generated API
//! surface (`openapi/surface/*.md`, which CI keeps in step with the code), so an operation added
//! to a spec fails here until it is in the table. Each text parameter gets every hostile value
//! below, against a real server on loopback under a base URL with a path prefix; the test checks
//! the exact request target the server received (one percent-encoded segment under the
//! documented path), or that nothing was sent and the error is `ApiError::InvalidPathParameter`
//! naming the operation, the parameter and why.
//!
//! Seen to fail with the fix disabled (build.rs's `one_segment_path_parameters` not called, so
//! the generated code uses progenitor's `encode_path` again): `..\x` reached
//! `/proxy/kommo/api/v4/leads/unsorted/x` instead of `.../unsorted/..%5Cx`; `..` and `%2e%2e`
//! were sent (to `/proxy/kommo/api/v4/leads/` and `.../unsorted/%252e%252e`) instead of refused.

mod common;

use std::collections::BTreeMap;

use common::script::{Reply, ScriptServer, http_without_timeouts};
use lead_intake::error::{ApiError, PathParameterProblem};
use lead_intake::kommo::{self, types};
use lead_intake::prelude::*;
use lead_intake::widget::ContinueTarget;
use serde_json::json;

/// The base URL's path: every request must stay under it.
const PREFIX: &str = "/proxy/kommo";

/// Each value, and the segment it must become, or why it is refused. The encodings are written
/// out by hand (RFC 3986: all but `A-Z a-z 0-9 - . _ ~` percent-encoded, UTF-8 bytes for
/// non-ASCII), not computed by the code under test.
fn table() -> Vec<(&'static str, Result<&'static str, PathParameterProblem>)> {
    use PathParameterProblem::*;
    vec![
        ("lead-7_x.y~Z", Ok("lead-7_x.y~Z")),
        (".", Err(DotSegment)),
        ("..", Err(DotSegment)),
        ("..\\x", Ok("..%5Cx")),
        ("..\\account", Ok("..%5Caccount")),
        ("..\\..\\..\\contacts\\7", Ok("..%5C..%5C..%5Ccontacts%5C7")),
        ("../", Ok("..%2F")),
        ("%2e%2e", Err(EncodedDotSegment)),
        (".%2E", Err(EncodedDotSegment)),
        ("%2e", Err(EncodedDotSegment)),
        ("%252e%252e", Err(EncodedDotSegment)),
        ("a/b", Ok("a%2Fb")),
        ("a\\b", Ok("a%5Cb")),
        ("?", Ok("%3F")),
        ("#", Ok("%23")),
        ("%", Ok("%25")),
        ("%41", Ok("%2541")),
        ("a b;c=d&e", Ok("a%20b%3Bc%3Dd%26e")),
        ("\r\n", Ok("%0D%0A")),
        ("", Err(Empty)),
        ("é", Ok("%C3%A9")),
        ("日本", Ok("%E6%97%A5%E6%9C%AC")),
        ("...", Ok("...")),
    ]
}

/// An operation with path parameters, as the surface file lists it.
#[derive(Debug, Clone)]
struct Operation {
    name: String,
    method: String,
    /// E.g. `/api/v4/leads/unsorted/{uid}/accept`.
    path: String,
    /// Parameter name and its Rust type (`String`, `i64`, `BotKind`).
    params: BTreeMap<String, String>,
}

/// The operations of a surface file whose path has a parameter.
fn operations_with_path_parameters(api: &str) -> Vec<Operation> {
    let file = format!("{}/openapi/surface/{api}.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap();
    let mut out: Vec<Operation> = Vec::new();
    let mut current: Option<Operation> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            out.extend(current.take());
            // ### `accept_incoming_lead`: `POST /api/v4/leads/unsorted/{uid}/accept`
            let parts: Vec<&str> = heading.split('`').collect();
            if let [_, name, ": ", route, ""] = parts[..]
                && let Some((method, path)) = route.split_once(' ')
                && path.contains('{')
            {
                current = Some(Operation {
                    name: name.to_string(),
                    method: method.to_string(),
                    path: path.to_string(),
                    params: BTreeMap::new(),
                });
            }
        } else if let Some(op) = current.as_mut()
            && let Some(item) = line.strip_prefix("- `")
            && let Some((name, rest)) = item.split_once("`: `")
            && let Some((ty, _)) = rest.split_once('`')
            && op.path.contains(&format!("{{{name}}}"))
        {
            op.params.insert(name.to_string(), ty.to_string());
        }
    }
    out.extend(current);
    for op in &out {
        let named = op.path.matches('{').count();
        assert_eq!(
            named,
            op.params.len(),
            "{}: every path parameter of {} has its line in {file}",
            op.name,
            op.path
        );
    }
    out
}

/// A normal value of a path parameter of this type, and its segment.
fn normal(ty: &str) -> &'static str {
    match ty {
        "String" => "normal-1",
        "i64" => "7",
        "BotKind" => "salesbot",
        other => panic!(
            "a path parameter of type `{other}`: decide which values it can carry and add it to this test"
        ),
    }
}

/// Sends the operation with these path values. `Some` for every operation this test knows.
async fn send(
    client: &kommo::Client,
    operation: &str,
    values: &BTreeMap<String, String>,
) -> Result<(), kommo::Error> {
    let text = |name: &str| values[name].clone();
    let id = || values["id"].parse::<i64>().unwrap();
    let kind = || values["bot_kind"].parse::<types::BotKind>().unwrap();
    match operation {
        "get_incoming_lead" => client
            .get_incoming_lead()
            .uid(text("uid"))
            .send()
            .body()
            .await
            .map(drop),
        "accept_incoming_lead" => client
            .accept_incoming_lead()
            .uid(text("uid"))
            .send()
            .body()
            .await
            .map(drop),
        "decline_incoming_lead" => client
            .decline_incoming_lead()
            .uid(text("uid"))
            .send()
            .body()
            .await
            .map(drop),
        "link_incoming_lead" => client
            .link_incoming_lead()
            .uid(text("uid"))
            .body(common::example_as::<types::LinkIncomingLeadRequest>(
                "linkIncomingLead.request.json",
            ))
            .send()
            .body()
            .await
            .map(drop),
        "get_source" => client.get_source().id(id()).send().body().await.map(drop),
        "get_pipeline" => client.get_pipeline().id(id()).send().body().await.map(drop),
        "delete_source" => client.delete_source().id(id()).send().body().await,
        "update_source" => client
            .update_source()
            .id(id())
            .send()
            .body()
            .await
            .map(drop),
        "get_widget" => client
            .get_widget()
            .widget_code(text("widget_code"))
            .send()
            .body()
            .await
            .map(drop),
        "install_widget" => client
            .install_widget()
            .widget_code(text("widget_code"))
            .body(common::example_as::<types::WidgetInstallSettings>(
                "installWidget.request.json",
            ))
            .send()
            .body()
            .await
            .map(drop),
        "uninstall_widget" => {
            client
                .uninstall_widget()
                .widget_code(text("widget_code"))
                .send()
                .body()
                .await
        }
        "continue_bot" => {
            client
                .continue_bot()
                .bot_kind(kind())
                .bot_id(text("bot_id"))
                .continue_id(text("continue_id"))
                .send()
                .body()
                .await
        }
        // The hand-written entry point that builds the same path.
        "continue_bot_checked" => {
            client
                .continue_bot_checked(
                    kind(),
                    &text("bot_id"),
                    &text("continue_id"),
                    types::ContinueBotRequest::new(),
                )
                .await
        }
        other => panic!(
            "`{other}` takes path parameters and is not in tests/path_parameters.rs's `send`: add it"
        ),
    }
}

/// Every server answer is a problem 404: an error that is not `InvalidPathParameter` means the
/// request was sent.
async fn server() -> (ScriptServer, kommo::Client) {
    let server = ScriptServer::start(|_, _| {
        Reply::json(404, json!({"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404, "detail": "no such entity"}))
    })
    .await;
    let client = kommo::Client::builder()
        .base_url(&format!("{}{PREFIX}", server.base_url))
        .token(common::TOKEN)
        .no_rate_limit()
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    (server, client)
}

fn the_operations() -> Vec<Operation> {
    let mut ops = operations_with_path_parameters("kommo");
    // CloseBot has none today; one added to its spec fails `send`'s catch-all until it is
    // handled here (with a CloseBot client).
    let closebot = operations_with_path_parameters("closebot");
    assert!(
        closebot.is_empty(),
        "CloseBot operations with path parameters: {closebot:?}: add them to this test"
    );
    let continue_bot = ops
        .iter()
        .find(|op| op.name == "continue_bot")
        .expect("continue_bot is in the surface")
        .clone();
    ops.push(Operation {
        name: "continue_bot_checked".into(),
        ..continue_bot
    });
    ops
}

#[tokio::test]
async fn every_path_parameter_lands_as_one_segment_or_is_refused_unsent() {
    let (server, client) = server().await;
    let operations = the_operations();
    assert!(
        operations.len() >= 12,
        "the surface lists the operations: {operations:?}"
    );
    let mut failures = Vec::new();
    let mut tried = 0;
    for op in &operations {
        let normals: BTreeMap<String, String> = op
            .params
            .iter()
            .map(|(name, ty)| (name.clone(), normal(ty).to_string()))
            .collect();
        // Typed parameters (`i64`, `BotKind`) carry no text: their normal value is tried.
        let mut cases: Vec<(String, &str, Result<&str, PathParameterProblem>)> = Vec::new();
        for (name, ty) in &op.params {
            if ty == "String" {
                for (value, expected) in table() {
                    cases.push((name.clone(), value, expected));
                }
            } else {
                let value = normal(ty);
                cases.push((name.clone(), value, Ok(value)));
            }
        }
        for (param, value, expected) in cases {
            tried += 1;
            let mut values = normals.clone();
            values.insert(param.clone(), value.to_string());
            let before = server.requests().len();
            let result = send(&client, &op.name, &values).await;
            let sent: Vec<_> = server.requests()[before..].to_vec();
            let case = format!("{} {param}={value:?}", op.name);
            match expected {
                Ok(segment) => {
                    let mut path = format!("{PREFIX}{}", op.path);
                    for (name, normal) in &normals {
                        let v = if *name == param { segment } else { normal };
                        path = path.replace(&format!("{{{name}}}"), v);
                    }
                    let targets: Vec<_> = sent
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.target))
                        .collect();
                    if targets != [format!("{} {path}", op.method)] {
                        failures.push(format!(
                            "{case}: expected `{} {path}`, the server received {targets:?}",
                            op.method
                        ));
                    }
                    if let Err(ApiError::InvalidPathParameter(e)) = &result {
                        failures.push(format!("{case}: refused: {e}"));
                    }
                }
                Err(problem) => {
                    if !sent.is_empty() {
                        failures.push(format!(
                            "{case}: expected it refused unsent, the server received {:?}",
                            sent.iter().map(|r| &r.target).collect::<Vec<_>>()
                        ));
                    }
                    match &result {
                        Err(ApiError::InvalidPathParameter(e))
                            if e.operation() == op.name.trim_end_matches("_checked")
                                && e.parameter() == param
                                && e.problem() == problem
                                && e.value() == value
                                && e.to_string().contains(&format!("`{}()`", e.operation()))
                                && e.to_string().contains(&format!("`{param}`")) =>
                        {
                            assert!(result.as_ref().unwrap_err().certainly_not_applied());
                        }
                        other => failures.push(format!(
                            "{case}: expected InvalidPathParameter({problem:?}), got {other:?}"
                        )),
                    }
                }
            }
        }
    }
    assert!(tried > 200, "{tried} cases");
    assert!(
        failures.is_empty(),
        "{} of {tried} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A raw generated call (no `ResponseExt`) is refused too, with progenitor's `InvalidRequest`
/// carrying the same sentence.
#[tokio::test]
async fn a_raw_generated_call_is_refused_with_the_same_sentence() {
    let (server, client) = server().await;
    let error = client
        .get_widget()
        .widget_code("..")
        .send()
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("`get_widget()`")
            && text.contains("`widget_code`")
            && text.contains("dot segment"),
        "{text}"
    );
    assert_eq!(error.status(), None);
    assert!(server.requests().is_empty());
}

/// `ContinueTarget::new` builds a continue path from its parts: a part that is not one plain
/// segment is refused, never resolved into another bot's path.
#[test]
fn a_continue_target_is_built_only_from_plain_segments() {
    use types::BotKind::Salesbot;
    let base = "https://mycompany.kommo.com/proxy/x";
    let ok = ContinueTarget::new(base, Salesbot, "12", "ab-3").unwrap();
    assert_eq!(ok.url().path(), "/proxy/x/api/v4/salesbot/12/continue/ab-3");
    for (bot_id, continue_id) in [
        ("../../api/v4/salesbot/5", "c"),
        ("5/continue/c/../..", "c"),
        ("5", "c/../../../6/continue/d"),
        ("5", "..\\..\\6"),
        ("..", "c"),
        ("", "c"),
        ("5", "%2e%2e"),
        ("5?x=1", "c"),
    ] {
        let result = ContinueTarget::new(base, Salesbot, bot_id, continue_id);
        assert!(
            result.is_err(),
            "{bot_id:?} {continue_id:?} made {:?}",
            result.map(|t| t.url().to_string())
        );
    }
}
