//! Helpers shared by the integration tests: the vendor examples, mock servers and clients.
#![allow(dead_code)]

pub mod ca;
pub mod redis_server;
pub mod script;

use std::path::PathBuf;

use httpmock::{HttpMockRequest, MockServer, Then, When};
use serde_json::Value;

/// A token distinctive enough that finding it anywhere in printed output means it leaked.
pub const TOKEN: &str = "SECRET-TOKEN-123";
/// The CloseBot API key, likewise distinctive.
pub const API_KEY: &str = "CB-SECRET-KEY-456";

/// The page Kommo's gateway answers a 429 with (HTML, no `Retry-After`).
pub const RATE_LIMIT_PAGE: &str = "<html><body><h1>429 Too Many Requests</h1></body></html>";
/// nginx's page for a blocked account's 403.
pub const NGINX_FORBIDDEN_PAGE: &str = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n\
    <body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n\
    </body>\r\n</html>\r\n";

/// The Accept header the Kommo client sends on every request.
pub const KOMMO_ACCEPT: &str =
    "application/hal+json, application/problem+json, application/json;q=0.9";

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("openapi")
        .join("examples")
}

/// The text of `openapi/examples/kommo/{name}`, exactly as stored.
pub fn kommo_example_text(name: &str) -> String {
    let path = examples_dir().join("kommo").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `openapi/examples/kommo/{name}` as JSON.
pub fn example(name: &str) -> Value {
    serde_json::from_str(&kommo_example_text(name))
        .unwrap_or_else(|e| panic!("examples/kommo/{name} is not JSON: {e}"))
}

/// `openapi/examples/kommo/{name}` decoded as `T` (a generated request type).
pub fn example_as<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&kommo_example_text(name)).unwrap_or_else(|e| {
        panic!(
            "examples/kommo/{name} does not decode as {}: {e}",
            std::any::type_name::<T>()
        )
    })
}

/// The text of `openapi/examples/closebot/{name}`, exactly as stored.
pub fn closebot_example_text(name: &str) -> String {
    let path = examples_dir().join("closebot").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A mock server and a Kommo client pointed at it, with [`TOKEN`]. Retries are off, so each
/// call is exactly one exchange (tests/retries.rs covers retrying).
pub async fn kommo() -> (MockServer, lead_intake::kommo::Client) {
    let server = MockServer::start_async().await;
    let client = lead_intake::kommo::Client::builder()
        .base_url(&server.base_url())
        .token(TOKEN)
        .retry(lead_intake::retry::RetryPolicy::none())
        .build()
        .expect("a loopback base URL is accepted");
    (server, client)
}

/// A mock server and a CloseBot client pointed at it, with [`API_KEY`] in `X-CB-KEY`.
pub async fn closebot() -> (MockServer, lead_intake::closebot::Client) {
    let server = MockServer::start_async().await;
    let client = lead_intake::closebot::Client::builder()
        .api_key(API_KEY)
        .base_url(&server.base_url())
        .retry(lead_intake::retry::RetryPolicy::none())
        .build()
        .expect("a loopback base URL is accepted");
    (server, client)
}

/// What every Kommo request carries: the method, the exact path, the bearer token and the Accept
/// header.
pub fn kommo_request(when: When, method: httpmock::Method, path: &str) -> When {
    when.method(method)
        .path(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", KOMMO_ACCEPT)
}

/// The request's query string exactly as sent (percent-encoding included); `None` when the
/// request has none.
pub fn raw_query(req: &HttpMockRequest) -> Option<String> {
    req.uri().query().map(str::to_string)
}

/// A matcher: the query string as sent is exactly `expected`.
pub fn query_is(expected: &'static str) -> impl Fn(&HttpMockRequest) -> bool + Send + Sync {
    move |req| raw_query(req).as_deref() == Some(expected)
}

/// A matcher: the request has no query string at all.
pub fn no_query(req: &HttpMockRequest) -> bool {
    raw_query(req).is_none()
}

/// A matcher: the request has no body.
pub fn no_body(req: &HttpMockRequest) -> bool {
    req.body_ref().is_empty()
}

/// Answers 200 with the Kommo example `name` as `application/hal+json`, byte for byte.
pub fn hal(then: Then, name: &str) -> Then {
    then.status(200)
        .header("content-type", "application/hal+json")
        .body(kommo_example_text(name))
}

/// Answers with a Kommo problem example as `application/problem+json`.
pub fn problem(then: Then, status: u16, name: &str) -> Then {
    then.status(status)
        .header("content-type", "application/problem+json")
        .body(kommo_example_text(name))
}

/// A loopback address that refuses every connection for as long as this value lives.
///
/// A socket is bound to the port (without `SO_REUSEADDR`, so nothing else can bind it) and never
/// listens: a connection attempt is answered with a reset, "connection refused". Unlike a port
/// bound and released, nothing can start listening there while the test runs.
pub struct Refusing {
    _socket: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

impl Refusing {
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("a loopback port");
        let addr = socket.local_addr().expect("the bound address");
        Self {
            _socket: socket,
            addr,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Asserts that `text` does not contain `secret`, naming where it was looked for.
pub fn assert_not_leaked(what: &str, text: &str, secret: &str) {
    assert!(
        !text.contains(secret),
        "{what} leaks the secret {secret:?}: {text}"
    );
}
