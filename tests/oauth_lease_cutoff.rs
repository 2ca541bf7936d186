//! Issue 20 §3, the lease's two outcomes on paused time, with a token store in memory whose lock
//! expires on tokio's clock (a real Redis is tests/oauth_lease.rs; its clock is not ours to move):
//!
//! - a token endpoint slower than the lock's time to live: the holder renews its lease while the
//!   request is in flight, so the lock never lapses, and the new pair is stored;
//! - a lease that cannot be renewed (the store lost the lock, or is unreachable): the token request
//!   is cut off before the lease would run out, with the passing `AuthError::RefreshAbandoned`;
//!   the lock never lapses while the request may still be answered.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::script::{Reply, ScriptServer, http_without_timeouts};
use futures_util::future::BoxFuture;
use lead_intake::Secret;
use lead_intake::error::ApiError;
use lead_intake::kommo;
use lead_intake::oauth::{
    AuthError, OAuth, OAuthApp, RefreshLock, Saved, StoredTokens, TokenPair, TokenStore,
};
use lead_intake::prelude::*;
use lead_intake::retry::RetryPolicy;
use serde_json::json;
use tokio::time::Instant;

const TTL: Duration = Duration::from_secs(30);

/// How the store answers `extend`.
#[derive(Clone, Copy, PartialEq)]
enum Renewal {
    Works,
    LockLost,
    Unreachable,
}

#[derive(Default)]
struct Inner {
    pair: Option<StoredTokens>,
    /// The holder's fence and when its lock expires (tokio's clock).
    lock: Option<(u64, Instant)>,
    fence: u64,
    /// For each release: whether the lock was still the holder's (it had not lapsed).
    releases: Vec<bool>,
    extends: u32,
}

#[derive(Clone)]
struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    renewal: Renewal,
}

#[derive(Debug, thiserror::Error)]
#[error("the store is unreachable")]
struct Unreachable;

impl MemoryStore {
    fn held(inner: &Inner, fence: u64) -> bool {
        inner
            .lock
            .is_some_and(|(f, until)| f == fence && Instant::now() < until)
    }
}

impl TokenStore for MemoryStore {
    type Error = Unreachable;

    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, Unreachable>> {
        Box::pin(async move { Ok(self.inner.lock().unwrap().pair.clone()) })
    }

    fn try_lock(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<RefreshLock>, Unreachable>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().unwrap();
            if inner.lock.is_some_and(|(_, until)| Instant::now() < until) {
                return Ok(None);
            }
            inner.fence += 1;
            let fence = inner.fence;
            inner.lock = Some((fence, Instant::now() + ttl));
            Ok(Some(RefreshLock::new(fence, ttl)))
        })
    }

    fn extend<'a>(
        &'a self,
        lock: &'a RefreshLock,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Unreachable>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().unwrap();
            inner.extends += 1;
            match self.renewal {
                Renewal::Unreachable => Err(Unreachable),
                Renewal::LockLost => Ok(false),
                Renewal::Works if Self::held(&inner, lock.fence()) => {
                    inner.lock = Some((lock.fence(), Instant::now() + ttl));
                    Ok(true)
                }
                Renewal::Works => Ok(false),
            }
        })
    }

    fn save_if_current<'a>(
        &'a self,
        _lock: &'a RefreshLock,
        expected: Option<&'a StoredTokens>,
        new: TokenPair,
    ) -> BoxFuture<'a, Result<Saved, Unreachable>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().unwrap();
            if inner.pair.as_ref() != expected {
                return Ok(Saved::Changed(inner.pair.clone()));
            }
            let version = inner.pair.as_ref().map_or(0, StoredTokens::version) + 1;
            let stored = StoredTokens::new(version, new);
            inner.pair = Some(stored.clone());
            Ok(Saved::Stored(stored))
        })
    }

    fn release(&self, lock: RefreshLock) -> BoxFuture<'_, Result<bool, Unreachable>> {
        Box::pin(async move {
            let mut inner = self.inner.lock().unwrap();
            let held = Self::held(&inner, lock.fence());
            inner.releases.push(held);
            if held {
                inner.lock = None;
            }
            Ok(held)
        })
    }
}

fn expired_pair() -> TokenPair {
    TokenPair {
        access_token: Secret::new("ACCESS-OLD"),
        refresh_token: Secret::new("REFRESH-OLD"),
        expires_at: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
            - chrono::TimeDelta::seconds(5),
    }
}

/// A token endpoint that answers after `delay` (virtual time) with a new pair, and sources to
/// the new token.
async fn server(delay: Duration) -> ScriptServer {
    ScriptServer::start(move |r, _| match r.path() {
        "/oauth2/access_token" => Reply::status(200)
            .header("content-type", "application/json")
            .body(
                json!({"token_type": "Bearer", "expires_in": 86400,
                       "access_token": "ACCESS-NEW", "refresh_token": "REFRESH-NEW"})
                .to_string(),
            )
            .after(delay),
        _ => Reply::json(200, json!({"_embedded": {"sources": []}})),
    })
    .await
}

async fn client(server: &ScriptServer, store: MemoryStore) -> kommo::Client {
    let oauth = OAuth::from_store(
        OAuthApp::new("id", "CLIENT-SECRET", "https://example.com/oauth"),
        store,
    )
    .await
    .unwrap()
    .lock_ttl(TTL);
    kommo::Client::builder()
        .base_url(&server.base_url)
        .oauth(oauth)
        .no_rate_limit()
        .retry(RetryPolicy::none())
        .http_client(http_without_timeouts())
        .build()
        .unwrap()
}

fn store(renewal: Renewal) -> MemoryStore {
    let store = MemoryStore {
        inner: Arc::default(),
        renewal,
    };
    store.inner.lock().unwrap().pair = Some(StoredTokens::new(1, expired_pair()));
    store
}

#[tokio::test(start_paused = true)]
async fn a_token_endpoint_slower_than_the_lock_s_ttl_keeps_its_lease_and_stores_the_pair() {
    let store = store(Renewal::Works);
    let server = server(Duration::from_secs(100)).await;
    let client = client(&server, store.clone()).await;

    let started = Instant::now();
    client.list_sources().send().or_empty().await.unwrap();

    assert!(started.elapsed() >= Duration::from_secs(100));
    let inner = store.inner.lock().unwrap();
    assert_eq!(inner.releases, [true], "the lock lapsed mid-refresh");
    assert!(inner.extends >= 3, "renewed {} times", inner.extends);
    assert_eq!(inner.pair.as_ref().map(StoredTokens::version), Some(2));
    assert_eq!(
        inner.pair.as_ref().unwrap().pair().access_token.expose(),
        "ACCESS-NEW"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_cannot_be_renewed_cuts_the_token_request_off_before_it_lapses() {
    for renewal in [Renewal::LockLost, Renewal::Unreachable] {
        let store = store(renewal);
        let server = server(Duration::from_secs(100)).await;
        let client = client(&server, store.clone()).await;

        let started = Instant::now();
        let err = client.list_sources().send().or_empty().await.unwrap_err();
        let waited = started.elapsed();

        assert!(
            matches!(
                &err,
                ApiError::Auth {
                    error: AuthError::RefreshAbandoned(_),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(server.requests_to("/oauth2/access_token").len(), 1);
        match renewal {
            // Told the lock is gone: cut off at once (the first renewal, a third of the ttl).
            Renewal::LockLost => assert!(waited <= TTL / 3 + Duration::from_secs(1), "{waited:?}"),
            // Renewals that fail: cut off before the lease that was confirmed runs out.
            _ => assert!(waited < TTL, "{waited:?}"),
        }
        {
            let inner = store.inner.lock().unwrap();
            // Released while still held: the request was cut off before the lease ran out.
            assert_eq!(inner.releases, [true], "the lock lapsed mid-refresh");
            assert_eq!(inner.pair.as_ref().map(StoredTokens::version), Some(1));
        }
        // Not a dead session: the next request tries again.
        let again = client.list_sources().send().or_empty().await.unwrap_err();
        assert!(
            !matches!(
                &again,
                ApiError::Auth {
                    error: AuthError::Rejected { .. },
                    ..
                }
            ),
            "{again:?}"
        );
        assert_eq!(server.requests_to("/oauth2/access_token").len(), 2);
    }
}
