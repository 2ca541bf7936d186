//! Kommo's state and operations: sources, widgets, bots and incoming leads, with the documented
//! rules.

use std::collections::{BTreeMap, HashMap, HashSet};

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::reply::{FieldError, Reply, kommo_problem, kommo_validation};
use super::spec::{Api, Specs};
use super::{Config, ContinuedBot, Ctx, FakeError, unix_now};

/// Kommo's default page size.
const DEFAULT_LIMIT: u64 = 50;
/// The longest `origin_code` Kommo accepts.
const ORIGIN_CODE_MAX: usize = 20;
/// The first source id (the documents' example), then every fourth.
const FIRST_SOURCE_ID: i64 = 17_619_939;
/// Mixed into the seed for the generated IDs: their own stream, so they never shift the faults.
const ID_SEED_MIX: u64 = 0x6b6f_6d6d_6f5f_6964;
/// The first id of a created contact, company or lead.
const FIRST_ENTITY_ID: i64 = 600_000;
/// The first status id of the first pipeline (the documents' example); each pipeline's
/// statuses follow, 8 apart.
const FIRST_STATUS_ID: i64 = 58_141_803;
/// Kommo's system statuses, the same ID in every pipeline.
const WON_STATUS_ID: i64 = 142;
const LOST_STATUS_ID: i64 = 143;
/// The fields of a lead added with `addComplexLeads`, as the state shows them.
const COMPLEX_LEAD_KEYS: [&str; 9] = [
    "id",
    "name",
    "price",
    "pipeline_id",
    "status_id",
    "contact_id",
    "company_id",
    "source_external_id",
    "created_at",
];

pub(crate) struct Kommo {
    account_id: i64,
    pipelines: Vec<i64>,
    source_limit: usize,
    sources: BTreeMap<i64, Source>,
    /// `(integration, external_id)` of deleted sources to their old `id`: re-creating the
    /// `external_id` brings the `id` back, as Kommo does.
    deleted: HashMap<(usize, String), i64>,
    next_source_id: i64,
    widgets: Vec<Widget>,
    waiting_bots: Vec<(String, String, String)>,
    pub(crate) continued: Vec<ContinuedBot>,
    leads: Vec<Lead>,
    /// Index of `leads` by `uid` (leads are never removed): lookups and the uniqueness check
    /// stay constant-time with tens of thousands of leads.
    lead_by_uid: HashMap<String, usize>,
    /// The fingerprints of the waiting leads created through the API: identical data is
    /// refused while one is waiting.
    waiting_fingerprints: HashSet<String>,
    next_entity_id: i64,
    /// The leads added with `addComplexLeads` (with their contact, company and source), in
    /// creation order.
    complex_leads: Vec<ComplexLead>,
    rng: fastrand::Rng,
    /// Incoming-lead events of the request being handled, for the webhook
    /// ([`crate::outbound`]): `(action, fields)` of `unsorted[{action}][n]`.
    pub(crate) events: Vec<(&'static str, Value)>,
}

struct Source {
    owner: usize,
    fields: Map<String, Value>,
}

/// A lead added through `addComplexLeads`: the integration that added it, and its fields as the
/// state shows them (`id`, `name`, `price`, `pipeline_id`, `status_id`, `contact_id`,
/// `company_id`, `source_external_id`).
struct ComplexLead {
    owner: usize,
    fields: Map<String, Value>,
}

/// A pipeline status of the fake: `(id, name, sort, is_editable, color, type)`.
type Status = (i64, &'static str, i64, bool, &'static str, i64);

struct Widget {
    fields: Map<String, Value>,
    settings: Option<Map<String, Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeadState {
    Waiting,
    Accepted { at: i64 },
    Declined { at: i64 },
    Linked,
}

impl LeadState {
    fn word(self) -> &'static str {
        match self {
            LeadState::Waiting => "waiting",
            LeadState::Accepted { .. } => "accepted",
            LeadState::Declined { .. } => "declined",
            LeadState::Linked => "linked",
        }
    }
}

struct Lead {
    uid: String,
    category: String,
    source_uid: Value,
    source_name: Value,
    pipeline_id: Option<i64>,
    created_at: i64,
    metadata: Option<Value>,
    contacts: Vec<i64>,
    companies: Vec<i64>,
    leads: Vec<i64>,
    state: LeadState,
    /// The request item that created it, canonical: identical data is refused.
    fingerprint: Option<String>,
    /// The `request_id` of the request item that created it (Kommo does not keep it; the fake
    /// does, for [`super::FakeServer::incoming_leads`]).
    request_id: Option<String>,
}

impl Lead {
    /// `unsorted[add][n]` of the webhook: the fields public integrations read (lead-intake's CONTRIBUTING.md, evidence
    /// rows "webhook ..."), every scalar a string once form-encoded.
    fn added_event(&self, account_id: i64) -> Value {
        let mut event = json!({
            "uid": self.uid,
            "category": self.category,
            "created_at": self.created_at,
            "account_id": account_id,
        });
        if let Some(source_uid) = self.source_uid.as_str() {
            event["source_uid"] = json!(source_uid);
        }
        if let Some(pipeline) = self.pipeline_id {
            event["pipeline_id"] = json!(pipeline);
        }
        if let Some(lead) = self.leads.first() {
            event["lead_id"] = json!(lead);
        }
        event
    }

    /// `unsorted[delete][n]` after an accept or a decline, with what it made or closed.
    fn decided_event(&self, accept: bool) -> Value {
        let (action, result) = if accept {
            ("accept", "accept_result")
        } else {
            ("decline", "decline_result")
        };
        let mut outcome = json!({ "leads": self.leads });
        if accept && !self.contacts.is_empty() {
            outcome["contacts"] = json!(self.contacts);
        }
        let mut event = json!({
            "uid": self.uid,
            "category": self.category,
            "created_at": self.created_at,
            "action": action,
            result: outcome,
        });
        if let Some(pipeline) = self.pipeline_id {
            event["pipeline_id"] = json!(pipeline);
        }
        event
    }

    /// `unsorted[delete][n]` after a link. No public source shows this event's fields; the fake
    /// sends `action=link` with `link_result[{entity_type}][0]`, which the library reads as
    /// `Decision::Other("link")` with the result kept in `extra`.
    fn linked_event(&self, entity_type: &str, entity_id: i64) -> Value {
        json!({
            "uid": self.uid,
            "category": self.category,
            "created_at": self.created_at,
            "action": "link",
            "link_result": { entity_type: [entity_id] },
        })
    }
}

impl Kommo {
    pub(crate) fn new(config: &Config, specs: &Specs) -> Result<Self, FakeError> {
        let fixtures = &config.fixtures;
        let mut kommo = Kommo {
            account_id: config.account_id,
            pipelines: fixtures.pipelines.clone(),
            source_limit: config.source_limit,
            sources: BTreeMap::new(),
            deleted: HashMap::new(),
            next_source_id: FIRST_SOURCE_ID,
            widgets: Vec::new(),
            waiting_bots: Vec::new(),
            continued: Vec::new(),
            leads: Vec::new(),
            lead_by_uid: HashMap::new(),
            waiting_fingerprints: HashSet::new(),
            next_entity_id: FIRST_ENTITY_ID,
            complex_leads: Vec::new(),
            // Its own stream, so generated IDs never shift the fault sequence.
            rng: fastrand::Rng::with_seed(config.seed ^ ID_SEED_MIX),
            events: Vec::new(),
        };
        if kommo.pipelines.is_empty() {
            return Err(FakeError::Fixture("at least one pipeline is needed".into()));
        }
        for source in &fixtures.sources {
            specs
                .check_component(Api::Kommo, "AddSource", source)
                .map_err(|e| FakeError::Fixture(format!("source {source}: {e}")))?;
            let id = kommo.new_source_id();
            let fields = kommo.new_source_fields(source);
            kommo.sources.insert(id, Source { owner: 0, fields });
        }
        for widget in &fixtures.widgets {
            kommo
                .add_widget(specs, widget)
                .map_err(|e| FakeError::Fixture(format!("widget: {e}")))?;
        }
        for lead in &fixtures.incoming_leads {
            kommo
                .add_fixture_lead(specs, lead.clone())
                .map_err(FakeError::Fixture)?;
        }
        for (kind, bot, cont) in &fixtures.waiting_bots {
            kommo.add_waiting_bot(kind, bot, cont);
        }
        Ok(kommo)
    }

    pub(crate) fn add_waiting_bot(&mut self, kind: &str, bot_id: &str, continue_id: &str) {
        self.waiting_bots
            .push((kind.into(), bot_id.into(), continue_id.into()));
    }

    /// Adds a lead given in the `IncomingLead` shape; fills `uid`, `created_at`, `account_id`.
    pub(crate) fn add_fixture_lead(
        &mut self,
        specs: &Specs,
        lead: Value,
    ) -> Result<String, String> {
        let Value::Object(mut map) = lead else {
            return Err(format!("an incoming lead must be an object: {lead}"));
        };
        if !map.contains_key("uid") {
            map.insert("uid".into(), Value::String(self.new_uid()));
        }
        map.entry("created_at").or_insert_with(|| json!(unix_now()));
        map.insert("account_id".into(), json!(self.account_id));
        let lead = Value::Object(map);
        specs
            .check_component(Api::Kommo, "IncomingLead", &lead)
            .map_err(|e| format!("incoming lead: {e}"))?;
        let uid = str_of(&lead, "uid").unwrap_or_default().to_string();
        if self.lead_by_uid.contains_key(&uid) {
            return Err(format!("incoming lead: the uid {uid} is already taken"));
        }
        let ids = |name: &str| -> Vec<i64> {
            lead.pointer(&format!("/_embedded/{name}"))
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|e| e.get("id").and_then(Value::as_i64))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut leads = ids("leads");
        if leads.is_empty() {
            leads.push(self.new_entity_id());
        }
        self.push_lead(Lead {
            uid: uid.clone(),
            category: str_of(&lead, "category").unwrap_or_default().to_string(),
            source_uid: lead.get("source_uid").cloned().unwrap_or(Value::Null),
            source_name: lead.get("source_name").cloned().unwrap_or(Value::Null),
            pipeline_id: lead.get("pipeline_id").and_then(Value::as_i64),
            created_at: lead.get("created_at").and_then(Value::as_i64).unwrap_or(0),
            metadata: lead.get("metadata").cloned(),
            contacts: ids("contacts"),
            companies: ids("companies"),
            leads,
            state: LeadState::Waiting,
            fingerprint: None,
            request_id: None,
        });
        Ok(uid)
    }

    /// The whole state as JSON (`GET /__admin/state`'s `kommo`): what [`Kommo::from_state`]
    /// reads back into the same state.
    pub(crate) fn to_state(&self) -> Value {
        let sources: Vec<Value> = self
            .sources
            .iter()
            .map(|(id, source)| {
                let mut out = Map::new();
                out.insert("id".into(), json!(id));
                out.insert("integration".into(), json!(source.owner));
                out.extend(source.fields.clone());
                Value::Object(out)
            })
            .collect();
        let mut deleted: Vec<(&(usize, String), &i64)> = self.deleted.iter().collect();
        deleted.sort();
        let deleted: Vec<Value> = deleted
            .into_iter()
            .map(|((integration, external_id), id)| {
                json!({"integration": integration, "external_id": external_id, "id": id})
            })
            .collect();
        let widgets: Vec<Value> = self
            .widgets
            .iter()
            .map(|widget| {
                let mut out = widget.fields.clone();
                out.insert(
                    "is_active_in_account".into(),
                    Value::Bool(widget.settings.is_some()),
                );
                if let Some(settings) = &widget.settings {
                    out.insert("settings".into(), Value::Object(settings.clone()));
                }
                Value::Object(out)
            })
            .collect();
        let waiting_bots: Vec<Value> = self
            .waiting_bots
            .iter()
            .map(|(kind, bot_id, continue_id)| {
                json!({"kind": kind, "bot_id": bot_id, "continue_id": continue_id})
            })
            .collect();
        let continued: Vec<Value> = self
            .continued
            .iter()
            .map(|c| {
                json!({"kind": c.kind, "bot_id": c.bot_id, "continue_id": c.continue_id, "data": c.data})
            })
            .collect();
        let leads: Vec<Value> = self
            .leads
            .iter()
            .map(|lead| {
                let mut lead_json = self.lead_json(lead, "");
                if let Value::Object(map) = &mut lead_json {
                    map.remove("_links");
                    map.remove("account_id");
                    map.insert(
                        "_embedded".into(),
                        json!({
                            "contacts": ids_json(&lead.contacts),
                            "leads": ids_json(&lead.leads),
                            "companies": ids_json(&lead.companies),
                        }),
                    );
                }
                let decided_at = match lead.state {
                    LeadState::Accepted { at } | LeadState::Declined { at } => json!(at),
                    LeadState::Waiting | LeadState::Linked => Value::Null,
                };
                json!({
                    "state": lead.state.word(),
                    "decided_at": decided_at,
                    "request_id": lead.request_id,
                    "fingerprint": lead.fingerprint,
                    "lead": lead_json,
                })
            })
            .collect();
        json!({
            "pipelines": self.pipelines,
            "sources": sources,
            "deleted_sources": deleted,
            "next_source_id": self.next_source_id,
            "widgets": widgets,
            "waiting_bots": waiting_bots,
            "continued_bots": continued,
            "incoming_leads": leads,
            "leads": self
                .complex_leads
                .iter()
                .map(|lead| {
                    let mut out = Map::new();
                    out.insert("integration".into(), json!(lead.owner));
                    out.extend(lead.fields.clone());
                    Value::Object(out)
                })
                .collect::<Vec<Value>>(),
            "next_entity_id": self.next_entity_id,
            "id_seed": self.rng.get_seed(),
        })
    }

    /// A state read from JSON (`PUT /__admin/state`'s `kommo`; `null` or a missing key is the
    /// empty state: the documented pipelines and nothing else). Every entity is checked against
    /// the spec; an error names the place (`kommo.sources[2]: ...`).
    pub(crate) fn from_state(
        config: &Config,
        specs: &Specs,
        state: &Value,
    ) -> Result<Self, String> {
        let empty = Map::new();
        let state = match state {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => return Err(format!("kommo: must be an object, not {}", kind_of(other))),
        };
        const KEYS: [&str; 11] = [
            "pipelines",
            "sources",
            "deleted_sources",
            "next_source_id",
            "widgets",
            "waiting_bots",
            "continued_bots",
            "incoming_leads",
            "leads",
            "next_entity_id",
            "id_seed",
        ];
        if let Some(unknown) = state.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!(
                "kommo: unknown key {unknown:?} (known: {})",
                KEYS.join(", ")
            ));
        }
        let list = |key: &str| -> Result<&[Value], String> {
            match state.get(key) {
                None | Some(Value::Null) => Ok(&[]),
                Some(Value::Array(items)) => Ok(items),
                Some(other) => Err(format!(
                    "kommo.{key}: must be a list, not {}",
                    kind_of(other)
                )),
            }
        };
        let int = |key: &str, default: i64| -> Result<i64, String> {
            match state.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_i64()
                    .ok_or_else(|| format!("kommo.{key}: must be an integer, not {v}")),
            }
        };
        let seed = match state.get("id_seed") {
            None | Some(Value::Null) => config.seed ^ ID_SEED_MIX,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| format!("kommo.id_seed: must be an unsigned integer, not {v}"))?,
        };
        let pipelines = match state.get("pipelines") {
            None | Some(Value::Null) => super::Fixtures::empty().pipelines,
            Some(_) => list("pipelines")?
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    p.as_i64()
                        .ok_or_else(|| format!("kommo.pipelines[{i}]: must be an integer, not {p}"))
                })
                .collect::<Result<Vec<i64>, String>>()?,
        };
        if pipelines.is_empty() {
            return Err("kommo.pipelines: at least one pipeline is needed".into());
        }
        let mut kommo = Kommo {
            account_id: config.account_id,
            pipelines,
            source_limit: config.source_limit,
            sources: BTreeMap::new(),
            deleted: HashMap::new(),
            next_source_id: int("next_source_id", FIRST_SOURCE_ID)?,
            widgets: Vec::new(),
            waiting_bots: Vec::new(),
            continued: Vec::new(),
            leads: Vec::new(),
            lead_by_uid: HashMap::new(),
            waiting_fingerprints: HashSet::new(),
            next_entity_id: int("next_entity_id", FIRST_ENTITY_ID)?,
            complex_leads: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            events: Vec::new(),
        };
        let integrations = 1 + config.other_integrations.len();
        for (i, source) in list("sources")?.iter().enumerate() {
            let at = format!("kommo.sources[{i}]");
            let Value::Object(map) = source else {
                return Err(format!("{at}: must be an object, not {}", kind_of(source)));
            };
            let mut map = map.clone();
            let id = map
                .remove("id")
                .and_then(|v| v.as_i64())
                .ok_or_else(|| format!("{at}: needs an integer `id`"))?;
            let owner = owner_of(map.remove("integration"), integrations, &at)?;
            // As `addSources` takes it, where a null is an absent field (the state shows
            // Kommo's `"origin_code": null`).
            let given: Map<String, Value> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            specs
                .check_component(Api::Kommo, "AddSource", &Value::Object(given))
                .map_err(|e| format!("{at}: {e}"))?;
            let item = Value::Object(map);
            if kommo.sources.contains_key(&id) {
                return Err(format!("{at}: the id {id} is already taken"));
            }
            let fields = kommo.new_source_fields(&item);
            kommo.sources.insert(id, Source { owner, fields });
        }
        for (i, deleted) in list("deleted_sources")?.iter().enumerate() {
            let at = format!("kommo.deleted_sources[{i}]");
            let owner = owner_of(deleted.get("integration").cloned(), integrations, &at)?;
            let external_id = str_of(deleted, "external_id")
                .ok_or_else(|| format!("{at}: needs a string `external_id`"))?;
            let id = deleted
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("{at}: needs an integer `id`"))?;
            kommo.deleted.insert((owner, external_id.to_string()), id);
        }
        // A new source never takes an id that is already used.
        let highest = kommo
            .sources
            .keys()
            .chain(kommo.deleted.values())
            .max()
            .copied();
        if let Some(highest) = highest {
            kommo.next_source_id = kommo.next_source_id.max(highest.saturating_add(4));
        }
        for (i, widget) in list("widgets")?.iter().enumerate() {
            kommo
                .add_widget(specs, widget)
                .map_err(|e| format!("kommo.widgets[{i}]: {e}"))?;
        }
        for (i, bot) in list("waiting_bots")?.iter().enumerate() {
            let (kind, bot_id, continue_id) =
                bot_key(bot).map_err(|e| format!("kommo.waiting_bots[{i}]: {e}"))?;
            kommo.add_waiting_bot(&kind, &bot_id, &continue_id);
        }
        for (i, bot) in list("continued_bots")?.iter().enumerate() {
            let (kind, bot_id, continue_id) =
                bot_key(bot).map_err(|e| format!("kommo.continued_bots[{i}]: {e}"))?;
            let data = bot.get("data").cloned().filter(|d| !d.is_null());
            kommo.continued.push(ContinuedBot {
                kind,
                bot_id,
                continue_id,
                data,
            });
        }
        for (i, stored) in list("incoming_leads")?.iter().enumerate() {
            kommo
                .add_stored_lead(specs, stored)
                .map_err(|e| format!("kommo.incoming_leads[{i}]: {e}"))?;
        }
        for (i, lead) in list("leads")?.iter().enumerate() {
            let at = format!("kommo.leads[{i}]");
            let Value::Object(map) = lead else {
                return Err(format!("{at}: must be an object, not {}", kind_of(lead)));
            };
            let mut fields = map.clone();
            let owner = owner_of(fields.remove("integration"), integrations, &at)?;
            if !fields.get("id").is_some_and(Value::is_i64) {
                return Err(format!("{at}: needs an integer `id`"));
            }
            for key in fields.keys() {
                if !COMPLEX_LEAD_KEYS.contains(&key.as_str()) {
                    return Err(format!(
                        "{at}: unknown key {key:?} (known: integration, {})",
                        COMPLEX_LEAD_KEYS.join(", ")
                    ));
                }
            }
            if let Some(pipeline) = fields.get("pipeline_id").and_then(Value::as_i64)
                && !kommo.pipelines.contains(&pipeline)
            {
                return Err(format!(
                    "{at}: the pipeline {pipeline} is not in `pipelines`"
                ));
            }
            // New entities never take an id that is already used.
            for key in ["id", "contact_id", "company_id"] {
                if let Some(used) = fields.get(key).and_then(Value::as_i64) {
                    kommo.next_entity_id = kommo.next_entity_id.max(used.saturating_add(2));
                }
            }
            kommo.complex_leads.push(ComplexLead { owner, fields });
        }
        Ok(kommo)
    }

    /// Adds a widget given in the spec's `Widget` shape (installed when `is_active_in_account`
    /// is true and `settings` is an object).
    fn add_widget(&mut self, specs: &Specs, widget: &Value) -> Result<(), String> {
        specs.check_component(Api::Kommo, "Widget", widget)?;
        let mut fields = widget.as_object().cloned().unwrap_or_default();
        fields.remove("_links");
        let settings = match fields.remove("settings") {
            Some(Value::Object(s)) if is_true(fields.get("is_active_in_account")) => Some(s),
            _ => None,
        };
        self.widgets.push(Widget { fields, settings });
        Ok(())
    }

    /// Adds a lead as `to_state` shows it: `{"state", "decided_at", "request_id", "fingerprint",
    /// "lead"}`, where only `lead` (the `IncomingLead` shape) is required.
    fn add_stored_lead(&mut self, specs: &Specs, stored: &Value) -> Result<(), String> {
        let Value::Object(map) = stored else {
            return Err(format!("must be an object, not {}", kind_of(stored)));
        };
        const KEYS: [&str; 5] = ["state", "decided_at", "request_id", "fingerprint", "lead"];
        if let Some(unknown) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown key {unknown:?} (known: {}; the lead itself goes under `lead`)",
                KEYS.join(", ")
            ));
        }
        let optional_string = |key: &str| match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{key}` must be a string or null, not {other}")),
        };
        let request_id = optional_string("request_id")?;
        let fingerprint = optional_string("fingerprint")?;
        let decided_at = match map.get("decided_at") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| format!("`decided_at` must be a Unix time, not {v}"))?,
            ),
        };
        let state = match optional_string("state")?.as_deref() {
            None | Some("waiting") => LeadState::Waiting,
            Some("accepted") => LeadState::Accepted {
                at: decided_at.unwrap_or_else(unix_now),
            },
            Some("declined") => LeadState::Declined {
                at: decided_at.unwrap_or_else(unix_now),
            },
            Some("linked") => LeadState::Linked,
            Some(other) => {
                return Err(format!(
                    "`state` is waiting, accepted, declined or linked, not {other:?}"
                ));
            }
        };
        let lead = map
            .get("lead")
            .cloned()
            .ok_or("needs the lead itself under `lead` (the spec's IncomingLead shape)")?;
        let uid = self.add_fixture_lead(specs, lead)?;
        let index = self.lead_by_uid[&uid];
        self.leads[index].request_id = request_id;
        if state == LeadState::Waiting
            && let Some(fingerprint) = &fingerprint
        {
            self.waiting_fingerprints.insert(fingerprint.clone());
        }
        self.leads[index].fingerprint = fingerprint;
        self.leads[index].state = state;
        Ok(())
    }

    pub(crate) fn handle(&mut self, operation: &str, ctx: &Ctx) -> Reply {
        match operation {
            "listSources" => self.list_sources(ctx),
            "addSources" => self.add_sources(ctx),
            "updateSources" => self.update_sources(ctx),
            "deleteSources" => self.delete_sources(ctx),
            "getSource" => self.get_source(ctx),
            "updateSource" => self.update_source(ctx),
            "deleteSource" => self.delete_source(ctx),
            "listWidgets" => self.list_widgets(ctx),
            "getWidget" => self.get_widget(ctx),
            "installWidget" => self.install_widget(ctx),
            "uninstallWidget" => self.uninstall_widget(ctx),
            "continueBot" => self.continue_bot(ctx),
            "listIncomingLeads" => self.list_incoming_leads(ctx),
            "getIncomingLead" => self.get_incoming_lead(ctx),
            "addIncomingCalls" => self.add_incoming(ctx, "sip"),
            "addIncomingForms" => self.add_incoming(ctx, "forms"),
            "acceptIncomingLead" => self.decide(ctx, true),
            "declineIncomingLead" => self.decide(ctx, false),
            "linkIncomingLead" => self.link(ctx),
            "getIncomingLeadsSummary" => self.summary(ctx),
            "listPipelines" => self.list_pipelines(ctx),
            "getPipeline" => self.get_pipeline(ctx),
            "addComplexLeads" => self.add_complex_leads(ctx),
            _ => kommo_problem(StatusCode::NOT_FOUND, "No such endpoint"),
        }
    }

    /// The operations the fake serves beyond the spec, for raw calls
    /// ([`crate::server`]'s `EXTRA_ROUTES`): `getLead` and `listLeads`.
    pub(crate) fn handle_extra(&self, operation: &str, ctx: &Ctx) -> Reply {
        match operation {
            "getLead" => self.get_lead(ctx),
            "listLeads" => self.list_leads(ctx),
            _ => kommo_problem(StatusCode::NOT_FOUND, "No such endpoint"),
        }
    }

    /// A lead added through `addComplexLeads` as Kommo's `GET /api/v4/leads/{id}` shows it:
    /// its fields, `_embedded.companies` (always, as Kommo), `_embedded.contacts` with
    /// `with=contacts`, `source_id` with `with=source_id` and `_embedded.source` (`id`, `name`)
    /// with `with=source`, when the lead's `external_id` names a source of the account.
    fn complex_lead_json(&self, lead: &ComplexLead, ctx: &Ctx) -> Value {
        let origin = &ctx.origin;
        let with: Vec<&str> = ctx
            .query
            .get("with")
            .and_then(Value::as_str)
            .map(|w| w.split(',').map(str::trim).collect())
            .unwrap_or_default();
        let field = |key: &str| lead.fields.get(key).cloned().unwrap_or(Value::Null);
        let id = field("id");
        let entity = |key: &str, path: &str| -> Vec<Value> {
            lead.fields
                .get(key)
                .and_then(Value::as_i64)
                .map(|eid| {
                    json!({
                        "id": eid,
                        "_links": self_link(format!("{origin}/api/v4/{path}/{eid}")),
                    })
                })
                .into_iter()
                .collect()
        };
        let mut embedded = Map::new();
        embedded.insert("tags".into(), json!([]));
        embedded.insert("companies".into(), json!(entity("company_id", "companies")));
        let mut out = json!({
            "id": id,
            "name": field("name"),
            "price": field("price"),
            "responsible_user_id": 0,
            "group_id": 0,
            "status_id": field("status_id"),
            "pipeline_id": field("pipeline_id"),
            "loss_reason_id": null,
            "created_by": 0,
            "updated_by": 0,
            "created_at": field("created_at"),
            "updated_at": field("created_at"),
            "closed_at": null,
            "closest_task_at": null,
            "is_deleted": false,
            "custom_fields_values": null,
            "score": null,
            "account_id": self.account_id,
            "labor_cost": null,
            "_links": self_link(format!("{origin}/api/v4/leads/{id}")),
        });
        if with.contains(&"contacts") {
            let mut contacts = entity("contact_id", "contacts");
            for contact in &mut contacts {
                contact["is_main"] = json!(true);
            }
            embedded.insert("contacts".into(), Value::Array(contacts));
        }
        let source = str_of_map(&lead.fields, "source_external_id").and_then(|external| {
            self.sources
                .iter()
                .find(|(_, s)| str_of_map(&s.fields, "external_id") == Some(external))
        });
        if with.contains(&"source_id") {
            out["source_id"] = source.map_or(Value::Null, |(sid, _)| json!(sid));
        }
        if with.contains(&"source")
            && let Some((sid, s)) = source
        {
            embedded.insert(
                "source".into(),
                json!({ "id": sid, "name": s.fields.get("name").cloned().unwrap_or(Value::Null) }),
            );
        }
        out["_embedded"] = Value::Object(embedded);
        out
    }

    /// `GET /api/v4/leads/{id}` (beyond the spec): a lead added through `addComplexLeads`, or
    /// the 404 problem.
    fn get_lead(&self, ctx: &Ctx) -> Reply {
        let id = Self::path_id(ctx);
        match self
            .complex_leads
            .iter()
            .find(|l| l.fields.get("id").and_then(Value::as_i64) == Some(id))
        {
            Some(lead) => Reply::Hal(StatusCode::OK, self.complex_lead_json(lead, ctx)),
            None => kommo_problem(StatusCode::NOT_FOUND, "Lead not found"),
        }
    }

    /// `GET /api/v4/leads` (beyond the spec): the leads added through `addComplexLeads`, in
    /// creation order, paged by `page` and `limit`; `204` past the last.
    fn list_leads(&self, ctx: &Ctx) -> Reply {
        let (page, limit) = paging(ctx);
        let items = page_of(&self.complex_leads, page, limit);
        if items.is_empty() {
            return Reply::Empty(StatusCode::NO_CONTENT);
        }
        let leads: Vec<Value> = items
            .iter()
            .map(|lead| self.complex_lead_json(lead, ctx))
            .collect();
        let full = u64::try_from(items.len()).unwrap_or(u64::MAX) == limit;
        let origin = &ctx.origin;
        Reply::Hal(
            StatusCode::OK,
            json!({
                "_page": page,
                "_links": page_links(|p| format!("{origin}/api/v4/leads?page={p}&limit={limit}"), page, full),
                "_embedded": { "leads": leads },
            }),
        )
    }

    // ---------------------------------------------------------------- pipelines and leads

    /// The statuses of the pipeline at `index` of `pipelines`: Incoming leads, Initial contact,
    /// and the system statuses Closed - won (142) and Closed - lost (143), as Kommo's example.
    /// `(id, name, sort, is_editable, color, type)` of each.
    fn statuses(index: usize) -> [Status; 4] {
        let offset = i64::try_from(index).unwrap_or(i64::MAX).saturating_mul(8);
        let first = FIRST_STATUS_ID.saturating_add(offset);
        [
            (first, "Incoming leads", 10, false, "#c1c1c1", 1),
            (
                first.saturating_add(4),
                "Initial contact",
                20,
                true,
                "#99ccff",
                0,
            ),
            (WON_STATUS_ID, "Closed - won", 10000, false, "#CCFF66", 0),
            (LOST_STATUS_ID, "Closed - lost", 11000, false, "#D5D8DB", 0),
        ]
    }

    fn pipeline_json(&self, index: usize, origin: &str) -> Value {
        let id = self.pipelines[index];
        let statuses: Vec<Value> = Self::statuses(index)
            .iter()
            .map(|(sid, name, sort, editable, color, kind)| {
                json!({
                    "id": sid,
                    "name": name,
                    "sort": sort,
                    "is_editable": editable,
                    "pipeline_id": id,
                    "color": color,
                    "type": kind,
                    "account_id": self.account_id,
                    "_links": self_link(format!("{origin}/api/v4/leads/pipelines/{id}/statuses/{sid}")),
                })
            })
            .collect();
        json!({
            "id": id,
            "name": if index == 0 { "Pipeline".to_string() } else { format!("Pipeline {}", index + 1) },
            "sort": index + 1,
            "is_main": index == 0,
            "is_unsorted_on": true,
            "is_archive": false,
            "account_id": self.account_id,
            "_links": self_link(format!("{origin}/api/v4/leads/pipelines/{id}")),
            "_embedded": { "statuses": statuses },
        })
    }

    fn list_pipelines(&self, ctx: &Ctx) -> Reply {
        let pipelines: Vec<Value> = (0..self.pipelines.len())
            .map(|i| self.pipeline_json(i, &ctx.origin))
            .collect();
        Reply::Hal(
            StatusCode::OK,
            json!({
                "_total_items": pipelines.len(),
                "_links": self_link(format!("{}/api/v4/leads/pipelines", ctx.origin)),
                "_embedded": { "pipelines": pipelines },
            }),
        )
    }

    fn get_pipeline(&self, ctx: &Ctx) -> Reply {
        let id = Self::path_id(ctx);
        match self.pipelines.iter().position(|p| *p == id) {
            Some(index) => Reply::Hal(StatusCode::OK, self.pipeline_json(index, &ctx.origin)),
            None => kommo_problem(StatusCode::NOT_FOUND, "Pipeline not found"),
        }
    }

    /// Adds leads with their contact and company (`POST /api/v4/leads/complex`). A
    /// `pipeline_id` must be one of the account's pipelines and a `status_id` one of that
    /// pipeline's statuses; anything else refuses the whole request with `validation-errors`.
    fn add_complex_leads(&mut self, ctx: &Ctx) -> Reply {
        let items = body_items(ctx);
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let rid = request_id(item, i);
            let pipeline = item.get("pipeline_id").and_then(Value::as_i64);
            let index = match pipeline {
                None => Some(0),
                Some(p) => self.pipelines.iter().position(|known| *known == p),
            };
            let Some(index) = index else {
                errors.push(FieldError::new(
                    &rid,
                    "NotSupportedChoice",
                    "pipeline_id",
                    format!(
                        "The pipeline {} does not exist.",
                        pipeline.unwrap_or_default()
                    ),
                ));
                continue;
            };
            if let Some(status) = item.get("status_id").and_then(Value::as_i64) {
                let known = Self::statuses(index);
                if !known.iter().any(|s| s.0 == status) {
                    errors.push(FieldError::new(
                        &rid,
                        "NotSupportedChoice",
                        "status_id",
                        format!(
                            "The status {status} is not in the pipeline {}.",
                            self.pipelines[index]
                        ),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return kommo_validation(&errors);
        }
        let mut created = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let pipeline = item
                .get("pipeline_id")
                .and_then(Value::as_i64)
                .unwrap_or(self.pipelines[0]);
            let index = self
                .pipelines
                .iter()
                .position(|p| *p == pipeline)
                .unwrap_or_default();
            // "Initial contact": the pipeline's first status after Incoming leads.
            let status = item
                .get("status_id")
                .and_then(Value::as_i64)
                .unwrap_or(Self::statuses(index)[1].0);
            let mut entity = |name: &str| -> Option<i64> {
                let first = item.pointer(&format!("/_embedded/{name}/0"))?;
                Some(match first.get("id").and_then(Value::as_i64) {
                    Some(existing) => existing,
                    None => self.new_entity_id(),
                })
            };
            let contact = entity("contacts");
            let company = entity("companies");
            let id = self.new_entity_id();
            let source = item
                .pointer("/_embedded/source/external_id")
                .cloned()
                .unwrap_or(Value::Null);
            let mut fields = Map::new();
            fields.insert("id".into(), json!(id));
            fields.insert(
                "name".into(),
                item.get("name").cloned().unwrap_or(json!("")),
            );
            fields.insert(
                "price".into(),
                item.get("price").cloned().unwrap_or(json!(0)),
            );
            fields.insert("pipeline_id".into(), json!(pipeline));
            fields.insert("status_id".into(), json!(status));
            fields.insert("contact_id".into(), json!(contact));
            fields.insert("company_id".into(), json!(company));
            fields.insert("source_external_id".into(), source);
            fields.insert("created_at".into(), json!(ctx.now));
            self.complex_leads.push(ComplexLead {
                owner: ctx.integration,
                fields,
            });
            created.push(json!({
                "id": id,
                "contact_id": contact,
                "company_id": company,
                "request_id": [request_id(item, i)],
                "merged": false,
            }));
        }
        Reply::Hal(StatusCode::OK, Value::Array(created))
    }

    // ------------------------------------------------------------------------------ sources

    fn new_source_id(&mut self) -> i64 {
        let id = self.next_source_id;
        self.next_source_id += 4;
        id
    }

    fn new_source_fields(&self, item: &Value) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert(
            "name".into(),
            item.get("name").cloned().unwrap_or(json!("")),
        );
        fields.insert(
            "pipeline_id".into(),
            item.get("pipeline_id")
                .cloned()
                .unwrap_or(json!(self.pipelines[0])),
        );
        fields.insert(
            "external_id".into(),
            item.get("external_id").cloned().unwrap_or(json!("")),
        );
        fields.insert(
            "services".into(),
            php_services(item.get("services").cloned().unwrap_or(json!([]))),
        );
        fields.insert(
            "default".into(),
            item.get("default").cloned().unwrap_or(json!(false)),
        );
        fields.insert(
            "origin_code".into(),
            item.get("origin_code").cloned().unwrap_or(Value::Null),
        );
        fields
    }

    fn source_json(&self, id: i64, source: &Source, origin: &str) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(id));
        out.extend(source.fields.clone());
        out.insert(
            "_links".into(),
            self_link(format!("{origin}/api/v4/sources/{id}")),
        );
        Value::Object(out)
    }

    fn owned(&self, integration: usize) -> impl Iterator<Item = (&i64, &Source)> {
        self.sources
            .iter()
            .filter(move |(_, s)| s.owner == integration)
    }

    /// The rules on the fields `addSources`, `updateSources` and `updateSource` share.
    fn check_source_fields(&self, item: &Value, request_id: &str, errors: &mut Vec<FieldError>) {
        if let Some(name) = str_of(item, "name")
            && name.trim().is_empty()
        {
            errors.push(FieldError::new(
                request_id,
                "NotBlank",
                "name",
                "This value should not be blank.",
            ));
        }
        if let Some(pipeline) = item.get("pipeline_id").and_then(Value::as_i64)
            && !self.pipelines.contains(&pipeline)
        {
            errors.push(FieldError::new(
                request_id,
                "NotSupportedChoice",
                "pipeline_id",
                format!("The pipeline {pipeline} does not exist."),
            ));
        }
        if let Some(code) = str_of(item, "origin_code") {
            let problem = if code.chars().count() > ORIGIN_CODE_MAX {
                Some(format!(
                    "origin_code must be at most {ORIGIN_CODE_MAX} characters long."
                ))
            } else if !code.is_empty() && code.chars().all(|c| c.is_ascii_digit()) {
                Some("origin_code must not be only digits.".to_string())
            } else if code.contains('"') {
                Some("origin_code must not contain double quotes.".to_string())
            } else {
                None
            };
            if let Some(detail) = problem {
                errors.push(FieldError::new(
                    request_id,
                    "InvalidValue",
                    "origin_code",
                    detail,
                ));
            }
        }
    }

    fn list_sources(&self, ctx: &Ctx) -> Reply {
        let filter = strings(ctx.query.get("filter[external_id][]"));
        let sources: Vec<Value> = self
            .owned(ctx.integration)
            .filter(|(_, s)| match &filter {
                Some(wanted) => str_of_map(&s.fields, "external_id")
                    .is_some_and(|e| wanted.iter().any(|w| w == e)),
                None => true,
            })
            .map(|(id, s)| self.source_json(*id, s, &ctx.origin))
            .collect();
        if sources.is_empty() {
            return Reply::Empty(StatusCode::NO_CONTENT);
        }
        Reply::Hal(
            StatusCode::OK,
            json!({
                "_total_items": sources.len(),
                "_links": self_link(format!("{}/api/v4/sources", ctx.origin)),
                "_embedded": { "sources": sources },
            }),
        )
    }

    fn add_sources(&mut self, ctx: &Ctx) -> Reply {
        let items = body_items(ctx);
        let owned: HashSet<String> = self
            .owned(ctx.integration)
            .filter_map(|(_, s)| str_of_map(&s.fields, "external_id").map(str::to_string))
            .collect();
        let owned_count = owned.len();
        let mut seen = HashSet::new();
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let rid = request_id(item, i);
            self.check_source_fields(item, &rid, &mut errors);
            let external = str_of(item, "external_id").unwrap_or_default();
            if external.trim().is_empty() {
                errors.push(FieldError::new(
                    &rid,
                    "NotBlank",
                    "external_id",
                    "This value should not be blank.",
                ));
            } else if owned.contains(external) {
                errors.push(FieldError::new(
                    &rid,
                    "NotUnique",
                    "external_id",
                    format!("A source with the external_id {external:?} already exists."),
                ));
            } else if !seen.insert(external.to_string()) {
                errors.push(FieldError::new(
                    &rid,
                    "NotUnique",
                    "external_id",
                    format!("The external_id {external:?} is repeated in the request."),
                ));
            }
            if owned_count + i + 1 > self.source_limit {
                errors.push(FieldError::new(
                    &rid,
                    "LimitExceeded",
                    "",
                    format!(
                        "An integration can have at most {} sources.",
                        self.source_limit
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return kommo_validation(&errors);
        }
        let mut created = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let external = str_of(item, "external_id").unwrap_or_default().to_string();
            let id = match self.deleted.remove(&(ctx.integration, external)) {
                Some(old) => old,
                None => self.new_source_id(),
            };
            let fields = self.new_source_fields(item);
            let source = Source {
                owner: ctx.integration,
                fields,
            };
            let mut answer = self.source_json(id, &source, &ctx.origin);
            answer["request_id"] = json!(request_id(item, i));
            created.push(answer);
            self.sources.insert(id, source);
        }
        Reply::Hal(
            StatusCode::OK,
            json!({ "_total_items": created.len(), "_embedded": { "sources": created } }),
        )
    }

    fn owns(&self, integration: usize, id: i64) -> bool {
        self.sources
            .get(&id)
            .is_some_and(|s| s.owner == integration)
    }

    fn apply_update(&mut self, id: i64, item: &Value) {
        if let Some(source) = self.sources.get_mut(&id) {
            for key in ["name", "pipeline_id", "default", "origin_code", "services"] {
                if let Some(v) = item.get(key) {
                    let v = if key == "services" {
                        php_services(v.clone())
                    } else {
                        v.clone()
                    };
                    source.fields.insert(key.into(), v);
                }
            }
        }
    }

    fn update_sources(&mut self, ctx: &Ctx) -> Reply {
        let items = body_items(ctx);
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let rid = request_id(item, i);
            let id = item.get("id").and_then(Value::as_i64).unwrap_or_default();
            if !self.owns(ctx.integration, id) {
                errors.push(FieldError::new(
                    &rid,
                    "NotFound",
                    "id",
                    format!("The source {id} does not exist."),
                ));
            } else if !seen.insert(id) {
                errors.push(FieldError::new(
                    &rid,
                    "NotUnique",
                    "id",
                    format!("The source {id} is repeated in the request."),
                ));
            }
            self.check_source_fields(item, &rid, &mut errors);
        }
        if !errors.is_empty() {
            return kommo_validation(&errors);
        }
        let mut updated = Vec::new();
        for item in &items {
            let id = item.get("id").and_then(Value::as_i64).unwrap_or_default();
            self.apply_update(id, item);
            if let Some(source) = self.sources.get(&id) {
                updated.push(self.source_json(id, source, &ctx.origin));
            }
        }
        Reply::Hal(
            StatusCode::OK,
            json!({ "_total_items": updated.len(), "_embedded": { "sources": updated } }),
        )
    }

    fn path_id(ctx: &Ctx) -> i64 {
        ctx.path
            .get("id")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default()
    }

    /// A source of the integration; one it deleted answers 204 (as the official SDK's example
    /// expects after `deleteOne`), any other ID the 404 problem.
    fn get_source(&mut self, ctx: &Ctx) -> Reply {
        let id = Self::path_id(ctx);
        if self.owns(ctx.integration, id)
            && let Some(source) = self.sources.get(&id)
        {
            return Reply::Hal(StatusCode::OK, self.source_json(id, source, &ctx.origin));
        }
        let deleted = self
            .deleted
            .iter()
            .any(|((owner, _), deleted_id)| *owner == ctx.integration && *deleted_id == id);
        if deleted {
            return Reply::Empty(StatusCode::NO_CONTENT);
        }
        kommo_problem(StatusCode::NOT_FOUND, "Source not found")
    }

    fn update_source(&mut self, ctx: &Ctx) -> Reply {
        let id = Self::path_id(ctx);
        if !self.owns(ctx.integration, id) {
            return kommo_problem(StatusCode::NOT_FOUND, "Source not found");
        }
        let item = ctx.body.clone().unwrap_or_else(|| json!({}));
        let mut errors = Vec::new();
        self.check_source_fields(&item, "0", &mut errors);
        if !errors.is_empty() {
            return kommo_validation(&errors);
        }
        self.apply_update(id, &item);
        match self.sources.get(&id) {
            Some(source) => Reply::Hal(StatusCode::OK, self.source_json(id, source, &ctx.origin)),
            None => kommo_problem(StatusCode::NOT_FOUND, "Source not found"),
        }
    }

    fn remove_source(&mut self, id: i64) {
        if let Some(source) = self.sources.remove(&id)
            && let Some(external) = str_of_map(&source.fields, "external_id")
        {
            self.deleted
                .insert((source.owner, external.to_string()), id);
        }
    }

    fn delete_sources(&mut self, ctx: &Ctx) -> Reply {
        let items = body_items(ctx);
        let mut errors = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let id = item.get("id").and_then(Value::as_i64).unwrap_or_default();
            if !self.owns(ctx.integration, id) {
                errors.push(FieldError::new(
                    request_id(item, i),
                    "NotFound",
                    "id",
                    format!("The source {id} does not exist."),
                ));
            }
        }
        if !errors.is_empty() {
            return kommo_validation(&errors);
        }
        for item in &items {
            let id = item.get("id").and_then(Value::as_i64).unwrap_or_default();
            self.remove_source(id);
        }
        Reply::Empty(StatusCode::NO_CONTENT)
    }

    fn delete_source(&mut self, ctx: &Ctx) -> Reply {
        let id = Self::path_id(ctx);
        if !self.owns(ctx.integration, id) {
            return kommo_problem(StatusCode::NOT_FOUND, "Source not found");
        }
        self.remove_source(id);
        Reply::Empty(StatusCode::NO_CONTENT)
    }

    // ------------------------------------------------------------------------------ widgets

    fn widget_json(&self, widget: &Widget, origin: &str, with_settings: bool) -> Value {
        let mut out = widget.fields.clone();
        out.insert(
            "is_active_in_account".into(),
            Value::Bool(widget.settings.is_some()),
        );
        if with_settings && let Some(settings) = &widget.settings {
            out.insert("settings".into(), Value::Object(settings.clone()));
        }
        let code = str_of_map(&widget.fields, "code").unwrap_or_default();
        out.insert(
            "_links".into(),
            self_link(format!("{origin}/api/v4/widgets/{}", encode_segment(code))),
        );
        Value::Object(out)
    }

    fn widget_index(&self, ctx: &Ctx) -> Option<usize> {
        let code = ctx.path.get("widget_code")?;
        self.widgets
            .iter()
            .position(|w| str_of_map(&w.fields, "code") == Some(code.as_str()))
    }

    fn list_widgets(&self, ctx: &Ctx) -> Reply {
        let (page, limit) = paging(ctx);
        let items: Vec<Value> = page_of(&self.widgets, page, limit)
            .iter()
            .map(|w| self.widget_json(w, &ctx.origin, false))
            .collect();
        if items.is_empty() {
            return Reply::Empty(StatusCode::NO_CONTENT);
        }
        let href = |p: u64| format!("{}/api/v4/widgets?limit={limit}&page={p}", ctx.origin);
        Reply::Hal(
            StatusCode::OK,
            json!({
                "_page": page,
                "_links": page_links(href, page, items.len() as u64 == limit),
                "_embedded": { "widgets": items },
            }),
        )
    }

    fn get_widget(&self, ctx: &Ctx) -> Reply {
        match self.widget_index(ctx) {
            Some(i) => Reply::Hal(
                StatusCode::OK,
                self.widget_json(&self.widgets[i], &ctx.origin, true),
            ),
            None => kommo_problem(StatusCode::NOT_FOUND, "Widget not found"),
        }
    }

    fn install_widget(&mut self, ctx: &Ctx) -> Reply {
        let Some(index) = self.widget_index(ctx) else {
            return kommo_problem(StatusCode::NOT_FOUND, "Widget not found");
        };
        let settings = ctx
            .body
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut errors = Vec::new();
        let template = self.widgets[index]
            .fields
            .get("settings_template")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for field in &template {
            let Some(key) = str_of(field, "key") else {
                continue;
            };
            let kind = str_of(field, "type").unwrap_or("");
            let value = settings.get(key);
            let blank = match value {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                _ => false,
            };
            if blank {
                if is_true(field.get("is_required")) {
                    errors.push(FieldError::new(
                        "0",
                        "NotBlank",
                        key,
                        "This value should not be blank.",
                    ));
                }
                continue;
            }
            let fits = match kind {
                "text" | "pass" => value.is_some_and(Value::is_string),
                "users" | "users_lp" => value.is_some_and(Value::is_object),
                _ => true,
            };
            if !fits {
                errors.push(FieldError::new(
                    "0",
                    "InvalidType",
                    key,
                    format!("A {kind} setting does not take this value."),
                ));
            }
        }
        if !errors.is_empty() {
            return kommo_validation(&errors);
        }
        self.widgets[index].settings = Some(settings);
        Reply::Hal(
            StatusCode::OK,
            self.widget_json(&self.widgets[index], &ctx.origin, true),
        )
    }

    fn uninstall_widget(&mut self, ctx: &Ctx) -> Reply {
        let Some(index) = self.widget_index(ctx) else {
            return kommo_problem(StatusCode::NOT_FOUND, "Widget not found");
        };
        if self.widgets[index].settings.take().is_none() {
            return kommo_problem(StatusCode::NOT_FOUND, "Widget is not installed");
        }
        Reply::Empty(StatusCode::NO_CONTENT)
    }

    fn continue_bot(&mut self, ctx: &Ctx) -> Reply {
        let get = |name: &str| ctx.path.get(name).cloned().unwrap_or_default();
        let key = (get("bot_kind"), get("bot_id"), get("continue_id"));
        let Some(index) = self.waiting_bots.iter().position(|w| *w == key) else {
            return kommo_problem(
                StatusCode::NOT_FOUND,
                "No widget block is waiting for this continuation",
            );
        };
        self.waiting_bots.remove(index);
        self.continued.push(ContinuedBot {
            kind: key.0,
            bot_id: key.1,
            continue_id: key.2,
            data: ctx.body.as_ref().and_then(|b| b.get("data")).cloned(),
        });
        Reply::Empty(StatusCode::ACCEPTED)
    }

    // ------------------------------------------------------------------------ incoming leads

    fn new_entity_id(&mut self) -> i64 {
        let id = self.next_entity_id;
        self.next_entity_id += 2;
        id
    }

    fn new_uid(&mut self) -> String {
        loop {
            let uid: String = (0..60)
                .map(|_| char::from_digit(self.rng.u32(..16), 16).unwrap_or('0'))
                .collect();
            if !self.lead_by_uid.contains_key(&uid) {
                return uid;
            }
        }
    }

    fn refs(ids: &[i64], kind: &str, origin: &str, decided: bool) -> Value {
        Value::Array(
            ids.iter()
                .map(|id| {
                    let mut entity = json!({
                        "id": id,
                        "_links": self_link(format!("{origin}/api/v4/{kind}/{id}")),
                    });
                    if decided {
                        entity["is_deleted"] = json!(false);
                        entity["is_unsorted"] = json!(false);
                    }
                    entity
                })
                .collect(),
        )
    }

    fn lead_json(&self, lead: &Lead, origin: &str) -> Value {
        let mut out = Map::new();
        out.insert("uid".into(), json!(lead.uid));
        out.insert("source_uid".into(), lead.source_uid.clone());
        out.insert("source_name".into(), lead.source_name.clone());
        out.insert("category".into(), json!(lead.category));
        if let Some(p) = lead.pipeline_id {
            out.insert("pipeline_id".into(), json!(p));
        }
        out.insert("created_at".into(), json!(lead.created_at));
        if let Some(m) = &lead.metadata {
            out.insert("metadata".into(), m.clone());
        }
        out.insert("account_id".into(), json!(self.account_id));
        out.insert(
            "_links".into(),
            self_link(format!("{origin}/api/v4/leads/unsorted/{}", lead.uid)),
        );
        out.insert(
            "_embedded".into(),
            json!({
                "contacts": Self::refs(&lead.contacts, "contacts", origin, false),
                "leads": Self::refs(&lead.leads, "leads", origin, false),
                "companies": Self::refs(&lead.companies, "companies", origin, false),
            }),
        );
        Value::Object(out)
    }

    fn list_incoming_leads(&self, ctx: &Ctx) -> Reply {
        let uids = strings(ctx.query.get("filter[uid][]"));
        let categories = strings(ctx.query.get("filter[category][]"));
        let pipeline = ctx.query.get("filter[pipeline_id]").and_then(Value::as_i64);
        let order = ctx
            .query
            .get("order[created_at]")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut leads: Vec<&Lead> = self
            .leads
            .iter()
            .filter(|l| l.state == LeadState::Waiting)
            .filter(|l| uids.as_ref().is_none_or(|u| u.contains(&l.uid)))
            .filter(|l| categories.as_ref().is_none_or(|c| c.contains(&l.category)))
            .filter(|l| pipeline.is_none_or(|p| l.pipeline_id == Some(p)))
            .collect();
        // Newest first unless asked otherwise, as the documents' example lists them.
        if order.as_deref() == Some("asc") {
            leads.sort_by_key(|l| l.created_at);
        } else {
            leads.sort_by_key(|l| std::cmp::Reverse(l.created_at));
        }
        let (page, limit) = paging(ctx);
        let items: Vec<Value> = page_of(&leads, page, limit)
            .iter()
            .map(|l| self.lead_json(l, &ctx.origin))
            .collect();
        if items.is_empty() {
            return Reply::Empty(StatusCode::NO_CONTENT);
        }
        let href = |p: u64| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for uid in uids.iter().flatten() {
                query.append_pair("filter[uid][]", uid);
            }
            for category in categories.iter().flatten() {
                query.append_pair("filter[category][]", category);
            }
            if let Some(p) = pipeline {
                query.append_pair("filter[pipeline_id]", &p.to_string());
            }
            if let Some(o) = &order {
                query.append_pair("order[created_at]", o);
            }
            query.append_pair("limit", &limit.to_string());
            query.append_pair("page", &p.to_string());
            format!("{}/api/v4/leads/unsorted?{}", ctx.origin, query.finish())
        };
        Reply::Hal(
            StatusCode::OK,
            json!({
                "_page": page,
                "_links": page_links(href, page, items.len() as u64 == limit),
                "_embedded": { "unsorted": items },
            }),
        )
    }

    /// Every incoming lead, whatever its state, in the order they arrived.
    pub(crate) fn stored_leads(&self, origin: &str) -> Vec<super::StoredIncomingLead> {
        self.leads
            .iter()
            .map(|lead| super::StoredIncomingLead {
                uid: lead.uid.clone(),
                request_id: lead.request_id.clone(),
                state: lead.state.word().to_string(),
                lead: self.lead_json(lead, origin),
            })
            .collect()
    }

    fn lead_index(&self, ctx: &Ctx) -> Option<usize> {
        let uid = ctx.path.get("uid")?;
        self.lead_by_uid.get(uid).copied()
    }

    /// Stores a new lead and indexes it.
    fn push_lead(&mut self, lead: Lead) {
        self.lead_by_uid.insert(lead.uid.clone(), self.leads.len());
        if lead.state == LeadState::Waiting
            && let Some(fingerprint) = &lead.fingerprint
        {
            self.waiting_fingerprints.insert(fingerprint.clone());
        }
        self.leads.push(lead);
    }

    /// Moves a lead out of `Waiting`.
    fn set_state(&mut self, index: usize, state: LeadState) {
        let lead = &mut self.leads[index];
        if lead.state == LeadState::Waiting
            && state != LeadState::Waiting
            && let Some(fingerprint) = &lead.fingerprint
        {
            self.waiting_fingerprints.remove(fingerprint);
        }
        lead.state = state;
    }

    fn get_incoming_lead(&self, ctx: &Ctx) -> Reply {
        match self.lead_index(ctx) {
            Some(i) if self.leads[i].state == LeadState::Waiting => {
                Reply::Hal(StatusCode::OK, self.lead_json(&self.leads[i], &ctx.origin))
            }
            _ => kommo_problem(StatusCode::NOT_FOUND, "Incoming lead not found"),
        }
    }

    fn add_incoming(&mut self, ctx: &Ctx, category: &str) -> Reply {
        let items = body_items(ctx);
        let mut errors = Vec::new();
        let mut fingerprints = Vec::with_capacity(items.len());
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let rid = request_id(item, i);
            if let Some(pipeline) = item.get("pipeline_id").and_then(Value::as_i64)
                && !self.pipelines.contains(&pipeline)
            {
                errors.push(FieldError::new(
                    &rid,
                    "NotSupportedChoice",
                    "pipeline_id",
                    format!("The pipeline {pipeline} does not exist."),
                ));
            }
            let mut data = item.clone();
            if let Value::Object(map) = &mut data {
                map.remove("request_id");
            }
            let fingerprint = format!("{category}:{}", canonical(&data));
            let waiting = self.waiting_fingerprints.contains(&fingerprint);
            if waiting || !seen.insert(fingerprint.clone()) {
                errors.push(FieldError::new(
                    &rid,
                    "Duplicate",
                    "",
                    "Identical data is already in Incoming leads.",
                ));
            }
            fingerprints.push(fingerprint);
        }
        if !errors.is_empty() {
            return kommo_validation(&errors);
        }
        let mut created = Vec::new();
        for (i, (item, fingerprint)) in items.iter().zip(fingerprints).enumerate() {
            let uid = self.new_uid();
            let embedded = |name: &str| {
                item.pointer(&format!("/_embedded/{name}"))
                    .and_then(Value::as_array)
                    .is_some_and(|l| !l.is_empty())
            };
            let contacts = if embedded("contacts") {
                vec![self.new_entity_id()]
            } else {
                Vec::new()
            };
            let companies = if embedded("companies") {
                vec![self.new_entity_id()]
            } else {
                Vec::new()
            };
            let leads = vec![self.new_entity_id()];
            let mut metadata = item.get("metadata").cloned();
            if let Some(Value::Object(m)) = &mut metadata {
                // Write-only: sent, never returned.
                m.remove("is_call_event_needed");
            }
            let lead = Lead {
                uid: uid.clone(),
                category: category.to_string(),
                source_uid: item.get("source_uid").cloned().unwrap_or(Value::Null),
                source_name: item.get("source_name").cloned().unwrap_or(Value::Null),
                pipeline_id: Some(
                    item.get("pipeline_id")
                        .and_then(Value::as_i64)
                        .unwrap_or(self.pipelines[0]),
                ),
                created_at: item
                    .get("created_at")
                    .and_then(Value::as_i64)
                    .unwrap_or(ctx.now),
                metadata,
                contacts,
                companies,
                leads,
                state: LeadState::Waiting,
                fingerprint: Some(fingerprint),
                request_id: str_of(item, "request_id").map(str::to_string),
            };
            self.events.push(("add", lead.added_event(self.account_id)));
            created.push(json!({
                "uid": uid,
                "account_id": self.account_id,
                "request_id": request_id(item, i),
                "_links": self_link(format!("{}/api/v4/leads/unsorted/{uid}", ctx.origin)),
                "_embedded": {
                    "contacts": Self::refs(&lead.contacts, "contacts", &ctx.origin, false),
                    "leads": Self::refs(&lead.leads, "leads", &ctx.origin, false),
                    "companies": Self::refs(&lead.companies, "companies", &ctx.origin, false),
                },
            }));
            self.push_lead(lead);
        }
        Reply::Hal(
            StatusCode::OK,
            json!({ "_total_items": created.len(), "_embedded": { "unsorted": created } }),
        )
    }

    /// Accept (`true`) or decline.
    fn decide(&mut self, ctx: &Ctx, accept: bool) -> Reply {
        let Some(index) = self.lead_index(ctx) else {
            return kommo_problem(StatusCode::NOT_FOUND, "Incoming lead not found");
        };
        let state = self.leads[index].state;
        if state != LeadState::Waiting {
            return kommo_problem(
                StatusCode::BAD_REQUEST,
                &format!("The incoming lead has already been {}", state.word()),
            );
        }
        self.set_state(
            index,
            if accept {
                LeadState::Accepted { at: ctx.now }
            } else {
                LeadState::Declined { at: ctx.now }
            },
        );
        let lead = &self.leads[index];
        self.events.push(("delete", lead.decided_event(accept)));
        let mut out = json!({
            "uid": lead.uid,
            "category": lead.category,
            "created_at": lead.created_at,
            "_embedded": {
                "leads": Self::refs(&lead.leads, "leads", &ctx.origin, false),
                "contacts": Self::refs(&lead.contacts, "contacts", &ctx.origin, true),
                "companies": Self::refs(&lead.companies, "companies", &ctx.origin, true),
            },
        });
        if let Some(p) = lead.pipeline_id {
            out["pipeline_id"] = json!(p);
        }
        Reply::Hal(StatusCode::OK, out)
    }

    fn link(&mut self, ctx: &Ctx) -> Reply {
        // The documents give link no 404: an unknown UID is a bad request.
        let Some(index) = self.lead_index(ctx) else {
            return kommo_problem(StatusCode::BAD_REQUEST, "Incoming lead not found");
        };
        let lead = &self.leads[index];
        if lead.category != "chats" {
            return kommo_problem(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Only incoming leads of the chats category can be linked; this one is {}",
                    lead.category
                ),
            );
        }
        if lead.state != LeadState::Waiting {
            return kommo_problem(
                StatusCode::BAD_REQUEST,
                &format!("The incoming lead has already been {}", lead.state.word()),
            );
        }
        let link = ctx
            .body
            .as_ref()
            .and_then(|b| b.get("link"))
            .cloned()
            .unwrap_or_default();
        let entity_id = link
            .get("entity_id")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let entity_type = str_of(&link, "entity_type").unwrap_or("leads");
        let contact = link.pointer("/metadata/contact_id").and_then(Value::as_i64);
        let uid = lead.uid.clone();
        self.events
            .push(("delete", lead.linked_event(entity_type, entity_id)));
        self.set_state(index, LeadState::Linked);
        let one = |kind: &str| {
            if entity_type == kind {
                Self::refs(&[entity_id], kind, &ctx.origin, false)
            } else {
                json!([])
            }
        };
        Reply::Hal(
            StatusCode::OK,
            json!({
                "uid": uid,
                "_embedded": {
                    "leads": one("leads"),
                    "contacts": Self::refs(contact.as_slice(), "contacts", &ctx.origin, false),
                    "customers": one("customers"),
                },
            }),
        )
    }

    fn summary(&self, ctx: &Ctx) -> Reply {
        let uids = strings(ctx.query.get("filter[uid][]"));
        let pipeline = ctx.query.get("filter[pipeline_id]").and_then(Value::as_i64);
        let int = |name: &str| ctx.query.get(name).and_then(Value::as_i64);
        let from = int("filter[created_at][from]").or(int("filter[created_at]"));
        let to = int("filter[created_at][to]");
        let matching: Vec<&Lead> = self
            .leads
            .iter()
            .filter(|l| uids.as_ref().is_none_or(|u| u.contains(&l.uid)))
            .filter(|l| pipeline.is_none_or(|p| l.pipeline_id == Some(p)))
            .filter(|l| from.is_none_or(|f| l.created_at >= f))
            .filter(|l| to.is_none_or(|t| l.created_at <= t))
            .collect();
        let mut categories: BTreeMap<String, u64> = BTreeMap::new();
        let (mut accepted, mut declined, mut sort_time) = (0u64, 0u64, 0i64);
        for lead in &matching {
            *categories.entry(lead.category.clone()).or_default() += 1;
            match lead.state {
                LeadState::Accepted { at } => {
                    accepted += 1;
                    sort_time += (at - lead.created_at).max(0);
                }
                LeadState::Declined { at } => {
                    declined += 1;
                    sort_time += (at - lead.created_at).max(0);
                }
                LeadState::Waiting | LeadState::Linked => {}
            }
        }
        let decided = accepted + declined;
        let average = if decided == 0 {
            0
        } else {
            sort_time / decided as i64
        };
        let categories: Map<String, Value> = categories
            .into_iter()
            .map(|(k, n)| (k, json!({ "total": n })))
            .collect();
        // PHP's json_encode sends an empty map as `[]` (openapi/EVIDENCE.md).
        let categories = if categories.is_empty() {
            json!([])
        } else {
            Value::Object(categories)
        };
        Reply::Hal(
            StatusCode::OK,
            json!({
                "total": matching.len(),
                "accepted": accepted,
                "declined": declined,
                "average_sort_time": average,
                "categories": categories,
            }),
        )
    }
}

// ---------------------------------------------------------------------------------- helpers

/// `[{"id": 1}, ...]`: an incoming lead's linked entities in the state document.
fn ids_json(ids: &[i64]) -> Value {
    Value::Array(ids.iter().map(|id| json!({ "id": id })).collect())
}

/// Which integration owns a source in the state document: 0 (the default) is
/// [`Config::kommo_token`]'s, 1 the first [`Config::other_integration`], and so on.
fn owner_of(value: Option<Value>, integrations: usize, at: &str) -> Result<usize, String> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n < integrations => Ok(n),
            _ => Err(format!(
                "{at}: `integration` is 0 (the main token){}, not {v}",
                if integrations > 1 {
                    format!(" to {} (the other integrations)", integrations - 1)
                } else {
                    String::new()
                }
            )),
        },
    }
}

/// `(kind, bot_id, continue_id)` of a widget block in the state document.
fn bot_key(bot: &Value) -> Result<(String, String, String), String> {
    let get = |key: &str| {
        str_of(bot, key)
            .map(str::to_string)
            .ok_or_else(|| format!("needs a string `{key}` (kind, bot_id, continue_id)"))
    };
    let kind = get("kind")?;
    if kind != "salesbot" && kind != "marketingbot" {
        return Err(format!("`kind` is salesbot or marketingbot, not {kind:?}"));
    }
    Ok((kind, get("bot_id")?, get("continue_id")?))
}

/// A JSON value's kind, for messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Services as Kommo's PHP answers them: a service without settings has `params: []` (the
/// official SDK sends, and the API answers, PHP's empty array; openapi/EVIDENCE.md).
fn php_services(services: Value) -> Value {
    match services {
        Value::Array(list) => Value::Array(
            list.into_iter()
                .map(|mut service| {
                    if let Value::Object(map) = &mut service {
                        let empty = match map.get("params") {
                            None | Some(Value::Null) => true,
                            Some(Value::Object(p)) => p.is_empty(),
                            _ => false,
                        };
                        if empty {
                            map.insert("params".into(), json!([]));
                        }
                    }
                    service
                })
                .collect(),
        ),
        other => other,
    }
}

fn self_link(href: String) -> Value {
    json!({ "self": { "href": href } })
}

/// `_links` of a page: `self`, `next` when the page is full (the next one may then be empty,
/// and answer 204, as Kommo's sometimes is), `prev` after the first.
fn page_links(href: impl Fn(u64) -> String, page: u64, full: bool) -> Value {
    let mut links = json!({ "self": { "href": href(page) } });
    if full {
        links["next"] = json!({ "href": href(page + 1) });
    }
    if page > 1 {
        links["prev"] = json!({ "href": href(page - 1) });
    }
    links
}

/// `page` (from 1) and `limit` (at most 250: the schema refuses more) of the request.
fn paging(ctx: &Ctx) -> (u64, u64) {
    let get = |name: &str| {
        ctx.query
            .get(name)
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
    };
    (
        get("page").unwrap_or(1),
        get("limit").unwrap_or(DEFAULT_LIMIT),
    )
}

fn page_of<T>(items: &[T], page: u64, limit: u64) -> &[T] {
    let start = page.saturating_sub(1).saturating_mul(limit);
    let start = usize::try_from(start)
        .unwrap_or(usize::MAX)
        .min(items.len());
    let end = start
        .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
        .min(items.len());
    &items[start..end]
}

fn body_items(ctx: &Ctx) -> Vec<Value> {
    ctx.body
        .as_ref()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A batch item's `request_id`, else its index as a string.
fn request_id(item: &Value, index: usize) -> String {
    str_of(item, "request_id").map_or_else(|| index.to_string(), str::to_string)
}

fn str_of<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

fn str_of_map<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    map.get(key).and_then(Value::as_str)
}

fn is_true(value: Option<&Value>) -> bool {
    value == Some(&Value::Bool(true))
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value.and_then(Value::as_array).map(|list| {
        list.iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    })
}

/// JSON with object keys sorted, so equal data gives equal text.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// A path segment with the few characters that would break a URL escaped.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
