//! Contract test against an independent server: every operation of both clients, and the
//! hand-written calls (`body`, `or_empty`, `follow`), sent to Prism (`prism mock`) serving the
//! exported spec (`openapi/export/`). Prism validates each request against the spec; any 4xx,
//! or an `sl-violations` header, is a request the spec does not allow.
//!
//! The requests pass through a small recording proxy on loopback, so what is judged is exactly
//! what reached Prism, whichever call sent it. The test needs a running Prism: `cargo xtask
//! conformance` starts one per API and sets `LEAD_INTAKE_PRISM_KOMMO` and
//! `LEAD_INTAKE_PRISM_CLOSEBOT` to their base URLs. Without them the tests do nothing.

mod common;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lead_intake::kommo::types::{self, BotKind, IncomingLeadCategory, SortOrder, WidgetList};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use serde_json::Value;
use tokio::net::TcpListener;

const KOMMO_ENV: &str = "LEAD_INTAKE_PRISM_KOMMO";
const CLOSEBOT_ENV: &str = "LEAD_INTAKE_PRISM_CLOSEBOT";
const UID: &str = "5af9dedb6f2c6a29eaac6ee37fc75ffbb66e139e4603bdd0e14e39d4b319";

/// One request that went through the proxy, and Prism's verdict on it.
#[derive(Debug)]
struct Exchange {
    method: String,
    /// Path and query, exactly as the client sent them.
    target: String,
    status: u16,
    violations: Option<String>,
    /// Prism's answer, for the failure message (its 422s list the violations).
    body: String,
}

type Log = Arc<Mutex<Vec<Exchange>>>;

/// Starts the recording proxy in front of `upstream`; returns its base URL and its log.
async fn proxy(upstream: &str) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    let log: Log = Arc::default();
    lead_intake::http::install_crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let upstream = upstream.trim_end_matches('/').to_string();
    let recorder = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (http, upstream, log) = (http.clone(), upstream.clone(), recorder.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    forward(req, http.clone(), upstream.clone(), log.clone())
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, log)
}

async fn forward(
    req: hyper::Request<Incoming>,
    http: reqwest::Client,
    upstream: String,
    log: Log,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let mut headers = parts.headers.clone();
    headers.remove(hyper::header::HOST);
    let sent = http
        .request(parts.method.clone(), format!("{upstream}{target}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let (status, headers, bytes) = match sent {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            (status, headers, resp.bytes().await.unwrap_or_default())
        }
        Err(e) => (
            hyper::StatusCode::BAD_GATEWAY,
            hyper::HeaderMap::new(),
            Bytes::from(format!("proxy: Prism did not answer: {e}")),
        ),
    };
    log.lock().unwrap().push(Exchange {
        method: parts.method.to_string(),
        target,
        status: status.as_u16(),
        violations: headers
            .get("sl-violations")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    let mut out = hyper::Response::new(Full::new(bytes));
    *out.status_mut() = status;
    for (name, value) in &headers {
        let hop_by_hop = [
            hyper::header::CONNECTION,
            hyper::header::TRANSFER_ENCODING,
            hyper::header::CONTENT_LENGTH,
        ];
        if !hop_by_hop.contains(name) {
            out.headers_mut().append(name, value.clone());
        }
    }
    Ok(out)
}

/// Collects what went wrong instead of stopping at the first failure, so one run names all.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check<T, E: std::fmt::Display>(&mut self, call: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0
                    .push(format!("{call}: the client returned an error: {e}"));
                None
            }
        }
    }
}

/// Fails on every exchange Prism refused or flagged, and on every operation of `spec` that no
/// exchange reached.
fn judge(api: &str, spec: &str, log: &Log, mut failures: Failures) {
    let log = log.lock().unwrap();
    for x in log.iter() {
        if x.status >= 400 || x.violations.is_some() {
            let mut line = format!("{} {} -> {}", x.method, x.target, x.status);
            if let Some(v) = &x.violations {
                let _ = write!(line, "; sl-violations: {v}");
            }
            let _ = write!(
                line,
                "; body: {}",
                x.body.chars().take(600).collect::<String>()
            );
            failures.0.push(line);
        }
    }
    // Each exchange counts for the most specific template it fits (`/unsorted/summary` before
    // `/unsorted/{uid}`).
    let operations = operations(spec);
    let reached: Vec<&(String, String)> = log
        .iter()
        .filter_map(|x| {
            operations
                .iter()
                .filter(|(m, t)| m.eq_ignore_ascii_case(&x.method) && path_matches(t, &x.target))
                .min_by_key(|(_, t)| t.matches('{').count())
        })
        .collect();
    for op in &operations {
        let (method, template) = op;
        if !reached.contains(&op) {
            failures.0.push(format!(
                "{method} {template}: in {spec} but never called by this test"
            ));
        }
    }
    for x in log.iter() {
        println!("{api}: {} {} -> {}", x.method, x.target, x.status);
    }
    assert!(
        failures.0.is_empty(),
        "{api}: {} failure(s) against Prism:\n  {}",
        failures.0.len(),
        failures.0.join("\n  ")
    );
}

/// (method, path template) of every operation in an exported document.
fn operations(spec: &str) -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(spec);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("the export is JSON");
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                out.push((method.to_uppercase(), template.clone()));
            }
        }
    }
    out
}

/// Whether a request target's path fits a template (`{x}` matches one non-empty segment).
fn path_matches(template: &str, target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

fn prism_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {var} is not set (`cargo xtask conformance` runs this test)");
            None
        }
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[tokio::test]
async fn every_kommo_call_is_a_request_the_exported_spec_allows() {
    let Some(prism) = prism_url(KOMMO_ENV) else {
        return;
    };
    let (base, log) = proxy(&prism).await;
    let client = lead_intake::kommo::Client::builder()
        .base_url(&base)
        .token(common::TOKEN)
        .retry(RetryPolicy::none())
        .no_rate_limit()
        .build()
        .expect("a loopback base URL is accepted");
    let mut f = Failures::default();

    // Sources.
    let r = client
        .list_sources()
        .filter_external_id(strings(&["kchat01", "kchat02"]))
        .send()
        .or_empty()
        .await;
    f.check("listSources", r);
    let r = client
        .add_sources()
        .body(common::example_as::<types::AddSourcesRequest>(
            "addSources.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("addSources", r);
    let r = client
        .update_sources()
        .body(common::example_as::<types::UpdateSourcesRequest>(
            "updateSources.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("updateSources", r);
    let r = client
        .delete_sources()
        .body(common::example_as::<types::DeleteSourcesRequest>(
            "deleteSources.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("deleteSources", r);
    let r = client
        .update_source()
        .id(17619939)
        .body(common::example_as::<types::UpdateSource>(
            "updateSource.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("updateSource", r);
    let r = client.get_source().id(17619939).send().or_gone().await;
    f.check("getSource", r);
    let r = client.delete_source().id(17619939).send().body().await;
    f.check("deleteSource", r);

    // Widgets, and following a HAL link of the answer (its origin swapped for Prism's).
    let page = client
        .list_widgets()
        .page(1)
        .limit(250)
        .send()
        .or_empty()
        .await;
    let page = f.check("listWidgets", page);
    let next = page
        .and_then(|p| p.links)
        .and_then(|l| l.next)
        .and_then(|l| l.href);
    match next {
        Some(href) => {
            let path = href
                .find("/api/")
                .map_or(href.as_str(), |at| &href[at..])
                .to_string();
            let r = client.follow::<WidgetList>(&path).await;
            f.check("follow (relative _links.next)", r);
            let r = client.follow::<WidgetList>(&format!("{base}{path}")).await;
            f.check("follow (absolute, same origin)", r);
        }
        None => {
            f.0.push("listWidgets: the answer has no _links.next to follow".into())
        }
    }
    let r = client
        .get_widget()
        .widget_code("amo_asterisk")
        .send()
        .body()
        .await;
    f.check("getWidget", r);
    let r = client
        .install_widget()
        .widget_code("amo_asterisk")
        .body(common::example_as::<types::WidgetInstallSettings>(
            "installWidget.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("installWidget", r);
    let r = client
        .uninstall_widget()
        .widget_code("amo_asterisk")
        .send()
        .body()
        .await;
    f.check("uninstallWidget", r);
    for kind in [BotKind::Salesbot, BotKind::Marketingbot] {
        let r = client
            .continue_bot()
            .bot_kind(kind)
            .bot_id("4131")
            .continue_id("7a1c2e")
            .body(common::example_as::<types::ContinueBotRequest>(
                "continueBot.request.json",
            ))
            .send()
            .body()
            .await;
        f.check("continueBot", r);
    }
    // With `execute_handlers`, through the limit check.
    let r = client
        .continue_bot_checked(
            BotKind::Salesbot,
            "4131",
            "7a1c2e",
            common::example_as::<types::ContinueBotRequest>("continueBot.request.handlers.json"),
        )
        .await;
    f.check("continueBot", r);

    // Incoming leads.
    let r = client
        .list_incoming_leads()
        .page(1)
        .limit(250)
        .filter_uid(strings(&[UID, "9ca0978"]))
        .filter_category(vec![IncomingLeadCategory::Sip, IncomingLeadCategory::Forms])
        .filter_pipeline_id(6950551)
        .order_created_at(SortOrder::Desc)
        .send()
        .or_empty()
        .await;
    f.check("listIncomingLeads", r);
    let r = client.get_incoming_lead().uid(UID).send().body().await;
    f.check("getIncomingLead", r);
    let r = client
        .add_incoming_calls()
        .body(common::example_as::<types::AddIncomingCallsRequest>(
            "addIncomingCalls.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("addIncomingCalls", r);
    let r = client
        .add_incoming_forms()
        .body(common::example_as::<types::AddIncomingFormsRequest>(
            "addIncomingForms.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("addIncomingForms", r);
    let r = client
        .accept_incoming_lead()
        .uid(UID)
        .body(common::example_as::<types::AcceptIncomingLeadRequest>(
            "acceptIncomingLead.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("acceptIncomingLead", r);
    let r = client
        .decline_incoming_lead()
        .uid(UID)
        .body(common::example_as::<types::DeclineIncomingLeadRequest>(
            "declineIncomingLead.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("declineIncomingLead", r);
    let r = client
        .link_incoming_lead()
        .uid(UID)
        .body(common::example_as::<types::LinkIncomingLeadRequest>(
            "linkIncomingLead.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("linkIncomingLead", r);
    let r = client
        .get_incoming_leads_summary()
        .filter_uid(strings(&[UID]))
        .filter_created_at(1686000000)
        .filter_created_at_from(1686000000)
        .filter_created_at_to(1687000000)
        .filter_pipeline_id(6950551)
        .send()
        .body()
        .await;
    f.check("getIncomingLeadsSummary", r);
    let r = client.list_pipelines().send().body().await;
    f.check("listPipelines", r);
    let r = client.get_pipeline().id(6950551).send().body().await;
    f.check("getPipeline", r);
    let r = client
        .add_complex_leads()
        .body(common::example_as::<types::AddComplexLeadsRequest>(
            "addComplexLeads.request.json",
        ))
        .send()
        .body()
        .await;
    f.check("addComplexLeads", r);

    // The hand-written layer: pagers and batches send the same operations, with their own
    // parameters (page/limit set by the pager, chunked bodies). Prism's example pages link to
    // the vendor's host, which the pager refuses to follow, so only first pages are fetched.
    let r: Result<Vec<_>, _> = client
        .list_widgets_pager(|req| req)
        .page_size(50)
        .start_at(2)
        .max_pages(1)
        .pages()
        .try_collect()
        .await;
    f.check("list_widgets_pager", r);
    let r: Result<Vec<_>, _> = client
        .list_incoming_leads_pager(|req| {
            req.filter_category(vec![IncomingLeadCategory::Forms])
                .order_created_at(SortOrder::Asc)
        })
        .page_size(10)
        .max_pages(1)
        .typed_items()
        .try_collect()
        .await;
    f.check("list_incoming_leads_pager", r);
    let options = lead_intake::batch::BatchOptions::new().with_chunk_size(1);
    let batches = [
        (
            "add_complex_leads_batched",
            client
                .add_complex_leads_batched(
                    common::example_as::<types::AddComplexLeadsRequest>(
                        "addComplexLeads.request.json",
                    )
                    .0,
                    &options,
                )
                .await
                .error()
                .map(ToString::to_string),
        ),
        (
            "add_sources_batched",
            client
                .add_sources_batched(
                    common::example_as::<types::AddSourcesRequest>("addSources.request.json").0,
                    &options,
                )
                .await
                .error()
                .map(ToString::to_string),
        ),
        (
            "update_sources_batched",
            client
                .update_sources_batched(
                    common::example_as::<types::UpdateSourcesRequest>("updateSources.request.json")
                        .0,
                    &options,
                )
                .await
                .error()
                .map(ToString::to_string),
        ),
        (
            "delete_sources_batched",
            client
                .delete_sources_batched(
                    common::example_as::<types::DeleteSourcesRequest>("deleteSources.request.json")
                        .0,
                    &options,
                )
                .await
                .error()
                .map(ToString::to_string),
        ),
        (
            "add_incoming_calls_batched",
            client
                .add_incoming_calls_batched(
                    common::example_as::<types::AddIncomingCallsRequest>(
                        "addIncomingCalls.request.json",
                    )
                    .0,
                    &options,
                )
                .await
                .error()
                .map(ToString::to_string),
        ),
        (
            "add_incoming_forms_batched",
            client
                .add_incoming_forms_batched(
                    common::example_as::<types::AddIncomingFormsRequest>(
                        "addIncomingForms.request.json",
                    )
                    .0,
                    &options,
                )
                .await
                .error()
                .map(ToString::to_string),
        ),
    ];
    for (call, error) in batches {
        f.check(call, error.map_or(Ok(()), Err));
    }

    judge("kommo", "openapi/export/kommo.json", &log, f);
}

#[tokio::test]
async fn every_closebot_call_is_a_request_the_exported_spec_allows() {
    let Some(prism) = prism_url(CLOSEBOT_ENV) else {
        return;
    };
    let (base, log) = proxy(&prism).await;
    let client = lead_intake::closebot::Client::builder()
        .api_key(common::API_KEY)
        .base_url(&base)
        .retry(RetryPolicy::none())
        .build()
        .expect("a loopback base URL is accepted");
    let mut f = Failures::default();

    let r = client
        .list_sources()
        .page_size(100)
        .page(0)
        .query("Acme Co")
        .category("GHL")
        .order("+id")
        .force_token_refresh(false)
        .send()
        .body()
        .await;
    f.check("listSources (every parameter)", r);
    let r = client.list_sources().send().body().await;
    f.check("listSources (no parameter)", r);

    let r: Result<Vec<_>, _> = client
        .list_sources_pager(|req| req.query("Acme Co").order("+id"))
        .page_size(20)
        .max_pages(2)
        .typed_items()
        .try_collect()
        .await;
    f.check("list_sources_pager", r);

    judge("closebot", "openapi/export/closebot.json", &log, f);
}
