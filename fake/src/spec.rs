//! The two specifications, read at run time: the operation table the router serves, and
//! validators for request bodies, parameters and responses derived from the schemas.
//!
//! The YAML is the library's (`lead_intake::spec`, embedded there), so the fake works from any
//! directory and from the published crate. Everything is parsed once per process; validators compile on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::{Map, Value};

use crate::schema::{Converter, Direction, deref, escape_token};

use lead_intake::spec::{CLOSEBOT_OPENAPI_YAML as CLOSEBOT_YAML, KOMMO_OPENAPI_YAML as KOMMO_YAML};

/// Which API an operation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Api {
    Kommo,
    CloseBot,
}

impl Api {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Api::Kommo => "kommo",
            Api::CloseBot => "closebot",
        }
    }
    fn index(self) -> usize {
        match self {
            Api::Kommo => 0,
            Api::CloseBot => 1,
        }
    }
}

/// Where a parameter travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
    Other,
}

/// One parameter of an operation, its schema resolved.
#[derive(Debug)]
pub(crate) struct Param {
    pub name: String,
    pub location: In,
    /// The OAS schema with any top-level `$ref` followed.
    pub schema: Value,
}

/// One operation of a spec.
#[derive(Debug)]
pub(crate) struct Operation {
    pub api: Api,
    pub id: String,
    pub method: http::Method,
    /// The path template, e.g. `/api/v4/sources/{id}` (axum 0.8 uses the same syntax).
    pub path: String,
    pub params: Vec<Param>,
    /// `(required, schema)` of the `application/json` request body.
    pub body: Option<(bool, Value)>,
    /// Status (or `default`) to the response object, `$ref`s followed.
    pub responses: Map<String, Value>,
}

impl Operation {
    /// `kommo.listSources`: unique across both specs (both have a `listSources`).
    pub(crate) fn qualified_id(&self) -> String {
        format!("{}.{}", self.api.name(), self.id)
    }
}

/// Converted `components/schemas` of one spec, for use as `$defs`.
type Defs = Map<String, Value>;

/// Both specs, their operations and a cache of compiled validators.
pub(crate) struct Specs {
    docs: [Value; 2],
    defs: Mutex<HashMap<(usize, Direction), Arc<Defs>>>,
    pub operations: Vec<Operation>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

/// The process-wide specs (parsed once). An error means the embedded YAML is broken, which the
/// crate's own tests catch.
pub(crate) fn specs() -> Result<&'static Specs, String> {
    static SPECS: OnceLock<Result<Specs, String>> = OnceLock::new();
    SPECS
        .get_or_init(Specs::load)
        .as_ref()
        .map_err(Clone::clone)
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Specs {
    fn load() -> Result<Specs, String> {
        let kommo: Value =
            serde_norway::from_str(KOMMO_YAML).map_err(|e| format!("openapi/kommo.yaml: {e}"))?;
        let closebot: Value = serde_norway::from_str(CLOSEBOT_YAML)
            .map_err(|e| format!("openapi/closebot.yaml: {e}"))?;
        let mut operations = Vec::new();
        for (api, doc) in [(Api::Kommo, &kommo), (Api::CloseBot, &closebot)] {
            operations.extend(operations_of(api, doc)?);
        }
        Ok(Specs {
            docs: [kommo, closebot],
            defs: Mutex::new(HashMap::new()),
            operations,
            validators: Mutex::new(HashMap::new()),
        })
    }

    fn doc(&self, api: Api) -> &Value {
        &self.docs[api.index()]
    }

    fn defs(&self, api: Api, dir: Direction) -> Result<Arc<Defs>, String> {
        let key = (api.index(), dir);
        if let Some(defs) = lock(&self.defs).get(&key) {
            return Ok(defs.clone());
        }
        let defs = Arc::new(Converter::new(self.doc(api), dir).defs()?);
        lock(&self.defs).insert(key, defs.clone());
        Ok(defs)
    }

    /// A compiled validator for an OAS schema of `api`, cached under `key`.
    fn validator(
        &self,
        api: Api,
        dir: Direction,
        key: &str,
        schema: &Value,
    ) -> Result<Arc<Validator>, String> {
        if let Some(v) = lock(&self.validators).get(key) {
            return Ok(v.clone());
        }
        let defs = self.defs(api, dir)?;
        let root = Converter::new(self.doc(api), dir).root(&defs, schema)?;
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("{key}: the schema does not compile: {e}"))?;
        let validator = Arc::new(validator);
        lock(&self.validators).insert(key.to_string(), validator.clone());
        Ok(validator)
    }

    /// The validator of operation `op`'s request body.
    pub(crate) fn body_validator(&self, op: usize) -> Result<Option<Arc<Validator>>, String> {
        let operation = &self.operations[op];
        let Some((_, schema)) = &operation.body else {
            return Ok(None);
        };
        let key = format!("{}#request", operation.qualified_id());
        self.validator(operation.api, Direction::Request, &key, schema)
            .map(Some)
    }

    /// The validator of parameter `param` of operation `op`.
    pub(crate) fn param_validator(
        &self,
        op: usize,
        param: usize,
    ) -> Result<Arc<Validator>, String> {
        let operation = &self.operations[op];
        let p = &operation.params[param];
        let key = format!("{}#param:{}", operation.qualified_id(), p.name);
        self.validator(operation.api, Direction::Request, &key, &p.schema)
    }

    /// Checks one response of operation `op` against the spec: the status is declared (or a
    /// `default` covers it), the media type is one the response declares (none when it declares
    /// no content), and the body validates against that media type's schema.
    pub(crate) fn check_response(
        &self,
        op: usize,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let operation = &self.operations[op];
        let status_key = status.to_string();
        let (key, response) = match operation.responses.get(&status_key) {
            Some(r) => (status_key, r),
            None => match operation.responses.get("default") {
                Some(r) => ("default".to_string(), r),
                None => {
                    let declared: Vec<&str> =
                        operation.responses.keys().map(String::as_str).collect();
                    return Err(format!(
                        "status {status} is not declared (declared: {})",
                        declared.join(", ")
                    ));
                }
            },
        };
        let essence = content_type.map(media_essence);
        let content = response.get("content").and_then(Value::as_object);
        let Some(content) = content.filter(|c| !c.is_empty()) else {
            if let Some(ct) = essence {
                return Err(format!(
                    "response {key} declares no content, but the answer has Content-Type {ct}"
                ));
            }
            if !body.is_empty() {
                return Err(format!(
                    "response {key} declares no content, but the answer has a {}-byte body",
                    body.len()
                ));
            }
            return Ok(());
        };
        let Some(ct) = essence else {
            return Err(format!(
                "response {key} declares {}, but the answer has no Content-Type",
                keys(content)
            ));
        };
        let Some(media) = content.get(&ct) else {
            return Err(format!(
                "response {key} declares {}, but the answer is {ct}",
                keys(content)
            ));
        };
        let Some(schema) = media.get("schema") else {
            return Ok(());
        };
        if !(ct == "application/json" || ct.ends_with("+json")) {
            // text/html pages: a string schema; any text is one.
            return std::str::from_utf8(body)
                .map(|_| ())
                .map_err(|_| format!("the {ct} body is not UTF-8"));
        }
        let instance: Value =
            serde_json::from_slice(body).map_err(|e| format!("the {ct} body is not JSON: {e}"))?;
        let vkey = format!("{}#response:{key}:{ct}", operation.qualified_id());
        let validator = self.validator(operation.api, Direction::Response, &vkey, schema)?;
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("at `{}`: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the body does not match response {key} ({ct}): {}",
                errors.join("; ")
            ))
        }
    }

    /// A schema of `api` with any top-level `$ref` followed (`true` when absent or broken).
    pub(crate) fn resolve(&self, api: Api, schema: Option<&Value>) -> Value {
        schema
            .and_then(|s| deref(self.doc(api), s, String::new()).ok())
            .map_or(Value::Bool(true), |(s, _)| s.clone())
    }

    /// Validates a value against a named component schema of `api` (used for fixtures).
    pub(crate) fn check_component(
        &self,
        api: Api,
        name: &str,
        instance: &Value,
    ) -> Result<(), String> {
        let schema =
            serde_json::json!({ "$ref": format!("#/components/schemas/{}", escape_token(name)) });
        let key = format!("{}#component:{name}", api.name());
        let validator = self.validator(api, Direction::Response, &key, &schema)?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("at `{}`: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("not a valid {name}: {}", errors.join("; ")))
        }
    }
}

fn keys(content: &Map<String, Value>) -> String {
    content.keys().cloned().collect::<Vec<_>>().join(" or ")
}

/// `application/hal+json; charset=utf-8` → `application/hal+json`.
pub(crate) fn media_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these caches cannot leave them inconsistent (inserts are whole).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn operations_of(api: Api, doc: &Value) -> Result<Vec<Operation>, String> {
    let mut out = Vec::new();
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{}: no paths", api.name()))?;
    for (path, item) in paths {
        let (item, _) = deref(doc, item, format!("/paths/{}", escape_token(path)))?;
        let shared = item.get("parameters").and_then(Value::as_array);
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{} {method} {path}: no operationId", api.name()))?
                .to_string();
            let mut params: Vec<Param> = Vec::new();
            let own = op.get("parameters").and_then(Value::as_array);
            for p in shared
                .into_iter()
                .flatten()
                .chain(own.into_iter().flatten())
            {
                let (p, _) = deref(doc, p, format!("{id}/parameters"))?;
                let name = p
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{id}: a parameter has no name"))?
                    .to_string();
                let location = match p.get("in").and_then(Value::as_str) {
                    Some("path") => In::Path,
                    Some("query") => In::Query,
                    _ => In::Other,
                };
                let schema = match p.get("schema") {
                    Some(s) => deref(doc, s, format!("{id}/{name}"))?.0.clone(),
                    None => Value::Bool(true),
                };
                // An operation's own parameter overrides a path-level one of the same name.
                params.retain(|q| !(q.name == name && q.location == location));
                params.push(Param {
                    name,
                    location,
                    schema,
                });
            }
            let body = match op.get("requestBody") {
                Some(rb) => {
                    let (rb, _) = deref(doc, rb, format!("{id}/requestBody"))?;
                    let required = rb.get("required") == Some(&Value::Bool(true));
                    let schema = rb
                        .pointer("/content/application~1json/schema")
                        .cloned()
                        .unwrap_or(Value::Bool(true));
                    Some((required, schema))
                }
                None => None,
            };
            let mut responses = Map::new();
            for (status, r) in op
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let (r, _) = deref(doc, r, format!("{id}/responses/{status}"))?;
                responses.insert(status.clone(), r.clone());
            }
            let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|e| format!("{id}: {e}"))?;
            out.push(Operation {
                api,
                id,
                method,
                path: path.clone(),
                params,
                body,
                responses,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: &str) -> usize {
        let specs = specs().unwrap();
        specs
            .operations
            .iter()
            .position(|o| o.qualified_id() == id)
            .unwrap_or_else(|| panic!("no operation {id}"))
    }

    const HAL: Option<&str> = Some("application/hal+json");

    #[test]
    fn every_operation_of_both_specs_is_read() {
        let specs = specs().unwrap();
        assert_eq!(specs.operations.len(), 24);
        let continue_bot = &specs.operations[op("kommo.continueBot")];
        assert_eq!(
            continue_bot.path,
            "/api/v4/{bot_kind}/{bot_id}/continue/{continue_id}"
        );
        assert_eq!(continue_bot.params.len(), 3);
    }

    #[test]
    fn the_documented_answer_conforms() {
        let specs = specs().unwrap();
        let body = lead_intake::spec::KOMMO_LIST_SOURCES_EXAMPLE.as_bytes();
        specs
            .check_response(op("kommo.listSources"), 200, HAL, body)
            .unwrap();
        specs
            .check_response(op("kommo.listSources"), 204, None, b"")
            .unwrap();
        specs
            .check_response(
                op("kommo.uninstallWidget"),
                403,
                Some("text/html"),
                b"<html></html>",
            )
            .unwrap();
        specs
            .check_response(
                op("closebot.listSources"),
                418,
                Some("application/problem+json"),
                br#""a plain string""#,
            )
            .expect("`default` covers any status");
    }

    #[test]
    fn a_wrong_body_media_type_or_status_is_a_violation() {
        let specs = specs().unwrap();
        let list = op("kommo.listSources");
        let bad = br#"{"_embedded": {"sources": [{"id": "17619939"}]}}"#;
        let err = specs.check_response(list, 200, HAL, bad).unwrap_err();
        assert!(err.contains("/_embedded/sources/0/id"), "{err}");
        let err = specs
            .check_response(list, 200, Some("application/json"), b"{}")
            .unwrap_err();
        assert!(err.contains("application/hal+json"), "{err}");
        let err = specs.check_response(list, 200, None, b"{}").unwrap_err();
        assert!(err.contains("no Content-Type"), "{err}");
        let err = specs.check_response(list, 418, HAL, b"{}").unwrap_err();
        assert!(err.starts_with("status 418 is not declared"), "{err}");
        let err = specs.check_response(list, 204, None, b"{}").unwrap_err();
        assert!(err.contains("2-byte body"), "{err}");
        let err = specs.check_response(list, 204, HAL, b"").unwrap_err();
        assert!(err.contains("declares no content"), "{err}");
        let err = specs.check_response(list, 200, HAL, b"{").unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn write_only_fields_are_not_required_in_answers_and_nullable_is_honoured() {
        let specs = specs().unwrap();
        let lead = serde_json::json!({
            "uid": "u", "category": "sip", "source_uid": null,
            "metadata": {"duration": "54", "phone": 14155551234i64}
        });
        specs
            .check_component(Api::Kommo, "IncomingLead", &lead)
            .unwrap();
        let err = specs
            .check_component(Api::Kommo, "Source", &serde_json::json!({"id": null}))
            .unwrap_err();
        assert!(err.contains("not a valid Source"), "{err}");
    }
}
