//! `rediss://` (feature `redis-tls`) against a real redis-server with TLS on, started by the test
//! (tests/common/redis_server.rs, `RedisServer::start_tls`), with a CA, a server and a client
//! certificate made here by rcgen: the shared limit and token store work through it, a server
//! whose certificate no trusted CA signed is refused, mutual TLS works, and no key is shown.

mod common;

use std::time::Duration;

use chrono::TimeZone;
use common::ca::Ca;
use common::redis_server::{RedisServer, TlsFiles};
use lead_intake::Secret;
use lead_intake::oauth::TokenPair;
use lead_intake::shared::{
    RedisConnection, RedisRateLimit, RedisTls, RedisTokenStore, Saved, SharedError,
};
use rcgen::ExtendedKeyUsagePurpose;

/// A server on 127.0.0.1 with a certificate from `ca`.
fn tls_server(ca: &Ca, auth_clients: bool) -> RedisServer {
    let (cert, key) = ca.sign(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    RedisServer::start_tls(TlsFiles {
        cert,
        key,
        ca: ca.pem.clone(),
        auth_clients,
    })
}

fn pair(n: u32) -> TokenPair {
    TokenPair {
        access_token: Secret::new(format!("ACCESS-TOKEN-{n}-SECRET")),
        refresh_token: Secret::new(format!("REFRESH-TOKEN-{n}-SECRET")),
        expires_at: chrono::Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, n).unwrap(),
    }
}

/// Stores a pair through `store` and reads it back.
async fn store_and_load(store: &RedisTokenStore) -> Result<(), SharedError> {
    let lock = store
        .try_lock(Duration::from_secs(10))
        .await?
        .expect("nobody else holds the lock");
    let Saved::Stored(stored) = store.save_if_current(&lock, None, pair(1)).await? else {
        panic!("an empty store takes the first pair");
    };
    assert!(store.release(lock).await?);
    let loaded = store.load().await?.expect("the pair is stored");
    assert_eq!(loaded.version(), stored.version());
    assert_eq!(
        loaded.pair().refresh_token.expose(),
        "REFRESH-TOKEN-1-SECRET"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_limit_and_token_store_work_over_tls_trusting_the_servers_ca() {
    let ca = Ca::new("lead-intake test CA");
    let server = tls_server(&ca, false);
    let tls = RedisTls::new().trust_only_pem(ca.pem.clone());
    let redis = RedisConnection::open_tls(server.tls_url(), &tls).unwrap();
    assert_eq!(
        redis.address(),
        format!("rediss://127.0.0.1:{}/0", server.tls_port())
    );

    let limit = RedisRateLimit::new(&redis, "tls", 7, Duration::from_secs(1)).unwrap();
    limit
        .acquire()
        .await
        .expect("a permit over TLS")
        .finish()
        .await;
    let store = RedisTokenStore::new(&redis, "tls").unwrap();
    store_and_load(&store).await.expect("the store over TLS");

    // The same server, seen through its plain Unix socket: the work landed there.
    let mut plain = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let places: i64 = redis::cmd("EXISTS")
        .arg("{tls}:limit:seq")
        .arg("{tls}:oauth:pair")
        .query_async(&mut plain)
        .await
        .unwrap();
    assert_eq!(places, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_certificate_no_trusted_ca_signed_is_refused_and_nothing_is_sent() {
    let ca = Ca::new("lead-intake test CA");
    let server = tls_server(&ca, false);
    let other = Ca::new("another CA");
    for tls in [
        // Another CA only.
        RedisTls::new().trust_only_pem(other.pem.clone()),
        // The system's CAs: the test CA is not among them.
        RedisTls::new(),
    ] {
        let redis = RedisConnection::open_tls(server.tls_url(), &tls)
            .unwrap()
            .with_timeout(Duration::from_secs(10));
        let store = RedisTokenStore::new(&redis, "untrusted").unwrap();
        let error = store
            .load()
            .await
            .expect_err("an untrusted server is refused");
        let text = error.to_string();
        // A certificate problem does not pass by itself: not "unavailable" (which would let
        // a limiter with a local fallback go on without Redis).
        assert!(matches!(error, SharedError::Refused { .. }), "{error:?}");
        assert!(
            text.contains(&format!("rediss://127.0.0.1:{}", server.tls_port())),
            "says where: {text}"
        );
        assert!(
            text.to_ascii_lowercase().contains("certificate"),
            "says why: {text}"
        );
        let limit = RedisRateLimit::new(&redis, "untrusted", 7, Duration::from_secs(1)).unwrap();
        limit
            .acquire()
            .await
            .expect_err("no permit from an untrusted server");
    }
    let mut plain = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut plain)
        .await
        .unwrap();
    assert!(keys.is_empty(), "nothing reached the server: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_checks_clients_takes_a_client_certificate() {
    let ca = Ca::new("lead-intake test CA");
    let server = tls_server(&ca, true);
    let (cert, key) = ca.sign(&["worker-1"], ExtendedKeyUsagePurpose::ClientAuth);

    let without = RedisTls::new().trust_only_pem(ca.pem.clone());
    let redis = RedisConnection::open_tls(server.tls_url(), &without)
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    let store = RedisTokenStore::new(&redis, "mtls").unwrap();
    let error = store
        .load()
        .await
        .expect_err("a client without a certificate is refused");
    assert!(matches!(error, SharedError::Refused { .. }), "{error:?}");

    let with = without.client_certificate_pem(cert, key.clone());
    assert!(with.trusts_only_given_cas() && with.has_client_certificate());
    let redis = RedisConnection::open_tls(server.tls_url(), &with).unwrap();
    let store = RedisTokenStore::new(&redis, "mtls").unwrap();
    store_and_load(&store)
        .await
        .expect("the store over mutual TLS");

    // The key is never shown.
    let body = key
        .lines()
        .find(|line| !line.starts_with("-----"))
        .unwrap()
        .to_string();
    for shown in [format!("{with:?}"), format!("{redis:?}")] {
        common::assert_not_leaked("Debug", &shown, &body);
    }
}

#[test]
fn pem_that_holds_no_certificate_or_key_is_refused_when_opening() {
    let ca = Ca::new("lead-intake test CA");
    let (cert, key) = ca.sign(&["worker-1"], ExtendedKeyUsagePurpose::ClientAuth);
    let url = "rediss://127.0.0.1:6380";
    let refused = |tls: RedisTls| match RedisConnection::open_tls(url, &tls) {
        Err(SharedError::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    };
    // A CA "file" with no certificate would trust nothing, silently.
    assert!(refused(RedisTls::new().trust_only_pem("")).contains("CA"));
    assert!(refused(RedisTls::new().trust_only_pem(key.clone())).contains("CA"));
    assert!(
        refused(RedisTls::new().client_certificate_pem(key.clone(), key.clone()))
            .contains("client certificate")
    );
    let why = refused(RedisTls::new().client_certificate_pem(cert.clone(), "MY-KEY-NOT-PEM"));
    assert!(why.contains("key"), "{why}");
    assert!(!why.contains("MY-KEY-NOT-PEM"), "{why}");
    // TLS needs a rediss:// URL, and its certificate checks cannot be turned off.
    assert!(matches!(
        RedisConnection::open_tls("redis://127.0.0.1:6379", &RedisTls::new()),
        Err(SharedError::Invalid(_))
    ));
    assert!(matches!(
        RedisConnection::open("rediss://127.0.0.1:6380/#insecure"),
        Err(SharedError::Invalid(_))
    ));
    // A good pair is taken.
    RedisConnection::open_tls(
        url,
        &RedisTls::new()
            .trust_only_pem(ca.pem.clone())
            .client_certificate_pem(cert, key),
    )
    .unwrap();
}
