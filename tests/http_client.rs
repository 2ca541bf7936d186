//! The crate's HTTP client, extended rather than replaced (`lead_intake::http`, "Your own HTTP client
//! settings"): a user's additions keep the same-origin redirect policy and the user agent, and
//! the proxy variables of the environment are read only with the `system-proxy` feature.
//!
//! | claim | test |
//! |---|---|
//! | `http_client_builder` adds to the defaults; a redirect to another origin is still not followed, even when the additions set reqwest's own redirect policy | `additions_keep_the_user_agent_and_the_redirect_policy` |
//! | `lead_intake::http::client_builder()` carries the same defaults into a client of your own | `the_public_builder_carries_the_defaults` |
//! | `HTTP_PROXY` in the environment is ignored by default, and used with `system-proxy` | `proxy_variables_only_with_the_system_proxy_feature` (a child process with its own environment) |

mod common;

use common::script::{Recorded, Reply, ScriptServer};
use common::{TOKEN, example};
use lead_intake::kommo::Client;
use lead_intake::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};

const USER_AGENT: &str = concat!("lead-intake/", env!("CARGO_PKG_VERSION"));

fn sources() -> Reply {
    Reply::json(200, example("listSources.response.200.json"))
}

/// A server that answers `/api/v4/sources` with a redirect to `elsewhere`, and a server there.
async fn redirecting() -> (ScriptServer, ScriptServer) {
    let elsewhere = ScriptServer::start(|_, _| sources()).await;
    let target = format!("{}/api/v4/sources", elsewhere.base_url);
    let own = ScriptServer::start(move |_, _| Reply::status(302).header("location", &target)).await;
    (own, elsewhere)
}

fn described(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {} {:?}", r.method, r.target, r.headers))
        .collect()
}

#[tokio::test]
async fn additions_keep_the_user_agent_and_the_redirect_policy() {
    let (own, elsewhere) = redirecting().await;
    let kommo = Client::builder()
        .base_url(&own.base_url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client_builder(|http| {
            let mut headers = HeaderMap::new();
            headers.insert("x-team", HeaderValue::from_static("intake"));
            // Even reqwest's own policy (any host) given here does not replace ours.
            http.default_headers(headers)
                .redirect(reqwest::redirect::Policy::limited(10))
        })
        .build()
        .unwrap();

    let answer = kommo.list_sources().send().or_empty().await;

    assert!(
        elsewhere.requests().is_empty(),
        "the other origin received: {:#?}",
        described(&elsewhere.requests())
    );
    let status = answer.map(|_| ()).map_err(|e| e.status());
    assert_eq!(status, Err(Some(reqwest::StatusCode::FOUND)));
    let sent = own.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].header("x-team"),
        Some("intake"),
        "the addition took"
    );
    assert_eq!(sent[0].header("user-agent"), Some(USER_AGENT));
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn the_public_builder_carries_the_defaults() {
    let (own, elsewhere) = redirecting().await;
    let http = lead_intake::http::client_builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let kommo = Client::builder()
        .base_url(&own.base_url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http)
        .build()
        .unwrap();

    let status = kommo
        .list_sources()
        .send()
        .or_empty()
        .await
        .map(|_| ())
        .map_err(|e| e.status());

    assert!(
        elsewhere.requests().is_empty(),
        "the other origin received: {:#?}",
        described(&elsewhere.requests())
    );
    assert_eq!(status, Err(Some(reqwest::StatusCode::FOUND)));
    assert_eq!(own.requests()[0].header("user-agent"), Some(USER_AGENT));
}

/// Set in the child process only: the base URL it calls.
const CHILD_BASE_URL: &str = "LEAD_INTAKE_TEST_PROXY_CHILD_BASE_URL";

/// The environment is the process's: the variables are set on a child process (this test
/// binary again, running [`proxy_child`] alone), never in this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_only_with_the_system_proxy_feature() {
    let origin = ScriptServer::start(|_, _| sources()).await;
    let proxy = ScriptServer::start(|_, _| sources()).await;
    let exe = std::env::current_exe().unwrap();
    let (base_url, proxy_url) = (origin.base_url.clone(), proxy.base_url.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["--ignored", "--exact", "proxy_child", "--test-threads=1"])
            .env(CHILD_BASE_URL, base_url)
            .env("HTTP_PROXY", &proxy_url)
            .env("http_proxy", &proxy_url)
            .env("HTTPS_PROXY", &proxy_url)
            .env("ALL_PROXY", &proxy_url)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env_remove("REQUEST_METHOD")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && printed.contains("1 passed"),
        "the child failed: {printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (direct, proxied) = (origin.requests(), proxy.requests());
    if cfg!(feature = "system-proxy") {
        assert_eq!((direct.len(), proxied.len()), (0, 1), "{printed}");
        // Asked for the origin's URL.
        assert_eq!(proxied[0].target, "/api/v4/sources");
        let host = origin.base_url.trim_start_matches("http://");
        assert_eq!(proxied[0].header("host"), Some(host));
    } else {
        assert_eq!(
            (direct.len(), proxied.len()),
            (1, 0),
            "the proxy received: {:#?}",
            described(&proxied)
        );
    }
}

/// The child of [`proxy_variables_only_with_the_system_proxy_feature`]: one call with the
/// default HTTP client, in the environment its parent gave.
#[tokio::test]
#[ignore = "run by proxy_variables_only_with_the_system_proxy_feature in a child process"]
async fn proxy_child() {
    // Run alone (`--include-ignored`) it has nothing to call; its parent checks that it called.
    let Ok(base_url) = std::env::var(CHILD_BASE_URL) else {
        return;
    };
    let kommo = Client::builder()
        .base_url(&base_url)
        .token(TOKEN)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    kommo.list_sources().send().or_empty().await.unwrap();
}
