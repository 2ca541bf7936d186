//! The body of the `responses` fuzz target (`fuzz/`, FUZZING.md), and of the test that replays
//! its seeds and regressions (tests/fuzz_responses.rs). Feature `fuzzing`; not a public API.
//!
//! [`responses`](crate::fuzzing::responses) reads an answer (status, headers, body) from arbitrary bytes and hands it,
//! without a network, to everything that reads server data: for every success type of every
//! operation of both APIs, progenitor's decoder (`ResponseValue::from_response`, or
//! `ResponseValue::empty` for body-less successes) followed by [`ResponseExt::body`](crate::error::ResponseExt::body) and
//! [`ResponseExt::or_empty`](crate::error::ResponseExt::or_empty), and the error classifier (`error::classify`, reached through
//! the same calls with the answer as progenitor's `UnexpectedResponse`). Whatever comes out is
//! then used: errors are displayed and classified, decoded values are printed and serialized
//! again, their HAL hrefs resolved the way `follow` resolves them, and pages read the way the
//! pagers read them. The same answer is also read as the OAuth token endpoint's (a new token
//! pair, or the refusal). Nothing may panic.

mod widget;
pub use widget::{FUZZ_AUDIENCE, FUZZ_NOW, FUZZ_SECRET, widget};

use std::fmt;

use futures_util::FutureExt;
use progenitor_client::ResponseValue;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::closebot;
use crate::error::{ApiError, ApiResponse, ProblemSummary, ResponseExt};
use crate::kommo;
use crate::pagination::KommoPage;

/// An answer read from fuzz input.
///
/// Layout: 2 bytes status (big-endian, mapped into `100..=999`), 1 byte header count `n`, then
/// `n` headers of 1 byte name selector ([`HEADER_NAMES`], modulo its length), 1 byte value
/// length `l` and `l` bytes of value, then the body (all the remaining bytes). Input too short
/// for the header section ends it early: every input is some answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Header names and raw values (a value that is not a valid header value is dropped).
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The headers the readers look at, plus one they do not.
pub const HEADER_NAMES: [&str; 4] = ["content-type", "retry-after", "content-length", "x-other"];

impl Answer {
    /// Reads an answer from arbitrary bytes (see [`Answer`] for the layout).
    pub fn parse(data: &[u8]) -> Self {
        let mut at: usize = 0;
        let mut take = |n: usize| -> Option<&[u8]> {
            let bytes = data.get(at..at.checked_add(n)?)?;
            at += n;
            Some(bytes)
        };
        let status = take(2).map_or(200, |b| 100 + u16::from_be_bytes([b[0], b[1]]) % 900);
        let count = take(1).map_or(0, |b| b[0]);
        let mut headers = Vec::new();
        for _ in 0..count {
            let Some(&[selector, len]) = take(2) else {
                break;
            };
            let Some(value) = take(usize::from(len)) else {
                break;
            };
            headers.push((
                HEADER_NAMES[usize::from(selector) % HEADER_NAMES.len()],
                value.to_vec(),
            ));
        }
        let body = data.get(at..).unwrap_or_default().to_vec();
        Self {
            status,
            headers,
            body,
        }
    }

    /// The bytes [`Answer::parse`] reads back as this answer (for writing seeds). Header values
    /// longer than 255 bytes are cut.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.status.clamp(100, 999) - 100).to_be_bytes());
        let headers = &self.headers[..self.headers.len().min(255)];
        out.push(headers.len() as u8);
        for (name, value) in headers {
            let selector = HEADER_NAMES.iter().position(|n| n == name).unwrap_or(3);
            let value = &value[..value.len().min(255)];
            out.push(selector as u8);
            out.push(value.len() as u8);
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// The answer as the `reqwest::Response` the generated code would get from the network.
    fn response(&self) -> reqwest::Response {
        let mut builder = http::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            if let Ok(value) = http::HeaderValue::from_bytes(value) {
                builder = builder.header(*name, value);
            }
        }
        let response = match builder.body(self.body.clone()) {
            Ok(response) => response,
            // Cannot happen: statuses are 100..=999 and names are constants; values are checked.
            Err(_) => http::Response::new(self.body.clone()),
        };
        reqwest::Response::from(response)
    }
}

/// Runs every response reader on `data` (see the module) and returns, for each operation of
/// [`operations`], whether `body()` returned a value. Panics only if a reader panics (or if a
/// reader waits for I/O, which an in-memory body never needs).
pub fn responses(data: &[u8]) -> Vec<bool> {
    let answer = Answer::parse(data);
    token_answer(&answer);
    for_each_operation(&answer)
}

/// The OAuth token endpoint's answer, read as a refresh and as a code exchange read it (with a
/// secret to scrub from error text), and then used: printed, and a new pair's expiry turned
/// into the session's deadlines.
fn token_answer(answer: &Answer) {
    use crate::oauth::{Grant, deadlines, read_token_answer};
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let sent = crate::secret::Redactions::new(vec![crate::Secret::new("fuzz-client-secret")]);
    for grant in [Grant::RefreshToken, Grant::AuthorizationCode] {
        match read_token_answer(status, &answer.body, grant, &sent) {
            Ok(pair) => {
                let _ = format!("{pair:?}");
                let _ = deadlines(pair.expires_at, std::time::Duration::from_secs(300));
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
            }
        }
    }
}

/// A body-less success (`204`, continueBot's `202`), read as progenitor reads it.
fn empty(answer: &Answer) -> bool {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let raw = if status.is_success() {
        Ok(ResponseValue::empty(answer.response()))
    } else {
        Err(progenitor_client::Error::UnexpectedResponse(
            answer.response(),
        ))
    };
    let decoded = use_result(run(async { raw }.body()));
    let raw: Result<ResponseValue<()>, _> = Err(progenitor_client::Error::UnexpectedResponse(
        answer.response(),
    ));
    use_result(run(async { raw }.body()));
    decoded
}

/// A success type `T`, read as its operation's generated code reads it: the success status
/// through `ResponseValue::from_response`, every other status as `UnexpectedResponse` (for
/// coverage, the second path is also taken whatever the status).
fn body<T>(answer: &Answer) -> bool
where
    T: DeserializeOwned + ApiResponse + Serialize + fmt::Debug + Inspect,
{
    let decoded = use_result(run(generated::<T>(answer).body()));
    use_result(run(unexpected::<T>(answer).body()));
    decoded
}

/// A list: as [`body`], and with `or_empty` (a 204 is the empty page).
fn list<T>(answer: &Answer) -> bool
where
    T: DeserializeOwned + ApiResponse + Serialize + fmt::Debug + Inspect + Default,
{
    let decoded = body::<T>(answer);
    use_result(run(generated::<T>(answer).or_empty()));
    use_result(run(unexpected::<T>(answer).or_empty()));
    decoded
}

type Raw<T> = Result<ResponseValue<T>, progenitor_client::Error<()>>;

/// What a generated call returns for the answer.
async fn generated<T: DeserializeOwned>(answer: &Answer) -> Raw<T> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    if status.is_success() && status != StatusCode::NO_CONTENT {
        ResponseValue::<T>::from_response::<()>(answer.response()).await
    } else {
        Err(progenitor_client::Error::UnexpectedResponse(
            answer.response(),
        ))
    }
}

/// The answer as a status the call does not expect.
async fn unexpected<T>(answer: &Answer) -> Raw<T> {
    Err(progenitor_client::Error::UnexpectedResponse(
        answer.response(),
    ))
}

/// Polls a future that needs no I/O to completion.
fn run<F: std::future::Future>(future: F) -> F::Output {
    match future.now_or_never() {
        Some(output) => output,
        None => panic!("a response reader waited on an in-memory answer"),
    }
}

/// Uses a result the way callers do: print it, classify the error, serialize the value. True
/// for a value.
fn use_result<T: Serialize + fmt::Debug + Inspect, P: fmt::Debug + ProblemSummary>(
    result: Result<T, ApiError<P>>,
) -> bool {
    let decoded = result.is_ok();
    match result {
        Ok(value) => {
            let _ = format!("{value:?}");
            value.inspect();
            if let Ok(json) = serde_json::to_value(&value) {
                hrefs(&json);
            }
        }
        Err(error) => {
            let _ = error.to_string();
            let _ = format!("{error:?}");
            let _ = std::error::Error::source(&error).map(ToString::to_string);
            let _ = (
                error.status(),
                error.is_rate_limited(),
                error.is_account_blocked(),
                error.certainly_not_applied(),
            );
            if let Some(problem) = error.problem() {
                let _ = (problem.summary(), problem.is_problem_document());
            }
        }
    }
    decoded
}

/// Resolves every `href` of a decoded value as `follow` would, against both APIs' base URLs.
fn hrefs(value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if let (true, Some(href)) = (key == "href", value.as_str()) {
                    for base in ["https://mycompany.kommo.com", closebot::DEFAULT_BASE_URL] {
                        let _ = crate::links::resolve(base, href).map(|url| url.to_string());
                    }
                }
                hrefs(value);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(hrefs),
        _ => {}
    }
}

/// What callers read from a decoded value beyond its fields.
trait Inspect {
    fn inspect(&self) {}
}

impl Inspect for () {}

/// A Kommo page, read as the pagers read it.
fn page<P: KommoPage + fmt::Debug>(page: &P) {
    let _ = (page.items().len(), format!("{:?}", page.links()));
    let _ = page.clone().into_items().len();
}

macro_rules! operations {
    // `list`: also read with `or_empty`; `empty`: a body-less success (`ResponseValue::empty`).
    ($($api:literal $op:literal => $ty:ty $(, $list:ident)?;)*) => {
        /// `(api, operationId, success type)` of every operation the fuzz body covers; a test
        /// (tests/fuzz_responses.rs) checks it against the specifications.
        pub fn operations() -> Vec<(&'static str, &'static str, &'static str)> {
            vec![$(($api, $op, std::any::type_name::<$ty>())),*]
        }

        fn for_each_operation(answer: &Answer) -> Vec<bool> {
            vec![$(operations!(@one answer, $ty $(, $list)?)),*]
        }
    };
    (@one $answer:ident, $ty:ty, empty) => { empty($answer) };
    (@one $answer:ident, $ty:ty) => { body::<$ty>($answer) };
    (@one $answer:ident, $ty:ty, list) => { list::<$ty>($answer) };
}

operations! {
    "kommo" "listSources" => kommo::types::SourceList, list;
    "kommo" "addSources" => kommo::types::SourceList, list;
    "kommo" "updateSources" => kommo::types::SourceList;
    "kommo" "deleteSources" => (), empty;
    "kommo" "getSource" => kommo::types::Source;
    "kommo" "updateSource" => kommo::types::Source;
    "kommo" "deleteSource" => (), empty;
    "kommo" "listWidgets" => kommo::types::WidgetList, list;
    "kommo" "getWidget" => kommo::types::Widget;
    "kommo" "installWidget" => kommo::types::Widget;
    "kommo" "uninstallWidget" => (), empty;
    "kommo" "continueBot" => (), empty;
    "kommo" "listIncomingLeads" => kommo::types::IncomingLeadList, list;
    "kommo" "getIncomingLead" => kommo::types::IncomingLead;
    "kommo" "addIncomingCalls" => kommo::types::CreatedIncomingLeadList;
    "kommo" "addIncomingForms" => kommo::types::CreatedIncomingLeadList;
    "kommo" "acceptIncomingLead" => kommo::types::IncomingLeadDecision;
    "kommo" "declineIncomingLead" => kommo::types::IncomingLeadDecision;
    "kommo" "linkIncomingLead" => kommo::types::LinkedIncomingLead;
    "kommo" "getIncomingLeadsSummary" => kommo::types::IncomingLeadsSummary;
    "kommo" "addComplexLeads" => kommo::types::CreatedComplexLeads;
    "kommo" "listPipelines" => kommo::types::PipelineList;
    "kommo" "getPipeline" => kommo::types::Pipeline;
    "closebot" "listSources" => closebot::types::SourcePage, list;
}

impl Inspect for kommo::types::SourceList {}
impl Inspect for kommo::types::Source {}
impl Inspect for kommo::types::Widget {}
impl Inspect for kommo::types::CreatedIncomingLeadList {}
impl Inspect for kommo::types::IncomingLeadDecision {}
impl Inspect for kommo::types::LinkedIncomingLead {}
impl Inspect for kommo::types::IncomingLeadsSummary {}
impl Inspect for kommo::types::CreatedComplexLeads {}
impl Inspect for kommo::types::PipelineList {}
impl Inspect for kommo::types::Pipeline {}
impl Inspect for closebot::types::SourcePage {}

impl Inspect for kommo::types::WidgetList {
    fn inspect(&self) {
        page(self);
    }
}

impl Inspect for kommo::types::IncomingLeadList {
    fn inspect(&self) {
        page(self);
        for lead in self.items() {
            lead.inspect();
        }
    }
}

impl Inspect for kommo::types::IncomingLead {
    fn inspect(&self) {
        let _ = (self.uid(), self.category());
    }
}

/// The body of the `forms` fuzz target: the first byte picks the limits and the
/// `Content-Type`, the rest is a webhook body. Runs the form parser and the webhook reader, uses
/// what they return, and checks that a parsed map written back as a form reads back as itself
/// (a mismatch panics, so the fuzzer reports it).
pub fn forms(data: &[u8]) {
    use crate::form::{self, FormLimits};
    use crate::webhooks;
    let (selector, body) = data.split_first().map_or((0, data), |(s, b)| (*s, b));
    let limits = FormLimits::new()
        .with_max_fields(usize::from(selector & 0x0f) * 8 + 1)
        .with_max_depth(usize::from(selector >> 4) + 1);
    let content_type = match selector % 4 {
        0 => Some("application/x-www-form-urlencoded"),
        1 => Some("application/x-www-form-urlencoded; charset=UTF-8"),
        2 => Some("application/json"),
        _ => None,
    };
    for limits in [limits, FormLimits::new()] {
        match form::parse_with(body, &limits) {
            Ok(parsed) => {
                let _ = (parsed.to_json().to_string(), format!("{parsed:?}"));
                let again =
                    form::parse_with(parsed.root().to_form().as_bytes(), &FormLimits::new());
                if let Ok(again) = again {
                    assert_eq!(
                        again.root(),
                        parsed.root(),
                        "a parsed map does not round-trip"
                    );
                }
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
            }
        }
        match webhooks::parse_with(content_type, body, &limits) {
            Ok(hook) => {
                let _ = format!("{hook:?}");
                for odd in hook.unrecognized() {
                    let _ = (odd.to_string(), odd.raw().to_string());
                }
                for event in hook.events() {
                    if let webhooks::Event::IncomingLeadDeleted(d) = event {
                        let _ = d.result();
                    }
                }
                let _ = hook.account().map(|a| a.link());
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
            }
        }
    }
}
