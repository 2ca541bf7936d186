//! CloseBot's state and its one operation: the agency's sources, in zero-based pages.

use std::cmp::Ordering;

use http::StatusCode;
use serde_json::{Value, json};

use super::reply::{FieldError, Reply, closebot_problem, closebot_validation};
use super::spec::{Api, Specs};
use super::{Config, Ctx, FakeError};

const PATH: &str = "/agency/source";
const DEFAULT_PAGE_SIZE: u64 = 20;

pub(crate) struct CloseBot {
    sources: Vec<Value>,
    refreshes: u64,
}

impl CloseBot {
    pub(crate) fn new(config: &Config, specs: &Specs) -> Result<Self, FakeError> {
        for source in &config.fixtures.closebot_sources {
            specs
                .check_component(Api::CloseBot, "Source", source)
                .map_err(|e| FakeError::Fixture(format!("CloseBot source: {e}")))?;
        }
        Ok(Self {
            sources: config.fixtures.closebot_sources.clone(),
            refreshes: 0,
        })
    }

    /// The whole state as JSON (`GET /__admin/state`'s `closebot`).
    pub(crate) fn to_state(&self) -> Value {
        json!({ "sources": self.sources, "token_refreshes": self.refreshes })
    }

    /// A state read from JSON (`PUT /__admin/state`'s `closebot`; `null` or a missing key is no
    /// sources). Every source is checked against the spec's `Source`.
    pub(crate) fn from_state(specs: &Specs, state: &Value) -> Result<Self, String> {
        let empty = serde_json::Map::new();
        let state = match state {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "closebot: must be an object, not {}",
                    super::kommo::kind_of(other)
                ));
            }
        };
        if let Some(unknown) = state
            .keys()
            .find(|k| !["sources", "token_refreshes"].contains(&k.as_str()))
        {
            return Err(format!(
                "closebot: unknown key {unknown:?} (known: sources, token_refreshes)"
            ));
        }
        let sources = match state.get("sources") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(other) => {
                return Err(format!(
                    "closebot.sources: must be a list, not {}",
                    super::kommo::kind_of(other)
                ));
            }
        };
        for (i, source) in sources.iter().enumerate() {
            specs
                .check_component(Api::CloseBot, "Source", source)
                .map_err(|e| format!("closebot.sources[{i}]: {e}"))?;
        }
        let refreshes = match state.get("token_refreshes") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or_else(|| {
                format!("closebot.token_refreshes: must be an unsigned integer, not {v}")
            })?,
        };
        Ok(Self { sources, refreshes })
    }

    pub(crate) fn handle(&mut self, operation: &str, ctx: &Ctx) -> Reply {
        match operation {
            "listSources" => self.list_sources(ctx),
            _ => closebot_problem(StatusCode::NOT_FOUND, "No such endpoint.", PATH),
        }
    }

    fn list_sources(&mut self, ctx: &Ctx) -> Reply {
        let q = |name: &str| ctx.query.get(name);
        let page_size = q("pageSize")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_PAGE_SIZE);
        let page = q("page").and_then(Value::as_u64).unwrap_or(0);
        let search = q("query")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
            .filter(|s| !s.is_empty());
        let category = q("category")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
            .filter(|s| !s.is_empty());
        let order = q("order").and_then(Value::as_str).unwrap_or("+id");
        let (descending, field) = match order.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, order.strip_prefix('+').unwrap_or(order)),
        };
        let key = match field {
            "id" | "sourceId" => "sourceId",
            "name" => "name",
            "category" => "category",
            "address" => "address",
            "connected" => "connected",
            _ => {
                return closebot_validation(
                    &[FieldError::new(
                        "0",
                        "InvalidValue",
                        "order",
                        format!(
                            "Cannot order by {field:?}: use id, name, category, address or connected."
                        ),
                    )],
                    PATH,
                );
            }
        };
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_lowercase);
        let mut indices: Vec<usize> = (0..self.sources.len())
            .filter(|&i| {
                let s = &self.sources[i];
                search
                    .as_ref()
                    .is_none_or(|needle| text(s, "name").is_some_and(|n| n.contains(needle)))
                    && category
                        .as_ref()
                        .is_none_or(|c| text(s, "category").as_ref() == Some(c))
            })
            .collect();
        indices.sort_by(|&a, &b| {
            let ordering = compare(self.sources[a].get(key), self.sources[b].get(key));
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
        let total = indices.len();
        let start = usize::try_from(page.saturating_mul(page_size))
            .unwrap_or(usize::MAX)
            .min(total);
        let end = start
            .saturating_add(usize::try_from(page_size).unwrap_or(usize::MAX))
            .min(total);
        let chosen = &indices[start..end];
        if q("forceTokenRefresh") == Some(&Value::Bool(true)) {
            self.refreshes += 1;
            for &i in chosen {
                let n = i + 1;
                self.sources[i]["accessToken"] =
                    json!(format!("crm-token-{n:03}-{}", self.refreshes));
            }
        }
        let results: Vec<Value> = chosen.iter().map(|&i| self.sources[i].clone()).collect();
        Reply::Json(
            StatusCode::OK,
            json!({ "total": total, "results": results, "page": page, "pageSize": page_size }),
        )
    }
}

/// Strings by text (case-insensitive), booleans false first, nulls last.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let rank = |v: Option<&Value>| match v {
        None | Some(Value::Null) => 1,
        _ => 0,
    };
    match (a, b) {
        (Some(Value::String(x)), Some(Value::String(y))) => {
            x.to_lowercase().cmp(&y.to_lowercase()).then(x.cmp(y))
        }
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}
