//! The fake plays Kommo's OAuth: `POST /oauth2/access_token` with the `authorization_code` and
//! `refresh_token` grants (JSON or form-encoded), access tokens that expire, single-use refresh
//! tokens (a reused one answers 401 "Token has been revoked"), Kommo-style refusals, the
//! counters a multi-process test reads, the admin calls, the rate limit per integration; over
//! HTTP and through the library's `lead_intake::oauth` client.

mod fake_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_common::Fake;
use lead_intake::kommo::Error as KommoError;
use lead_intake::oauth::{self, AuthError, Grant, OAuth, OAuthApp, TokenPair};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use lead_intake_fake::{Config, Faults, OAuthConfig, OAuthStats};
use serde_json::{Value, json};

const PROBLEM_TYPE: &str = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson";

/// A token request with a JSON body: status, `Content-Type` and body.
async fn token_json(fake: &Fake, body: Value) -> (u16, String, Value) {
    let response = reqwest::Client::new()
        .post(fake.token_url())
        .json(&body)
        .send()
        .await
        .expect("the token endpoint answers");
    read(response).await
}

/// A token request with a form-encoded body, as the official PHP SDK sends it.
async fn token_form(fake: &Fake, pairs: &[(&str, &str)]) -> (u16, String, Value) {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let response = reqwest::Client::new()
        .post(fake.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the token endpoint answers");
    read(response).await
}

async fn read(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.json().await.expect("a JSON body");
    (status, content_type, body)
}

fn code_grant(fake: &Fake, code: &str) -> Value {
    let app = fake.oauth();
    json!({
        "client_id": app.client_id(),
        "client_secret": app.client_secret().expose(),
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": app.redirect_uri(),
    })
}

fn refresh_grant(fake: &Fake, refresh_token: &str) -> Value {
    let app = fake.oauth();
    json!({
        "client_id": app.client_id(),
        "client_secret": app.client_secret().expose(),
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "redirect_uri": app.redirect_uri(),
    })
}

/// The status of `GET /api/v4/sources` with this bearer token.
async fn api_status(fake: &Fake, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/api/v4/sources", fake.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("the API answers")
        .status()
        .as_u16()
}

/// Asserts a refusal: status, Kommo's OAuth problem shape, and its hint.
fn assert_refused(answer: &(u16, String, Value), status: u16, title: &str, hint: Option<&str>) {
    let (got, content_type, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["title"], title, "{body}");
    assert_eq!(body["type"], PROBLEM_TYPE, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(body.get("hint").and_then(Value::as_str), hint, "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
}

/// A Kommo client with OAuth against the fake: no client-side limiter and no retries, so each
/// call is one API request (plus the token request of a refresh). Every pair handed to the
/// callback is in the returned list.
fn oauth_client(
    fake: &Fake,
    app: OAuthApp,
    tokens: TokenPair,
) -> (lead_intake::kommo::Client, Arc<Mutex<Vec<TokenPair>>>) {
    let stored = Arc::new(Mutex::new(Vec::new()));
    let sink = stored.clone();
    let oauth = OAuth::new(app, tokens, move |pair: TokenPair| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push(pair);
            Ok::<(), std::io::Error>(())
        }
    });
    let client = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .oauth(oauth)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .build()
        .expect("a loopback base URL is accepted");
    (client, stored)
}

/// The first token pair, through the library's code exchange.
async fn first_pair(fake: &Fake) -> TokenPair {
    oauth::exchange_code(
        &fake.base_url(),
        &fake.oauth_app(),
        &fake.authorization_code(),
    )
    .await
    .expect("the code is exchanged")
}

fn auth_error(error: KommoError) -> AuthError {
    match error {
        KommoError::Auth { error, .. } => error,
        other => panic!("not an OAuth failure: {other:?}"),
    }
}

#[tokio::test]
async fn a_code_is_exchanged_for_kommo_s_token_pair_once_and_its_access_token_works() {
    let fake = Fake::default();
    let code = fake.authorization_code();
    let (status, content_type, pair) = token_json(&fake, code_grant(&fake, &code)).await;
    assert_eq!(status, 200, "{pair}");
    assert_eq!(content_type, "application/json");
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 86400, "Kommo's 24 hours by default");
    let access = pair["access_token"].as_str().unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();
    assert!(!access.is_empty() && !refresh.is_empty() && access != refresh);
    assert_eq!(
        pair.as_object().unwrap().len(),
        4,
        "token_type, expires_in, access_token, refresh_token: {pair}"
    );
    assert_eq!(
        api_status(&fake, access).await,
        204,
        "an empty sources list"
    );
    // The long-lived token still works beside it (a private integration).
    assert_eq!(api_status(&fake, fake.kommo_token().expose()).await, 204);

    let again = token_json(&fake, code_grant(&fake, &code)).await;
    assert_refused(
        &again,
        400,
        "Invalid grant",
        Some("Authorization code has been revoked"),
    );
    let unknown = token_json(&fake, code_grant(&fake, "def502not-a-code")).await;
    assert_refused(
        &unknown,
        400,
        "Invalid grant",
        Some("Cannot decrypt the authorization code"),
    );
    let stats = fake.oauth_stats();
    assert_eq!(
        (stats.codes_issued, stats.codes_exchanged, stats.refused),
        (1, 1, 2)
    );
    assert_eq!(
        stats.authorized, 1,
        "the OAuth request, not the long-lived one"
    );
}

#[tokio::test]
async fn a_form_encoded_request_is_taken_as_the_official_php_sdk_sends_it() {
    let fake = Fake::default();
    let code = fake.authorization_code();
    let app = fake.oauth().clone();
    let (status, _, pair) = token_form(
        &fake,
        &[
            ("client_id", app.client_id()),
            ("client_secret", app.client_secret().expose()),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", app.redirect_uri()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{pair}");
    let refresh = pair["refresh_token"].as_str().unwrap();
    let (status, _, next) = token_form(
        &fake,
        &[
            ("client_id", app.client_id()),
            ("client_secret", app.client_secret().expose()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(fake.oauth_stats().refreshes, 1);
}

#[tokio::test]
async fn a_refresh_rotates_the_pair_and_a_reused_refresh_token_answers_401_token_has_been_revoked()
{
    let fake = Fake::default();
    let code = fake.authorization_code();
    let (_, _, first) = token_json(&fake, code_grant(&fake, &code)).await;
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let old_access = first["access_token"].as_str().unwrap();

    let (status, _, second) = token_json(&fake, refresh_grant(&fake, old_refresh)).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["token_type"], "Bearer");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    let new_access = second["access_token"].as_str().unwrap();
    assert_eq!(api_status(&fake, new_access).await, 204);
    // Kommo does not say whether a refresh revokes the old access token: by default it works
    // until it expires.
    assert_eq!(api_status(&fake, old_access).await, 204);

    let reused = token_json(&fake, refresh_grant(&fake, old_refresh)).await;
    assert_refused(
        &reused,
        401,
        "Invalid request",
        Some("Token has been revoked"),
    );
    // The new pair is unharmed by the reuse.
    let new_refresh = second["refresh_token"].as_str().unwrap();
    let (status, _, third) = token_json(&fake, refresh_grant(&fake, new_refresh)).await;
    assert_eq!(status, 200, "{third}");

    let stats = fake.oauth_stats();
    assert_eq!(
        (stats.refreshes, stats.revoked_reuses, stats.refused),
        (2, 1, 1)
    );
    let unknown = token_json(&fake, refresh_grant(&fake, "def502never-issued")).await;
    assert_refused(
        &unknown,
        401,
        "Invalid request",
        Some("Cannot decrypt the refresh token"),
    );
    assert_eq!(fake.oauth_stats().revoked_reuses, 1, "not a reuse");
}

#[tokio::test]
async fn with_revoke_access_on_refresh_the_old_access_token_answers_401_at_once() {
    let fake =
        Fake::start(Config::default().oauth(OAuthConfig::default().revoke_access_on_refresh(true)));
    let code = fake.authorization_code();
    let (_, _, first) = token_json(&fake, code_grant(&fake, &code)).await;
    let old_access = first["access_token"].as_str().unwrap();
    assert_eq!(api_status(&fake, old_access).await, 204);
    let (status, _, second) = token_json(
        &fake,
        refresh_grant(&fake, first["refresh_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(api_status(&fake, old_access).await, 401);
    assert_eq!(
        api_status(&fake, second["access_token"].as_str().unwrap()).await,
        204
    );
}

#[tokio::test]
async fn access_tokens_expire_after_the_configured_lifetime_and_on_the_admin_call() {
    // A lifetime of a microsecond: expired by the time any request arrives (no waiting).
    let short = Fake::start(
        Config::default()
            .oauth(OAuthConfig::default().access_token_lifetime(Duration::from_micros(1))),
    );
    let code = short.authorization_code();
    let (_, _, pair) = token_json(&short, code_grant(&short, &code)).await;
    assert_eq!(pair["expires_in"], 1, "rounded up to a whole second");
    let response = reqwest::Client::new()
        .get(format!("{}/api/v4/sources", short.base_url()))
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 401, "Kommo's API problem: {problem}");
    assert_eq!(short.oauth_stats().expired_tokens_refused, 1);
    // The refresh token still works: a new (equally short-lived) pair.
    let (status, _, _) = token_json(
        &short,
        refresh_grant(&short, pair["refresh_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);

    // The default lifetime, expired at once by the admin call.
    let fake = Fake::default();
    let code = fake.authorization_code();
    let (_, _, pair) = token_json(&fake, code_grant(&fake, &code)).await;
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(api_status(&fake, access).await, 204);
    assert_eq!(fake.expire_access_tokens(), 1);
    assert_eq!(api_status(&fake, access).await, 401);
    assert_eq!(fake.expire_access_tokens(), 0, "none left to expire");
    // The long-lived token does not expire.
    assert_eq!(api_status(&fake, fake.kommo_token().expose()).await, 204);
    let stats = fake.oauth_stats();
    assert_eq!(
        (
            stats.authorized,
            stats.expired_tokens_refused,
            stats.forced_expiries
        ),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn kommo_style_refusals_for_the_client_the_redirect_uri_missing_parameters_and_unknown_grants()
 {
    let fake = Fake::default();
    let code = fake.authorization_code();
    let mut wrong_secret = code_grant(&fake, &code);
    wrong_secret["client_secret"] = json!("not-the-secret");
    assert_refused(
        &token_json(&fake, wrong_secret).await,
        401,
        "Invalid client",
        None,
    );
    let mut wrong_client = code_grant(&fake, &code);
    wrong_client["client_id"] = json!("someone-else");
    assert_refused(
        &token_json(&fake, wrong_client).await,
        401,
        "Invalid client",
        None,
    );
    let mut no_client = code_grant(&fake, &code);
    no_client.as_object_mut().unwrap().remove("client_id");
    assert_refused(
        &token_json(&fake, no_client).await,
        400,
        "Invalid request",
        Some("Check the `client_id` parameter"),
    );
    let mut wrong_uri = code_grant(&fake, &code);
    wrong_uri["redirect_uri"] = json!("https://evil.example/oauth");
    assert_refused(
        &token_json(&fake, wrong_uri).await,
        400,
        "Invalid request",
        Some("Invalid redirect URI"),
    );
    let mut no_code = code_grant(&fake, &code);
    no_code.as_object_mut().unwrap().remove("code");
    assert_refused(
        &token_json(&fake, no_code).await,
        400,
        "Invalid request",
        Some("Check the `code` parameter"),
    );
    for grant in [json!("password"), json!("client_credentials"), Value::Null] {
        let mut body = code_grant(&fake, &code);
        body["grant_type"] = grant;
        assert_refused(
            &token_json(&fake, body).await,
            400,
            "Unsupported grant type",
            Some("Check that all required parameters have been provided"),
        );
    }
    let not_json = reqwest::Client::new()
        .post(fake.token_url())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_refused(
        &read(not_json).await,
        400,
        "Unsupported grant type",
        Some("Check that all required parameters have been provided"),
    );
    let get = reqwest::Client::new()
        .get(fake.token_url())
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    // None of those refusals spent the code.
    let (status, _, pair) = token_json(&fake, code_grant(&fake, &code)).await;
    assert_eq!(status, 200, "{pair}");
    assert_eq!(fake.oauth_stats().refused, 9);
}

#[tokio::test]
async fn through_the_library_an_expired_access_token_is_refreshed_once_and_the_request_succeeds() {
    let fake = Fake::default();
    let tokens = first_pair(&fake).await;
    let (kommo, stored) = oauth_client(&fake, fake.oauth_app(), tokens.clone());
    kommo
        .list_sources()
        .send()
        .or_empty()
        .await
        .expect("the first pair works");
    assert_eq!(
        fake.oauth_stats().refreshes,
        0,
        "no refresh while it is valid"
    );

    assert_eq!(fake.expire_access_tokens(), 1);
    let sources = kommo.list_sources().send().or_empty().await;
    assert!(sources.is_ok(), "{sources:?}");
    let stats = fake.oauth_stats();
    assert_eq!(stats.refreshes, 1, "{stats:?}");
    assert_eq!(
        stats.expired_tokens_refused, 1,
        "the one 401 before the refresh"
    );
    assert_eq!(stats.revoked_reuses, 0);
    let stored = stored.lock().unwrap().clone();
    assert_eq!(stored.len(), 1, "the callback stored the new pair");
    assert_ne!(stored[0].refresh_token, tokens.refresh_token);
    assert_eq!(kommo.oauth_tokens().await.as_ref(), Some(&stored[0]));

    // Again: one refresh per expiry, never a revoked token.
    fake.expire_access_tokens();
    kommo
        .list_sources()
        .send()
        .or_empty()
        .await
        .expect("refreshed again");
    kommo
        .list_sources()
        .send()
        .or_empty()
        .await
        .expect("no refresh needed");
    let stats = fake.oauth_stats();
    assert_eq!((stats.refreshes, stats.revoked_reuses), (2, 0), "{stats:?}");
    assert_eq!(stats.authorized, 4);
}

#[tokio::test]
async fn through_the_library_a_refresh_token_spent_elsewhere_is_the_typed_revoked_error() {
    let fake = Fake::default();
    let tokens = first_pair(&fake).await;
    let (kommo, stored) = oauth_client(&fake, fake.oauth_app(), tokens.clone());
    // Another process refreshes with the same pair first.
    let (status, _, _) =
        token_json(&fake, refresh_grant(&fake, tokens.refresh_token.expose())).await;
    assert_eq!(status, 200);
    fake.expire_access_tokens();

    let error = kommo.list_sources().send().or_empty().await.unwrap_err();
    assert_eq!(error.status(), None, "not an API answer: {error:?}");
    match auth_error(error) {
        AuthError::Rejected {
            grant,
            status,
            hint,
            ..
        } => {
            assert_eq!(grant, Grant::RefreshToken);
            assert_eq!(status.as_u16(), 401);
            assert_eq!(hint.as_deref(), Some("Token has been revoked"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.oauth_stats().revoked_reuses, 1);
    assert!(stored.lock().unwrap().is_empty());
    // The client fails fast from then on: no more token requests.
    let again = kommo.list_sources().send().or_empty().await.unwrap_err();
    assert!(matches!(auth_error(again), AuthError::Rejected { .. }));
    assert_eq!(fake.oauth_stats().refused, 1);
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_typed_error_and_no_error_text_holds_a_secret() {
    let fake = Fake::default();
    let app = fake.oauth().clone();
    let wrong = "wrong-secret-5d1c0e9a";
    let bad_app = OAuthApp::new(app.client_id(), wrong, app.redirect_uri());
    let code = fake.authorization_code();

    // The code exchange.
    let error = oauth::exchange_code(&fake.base_url(), &bad_app, &code)
        .await
        .unwrap_err();
    let texts = [error.to_string(), format!("{error:?}")];
    match &error {
        AuthError::Rejected {
            grant,
            status,
            title,
            detail,
            ..
        } => {
            assert_eq!(*grant, Grant::AuthorizationCode);
            assert_eq!(status.as_u16(), 401);
            assert_eq!(title.as_deref(), Some("Invalid client"));
            assert_eq!(detail.as_deref(), Some("Client authentication failed"));
        }
        other => panic!("{other:?}"),
    }
    for text in &texts {
        assert!(!text.contains(wrong), "{text}");
        assert!(!text.contains(app.client_secret().expose()), "{text}");
        assert!(!text.contains(&code), "{text}");
    }

    // A refresh with the wrong secret, through a client.
    let tokens = oauth::exchange_code(&fake.base_url(), &fake.oauth_app(), &code)
        .await
        .expect("the refused exchange did not spend the code");
    let (kommo, _) = oauth_client(&fake, bad_app, tokens.clone());
    fake.expire_access_tokens();
    let error = kommo.list_sources().send().or_empty().await.unwrap_err();
    let mut texts = vec![error.to_string(), format!("{error:?}")];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        texts.push(cause.to_string());
        source = cause.source();
    }
    for text in &texts {
        for secret in [
            wrong,
            app.client_secret().expose(),
            tokens.access_token.expose(),
            tokens.refresh_token.expose(),
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    match auth_error(error) {
        AuthError::Rejected { status, title, .. } => {
            assert_eq!(status.as_u16(), 401);
            assert_eq!(title.as_deref(), Some("Invalid client"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.oauth_stats().refreshes, 0);
}

#[tokio::test]
async fn the_admin_api_hands_out_codes_expires_tokens_and_shows_the_counters() {
    let fake = Fake::default();
    let http = reqwest::Client::new();
    let admin = format!("{}/__admin", fake.base_url());
    let issued: Value = http
        .post(format!("{admin}/oauth/code"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(issued["expires_in"], 1200);
    let code = issued["code"].as_str().unwrap();
    let (status, _, pair) = token_json(&fake, code_grant(&fake, code)).await;
    assert_eq!(status, 200, "{pair}");

    let expired: Value = http
        .post(format!("{admin}/oauth/expire"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expired, json!({"expired": 1}));
    assert_eq!(
        api_status(&fake, pair["access_token"].as_str().unwrap()).await,
        401
    );

    let shown: Value = http
        .get(format!("{admin}/oauth"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown,
        json!({
            "client_id": "fake-client-id",
            "redirect_uri": "https://example.com/oauth",
            "token_url": fake.token_url(),
            "access_token_lifetime_ms": 86_400_000,
            "valid_access_tokens": 0,
            "stats": {
                "codes_issued": 1, "codes_exchanged": 1, "refreshes": 0, "revoked_reuses": 0,
                "refused": 0, "expired_tokens_refused": 1, "authorized": 0, "forced_expiries": 1
            }
        })
    );
    assert!(
        !shown.to_string().contains("fake-client-secret"),
        "no secret"
    );
    let stats: OAuthStats = fake.oauth_stats();
    assert_eq!(stats.codes_issued, 1);
    let wrong_method = http
        .get(format!("{admin}/oauth/code"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);

    // A reset forgets every code and token.
    fake.reset(true);
    assert_eq!(fake.oauth_stats(), OAuthStats::default());
    let (status, _, _) = token_json(
        &fake,
        refresh_grant(&fake, pair["refresh_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 401);
}

/// Runs `scenario` until it passes or fails within a second: the fake's rate-limit window is a
/// second of real time, so a run that a busy machine stretched over it proves nothing (at most
/// five runs).
async fn in_one_window<F: Future<Output = bool> + Send + 'static>(scenario: fn() -> F) {
    for _ in 0..5 {
        let started = Instant::now();
        if scenario().await {
            return;
        }
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "failed within one window"
        );
    }
    panic!("five runs each took over the fake's one-second window");
}

#[tokio::test]
async fn token_requests_and_oauth_tokens_count_towards_the_integration_s_one_rate_limit() {
    in_one_window(one_integration_one_budget).await;
}

/// With 3 requests a second: a token request, a call with the long-lived token and one with an
/// OAuth access token use the main integration's budget, so its fourth request is a 429; another
/// integration's budget is its own. Returns false when the 429 did not come (judged by the
/// caller: only a run within one second proves anything).
async fn one_integration_one_budget() -> bool {
    let fake = Fake::start(
        Config::default()
            .other_integration("other-token")
            .faults(Faults::none().rate_limit(3)),
    );
    let code = fake.authorization_code();
    let (status, _, pair) = token_json(&fake, code_grant(&fake, &code)).await;
    assert_eq!(status, 200, "{pair}");
    let access = pair["access_token"].as_str().unwrap().to_string();
    assert_eq!(api_status(&fake, fake.kommo_token().expose()).await, 204);
    assert_eq!(api_status(&fake, &access).await, 204);
    let refresh = pair["refresh_token"].as_str().unwrap();
    let fourth = reqwest::Client::new()
        .post(fake.token_url())
        .json(&refresh_grant(&fake, refresh))
        .send()
        .await
        .unwrap();
    if fourth.status() != 429 {
        return false;
    }
    let page = fourth.text().await.unwrap();
    assert!(
        page.contains("429 Too Many Requests"),
        "the gateway's page: {page}"
    );
    assert_eq!(fake.oauth_stats().refreshes, 0, "a 429 is not processed");
    // Another integration on the same account has a budget of its own.
    assert_eq!(api_status(&fake, "other-token").await, 204);
    assert_eq!(fake.stats().rate_limited, 1);
    true
}
