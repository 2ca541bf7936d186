//! Batch calls of any size: Kommo's create/update/delete calls, split into requests of at most
//! 50 items, with a report that says what happened to every item ([`BatchReport`]); the guide
//! below.
//!
#![doc = include_str!("guides/batch.md")]

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{self, StreamExt};
use reqwest::StatusCode;

use crate::error::ResponseExt;
use crate::kommo::{self, types};

/// The most items one request of a batch call carries: Kommo's advice for every create/update
/// call, and the specification's `maxItems` for the source calls.
pub const MAX_CHUNK_SIZE: usize = 50;

/// How a batch is sent: the chunk size and how many chunks may be in flight at once.
///
/// ```
/// use lead_intake::batch::BatchOptions;
/// let options = BatchOptions::new().with_chunk_size(25).with_concurrency(2);
/// assert_eq!((options.chunk_size(), options.concurrency()), (25, 2));
/// assert_eq!(BatchOptions::default(), BatchOptions::new().with_chunk_size(50).with_concurrency(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOptions {
    chunk_size: usize,
    concurrency: usize,
    max_sends: u32,
}

/// How many times an item may be sent by default when its chunk is refused for another item
/// ([`BatchOptions::with_resend_valid_rest`]).
pub const DEFAULT_MAX_SENDS: u32 = 3;

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            chunk_size: MAX_CHUNK_SIZE,
            concurrency: 1,
            max_sends: DEFAULT_MAX_SENDS,
        }
    }
}

impl BatchOptions {
    /// The defaults: chunks of [`MAX_CHUNK_SIZE`] items, one request at a time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Items per request, `1..=50`. A value out of range is refused when the batch is called:
    /// nothing is sent and the report's error is [`BatchError::ChunkSize`].
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// How many requests may be in flight at once (at least 1; 0 is refused like a bad chunk
    /// size). The outcomes stay in input order. Every request goes through the client's usual
    /// call path, so its rate limiting applies to each of them.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Whether the valid rest of a refused chunk is sent again (the default: yes).
    ///
    /// Kommo refuses a whole request when one item is invalid (a `400` with `validation-errors`
    /// naming it), so the chunk's other items were not applied. By default the batch sends them
    /// again at once, without the rejected items, up to [`with_max_sends`](Self::with_max_sends) times in
    /// all for each item; their outcomes stay at their input indices. Only items that the answer
    /// proves unapplied are sent again: never an [`ItemOutcome::Unknown`]. `false` leaves them
    /// [`ItemOutcome::NotApplied`] for you to resend.
    ///
    /// ```
    /// use lead_intake::batch::BatchOptions;
    /// assert_ne!(BatchOptions::new().with_resend_valid_rest(false), BatchOptions::new());
    /// ```
    pub fn with_resend_valid_rest(mut self, resend: bool) -> Self {
        self.max_sends = if resend { DEFAULT_MAX_SENDS } else { 1 };
        self
    }

    /// How many times in all an item may be sent, the first included, when its chunk keeps
    /// being refused for other items (at least 1, which means never resent; default
    /// [`DEFAULT_MAX_SENDS`]). Each round takes out the items the last answer rejected.
    pub fn with_max_sends(mut self, sends: u32) -> Self {
        self.max_sends = sends.max(1);
        self
    }

    /// How many times in all an item may be sent ([`with_max_sends`](Self::with_max_sends)).
    pub fn max_sends(&self) -> u32 {
        self.max_sends
    }

    /// The chunk size set.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The concurrency set.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn check(&self, limit: usize) -> Result<(), Box<BatchError>> {
        if !(1..=limit).contains(&self.chunk_size) {
            return Err(Box::new(BatchError::ChunkSize {
                chunk_size: self.chunk_size,
                max: limit,
            }));
        }
        if self.concurrency == 0 {
            return Err(Box::new(BatchError::Concurrency));
        }
        Ok(())
    }
}

/// What happened to one input item of a batch.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ItemOutcome<R> {
    /// The server applied the item and answered it: the created or updated entity (for
    /// deletions, the deleted ID).
    Succeeded(R),
    /// The server refused the item: its `validation-errors`, matched by `request_id`. The other
    /// items of that request are [`ItemOutcome::NotApplied`].
    Rejected(Vec<types::ValidationError>),
    /// The server refused the whole request the item was in (a 4xx, a validation error of
    /// other items) or the request was never sent (a refused connection): safe to resend.
    NotApplied,
    /// Never sent: an earlier failure stopped the batch, or the batch was refused before
    /// anything was sent. Safe to resend.
    NotAttempted,
    /// Sent, and the failure leaves open whether it was applied: a 5xx, a timeout, a broken
    /// connection, or a success answer that did not decode or does not mention the item.
    /// Check before resending.
    Unknown,
}

impl<R> ItemOutcome<R> {
    /// The server's item, when it succeeded.
    pub fn succeeded(&self) -> Option<&R> {
        match self {
            Self::Succeeded(r) => Some(r),
            _ => None,
        }
    }

    /// True when the server certainly did not apply the item, and it can be sent again as is:
    /// [`ItemOutcome::NotApplied`] and [`ItemOutcome::NotAttempted`].
    pub fn is_safe_to_resend(&self) -> bool {
        matches!(self, Self::NotApplied | Self::NotAttempted)
    }
}

/// Why a batch stopped, or was refused before anything was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The chunk size is out of range; nothing was sent.
    #[error("chunk_size must be between 1 and {max}, not {chunk_size}; nothing was sent")]
    ChunkSize {
        /// The chunk size asked for.
        chunk_size: usize,
        /// The largest chunk the call takes.
        max: usize,
    },
    /// The concurrency is 0; nothing was sent.
    #[error("concurrency must be at least 1; nothing was sent")]
    Concurrency,
    /// Two items of one request would carry the same `request_id` (their own, or the index one
    /// of them would be named by), so the answer could not be matched to them; nothing was sent.
    #[error(
        "items {first} and {second} would be sent in one request with the same request_id \
         {request_id:?}, so the answer could not be matched to them; nothing was sent"
    )]
    DuplicateRequestId {
        /// The shared `request_id`.
        request_id: String,
        /// The input index of the first item.
        first: usize,
        /// The input index of the second item.
        second: usize,
    },
    /// The request carrying the input items `items` failed, and stopped the batch.
    #[error("the request for items {}..{} failed: {source}", items.start, items.end)]
    Request {
        /// The input indices the failed request carried: from the first to the last (a resent
        /// rest of a refused chunk leaves out the items rejected between them).
        items: Range<usize>,
        /// The error (boxed: a Kommo error is a few hundred bytes, the other variants a few
        /// words).
        #[source]
        source: Box<kommo::Error>,
    },
}

impl BatchError {
    /// The API error, when a request failed.
    pub fn api_error(&self) -> Option<&kommo::Error> {
        match self {
            Self::Request { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// How many items ended in each [`ItemOutcome`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchCounts {
    /// [`ItemOutcome::Succeeded`].
    pub succeeded: usize,
    /// [`ItemOutcome::Rejected`].
    pub rejected: usize,
    /// [`ItemOutcome::NotApplied`].
    pub not_applied: usize,
    /// [`ItemOutcome::NotAttempted`].
    pub not_attempted: usize,
    /// [`ItemOutcome::Unknown`].
    pub unknown: usize,
}

impl BatchCounts {
    /// All items counted.
    pub fn total(&self) -> usize {
        self.succeeded + self.rejected + self.not_applied + self.not_attempted + self.unknown
    }
}

/// `51 items: 50 succeeded, 1 unknown` (categories with no items are left out).
impl fmt::Display for BatchCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        write!(f, "{total} item{}", if total == 1 { "" } else { "s" })?;
        let parts = [
            (self.succeeded, "succeeded"),
            (self.rejected, "rejected"),
            (self.not_applied, "not applied"),
            (self.not_attempted, "not attempted"),
            (self.unknown, "unknown"),
        ];
        let mut first = true;
        for (count, label) in parts.into_iter().filter(|(count, _)| *count > 0) {
            f.write_str(if first { ": " } else { ", " })?;
            write!(f, "{count} {label}")?;
            first = false;
        }
        Ok(())
    }
}

/// What a batch call did with every input item: one [`ItemOutcome`] per item, in input order,
/// and the error that stopped the batch, if any.
///
/// Displays as its [`BatchCounts`], followed by the stopping error:
/// `101 items: 50 succeeded, 1 not attempted, 50 unknown; stopped: the request for items
/// 50..100 failed: ...`.
#[must_use = "a batch can partly fail: check the report"]
#[derive(Debug)]
pub struct BatchReport<R> {
    outcomes: Vec<ItemOutcome<R>>,
    errors: Vec<BatchError>,
}

impl<R> BatchReport<R> {
    fn refused(len: usize, error: BatchError) -> Self {
        Self {
            outcomes: std::iter::repeat_with(|| ItemOutcome::NotAttempted)
                .take(len)
                .collect(),
            errors: vec![error],
        }
    }

    /// One outcome per input item, by input index.
    pub fn outcomes(&self) -> &[ItemOutcome<R>] {
        &self.outcomes
    }

    /// The outcomes, by input index.
    pub fn into_outcomes(self) -> Vec<ItemOutcome<R>> {
        self.outcomes
    }

    /// How many input items the report covers.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// True for a batch of no items.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// True when every item succeeded and nothing stopped the batch (an empty batch with valid
    /// options is complete).
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
            && self
                .outcomes
                .iter()
                .all(|o| matches!(o, ItemOutcome::Succeeded(_)))
    }

    /// The items that succeeded: input index and the server's item.
    pub fn succeeded(&self) -> impl Iterator<Item = (usize, &R)> {
        self.outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.succeeded().map(|r| (i, r)))
    }

    /// The items the server rejected: input index and their validation errors.
    pub fn rejected(&self) -> impl Iterator<Item = (usize, &[types::ValidationError])> {
        self.outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                ItemOutcome::Rejected(errors) => Some((i, errors.as_slice())),
                _ => None,
            })
    }

    /// The input indices of the items safe to resend as they are: not applied and not attempted.
    pub fn to_resend(&self) -> Vec<usize> {
        self.indices(ItemOutcome::is_safe_to_resend)
    }

    /// The input indices of the items that may or may not have been applied: check them before
    /// sending them again.
    pub fn unknown(&self) -> Vec<usize> {
        self.indices(|o| matches!(o, ItemOutcome::Unknown))
    }

    fn indices(&self, keep: impl Fn(&ItemOutcome<R>) -> bool) -> Vec<usize> {
        self.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| keep(o))
            .map(|(i, _)| i)
            .collect()
    }

    /// What stopped the batch, or refused it before anything was sent. `None` when every chunk
    /// was answered (items may still be rejected or unknown: see [`BatchReport::is_complete`]).
    /// With concurrency, several in-flight requests can fail: this is the first in input order.
    pub fn error(&self) -> Option<&BatchError> {
        self.errors.first()
    }

    /// Every error that stopped the batch, in input order: more than one only when requests
    /// in flight at the same time failed.
    pub fn errors(&self) -> &[BatchError] {
        &self.errors
    }

    /// How many items ended in each outcome.
    pub fn counts(&self) -> BatchCounts {
        let mut counts = BatchCounts::default();
        for outcome in &self.outcomes {
            match outcome {
                ItemOutcome::Succeeded(_) => counts.succeeded += 1,
                ItemOutcome::Rejected(_) => counts.rejected += 1,
                ItemOutcome::NotApplied => counts.not_applied += 1,
                ItemOutcome::NotAttempted => counts.not_attempted += 1,
                ItemOutcome::Unknown => counts.unknown += 1,
            }
        }
        counts
    }
}

impl<R> fmt::Display for BatchReport<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.counts())?;
        if let Some(error) = self.error() {
            write!(f, "; stopped: {error}")?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------- operations

/// An item of a batch call: what the server names it by.
trait BatchItem: Clone {
    /// The item's own `request_id`, which the server uses instead of the index when present.
    fn own_request_id(&self) -> Option<&str> {
        None
    }

    /// The key a success answer names the item by; `request_key` is the key validation errors
    /// name it by (its own `request_id`, or its index in the request), and by default the same.
    fn answer_key(&self, request_key: &str) -> String {
        request_key.to_string()
    }
}

/// Each created source carries the index of its item as `request_id`.
impl BatchItem for types::AddSource {}

/// Updated sources carry no `request_id`: they are matched by `id`.
impl BatchItem for types::UpdateSourcesItem {
    fn answer_key(&self, _request_key: &str) -> String {
        self.id.to_string()
    }
}

/// Deleted sources are answered with a 204: matched by `id`.
impl BatchItem for types::DeleteSourcesItem {
    fn answer_key(&self, _request_key: &str) -> String {
        self.id.to_string()
    }
}

/// The created incoming leads carry the `request_id` of their item (its own, or its index).
impl BatchItem for types::AddIncomingCall {
    fn own_request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

impl BatchItem for types::AddIncomingForm {
    fn own_request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

/// Each added lead lists the `request_id`s of the items it answers (its own, or its index).
impl BatchItem for types::ComplexLead {
    fn own_request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

/// One of the batch calls: how to send a chunk and key the answer by its items.
trait Operation: Sync {
    type Item: BatchItem + Send + Sync;
    type Output: Clone + Send;
    /// The most items one request takes.
    fn limit(&self) -> usize;
    /// Sends one chunk and returns the answered items with their keys.
    fn send(
        &self,
        client: &kommo::Client,
        items: Vec<Self::Item>,
    ) -> impl Future<Output = Result<Vec<(String, Self::Output)>, kommo::Error>> + Send;
}

/// Pairs each answered item with its key; an item without one matches nothing.
fn keyed<R>(items: Vec<R>, key: impl Fn(&R) -> Option<String>) -> Vec<(String, R)> {
    items
        .into_iter()
        .filter_map(|item| key(&item).map(|k| (k, item)))
        .collect()
}

/// Kommo's documents give no limit for the incoming-lead calls; its SDK documentation advises at
/// most 50 entities per call for every create call, so they take the same conservative limit.
const INCOMING_LEADS_LIMIT: usize = MAX_CHUNK_SIZE;

/// Kommo's reference for `POST /api/v4/leads/complex` ("Add complex leads"): "no more than 50
/// leads per request"; the specification's `maxItems`.
const COMPLEX_LEADS_LIMIT: usize = 50;

/// The batch calls, one row each: the method's docs and name, its [`Operation`] (item and
/// answer types, request limit, how one chunk is sent and its answer keyed). The rest, the
/// same for every call, is the engine's ([`run`]).
macro_rules! batch_calls {
    ($(
        $(#[$doc:meta])*
        $name:ident => $op:ident($item:ty) -> $output:ty, limit $limit:expr,
            send |$client:ident, $items:ident| $send:block
    )*) => {
        $(
            struct $op;

            impl Operation for $op {
                type Item = $item;
                type Output = $output;

                fn limit(&self) -> usize {
                    $limit
                }

                async fn send(
                    &self,
                    $client: &kommo::Client,
                    $items: Vec<$item>,
                ) -> Result<Vec<(String, $output)>, kommo::Error> $send
            }
        )*

        impl kommo::Client {
            $(
                $(#[$doc])*
                pub async fn $name<I>(&self, items: I, options: &BatchOptions) -> BatchReport<$output>
                where
                    I: IntoIterator,
                    I::Item: Borrow<$item>,
                {
                    run(&$op, self, items, options).await
                }
            )*
        }
    };
}

batch_calls! {
    /// Creates any number of sources (`addSources`), at most 50 per request, in input order.
    /// Succeeded items carry the created [`types::Source`]. See [the module](crate::batch).
    add_sources_batched => AddSources(types::AddSource) -> types::Source, limit MAX_CHUNK_SIZE,
        send |client, items| {
            let list = client.add_sources().body(items).send().body().await?;
            Ok(keyed(list.into_sources().into_vec(), |s| s.request_id.clone()))
        }

    /// Edits any number of sources (`updateSources`), at most 50 per request, in input order.
    /// Succeeded items carry the updated [`types::Source`], matched by `id`.
    update_sources_batched => UpdateSources(types::UpdateSourcesItem) -> types::Source,
        limit MAX_CHUNK_SIZE,
        send |client, items| {
            let list = client.update_sources().body(items).send().body().await?;
            Ok(keyed(list.into_sources().into_vec(), |s| Some(s.id.to_string())))
        }

    /// Deletes any number of sources (`deleteSources`), at most 50 per request, in input order.
    /// Succeeded items carry the deleted source's ID.
    delete_sources_batched => DeleteSources(types::DeleteSourcesItem) -> i64,
        limit MAX_CHUNK_SIZE,
        send |client, items| {
            let ids: Vec<i64> = items.iter().map(|item| item.id).collect();
            // 204 with no body: every item of the request was deleted.
            client.delete_sources().body(items).send().body().await?;
            Ok(ids.into_iter().map(|id| (id.to_string(), id)).collect())
        }

    /// Adds any number of incoming calls (`addIncomingCalls`), at most 50 per request, in input
    /// order. Items are matched by their own `request_id` when they have one (which must then
    /// be unique within a request), else by their index in the request.
    add_incoming_calls_batched => AddIncomingCalls(types::AddIncomingCall)
        -> types::CreatedIncomingLead, limit INCOMING_LEADS_LIMIT,
        send |client, items| {
            let list = client.add_incoming_calls().body(items).send().body().await?;
            Ok(keyed(list.into_incoming_leads().into_vec(), |l| l.request_id.clone()))
        }

    /// Adds any number of form submissions (`addIncomingForms`), at most 50 per request, in
    /// input order. Matched like [`kommo::Client::add_incoming_calls_batched`].
    add_incoming_forms_batched => AddIncomingForms(types::AddIncomingForm)
        -> types::CreatedIncomingLead, limit INCOMING_LEADS_LIMIT,
        send |client, items| {
            let list = client.add_incoming_forms().body(items).send().body().await?;
            Ok(keyed(list.into_incoming_leads().into_vec(), |l| l.request_id.clone()))
        }

    /// Adds any number of leads with their contact, company and source (`addComplexLeads`), at
    /// most 50 per request (Kommo's limit for this call), in input order. Items are matched like
    /// [`kommo::Client::add_incoming_calls_batched`]; a lead that answers several items (duplicates
    /// merged into one) is the outcome of each of them.
    ///
    /// ```no_run
    /// use lead_intake::batch::BatchOptions;
    /// use lead_intake::kommo::types::{ComplexContact, ComplexLead, LeadSource};
    /// # async fn f(kommo: lead_intake::kommo::Client) {
    /// let leads: Vec<ComplexLead> = (0..120)
    ///     .map(|i| {
    ///         ComplexLead::new()
    ///             .with_name(format!("Chat lead {i}"))
    ///             .with_contact(ComplexContact::new().with_name(format!("Visitor {i}")))
    ///             .with_source(LeadSource::widget("site-chat"))
    ///     })
    ///     .collect();
    /// let report = kommo.add_complex_leads_batched(&leads, &BatchOptions::new()).await;
    /// for (index, lead) in report.succeeded() {
    ///     println!("{index}: lead {} (contact {:?})", lead.id, lead.contact_id);
    /// }
    /// # }
    /// ```
    add_complex_leads_batched => AddComplexLeads(types::ComplexLead)
        -> types::CreatedComplexLead, limit COMPLEX_LEADS_LIMIT,
        send |client, items| {
            let created = client.add_complex_leads().body(items).send().body().await?;
            Ok(created
                .0
                .into_iter()
                .flat_map(|lead| {
                    let keys = lead.request_id.clone();
                    keys.into_iter().map(move |key| (key, lead.clone()))
                })
                .collect())
        }
}

// ------------------------------------------------------------------- any endpoint (raw calls)

/// The most items [`kommo::Client::request_batched`] sends in one request: Kommo's limit for
/// its entity lists (250). Kommo advises at most 50 per create call, the default chunk size.
pub const MAX_RAW_CHUNK_SIZE: usize = 250;

/// An item of a raw batch is matched by its own `request_id` when it has one (a string).
impl BatchItem for serde_json::Value {
    fn own_request_id(&self) -> Option<&str> {
        self.get("request_id").and_then(serde_json::Value::as_str)
    }
}

/// A create or update call of any endpoint through a raw call: the items as a JSON list, the
/// answer's `_embedded.<key>` matched to them by `request_id`.
struct RawOperation {
    method: reqwest::Method,
    path: String,
    key: String,
}

impl Operation for RawOperation {
    type Item = serde_json::Value;
    type Output = serde_json::Value;

    fn limit(&self) -> usize {
        MAX_RAW_CHUNK_SIZE
    }

    async fn send(
        &self,
        client: &kommo::Client,
        items: Vec<serde_json::Value>,
    ) -> Result<Vec<(String, serde_json::Value)>, kommo::Error> {
        let mut answer: serde_json::Value = client
            .request(self.method.clone(), &self.path)
            .json(&items)
            .or_empty()
            .await?;
        let listed = match answer
            .get_mut("_embedded")
            .and_then(|e| e.get_mut(&self.key))
            .map(serde_json::Value::take)
        {
            Some(serde_json::Value::Array(listed)) => listed,
            _ => Vec::new(),
        };
        Ok(keyed(listed, |item| match item.get("request_id") {
            Some(serde_json::Value::String(id)) => Some(id.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }))
    }
}

impl kommo::Client {
    /// A batch of any create or update endpoint that answers per item (`POST /api/v4/leads`,
    /// `POST /api/v4/contacts`, ...) through raw calls ([`kommo::Client::request`]), in chunks of
    /// at most [`MAX_RAW_CHUNK_SIZE`], with the typed batch calls' outcomes ([the
    /// module](crate::batch)). How its items are matched to the answer's: the guide of
    /// [`crate::raw`].
    ///
    /// ```no_run
    /// use lead_intake::prelude::*;
    /// use reqwest::Method;
    /// # async fn f(kommo: lead_intake::kommo::Client) {
    /// let leads: Vec<serde_json::Value> = (0..120)
    ///     .map(|i| serde_json::json!({ "name": format!("Lead {i}"), "price": 100 }))
    ///     .collect();
    /// let report = kommo
    ///     .request_batched(Method::POST, "/api/v4/leads", "leads", &leads, &BatchOptions::new())
    ///     .await;
    /// for (i, created) in report.succeeded() {
    ///     println!("{i}: lead {}", created["id"]);
    /// }
    /// # }
    /// ```
    pub async fn request_batched<I>(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        items: I,
        options: &BatchOptions,
    ) -> BatchReport<serde_json::Value>
    where
        I: IntoIterator,
        I::Item: Borrow<serde_json::Value>,
    {
        let op = RawOperation {
            method,
            path: path.to_string(),
            key: key.to_string(),
        };
        run(&op, self, items, options).await
    }
}

// ------------------------------------------------------------------------------------ engine

/// One request of a batch, planned before anything is sent.
struct Chunk<T> {
    /// The input index of its first item.
    start: usize,
    /// One past the input index of its last item (a resent rest may leave gaps between).
    end: usize,
    items: Vec<T>,
    /// What validation errors name each item by.
    request_keys: Vec<String>,
    /// What a success answer names each item by.
    answer_keys: Vec<String>,
}

impl<T: BatchItem> Chunk<T> {
    fn new(start: usize, capacity: usize) -> Self {
        Self {
            start,
            end: start,
            items: Vec::with_capacity(capacity),
            request_keys: Vec::with_capacity(capacity),
            answer_keys: Vec::with_capacity(capacity),
        }
    }

    /// Adds the item of input index `index`, named by its own `request_id` or else by its
    /// position in the request; returns that name.
    fn push(&mut self, index: usize, item: T) -> &str {
        let key = item
            .own_request_id()
            .map_or_else(|| self.items.len().to_string(), str::to_string);
        self.answer_keys.push(item.answer_key(&key));
        self.items.push(item);
        self.end = index + 1;
        self.request_keys.push(key);
        self.request_keys.last().map_or("", String::as_str)
    }
}

struct ChunkResult<R> {
    outcomes: Vec<ItemOutcome<R>>,
    error: Option<BatchError>,
}

async fn run<O: Operation, I>(
    op: &O,
    client: &kommo::Client,
    items: I,
    options: &BatchOptions,
) -> BatchReport<O::Output>
where
    I: IntoIterator,
    I::Item: Borrow<O::Item>,
{
    // The caller's items are cloned, never modified.
    let items: Vec<O::Item> = items.into_iter().map(|i| i.borrow().clone()).collect();
    let len = items.len();
    if let Err(error) = options.check(op.limit()) {
        return BatchReport::refused(len, *error);
    }
    let chunks = match plan(items, options.chunk_size) {
        Ok(chunks) => chunks,
        Err(error) => return BatchReport::refused(len, *error),
    };
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let max_sends = options.max_sends;
    let results: Vec<ChunkResult<O::Output>> = stream::iter(chunks)
        .map(|chunk| send_chunk(op, client, chunk, stop, max_sends))
        .buffered(options.concurrency)
        .collect()
        .await;
    let mut report = BatchReport {
        outcomes: Vec::with_capacity(len),
        errors: Vec::new(),
    };
    for result in results {
        report.outcomes.extend(result.outcomes);
        report.errors.extend(result.error);
    }
    report
}

/// Splits the items into chunks and computes their keys; refuses two items of one chunk with
/// the same `request_id`.
fn plan<T: BatchItem>(items: Vec<T>, chunk_size: usize) -> Result<Vec<Chunk<T>>, Box<BatchError>> {
    let mut chunks = Vec::with_capacity(items.len().div_ceil(chunk_size));
    let mut items = items.into_iter().enumerate().peekable();
    while let Some(&(start, _)) = items.peek() {
        let mut chunk = Chunk::new(start, chunk_size);
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, item) in items.by_ref().take(chunk_size) {
            match seen.entry(chunk.push(index, item).to_string()) {
                Entry::Occupied(first) => {
                    return Err(Box::new(BatchError::DuplicateRequestId {
                        request_id: first.key().clone(),
                        first: *first.get(),
                        second: index,
                    }));
                }
                Entry::Vacant(slot) => {
                    slot.insert(index);
                }
            }
        }
        chunks.push(chunk);
    }
    Ok(chunks)
}

/// Sends a chunk, then, while its answer rejects some items and proves the others unapplied,
/// the rest again without the rejected ones (at most `max_sends` sends of an item in all).
async fn send_chunk<O: Operation>(
    op: &O,
    client: &kommo::Client,
    chunk: Chunk<O::Item>,
    stop: &AtomicBool,
    max_sends: u32,
) -> ChunkResult<O::Output> {
    if max_sends <= 1 {
        return send_once(op, client, chunk, stop).await;
    }
    let start = chunk.start;
    let items = chunk.items.clone();
    let mut result = send_once(op, client, chunk, stop).await;
    // Positions in the chunk of the items the last request carried.
    let mut sent: Vec<usize> = (0..items.len()).collect();
    for _ in 1..max_sends {
        let refused_for_others = result.error.is_none()
            && sent
                .iter()
                .any(|&p| matches!(result.outcomes[p], ItemOutcome::Rejected(_)));
        let rest: Vec<usize> = sent
            .iter()
            .copied()
            .filter(|&p| matches!(result.outcomes[p], ItemOutcome::NotApplied))
            .collect();
        if !refused_for_others || rest.is_empty() {
            break;
        }
        // The same keys `plan` gives: the item's own `request_id`, or its new position.
        let mut again = Chunk::new(start + rest[0], rest.len());
        for &p in &rest {
            again.push(start + p, items[p].clone());
        }
        tracing::debug!(
            resent = rest.len(),
            first = start + rest[0],
            "batch chunk refused for other items; sending the valid rest again"
        );
        let answer = send_once(op, client, again, stop).await;
        for (outcome, &p) in answer.outcomes.into_iter().zip(&rest) {
            result.outcomes[p] = outcome;
        }
        result.error = answer.error;
        sent = rest;
    }
    result
}

async fn send_once<O: Operation>(
    op: &O,
    client: &kommo::Client,
    chunk: Chunk<O::Item>,
    stop: &AtomicBool,
) -> ChunkResult<O::Output> {
    let len = chunk.items.len();
    let uniform = |outcome: fn() -> ItemOutcome<O::Output>| -> Vec<ItemOutcome<O::Output>> {
        std::iter::repeat_with(outcome).take(len).collect()
    };
    let items = chunk.start..chunk.end;
    // Checked when the chunk starts: after a stopping failure, no new request is sent.
    if stop.load(Ordering::SeqCst) {
        tracing::debug!(
            ?items,
            "batch chunk not sent: an earlier failure stopped the batch"
        );
        return ChunkResult {
            outcomes: uniform(|| ItemOutcome::NotAttempted),
            error: None,
        };
    }
    match op.send(client, chunk.items).await {
        Ok(answered) => {
            let mut by_key = HashMap::with_capacity(answered.len());
            for (key, item) in answered {
                by_key.entry(key).or_insert(item);
            }
            let outcomes = chunk
                .answer_keys
                .iter()
                .map(|key| match by_key.get(key) {
                    Some(item) => ItemOutcome::Succeeded(item.clone()),
                    // A success answer that does not mention the item.
                    None => ItemOutcome::Unknown,
                })
                .collect::<Vec<_>>();
            let unknown = outcomes
                .iter()
                .filter(|o| matches!(o, ItemOutcome::Unknown))
                .count();
            tracing::debug!(
                ?items,
                succeeded = len - unknown,
                unknown,
                "batch chunk answered"
            );
            ChunkResult {
                outcomes,
                error: None,
            }
        }
        Err(error) => match rejections(&error, &chunk.request_keys) {
            Some(rejected) => {
                tracing::debug!(
                    ?items,
                    rejected = rejected.iter().filter(|r| r.is_some()).count(),
                    "batch chunk refused with validation errors; the later chunks are still sent"
                );
                ChunkResult {
                    outcomes: rejected
                        .into_iter()
                        .map(|errors| errors.map_or(ItemOutcome::NotApplied, ItemOutcome::Rejected))
                        .collect(),
                    error: None,
                }
            }
            None => {
                tracing::warn!(
                    ?items,
                    error = %error,
                    "batch chunk failed; the batch stops"
                );
                stop.store(true, Ordering::SeqCst);
                let outcomes = if certainly_not_applied(&error) {
                    uniform(|| ItemOutcome::NotApplied)
                } else {
                    uniform(|| ItemOutcome::Unknown)
                };
                ChunkResult {
                    outcomes,
                    error: Some(BatchError::Request {
                        items: chunk.start..chunk.end,
                        source: Box::new(error),
                    }),
                }
            }
        },
    }
}

/// For a 400 whose `validation-errors` name only items of this request: each item's errors
/// (`None` for the items it does not name). `None` for any other error, including a 400 naming
/// a `request_id` the request did not carry: the answer cannot be trusted to be about it.
fn rejections(
    error: &kommo::Error,
    request_keys: &[String],
) -> Option<Vec<Option<Vec<types::ValidationError>>>> {
    if error.status() != Some(StatusCode::BAD_REQUEST) {
        return None;
    }
    let groups = &error.problem()?.validation_errors;
    if groups.is_empty() {
        return None;
    }
    let mut out: Vec<Option<Vec<types::ValidationError>>> = vec![None; request_keys.len()];
    for group in groups {
        let id = group.request_id.as_deref()?;
        let position = request_keys.iter().position(|key| key == id)?;
        out[position]
            .get_or_insert_with(Vec::new)
            .extend(group.errors.iter().cloned());
    }
    Some(out)
}

/// True when the failure certainly left the request unapplied (see
/// [`ApiError::certainly_not_applied`]: a 4xx, a refused connection, an OAuth failure, a
/// request refused before sending). Anything else may have been applied.
fn certainly_not_applied(error: &kommo::Error) -> bool {
    error.certainly_not_applied()
}
