//! An integration's lead sources as desired state: [`kommo::Client::sync_sources`], safe for any
//! number of workers at once; the guide below.
//!
#![doc = include_str!("guides/sync.md")]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::batch::{BatchOptions, ItemOutcome};
use crate::error::ResponseExt;
use crate::kommo::{
    self,
    types::{AddSource, DeleteSourcesItem, Source, SourceService, UpdateSourcesItem},
};

/// The most sources one integration may own (Kommo's sources page; a newer reference page says
/// 100, so [`SyncOptions::with_max_sources`] can raise it).
pub const MAX_SOURCES: usize = 50;

/// How [`kommo::Client::sync_sources`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    delete_undesired: bool,
    max_sources: usize,
    batch: BatchOptions,
    managing_prefix: Option<String>,
    managing: Option<Managing>,
    pipeline_check: bool,
}

/// The predicate of [`SyncOptions::managing`]. Two are equal when they are the same closure
/// (one `Arc`).
#[derive(Clone)]
struct Managing(Arc<dyn Fn(&Source) -> bool + Send + Sync>);

impl fmt::Debug for Managing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Managing(<predicate>)")
    }
}

impl PartialEq for Managing {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Managing {}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            delete_undesired: false,
            max_sources: MAX_SOURCES,
            batch: BatchOptions::default(),
            managing_prefix: None,
            managing: None,
            pipeline_check: false,
        }
    }
}

impl SyncOptions {
    /// The defaults: sources that are not desired are left alone; at most [`MAX_SOURCES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Delete the integration's sources whose `external_id` is not among the desired ones
    /// (default: leave them). Only the sources the sync manages are deleted: all of the
    /// integration's by default, or those [`SyncOptions::managing_prefix`] and
    /// [`SyncOptions::managing`] select; the others are reported as
    /// [`SourceSync::LeftAlone`].
    #[must_use]
    pub fn with_delete_undesired(mut self, delete: bool) -> Self {
        self.delete_undesired = delete;
        self
    }

    /// Manage only the sources whose `external_id` starts with `prefix` (say `"cb-"` for the
    /// sources mirrored from CloseBot): an undesired source without it (or without an
    /// `external_id`) is never deleted. Desired sources are synced whatever their prefix.
    ///
    /// ```
    /// use lead_intake::sync::SyncOptions;
    /// let options = SyncOptions::new().with_delete_undesired(true).managing_prefix("cb-");
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn managing_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.managing_prefix = Some(prefix.into());
        self
    }

    /// Manage only the sources `predicate` accepts: an undesired source it refuses is never
    /// deleted. With [`SyncOptions::managing_prefix`] too, a source is managed when both accept
    /// it. Desired sources are synced whatever the predicate says.
    ///
    /// ```
    /// use lead_intake::sync::SyncOptions;
    /// // Ours are the sources of pipeline 6950551.
    /// let options = SyncOptions::new()
    ///     .with_delete_undesired(true)
    ///     .managing(|source| source.pipeline_id == Some(6950551));
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn managing(mut self, predicate: impl Fn(&Source) -> bool + Send + Sync + 'static) -> Self {
        self.managing = Some(Managing(Arc::new(predicate)));
        self
    }

    /// Whether the sync manages `source` ([`SyncOptions::managing_prefix`],
    /// [`SyncOptions::managing`]; every source when neither is set).
    pub fn manages(&self, source: &Source) -> bool {
        let prefix_ok = self.managing_prefix.as_deref().is_none_or(|prefix| {
            source
                .external_id
                .as_ref()
                .is_some_and(|e| e.as_str().starts_with(prefix))
        });
        prefix_ok && self.managing.as_ref().is_none_or(|m| (m.0)(source))
    }

    /// The most sources the integration may own after the sync (default [`MAX_SOURCES`]).
    #[must_use]
    pub fn with_max_sources(mut self, max: usize) -> Self {
        self.max_sources = max;
        self
    }

    /// How the add, update and delete batches are sent.
    #[must_use]
    pub fn with_batch(mut self, batch: BatchOptions) -> Self {
        self.batch = batch;
        self
    }

    /// Check every desired source's `pipeline_id` against the account's pipelines
    /// (`GET /api/v4/leads/pipelines`, one more request) before sending anything (default: no
    /// check). A source whose pipeline the account does not have is not sent; its report entry
    /// is [`SourceSync::UnknownPipeline`], and the other sources are synced as usual.
    ///
    /// ```
    /// use lead_intake::sync::SyncOptions;
    /// let options = SyncOptions::new().with_pipeline_check(true);
    /// assert!(options.pipeline_check());
    /// assert!(!SyncOptions::new().pipeline_check());
    /// ```
    #[must_use]
    pub fn with_pipeline_check(mut self, check: bool) -> Self {
        self.pipeline_check = check;
        self
    }

    /// Whether desired sources' pipelines are checked before sending
    /// ([`with_pipeline_check`](Self::with_pipeline_check)).
    pub fn pipeline_check(&self) -> bool {
        self.pipeline_check
    }
}

/// What a sync did with one source.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceSync {
    /// It was missing and was created.
    Created(Source),
    /// It existed with other values and was updated.
    Updated(Source),
    /// It existed as desired: nothing was sent for it.
    Unchanged(Source),
    /// It was missing when listed, and another worker (or a person) created it meanwhile: Kommo
    /// refused our add as a duplicate (`NotUnique`), so the sync read it again and updated it
    /// if it differed. It is as desired now: the source as it is.
    AlreadyExisted(Source),
    /// It was the integration's and not desired, but not one the sync manages
    /// ([`SyncOptions::managing_prefix`], [`SyncOptions::managing`]): left as it is.
    LeftAlone(Source),
    /// It was the integration's, not desired, and is deleted (its ID): by this sync, or by
    /// another worker syncing at the same time (Kommo answered `NotFound` to our delete).
    Deleted(i64),
    /// Its add, update or delete did not succeed: the batch's outcome for it.
    Failed(ItemOutcome<Source>),
    /// Its deletion did not succeed: the batch's outcome for it.
    DeleteFailed(ItemOutcome<i64>),
    /// Not sent: its `pipeline_id` is not one of the account's pipelines
    /// ([`SyncOptions::with_pipeline_check`]).
    UnknownPipeline {
        /// The `pipeline_id` the desired source asked for.
        pipeline_id: i64,
    },
}

/// One source of a sync and what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncedSource {
    external_id: String,
    outcome: SourceSync,
}

impl SyncedSource {
    /// The source's `external_id`.
    pub fn external_id(&self) -> &str {
        &self.external_id
    }

    /// What happened to it.
    pub fn outcome(&self) -> &SourceSync {
        &self.outcome
    }
}

/// What [`kommo::Client::sync_sources`] did: one entry per desired source, in their order,
/// then one per deleted (or not deleted) undesired source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncReport {
    sources: Vec<SyncedSource>,
}

impl SyncReport {
    /// Every source's outcome.
    pub fn sources(&self) -> &[SyncedSource] {
        &self.sources
    }

    /// Whether every source is as desired now.
    pub fn is_complete(&self) -> bool {
        self.sources.iter().all(|s| {
            !matches!(
                s.outcome,
                SourceSync::Failed(_)
                    | SourceSync::DeleteFailed(_)
                    | SourceSync::UnknownPipeline { .. }
            )
        })
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count =
            |p: fn(&SourceSync) -> bool| self.sources.iter().filter(|s| p(&s.outcome)).count();
        write!(
            f,
            "{} created, {} updated, {} unchanged, {} deleted, {} failed",
            count(|o| matches!(o, SourceSync::Created(_))),
            count(|o| matches!(o, SourceSync::Updated(_))),
            count(|o| matches!(o, SourceSync::Unchanged(_))),
            count(|o| matches!(o, SourceSync::Deleted(_))),
            count(|o| matches!(
                o,
                SourceSync::Failed(_)
                    | SourceSync::DeleteFailed(_)
                    | SourceSync::UnknownPipeline { .. }
            )),
        )?;
        let existed = count(|o| matches!(o, SourceSync::AlreadyExisted(_)));
        if existed > 0 {
            write!(f, ", {existed} already existed (created by another worker)")?;
        }
        let left = count(|o| matches!(o, SourceSync::LeftAlone(_)));
        if left > 0 {
            write!(f, ", {left} left alone (not managed)")?;
        }
        Ok(())
    }
}

/// Why a sync sent nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Two desired sources share an `external_id`.
    #[error("desired sources {first} and {second} share the external_id {external_id:?}")]
    DuplicateExternalId {
        /// The shared `external_id`.
        external_id: String,
        /// The index of the first.
        first: usize,
        /// The index of the second.
        second: usize,
    },
    /// The integration would own more sources than it may.
    #[error(
        "the sync would leave the integration {count} sources, over the limit of {max}; nothing was sent"
    )]
    OverLimit {
        /// How many it would own.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The sources could not be listed.
    #[error("cannot list the sources: {0}")]
    List(#[source] Box<kommo::Error>),
    /// The pipelines could not be listed ([`SyncOptions::with_pipeline_check`]); nothing was
    /// sent.
    #[error("cannot list the pipelines: {0}")]
    Pipelines(#[source] Box<kommo::Error>),
}

/// The services as compared: a service's empty settings (`params` absent, null or PHP's `[]`)
/// are no settings.
fn services_key(services: &[SourceService]) -> Value {
    let mut value = serde_json::to_value(services).unwrap_or(Value::Null);
    if let Value::Array(list) = &mut value {
        for service in list.iter_mut().filter_map(Value::as_object_mut) {
            let empty = match service.get("params") {
                None | Some(Value::Null) => true,
                Some(Value::Object(p)) => p.values().all(Value::is_null),
                _ => false,
            };
            if empty {
                service.remove("params");
            }
            if service
                .get("pages")
                .is_some_and(|p| p.as_array().is_some_and(Vec::is_empty))
            {
                service.remove("pages");
            }
        }
    }
    value
}

/// The update that makes `existing` as `desired`, if anything differs. Fields the desired
/// source leaves unset are not compared.
fn update_for(desired: &AddSource, existing: &Source) -> Option<UpdateSourcesItem> {
    let mut update = UpdateSourcesItem::new(existing.id);
    let mut changed = false;
    if existing.name.as_deref() != Some(desired.name.as_str()) {
        update = update.with_name(desired.name.clone());
        changed = true;
    }
    if let Some(p) = desired.pipeline_id
        && existing.pipeline_id != Some(p)
    {
        update = update.with_pipeline_id(p);
        changed = true;
    }
    if let Some(d) = desired.default
        && existing.default != Some(d)
    {
        update = update.with_default(d);
        changed = true;
    }
    if let Some(code) = &desired.origin_code
        && existing.origin_code.as_ref() != Some(code)
    {
        update = update.with_origin_code(code.clone());
        changed = true;
    }
    if !desired.services.is_empty()
        && services_key(&desired.services)
            != services_key(existing.services.as_deref().unwrap_or_default())
    {
        update = update.with_services(desired.services.clone());
        changed = true;
    }
    changed.then_some(update)
}

impl kommo::Client {
    /// Makes the integration's sources what `desired` says, matched by `external_id`, safely
    /// when several workers sync at once; deletes only with
    /// [`SyncOptions::with_delete_undesired`], and only the sources it manages. What it compares,
    /// what it reports and how concurrent syncs settle: [the module's guide](crate::sync).
    ///
    /// ```no_run
    /// use lead_intake::kommo::types::AddSource;
    /// use lead_intake::sync::SyncOptions;
    /// # async fn f(kommo: lead_intake::kommo::Client) -> Result<(), lead_intake::sync::SyncError> {
    /// let desired = [
    ///     AddSource::new("Website chat", "site-chat"),
    ///     AddSource::new("Phone line", "phone").with_pipeline_id(6950551),
    /// ];
    /// let report = kommo.sync_sources(&desired, &SyncOptions::new()).await?;
    /// println!("{report}"); // "2 created, 0 updated, 0 unchanged, 0 deleted, 0 failed"
    /// # Ok(()) }
    /// ```
    pub async fn sync_sources(
        &self,
        desired: &[AddSource],
        options: &SyncOptions,
    ) -> Result<SyncReport, SyncError> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, source) in desired.iter().enumerate() {
            if let Some(&first) = seen.get(source.external_id.as_str()) {
                return Err(SyncError::DuplicateExternalId {
                    external_id: source.external_id.clone(),
                    first,
                    second: i,
                });
            }
            seen.insert(&source.external_id, i);
        }
        let pipelines: Option<HashSet<i64>> = if options.pipeline_check {
            let list = self
                .list_pipelines()
                .send()
                .body()
                .await
                .map_err(|e| SyncError::Pipelines(Box::new(e)))?;
            Some(list.pipelines().iter().map(|p| p.id).collect())
        } else {
            None
        };
        let existing = self
            .sources_now()
            .await
            .map_err(|e| SyncError::List(Box::new(e)))?;
        let by_external = by_external_id(&existing);

        let mut to_add = Vec::new();
        let mut to_update = Vec::new();
        let mut plan: Vec<(String, Plan)> = Vec::with_capacity(desired.len());
        for source in desired {
            if let (Some(known), Some(pipeline_id)) = (&pipelines, source.pipeline_id)
                && !known.contains(&pipeline_id)
            {
                plan.push((
                    source.external_id.clone(),
                    Plan::UnknownPipeline(pipeline_id),
                ));
                continue;
            }
            match by_external.get(&source.external_id) {
                None => {
                    plan.push((source.external_id.clone(), Plan::Add(to_add.len())));
                    to_add.push(source.clone());
                }
                Some(found) => match update_for(source, found) {
                    Some(update) => {
                        plan.push((source.external_id.clone(), Plan::Update(to_update.len())));
                        to_update.push(update);
                    }
                    None => plan.push((
                        source.external_id.clone(),
                        Plan::Unchanged(Box::new((*found).clone())),
                    )),
                },
            }
        }
        let (undesired, left_alone): (Vec<&Source>, Vec<&Source>) = existing
            .iter()
            .filter(|s| {
                s.external_id
                    .as_ref()
                    .is_none_or(|e| !seen.contains_key(e.as_str()))
            })
            .partition(|s| options.manages(s));
        let kept = existing.len()
            - if options.delete_undesired {
                undesired.len()
            } else {
                0
            };
        let count = kept + to_add.len();
        if count > options.max_sources {
            return Err(SyncError::OverLimit {
                count,
                max: options.max_sources,
            });
        }

        let added = if to_add.is_empty() {
            Vec::new()
        } else {
            self.add_sources_batched(&to_add, &options.batch)
                .await
                .into_outcomes()
        };
        let updated = if to_update.is_empty() {
            Vec::new()
        } else {
            self.update_sources_batched(&to_update, &options.batch)
                .await
                .into_outcomes()
        };
        // Adds another worker won: read again and reconcile (below).
        let raced = races(&added);
        let mut sources: Vec<SyncedSource> = plan
            .into_iter()
            .map(|(external_id, step)| {
                let outcome = match step {
                    Plan::Unchanged(source) => SourceSync::Unchanged(*source),
                    Plan::UnknownPipeline(pipeline_id) => {
                        SourceSync::UnknownPipeline { pipeline_id }
                    }
                    Plan::Add(i) => match added.get(i) {
                        Some(ItemOutcome::Succeeded(s)) => SourceSync::Created(s.clone()),
                        Some(other) => SourceSync::Failed(other.clone()),
                        None => SourceSync::Failed(ItemOutcome::NotAttempted),
                    },
                    Plan::Update(i) => match updated.get(i) {
                        Some(ItemOutcome::Succeeded(s)) => SourceSync::Updated(s.clone()),
                        Some(other) => SourceSync::Failed(other.clone()),
                        None => SourceSync::Failed(ItemOutcome::NotAttempted),
                    },
                };
                SyncedSource {
                    external_id,
                    outcome,
                }
            })
            .collect();
        if !raced.is_empty() {
            let slots: Vec<usize> = sources
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s.outcome, SourceSync::Failed(_)))
                .map(|(slot, _)| slot)
                .collect();
            // The slots of the adds that raced, in the order of `to_add`.
            let pending: Vec<(usize, &AddSource, ItemOutcome<Source>)> = to_add
                .iter()
                .enumerate()
                .filter(|(i, _)| raced.contains(i))
                .filter_map(|(i, source)| {
                    let slot = slots
                        .iter()
                        .copied()
                        .find(|&slot| sources[slot].external_id == source.external_id)?;
                    Some((slot, source, added[i].clone()))
                })
                .collect();
            for (slot, outcome) in self.settle_races(pending, options).await {
                sources[slot].outcome = outcome;
            }
        }
        if options.delete_undesired {
            for source in &left_alone {
                sources.push(SyncedSource {
                    external_id: source
                        .external_id
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    outcome: SourceSync::LeftAlone((*source).clone()),
                });
            }
        }
        if options.delete_undesired && !undesired.is_empty() {
            let items: Vec<DeleteSourcesItem> = undesired
                .iter()
                .map(|s| DeleteSourcesItem::new(s.id))
                .collect();
            let deleted = self
                .delete_sources_batched(&items, &options.batch)
                .await
                .into_outcomes();
            let deleted = self.settle_deletes(&items, deleted, options).await;
            for (source, outcome) in undesired.iter().zip(deleted) {
                sources.push(SyncedSource {
                    external_id: source
                        .external_id
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    outcome: match outcome {
                        ItemOutcome::Succeeded(id) => SourceSync::Deleted(id),
                        other => SourceSync::DeleteFailed(other),
                    },
                });
            }
        }
        Ok(SyncReport { sources })
    }
}

enum Plan {
    UnknownPipeline(i64),
    Add(usize),
    Update(usize),
    Unchanged(Box<Source>),
}

/// How many times a sync reads the sources again after adds another worker won.
const MAX_RACE_ROUNDS: usize = 3;

/// The sources by `external_id`.
fn by_external_id(sources: &[Source]) -> HashMap<String, &Source> {
    sources
        .iter()
        .filter_map(|s| s.external_id.as_ref().map(|e| (e.to_string(), s)))
        .collect()
}

/// Whether Kommo refused the add because a source with its `external_id` exists (another
/// worker, or a person, created it after our list): `NotUnique` on `external_id`.
fn is_duplicate(errors: &[crate::kommo::types::ValidationError]) -> bool {
    !errors.is_empty()
        && errors.iter().all(|e| {
            e.code.as_deref() == Some("NotUnique")
                && e.path
                    .as_deref()
                    .is_some_and(|p| p == "external_id" || p.ends_with(".external_id"))
        })
}

/// Whether Kommo refused a delete because the source is gone (another worker deleted it):
/// `NotFound` on `id`.
fn is_gone(errors: &[crate::kommo::types::ValidationError]) -> bool {
    !errors.is_empty()
        && errors.iter().all(|e| {
            e.code.as_deref() == Some("NotFound")
                && e.path
                    .as_deref()
                    .is_some_and(|p| p == "id" || p.ends_with(".id"))
        })
}

/// Counts the deletes refused because the source is gone as deleted; whether there were any.
fn gone_is_deleted(items: &[DeleteSourcesItem], outcomes: &mut [ItemOutcome<i64>]) -> bool {
    let mut any = false;
    for (outcome, item) in outcomes.iter_mut().zip(items) {
        if matches!(outcome, ItemOutcome::Rejected(e) if is_gone(e)) {
            *outcome = ItemOutcome::Succeeded(item.id);
            any = true;
        }
    }
    any
}

/// The indices of the adds to settle by reading again: those refused as duplicates and, when
/// there are any, those refused only because they were in a request with one (safe to resend).
fn races(added: &[ItemOutcome<Source>]) -> Vec<usize> {
    let duplicates = added
        .iter()
        .any(|o| matches!(o, ItemOutcome::Rejected(e) if is_duplicate(e)));
    if !duplicates {
        return Vec::new();
    }
    added
        .iter()
        .enumerate()
        .filter(|(_, o)| match o {
            ItemOutcome::Rejected(e) => is_duplicate(e),
            ItemOutcome::NotApplied => true,
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

impl kommo::Client {
    /// Settles the deletes another worker made first: a delete Kommo refuses because the source
    /// is gone (`NotFound` on `id`) reached what was wanted, so it counts as deleted; the items
    /// refused only for being in a request with one are sent again (at most
    /// [`MAX_RACE_ROUNDS`] times).
    async fn settle_deletes(
        &self,
        items: &[DeleteSourcesItem],
        mut outcomes: Vec<ItemOutcome<i64>>,
        options: &SyncOptions,
    ) -> Vec<ItemOutcome<i64>> {
        for _ in 0..MAX_RACE_ROUNDS {
            let any_gone = gone_is_deleted(items, &mut outcomes);
            let resend: Vec<usize> = outcomes
                .iter()
                .enumerate()
                .filter(|(_, o)| matches!(o, ItemOutcome::NotApplied))
                .map(|(i, _)| i)
                .collect();
            if !any_gone || resend.is_empty() {
                break;
            }
            let again: Vec<DeleteSourcesItem> = resend.iter().map(|&i| items[i].clone()).collect();
            let answers = self
                .delete_sources_batched(&again, &options.batch)
                .await
                .into_outcomes();
            for (k, &i) in resend.iter().enumerate() {
                outcomes[i] = answers.get(k).cloned().unwrap_or(ItemOutcome::NotAttempted);
            }
        }
        gone_is_deleted(items, &mut outcomes);
        outcomes
    }

    /// Every source of the integration (an empty list answers 204).
    async fn sources_now(&self) -> Result<Vec<Source>, kommo::Error> {
        Ok(self
            .list_sources()
            .send()
            .or_empty()
            .await?
            .into_sources()
            .into_vec())
    }

    /// Settles the adds another worker won: reads the sources again; one that exists now is
    /// reconciled (updated if it differs) and reported [`SourceSync::AlreadyExisted`]; one
    /// still missing is added again. At most [`MAX_RACE_ROUNDS`] rounds; what is still
    /// unsettled then keeps its last outcome as [`SourceSync::Failed`].
    async fn settle_races(
        &self,
        mut pending: Vec<(usize, &AddSource, ItemOutcome<Source>)>,
        options: &SyncOptions,
    ) -> Vec<(usize, SourceSync)> {
        let mut settled = Vec::with_capacity(pending.len());
        for _ in 0..MAX_RACE_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let Ok(now) = self.sources_now().await else {
                break;
            };
            let by_external = by_external_id(&now);
            let mut to_update = Vec::new();
            let mut updating = Vec::new();
            let mut to_add = Vec::new();
            let mut adding = Vec::new();
            for (slot, desired, last) in pending.drain(..) {
                match by_external.get(&desired.external_id) {
                    Some(found) => match update_for(desired, found) {
                        Some(update) => {
                            to_update.push(update);
                            updating.push(slot);
                        }
                        None => settled.push((slot, SourceSync::AlreadyExisted((*found).clone()))),
                    },
                    None => {
                        to_add.push(desired.clone());
                        adding.push((slot, desired, last));
                    }
                }
            }
            if !to_update.is_empty() {
                let updated = self
                    .update_sources_batched(&to_update, &options.batch)
                    .await
                    .into_outcomes();
                for (i, slot) in updating.into_iter().enumerate() {
                    settled.push((
                        slot,
                        match updated.get(i) {
                            Some(ItemOutcome::Succeeded(s)) => {
                                SourceSync::AlreadyExisted(s.clone())
                            }
                            Some(other) => SourceSync::Failed(other.clone()),
                            None => SourceSync::Failed(ItemOutcome::NotAttempted),
                        },
                    ));
                }
            }
            if !to_add.is_empty() {
                let added = self
                    .add_sources_batched(&to_add, &options.batch)
                    .await
                    .into_outcomes();
                let again = races(&added);
                for (i, (slot, desired, _)) in adding.into_iter().enumerate() {
                    let outcome = added.get(i).cloned().unwrap_or(ItemOutcome::NotAttempted);
                    match outcome {
                        ItemOutcome::Succeeded(s) => settled.push((slot, SourceSync::Created(s))),
                        other if again.contains(&i) => pending.push((slot, desired, other)),
                        other => settled.push((slot, SourceSync::Failed(other))),
                    }
                }
            }
        }
        settled.extend(
            pending
                .into_iter()
                .map(|(slot, _, last)| (slot, SourceSync::Failed(last))),
        );
        settled
    }
}
