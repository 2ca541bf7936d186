//! Security, gathered in one place: secrets never reach `Debug` output, logs or error text (even
//! when a server echoes them back); error text names a request's path, never its query; plain
//! HTTP only on loopback unless allowed; subdomains are one DNS label; links and redirects never
//! take the credentials to another origin.
//!
//! Every group was seen to fail on deliberately broken code before it counted (then reverted):
//!
//! | group | mutation | what failed |
//! |---|---|---|
//! | logs | `transport::send` also logs `authorization = request.headers()[AUTHORIZATION].to_str()` at TRACE | `logs_never_carry_a_secret` (the token, both OAuth access tokens and CloseBot's `Key` form found) |
//! | logs | the `sending request` event removed | `logs_never_carry_a_secret` (an expected event is missing: the check cannot pass on silence) |
//! | error text | `error::classify` no longer applies the response's `Redactions` | `errors_never_carry_a_secret_even_when_the_server_echoes_it` (token and API key in `Problem`, `RateLimited`, `UnexpectedResponse`, `AccountBlocked`) |
//! | error text | `oauth::token_request` no longer redacts the token endpoint's answer | same test (refresh token and client secret in `Rejected` and `TokenEndpoint`) |
//! | error text | `InvalidTokenResponse` from serde's message again | same test (serde quotes the new access token it refused) |
//! | error text | `oauth::without_secrets` returns the callback's error as it is | same test (`Callback` quotes the new access token) |
//! | Debug | `Secret`'s `Debug` prints the value | `debug_output_of_every_secret_holder_hides_the_secret` |
//! | Debug | `ApiError`'s `Debug` prints a `Decode` body | `errors_never_carry_a_secret_even_when_the_server_echoes_it` |
//! | Debug | a `WidgetInstallSettings` string back to a plain `String` (spec) | `debug_output_of_every_secret_holder_hides_the_secret` |
//! | Debug | `WidgetSettings` (a widget's settings as read back) with a derived `Debug` | same test (`Widget (settings)`) |
//! | query | `error::without_query` keeps the query | `transport_errors_name_the_path_not_the_query` (the filter value in a dropped request's error) |
//! | query | `error::classify` no longer names the URL of an error answer whose body was cut short | same test (the error named no path) |
//! | base URL | `config::base_url` accepts `http` on any host | `plain_http_is_refused_except_on_loopback_unless_allowed` |
//! | base URL | `is_loopback` takes any host starting with `localhost` | same test (`localhost.evil.com`) |
//! | subdomain | `config::subdomain` no longer checks hyphens at the ends | `a_subdomain_is_one_dns_label` |
//! | subdomain | `config::subdomain` without its character check | same test (`user@evil` became an `InvalidBaseUrl`, not an `InvalidSubdomain`; removing only the dot check fails nothing, since the character check refuses dots too) |
//! | links | `links::resolve` without the origin check | `links_to_another_origin_are_refused_and_nothing_is_sent` (requests reached the other server) |
//! | links | `links::resolve` without the credentials check | same test (`http://user:pw@own-origin/`) |
//! | redirects | the default HTTP client with reqwest's default redirect policy | `redirects_to_another_origin_are_not_followed` (the other server received the CloseBot key in `X-CB-KEY`, and the token request's body after the 307) |

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::script::{Recorded, Reply, ScriptServer, http_without_timeouts};
use common::{API_KEY, TOKEN, example};
use lead_intake::ConfigError;
use lead_intake::Secret;
use lead_intake::batch::BatchOptions;
use lead_intake::closebot::{self, KeyHeader};
use lead_intake::kommo::{self, types};
use lead_intake::oauth::{self, AuthError, OAuth, OAuthApp, TokenPair};
use lead_intake::prelude::*;
use lead_intake::ratelimit::RateLimiter;
use lead_intake::retry::RetryPolicy;
use lead_intake_fake::{Config, FakeServer, Fault};
use serde_json::json;

/// A client secret with a `/`, so PHP's escaped echo (`\/`) is tried too.
const CLIENT_SECRET: &str = "CLIENT-SECRET/789+z";
const OLD_ACCESS: &str = "ACCESS-OLD-111";
const OLD_REFRESH: &str = "REFRESH-OLD-222";
const NEW_ACCESS: &str = "ACCESS-NEW-333";
const NEW_REFRESH: &str = "REFRESH-NEW-444";
const CODE: &str = "AUTH-CODE-555";
/// A value in a followed link's query string: the caller's data, never logged.
const QUERY_SECRET: &str = "QUERY-SECRET-666";
/// A widget's `pass` setting.
const WIDGET_PASS: &str = "WIDGET-PASS-777";
/// A CloseBot source's CRM key.
const CRM_KEY: &str = "CRM-KEY-888";
const TOKEN_PATH: &str = "/oauth2/access_token";

/// What no error text may hold (a link's own query string may show in its error: it is the
/// caller's, not a credential).
const CREDENTIALS: [&str; 10] = [
    TOKEN,
    API_KEY,
    CLIENT_SECRET,
    OLD_ACCESS,
    OLD_REFRESH,
    NEW_ACCESS,
    NEW_REFRESH,
    CODE,
    WIDGET_PASS,
    CRM_KEY,
];

/// Every spelling of `secret` found in `text`: as is, JSON-escaped the PHP way, form-encoded.
fn spellings_in(text: &str, secret: &str) -> Vec<String> {
    let forms = [
        secret.to_string(),
        secret.replace('/', "\\/"),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
    ];
    forms.into_iter().filter(|f| text.contains(f)).collect()
}

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    let found: Vec<String> = secrets.iter().flat_map(|s| spellings_in(text, s)).collect();
    assert!(found.is_empty(), "{what} leaks {found:?}:\n{text}");
}

/// Display, Debug, pretty Debug and the source chain of an error.
fn printed(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error}\n{error:?}\n{error:#?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("\ncaused by: {cause} / {cause:?}"));
        source = cause.source();
    }
    text
}

// ------------------------------------------------------------------------ servers that echo

/// The request as a server that echoes it would write it back: line, every header, body.
fn echo(r: &Recorded) -> String {
    let mut text = format!("{} {}", r.method, r.target);
    for (name, value) in &r.headers {
        text.push_str(&format!("\n{name}: {}", value.to_str().unwrap_or("?")));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&r.body));
    text
}

/// `echo` inside a JSON string the way PHP's `json_encode` writes it (`/` as `\/`).
fn php_json(fields: &[(&str, &str)]) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in fields {
        map.insert(k.to_string(), json!(v));
    }
    serde_json::Value::Object(map)
        .to_string()
        .replace('/', "\\/")
}

/// Counts requests per path, for answers that change on the second try.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<HashMap<String, usize>>>);

impl Counter {
    fn next(&self, path: &str) -> usize {
        let mut counts = self.0.lock().unwrap();
        let n = counts.entry(path.to_string()).or_default();
        *n += 1;
        *n - 1
    }
}

/// A Kommo account whose every error answer echoes the request, headers included.
fn kommo_echo(r: &Recorded, counter: &Counter) -> Reply {
    let n = counter.next(r.path());
    match (r.method.as_str(), r.path()) {
        ("GET", "/api/v4/sources") => Reply::json(200, example("listSources.response.200.json")),
        ("POST", "/api/v4/sources") => Reply::html(503, &echo(r)),
        ("GET", "/api/v4/widgets") => Reply::json(200, example("listWidgets.response.200.json")),
        ("GET", "/api/v4/widgets/problem") => Reply::json(
            401,
            json!({"title": "Unauthorized", "status": 401, "detail": echo(r)}),
        ),
        ("GET", "/api/v4/widgets/php-problem") => Reply::status(400)
            .header("content-type", "application/problem+json")
            .body(php_json(&[("title", "Bad Request"), ("detail", &echo(r))])),
        ("GET", "/api/v4/widgets/limited") => Reply::html(429, &echo(r)).header("retry-after", "1"),
        ("GET", "/api/v4/widgets/slow-down") => {
            Reply::html(429, &echo(r)).header("retry-after", "3600")
        }
        ("GET", "/api/v4/widgets/once") if n == 0 => Reply::html(429, &echo(r)),
        ("GET", "/api/v4/widgets/once") => Reply::json(200, example("getWidget.response.200.json")),
        ("GET", "/api/v4/widgets/down") => Reply::html(502, &echo(r)),
        ("GET", "/api/v4/widgets/blocked") => Reply::html(403, &echo(r)),
        ("GET", "/api/v4/widgets/decode") => Reply::status(200)
            .header("content-type", "application/hal+json")
            .body(json!({"code": 5, "echo": echo(r)}).to_string()),
        ("POST", p) if p.starts_with("/api/v4/widgets/") => {
            Reply::json(200, example("installWidget.response.200.json"))
        }
        _ => Reply::json(404, json!({"title": "Not Found", "detail": echo(r)})),
    }
}

/// Kommo with OAuth: the token endpoint answers `token`, the API accepts only the new token and
/// echoes any request it refuses.
fn oauth_echo(r: &Recorded, token: &dyn Fn(&Recorded) -> Reply) -> Reply {
    if r.path() == TOKEN_PATH {
        return token(r);
    }
    if r.header("authorization") == Some(&format!("Bearer {NEW_ACCESS}")) {
        Reply::json(200, example("listSources.response.200.json"))
    } else {
        Reply::json(401, json!({"title": "Unauthorized", "detail": echo(r)}))
    }
}

fn new_pair() -> Reply {
    Reply::status(200)
        .header("content-type", "application/json")
        .body(
            json!({"token_type": "Bearer", "expires_in": 86400,
                   "access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH})
            .to_string(),
        )
}

fn app() -> OAuthApp {
    OAuthApp::new("integration-id", CLIENT_SECRET, "https://example.com/oauth")
}

fn pair(valid_for: Duration) -> TokenPair {
    let now: chrono::DateTime<chrono::Utc> = std::time::SystemTime::now().into();
    TokenPair {
        access_token: Secret::new(OLD_ACCESS),
        refresh_token: Secret::new(OLD_REFRESH),
        expires_at: now + chrono::Duration::from_std(valid_for).unwrap(),
    }
}

/// A callback that stores nothing, or fails the way a database does: quoting the value.
fn oauth_with(valid_for: Duration, callback_fails: bool) -> OAuth {
    OAuth::new(app(), pair(valid_for), move |pair: TokenPair| async move {
        if callback_fails {
            Err(std::io::Error::other(format!(
                "duplicate key value violates unique constraint: Key (access_token)=({}) already exists",
                pair.access_token.expose()
            )))
        } else {
            Ok(())
        }
    })
}

fn oauth_client(server: &ScriptServer, oauth: OAuth) -> kommo::Client {
    kommo::Client::builder()
        .base_url(&server.base_url)
        .oauth(oauth)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap()
}

// ------------------------------------------------------------------------- a whole session

/// Everything a session can print: errors, reports.
#[derive(Default)]
struct Session {
    /// (what, printed text)
    printed: Vec<(String, String)>,
    /// The kinds of error seen, e.g. `ApiError::Problem`, `AuthError::Rejected`.
    kinds: Vec<&'static str>,
}

impl Session {
    fn api_error<P: std::fmt::Debug + lead_intake::error::ProblemSummary>(
        &mut self,
        what: &str,
        error: ApiError<P>,
    ) where
        ApiError<P>: std::error::Error + 'static,
    {
        let kind = match &error {
            ApiError::Problem { .. } => "ApiError::Problem",
            ApiError::UnexpectedResponse { .. } => "ApiError::UnexpectedResponse",
            ApiError::RateLimited { .. } => "ApiError::RateLimited",
            ApiError::AccountBlocked { .. } => "ApiError::AccountBlocked",
            ApiError::Auth { error, .. } => {
                self.auth_kind(error);
                "ApiError::Auth"
            }
            ApiError::Decode { .. } => "ApiError::Decode",
            ApiError::Transport(_) => "ApiError::Transport",
            ApiError::InvalidLink { .. } => "ApiError::InvalidLink",
            ApiError::InvalidRequest(_) => "ApiError::InvalidRequest",
            _ => "ApiError::other",
        };
        self.kinds.push(kind);
        self.printed
            .push((format!("{what} ({kind})"), printed(&error)));
    }

    fn auth_kind(&mut self, error: &AuthError) {
        self.kinds.push(match error {
            AuthError::Rejected { .. } => "AuthError::Rejected",
            AuthError::Callback(_) => "AuthError::Callback",
            AuthError::TokenEndpoint { .. } => "AuthError::TokenEndpoint",
            AuthError::InvalidTokenResponse(_) => "AuthError::InvalidTokenResponse",
            AuthError::Transport(_) => "AuthError::Transport",
            AuthError::Config(_) => "AuthError::Config",
            _ => "AuthError::other",
        });
    }

    fn auth_error(&mut self, what: &str, error: AuthError) {
        self.auth_kind(&error);
        self.printed.push((what.to_string(), printed(&error)));
    }

    fn text(&mut self, what: &str, text: String) {
        self.printed.push((what.to_string(), text));
    }
}

/// Static-token Kommo calls: success, every error answer (each echoing the token), retries
/// (429 with and without `Retry-After`, 5xx, a `Retry-After` too long), the rate limiter, a
/// refused connection, links, a widget's `pass` setting.
async fn kommo_static(s: &mut Session) {
    let counter = Counter::default();
    let server = ScriptServer::start(move |r, _| kommo_echo(r, &counter)).await;
    let client = kommo::Client::builder()
        .base_url(&server.base_url)
        .token(TOKEN)
        .rate_limiter(RateLimiter::per_second(2).unwrap())
        .retry(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_base_delay(Duration::from_millis(10)),
        )
        .http_client(http_without_timeouts())
        .build()
        .unwrap();

    client.list_sources().send().or_empty().await.unwrap();
    client
        .get_widget()
        .widget_code("once")
        .send()
        .body()
        .await
        .unwrap();
    for code in [
        "problem",
        "php-problem",
        "limited",
        "slow-down",
        "down",
        "blocked",
        "decode",
    ] {
        let err = client
            .get_widget()
            .widget_code(code)
            .send()
            .body()
            .await
            .unwrap_err();
        s.api_error(code, err);
    }
    // A POST answered 503: not retried.
    let add: types::AddSourcesRequest =
        serde_json::from_value(json!([{"name": "chat", "external_id": "c1"}])).unwrap();
    let err = client
        .add_sources()
        .body(add)
        .send()
        .body()
        .await
        .unwrap_err();
    s.api_error("POST 503", err);
    // A widget's `pass` setting travels in the body: never logged.
    let settings: types::WidgetInstallSettings =
        serde_json::from_value(json!({"login": "admin", "api_password": WIDGET_PASS})).unwrap();
    s.text("install settings", format!("{settings:?} {settings:#?}"));
    client
        .install_widget()
        .widget_code("amo_asterisk")
        .body(settings)
        .send()
        .body()
        .await
        .unwrap();
    // Links: one of the API with a query string, and refusals.
    let href = format!("/api/v4/widgets?page=2&api_key={QUERY_SECRET}");
    client.follow::<types::WidgetList>(&href).await.unwrap();
    for href in [
        "https://evil.example/api/v4/widgets",
        &format!("{}@evil.example/api/v4/widgets", server.base_url),
        "LINK",
    ] {
        let err = client.follow::<types::WidgetList>(href).await.unwrap_err();
        s.api_error("refused link", err);
    }
    // A builder value that does not convert.
    let err = client
        .list_widgets()
        .limit(0)
        .send()
        .or_empty()
        .await
        .unwrap_err();
    s.api_error("limit 0", err);
    // A bound port that never listens: refused connections, retried, then an error.
    let refusing = common::Refusing::bind();
    let unreachable = kommo::Client::builder()
        .base_url(&refusing.base_url())
        .token(TOKEN)
        .retry(RetryPolicy::default().with_max_attempts(2))
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let err = unreachable
        .list_sources()
        .send()
        .or_empty()
        .await
        .unwrap_err();
    s.api_error("refused connection", err);
    s.text("kommo client", format!("{client:?} {client:#?}"));
}

/// OAuth: refresh before expiry and after a 401; a token endpoint that fails (echoing the
/// refresh token and client secret, plainly and PHP-escaped), refuses the grant (echoing them in
/// its problem), answers a malformed pair (with the new tokens in it); a callback that fails
/// quoting the token; the code exchange succeeding and failing.
async fn kommo_oauth(s: &mut Session) {
    // Refresh before expiry, then the call.
    let server = ScriptServer::start(|r, _| oauth_echo(r, &|_| new_pair())).await;
    let client = oauth_client(&server, oauth_with(Duration::from_secs(60), false));
    client.list_sources().send().or_empty().await.unwrap();
    s.text("oauth client", format!("{client:?} {client:#?}"));

    // A 401 to a token that has a day left: refresh, send again.
    let server = ScriptServer::start(|r, _| oauth_echo(r, &|_| new_pair())).await;
    let client = oauth_client(&server, oauth_with(Duration::from_secs(86400), false));
    client.list_sources().send().or_empty().await.unwrap();

    // The token endpoint fails and echoes the request (its body has the refresh token and the
    // client secret).
    for token_reply in [
        (|r: &Recorded| Reply::html(500, &echo(r))) as fn(&Recorded) -> Reply,
        |r: &Recorded| {
            Reply::status(502)
                .header("content-type", "application/json")
                .body(php_json(&[("error", &echo(r))]))
        },
        |r: &Recorded| {
            Reply::json(
                401,
                json!({"title": "Unauthorized", "detail": echo(r), "hint": echo(r)}),
            )
        },
        |r: &Recorded| {
            Reply::status(400)
                .header("content-type", "application/json")
                .body(php_json(&[("title", "Bad Request"), ("hint", &echo(r))]))
        },
        |_: &Recorded| {
            Reply::status(200)
                .header("content-type", "application/json")
                .body(
                    json!({"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH,
                           "expires_in": NEW_ACCESS})
                    .to_string(),
                )
        },
        |_: &Recorded| {
            Reply::status(200)
                .header("content-type", "application/json")
                .body(format!(
                    "{{\"access_token\": \"{NEW_ACCESS}\", \"refresh_token\": "
                ))
        },
    ] {
        let server = ScriptServer::start(move |r, _| oauth_echo(r, &token_reply)).await;
        let client = oauth_client(&server, oauth_with(Duration::ZERO, false));
        let err = client.list_sources().send().or_empty().await.unwrap_err();
        s.api_error("refresh", err);
        // After a refused grant, the next call fails fast.
        let err = client.list_sources().send().or_empty().await.unwrap_err();
        s.api_error("refresh, again", err);
    }

    // The callback fails, quoting the new token.
    let server = ScriptServer::start(|r, _| oauth_echo(r, &|_| new_pair())).await;
    let client = oauth_client(&server, oauth_with(Duration::ZERO, true));
    let err = client.list_sources().send().or_empty().await.unwrap_err();
    s.api_error("callback", err);

    // The code exchange: success, a refusal and a failure that echo the code and the secret.
    let counter = Counter::default();
    let server = ScriptServer::start(move |r, _| match counter.next(r.path()) {
        0 => new_pair(),
        1 => Reply::json(400, json!({"title": "Bad Request", "hint": echo(r)})),
        _ => Reply::html(500, &echo(r)),
    })
    .await;
    let http = http_without_timeouts();
    let tokens = oauth::exchange_code_with_client(&http, &server.base_url, &app(), CODE)
        .await
        .unwrap();
    s.text("exchanged pair", format!("{tokens:?} {tokens:#?}"));
    for _ in 0..2 {
        let err = oauth::exchange_code_with_client(&http, &server.base_url, &app(), CODE)
            .await
            .unwrap_err();
        s.auth_error("exchange", err);
    }
    let err = oauth::exchange_code("http://example.com", &app(), CODE)
        .await
        .unwrap_err();
    s.auth_error("exchange, insecure", err);
}

/// CloseBot with the key in `X-CB-KEY` and in `Authorization: Key`, answering sources with a CRM
/// key, and errors that echo the request.
async fn closebot_calls(s: &mut Session) {
    let server = ScriptServer::start(|r, _| {
        match r.target.contains("page=1") {
            false => {
                let mut page: serde_json::Value = serde_json::from_str(
                    &common::closebot_example_text("listSources.response.200.json"),
                )
                .unwrap();
                page["results"][0]["key"] = json!(CRM_KEY);
                page["results"][0]["accessToken"] = json!(CRM_KEY);
                Reply::status(200)
                    .header("content-type", "application/json")
                    .body(page.to_string())
            }
            // An error that echoes the key, and a success that does not decode.
            true if r.header("x-cb-key").is_some() => Reply::json(
                401,
                json!({"title": "Unauthorized", "status": 401, "detail": echo(r)}),
            ),
            true => Reply::status(200)
                .header("content-type", "application/json")
                .body(json!({"total": "many", "echo": echo(r), "key": CRM_KEY}).to_string()),
        }
    })
    .await;
    for form in [KeyHeader::XCbKey, KeyHeader::AuthorizationKey] {
        let client = closebot::Client::builder()
            .api_key(API_KEY)
            .base_url(&server.base_url)
            .key_header(form)
            .retry(RetryPolicy::none())
            .http_client(http_without_timeouts())
            .build()
            .unwrap();
        let page = client.list_sources().page(0).send().body().await.unwrap();
        s.text("closebot page", format!("{page:?} {page:#?}"));
        let err = client
            .list_sources()
            .page(1)
            .send()
            .body()
            .await
            .unwrap_err();
        s.api_error("closebot", err);
        s.text("closebot client", format!("{client:?} {client:#?}"));
    }
}

/// Batches on the fake: chunks answered, then a chunk failing (a 500) that stops the batch.
async fn batches(s: &mut Session) {
    let fake = FakeServer::start(Config::default().kommo_token(TOKEN).source_limit(1000)).unwrap();
    let client = kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(TOKEN)
        .no_rate_limit()
        .http_client(http_without_timeouts())
        .build()
        .unwrap();
    let items: Vec<types::AddSource> = (0..60)
        .map(|i| {
            serde_json::from_value(json!({"name": format!("s{i}"), "external_id": format!("e{i}")}))
                .unwrap()
        })
        .collect();
    let report = client
        .add_sources_batched(&items, &BatchOptions::new())
        .await;
    assert!(report.is_complete(), "{report}");
    fake.inject([Fault::ServerError(500)]);
    let more: Vec<types::AddSource> = (60..120)
        .map(|i| {
            serde_json::from_value(json!({"name": format!("s{i}"), "external_id": format!("e{i}")}))
                .unwrap()
        })
        .collect();
    let report = client
        .add_sources_batched(&more, &BatchOptions::new())
        .await;
    let error = report.error().expect("the 500 stops the batch");
    s.text("batch error", printed(error));
    s.text("batch report", format!("{report} {report:?} {report:#?}"));
}

async fn whole_session() -> Session {
    let mut s = Session::default();
    kommo_static(&mut s).await;
    kommo_oauth(&mut s).await;
    closebot_calls(&mut s).await;
    batches(&mut s).await;
    s
}

// ------------------------------------------------------------------------------------ logs

/// One subscriber for the whole test binary, installed before any test emits anything: every
/// event of every crate at TRACE (`log` records included, since reqwest logs through `log`),
/// written to the emitting thread's capture when it has one and dropped otherwise. (Scoped
/// subscribers would race: a callsite first reached by a test that captures nothing can be
/// cached as uninteresting while another test's subscriber is being installed.)
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_log::LogTracer::init().expect("no other `log` logger in this binary");
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(ThreadCapture)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other subscriber in this binary");
    });
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Writes to the current thread's capture, if any.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(out) = c.borrow().as_ref() {
                out.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThreadCapture {
    type Writer = ThreadCapture;
    fn make_writer(&'a self) -> ThreadCapture {
        ThreadCapture
    }
}

/// Captures what this thread logs until dropped. The test's runtime is single-threaded, so the
/// client, hyper's connection tasks and the scripted servers all run on this thread.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn start() -> Self {
        init();
        let out = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|c| *c.borrow_mut() = Some(out.clone()));
        Self(out)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

#[tokio::test(start_paused = true)]
async fn logs_never_carry_a_secret() {
    let capture = Capture::start();
    whole_session().await;
    let logs = capture.text();
    drop(capture);

    let mut secrets = CREDENTIALS.to_vec();
    secrets.push(QUERY_SECRET);
    assert_no_secret("the logs", &logs, &secrets);

    // The check above means something only if the events are there.
    for (target, event) in [
        ("lead_intake::transport", "sending request"),
        ("lead_intake::transport", "response received"),
        ("lead_intake::transport", "request failed"),
        (
            "lead_intake::transport",
            "request not sent: no valid OAuth token",
        ),
        ("lead_intake::retry", "retrying"),
        ("lead_intake::retry", "delay_from=\"Retry-After\""),
        ("lead_intake::retry", "delay_from=\"backoff\""),
        ("lead_intake::retry", "giving up: every attempt"),
        ("lead_intake::retry", "Retry-After is longer than"),
        (
            "lead_intake::retry",
            "not retried: the request may have been applied",
        ),
        ("lead_intake::ratelimit", "rate limiter: waiting for a slot"),
        ("lead_intake::oauth", "refreshing the access token"),
        ("lead_intake::oauth", "401 to the access token"),
        ("lead_intake::oauth", "access token refreshed"),
        (
            "lead_intake::oauth",
            "the access token could not be refreshed",
        ),
        ("lead_intake::oauth", "the refresh token was refused"),
        (
            "lead_intake::oauth",
            "not refreshing: the refresh token was refused earlier",
        ),
        ("lead_intake::oauth", "the on_refresh callback failed"),
        ("lead_intake::oauth", "authorization code exchanged"),
        (
            "lead_intake::oauth",
            "the authorization code exchange failed",
        ),
        ("lead_intake::links", "link not followed"),
        ("lead_intake::batch", "batch chunk answered"),
        ("lead_intake::batch", "batch chunk failed; the batch stops"),
        ("lead_intake::batch", "batch chunk not sent"),
    ] {
        assert!(
            logs.lines()
                .any(|line| line.contains(target) && line.contains(event)),
            "no {target} event {event:?} in the logs:\n{logs}"
        );
    }
    // Other crates' events are captured too (hyper-util's tracing, reqwest's `log`), so their
    // absence of secrets is checked as well.
    assert!(
        logs.lines()
            .any(|line| line.contains("hyper_util") || line.contains("reqwest")),
        "no event of hyper-util or reqwest captured:\n{logs}"
    );
    // Per-request events name the path, never the query string.
    assert!(logs.contains("path=\"/api/v4/widgets\""), "{logs}");
}

// ---------------------------------------------------------------------------- error text

#[tokio::test(start_paused = true)]
async fn errors_never_carry_a_secret_even_when_the_server_echoes_it() {
    init();
    let session = whole_session().await;
    for (what, text) in &session.printed {
        assert_no_secret(what, text, &CREDENTIALS);
    }
    // Every kind of error was printed.
    for kind in [
        "ApiError::Problem",
        "ApiError::UnexpectedResponse",
        "ApiError::RateLimited",
        "ApiError::AccountBlocked",
        "ApiError::Auth",
        "ApiError::Decode",
        "ApiError::Transport",
        "ApiError::InvalidLink",
        "ApiError::InvalidRequest",
        "AuthError::Rejected",
        "AuthError::Callback",
        "AuthError::TokenEndpoint",
        "AuthError::InvalidTokenResponse",
        "AuthError::Config",
    ] {
        assert!(
            session.kinds.contains(&kind),
            "no {kind} in the session: {:?}",
            session.kinds
        );
    }
    // The echoes did arrive, redacted: the check above is not passing on empty bodies.
    let all: String = session.printed.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("[redacted]"), "{all}");
    assert!(all.contains("x-cb-key: [redacted]"), "{all}");
    assert!(all.contains("authorization: Bearer [redacted]"), "{all}");
}

// ---------------------------------------------------------------------------- Debug output

#[tokio::test]
async fn debug_output_of_every_secret_holder_hides_the_secret() {
    init();
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut show = |what: &str, text: String| shown.push((what.to_string(), text));

    let secret = Secret::new(TOKEN);
    show("Secret", format!("{secret:?} {secret:#?}"));

    let builder = kommo::Client::builder().subdomain("acct").token(TOKEN);
    show(
        "kommo::ClientBuilder (token)",
        format!("{builder:?} {builder:#?}"),
    );
    let client = builder.build().unwrap();
    show("kommo::Client (token)", format!("{client:?} {client:#?}"));
    let state = ClientInfo::inner(&client);
    show("kommo::ClientState", format!("{state:?} {state:#?}"));

    let builder = kommo::Client::builder()
        .subdomain("acct")
        .oauth(oauth_with(Duration::from_secs(3600), false));
    show(
        "kommo::ClientBuilder (oauth)",
        format!("{builder:?} {builder:#?}"),
    );
    let client = builder.build().unwrap();
    show("kommo::Client (oauth)", format!("{client:?} {client:#?}"));
    let tokens = client.oauth_tokens().await.unwrap();
    show("TokenPair", format!("{tokens:?} {tokens:#?}"));
    let app = app();
    show("OAuthApp", format!("{app:?} {app:#?}"));
    let settings_oauth = oauth_with(Duration::from_secs(3600), false);
    show("OAuth", format!("{settings_oauth:?} {settings_oauth:#?}"));

    for form in [KeyHeader::XCbKey, KeyHeader::AuthorizationKey] {
        let builder = closebot::Client::builder()
            .api_key(API_KEY)
            .key_header(form);
        show(
            "closebot::ClientBuilder",
            format!("{builder:?} {builder:#?}"),
        );
        let client = builder.build().unwrap();
        show("closebot::Client", format!("{client:?} {client:#?}"));
        let state = ClientInfo::inner(&client);
        show("closebot::ClientState", format!("{state:?} {state:#?}"));
    }

    // Generated types with `format: password` fields.
    let mut page: serde_json::Value = serde_json::from_str(&common::closebot_example_text(
        "listSources.response.200.json",
    ))
    .unwrap();
    page["results"][0]["key"] = json!(CRM_KEY);
    page["results"][0]["accessToken"] = json!(CRM_KEY);
    let page: closebot::types::SourcePage = serde_json::from_value(page).unwrap();
    show("closebot SourcePage", format!("{page:?} {page:#?}"));
    let settings: types::WidgetInstallSettings = serde_json::from_value(json!({
        "api_password": WIDGET_PASS,
        "operators": {"42": {"login": "op", "password": WIDGET_PASS}},
    }))
    .unwrap();
    show(
        "WidgetInstallSettings",
        format!("{settings:?} {settings:#?}"),
    );
    // ... and they still serialize the value: sending it is deliberate.
    let sent = serde_json::to_string(&settings).unwrap();
    assert_eq!(sent.matches(WIDGET_PASS).count(), 2, "{sent}");
    // The same settings as the server sends them back in a widget (installWidget's answer).
    let mut widget: serde_json::Value = serde_json::from_str(&common::kommo_example_text(
        "installWidget.response.200.json",
    ))
    .unwrap();
    widget["settings"] = json!({
        "api_password": WIDGET_PASS,
        "operators": {"42": {"login": "op", "password": WIDGET_PASS}},
    });
    let widget: types::Widget = serde_json::from_value(widget).unwrap();
    show("Widget (settings)", format!("{widget:?} {widget:#?}"));
    let settings = widget.settings.as_ref().unwrap();
    assert_eq!(settings.get("api_password"), Some(&json!(WIDGET_PASS)));

    // Errors refusing a credential.
    for bad in [format!("{TOKEN}\n"), format!("{TOKEN}\u{7f}")] {
        let err = kommo::Client::from_base_url("https://x.kommo.com", bad.as_str()).unwrap_err();
        show("ConfigError", printed(&err));
        let err = closebot::Client::from_api_key(format!("{API_KEY}\r\nX: y")).unwrap_err();
        show("ConfigError", printed(&err));
    }

    // The fake's configuration and server.
    let config = Config::default()
        .kommo_token(TOKEN)
        .closebot_key(API_KEY)
        .other_integration(NEW_ACCESS);
    show("fake::Config", format!("{config:?} {config:#?}"));
    let fake = FakeServer::start(config).unwrap();
    show("fake::FakeServer", format!("{fake:?} {fake:#?}"));

    for (what, text) in &shown {
        assert_no_secret(
            what,
            text,
            &[
                TOKEN,
                API_KEY,
                CLIENT_SECRET,
                OLD_ACCESS,
                OLD_REFRESH,
                NEW_ACCESS,
                CRM_KEY,
                WIDGET_PASS,
            ],
        );
        assert!(!text.is_empty(), "{what}");
    }
    // The redacted values are still there to use.
    assert_eq!(secret.expose(), TOKEN);
    assert_eq!(tokens.access_token.expose(), OLD_ACCESS);
    assert_eq!(fake.kommo_token().expose(), TOKEN);
}

// ---------------------------------------------------------------------- the caller's data

/// A server that answers every request with `head` and the start of a body, then closes the
/// connection before the `content-length` it announced.
async fn cut_short(head: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(b"{\"title\": \"Bad").await;
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{addr}")
}

/// A transport error's text names the path, never the query: filter values are the caller's
/// data (a phone number, a search term), left out of error text as they are out of the logs.
#[tokio::test]
async fn transport_errors_name_the_path_not_the_query() {
    init();
    const PRIVATE: &str = "PRIVATE-UID-0451";
    let fake = FakeServer::start(Config::default()).unwrap();
    fake.inject([Fault::Drop]);
    let servers = [
        ("closed before an answer", fake.base_url()),
        (
            "an error answer cut short",
            cut_short(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n\
                 content-length: 500\r\n\r\n",
            )
            .await,
        ),
        (
            "a page cut short",
            cut_short(
                "HTTP/1.1 200 OK\r\ncontent-type: application/hal+json\r\n\
                 content-length: 500\r\n\r\n",
            )
            .await,
        ),
    ];
    for (what, base) in servers {
        let kommo = kommo::Client::builder()
            .base_url(&base)
            .token(fake.kommo_token())
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let err = kommo
            .list_incoming_leads()
            .filter_uid(vec![PRIVATE.to_string()])
            .send()
            .or_empty()
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Transport(_)), "{what}: {err:?}");
        let text = format!("{} | {err:?} | {err:#?}", printed(&err));
        assert!(!text.contains(PRIVATE), "{what}: {text}");
        assert!(!text.contains("filter"), "{what}: {text}");
        assert!(text.contains("/api/v4/leads/unsorted"), "{what}: {text}");
    }
}

// ---------------------------------------------------------------------- transport security

#[tokio::test]
async fn plain_http_is_refused_except_on_loopback_unless_allowed() {
    init();
    let refused = [
        "http://example.com",
        "http://example.com:8080/api",
        "http://10.0.0.1:8080",
        "http://192.168.1.10",
        "http://0.0.0.0:8080",
        "http://localhost.evil.com",
        "http://localhostx:1",
        "http://127.0.0.1.nip.io",
        "http://[::ffff:127.0.0.1]:1",
        "http://[::]:1",
    ];
    for url in refused {
        match kommo::Client::from_base_url(url, TOKEN) {
            Err(ConfigError::InsecureBaseUrl { value }) => assert_eq!(value, url),
            other => panic!("kommo {url}: {other:?}"),
        }
        match closebot::Client::from_base_url(url, API_KEY) {
            Err(ConfigError::InsecureBaseUrl { .. }) => {}
            other => panic!("closebot {url}: {other:?}"),
        }
        match oauth::exchange_code(url, &app(), CODE).await {
            Err(AuthError::Config(e)) if matches!(*e, ConfigError::InsecureBaseUrl { .. }) => {}
            other => panic!("exchange_code {url}: {other:?}"),
        }
        // Explicitly allowed: accepted.
        kommo::Client::from_base_url_insecure(url, TOKEN)
            .unwrap_or_else(|e| panic!("kommo {url} allowed: {e}"));
        kommo::Client::builder()
            .base_url(url)
            .allow_insecure_http()
            .token(TOKEN)
            .build()
            .unwrap_or_else(|e| panic!("kommo builder {url} allowed: {e}"));
        closebot::Client::builder()
            .api_key(API_KEY)
            .base_url(url)
            .allow_insecure_http()
            .build()
            .unwrap_or_else(|e| panic!("closebot {url} allowed: {e}"));
    }
    for url in [
        "http://127.0.0.1:8080/",
        "http://127.8.9.10:1",
        "http://localhost:1",
        "http://LOCALHOST:1",
        "http://[::1]:1",
        "https://example.com",
        "https://acct.kommo.com/",
    ] {
        kommo::Client::from_base_url(url, TOKEN).unwrap_or_else(|e| panic!("kommo {url}: {e}"));
        closebot::Client::from_base_url(url, API_KEY)
            .unwrap_or_else(|e| panic!("closebot {url}: {e}"));
    }
    // Not a base URL at all, whatever is allowed.
    for url in [
        "ftp://example.com",
        "file:///etc/passwd",
        "not a url",
        "https://user:pw@acct.kommo.com",
        "https://token@acct.kommo.com",
        "https://acct.kommo.com/?token=x",
        "https://acct.kommo.com/#x",
        "mailto:a@b.c",
    ] {
        for built in [
            kommo::Client::from_base_url_insecure(url, TOKEN).map(|_| ()),
            closebot::Client::builder()
                .api_key(API_KEY)
                .base_url(url)
                .allow_insecure_http()
                .build()
                .map(|_| ()),
        ] {
            match built {
                Err(ConfigError::InvalidBaseUrl { value, .. }) => assert_eq!(value, url),
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_subdomain_is_one_dns_label() {
    init();
    let long = "a".repeat(64);
    for bad in [
        "",
        "-acct",
        "acct-",
        "-",
        "acct.kommo.com",
        "acct.",
        ".acct",
        "evil.com/x",
        "evil.com#",
        "user@evil",
        "acct:8080",
        "a/b",
        "a b",
        " acct",
        "acct\n",
        "a_b",
        "ácct",
        "аcct", // a Cyrillic а
        "acct%2e",
        "xn--",
        long.as_str(),
    ] {
        for built in [
            kommo::Client::from_subdomain(bad, TOKEN),
            kommo::Client::from_amocrm_subdomain(bad, TOKEN),
        ] {
            match built {
                Err(e @ ConfigError::InvalidSubdomain { .. }) => {
                    assert!(
                        matches!(&e, ConfigError::InvalidSubdomain { value, .. } if value == bad)
                    );
                    assert_no_secret("the subdomain error", &printed(&e), &[TOKEN]);
                }
                other => panic!("{bad:?} should be refused: {other:?}"),
            }
        }
    }
    let longest = "a".repeat(63);
    for (good, host) in [
        ("acct", "acct"),
        ("My-Company2", "my-company2"),
        ("a", "a"),
        ("42", "42"),
        ("a--b", "a--b"),
        ("xn--80ak6aa92e", "xn--80ak6aa92e"),
        (longest.as_str(), longest.as_str()),
    ] {
        let client = kommo::Client::from_subdomain(good, TOKEN)
            .unwrap_or_else(|e| panic!("{good:?} is a label: {e}"));
        assert_eq!(client.baseurl(), &format!("https://{host}.kommo.com"));
        let client = kommo::Client::from_amocrm_subdomain(good, TOKEN).unwrap();
        assert_eq!(client.baseurl(), &format!("https://{host}.amocrm.ru"));
    }
}

#[tokio::test]
async fn links_to_another_origin_are_refused_and_nothing_is_sent() {
    init();
    let own =
        ScriptServer::start(|_, _| Reply::json(200, example("listWidgets.response.200.json")))
            .await;
    let evil =
        ScriptServer::start(|_, _| Reply::json(200, example("listWidgets.response.200.json")))
            .await;
    let client = kommo::Client::builder()
        .base_url(&own.base_url)
        .token(TOKEN)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let own_host = own.base_url.trim_start_matches("http://").to_string();
    let evil_host = evil.base_url.trim_start_matches("http://").to_string();
    let evil_port = evil_host.rsplit(':').next().unwrap().to_string();
    let hrefs = [
        // Another port, host or scheme.
        format!("http://{evil_host}/api/v4/widgets"),
        format!("http://localhost:{evil_port}/api/v4/widgets"),
        format!(
            "http://localhost:{}/api/v4/widgets",
            own_host.rsplit(':').next().unwrap()
        ),
        format!("https://{own_host}/api/v4/widgets"),
        "https://evil.example/api/v4/widgets".to_string(),
        // Scheme-relative, and the backslash spellings browsers and the URL standard read as `//`.
        format!("//{evil_host}/api/v4/widgets"),
        format!("/\\{evil_host}/api/v4/widgets"),
        format!("\\\\{evil_host}/api/v4/widgets"),
        format!("http:\\\\{evil_host}\\api\\v4\\widgets"),
        format!("http:/{evil_host}/api/v4/widgets"),
        // Userinfo: the real host is after the `@`; and credentials on our own origin.
        format!("http://{own_host}@{evil_host}/api/v4/widgets"),
        format!("http://{own_host}%40{evil_host}/api/v4/widgets"),
        format!("http://user:pw@{own_host}/api/v4/widgets"),
        format!("http://{TOKEN}@{own_host}/api/v4/widgets"),
        // Encoded or padded hosts.
        format!("http://%31%32%37.0.0.1:{evil_port}/api/v4/widgets"),
        format!(" http://{evil_host}/api/v4/widgets"),
        format!("ht\ttp://{evil_host}/api/v4/widgets"),
        format!("http://{evil_host}\n/api/v4/widgets"),
        // Not the API's paths, or not HTTP.
        "LINK".to_string(),
        "widgets?page=2".to_string(),
        "javascript:alert(1)".to_string(),
        "data:text/plain,x".to_string(),
        "file:///etc/passwd".to_string(),
        String::new(),
    ];
    for href in &hrefs {
        match client.follow::<types::WidgetList>(href).await {
            Err(ApiError::InvalidLink { href: h, reason }) => {
                assert_eq!(&h, href);
                assert!(!reason.contains(TOKEN), "{reason}");
            }
            other => panic!("{href:?} should be refused: {other:?}"),
        }
    }
    assert_eq!(
        evil.requests().len(),
        0,
        "a request reached the other origin"
    );
    assert_eq!(own.requests().len(), 0, "a refused link was sent");

    // The controls: links of the client's own origin are followed (so the counts above can see
    // a request).
    for href in [
        "/api/v4/widgets?page=2".to_string(),
        format!("{}/api/v4/widgets?page=3", own.base_url),
        format!("http://{}/api/v4/widgets", own_host.to_uppercase()),
        "/api/v4/../v4/widgets".to_string(),
    ] {
        client
            .follow::<types::WidgetList>(&href)
            .await
            .unwrap_or_else(|e| panic!("{href} is the client's own: {e}"));
    }
    assert_eq!(own.requests().len(), 4);
    assert!(
        own.requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}")))
    );
    assert_eq!(evil.requests().len(), 0);
}

#[tokio::test]
async fn redirects_to_another_origin_are_not_followed() {
    init();
    let evil = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => new_pair(),
        _ => Reply::json(200, example("listSources.response.200.json")),
    })
    .await;
    let evil_url = evil.base_url.clone();
    let own = ScriptServer::start(move |r, _| match r.path() {
        // Same origin: followed.
        "/api/v4/sources" => Reply::status(302).header("location", "/api/v4/sources/here"),
        "/api/v4/sources/here" => Reply::json(200, example("listSources.response.200.json")),
        path => Reply::status(if path == TOKEN_PATH { 307 } else { 302 })
            .header("location", &format!("{evil_url}{path}")),
    })
    .await;

    // Clients with the default HTTP client (the one that carries the redirect policy).
    let kommo = kommo::Client::builder()
        .base_url(&own.base_url)
        .token(TOKEN)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let within = kommo.list_sources().send().or_empty().await;
    let mut statuses = vec![
        kommo
            .list_widgets()
            .send()
            .or_empty()
            .await
            .map(|_| ())
            .map_err(|e| e.status()),
    ];
    for form in [KeyHeader::XCbKey, KeyHeader::AuthorizationKey] {
        let closebot = closebot::Client::builder()
            .api_key(API_KEY)
            .base_url(&own.base_url)
            .key_header(form)
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        statuses.push(
            closebot
                .list_sources()
                .send()
                .body()
                .await
                .map(|_| ())
                .map_err(|e| e.status()),
        );
    }
    // A 307 keeps the method and the body: the code and the client secret.
    let exchanged = oauth::exchange_code(&own.base_url, &app(), CODE).await;

    let reached: Vec<String> = evil.requests().iter().map(echo).collect();
    assert!(
        reached.is_empty(),
        "the other origin received: {reached:#?}"
    );
    // The redirect within the origin was followed; the others came back as their 3xx.
    within.expect("a redirect within the origin is followed");
    let found = Some(reqwest::StatusCode::FOUND);
    assert_eq!(statuses, [Err(found), Err(found), Err(found)]);
    assert!(
        matches!(&exchanged, Err(AuthError::TokenEndpoint { status, .. }) if status.as_u16() == 307),
        "{exchanged:?}"
    );
    assert_eq!(own.requests().len(), 6);
}
