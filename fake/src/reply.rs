//! What a handler answers, and the error bodies of both APIs.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE};
use serde_json::{Value, json};

pub(crate) const HAL_JSON: &str = "application/hal+json";
pub(crate) const JSON: &str = "application/json";
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";
pub(crate) const HTML: &str = "text/html";

/// A handler's answer.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A success body in `application/hal+json` (Kommo).
    Hal(StatusCode, Value),
    /// A success body in `application/json` (CloseBot).
    Json(StatusCode, Value),
    /// An error body in `application/problem+json`.
    Problem(StatusCode, Value),
    /// No body and no Content-Type (`204`, `202`).
    Empty(StatusCode),
}

impl Reply {
    pub(crate) fn into_response(self) -> Response<Body> {
        let (status, media, body) = match self {
            Reply::Hal(s, v) => (s, Some(HAL_JSON), v.to_string()),
            Reply::Json(s, v) => (s, Some(JSON), v.to_string()),
            Reply::Problem(s, v) => (s, Some(PROBLEM_JSON), v.to_string()),
            Reply::Empty(s) => (s, None, String::new()),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        if let Some(media) = media {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(media));
        }
        response
    }
}

/// An answer with a text body of the given media type (the fault pages).
pub(crate) fn text(status: StatusCode, media: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media));
    response
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// Kommo's problem document: `{"title","type","status","detail"}`.
pub(crate) fn kommo_problem(status: StatusCode, detail: &str) -> Reply {
    Reply::Problem(
        status,
        json!({
            "title": reason(status),
            "type": format!("https://httpstatus.es/{}", status.as_u16()),
            "status": status.as_u16(),
            "detail": detail,
        }),
    )
}

/// One rejected field of one item of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The item's `request_id`, or its index as a string.
    pub request_id: String,
    /// A machine-readable code, e.g. `NotSupportedChoice`.
    pub code: String,
    /// Dot-separated path in the item, e.g. `custom_fields_values.0.field_id` (may be empty).
    pub path: String,
    /// A human-readable explanation.
    pub detail: String,
}

impl FieldError {
    pub(crate) fn new(
        request_id: impl Into<String>,
        code: &str,
        path: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            request_id: request_id.into(),
            code: code.to_string(),
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// Kommo's `400` with `validation-errors`, one group per item in the order items first appear.
pub(crate) fn kommo_validation(errors: &[FieldError]) -> Reply {
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for e in errors {
        let entry = json!({ "code": e.code, "path": e.path, "detail": e.detail });
        match groups.iter_mut().find(|(id, _)| *id == e.request_id) {
            Some((_, list)) => list.push(entry),
            None => groups.push((e.request_id.clone(), vec![entry])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(id, errors)| json!({ "request_id": id, "errors": errors }))
        .collect();
    Reply::Problem(
        StatusCode::BAD_REQUEST,
        json!({
            "validation-errors": groups,
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        }),
    )
}

/// CloseBot's (ASP.NET Core's) problem details.
pub(crate) fn closebot_problem(status: StatusCode, detail: &str, instance: &str) -> Reply {
    let section = match status.as_u16() {
        400 => "15.5.1",
        401 => "15.5.2",
        404 => "15.5.5",
        500 => "15.6.1",
        _ => "15",
    };
    Reply::Problem(
        status,
        json!({
            "type": format!("https://tools.ietf.org/html/rfc9110#section-{section}"),
            "title": reason(status),
            "status": status.as_u16(),
            "detail": detail,
            "instance": instance,
        }),
    )
}

/// CloseBot's `400` for invalid parameters, with ASP.NET's `errors` map.
pub(crate) fn closebot_validation(errors: &[FieldError], instance: &str) -> Reply {
    let mut map = serde_json::Map::new();
    for e in errors {
        let entry = map
            .entry(e.path.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::String(e.detail.clone()));
        }
    }
    Reply::Problem(
        StatusCode::BAD_REQUEST,
        json!({
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "detail": "The request's parameters are invalid.",
            "instance": instance,
            "errors": map,
        }),
    )
}
