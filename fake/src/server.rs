//! The HTTP side: the accept loop, the fault layer, the router built from the specs, and what
//! every operation shares (credentials, parameter and body validation, the response check).
//!
//! Connections are served by hyper directly (not `axum::serve`) so a fault can close one without
//! answering: the service returns an error, and hyper drops the connection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::routing::{MethodFilter, MethodRouter, on};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tower_service::Service;

use crate::admin::{self, RecordedRequest};
use crate::faults::{Fault, nginx_page};
use crate::oauth;
use crate::php::{self, Lookup, Php};
use crate::reply::{self, FieldError, HTML};
use crate::spec::{Api, In, Operation};
use crate::{Ctx, Shared, Violation, unix_now};

/// Request bodies larger than this are refused.
const BODY_LIMIT: usize = 1 << 20;

/// Marks a response with the operation that produced it, for the response check.
#[derive(Clone, Copy, Debug)]
struct OperationTag(usize);

/// Marks a response with the operation beyond the spec that produced it (see [`EXTRA_ROUTES`]):
/// recorded and counted by its name, not checked against a spec.
#[derive(Clone, Copy, Debug)]
struct ExtraTag(&'static str);

/// Kommo's endpoints the fake serves beyond the spec, for raw calls: `(operation id, path)`,
/// all `GET`, with the same credentials, rate limit, faults and journal as the spec's. The
/// handlers are [`crate::kommo`]'s `handle_extra`.
const EXTRA_ROUTES: [(&str, &str); 2] = [
    ("listLeads", "/api/v4/leads"),
    ("getLead", "/api/v4/leads/{id}"),
];

/// The service's error: close the connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

/// Serves until `stop` fires.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let router = router(shared.clone());
    shared.outbound.spawn();
    tokio::select! {
        _ = accept_loop(listener, shared, router) => {}
        _ = stop => {}
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>, router: Router) {
    // One permit per open connection: past the cap, connections wait in the listener's backlog.
    let connections = Arc::new(tokio::sync::Semaphore::new(shared.config.max_connections));
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Answers are written as they are ready: no Nagle delay between head and body.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let router = router.clone();
        let header_read_timeout = shared.config.header_read_timeout;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            handle(shared.clone(), router.clone(), request)
        });
        tokio::spawn(async move {
            // A connection that does not finish a request's headers in time is closed: hyper
            // applies the timeout only with a timer.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

fn api_of(path: &str) -> Option<Api> {
    if path.starts_with("/api/") || path.starts_with("/oauth2/") {
        Some(Api::Kommo)
    } else if path.starts_with("/agency/") {
        Some(Api::CloseBot)
    } else {
        None
    }
}

/// One request: the admin API, or the fault layer around the router, then the journal and
/// [`Config::on_request`](crate::Config::on_request).
async fn handle(
    shared: Arc<Shared>,
    router: Router,
    request: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    if path == admin::PREFIX || path.starts_with("/__admin/") {
        return Ok(admin_call(&shared, request, &path, query.as_deref()).await);
    }
    let declared_size = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let read = Arc::new(AtomicU64::new(0));
    let counter = read.clone();
    let request = request.map(move |body| {
        Body::new(body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        }))
    });
    let served = serve(&shared, router, request).await;
    let record = RecordedRequest {
        number: served.number,
        method,
        path,
        query,
        status: served.answer.as_ref().ok().map(|r| r.status().as_u16()),
        request_bytes: read.load(Ordering::Relaxed).max(declared_size.unwrap_or(0)),
        response_bytes: served
            .answer
            .as_ref()
            .ok()
            .and_then(|r| r.body().size_hint().exact())
            .unwrap_or(0),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        operation: served.operation,
        fault: served.fault,
    };
    if let Some(on_request) = &shared.config.on_request {
        (on_request.0)(&record);
    }
    admin::record(&mut shared.lock(), record);
    served.answer
}

/// An admin call: its body read (up to [`admin::BODY_LIMIT`]), then [`admin::handle`].
async fn admin_call(
    shared: &Shared,
    request: Request<Incoming>,
    path: &str,
    query: Option<&str>,
) -> Response<Body> {
    // The token first: nothing of a call without it is read.
    if let Some(token) = &shared.config.admin_token
        && !admin::authorized(request.headers(), token)
    {
        return admin::unauthorized();
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(Body::new(body), admin::BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!(
                "{{\"error\": \"the body could not be read, or is larger than {} bytes\"}}",
                admin::BODY_LIMIT
            );
            return reply::text(StatusCode::BAD_REQUEST, reply::JSON, message);
        }
    };
    let route = path.strip_prefix(admin::PREFIX).unwrap_or(path);
    if parts.method == http::Method::POST && route.trim_end_matches('/') == "/widget_request" {
        return widget_request_call(shared, &bytes, &origin(&parts.headers)).await;
    }
    admin::handle(
        shared,
        &parts.method,
        path,
        query,
        &bytes,
        &origin(&parts.headers),
    )
}

/// `POST /__admin/widget_request`: sends it and answers what was sent, once the back end
/// answered.
async fn widget_request_call(shared: &Shared, body: &[u8], origin: &str) -> Response<Body> {
    let fail = |status: StatusCode, message: String| {
        reply::text(
            status,
            reply::JSON,
            serde_json::json!({ "error": message }).to_string(),
        )
    };
    let body: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => {
            return fail(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object: {\"kind\", \"bot_id\", \"entity_id\", \"data\"}"
                    .into(),
            );
        }
    };
    let kind = match body.get("kind") {
        None => "salesbot",
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "`kind` must be a string: salesbot or marketingbot".into(),
            );
        }
    };
    let Some(bot_id) = body.get("bot_id").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "`bot_id` (a string or a number) is required".into(),
        );
    };
    let entity_id = match body.get("entity_id") {
        None => 1,
        Some(v) => match v.as_i64() {
            Some(id) => id,
            None => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "`entity_id` must be an integer".into(),
                );
            }
        },
    };
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    match crate::queue_widget_request(shared, origin, kind, &bot_id, entity_id, data) {
        Ok(answer) => match answer.await {
            Ok(sent) => reply::text(
                StatusCode::OK,
                reply::JSON,
                serde_json::to_string(&sent).unwrap_or_default(),
            ),
            Err(_) => fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "the fake is stopping".into(),
            ),
        },
        Err(e) => fail(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// What [`serve`] did with a request.
struct Served {
    /// The request's number, from 1.
    number: u64,
    fault: Option<Fault>,
    /// The qualified id of the operation that answered (`kommo.getLead`), if one did.
    operation: Option<String>,
    answer: Result<Response<Body>, Dropped>,
}

/// The fault layer around the router, the response check and the counters.
async fn serve(shared: &Arc<Shared>, mut router: Router, request: Request<Body>) -> Served {
    let api = api_of(request.uri().path());
    // The token endpoint's body is read first: its `client_id` names the integration whose
    // rate limit it counts towards.
    let (request, token_call) = if request.uri().path() == oauth::TOKEN_PATH {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.ok();
        (Request::from_parts(parts, Body::empty()), Some(bytes))
    } else {
        (request, None)
    };
    let client = rate_key(shared, request.headers(), token_call.as_ref());
    let (number, fault) = {
        let mut state = shared.lock();
        state.stats.requests += 1;
        let number = state.stats.requests;
        let state = &mut *state;
        let fault = state.faults.decide(
            &state.fault_config,
            api,
            &client,
            token_call.is_some(),
            tokio::time::Instant::now(),
        );
        if let Some(f) = &fault {
            if state.stats.faults.len() < crate::LOG_LIMIT {
                state.stats.faults.push((number, f.clone()));
            }
            match f {
                Fault::RateLimited | Fault::RetryAfter(_) => state.stats.rate_limited += 1,
                Fault::Blocked => state.stats.blocked += 1,
                Fault::ServerError(_) => state.stats.server_errors += 1,
                Fault::Drop => state.stats.dropped += 1,
                Fault::DropAfterProcessing => state.stats.lost_answers += 1,
                Fault::ServerErrorAfterProcessing(_) => state.stats.late_server_errors += 1,
                Fault::Slow(_) => state.stats.slowed += 1,
            }
        }
        (number, fault)
    };
    let early = |answer: Result<Response<Body>, Dropped>| Served {
        number,
        fault: fault.clone(),
        operation: None,
        answer,
    };
    match &fault {
        Some(Fault::Drop) => return early(Err(Dropped)),
        Some(Fault::Slow(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::RateLimited) => {
            let page = nginx_page(429, "Too Many Requests");
            return early(Ok(count(shared, text_answer(429, page))));
        }
        Some(Fault::RetryAfter(wait)) => {
            let page = nginx_page(429, "Too Many Requests");
            let mut answer = text_answer(429, page);
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            answer
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
            return early(Ok(count(shared, answer)));
        }
        Some(Fault::Blocked) => {
            let page = nginx_page(403, "Forbidden");
            return early(Ok(count(shared, text_answer(403, page))));
        }
        Some(Fault::ServerError(status)) => {
            return early(Ok(count(shared, server_error(*status, api))));
        }
        Some(Fault::DropAfterProcessing | Fault::ServerErrorAfterProcessing(_)) | None => {}
    }

    let method = request.method().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |pq| pq.to_string());
    let response = match token_call {
        Some(body) => token_endpoint(shared, &request, body.as_deref()),
        None => match router.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
    };
    let tag = response.extensions().get::<OperationTag>().copied();
    let response_extra = response.extensions().get::<ExtraTag>().copied();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    // A HEAD answer has no body to check (axum drops it).
    if shared.config.check_responses
        && method != "HEAD"
        && let Some(OperationTag(op)) = tag
    {
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if let Err(message) =
            shared
                .specs
                .check_response(op, parts.status.as_u16(), content_type, &bytes)
        {
            let violation = Violation {
                operation: shared.specs.operations[op].qualified_id(),
                method,
                target,
                status: parts.status.as_u16(),
                message,
            };
            let mut state = shared.lock();
            if state.violations.len() < crate::LOG_LIMIT {
                state.violations.push(violation);
            }
        }
    }
    let operation = match (tag, response_extra) {
        (Some(OperationTag(op)), _) => Some(shared.specs.operations[op].qualified_id()),
        (None, Some(ExtraTag(name))) => Some(format!("{}.{name}", Api::Kommo.name())),
        (None, None) => None,
    };
    // Processed: the operation's answer is replaced by a server error, or lost.
    if let Some(Fault::ServerErrorAfterProcessing(status)) = fault {
        return Served {
            number,
            fault,
            operation,
            answer: Ok(count(shared, server_error(status, api))),
        };
    }
    {
        let mut state = shared.lock();
        if fault != Some(Fault::DropAfterProcessing) {
            let status = parts.status.as_u16();
            *state.stats.by_status.entry(status).or_default() += 1;
            if let Some(operation) = &operation {
                *state
                    .stats
                    .by_operation
                    .entry(operation.clone())
                    .or_default()
                    .entry(status)
                    .or_default() += 1;
            }
        }
    }
    let answer = if fault == Some(Fault::DropAfterProcessing) {
        Err(Dropped)
    } else {
        Ok(Response::from_parts(parts, Body::from(bytes)))
    };
    Served {
        number,
        fault,
        operation,
        answer,
    }
}

/// What the rate limit counts a request towards: its integration (`integration:N`, the OAuth
/// app's tokens and token requests being the main integration's), or, for credentials the fake
/// does not know, the `Authorization` header as sent (such requests are refused anyway).
/// Kommo counts per integration, whatever the connection or token.
fn rate_key(
    shared: &Shared,
    headers: &HeaderMap,
    token_call: Option<&Option<axum::body::Bytes>>,
) -> String {
    let config = &shared.config;
    if let Some(body) = token_call {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        return match body
            .as_deref()
            .and_then(|b| oauth::client_id_of(content_type, b))
        {
            Some(id) if id == config.oauth.client_id => "integration:0".to_string(),
            Some(id) => format!("client_id:{id}"),
            None => "client_id:".to_string(),
        };
    }
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(token) = strip_scheme(authorization, "Bearer") {
        if token == config.kommo_token.expose() {
            return "integration:0".to_string();
        }
        if let Some(i) = config
            .other_integrations
            .iter()
            .position(|t| t.expose() == token)
        {
            return format!("integration:{}", i + 1);
        }
        if shared.lock().oauth.knows_access(token) {
            return "integration:0".to_string();
        }
    }
    authorization.to_string()
}

/// `POST /oauth2/access_token` (any other method: `405`). `body` is `None` when it could not be
/// read or was larger than [`BODY_LIMIT`].
fn token_endpoint(shared: &Shared, request: &Request<Body>, body: Option<&[u8]>) -> Response<Body> {
    if request.method() != http::Method::POST {
        let mut response =
            reply::kommo_problem(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
                .into_response();
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        return response;
    }
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let config = &shared.config.oauth;
    shared
        .lock()
        .oauth
        .token_request(config, content_type, body.unwrap_or_default())
        .into_response()
}

/// A server error fault's answer: `500` as the API's problem document, the others as the
/// gateway's HTML page.
fn server_error(status: u16, api: Option<Api>) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        match api {
            Some(Api::CloseBot) => {
                reply::closebot_problem(status, "An unexpected error occurred.", "")
            }
            _ => reply::kommo_problem(status, "Internal Server Error"),
        }
        .into_response()
    } else {
        text_answer(
            status.as_u16(),
            nginx_page(
                status.as_u16(),
                status.canonical_reason().unwrap_or("Error"),
            ),
        )
    }
}

fn text_answer(status: u16, page: String) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply::text(status, HTML, page)
}

fn count(shared: &Shared, response: Response<Body>) -> Response<Body> {
    *shared
        .lock()
        .stats
        .by_status
        .entry(response.status().as_u16())
        .or_default() += 1;
    response
}

/// One route per path of both specs, one method handler per operation.
fn router(shared: Arc<Shared>) -> Router {
    let mut by_path: BTreeMap<String, MethodRouter> = BTreeMap::new();
    for (index, operation) in shared.specs.operations.iter().enumerate() {
        let Ok(filter) = MethodFilter::try_from(operation.method.clone()) else {
            continue;
        };
        let handler_shared = shared.clone();
        let handler = move |request: Request<Body>| {
            let shared = handler_shared.clone();
            async move {
                let mut response = dispatch(&shared, index, request).await;
                response.extensions_mut().insert(OperationTag(index));
                response
            }
        };
        let route = match by_path.remove(&operation.path) {
            Some(route) => route.on(filter, handler),
            None => on(filter, handler),
        };
        by_path.insert(operation.path.clone(), route);
    }
    for (name, path) in EXTRA_ROUTES {
        let handler_shared = shared.clone();
        let handler = move |request: Request<Body>| {
            let shared = handler_shared.clone();
            async move {
                let mut response = dispatch_extra(&shared, name, path, request);
                response.extensions_mut().insert(ExtraTag(name));
                response
            }
        };
        let route = match by_path.remove(path) {
            Some(route) => route.on(MethodFilter::GET, handler),
            None => on(MethodFilter::GET, handler),
        };
        by_path.insert(path.to_string(), route);
    }
    let mut router = Router::new();
    for (path, route) in by_path {
        router = router.route(&path, route);
    }
    router.fallback(|request: Request<Body>| async move { not_found(request.uri().path()) })
}

fn not_found(path: &str) -> Response<Body> {
    match api_of(path) {
        Some(Api::CloseBot) => {
            reply::closebot_problem(StatusCode::NOT_FOUND, "No such endpoint.", path)
        }
        _ => reply::kommo_problem(StatusCode::NOT_FOUND, "No such endpoint"),
    }
    .into_response()
}

/// Credentials, parameters and body, then the operation.
async fn dispatch(shared: &Shared, op: usize, request: Request<Body>) -> Response<Body> {
    let operation = &shared.specs.operations[op];
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let problem = |status: StatusCode, detail: &str| match operation.api {
        Api::Kommo => reply::kommo_problem(status, detail),
        Api::CloseBot => reply::closebot_problem(status, detail, &path),
    };

    let integration = match authenticate(shared, operation.api, &parts.headers) {
        Ok(i) => i,
        Err(detail) => return problem(StatusCode::UNAUTHORIZED, detail).into_response(),
    };

    let mut ctx = Ctx {
        origin: origin(&parts.headers),
        path: BTreeMap::new(),
        query: BTreeMap::new(),
        body: None,
        integration,
        now: unix_now(),
    };
    let mut errors: Vec<FieldError> = Vec::new();

    // Path parameters: one that does not fit its schema names no resource (404).
    let values = path_values(&operation.path, &path);
    let query = match php::parse(parts.uri.query().unwrap_or("")) {
        Ok(query) => query,
        Err(e) => {
            errors.push(FieldError::new("0", "InvalidValue", "", e.to_string()));
            return invalid(operation, &errors, &path);
        }
    };
    // A declared parameter given both as a value and as an array or range: PHP would silently
    // keep the last; a client that sends both has a bug worth hearing about.
    for conflict in &query.conflicts {
        let nested = format!("{conflict}.");
        let declared = operation.params.iter().any(|p| {
            p.location == In::Query && {
                let at = php_path(&p.name);
                at == *conflict || at.starts_with(&nested)
            }
        });
        if declared {
            errors.push(FieldError::new(
                "0",
                "InvalidValue",
                conflict.clone(),
                "Given both as a single value and as an array or range.",
            ));
        }
    }
    let query = query.root;
    for (i, param) in operation.params.iter().enumerate() {
        match param.location {
            In::Path => {
                let raw = values.get(&param.name).cloned().unwrap_or_default();
                let value = coerce(&Php::String(raw.clone()), &param.schema);
                if !param_valid(shared, op, i, &value) {
                    return problem(StatusCode::NOT_FOUND, "Not found").into_response();
                }
                ctx.path.insert(param.name.clone(), raw);
            }
            In::Query => {
                let value = match php::lookup(&query, &param.name) {
                    Lookup::Missing => continue,
                    Lookup::One(node) => {
                        // `filter[created_at]` is a container when `filter[created_at][from]` is
                        // also declared: a map there is the range, not a wrong value.
                        let prefix = format!("{}[", param.name);
                        if matches!(node, Php::Map(_))
                            && operation.params.iter().any(|p| p.name.starts_with(&prefix))
                        {
                            continue;
                        }
                        coerce(node, &param.schema)
                    }
                    Lookup::List(items) => {
                        let item_schema = shared
                            .specs
                            .resolve(operation.api, param.schema.get("items"));
                        Value::Array(items.iter().map(|n| coerce(n, &item_schema)).collect())
                    }
                };
                match shared.specs.param_validator(op, i) {
                    Ok(validator) => {
                        for e in validator.iter_errors(&value) {
                            let mut at = php_path(&param.name);
                            let inner = pointer_dots(e.instance_path().as_str());
                            if !inner.is_empty() {
                                at = format!("{at}.{inner}");
                            }
                            errors.push(FieldError::new("0", code_of(e.kind()), at, e.to_string()));
                        }
                    }
                    Err(message) => {
                        return problem(StatusCode::INTERNAL_SERVER_ERROR, &message)
                            .into_response();
                    }
                }
                ctx.query.insert(param.name.clone(), value);
            }
            In::Other => {}
        }
    }

    // The body.
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            errors.push(FieldError::new(
                "0",
                "TooLarge",
                "",
                format!("The request body is larger than {BODY_LIMIT} bytes."),
            ));
            return invalid(operation, &errors, &path);
        }
    };
    if let Some((required, _)) = &operation.body {
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        if blank {
            if *required {
                errors.push(FieldError::new(
                    "0",
                    "NotBlank",
                    "",
                    "The request body should not be blank.",
                ));
            }
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Err(e) => errors.push(FieldError::new(
                    "0",
                    "InvalidJson",
                    "",
                    format!("The request body is not valid JSON: {e}"),
                )),
                Ok(body) => {
                    huge_integers(&body, &body, &mut Vec::new(), &mut errors);
                    match shared.specs.body_validator(op) {
                        Ok(Some(validator)) => {
                            for e in validator.iter_errors(&body) {
                                errors.push(body_error(&body, &e));
                            }
                        }
                        Ok(None) => {}
                        Err(message) => {
                            return problem(StatusCode::INTERNAL_SERVER_ERROR, &message)
                                .into_response();
                        }
                    }
                    ctx.body = Some(body);
                }
            }
        }
    }
    if !errors.is_empty() {
        return invalid(operation, &errors, &path);
    }

    let mut state = shared.lock();
    let answer = match operation.api {
        Api::Kommo => state.kommo.handle(&operation.id, &ctx),
        Api::CloseBot => state.closebot.handle(&operation.id, &ctx),
    };
    // Taken whatever the answer: a handler that failed after recording an event must not
    // leave it for the next request's webhook. Queued under the state's lock, so webhooks go
    // out in the order the state changed, however requests interleave.
    let events = std::mem::take(&mut state.kommo.events);
    if !events.is_empty()
        && let Some(url) = &shared.config.webhook_url
    {
        let body = crate::outbound::webhook_body(
            shared.config.account_id,
            &shared.config.subdomain,
            &ctx.origin,
            &events,
        );
        shared.outbound.push(crate::outbound::Job::Webhook {
            url: url.clone(),
            body,
        });
    }
    drop(state);
    answer.into_response()
}

/// An operation beyond the spec ([`EXTRA_ROUTES`]): Kommo's credentials, then its query
/// (`page` and `limit`: whole numbers from 1, `limit` at most 250; `with`: a string), then the
/// operation. A path `id` that is not a whole number names no lead (404).
fn dispatch_extra(
    shared: &Shared,
    name: &'static str,
    template: &str,
    request: Request<Body>,
) -> Response<Body> {
    let (parts, _body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let integration = match authenticate(shared, Api::Kommo, &parts.headers) {
        Ok(i) => i,
        Err(detail) => {
            return reply::kommo_problem(StatusCode::UNAUTHORIZED, detail).into_response();
        }
    };
    let mut ctx = Ctx {
        origin: origin(&parts.headers),
        path: path_values(template, &path),
        query: BTreeMap::new(),
        body: None,
        integration,
        now: unix_now(),
    };
    if ctx
        .path
        .get("id")
        .is_some_and(|id| id.parse::<i64>().is_err())
    {
        return reply::kommo_problem(StatusCode::NOT_FOUND, "Not found").into_response();
    }
    let query = match php::parse(parts.uri.query().unwrap_or("")) {
        Ok(query) => query.root,
        Err(e) => {
            let errors = [FieldError::new("0", "InvalidValue", "", e.to_string())];
            return reply::kommo_validation(&errors).into_response();
        }
    };
    let mut errors = Vec::new();
    for (param, max) in [("page", u64::MAX), ("limit", 250)] {
        let Lookup::One(node) = php::lookup(&query, param) else {
            continue;
        };
        match coerce(node, &serde_json::json!({ "type": "integer" })).as_u64() {
            Some(n) if (1..=max).contains(&n) => {
                ctx.query.insert(param.to_string(), Value::from(n));
            }
            _ => errors.push(FieldError::new(
                "0",
                "InvalidValue",
                param,
                format!("`{param}` must be a whole number from 1 to {max}."),
            )),
        }
    }
    if let Lookup::One(Php::String(with)) = php::lookup(&query, "with") {
        ctx.query
            .insert("with".to_string(), Value::from(with.clone()));
    }
    if !errors.is_empty() {
        return reply::kommo_validation(&errors).into_response();
    }
    shared.lock().kommo.handle_extra(name, &ctx).into_response()
}

fn invalid(operation: &Operation, errors: &[FieldError], path: &str) -> Response<Body> {
    match operation.api {
        Api::Kommo => reply::kommo_validation(errors),
        Api::CloseBot => reply::closebot_validation(errors, path),
    }
    .into_response()
}

fn param_valid(shared: &Shared, op: usize, param: usize, value: &Value) -> bool {
    shared
        .specs
        .param_validator(op, param)
        .is_ok_and(|v| v.is_valid(value))
}

/// Which integration the credentials name: `Ok(0)` for the main Kommo token (or CloseBot's key).
fn authenticate(shared: &Shared, api: Api, headers: &HeaderMap) -> Result<usize, &'static str> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match api {
        Api::Kommo => {
            let Some(value) = authorization else {
                return Err("Authorization header is missing");
            };
            let Some(token) = strip_scheme(value, "Bearer") else {
                return Err("Authorization header is not a Bearer token");
            };
            let config = &shared.config;
            if token == config.kommo_token.expose() {
                return Ok(0);
            }
            if let Some(i) = config
                .other_integrations
                .iter()
                .position(|t| t.expose() == token)
            {
                return Ok(i + 1);
            }
            // The OAuth app's tokens are the main integration's.
            match shared.lock().oauth.check_access(token) {
                oauth::AccessCheck::Valid => Ok(0),
                oauth::AccessCheck::Expired | oauth::AccessCheck::Unknown => {
                    Err("The access token is invalid, expired or revoked")
                }
            }
        }
        Api::CloseBot => {
            let key = headers
                .get("x-cb-key")
                .and_then(|v| v.to_str().ok())
                .or_else(|| authorization.and_then(|v| strip_scheme(v, "Key")));
            match key {
                Some(k) if k == shared.config.closebot_key.expose() => Ok(0),
                _ => Err("The API key is missing or invalid."),
            }
        }
    }
}

pub(crate) fn strip_scheme<'v>(value: &'v str, scheme: &str) -> Option<&'v str> {
    let (given, rest) = value.trim().split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// `http://host:port` as the client addressed the fake (its `Host`), else the bound address.
fn origin(headers: &HeaderMap) -> String {
    match headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
    {
        Some(host)
            if !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) =>
        {
            format!("http://{host}")
        }
        _ => "http://127.0.0.1".to_string(),
    }
}

/// The values of a template's `{name}` segments in a concrete path, percent-decoded.
fn path_values(template: &str, path: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (t, p) in template.split('/').zip(path.split('/')) {
        if let Some(name) = t.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            let decoded = crate::schema::percent_decode(p).unwrap_or_else(|| p.to_string());
            out.insert(name.to_string(), decoded);
        }
    }
    out
}

/// A query value converted to what its schema expects (when it can be).
fn coerce(node: &Php, schema: &Value) -> Value {
    let Php::String(s) = node else {
        return node.to_json();
    };
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "integer" => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(s.clone())),
        "number" => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        "boolean" => match s.as_str() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => Value::String(s.clone()),
        },
        "array" => Value::Array(vec![Value::String(s.clone())]),
        _ => Value::String(s.clone()),
    }
}

/// `filter[created_at][from]` → `filter.created_at.from`; `filter[uid][]` → `filter.uid`.
fn php_path(name: &str) -> String {
    let (base, segments) = php::split_key(name);
    let mut out = base;
    for s in segments.into_iter().filter(|s| !s.is_empty()) {
        out.push('.');
        out.push_str(&s);
    }
    out
}

/// `/custom_fields_values/0/field_id` → `custom_fields_values.0.field_id`.
fn pointer_dots(pointer: &str) -> String {
    pointer
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// A schema error in a body, as Kommo reports it: a batch item's errors under its `request_id`
/// (its index when it has none), the path inside the item.
fn body_error(body: &Value, e: &jsonschema::ValidationError<'_>) -> FieldError {
    let mut segments: Vec<String> = e
        .instance_path()
        .as_str()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind()
        && let Some(name) = property.as_str()
    {
        segments.push(name.to_string());
    }
    let (request_id, path) = locate(body, segments);
    FieldError::new(request_id, code_of(e.kind()), path, e.to_string())
}

/// The `request_id` and dotted path of a place in a body: in a batch (an array), the item's own
/// `request_id` or its index, and the path inside the item; otherwise `"0"` and the whole path.
fn locate(body: &Value, mut segments: Vec<String>) -> (String, String) {
    let mut request_id = "0".to_string();
    if let Value::Array(items) = body
        && let Some(index) = segments.first().and_then(|s| s.parse::<usize>().ok())
    {
        request_id = items
            .get(index)
            .and_then(|item| item.get("request_id"))
            .and_then(Value::as_str)
            .map_or_else(|| index.to_string(), str::to_string);
        segments.remove(0);
    }
    (request_id, segments.join("."))
}

/// Integers beyond 64 bits. serde_json reads `-9223372036854775809` as the float
/// `-9223372036854775808.0`, which a schema's `int64` bounds then accept; PHP reads it as a float
/// and refuses it where an integer is expected. A number written as a float with an integral value
/// that large is refused the same way.
fn huge_integers(body: &Value, value: &Value, at: &mut Vec<String>, errors: &mut Vec<FieldError>) {
    match value {
        Value::Number(n)
            if n.as_f64()
                .is_some_and(|f| n.is_f64() && f.fract() == 0.0 && f.abs() >= 9.2e18) =>
        {
            let (request_id, path) = locate(body, at.clone());
            errors.push(FieldError::new(
                request_id,
                "OutOfRange",
                path,
                format!("{n} does not fit a 64-bit integer"),
            ));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(i.to_string());
                huge_integers(body, item, at, errors);
                at.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                at.push(key.clone());
                huge_integers(body, item, at, errors);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Kommo's (Symfony validator's) names for the kinds of errors.
fn code_of(kind: &jsonschema::error::ValidationErrorKind) -> &'static str {
    use jsonschema::error::ValidationErrorKind as K;
    match kind {
        K::Required { .. } => "NotBlank",
        K::Type { .. } => "InvalidType",
        K::Enum { .. } | K::Constant { .. } => "NotSupportedChoice",
        K::MaxItems { .. } | K::MaxProperties { .. } => "TooMany",
        K::MinItems { .. } | K::MinProperties { .. } => "TooFew",
        K::Maximum { .. }
        | K::Minimum { .. }
        | K::ExclusiveMaximum { .. }
        | K::ExclusiveMinimum { .. } => "OutOfRange",
        K::MaxLength { .. } | K::MinLength { .. } => "InvalidLength",
        _ => "InvalidValue",
    }
}
