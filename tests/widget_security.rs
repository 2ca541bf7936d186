//! Issue 21 §3 and §4 (verifiers): a widget back end acts only for the account that signed, the
//! verifiers refuse short keys, allow a documented clock leeway at its exact edges, and refuse a
//! disposable token already used (in one process here; across processes in
//! tests/widget_replay_redis.rs).

#[path = "../fake/tests/fake_common/mod.rs"]
mod fake_common;

use std::sync::Mutex;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use fake_common::Fake;
use futures_util::future::BoxFuture;
use lead_intake::error::ApiError;
use lead_intake::widget::*;
use lead_intake::{ConfigError, Secret};
use serde_json::json;

/// 64 letters and digits, as Kommo's client secrets.
const SECRET: &str = "hO3kxLw0vTq9ZcNa5RjfE1uYb8sDm2GpXi7KtV6eWnA4yCrU0lHdJ9oBgF3QzM5S";
const RECEIVER: &str = "https://widget.example.com";

fn secret() -> Secret {
    Secret::new(SECRET)
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time")
}

fn bot_verifier() -> BotTokenVerifier {
    BotTokenVerifier::new(secret()).expect("64 bytes").at(now())
}

fn disposable_verifier() -> DisposableTokenVerifier {
    DisposableTokenVerifier::new(secret(), &format!("{RECEIVER}/oauth"))
        .expect("32 bytes or more")
        .at(now())
}

/// A `widget_request` whose token Kommo signed for the account at `iss` (subdomain
/// `subdomain`), with the secret every account of the integration shares.
fn widget_request(iss: &str, subdomain: &str, return_url: &str) -> WidgetRequest {
    let claims = json!({
        "iss": iss, "account_id": 31, "subdomain": subdomain, "client_uuid": "c0ffee",
        "entity_id": 1001, "entity_type": 2, "bot_type": "salesbot",
        "exp": now().timestamp() + 300,
    });
    let token = sign_token(Algorithm::Hs512, &claims, &secret());
    let body = json!({"token": token, "data": {}, "return_url": return_url});
    WidgetRequest::from_json(body.to_string().as_bytes()).expect("a body")
}

// ------------------------------------------------------------------------- §3: one account

#[tokio::test]
async fn a_token_of_account_a_with_a_return_url_on_account_b_is_refused_and_nothing_is_sent() {
    // Two accounts on loopback, each a real server: A signed the token, B's bot is the target.
    let a = Fake::default();
    let b = Fake::default();
    b.add_waiting_bot("salesbot", "4131", "7a1c2e");
    let on_b = format!("{}/api/v4/salesbot/4131/continue/7a1c2e", b.base_url());
    let request = widget_request(&a.base_url(), "a", &on_b);
    let err = request.verify(&bot_verifier()).unwrap_err();
    assert!(
        matches!(&err, RequestError::OtherAccount { return_url, account }
            if return_url == &on_b && account.contains(&a.base_url())),
        "{err:?}"
    );
    assert!(!err.to_string().contains(SECRET), "{err}");
    // Without a verified request there is nothing to continue: B saw no request at all.
    assert!(b.requests().is_empty(), "{:?}", b.requests());
    assert!(b.continued_bots().is_empty());
    assert!(a.requests().is_empty(), "{:?}", a.requests());
}

#[test]
fn on_kommo_hosts_the_return_url_must_be_the_token_s_issuer_and_subdomain() {
    let url = |sub: &str| format!("https://{sub}.kommo.com/api/v4/salesbot/1/continue/2");
    let ok = widget_request(
        "https://mycompany.kommo.com",
        "mycompany",
        &url("mycompany"),
    )
    .verify(&bot_verifier())
    .expect("the token's own account");
    assert_eq!(ok.claims().subdomain, "mycompany");
    assert_eq!(ok.target().bot_id(), "1");
    // A bare host as `iss` reads as https.
    assert!(
        widget_request("mycompany.kommo.com", "mycompany", &url("mycompany"))
            .verify(&bot_verifier())
            .is_ok()
    );
    for (iss, subdomain, return_url) in [
        // Another account's host.
        (
            "https://mycompany.kommo.com",
            "mycompany",
            url("othercompany"),
        ),
        // An issuer that disagrees with its own subdomain claim.
        (
            "https://othercompany.kommo.com",
            "mycompany",
            url("othercompany"),
        ),
        // Another scheme or port than the issuer's.
        (
            "https://mycompany.kommo.com",
            "mycompany",
            "http://mycompany.kommo.com/api/v4/salesbot/1/continue/2".to_string(),
        ),
        (
            "https://mycompany.kommo.com",
            "mycompany",
            "https://mycompany.kommo.com:8443/api/v4/salesbot/1/continue/2".to_string(),
        ),
        // Lookalike hosts.
        (
            "https://mycompany.kommo.com",
            "mycompany",
            "https://mycompany.kommo.com.evil.example/api/v4/salesbot/1/continue/2".to_string(),
        ),
        (
            "https://mycompany.kommo.com",
            "mycompany",
            "https://evil.mycompany.kommo.com/api/v4/salesbot/1/continue/2".to_string(),
        ),
        // An issuer that is no address.
        ("", "mycompany", url("mycompany")),
    ] {
        let err = widget_request(iss, subdomain, &return_url)
            .verify(&bot_verifier())
            .unwrap_err();
        assert!(
            matches!(err, RequestError::OtherAccount { .. }),
            "{iss} {subdomain} {return_url}: {err:?}"
        );
    }
    // The token is checked first: a forged one is a token error, whatever its return_url.
    let forged = widget_request(
        "https://mycompany.kommo.com",
        "mycompany",
        &url("mycompany"),
    );
    let other = BotTokenVerifier::new("x".repeat(64))
        .expect("64 bytes")
        .at(now());
    assert_eq!(
        forged.verify(&other).unwrap_err(),
        RequestError::Token(TokenError::BadSignature)
    );
}

#[tokio::test]
async fn a_request_verified_for_account_a_is_refused_by_account_b_s_client_and_nothing_is_sent() {
    let a = Fake::default();
    let b = Fake::default();
    a.add_waiting_bot("salesbot", "4131", "7a1c2e");
    let on_a = format!("{}/api/v4/salesbot/4131/continue/7a1c2e", a.base_url());
    let verified = widget_request(&a.base_url(), "a", &on_a)
        .verify(&bot_verifier())
        .expect("A's token, A's return_url");
    let err = b
        .kommo()
        .continue_widget_request(&verified)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::InvalidLink { href, .. } if href == &on_a),
        "{err:?}"
    );
    assert!(err.certainly_not_applied());
    assert!(b.requests().is_empty(), "{:?}", b.requests());
    assert!(a.requests().is_empty(), "{:?}", a.requests());
    // A's own client continues it.
    a.kommo()
        .continue_widget_request(&verified)
        .send()
        .await
        .expect("A's bot waits");
    assert_eq!(a.continued_bots().len(), 1);
}

// --------------------------------------------------------------------------- §4: key sizes

#[test]
fn keys_shorter_than_the_hash_are_refused_when_the_verifier_is_made() {
    for (key, length) in [("", 0), ("k", 1), (&SECRET[..63], 63)] {
        let err = BotTokenVerifier::new(key).unwrap_err();
        assert!(
            matches!(err, ConfigError::WeakKey { algorithm: "HS512", length: l, minimum: 64 } if l == length),
            "{key:?}: {err:?}"
        );
        assert!(err.to_string().contains("at least 64"), "{err}");
        if key.len() > 8 {
            assert!(
                !err.to_string().contains(key),
                "the key is not quoted: {err}"
            );
        }
    }
    for (key, length) in [("", 0), ("k", 1), (&SECRET[..31], 31)] {
        let err = DisposableTokenVerifier::new(key, RECEIVER).unwrap_err();
        assert!(
            matches!(err, ConfigError::WeakKey { algorithm: "HS256", length: l, minimum: 32 } if l == length),
            "{key:?}: {err:?}"
        );
    }
    let app = lead_intake::oauth::OAuthApp::new("id", "short-secret", RECEIVER);
    assert!(matches!(
        BotTokenVerifier::from_app(&app),
        Err(ConfigError::WeakKey { .. })
    ));
    assert!(BotTokenVerifier::new(SECRET).is_ok());
    assert!(DisposableTokenVerifier::new(&SECRET[..32], RECEIVER).is_ok());
    // The attack: a token forged with the empty key has no verifier to pass.
    assert!(BotTokenVerifier::new(Secret::new("")).is_err());
}

// ------------------------------------------------------------------------------ §4: leeway

fn bot_token(exp: DateTime<Utc>) -> String {
    let claims = json!({
        "iss": "https://mycompany.kommo.com", "account_id": 31, "subdomain": "mycompany",
        "client_uuid": "c0ffee", "entity_id": 1, "entity_type": 2, "bot_type": "salesbot",
        "exp": exp.timestamp(),
    });
    sign_token(Algorithm::Hs512, &claims, &secret())
}

fn disposable_token(
    jti: &str,
    iat: DateTime<Utc>,
    nbf: DateTime<Utc>,
    exp: DateTime<Utc>,
) -> String {
    let claims = json!({
        "iss": "https://mycompany.kommo.com", "aud": RECEIVER, "jti": jti,
        "iat": iat.timestamp(), "nbf": nbf.timestamp(), "exp": exp.timestamp(),
        "account_id": 31, "subdomain": "mycompany", "client_uuid": "c0ffee", "user_id": 7,
    });
    sign_token(Algorithm::Hs256, &claims, &secret())
}

#[test]
fn the_default_leeway_is_ten_seconds_at_its_exact_edges() {
    assert_eq!(DEFAULT_LEEWAY, StdDuration::from_secs(10));
    let exp = now();
    let token = bot_token(exp);
    let verifier = BotTokenVerifier::new(secret()).expect("64 bytes");
    let at = |t: DateTime<Utc>| verifier.clone().at(t).verify(&token);
    assert!(at(exp).is_ok(), "at exp, within the leeway");
    assert!(at(exp + Duration::milliseconds(9_999)).is_ok());
    assert_eq!(
        at(exp + Duration::seconds(10)),
        Err(TokenError::Expired { exp }),
        "refused from exp + leeway on"
    );

    // `iat` and `nbf` up to 10 s ahead of the verifier's clock (Kommo's clock is ahead).
    let d = disposable_verifier();
    let ahead = |s: i64| now() + Duration::seconds(s);
    let far = now() + Duration::minutes(30);
    assert!(
        d.verify(&disposable_token("j1", ahead(10), now(), far))
            .is_ok()
    );
    assert_eq!(
        d.verify(&disposable_token("j2", ahead(11), now(), far)),
        Err(TokenError::NotYetValid {
            claim: "iat",
            at: ahead(11)
        })
    );
    assert!(
        d.verify(&disposable_token("j3", now(), ahead(10), far))
            .is_ok()
    );
    assert_eq!(
        d.verify(&disposable_token("j4", now(), ahead(11), far)),
        Err(TokenError::NotYetValid {
            claim: "nbf",
            at: ahead(11)
        })
    );
}

#[test]
fn a_leeway_that_is_set_is_honoured_at_its_edges_and_zero_is_exact() {
    let exp = now();
    let token = bot_token(exp);
    let base = BotTokenVerifier::new(secret()).expect("64 bytes");
    let with = |leeway: u64, t: DateTime<Utc>| {
        base.clone()
            .leeway(StdDuration::from_secs(leeway))
            .at(t)
            .verify(&token)
    };
    assert!(with(60, exp + Duration::milliseconds(59_999)).is_ok());
    assert!(with(60, exp + Duration::seconds(60)).is_err());
    assert!(with(0, exp - Duration::milliseconds(1)).is_ok());
    assert!(with(0, exp).is_err(), "no leeway: refused at exp");

    let d = disposable_verifier().leeway(StdDuration::ZERO);
    let far = now() + Duration::minutes(30);
    assert!(d.verify(&disposable_token("j", now(), now(), far)).is_ok());
    assert!(
        d.verify(&disposable_token(
            "j",
            now() + Duration::seconds(1),
            now(),
            far
        ))
        .is_err()
    );
    assert_eq!(d.leeway_allowed(), StdDuration::ZERO);
}

// ------------------------------------------------------------------------------ §4: replay

#[tokio::test(start_paused = true)]
async fn a_disposable_token_used_twice_is_refused_until_it_expires() {
    let seen = SeenTokens::new();
    let exp = now() + Duration::minutes(30);
    let token = disposable_token("5c8e-jti", now(), now(), exp);
    let verifier = disposable_verifier();
    let claims = verifier
        .verify_first_use(&token, &seen)
        .await
        .expect("first use");
    assert_eq!(claims.jti, "5c8e-jti");
    assert_eq!(
        verifier.verify_first_use(&token, &seen).await,
        Err(TokenError::Replayed {
            jti: "5c8e-jti".to_string()
        })
    );
    // Another token (another jti) of the same user is its own first use.
    let other = disposable_token("another-jti", now(), now(), exp);
    assert!(verifier.verify_first_use(&other, &seen).await.is_ok());
    // Plain `verify` remembers nothing (the guard is opt-in).
    assert!(verifier.verify(&token).is_ok());

    // Still refused just before exp + leeway (30 min + 10 s), and forgotten after: the
    // verifier itself refuses the token by then, and the guard holds no memory for it.
    tokio::time::advance(StdDuration::from_secs(30 * 60 + 10) - StdDuration::from_millis(1)).await;
    assert_eq!(
        seen.first_use("5c8e-jti", StdDuration::from_secs(1)).await,
        Ok(false)
    );
    tokio::time::advance(StdDuration::from_millis(1)).await;
    assert_eq!(
        seen.first_use("unrelated", StdDuration::from_secs(1)).await,
        Ok(true)
    );
    assert_eq!(seen.len(), 1, "both expired entries dropped: {seen:?}");
}

/// A guard that records what it was asked.
#[derive(Default)]
struct Recording(Mutex<Vec<(String, StdDuration)>>);

impl ReplayGuard for Recording {
    fn first_use<'a>(
        &'a self,
        jti: &'a str,
        keep: StdDuration,
    ) -> BoxFuture<'a, Result<bool, TokenError>> {
        self.0.lock().unwrap().push((jti.to_string(), keep));
        Box::pin(async { Ok(true) })
    }
}

#[tokio::test]
async fn the_guard_keeps_a_jti_as_long_as_the_verifier_accepts_the_token() {
    let exp = now() + Duration::seconds(100);
    let token = disposable_token("j", now(), now(), exp);
    let guard = Recording::default();
    disposable_verifier()
        .verify_first_use(&token, &guard)
        .await
        .expect("first use");
    disposable_verifier()
        .leeway(StdDuration::from_secs(30))
        .verify_first_use(&token, &guard)
        .await
        .expect("first use");
    assert_eq!(
        *guard.0.lock().unwrap(),
        [
            ("j".to_string(), StdDuration::from_secs(110)),
            ("j".to_string(), StdDuration::from_secs(130)),
        ]
    );
    // A token the verifier refuses never reaches the guard.
    let expired = disposable_token("old", now(), now(), now() - Duration::seconds(60));
    assert!(
        disposable_verifier()
            .verify_first_use(&expired, &guard)
            .await
            .is_err()
    );
    assert_eq!(guard.0.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_in_process_guard_is_bounded_and_refuses_rather_than_forgets() {
    let seen = SeenTokens::with_capacity(2);
    let keep = StdDuration::from_secs(60);
    assert_eq!(seen.first_use("a", keep).await, Ok(true));
    assert_eq!(seen.first_use("b", keep).await, Ok(true));
    let full = seen.first_use("c", keep).await.unwrap_err();
    assert!(
        matches!(full, TokenError::ReplayUnchecked { .. }),
        "{full:?}"
    );
    assert_eq!(
        seen.first_use("a", keep).await,
        Ok(false),
        "still remembered"
    );
    tokio::time::advance(keep).await;
    assert_eq!(
        seen.first_use("c", keep).await,
        Ok(true),
        "room again once they expired"
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen.first_use("a", keep).await,
        Ok(true),
        "expired, forgotten"
    );
}
