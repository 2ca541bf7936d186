//! The data a fake starts with: by default, what the vendors' documents show.

use serde_json::{Value, json};

use lead_intake::spec::{
    CLOSEBOT_LIST_SOURCES_EXAMPLE as CLOSEBOT_PAGE, KOMMO_INSTALL_WIDGET_EXAMPLE as INSTALL_WIDGET,
    KOMMO_LIST_INCOMING_LEADS_EXAMPLE as LIST_INCOMING_LEADS,
    KOMMO_LIST_WIDGETS_EXAMPLE as LIST_WIDGETS,
};

/// The data a [`FakeServer`](super::FakeServer) starts with.
///
/// [`Fixtures::documented`] (the default) is what the vendors' documents show, with the shapes
/// the API sends beyond them (openapi/EVIDENCE.md): the widgets
/// `amo_dropbox`, `amo_mailchimp` and `amo_asterisk` (not installed; four required settings),
/// the three incoming leads of the list example (a form, a chat and a call), the pipelines the
/// examples use, two widget blocks waiting for `continue`, and 25 CloseBot sources shaped like
/// the documented one. The integration starts with no Kommo sources. Beyond the documents:
/// `amo_asterisk` has a numeric `version`, a null `rating` and `settings: []`; the call's
/// `from` is a number, the form's `form_id` a number and its `referer` null; every fifth
/// CloseBot source has a null `wallet` and null `tagFilterConfig`s; a source's service without
/// settings is answered with `params: []`, and a summary with no leads with `categories: []`.
///
/// What [`Fixtures::documented`] holds, in full:
///
/// | what | values |
/// |---|---|
/// | pipelines | `6950551` (the main one: sources and leads without `pipeline_id` go there), `5867030`, `5884544` |
/// | widgets | `amo_dropbox` (id 742; setting `conf`, custom, optional), `amo_mailchimp` (id 796; `api`, custom, optional), `amo_asterisk` (id 972, version `116`, no rating; required `login` text, `password` pass, `phones` users, `script_path` text); none installed |
/// | incoming leads | a form (`5af9dedb…`), a chat (`9ca09781…`) and a call (`400c5eb6…`), all waiting in pipeline `6950551` (the uids of the list example in `openapi/examples/kommo/listIncomingLeads.response.200.json`) |
/// | widget blocks waiting for `continue` | `salesbot` bot `4131` continue `7a1c2e`; `marketingbot` bot `4131` continue `7a1c2e` |
/// | Kommo sources | none |
/// | CloseBot sources | 25: `sourceId` `src-001` … `src-025` of agency `agency-0001`, named `Globex 01`, `Initech 02`, `Umbrella 03`, `Hooli 04`, `Acme 05`, … (five names in turn), categories `HubSpot`, `WebHook`, `GHL`, … in turn, connected unless the number is a multiple of 4, a null `wallet` when it is a multiple of 5 |
///
/// ```
/// use lead_intake_fake::{Config, Fixtures};
/// let fixtures = Fixtures::empty()
///     .pipelines([1001, 1002])
///     .source(serde_json::json!({"name": "Old chat", "external_id": "old-1"}))
///     .waiting_bot("salesbot", "17", "abc");
/// let config = Config::default().fixtures(fixtures);
/// # let _ = config;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Fixtures {
    pub(crate) pipelines: Vec<i64>,
    pub(crate) sources: Vec<Value>,
    pub(crate) widgets: Vec<Value>,
    pub(crate) incoming_leads: Vec<Value>,
    pub(crate) waiting_bots: Vec<(String, String, String)>,
    pub(crate) closebot_sources: Vec<Value>,
}

impl Default for Fixtures {
    fn default() -> Self {
        Self::documented()
    }
}

/// The pipelines of the documents' examples; the first is the main one.
const DOCUMENTED_PIPELINES: [i64; 3] = [6950551, 5867030, 5884544];

impl Fixtures {
    /// What the vendors' documents show (see the type's documentation).
    pub fn documented() -> Self {
        let mut widgets: Vec<Value> = parse(LIST_WIDGETS)
            .pointer("/_embedded/widgets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut asterisk = parse(INSTALL_WIDGET);
        if let Value::Object(map) = &mut asterisk {
            map.remove("settings");
            map.insert("is_active_in_account".into(), Value::Bool(false));
            // Shapes the documents do not show but the API sends (openapi/EVIDENCE.md,
            // "Widget"): a numeric version, no rating, and PHP's `[]` for no settings.
            map.insert("version".into(), json!(116));
            map.insert("rating".into(), Value::Null);
            map.insert("settings".into(), json!([]));
        }
        widgets.push(asterisk);
        let mut incoming_leads = parse(LIST_INCOMING_LEADS)
            .pointer("/_embedded/unsorted")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Numbers where the documents say strings, and nulls (openapi/EVIDENCE.md,
        // "SipMetadata", "FormsMetadata"): the call's `from` is a phone number, the form's
        // `form_id` a number, the form's `referer` null.
        for lead in &mut incoming_leads {
            let category = lead
                .get("category")
                .and_then(Value::as_str)
                .map(str::to_string);
            let Some(Value::Object(metadata)) = lead.get_mut("metadata") else {
                continue;
            };
            match category.as_deref() {
                Some("sip") => {
                    metadata.insert("from".into(), json!(14155551234_i64));
                }
                Some("forms") => {
                    if let Some(id) = metadata
                        .get("form_id")
                        .and_then(Value::as_str)
                        .and_then(|id| id.parse::<i64>().ok())
                    {
                        metadata.insert("form_id".into(), json!(id));
                    }
                    metadata.insert("referer".into(), Value::Null);
                }
                _ => {}
            }
        }
        Self {
            pipelines: DOCUMENTED_PIPELINES.to_vec(),
            sources: Vec::new(),
            widgets,
            incoming_leads,
            waiting_bots: vec![
                ("salesbot".into(), "4131".into(), "7a1c2e".into()),
                ("marketingbot".into(), "4131".into(), "7a1c2e".into()),
            ],
            closebot_sources: (1..=25).map(closebot_source).collect(),
        }
    }

    /// Nothing but the documented pipelines: no widgets, incoming leads, waiting bots or
    /// CloseBot sources.
    pub fn empty() -> Self {
        Self {
            pipelines: DOCUMENTED_PIPELINES.to_vec(),
            sources: Vec::new(),
            widgets: Vec::new(),
            incoming_leads: Vec::new(),
            waiting_bots: Vec::new(),
            closebot_sources: Vec::new(),
        }
    }

    /// The account's pipelines, replacing the others; the first is the main one (where a
    /// source without `pipeline_id` goes).
    pub fn pipelines(mut self, ids: impl IntoIterator<Item = i64>) -> Self {
        self.pipelines = ids.into_iter().collect();
        self
    }

    /// A source the main integration already owns, as `addSources` takes it (`name` and
    /// `external_id`, optionally `pipeline_id`, `default`, `origin_code`, `services`).
    pub fn source(mut self, source: Value) -> Self {
        self.sources.push(source);
        self
    }

    /// A widget, in the spec's `Widget` shape (`settings_template` decides what installing it
    /// requires).
    pub fn widget(mut self, widget: Value) -> Self {
        self.widgets.push(widget);
        self
    }

    /// An incoming lead, in the spec's `IncomingLead` shape (see
    /// [`FakeServer::add_incoming_lead`](super::FakeServer::add_incoming_lead)).
    pub fn incoming_lead(mut self, lead: Value) -> Self {
        self.incoming_leads.push(lead);
        self
    }

    /// A widget block waiting for `continue` (`kind` is `salesbot` or `marketingbot`).
    pub fn waiting_bot(mut self, kind: &str, bot_id: &str, continue_id: &str) -> Self {
        self.waiting_bots
            .push((kind.into(), bot_id.into(), continue_id.into()));
        self
    }

    /// A CloseBot source, in the spec's `Source` shape.
    pub fn closebot_source(mut self, source: Value) -> Self {
        self.closebot_sources.push(source);
        self
    }

    /// No CloseBot sources (the others are kept).
    pub fn without_closebot_sources(mut self) -> Self {
        self.closebot_sources.clear();
        self
    }
}

fn parse(text: &str) -> Value {
    // The examples are checked by `cargo xtask validate`; a broken one only empties a fixture.
    serde_json::from_str(text).unwrap_or(Value::Null)
}

const NAMES: [&str; 5] = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"];
const CATEGORIES: [&str; 3] = ["GHL", "HubSpot", "WebHook"];

/// The `n`th generated CloseBot source: the documented source with distinct values.
fn closebot_source(n: usize) -> Value {
    let mut source = parse(CLOSEBOT_PAGE)
        .pointer("/results/0")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let category = CATEGORIES[n % CATEGORIES.len()];
    let only = |wanted: &str, value: String| {
        if category == wanted {
            Value::String(value)
        } else {
            Value::Null
        }
    };
    let overrides = json!({
        "agencyId": "agency-0001",
        "sourceId": format!("src-{n:03}"),
        "name": format!("{} {n:02}", NAMES[n % NAMES.len()]),
        "category": category,
        "key": format!("crm-key-{n:03}"),
        "accessToken": format!("crm-token-{n:03}-0"),
        "address": format!("https://crm{n:03}.example.com"),
        "connected": !n.is_multiple_of(4),
        "webhookCallback": only("WebHook", format!("https://hooks.example.com/{n:03}")),
        "hubSpotOwnerId": only("HubSpot", format!("owner-{n:03}")),
    });
    if let (Value::Object(base), Value::Object(over)) = (&mut source, overrides) {
        base.extend(over);
        // Every fifth has no wallet and its bots no tag filter: CloseBot answers null for an
        // object its document cannot mark nullable (openapi/EVIDENCE.md, CloseBot).
        if n.is_multiple_of(5) {
            base.insert("wallet".into(), Value::Null);
            if let Some(Value::Array(bots)) = base.get_mut("bots") {
                for bot in bots.iter_mut().filter_map(Value::as_object_mut) {
                    bot.insert("tagFilterConfig".into(), Value::Null);
                }
            }
        }
    }
    source
}
