//! `lead_intake::widget`: Salesbot's `widget_request` (body, HS512 token, continue) and the
//! widget's disposable token (HS256), with tokens signed here as Kommo signs them.

#[path = "../fake/tests/fake_common/mod.rs"]
mod fake_common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use fake_common::Fake;
use lead_intake::error::ApiError;
use lead_intake::kommo::types::{BotHandler, BotHandlerName, BotHandlerParams, BotKind};
use lead_intake::widget::*;
use lead_intake::{ConfigError, Secret};
use serde_json::{Value, json};

/// 64 letters and digits, as Kommo's client secrets (the HS512 verifier needs 64 bytes).
const SECRET: &str = "hO3kxLw0vTq9ZcNa5RjfE1uYb8sDm2GpXi7KtV6eWnA4yCrU0lHdJ9oBgF3QzM5S";
const RECEIVER: &str = "https://widget.example.com";

fn secret() -> Secret {
    Secret::new(SECRET)
}

/// The instant the tests read as "now".
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time")
}

fn bot_claims() -> Value {
    json!({
        "iss": "https://mycompany.kommo.com",
        "account_id": 31,
        "subdomain": "mycompany",
        "client_uuid": "c0ffee-uuid",
        "entity_id": 1001,
        "entity_type": 2,
        "bot_type": "salesbot",
        "exp": now().timestamp() + 300,
        "aud": RECEIVER,
        "extra_claim": "kept"
    })
}

fn disposable_claims() -> Value {
    json!({
        "iss": "https://mycompany.kommo.com",
        "aud": RECEIVER,
        "jti": "5c8e1a4e-jti",
        "iat": now().timestamp() - 10,
        "nbf": now().timestamp() - 10,
        "exp": now().timestamp() + 60,
        "account_id": "31",
        "subdomain": "mycompany",
        "client_uuid": "c0ffee-uuid",
        "user_id": 7,
        "is_admin": true
    })
}

fn bot_verifier() -> BotTokenVerifier {
    BotTokenVerifier::new(secret())
        .expect("a 64-byte key")
        .at(now())
}

fn disposable_verifier() -> DisposableTokenVerifier {
    DisposableTokenVerifier::new(secret(), &format!("{RECEIVER}/oauth/callback"))
        .expect("a redirect URI")
        .at(now())
}

/// A token with any header, signed HS512 with the secret over exactly what it says.
fn hs512_with_header(header: Value, claims: &Value) -> String {
    let signed = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = raw_hs512(&signed);
    format!("{signed}.{signature}")
}

// ------------------------------------------------------------------------- the bot token

#[test]
fn a_bot_token_signed_hs512_with_the_secret_gives_typed_claims() {
    let token = sign_token(Algorithm::Hs512, &bot_claims(), &secret());
    let claims = bot_verifier()
        .audience(&format!("{RECEIVER}/salesbot/hook"))
        .expect("an URL")
        .verify(&token)
        .expect("a good token");
    assert_eq!(claims.iss, "https://mycompany.kommo.com");
    assert_eq!(claims.account_id, 31);
    assert_eq!(claims.subdomain, "mycompany");
    assert_eq!(claims.client_uuid, "c0ffee-uuid");
    assert_eq!(claims.entity_id, 1001);
    assert_eq!(claims.entity_type, EntityType::Leads);
    assert_eq!(claims.bot_type, BotType::Salesbot);
    assert_eq!(claims.exp, now() + Duration::seconds(300));
    assert_eq!(claims.aud, vec![RECEIVER.to_string()]);
    assert_eq!(claims.other["extra_claim"], "kept");
}

#[test]
fn sign_bot_token_round_trips_through_the_verifier() {
    let claims = BotTokenClaims::new(
        "https://a.kommo.com",
        1,
        "a",
        "u",
        12,
        EntityType::Customers,
        BotType::Marketingbot,
        now() + Duration::seconds(1),
    );
    let token = sign_bot_token(&claims, &secret());
    assert_eq!(bot_verifier().verify(&token), Ok(claims));
}

#[test]
fn a_bot_token_signed_with_another_secret_is_a_bad_signature() {
    let token = sign_token(Algorithm::Hs512, &bot_claims(), &"another-secret".into());
    assert_eq!(bot_verifier().verify(&token), Err(TokenError::BadSignature));
}

#[test]
fn a_bot_token_whose_payload_was_changed_is_a_bad_signature() {
    let token = sign_token(Algorithm::Hs512, &bot_claims(), &secret());
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = bot_claims();
    claims["account_id"] = json!(32);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(
        bot_verifier().verify(&forged),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn an_expired_bot_token_is_refused_with_its_exp_and_leeway_extends_it() {
    let token = sign_token(Algorithm::Hs512, &bot_claims(), &secret());
    let exp = now() + Duration::seconds(300);
    let strict = bot_verifier().leeway(std::time::Duration::ZERO);
    let later = strict.clone().at(exp);
    assert_eq!(later.verify(&token), Err(TokenError::Expired { exp }));
    let lenient = later.leeway(std::time::Duration::from_secs(5));
    assert!(lenient.verify(&token).is_ok());
    let just_before = strict.at(exp - Duration::seconds(1));
    assert!(just_before.verify(&token).is_ok());
}

#[test]
fn a_bot_token_for_another_audience_is_refused_only_when_an_audience_is_given() {
    let mut claims = bot_claims();
    claims["aud"] = json!("https://other.example");
    let token = sign_token(Algorithm::Hs512, &claims, &secret());
    assert!(bot_verifier().verify(&token).is_ok(), "no audience given");
    let err = bot_verifier()
        .audience("https://widget.example.com:8443/hook")
        .expect("an URL")
        .verify(&token)
        .unwrap_err();
    assert_eq!(
        err,
        TokenError::WrongAudience {
            expected: RECEIVER.to_string(),
            found: vec!["https://other.example".to_string()],
        }
    );
    claims.as_object_mut().expect("an object").remove("aud");
    let token = sign_token(Algorithm::Hs512, &claims, &secret());
    let err = bot_verifier()
        .audience(RECEIVER)
        .expect("an URL")
        .verify(&token)
        .unwrap_err();
    assert!(
        matches!(err, TokenError::WrongAudience { ref found, .. } if found.is_empty()),
        "{err:?}"
    );
}

#[test]
fn an_audience_that_is_not_a_url_is_a_config_error() {
    assert!(matches!(
        BotTokenVerifier::new(secret())
            .expect("a 64-byte key")
            .audience("widget.example.com"),
        Err(ConfigError::InvalidBaseUrl { .. })
    ));
    assert!(matches!(
        DisposableTokenVerifier::new(secret(), "/callback"),
        Err(ConfigError::InvalidBaseUrl { .. })
    ));
}

#[test]
fn alg_none_is_refused_whatever_its_case_and_signature() {
    for alg in ["none", "None", "NONE"] {
        let header = B64.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        let payload = B64.encode(bot_claims().to_string());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2ln"),
        ] {
            assert_eq!(
                bot_verifier().verify(&token),
                Err(TokenError::AlgNone),
                "{alg}"
            );
        }
    }
}

#[test]
fn an_hs256_token_is_refused_by_the_hs512_check_and_the_other_way_round() {
    let hs256 = sign_token(Algorithm::Hs256, &bot_claims(), &secret());
    assert_eq!(
        bot_verifier().verify(&hs256),
        Err(TokenError::UnexpectedAlgorithm {
            found: "HS256".into(),
            expected: Algorithm::Hs512
        })
    );
    let hs512 = sign_token(Algorithm::Hs512, &disposable_claims(), &secret());
    assert_eq!(
        disposable_verifier().verify(&hs512),
        Err(TokenError::UnexpectedAlgorithm {
            found: "HS512".into(),
            expected: Algorithm::Hs256
        })
    );
}

#[test]
fn rs256_and_a_missing_alg_are_unexpected_algorithms() {
    let rs256 = hs512_with_header(json!({"alg": "RS256", "typ": "JWT"}), &bot_claims());
    assert_eq!(
        bot_verifier().verify(&rs256),
        Err(TokenError::UnexpectedAlgorithm {
            found: "RS256".into(),
            expected: Algorithm::Hs512
        })
    );
    let missing = hs512_with_header(json!({"typ": "JWT"}), &bot_claims());
    assert!(matches!(
        bot_verifier().verify(&missing),
        Err(TokenError::UnexpectedAlgorithm { ref found, .. }) if found == "(missing)"
    ));
    let long = hs512_with_header(json!({"alg": "X".repeat(500)}), &bot_claims());
    let Err(TokenError::UnexpectedAlgorithm { found, .. }) = bot_verifier().verify(&long) else {
        panic!("an unexpected algorithm");
    };
    assert_eq!(found.len(), 32, "the sender's text is cut");
}

#[test]
fn truncated_and_garbage_tokens_are_malformed_and_say_which_part() {
    let token = sign_token(Algorithm::Hs512, &bot_claims(), &secret());
    let parts: Vec<&str> = token.split('.').collect();
    let cases: Vec<(String, TokenPart)> = vec![
        (String::new(), TokenPart::Token),
        ("garbage".into(), TokenPart::Token),
        (format!("{}.{}", parts[0], parts[1]), TokenPart::Token),
        (format!("{token}.x"), TokenPart::Token),
        (format!("!!.{}.{}", parts[1], parts[2]), TokenPart::Header),
        (
            format!("{}.{}.{}", B64.encode("[1]"), parts[1], parts[2]),
            TokenPart::Header,
        ),
        (
            format!("{}.{}.{}", B64.encode("{not json"), parts[1], parts[2]),
            TokenPart::Header,
        ),
        (
            format!("{}.{}.@@", parts[0], parts[1]),
            TokenPart::Signature,
        ),
    ];
    for (bad, part) in cases {
        match bot_verifier().verify(&bad) {
            Err(TokenError::Malformed { part: found, .. }) => assert_eq!(found, part, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // A signed payload that is not JSON: the signature holds, the payload is malformed.
    let signed = format!("{}.{}", parts[0], B64.encode("not json"));
    let signature = raw_hs512(&signed);
    assert!(matches!(
        bot_verifier().verify(&format!("{signed}.{signature}")),
        Err(TokenError::Malformed {
            part: TokenPart::Payload,
            ..
        })
    ));
}

/// HS512 with the secret over exactly `signed`, computed here (not by the library).
fn raw_hs512(signed: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(signed.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

#[test]
fn claims_of_the_wrong_type_or_missing_name_the_claim() {
    let cases: Vec<(&str, Value, TokenError)> = vec![
        (
            "account_id",
            json!("thirty-one"),
            TokenError::WrongClaimType {
                claim: "account_id",
                expected: "an integer",
            },
        ),
        (
            "entity_id",
            json!(1.5),
            TokenError::WrongClaimType {
                claim: "entity_id",
                expected: "an integer",
            },
        ),
        (
            "subdomain",
            json!(5),
            TokenError::WrongClaimType {
                claim: "subdomain",
                expected: "a string",
            },
        ),
        (
            "exp",
            json!("tomorrow"),
            TokenError::WrongClaimType {
                claim: "exp",
                expected: "a time in seconds since 1970",
            },
        ),
        (
            "entity_type",
            json!([2]),
            TokenError::WrongClaimType {
                claim: "entity_type",
                expected: "an integer or a string",
            },
        ),
        (
            "client_uuid",
            Value::Null,
            TokenError::MissingClaim {
                claim: "client_uuid",
            },
        ),
    ];
    for (claim, value, expected) in cases {
        let mut claims = bot_claims();
        claims[claim] = value;
        let token = sign_token(Algorithm::Hs512, &claims, &secret());
        assert_eq!(bot_verifier().verify(&token), Err(expected), "{claim}");
    }
    let mut claims = bot_claims();
    claims.as_object_mut().expect("an object").remove("exp");
    let token = sign_token(Algorithm::Hs512, &claims, &secret());
    assert_eq!(
        bot_verifier().verify(&token),
        Err(TokenError::MissingClaim { claim: "exp" })
    );
}

// ------------------------------------------------------------------- the disposable token

#[test]
fn a_disposable_token_signed_hs256_for_the_redirect_uri_gives_typed_claims() {
    let token = sign_token(Algorithm::Hs256, &disposable_claims(), &secret());
    let verifier = disposable_verifier();
    assert_eq!(verifier.expected_audience(), RECEIVER);
    let claims = verifier.verify(&token).expect("a good token");
    assert_eq!(claims.jti, "5c8e1a4e-jti");
    assert_eq!(
        claims.account_id, 31,
        "PHP's (int) cast: a string of digits"
    );
    assert_eq!(claims.user_id, 7);
    assert!(claims.is_admin);
    assert_eq!(claims.iat, Some(now() - Duration::seconds(10)));
    assert_eq!(claims.aud, vec![RECEIVER.to_string()]);

    let app = lead_intake::oauth::OAuthApp::new("id", SECRET, format!("{RECEIVER}/cb"));
    let from_app = DisposableTokenVerifier::from_app(&app)
        .expect("its redirect URI")
        .at(now());
    assert_eq!(from_app.verify(&token), Ok(claims));
}

#[test]
fn a_disposable_token_needs_the_audience_and_its_validity_times() {
    let mut claims = disposable_claims();
    claims["aud"] = json!(["https://someone-else.example"]);
    let token = sign_token(Algorithm::Hs256, &claims, &secret());
    assert!(matches!(
        disposable_verifier().verify(&token),
        Err(TokenError::WrongAudience { .. })
    ));

    let mut claims = disposable_claims();
    let nbf = now() + Duration::seconds(30);
    claims["nbf"] = json!(nbf.timestamp());
    let token = sign_token(Algorithm::Hs256, &claims, &secret());
    assert_eq!(
        disposable_verifier().verify(&token),
        Err(TokenError::NotYetValid {
            claim: "nbf",
            at: nbf
        })
    );
    assert!(
        disposable_verifier()
            .leeway(std::time::Duration::from_secs(30))
            .verify(&token)
            .is_ok()
    );

    let mut claims = disposable_claims();
    claims["iat"] = json!(now().timestamp() + 11);
    let token = sign_token(Algorithm::Hs256, &claims, &secret());
    assert!(matches!(
        disposable_verifier().verify(&token),
        Err(TokenError::NotYetValid { claim: "iat", .. })
    ));

    let token = sign_token(Algorithm::Hs256, &disposable_claims(), &secret());
    let late = disposable_verifier().at(now() + Duration::seconds(71));
    assert!(matches!(
        late.verify(&token),
        Err(TokenError::Expired { .. })
    ));
    let wrong_key = sign_token(Algorithm::Hs256, &disposable_claims(), &"x".into());
    assert_eq!(
        disposable_verifier().verify(&wrong_key),
        Err(TokenError::BadSignature)
    );
}

// --------------------------------------------------------------------- secrets stay hidden

#[test]
fn no_debug_or_error_text_shows_the_secret_or_the_token() {
    let token = sign_token(Algorithm::Hs512, &bot_claims(), &secret());
    let signature = token.rsplit('.').next().expect("a signature").to_string();
    let mut texts = vec![
        format!("{:?}", bot_verifier()),
        format!("{:?}", disposable_verifier()),
        format!("{:?}", bot_verifier().verify(&token)),
    ];
    let body = json!({"token": token, "data": {}, "return_url": "https://a.kommo.com/x"});
    let request = WidgetRequest::from_json(body.to_string().as_bytes()).expect("a body");
    texts.push(format!("{request:?}"));
    let wrong = BotTokenVerifier::new("other-secret-value".repeat(4))
        .expect("64 bytes")
        .at(now());
    for bad in [
        token.clone(),
        format!("{token}x"),
        token.replace('.', ""),
        format!("{}.{}", token, token),
    ] {
        for err in [
            wrong.verify(&bad).unwrap_err(),
            disposable_verifier().verify(&bad).unwrap_err(),
        ] {
            texts.push(format!("{err:?}"));
            texts.push(err.to_string());
        }
    }
    for text in &texts {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(&signature), "{text}");
        assert!(!text.contains(&token[..40]), "{text}");
    }
}

// --------------------------------------------------------------------------- the request

#[test]
fn a_widget_request_body_is_typed_and_keeps_unknown_fields() {
    let body = json!({
        "token": "t.o.k",
        "data": {"phone": "+1"},
        "return_url": "https://mycompany.kommo.com/api/v4/salesbot/4131/continue/7a1c2e",
        "account": {"id": 31}
    });
    let request = WidgetRequest::from_http(
        Some("application/json; charset=utf-8"),
        body.to_string().as_bytes(),
    )
    .expect("a body");
    assert_eq!(request.token.expose(), "t.o.k");
    assert_eq!(request.data, json!({"phone": "+1"}));
    assert_eq!(request.other["account"], json!({"id": 31}));
    assert_eq!(
        serde_json::to_value(&request).expect("serializes"),
        body,
        "nothing dropped"
    );
    let target = request.continue_target().expect("a continue URL");
    assert_eq!(
        (target.kind(), target.bot_id(), target.continue_id()),
        (BotKind::Salesbot, "4131", "7a1c2e")
    );
}

#[test]
fn a_bad_widget_request_body_names_the_field() {
    let cases: Vec<(&[u8], &str)> = vec![
        (b"{\"data\": {}, \"return_url\": \"x\"}", "."),
        (b"{\"token\": 5, \"return_url\": \"x\"}", "token"),
        (b"{\"token\": \"t\", \"return_url\": [1]}", "return_url"),
        (b"not json", "."),
        (b"[]", "."),
    ];
    for (body, path) in cases {
        match WidgetRequest::from_json(body) {
            Err(RequestError::Body {
                path: found,
                message,
            }) => {
                assert_eq!(found, path, "{message}")
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
    let err = WidgetRequest::from_json(b"{\"return_url\": \"x\"}").unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
    assert!(matches!(
        WidgetRequest::from_http(Some("application/x-www-form-urlencoded"), b"token=1"),
        Err(RequestError::ContentType { .. })
    ));
}

#[test]
fn return_urls_that_are_not_continue_urls_are_refused() {
    for url in [
        "not a url",
        "ftp://a.kommo.com/api/v4/salesbot/1/continue/2",
        "https://a.kommo.com/api/v4/otherbot/1/continue/2",
        "https://a.kommo.com/api/v4/salesbot/1/resume/2",
        "https://a.kommo.com/api/v3/salesbot/1/continue/2",
        "https://a.kommo.com/api/v4/salesbot//continue/2",
        "https://a.kommo.com/api/v4/salesbot/1/continue/2/",
        "https://a.kommo.com/api/v4/salesbot/1/continue/%2F",
        "https://a.kommo.com/api/v4/salesbot/1/continue/2?x=1",
        "https://a.kommo.com/api/v4/salesbot/1/continue/2#f",
        "https://user:pw@a.kommo.com/api/v4/salesbot/1/continue/2",
        "https://a.kommo.com/continue/2",
    ] {
        assert!(ContinueTarget::parse(url).is_err(), "{url}");
    }
    let t = ContinueTarget::parse("https://a.kommo.com/api/v4/marketingbot/9/continue/x_1")
        .expect("a continue URL");
    assert_eq!(t.kind(), BotKind::Marketingbot);
}

// ---------------------------------------------------------------------------- continuing

fn handlers() -> Vec<BotHandler> {
    vec![BotHandler::new(
        BotHandlerName::Show,
        BotHandlerParams::new().with_type("text").with_value("Done"),
    )]
}

/// A `widget_request` body with a token signed for the account at `iss` (its subdomain the
/// host's first label).
fn request_signed_for(iss: &str, return_url: &str) -> WidgetRequest {
    let host = url::Url::parse(iss).expect("an URL");
    let subdomain = host
        .host_str()
        .and_then(|h| h.split('.').next())
        .expect("a host");
    let mut claims = bot_claims();
    claims["iss"] = json!(iss);
    claims["subdomain"] = json!(subdomain);
    let token = sign_token(Algorithm::Hs512, &claims, &secret());
    let body = json!({"token": token, "data": {}, "return_url": return_url});
    WidgetRequest::from_json(body.to_string().as_bytes()).expect("a body")
}

/// A request verified for the account at `return_url`'s origin.
fn request_for(return_url: &str) -> VerifiedWidgetRequest {
    let origin = url::Url::parse(return_url)
        .expect("an URL")
        .origin()
        .ascii_serialization();
    request_signed_for(&origin, return_url)
        .verify(&bot_verifier())
        .expect("a token for the return_url's account")
}

#[tokio::test]
async fn continuing_a_widget_request_posts_data_and_handlers_to_its_bot() {
    let server = httpmock::MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(httpmock::Method::POST)
                .path("/api/v4/marketingbot/4131/continue/7a1c2e")
                .header("content-type", "application/json")
                .json_body(json!({
                    "data": {"status": "done"},
                    "execute_handlers": [
                        {"handler": "show", "params": {"type": "text", "value": "Done"}}
                    ]
                }));
            then.status(202);
        })
        .await;
    let kommo = lead_intake::kommo::Client::from_base_url(&server.base_url(), "token-value")
        .expect("a loopback URL");
    let request = request_for(&format!(
        "{}/api/v4/marketingbot/4131/continue/7a1c2e",
        server.base_url()
    ));
    kommo
        .continue_widget_request(&request)
        .data(serde_json::Map::from_iter([(
            "status".to_string(),
            json!("done"),
        )]))
        .execute_handlers(handlers())
        .send()
        .await
        .expect("202");
    mock.assert_async().await;
}

#[tokio::test]
async fn the_fake_records_the_continued_bot() {
    let fake = Fake::default();
    fake.add_waiting_bot("salesbot", "4131", "7a1c2e");
    let base = fake.base_url();
    let target = ContinueTarget::new(&base, BotKind::Salesbot, "4131", "7a1c2e").expect("parts");
    fake.kommo()
        .continue_widget_request(&target)
        .data(serde_json::Map::from_iter([("n".to_string(), json!(1))]))
        .execute_handlers(handlers())
        .send()
        .await
        .expect("202");
    let continued = fake.continued_bots();
    assert_eq!(continued.len(), 1);
    assert_eq!(
        (
            continued[0].kind.as_str(),
            continued[0].bot_id.as_str(),
            continued[0].continue_id.as_str()
        ),
        ("salesbot", "4131", "7a1c2e")
    );
    assert_eq!(continued[0].data, Some(json!({"n": 1})));
}

#[tokio::test]
async fn a_return_url_on_another_host_or_path_is_refused_and_nothing_is_sent() {
    let fake = Fake::default();
    fake.add_waiting_bot("salesbot", "4131", "7a1c2e");
    let kommo = fake.kommo();
    let base = fake.base_url();
    let port = fake.addr().port();
    for url in [
        "https://evil.example/api/v4/salesbot/4131/continue/7a1c2e".to_string(),
        format!("http://localhost:{port}/api/v4/salesbot/4131/continue/7a1c2e"),
        format!("{base}/prefix/api/v4/salesbot/4131/continue/7a1c2e"),
    ] {
        let err = kommo
            .continue_widget_request(&request_for(&url))
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::InvalidLink { ref href, .. } if href == &url),
            "{url}: {err:?}"
        );
        assert!(err.certainly_not_applied());
    }
    // A return_url that is no continue URL does not even verify.
    let resume = format!("{base}/api/v4/salesbot/4131/resume/7a1c2e");
    assert!(matches!(
        request_signed_for(&base, &resume).verify(&bot_verifier()),
        Err(RequestError::ReturnUrl(_))
    ));
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    assert!(fake.continued_bots().is_empty());
}

// ------------------------------------------------------------------------------- fuzzing

#[test]
fn the_widget_fuzz_body_takes_its_seeds_and_odd_inputs_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/widget");
    let mut accepted = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/widget") {
        let path = entry.expect("an entry").path();
        if lead_intake::fuzzing::widget(&std::fs::read(&path).expect("a seed")) {
            accepted.push(
                path.file_name()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    accepted.sort();
    assert_eq!(
        accepted,
        [
            "request-good-token",
            "signed-bot-claims",
            "signed-disposable-claims",
            "token-disposable"
        ],
        "the seeds with well-signed tokens pass every check, the others none"
    );
    for odd in [
        vec![],
        vec![0],
        vec![1, b'.'],
        vec![2, 0xff, 0xfe],
        vec![3; 200],
    ] {
        assert!(!lead_intake::fuzzing::widget(&odd));
    }
}
