//! Issue 21 §4: a disposable token used with one worker is refused by every other, through a
//! real Redis (tests/common/redis_server.rs): two guards, as two processes would have, on one
//! server.

mod common;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use common::redis_server::RedisServer;
use lead_intake::Secret;
use lead_intake::shared::{RedisConnection, RedisSeenTokens};
use lead_intake::widget::*;
use serde_json::json;

const SECRET: &str = "hO3kxLw0vTq9ZcNa5RjfE1uYb8sDm2GpXi7KtV6eWnA4yCrU0lHdJ9oBgF3QzM5S";
const RECEIVER: &str = "https://widget.example.com";

fn token(jti: &str, now: DateTime<Utc>, exp: DateTime<Utc>) -> String {
    let claims = json!({
        "iss": "https://mycompany.kommo.com", "aud": RECEIVER, "jti": jti,
        "iat": now.timestamp(), "exp": exp.timestamp(),
        "account_id": 31, "subdomain": "mycompany", "client_uuid": "c0ffee", "user_id": 7,
    });
    sign_token(Algorithm::Hs256, &claims, &Secret::new(SECRET))
}

#[tokio::test]
async fn a_token_used_with_one_worker_is_refused_by_another_on_the_same_redis() {
    let redis = RedisServer::start();
    // Two workers: each its own connection and guard, one name.
    let first =
        RedisSeenTokens::new(&RedisConnection::open(redis.url()).unwrap(), "kommo:acme").unwrap();
    let second =
        RedisSeenTokens::new(&RedisConnection::open(redis.url()).unwrap(), "kommo:acme").unwrap();
    let now: DateTime<Utc> = std::time::SystemTime::now().into();
    let verifier = DisposableTokenVerifier::new(SECRET, RECEIVER)
        .unwrap()
        .at(now);
    let used = token("5c8e-jti", now, now + Duration::minutes(30));

    assert_eq!(
        verifier.verify_first_use(&used, &first).await.unwrap().jti,
        "5c8e-jti"
    );
    assert_eq!(
        verifier.verify_first_use(&used, &second).await,
        Err(TokenError::Replayed {
            jti: "5c8e-jti".into()
        }),
        "the other worker refuses it"
    );
    assert!(
        matches!(
            verifier.verify_first_use(&used, &first).await,
            Err(TokenError::Replayed { .. })
        ),
        "and so does the first"
    );
    // Another token is its own first use; another integration's guard is separate.
    let fresh = token("another-jti", now, now + Duration::minutes(30));
    assert!(verifier.verify_first_use(&fresh, &second).await.is_ok());
    let elsewhere =
        RedisSeenTokens::new(&RedisConnection::open(redis.url()).unwrap(), "kommo:other").unwrap();
    assert!(verifier.verify_first_use(&used, &elsewhere).await.is_ok());

    // The key lives as long as the verifier accepts the token (exp + 10 s leeway), then Redis
    // drops it: no key without an expiry.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{kommo:acme}:widget:jti:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in keys {
        assert!(!key.contains("5c8e-jti"), "the jti is hashed: {key}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            ttl > 29 * 60 * 1000 && ttl <= (30 * 60 + 10) * 1000,
            "{key}: {ttl} ms"
        );
    }
}

#[tokio::test]
async fn of_many_concurrent_first_uses_across_workers_exactly_one_wins() {
    let redis = RedisServer::start();
    let guards: Vec<RedisSeenTokens> = (0..4)
        .map(|_| {
            RedisSeenTokens::new(&RedisConnection::open(redis.url()).unwrap(), "kommo:acme")
                .unwrap()
        })
        .collect();
    let tries = guards
        .iter()
        .flat_map(|g| (0..5).map(move |_| g.first_use("same-jti", StdDuration::from_secs(60))));
    let answers = futures_util::future::join_all(tries).await;
    let won = answers.iter().filter(|a| matches!(a, Ok(true))).count();
    assert_eq!(won, 1, "{answers:?}");
    assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
}

#[tokio::test]
async fn an_unreachable_redis_refuses_the_token_rather_than_letting_it_through() {
    let mut redis = RedisServer::start();
    let seen = RedisSeenTokens::new(
        &RedisConnection::open(redis.url())
            .unwrap()
            .with_timeout(StdDuration::from_secs(5)),
        "kommo:acme",
    )
    .unwrap();
    redis.stop();
    let now: DateTime<Utc> = std::time::SystemTime::now().into();
    let verifier = DisposableTokenVerifier::new(SECRET, RECEIVER)
        .unwrap()
        .at(now);
    let err = verifier
        .verify_first_use(&token("j", now, now + Duration::minutes(5)), &seen)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::ReplayUnchecked { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(SECRET), "{err}");
}
