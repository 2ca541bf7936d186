//! The back end of `examples/widget_backend`: the two URLs Kommo calls, on axum.
//!
//! - `POST /widget`: Salesbot's `widget_request`. The request is verified before anything else is
//!   read into action: the token's signature and times, and its `return_url` on the account the
//!   token was signed for (a forged request, or one account's token with another's
//!   `return_url`, is answered 401 and does nothing); the answer is immediate, and the work (here:
//!   continuing the bot with `data` and a `show` handler, with the client of that account)
//!   happens after, on a worker task, as Kommo expects a quick answer.
//! - `POST /webhooks`: incoming-lead webhooks (`application/x-www-form-urlencoded` PHP arrays),
//!   typed by `lead_intake::webhooks`, answered at once and handled after.
//!
//! Everything lead-intake does here takes bytes and header values: the same calls fit any other
//! server framework.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use axum::routing::post;
use lead_intake::kommo::{self, types::BotHandler};
use lead_intake::webhooks::{self, Event};
use lead_intake::widget::{BotTokenVerifier, RequestError, VerifiedWidgetRequest, WidgetRequest};
use tokio::sync::mpsc;

/// What the back end did after answering: the example prints it, the end-to-end test checks it.
#[derive(Debug)]
#[allow(dead_code)] // Not every field is read by both the example and the test.
pub enum Done {
    /// A bot was continued (or the continue call failed).
    Continued {
        /// The bot's ID, from the request's `return_url`.
        bot_id: String,
        /// The lead the bot runs on, from the verified token.
        entity_id: i64,
        /// The continue call's outcome.
        result: Result<(), String>,
    },
    /// One incoming-lead event (or any other) from a webhook.
    Event(Box<Event>),
    /// An event of a webhook that could not be read, described without its values.
    Unrecognized(String),
}

enum Work {
    Continue(Box<VerifiedWidgetRequest>),
    Webhook(webhooks::Webhook),
}

struct Backend {
    verifier: BotTokenVerifier,
    work: mpsc::UnboundedSender<Work>,
}

/// The router, and what its worker does: `kommo` continues the bots (the client of the one
/// account this back end serves: a request verified for another account is refused by it, and
/// nothing is sent), `verifier` checks the tokens with the integration's secret. A back end for
/// several accounts picks the client by the verified claims (`subdomain`, `account_id`), never
/// by the `return_url`.
pub fn app(
    kommo: kommo::Client,
    verifier: BotTokenVerifier,
) -> (Router, mpsc::UnboundedReceiver<Done>) {
    let (work, mut jobs) = mpsc::unbounded_channel::<Work>();
    let (done, done_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            match job {
                Work::Continue(request) => {
                    let result = continue_bot(&kommo, &request).await;
                    let _ = done.send(Done::Continued {
                        bot_id: request.target().bot_id().to_string(),
                        entity_id: request.claims().entity_id,
                        result,
                    });
                }
                Work::Webhook(hook) => {
                    let (_account, events, odd) = hook.into_parts();
                    for event in events {
                        let _ = done.send(Done::Event(Box::new(event)));
                    }
                    for event in odd {
                        let _ = done.send(Done::Unrecognized(event.to_string()));
                    }
                }
            }
        }
    });
    let backend = Arc::new(Backend { verifier, work });
    let router = Router::new()
        .route("/widget", post(widget_request))
        .route("/webhooks", post(webhook))
        .with_state(backend);
    (router, done_rx)
}

/// The widget's work for one request, then the bot goes on.
async fn continue_bot(
    kommo: &kommo::Client,
    request: &VerifiedWidgetRequest,
) -> Result<(), String> {
    let data = serde_json::Map::from_iter([
        (
            "checked_lead".to_string(),
            request.claims().entity_id.into(),
        ),
        ("status".to_string(), "done".into()),
    ]);
    let show: BotHandler = serde_json::from_value(serde_json::json!({
        "handler": "show",
        "params": { "type": "text", "value": "Checked by the widget" }
    }))
    .map_err(|e| e.to_string())?;
    kommo
        .continue_widget_request(request)
        .data(data)
        .execute_handlers(vec![show])
        .send()
        .await
        .map_err(|e| e.to_string())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

async fn widget_request(
    State(backend): State<Arc<Backend>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let request = match WidgetRequest::from_http(content_type(&headers), &body) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("widget_request refused: {e}");
            return StatusCode::BAD_REQUEST;
        }
    };
    // Verify before acting: the token says which account and lead this is, signed with the
    // integration's secret, and the return_url must be on that account. The error never
    // contains the token or the secret.
    let request = match request.verify(&backend.verifier) {
        Ok(request) => request,
        Err(e @ (RequestError::Token(_) | RequestError::OtherAccount { .. })) => {
            eprintln!("widget_request refused: {e}");
            return StatusCode::UNAUTHORIZED;
        }
        Err(e) => {
            eprintln!("widget_request refused: {e}");
            return StatusCode::BAD_REQUEST;
        }
    };
    let _ = backend.work.send(Work::Continue(Box::new(request)));
    StatusCode::OK
}

async fn webhook(
    State(backend): State<Arc<Backend>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    match webhooks::parse(content_type(&headers), &body) {
        Ok(hook) => {
            let _ = backend.work.send(Work::Webhook(hook));
            StatusCode::OK
        }
        Err(e) => {
            eprintln!("webhook refused: {e}");
            StatusCode::BAD_REQUEST
        }
    }
}
