//! OAuth sessions that share one token pair through a `TokenStore` (issue 14 §2): real Redis
//! (tests/common/redis_server.rs) and the fake playing Kommo's OAuth, whose refresh tokens are
//! single-use. Each client here is what one process would have: its own session, its own
//! `RedisTokenStore` value and connection; only Redis is shared.
//!
//! Nothing is timed: the assertions are about what the fake counted (refreshes, reused refresh
//! tokens) and what the clients saw.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::redis_server::RedisServer;
use lead_intake::error::ResponseExt;
use lead_intake::kommo;
use lead_intake::kommo::Error as KommoError;
use lead_intake::oauth::{self, AuthError, OAuth, TokenPair};
use lead_intake::retry::RetryPolicy;
use lead_intake::shared::{RedisConnection, RedisTokenStore};
use lead_intake_fake::{Config, FakeServer, Fixtures, OAuthConfig};

/// A second ago: a pair that expires then is due for a refresh.
fn past() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        - chrono::TimeDelta::seconds(1)
}

fn fake(oauth: OAuthConfig) -> FakeServer {
    FakeServer::start(Config::default().fixtures(Fixtures::empty()).oauth(oauth))
        .expect("the fake starts")
}

/// A store for `name`, on its own connection (as another process would have).
fn store(redis: &RedisServer, name: &str) -> RedisTokenStore {
    RedisTokenStore::new(&RedisConnection::open(redis.url()).unwrap(), name).unwrap()
}

/// The first pair, from the fake's code exchange.
async fn first_pair(fake: &FakeServer) -> TokenPair {
    oauth::exchange_code(
        &fake.base_url(),
        &fake.oauth_app(),
        &fake.authorization_code(),
    )
    .await
    .expect("the code is exchanged")
}

/// A client whose session comes from `store`; every `on_refresh` call counts in `refreshed`.
async fn client(
    fake: &FakeServer,
    store: RedisTokenStore,
    refreshed: &Arc<AtomicUsize>,
) -> kommo::Client {
    let refreshed = refreshed.clone();
    let oauth = OAuth::from_store(fake.oauth_app(), store)
        .await
        .expect("the store holds a pair")
        .on_refresh(move |_pair: TokenPair| {
            let refreshed = refreshed.clone();
            async move {
                refreshed.fetch_add(1, Ordering::SeqCst);
                Ok::<(), std::io::Error>(())
            }
        });
    kommo::Client::builder()
        .base_url(&fake.base_url())
        .oauth(oauth)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .build()
        .expect("a loopback base URL is accepted")
}

fn auth_error(error: KommoError) -> AuthError {
    match error {
        KommoError::Auth { error, .. } => error,
        other => panic!("not an OAuth failure: {other:?}"),
    }
}

/// `tasks` concurrent requests on each client; every one must succeed.
async fn all_succeed(clients: &[kommo::Client], tasks: usize) {
    let mut handles = Vec::new();
    for client in clients {
        for _ in 0..tasks {
            let client = client.clone();
            handles.push(tokio::spawn(async move {
                client.list_sources().send().or_empty().await.map(|_| ())
            }));
        }
    }
    for handle in handles {
        let result = handle.await.expect("a task panicked");
        assert!(result.is_ok(), "{result:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_find_the_pair_due_refresh_it_once_between_them() {
    let redis = RedisServer::start();
    let fake = fake(OAuthConfig::default());
    let mut pair = first_pair(&fake).await;
    // Due: every session would refresh it before its next request.
    pair.expires_at = past();
    oauth::store_tokens(&store(&redis, "due"), pair)
        .await
        .unwrap();

    let refreshed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(client(&fake, store(&redis, "due"), &refreshed).await);
    }
    all_succeed(&clients, 8).await;

    let stats = fake.oauth_stats();
    assert_eq!(stats.refreshes, 1, "one refresh for all three: {stats:?}");
    assert_eq!(stats.revoked_reuses, 0, "{stats:?}");
    assert_eq!(
        refreshed.load(Ordering::SeqCst),
        1,
        "on_refresh ran once, where it refreshed"
    );
    let stored = store(&redis, "due").load().await.unwrap().unwrap();
    assert_eq!(stored.version(), 2);
    for client in &clients {
        assert_eq!(client.oauth_tokens().await.as_ref(), Some(stored.pair()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_401_a_session_takes_the_pair_another_refreshed_instead_of_refreshing() {
    let redis = RedisServer::start();
    let fake = fake(OAuthConfig::default().revoke_access_on_refresh(true));
    oauth::store_tokens(&store(&redis, "401"), first_pair(&fake).await)
        .await
        .unwrap();
    let refreshed = Arc::new(AtomicUsize::new(0));
    let a = client(&fake, store(&redis, "401"), &refreshed).await;
    let b = client(&fake, store(&redis, "401"), &refreshed).await;
    all_succeed(&[a.clone(), b.clone()], 1).await;

    // Kommo ends the access token early (a password change, say): A sees the 401 first.
    fake.expire_access_tokens();
    all_succeed(std::slice::from_ref(&a), 1).await;
    assert_eq!(fake.oauth_stats().refreshes, 1);
    // B's token is the old one, revoked by A's refresh: its 401 sends it to the store.
    all_succeed(std::slice::from_ref(&b), 1).await;

    let stats = fake.oauth_stats();
    assert_eq!(stats.refreshes, 1, "B took A's pair: {stats:?}");
    assert_eq!(stats.revoked_reuses, 0, "{stats:?}");
    assert_eq!(refreshed.load(Ordering::SeqCst), 1);
    assert_eq!(a.oauth_tokens().await, b.oauth_tokens().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_and_a_store_that_is_down_are_typed_errors_and_no_refresh_token_is_sent() {
    // Its data outlives the restart below, as a production Redis's should (README).
    let mut redis = RedisServer::start_persistent();
    let fake = fake(OAuthConfig::default());
    let empty = OAuth::from_store(fake.oauth_app(), store(&redis, "empty")).await;
    assert!(
        matches!(&empty, Err(AuthError::Store(e)) if e.to_string().contains("holds no token pair")),
        "{empty:?}"
    );

    let mut pair = first_pair(&fake).await;
    pair.expires_at = past();
    oauth::store_tokens(&store(&redis, "down"), pair)
        .await
        .unwrap();
    let refreshed = Arc::new(AtomicUsize::new(0));
    let kommo = client(&fake, store(&redis, "down"), &refreshed).await;

    redis.stop();
    let before = fake.stats().requests;
    let error = auth_error(kommo.list_sources().send().or_empty().await.unwrap_err());
    assert!(matches!(error, AuthError::Store(_)), "{error:?}");
    assert_eq!(
        fake.oauth_stats().refreshes,
        0,
        "nothing sent without the lock"
    );
    assert_eq!(
        fake.stats().requests,
        before,
        "nothing at all reached the fake"
    );

    redis.start_again();
    // The connection comes back on its own, after a few tries perhaps; the event is the request
    // going through, and the deadline a watchdog only a hung reconnect reaches.
    let watchdog = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match kommo.list_sources().send().or_empty().await {
            Ok(_) => break,
            Err(e) => {
                let error = auth_error(e);
                assert!(matches!(error, AuthError::Store(_)), "{error:?}");
                assert!(
                    std::time::Instant::now() < watchdog,
                    "the store never came back"
                );
                tokio::task::yield_now().await;
            }
        }
    }
    assert_eq!(fake.oauth_stats().refreshes, 1);
    assert_eq!(refreshed.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_stored_after_the_refresh_token_was_refused_brings_the_sessions_back() {
    let redis = RedisServer::start();
    let fake = fake(OAuthConfig::default());
    let good = first_pair(&fake).await;
    // A pair whose refresh token Kommo does not know, due now: its refresh is refused.
    let bad = TokenPair {
        access_token: good.access_token.clone(),
        refresh_token: "not-a-refresh-token".into(),
        expires_at: past(),
    };
    oauth::store_tokens(&store(&redis, "again"), bad)
        .await
        .unwrap();
    let refreshed = Arc::new(AtomicUsize::new(0));
    let kommo = client(&fake, store(&redis, "again"), &refreshed).await;
    let error = auth_error(kommo.list_sources().send().or_empty().await.unwrap_err());
    assert!(matches!(error, AuthError::Rejected { .. }), "{error:?}");
    // Fails fast: no second token request.
    let error = auth_error(kommo.list_sources().send().or_empty().await.unwrap_err());
    assert!(matches!(error, AuthError::Rejected { .. }), "{error:?}");
    assert_eq!(fake.oauth_stats().refused, 1);

    // The user authorizes the integration again; any process stores the new pair.
    let stored = oauth::store_tokens(&store(&redis, "again"), first_pair(&fake).await)
        .await
        .unwrap();
    assert_eq!(stored.version(), 2);
    all_succeed(std::slice::from_ref(&kommo), 2).await;
    assert_eq!(kommo.oauth_tokens().await.as_ref(), Some(stored.pair()));
    assert_eq!(fake.oauth_stats().refreshes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_dead_holder_runs_out_and_the_refresh_happens_once() {
    let redis = RedisServer::start();
    let fake = fake(OAuthConfig::default());
    let mut pair = first_pair(&fake).await;
    pair.expires_at = past();
    oauth::store_tokens(&store(&redis, "dead"), pair)
        .await
        .unwrap();
    // A process took the refresh lock and died: nobody releases it.
    let held = store(&redis, "dead")
        .try_lock(Duration::from_millis(300))
        .await
        .unwrap()
        .expect("the lock is free");
    let _never_released = held;

    let refreshed = Arc::new(AtomicUsize::new(0));
    let kommo = client(&fake, store(&redis, "dead"), &refreshed).await;
    all_succeed(std::slice::from_ref(&kommo), 3).await;
    assert_eq!(fake.oauth_stats().refreshes, 1);
    assert_eq!(fake.oauth_stats().revoked_reuses, 0);
    assert_eq!(refreshed.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_from_a_store_shows_no_token_in_debug() {
    let redis = RedisServer::start();
    let fake = fake(OAuthConfig::default());
    let pair = first_pair(&fake).await;
    oauth::store_tokens(&store(&redis, "debug"), pair.clone())
        .await
        .unwrap();
    let oauth = OAuth::from_store(fake.oauth_app(), store(&redis, "debug"))
        .await
        .unwrap()
        .lock_ttl(Duration::from_secs(20));
    let debug = format!("{oauth:?}");
    assert!(debug.contains("token_store: true"), "{debug}");
    assert!(debug.contains("20s"), "{debug}");
    assert!(!debug.contains(pair.access_token.expose()), "{debug}");
    assert!(!debug.contains(pair.refresh_token.expose()), "{debug}");
    assert!(
        !debug.contains(fake.oauth().client_secret().expose()),
        "{debug}"
    );
}
