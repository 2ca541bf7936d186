//! Kommo's webhooks, read into typed incoming-lead events: bytes and a `Content-Type` in, types
//! out, whatever the server framework.
//!
//! Kommo posts a webhook as an `application/x-www-form-urlencoded` PHP array,
//! `{entity}[{action}][{n}][{field}]=...`, beside the account it comes from (`account[id]`,
//! `account[subdomain]`, `account[_links][self]`); every scalar is a string. (amoCRM's developer
//! page "webhooks-format", <https://www.amocrm.ru/developers/content/crm_platform/webhooks-format>:
//! "the POST variable holds an array of the form `{entity: {action: {0: {fields}}}}`".) The
//! body is read by [`crate::form`] (PHP's `parse_str`, within [`FormLimits`]).
//!
//! The incoming-lead ("unsorted") events are typed: `unsorted[add]` and `unsorted[update]` as
//! [`IncomingLeadEvent`], `unsorted[delete]` (the lead was accepted or declined) as
//! [`IncomingLeadDeleted`] with its [`Decision`] and the ids of what it created or closed
//! (`accept_result[leads][0]`, `decline_result[leads][0]`). Public integrations read exactly
//! these names (CONTRIBUTING.md, "Where the vendor documents contradict themselves", rows "webhook ...").
//! Every other event (`leads[add]`, `contacts[update]`, ...) is an [`Event::Other`] with its raw
//! value, never dropped. Ids are integers read from their digits; a field that is not one makes
//! that event an [`UnrecognizedEvent`] naming the field's path, and the other events are still
//! read (as [`crate::list`] does with a list's odd items). Fields this crate does not type are
//! kept in each event's `extra`.
//!
//! ```
//! use lead_intake::webhooks::{self, Decision, Event};
//!
//! let body = "account[id]=29512438&account[subdomain]=mycompany\
//!     &account[_links][self]=https%3A%2F%2Fmycompany.kommo.com\
//!     &unsorted[delete][0][uid]=5af9dedb6f2c&unsorted[delete][0][category]=forms\
//!     &unsorted[delete][0][action]=accept&unsorted[delete][0][accept_result][leads][0]=236768\
//!     &unsorted[delete][1][uid]=x&unsorted[delete][1][action]=decline\
//!     &unsorted[delete][1][modified_user_id]=nobody\
//!     &leads[add][0][id]=236768";
//! let hook = webhooks::parse(Some("application/x-www-form-urlencoded"), body.as_bytes())?;
//! assert_eq!(hook.account().map(|a| a.id), Some(29512438));
//! let Event::IncomingLeadDeleted(deleted) = &hook.events()[0] else { panic!() };
//! assert_eq!(deleted.action, Decision::Accept);
//! assert_eq!(deleted.result().map(|r| r.leads.as_slice()), Some(&[236768][..]));
//! // The odd event is reported, and does not cost the others.
//! let odd = &hook.unrecognized()[0];
//! assert_eq!((odd.entity(), odd.action(), odd.index(), odd.path()),
//!            ("unsorted", Some("delete"), Some("1"), "modified_user_id"));
//! let Event::Other(other) = &hook.events()[1] else { panic!() };
//! assert_eq!((other.entity(), other.action()), ("leads", "add"));
//! assert_eq!(other.raw()["id"], "236768");
//! # Ok::<(), lead_intake::webhooks::WebhookError>(())
//! ```
//!
//! The guide to writing a widget back end, webhooks included, is in `lead_intake::widget`.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::form::{self, FormError, FormLimits, FormValue};
use crate::kommo::types::IncomingLeadCategory;

/// Why a webhook could not be read at all (one odd event is an [`UnrecognizedEvent`] instead).
/// Messages never quote a value of the body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No `Content-Type` was given.
    #[error("the webhook has no Content-Type; Kommo sends application/x-www-form-urlencoded")]
    MissingContentType,
    /// The `Content-Type` is not `application/x-www-form-urlencoded`, or names a charset other
    /// than UTF-8.
    #[error("the webhook's Content-Type `{0}` is not application/x-www-form-urlencoded in UTF-8")]
    ContentType(String),
    /// The body is not a form within the limits.
    #[error("the webhook's body: {0}")]
    Form(#[from] FormError),
    /// `account[...]` is there but does not fit [`Account`].
    #[error("the webhook's account at `{path}`: {reason}")]
    Account {
        /// Where in `account`, e.g. `id`.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Reads a webhook with the default [`FormLimits`]. `content_type` is the request's
/// `Content-Type` header value, as sent.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Webhook, WebhookError> {
    parse_with(content_type, body, &FormLimits::new())
}

/// Reads a webhook within `limits`.
pub fn parse_with(
    content_type: Option<&str>,
    body: &[u8],
    limits: &FormLimits,
) -> Result<Webhook, WebhookError> {
    check_content_type(content_type)?;
    let form = form::parse_with(body, limits)?;
    let conflicts = form.conflicts().to_vec();
    let mut hook = Webhook {
        account: None,
        events: Vec::new(),
        unrecognized: Vec::new(),
        conflicts,
    };
    for (entity, value) in form.into_root().into_entries() {
        if entity == "account" {
            hook.account = Some(decode_account(&value)?);
            continue;
        }
        let FormValue::Map(actions) = value else {
            hook.unrecognized.push(UnrecognizedEvent::new(
                entity,
                None,
                None,
                ".".into(),
                "expected events by action, found a string".into(),
                value.to_json(),
            ));
            continue;
        };
        for (action, events) in actions.into_entries() {
            let FormValue::Map(events) = events else {
                hook.unrecognized.push(UnrecognizedEvent::new(
                    entity.clone(),
                    Some(action),
                    None,
                    ".".into(),
                    "expected a list of events, found a string".into(),
                    events.to_json(),
                ));
                continue;
            };
            for (index, event) in events.into_entries() {
                hook.push(&entity, &action, index, event.to_json());
            }
        }
    }
    Ok(hook)
}

fn check_content_type(content_type: Option<&str>) -> Result<(), WebhookError> {
    let Some(value) = content_type else {
        return Err(WebhookError::MissingContentType);
    };
    let refused = || WebhookError::ContentType(shorten(value));
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(refused());
    }
    for param in parts {
        let Some((name, v)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let v = v.trim().trim_matches('"');
            if !(v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")) {
                return Err(refused());
            }
        }
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}...", s.get(..at).unwrap_or_default()),
        None => s.to_string(),
    }
}

fn decode_account(value: &FormValue) -> Result<Account, WebhookError> {
    serde_path_to_error::deserialize(value.to_json()).map_err(|e| WebhookError::Account {
        path: e.path().to_string(),
        reason: crate::list::scrub(e.inner()),
    })
}

/// A webhook: the account it comes from, its events in the order they came, and the events
/// that did not fit their type.
#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    account: Option<Account>,
    events: Vec<Event>,
    unrecognized: Vec<UnrecognizedEvent>,
    conflicts: Vec<String>,
}

impl Webhook {
    /// The account (`account[...]`), when the body has one.
    pub fn account(&self) -> Option<&Account> {
        self.account.as_ref()
    }

    /// The events that decoded, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events that did not fit their type, in order.
    pub fn unrecognized(&self) -> &[UnrecognizedEvent] {
        &self.unrecognized
    }

    /// Whether every event decoded.
    pub fn all_recognized(&self) -> bool {
        self.unrecognized.is_empty()
    }

    /// Where the body gave one key both as a value and as an array, so the later replaced the
    /// earlier ([`form::Form::conflicts`]); empty for anything Kommo sends.
    pub fn conflicts(&self) -> &[String] {
        &self.conflicts
    }

    /// The account, the events and the unrecognized events, owned.
    pub fn into_parts(self) -> (Option<Account>, Vec<Event>, Vec<UnrecognizedEvent>) {
        (self.account, self.events, self.unrecognized)
    }

    fn push(&mut self, entity: &str, action: &str, index: String, raw: Value) {
        let decoded = match (entity, action) {
            ("unsorted", "add") => decode(&raw).map(Event::IncomingLeadAdded),
            ("unsorted", "update") => decode(&raw).map(Event::IncomingLeadUpdated),
            ("unsorted", "delete") => decode(&raw).map(Event::IncomingLeadDeleted),
            _ => {
                self.events.push(Event::Other(OtherEvent {
                    entity: entity.to_string(),
                    action: action.to_string(),
                    index,
                    raw,
                }));
                return;
            }
        };
        match decoded {
            Ok(event) => self.events.push(event),
            Err((path, reason)) => self.unrecognized.push(UnrecognizedEvent::new(
                entity.to_string(),
                Some(action.to_string()),
                Some(index),
                path,
                reason,
                raw,
            )),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(raw: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(raw.clone())
        .map_err(|e| (e.path().to_string(), crate::list::scrub(e.inner())))
}

/// The account a webhook comes from (`account[id]`, `account[subdomain]`, and
/// `account[_links][self]`, read by [`link`](Self::link)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Account {
    /// The account's id.
    #[serde(deserialize_with = "int")]
    pub id: i64,
    /// The subdomain (`mycompany` of `mycompany.kommo.com`).
    pub subdomain: String,
    /// Any other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Account {
    /// `_links[self]`: the account's address (a string in webhooks; an `{href}` is read too).
    /// The links stay in [`extra`](Self::extra) as sent.
    pub fn link(&self) -> Option<&str> {
        let link = self.extra.get("_links")?.get("self")?;
        link.as_str()
            .or_else(|| link.get("href").and_then(Value::as_str))
    }
}

/// One event of a webhook.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `unsorted[add]`: an incoming lead arrived.
    IncomingLeadAdded(IncomingLeadEvent),
    /// `unsorted[update]`: an incoming lead changed.
    IncomingLeadUpdated(IncomingLeadEvent),
    /// `unsorted[delete]`: an incoming lead left the incoming list, accepted or declined.
    IncomingLeadDeleted(IncomingLeadDeleted),
    /// Any other entity or action, raw.
    Other(OtherEvent),
}

/// An incoming lead as `unsorted[add]` and `unsorted[update]` carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IncomingLeadEvent {
    /// The incoming lead's uid (as `lead_intake::kommo` calls take it).
    pub uid: String,
    /// Its category (`sip`, `forms`, `chats`, `mail`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<IncomingLeadCategory>,
    /// The UID of the source it came through, when sent: the same value, with the same meaning,
    /// as [`IncomingLead::source_uid`](crate::kommo::types::IncomingLead::source_uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_uid: Option<String>,
    /// The pipeline it sits in.
    #[serde(
        default,
        deserialize_with = "opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub pipeline_id: Option<i64>,
    /// The lead it carries.
    #[serde(
        default,
        deserialize_with = "opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub lead_id: Option<i64>,
    /// When it was created (Unix seconds).
    #[serde(
        default,
        deserialize_with = "opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<i64>,
    /// What the source sent (`source_data[...]`: caller, form fields, chat client...), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_data: Option<Value>,
    /// Any other field (`data[contacts]`, `source`, `account_id`, ...), as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `unsorted[delete]`: an incoming lead that was accepted or declined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IncomingLeadDeleted {
    /// The incoming lead's uid.
    pub uid: String,
    /// Accepted or declined.
    pub action: Decision,
    /// Its category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<IncomingLeadCategory>,
    /// What accepting it made (`accept_result[leads][0]`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_result: Option<DecisionResult>,
    /// What declining it closed (`decline_result[leads][0]`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_result: Option<DecisionResult>,
    /// When it was created (Unix seconds).
    #[serde(
        default,
        deserialize_with = "opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<i64>,
    /// The user who decided.
    #[serde(
        default,
        deserialize_with = "opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub modified_user_id: Option<i64>,
    /// Any other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IncomingLeadDeleted {
    /// The result that goes with the decision: `accept_result` for an accept, `decline_result`
    /// for a decline.
    pub fn result(&self) -> Option<&DecisionResult> {
        match self.action {
            Decision::Accept => self.accept_result.as_ref(),
            Decision::Decline => self.decline_result.as_ref(),
            Decision::Other(_) => None,
        }
    }
}

/// What became of an incoming lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Decision {
    /// Accepted: it became a lead.
    Accept,
    /// Declined.
    Decline,
    /// Another word, as sent.
    #[serde(untagged)]
    Other(String),
}

/// The entities an accept made or a decline closed, by id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DecisionResult {
    /// Lead ids.
    #[serde(default, deserialize_with = "ints")]
    pub leads: Vec<i64>,
    /// Contact ids, when sent.
    #[serde(
        default,
        deserialize_with = "ints",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub contacts: Vec<i64>,
    /// Company ids, when sent.
    #[serde(
        default,
        deserialize_with = "ints",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub companies: Vec<i64>,
    /// Any other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An event of an entity or action this crate does not type (`leads[add]`, `contacts[update]`,
/// `unsorted[link]`, ...), as sent.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherEvent {
    entity: String,
    action: String,
    index: String,
    raw: Value,
}

impl OtherEvent {
    /// The entity: `leads` of `leads[add][0]`.
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The action: `add` of `leads[add][0]`.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// Its key in the action's list: `0` of `leads[add][0]`.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// The event as JSON ([`FormValue::to_json`]: strings, lists and objects).
    pub fn raw(&self) -> &Value {
        &self.raw
    }
}

/// An event that did not fit its type, or a part of the body that is not events: where, why,
/// and its raw value. `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq)]
pub struct UnrecognizedEvent {
    entity: String,
    action: Option<String>,
    index: Option<String>,
    path: String,
    reason: String,
    raw: Value,
}

impl UnrecognizedEvent {
    fn new(
        entity: String,
        action: Option<String>,
        index: Option<String>,
        path: String,
        reason: String,
        raw: Value,
    ) -> Self {
        Self {
            entity,
            action,
            index,
            path,
            reason,
            raw,
        }
    }

    /// The entity (`unsorted`).
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The action (`delete`), unless the entity itself is odd.
    pub fn action(&self) -> Option<&str> {
        self.action.as_deref()
    }

    /// The event's key in its action's list (`0`), unless the action itself is odd.
    pub fn index(&self) -> Option<&str> {
        self.index.as_deref()
    }

    /// Where in the event decoding failed, e.g. `pipeline_id` (`.` for the event itself).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Why, e.g. `invalid type: string, expected an integer`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The value as sent (as JSON).
    pub fn raw(&self) -> &Value {
        &self.raw
    }
}

impl fmt::Debug for UnrecognizedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnrecognizedEvent")
            .field("entity", &self.entity)
            .field("action", &self.action)
            .field("index", &self.index)
            .field("path", &self.path)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for UnrecognizedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entity)?;
        if let Some(action) = &self.action {
            write!(f, "[{action}]")?;
        }
        if let Some(index) = &self.index {
            write!(f, "[{index}]")?;
        }
        write!(f, " at `{}`: {}", self.path, self.reason)
    }
}

/// An integer, from its digits (a form's scalars are strings) or a JSON number.
fn parse_int<E: de::Error>(value: &Value) -> Result<i64, E> {
    match value {
        Value::String(s) => s.trim().parse().map_err(|_| {
            E::invalid_value(de::Unexpected::Other("a string"), &"an integer in digits")
        }),
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            E::invalid_value(de::Unexpected::Other("a number"), &"a 64-bit integer")
        }),
        _ => Err(E::invalid_type(unexpected(value), &"an integer")),
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'static> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(_) => de::Unexpected::Other("a boolean"),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(_) => de::Unexpected::Other("a string"),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    parse_int(&Value::deserialize(d)?)
}

/// An integer, or absent: PHP writes a null as `""`.
fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        v => parse_int(&v).map(Some),
    }
}

/// Integers from a list (`leads[0]=1&leads[1]=2`), a map keyed otherwise (`leads[5]=1`), or
/// one value.
fn ints<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Array(items) => items.iter().map(parse_int).collect(),
        Value::Object(map) => map.values().map(parse_int).collect(),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        v => parse_int(&v).map(|n| vec![n]),
    }
}
