//! What the `fake_*` tests share: a fake server whose every answer is checked against the spec
//! when the test ends, clients pointed at it, and raw requests for what the clients never send.
#![allow(dead_code)]

use lead_intake::retry::RetryPolicy;
use lead_intake_fake::{Config, FakeServer};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A fake server for one test. When the test ends (without panicking), it asserts that every
/// answer the fake sent matched the spec.
pub struct Fake {
    pub server: FakeServer,
    /// One HTTP client for the raw requests (building one per request is slow in debug builds).
    http: reqwest::Client,
}

impl std::ops::Deref for Fake {
    type Target = FakeServer;
    fn deref(&self) -> &FakeServer {
        &self.server
    }
}

impl Fake {
    pub fn start(config: Config) -> Self {
        Self {
            server: FakeServer::start(config).expect("the fake starts"),
            http: reqwest::Client::new(),
        }
    }

    pub fn default() -> Self {
        Self::start(Config::default())
    }

    /// A Kommo client with the fake's token: no retries and no rate limiter, so each call is
    /// exactly one request.
    pub fn kommo(&self) -> lead_intake::kommo::Client {
        self.kommo_with(self.server.kommo_token())
    }

    pub fn kommo_with(&self, token: impl Into<lead_intake::Secret>) -> lead_intake::kommo::Client {
        lead_intake::kommo::Client::builder()
            .base_url(&self.server.base_url())
            .token(token)
            .no_rate_limit()
            .retry(RetryPolicy::none())
            .build()
            .expect("a loopback base URL is accepted")
    }

    /// A CloseBot client with the fake's key, no retries.
    pub fn closebot(&self) -> lead_intake::closebot::Client {
        lead_intake::closebot::Client::builder()
            .api_key(self.server.closebot_key())
            .base_url(&self.server.base_url())
            .retry(RetryPolicy::none())
            .build()
            .expect("a loopback base URL is accepted")
    }

    /// A raw request with the Kommo token, for what the generated client never sends.
    pub fn raw(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("{}{path_and_query}", self.server.base_url()),
            )
            .bearer_auth(self.server.kommo_token().expose())
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let violations: Vec<String> = self
            .server
            .violations()
            .into_iter()
            .map(|v| v.to_string())
            .collect();
        assert!(
            violations.is_empty(),
            "the fake sent answers that do not match the spec:\n{}",
            violations.join("\n")
        );
    }
}

/// A generated request type from JSON.
pub fn body<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| {
        panic!(
            "{value} does not decode as {}: {e}",
            std::any::type_name::<T>()
        )
    })
}

/// A raw answer: status, Content-Type and body.
pub async fn answer(request: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
    let response = request.send().await.expect("the fake answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.expect("a body");
    (status, content_type, text)
}

/// The `validation-errors` of a Kommo error as `(request_id, code, path)` triples.
pub fn rejected(error: &lead_intake::kommo::Error) -> Vec<(String, String, String)> {
    let problem = error
        .problem()
        .unwrap_or_else(|| panic!("a problem document: {error:?}"));
    problem
        .validation_errors
        .iter()
        .flat_map(|group| {
            let id = group.request_id.clone().unwrap_or_default();
            group.errors.iter().map(move |e| {
                (
                    id.clone(),
                    e.code.clone().unwrap_or_default(),
                    e.path.clone().unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// The status of an error as a number.
pub fn status<P: std::fmt::Debug + lead_intake::error::ProblemSummary>(
    error: &lead_intake::error::ApiError<P>,
) -> u16 {
    error
        .status()
        .unwrap_or_else(|| panic!("an error status: {error:?}"))
        .as_u16()
}
