//! OAuth 2.0: the code exchange, refresh before expiry and after a 401, single-flight refresh,
//! the storing callback, and a revoked refresh token. Paused tokio time, scripted server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::example;
use common::script::{Recorded, Reply, ScriptServer, http_without_timeouts};
use lead_intake::Secret;
use lead_intake::error::ApiError;
use lead_intake::kommo::Client;
use lead_intake::oauth::{self, AuthError, Grant, OAuth, OAuthApp, TokenPair};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use serde_json::json;

const TOKEN_PATH: &str = "/oauth2/access_token";
const CLIENT_SECRET: &str = "CLIENT-SECRET-789";
const OLD_ACCESS: &str = "ACCESS-OLD-111";
const OLD_REFRESH: &str = "REFRESH-OLD-222";
const NEW_ACCESS: &str = "ACCESS-NEW-333";
const NEW_REFRESH: &str = "REFRESH-NEW-444";

fn now() -> DateTime<Utc> {
    std::time::SystemTime::now().into()
}

fn app() -> OAuthApp {
    OAuthApp::new("integration-id", CLIENT_SECRET, "https://example.com/oauth")
}

fn tokens(expires_in: Duration) -> TokenPair {
    TokenPair {
        access_token: Secret::new(OLD_ACCESS),
        refresh_token: Secret::new(OLD_REFRESH),
        expires_at: now() + chrono::Duration::from_std(expires_in).unwrap(),
    }
}

fn new_tokens_reply() -> Reply {
    Reply::status(200)
        .header("content-type", "application/json")
        .body(
            json!({
                "token_type": "Bearer",
                "expires_in": 86400,
                "access_token": NEW_ACCESS,
                "refresh_token": NEW_REFRESH
            })
            .to_string(),
        )
}

fn revoked_reply() -> Reply {
    Reply::json(
        401,
        json!({"hint": "Token has been revoked", "title": "Unauthorized",
               "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
               "status": 401, "detail": "Incorrect refresh token"}),
    )
}

fn sources() -> Reply {
    Reply::json(200, example("listSources.response.200.json"))
}

/// The API answers with sources only to the new token, and 401 to anything else.
fn api_wants_new_token(r: &Recorded) -> Reply {
    if r.header("authorization") == Some(&format!("Bearer {NEW_ACCESS}")) {
        sources()
    } else {
        Reply::json(
            401,
            json!({"title": "Unauthorized", "status": 401, "detail": "expired"}),
        )
    }
}

/// What the callback received.
type Stored = Arc<Mutex<Vec<TokenPair>>>;

fn storing_oauth(tokens: TokenPair, stored: &Stored) -> OAuth {
    let stored = stored.clone();
    OAuth::new(app(), tokens, move |pair: TokenPair| {
        let stored = stored.clone();
        async move {
            stored.lock().unwrap().push(pair);
            Ok::<(), std::io::Error>(())
        }
    })
}

fn client(server: &ScriptServer, oauth: OAuth) -> Client {
    Client::builder()
        .base_url(&server.base_url)
        .oauth(oauth)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap()
}

fn refresh_body() -> serde_json::Value {
    json!({
        "client_id": "integration-id",
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": OLD_REFRESH,
        "redirect_uri": "https://example.com/oauth"
    })
}

// ------------------------------------------------------------------------ refresh on expiry

#[tokio::test(start_paused = true)]
async fn a_token_about_to_expire_is_refreshed_before_the_request() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => new_tokens_reply(),
        _ => api_wants_new_token(r),
    })
    .await;
    let stored = Stored::default();
    // Expires in one minute: inside the default five-minute margin.
    let client = client(
        &server,
        storing_oauth(tokens(Duration::from_secs(60)), &stored),
    );

    client.list_sources().send().or_empty().await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one refresh, then the call");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path(), TOKEN_PATH);
    assert_eq!(requests[0].json(), refresh_body());
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Bearer {NEW_ACCESS}").as_str())
    );
    let stored = stored.lock().unwrap().clone();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].access_token.expose(), NEW_ACCESS);
    assert_eq!(stored[0].refresh_token.expose(), NEW_REFRESH);
    let lifetime = stored[0].expires_at - now();
    assert!(lifetime > chrono::Duration::hours(23), "{lifetime}");
    assert_eq!(client.oauth_tokens().await.unwrap(), stored[0]);
}

#[tokio::test(start_paused = true)]
async fn the_token_request_counts_against_the_rate_limit() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => new_tokens_reply(),
        _ => api_wants_new_token(r),
    })
    .await;
    let stored = Stored::default();
    let client = Client::builder()
        .base_url(&server.base_url)
        .oauth(storing_oauth(tokens(Duration::from_secs(60)), &stored))
        .rate_limiter(lead_intake::ratelimit::RateLimiter::per_second(1).unwrap())
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap();

    client.list_sources().send().or_empty().await.unwrap();

    let requests = server.requests();
    assert_eq!(requests[0].path(), TOKEN_PATH);
    assert_eq!(requests[1].path(), "/api/v4/sources");
    assert_eq!(requests[1].at - requests[0].at, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_fresh_token_is_used_as_is_until_the_margin_is_reached() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => new_tokens_reply(),
        _ => sources(),
    })
    .await;
    let stored = Stored::default();
    let oauth = storing_oauth(tokens(Duration::from_secs(3600)), &stored)
        .refresh_margin(Duration::from_secs(600));
    let client = client(&server, oauth);

    client.list_sources().send().or_empty().await.unwrap();
    assert!(server.requests_to(TOKEN_PATH).is_empty());
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {OLD_ACCESS}").as_str())
    );

    // 49 minutes later: still outside the 10-minute margin.
    tokio::time::advance(Duration::from_secs(49 * 60)).await;
    client.list_sources().send().or_empty().await.unwrap();
    assert!(server.requests_to(TOKEN_PATH).is_empty());

    // 51 minutes: inside it.
    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    client.list_sources().send().or_empty().await.unwrap();
    assert_eq!(server.requests_to(TOKEN_PATH).len(), 1);
    let last = server.requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {NEW_ACCESS}").as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_during_expiry_make_one_refresh() {
    let server = ScriptServer::start(|r, _| match r.path() {
        // A slow token endpoint, so every request arrives while the refresh is in flight.
        TOKEN_PATH => new_tokens_reply().after(Duration::from_millis(500)),
        _ => api_wants_new_token(r),
    })
    .await;
    let stored = Stored::default();
    let client = client(
        &server,
        storing_oauth(tokens(Duration::from_secs(10)), &stored),
    );

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.list_sources().send().or_empty().await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    assert_eq!(server.requests_to(TOKEN_PATH).len(), 1);
    assert_eq!(stored.lock().unwrap().len(), 1);
    let api = server.requests_to("/api/v4/sources");
    assert_eq!(api.len(), 20);
    assert!(
        api.iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {NEW_ACCESS}")))
    );
}

// ----------------------------------------------------------------------------- after a 401

#[tokio::test(start_paused = true)]
async fn a_401_refreshes_once_and_sends_the_request_once_more() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => new_tokens_reply(),
        _ => api_wants_new_token(r),
    })
    .await;
    let stored = Stored::default();
    // The token looks valid for hours, but the server no longer takes it.
    let client = client(
        &server,
        storing_oauth(tokens(Duration::from_secs(7200)), &stored),
    );

    let list = client.list_sources().send().or_empty().await.unwrap();

    assert_eq!(list.total_items, Some(2));
    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path()).collect();
    assert_eq!(paths, ["/api/v4/sources", TOKEN_PATH, "/api/v4/sources"]);
    assert_eq!(
        requests[2].header("authorization"),
        Some(format!("Bearer {NEW_ACCESS}").as_str())
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_401_is_returned_without_another_refresh() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => new_tokens_reply(),
        _ => Reply::json(401, json!({"title": "Unauthorized", "status": 401})),
    })
    .await;
    let stored = Stored::default();
    let client = client(
        &server,
        storing_oauth(tokens(Duration::from_secs(7200)), &stored),
    );

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    assert_eq!(err.status(), Some(reqwest::StatusCode::UNAUTHORIZED));
    assert!(matches!(err, ApiError::Problem { .. }), "{err:?}");
    assert_eq!(server.requests_to(TOKEN_PATH).len(), 1);
    assert_eq!(server.requests_to("/api/v4/sources").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_long_lived_token_is_not_refreshed_on_401() {
    let server =
        ScriptServer::start(|_, _| Reply::json(401, json!({"title": "Unauthorized"}))).await;
    let client = Client::builder()
        .base_url(&server.base_url)
        .token("long-lived")
        .http_client(http_without_timeouts())
        .build()
        .unwrap();

    client.list_sources().send().or_empty().await.unwrap_err();

    assert_eq!(server.requests().len(), 1);
}

// -------------------------------------------------------------------------------- callback

#[tokio::test(start_paused = true)]
async fn a_failing_callback_keeps_the_new_token_unused_and_is_offered_it_again() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => new_tokens_reply(),
        _ => sources(),
    })
    .await;
    let calls: Arc<Mutex<Vec<TokenPair>>> = Arc::default();
    let fail_first = {
        let calls = calls.clone();
        move |pair: TokenPair| {
            let calls = calls.clone();
            async move {
                let mut calls = calls.lock().unwrap();
                calls.push(pair);
                if calls.len() == 1 {
                    Err(std::io::Error::other("database is down"))
                } else {
                    Ok(())
                }
            }
        }
    };
    let client = client(
        &server,
        OAuth::new(app(), tokens(Duration::from_secs(30)), fail_first),
    );

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    let ApiError::Auth {
        error: AuthError::Callback(source),
        endpoint,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(endpoint, "/api/v4/sources");
    assert!(source.to_string().contains("database is down"));
    assert!(err.certainly_not_applied());
    // The refresh happened, but the API was not called with the unsaved token.
    assert_eq!(server.requests_to(TOKEN_PATH).len(), 1);
    assert!(server.requests_to("/api/v4/sources").is_empty());
    assert_eq!(
        client.oauth_tokens().await.unwrap().access_token.expose(),
        OLD_ACCESS
    );

    // The next request offers the same pair again (no second refresh: the old refresh token is
    // spent), and uses it once stored.
    client.list_sources().send().or_empty().await.unwrap();
    assert_eq!(server.requests_to(TOKEN_PATH).len(), 1);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], calls[1]);
    let api = server.requests_to("/api/v4/sources");
    assert_eq!(
        api[0].header("authorization"),
        Some(format!("Bearer {NEW_ACCESS}").as_str())
    );
}

// --------------------------------------------------------------------------------- revoked

#[tokio::test(start_paused = true)]
async fn a_revoked_refresh_token_is_a_typed_error_and_later_calls_fail_fast() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => revoked_reply(),
        _ => sources(),
    })
    .await;
    let stored = Stored::default();
    let client = client(
        &server,
        storing_oauth(tokens(Duration::from_secs(30)), &stored),
    );

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    let ApiError::Auth {
        error:
            AuthError::Rejected {
                grant,
                status,
                hint,
                ..
            },
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*grant, Grant::RefreshToken);
    assert_eq!(*status, 401);
    assert_eq!(hint.as_deref(), Some("Token has been revoked"));
    assert!(
        err.to_string().contains("must be authorized again"),
        "{err}"
    );
    assert!(stored.lock().unwrap().is_empty());

    let again = client.list_sources().send().or_empty().await.unwrap_err();
    assert!(matches!(
        again,
        ApiError::Auth {
            error: AuthError::Rejected { .. },
            ..
        }
    ));
    assert_eq!(server.requests().len(), 1, "nothing more was sent");
}

#[tokio::test(start_paused = true)]
async fn a_passing_token_endpoint_failure_falls_back_to_the_still_valid_token() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => Reply::status(502).body("bad gateway"),
        _ => sources(),
    })
    .await;
    let stored = Stored::default();
    let client = client(
        &server,
        storing_oauth(tokens(Duration::from_secs(120)), &stored),
    );

    client.list_sources().send().or_empty().await.unwrap();

    let requests = server.requests();
    assert_eq!(requests[0].path(), TOKEN_PATH);
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Bearer {OLD_ACCESS}").as_str())
    );
    // Not retried on every call: the next refresh waits a little.
    client.list_sources().send().or_empty().await.unwrap();
    assert_eq!(server.requests_to(TOKEN_PATH).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_with_a_failing_token_endpoint_is_an_error_not_a_stale_call() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => Reply::status(500),
        _ => sources(),
    })
    .await;
    let stored = Stored::default();
    let expired = TokenPair {
        expires_at: now() - chrono::Duration::seconds(5),
        ..tokens(Duration::ZERO)
    };
    let client = client(&server, storing_oauth(expired, &stored));

    let err = client.list_sources().send().or_empty().await.unwrap_err();

    assert!(
        matches!(&err, ApiError::Auth { error: AuthError::TokenEndpoint { status, .. }, .. } if *status == 500),
        "{err:?}"
    );
    assert!(server.requests_to("/api/v4/sources").is_empty());
}

/// Issue 20 §4: a 400 or 401 from the token endpoint that is not Kommo's refusal (a gateway's
/// page, JSON without the OAuth problem's fields) is a passing failure: the session is not ended,
/// and the endpoint is asked again on the next call, which then works.
#[tokio::test(start_paused = true)]
async fn a_gateway_page_from_the_token_endpoint_does_not_end_the_session() {
    let gateway_pages = [
        Reply::html(
            400,
            "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        ),
        Reply::html(401, "<html><body>401 Authorization Required</body></html>"),
        Reply::status(400),
        Reply::json(401, json!({"message": "Unauthorized"})),
        Reply::json(400, json!({"error": "bad_gateway_upstream"})),
    ];
    for page in gateway_pages {
        let status = page.status_code();
        let page = Mutex::new(Some(page));
        let server = ScriptServer::start(move |r, _| match r.path() {
            TOKEN_PATH => page.lock().unwrap().take().unwrap_or_else(new_tokens_reply),
            _ => api_wants_new_token(r),
        })
        .await;
        let stored = Stored::default();
        let expired = TokenPair {
            expires_at: now() - chrono::Duration::seconds(5),
            ..tokens(Duration::ZERO)
        };
        let client = client(&server, storing_oauth(expired, &stored));

        let err = client.list_sources().send().or_empty().await.unwrap_err();
        assert!(
            matches!(&err, ApiError::Auth { error: AuthError::TokenEndpoint { status: s, .. }, .. } if s.as_u16() == status),
            "{status}: {err:?}"
        );
        assert!(
            !err.to_string().contains("must be authorized again"),
            "{status}: {err}"
        );

        // The endpoint is asked again, answers 200, and the session goes on.
        client.list_sources().send().or_empty().await.unwrap();
        assert_eq!(server.requests_to(TOKEN_PATH).len(), 2, "{status}");
        assert_eq!(stored.lock().unwrap().len(), 1, "{status}");
    }
}

/// Kommo's refusals in their forms: its OAuth problem document with a `hint`, the same without a
/// hint but with its problem type, and an RFC 6749 `invalid_grant`. Each ends the session.
#[tokio::test(start_paused = true)]
async fn kommo_s_refusal_in_each_of_its_forms_ends_the_session() {
    let refusals = [
        revoked_reply(),
        Reply::json(
            400,
            json!({"title": "Bad Request", "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
                   "status": 400, "detail": "Refresh token is invalid"}),
        ),
        Reply::json(
            400,
            json!({"error": "invalid_grant", "error_description": "The refresh token is invalid."}),
        ),
    ];
    for refusal in refusals {
        let status = refusal.status_code();
        let refusal = Mutex::new(Some(refusal));
        let server = ScriptServer::start(move |r, _| match r.path() {
            TOKEN_PATH => refusal
                .lock()
                .unwrap()
                .take()
                .unwrap_or_else(new_tokens_reply),
            _ => api_wants_new_token(r),
        })
        .await;
        let stored = Stored::default();
        let client = client(
            &server,
            storing_oauth(tokens(Duration::from_secs(30)), &stored),
        );
        let err = client.list_sources().send().or_empty().await.unwrap_err();
        assert!(
            matches!(&err, ApiError::Auth { error: AuthError::Rejected { status: s, .. }, .. } if s.as_u16() == status),
            "{status}: {err:?}"
        );
        client.list_sources().send().or_empty().await.unwrap_err();
        assert_eq!(
            server.requests_to(TOKEN_PATH).len(),
            1,
            "{status}: fails fast"
        );
    }
}

// --------------------------------------------------------------------------- code exchange

#[tokio::test(start_paused = true)]
async fn the_authorization_code_is_exchanged_for_a_token_pair() {
    let server = ScriptServer::start(|_, _| new_tokens_reply()).await;

    let pair = oauth::exchange_code_with_client(
        &http_without_timeouts(),
        &server.base_url,
        &app(),
        "def502-code",
    )
    .await
    .unwrap();

    assert_eq!(pair.access_token.expose(), NEW_ACCESS);
    assert_eq!(pair.refresh_token.expose(), NEW_REFRESH);
    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path(), TOKEN_PATH);
    assert_eq!(
        request.json(),
        json!({
            "client_id": "integration-id",
            "client_secret": CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": "def502-code",
            "redirect_uri": "https://example.com/oauth"
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_used_authorization_code_is_rejected() {
    let server = ScriptServer::start(|_, _| {
        Reply::json(
            400,
            json!({"hint": "Authorization code has been revoked", "title": "Bad Request",
                   "status": 400, "detail": "The authorization grant is invalid"}),
        )
    })
    .await;

    let err = oauth::exchange_code_with_client(
        &http_without_timeouts(),
        &server.base_url,
        &app(),
        "used",
    )
    .await
    .unwrap_err();

    assert!(
        matches!(&err, AuthError::Rejected { grant: Grant::AuthorizationCode, status, .. } if *status == 400),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_answer_without_tokens_is_refused() {
    let server = ScriptServer::start(|_, _| {
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"token_type":"Bearer","expires_in":86400,"access_token":""}"#)
    })
    .await;
    let err =
        oauth::exchange_code_with_client(&http_without_timeouts(), &server.base_url, &app(), "c")
            .await
            .unwrap_err();
    assert!(matches!(err, AuthError::InvalidTokenResponse(_)), "{err:?}");
}

// ----------------------------------------------------------------------------------- secrets

#[tokio::test(start_paused = true)]
async fn no_token_or_client_secret_is_printed() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => revoked_reply(),
        _ => sources(),
    })
    .await;
    let stored = Stored::default();
    let oauth = storing_oauth(tokens(Duration::from_secs(30)), &stored);
    let printed_oauth = format!("{oauth:?} {:?} {:?}", app(), tokens(Duration::ZERO));
    let client = client(&server, oauth);
    let err = client.list_sources().send().or_empty().await.unwrap_err();
    let printed = format!("{printed_oauth} {client:?} {client:#?} {err} {err:?}");
    for secret in [
        CLIENT_SECRET,
        OLD_ACCESS,
        OLD_REFRESH,
        NEW_ACCESS,
        NEW_REFRESH,
    ] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
}

// ------------------------------------------------------------------- lifetimes out of range

#[tokio::test(start_paused = true)]
async fn an_absurd_expires_in_is_read_as_ten_years_not_a_panic() {
    for expires_in in [i64::MAX, 400_000_000_000, 10 * 365 * 24 * 3600 + 1] {
        let server = ScriptServer::start(move |_, _| {
            Reply::status(200)
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"token_type":"Bearer","expires_in":{expires_in},"access_token":"{NEW_ACCESS}","refresh_token":"{NEW_REFRESH}"}}"#
                ))
        })
        .await;
        let pair = oauth::exchange_code_with_client(
            &http_without_timeouts(),
            &server.base_url,
            &app(),
            "c",
        )
        .await
        .unwrap();
        let ten_years = chrono::Duration::days(10 * 365);
        let left = pair.expires_at - now();
        assert!(
            left <= ten_years && left > ten_years - chrono::Duration::minutes(1),
            "{expires_in}: {left}"
        );
        assert_eq!(pair.access_token.expose(), NEW_ACCESS);
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_pair_that_never_expires_is_used_as_it_is() {
    let server = ScriptServer::start(|r, _| match r.path() {
        TOKEN_PATH => new_tokens_reply(),
        _ => sources(),
    })
    .await;
    let stored = Stored::default();
    let pair = TokenPair {
        access_token: Secret::new(OLD_ACCESS),
        refresh_token: Secret::new(OLD_REFRESH),
        expires_at: DateTime::<Utc>::MAX_UTC,
    };
    let client = client(&server, storing_oauth(pair, &stored));

    client.list_sources().send().or_empty().await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "no refresh: {requests:?}");
    let expected = format!("Bearer {OLD_ACCESS}");
    assert_eq!(requests[0].header("authorization"), Some(expected.as_str()));
    assert!(stored.lock().unwrap().is_empty());
}
