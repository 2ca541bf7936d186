//! What the fake sends, as Kommo does, to a back end it is configured with: Salesbot's
//! `widget_request` ([`Config::widget_url`](crate::Config::widget_url)) and incoming-lead webhooks
//! ([`Config::webhook_url`](crate::Config::webhook_url)).
//!
//! One task on the fake's runtime sends them in order, one at a time: the webhook of a request is
//! queued when the request is answered, so the webhooks of a run arrive in the order of the
//! requests that caused them. Each send is journaled ([`WebhookDelivery`], [`WidgetRequestSent`])
//! with the back end's status, or why it got none. Redirects are not followed: a `3xx` answer is
//! journaled with its status and its `Location`, and nothing is sent there (a back end cannot
//! send the signed token, or the account's webhooks, to another host). Kommo's pages disagree on whether a failed
//! webhook is sent again; the fake sends each once.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot, watch};

/// How long the fake waits for a back end's answer (Kommo's own timeout is not documented; a
/// widget back end is expected to answer at once and work after).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// One webhook the fake posted: the form-encoded body, and the back end's status or the error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// Where it went.
    pub url: String,
    /// The `application/x-www-form-urlencoded` body, as sent.
    pub body: String,
    /// The back end's status, when it answered.
    pub status: Option<u16>,
    /// Why there was no answer (refused connection, timeout).
    pub error: Option<String>,
    /// The `Location` of a redirect answer (`3xx`; its status is in `status`): the fake does
    /// not follow it, as a client holding signed tokens must not.
    pub redirect: Option<String>,
}

/// One `widget_request` the fake's Salesbot sent.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WidgetRequestSent {
    /// `salesbot` or `marketingbot`.
    pub kind: String,
    /// The bot's ID.
    pub bot_id: String,
    /// The continue ID the bot now waits on (`return_url` ends with it).
    pub continue_id: String,
    /// The `return_url` sent: `{fake}/api/v4/{kind}/{bot_id}/continue/{continue_id}`.
    pub return_url: String,
    /// The `data` sent.
    pub data: Value,
    /// The back end's status, when it answered.
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
    /// The `Location` of a redirect answer (`3xx`; its status is in `status`): the fake does
    /// not follow it, so the signed token goes nowhere else.
    pub redirect: Option<String>,
}

pub(crate) enum Job {
    Webhook {
        url: String,
        body: String,
    },
    Widget {
        url: String,
        body: Value,
        sent: Box<WidgetRequestSent>,
        done: Option<oneshot::Sender<WidgetRequestSent>>,
    },
}

/// The queue to the sending task, and what it sent.
pub(crate) struct Outbound {
    queue: mpsc::UnboundedSender<Job>,
    jobs: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    webhooks: std::sync::Mutex<Vec<WebhookDelivery>>,
    widget_requests: std::sync::Mutex<Vec<WidgetRequestSent>>,
    /// How many webhooks were sent (answered or not), for waiters.
    pub(crate) delivered: watch::Sender<usize>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Outbound {
    pub(crate) fn new() -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        Self {
            queue,
            jobs: std::sync::Mutex::new(Some(jobs)),
            webhooks: std::sync::Mutex::new(Vec::new()),
            widget_requests: std::sync::Mutex::new(Vec::new()),
            delivered: watch::channel(0).0,
        }
    }

    /// Every webhook sent, oldest first.
    pub(crate) fn webhooks(&self) -> Vec<WebhookDelivery> {
        lock(&self.webhooks).clone()
    }

    /// Every `widget_request` sent, oldest first.
    pub(crate) fn widget_requests(&self) -> Vec<WidgetRequestSent> {
        lock(&self.widget_requests).clone()
    }

    pub(crate) fn push(&self, job: Job) {
        // The task ends only with the server; a job queued after that is not sent.
        let _ = self.queue.send(job);
    }

    /// Runs the sending task on the server's runtime (once).
    pub(crate) fn spawn(self: &std::sync::Arc<Self>) {
        let Some(mut jobs) = lock(&self.jobs).take() else {
            return;
        };
        let outbound = self.clone();
        tokio::spawn(async move {
            let http = match reqwest::Client::builder()
                .timeout(SEND_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
            {
                Ok(http) => http,
                Err(_) => return,
            };
            while let Some(job) = jobs.recv().await {
                outbound.send(&http, job).await;
            }
        });
    }

    async fn send(&self, http: &reqwest::Client, job: Job) {
        match job {
            Job::Webhook { url, body } => {
                let answer = http
                    .post(&url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body.clone())
                    .send()
                    .await;
                let (status, error, redirect) = outcome(answer);
                lock(&self.webhooks).push(WebhookDelivery {
                    url,
                    body,
                    status,
                    error,
                    redirect,
                });
                self.delivered.send_modify(|count| *count += 1);
            }
            Job::Widget {
                url,
                body,
                mut sent,
                done,
            } => {
                let answer = http.post(&url).json(&body).send().await;
                (sent.status, sent.error, sent.redirect) = outcome(answer);
                lock(&self.widget_requests).push((*sent).clone());
                if let Some(done) = done {
                    let _ = done.send(*sent);
                }
            }
        }
    }
}

/// The longest `Location` journaled; a longer one is cut (at a character boundary).
const LOCATION_LIMIT: usize = 2048;

/// The status, the error and, for a redirect, its `Location` (not followed).
fn outcome(
    answer: Result<reqwest::Response, reqwest::Error>,
) -> (Option<u16>, Option<String>, Option<String>) {
    match answer {
        Ok(response) => {
            let redirect = response
                .status()
                .is_redirection()
                .then(|| {
                    response.headers().get(reqwest::header::LOCATION).map(|v| {
                        let text = String::from_utf8_lossy(v.as_bytes());
                        let mut end = text.len().min(LOCATION_LIMIT);
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text[..end].to_string()
                    })
                })
                .flatten();
            (Some(response.status().as_u16()), None, redirect)
        }
        Err(e) => (None, Some(e.to_string()), None),
    }
}

/// The webhook body of one request's incoming-lead events: `account[...]`, then
/// `unsorted[{action}][n][...]` for each event, PHP's bracket form, form-encoded.
pub(crate) fn webhook_body(
    account_id: i64,
    subdomain: &str,
    origin: &str,
    events: &[(&'static str, Value)],
) -> String {
    let mut unsorted = Map::new();
    for (action, event) in events {
        let list = unsorted
            .entry(action.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(event.clone());
        }
    }
    let body = json!({
        "account": {
            "id": account_id,
            "subdomain": subdomain,
            "_links": { "self": origin },
        },
        "unsorted": unsorted,
    });
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in php_pairs(&body) {
        form.append_pair(&key, &value);
    }
    form.finish()
}

/// A JSON value as PHP's `http_build_query` writes it: `a[b][0]=...` for every scalar, in
/// order; `true`/`false` as `1`/`0`, `null` left out (as PHP leaves it out).
pub(crate) fn php_pairs(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Null => {}
            Value::Bool(b) => out.push((prefix.to_string(), if *b { "1" } else { "0" }.into())),
            Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), item, out);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}[{key}]")
                    };
                    walk(&name, item, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_pairs_are_http_build_query_s() {
        let pairs = php_pairs(&json!({
            "a": {"b": [1, "x y"], "t": true, "n": null},
            "c": "z"
        }));
        assert_eq!(
            pairs,
            vec![
                ("a[b][0]".to_string(), "1".to_string()),
                ("a[b][1]".to_string(), "x y".to_string()),
                ("a[t]".to_string(), "1".to_string()),
                ("c".to_string(), "z".to_string()),
            ]
        );
    }
}
