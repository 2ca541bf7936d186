//! Where the token pair of an integration and account lives for every process that uses it:
//! [`TokenStore`], its types, and the type-erased form the OAuth session holds.
//!
//! `lead_intake::shared::RedisTokenStore` (feature `redis`) implements it in Redis; any other
//! shared storage with a compare-and-set and an expiring lock (a database row, etcd) can too.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::TokenPair;

/// The first and the longest pause between two tries of [`TokenStore::lock`].
const LOCK_BACKOFF_MIN: Duration = Duration::from_millis(5);
const LOCK_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// A token pair as a [`TokenStore`] holds it: with the version the store gave it (1 for the
/// first pair saved, one more for each pair after it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTokens {
    version: u64,
    pair: TokenPair,
}

impl StoredTokens {
    /// A pair at a version (for implementations of [`TokenStore`]).
    pub fn new(version: u64, pair: TokenPair) -> Self {
        Self { version, pair }
    }

    /// The store's version of the pair.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The pair.
    pub fn pair(&self) -> &TokenPair {
        &self.pair
    }

    /// The pair, by value.
    pub fn into_pair(self) -> TokenPair {
        self.pair
    }
}

/// The outcome of [`TokenStore::save_if_current`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Saved {
    /// The new pair is stored, at this version.
    Stored(StoredTokens),
    /// Not stored: the store no longer holds the pair the caller refreshed from. It holds this
    /// one (another process saved a newer pair), or nothing (the store was emptied).
    Changed(Option<StoredTokens>),
    /// Not stored: the caller's lock expired (and may have been taken by another process), so
    /// its save could overwrite a newer pair. This holds even if the stored pair is still the
    /// one refreshed from: another process may be refreshing it right now. Take locks for longer
    /// than a refresh can take (the token request's timeout, with its retries), so this does not
    /// happen; if it does, the new pair exists only in the caller's hands, and the caller should
    /// still hand it to its own storage (e.g. `on_refresh`).
    LockLost,
}

/// The refresh lock of a [`TokenStore`], held by one process at a time until it is released or
/// its time to live runs out. Its fencing token grows with every lock taken, so a save under a
/// lock that expired can be told from a save under the current one.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "release the lock when the refresh is done, or it is held until its ttl ends"]
pub struct RefreshLock {
    fence: u64,
    ttl: Duration,
}

impl RefreshLock {
    /// A lock with its fencing token and time to live (for implementations of [`TokenStore`]).
    pub fn new(fence: u64, ttl: Duration) -> Self {
        Self { fence, ttl }
    }

    /// The fencing token: larger than that of every lock taken before it.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// How long the lock lasts from when it was taken, unless released.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Where the token pair of an integration and account lives, for every process that uses it:
/// load it, lock it for a refresh, save a refreshed pair only if the stored one is still the
/// pair it was refreshed from.
///
/// The refresh protocol, which sends a refresh token at most once across all processes:
///
/// 1. [`lock`](Self::lock) (with a time to live longer than a refresh can take);
/// 2. [`load`](Self::load): if the stored version differs from the one this process used,
///    another process has refreshed: use its pair, [`release`](Self::release), done;
/// 3. otherwise refresh with the stored refresh token, then
///    [`save_if_current`](Self::save_if_current) with the pair loaded in step 2;
/// 4. [`release`](Self::release).
///
/// A process that dies holding the lock holds it until its time to live ends; one whose lock
/// expired mid-refresh gets [`Saved::LockLost`] and cannot overwrite a newer pair.
///
/// The methods return boxed futures so that the trait can be used as `dyn TokenStore`.
pub trait TokenStore: Send + Sync {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The stored pair, or `None` when nothing is stored yet.
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, Self::Error>>;

    /// Takes the refresh lock if nobody holds it; `None` if someone does.
    fn try_lock(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<RefreshLock>, Self::Error>>;

    /// Waits for the refresh lock and takes it: tries again after 5 ms, then after twice as long
    /// each time, up to 100 ms between tries. Wrap it in `tokio::time::timeout` to bound the
    /// wait. If it is cancelled just as the lock is taken, the lock is held until its `ttl` ends.
    fn lock(&self, ttl: Duration) -> BoxFuture<'_, Result<RefreshLock, Self::Error>> {
        Box::pin(async move {
            let mut pause = LOCK_BACKOFF_MIN;
            loop {
                if let Some(lock) = self.try_lock(ttl).await? {
                    return Ok(lock);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LOCK_BACKOFF_MAX);
            }
        })
    }

    /// Stores `new` if `lock` is still held and the store still holds `expected` (the pair
    /// `new` was refreshed from; `None`: nothing stored, for the first pair).
    fn save_if_current<'a>(
        &'a self,
        lock: &'a RefreshLock,
        expected: Option<&'a StoredTokens>,
        new: TokenPair,
    ) -> BoxFuture<'a, Result<Saved, Self::Error>>;

    /// Releases the lock if it is still ours: `true` when released, `false` when it had expired
    /// (and perhaps been taken by another process, whose lock stays).
    fn release(&self, lock: RefreshLock) -> BoxFuture<'_, Result<bool, Self::Error>>;
}

/// A [`TokenStore`] with its error boxed, as the OAuth session holds it.
pub(crate) type StoreError = Arc<dyn StdError + Send + Sync>;

pub(crate) trait DynStore: Send + Sync {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, StoreError>>;
    fn lock(&self, ttl: Duration) -> BoxFuture<'_, Result<RefreshLock, StoreError>>;
    fn save_if_current<'a>(
        &'a self,
        lock: &'a RefreshLock,
        expected: Option<&'a StoredTokens>,
        new: TokenPair,
    ) -> BoxFuture<'a, Result<Saved, StoreError>>;
    fn release(&self, lock: RefreshLock) -> BoxFuture<'_, Result<bool, StoreError>>;
}

fn erase<E: StdError + Send + Sync + 'static>(error: E) -> StoreError {
    Arc::new(error)
}

impl<S: TokenStore> DynStore for S {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, StoreError>> {
        Box::pin(async move { TokenStore::load(self).await.map_err(erase) })
    }

    fn lock(&self, ttl: Duration) -> BoxFuture<'_, Result<RefreshLock, StoreError>> {
        Box::pin(async move { TokenStore::lock(self, ttl).await.map_err(erase) })
    }

    fn save_if_current<'a>(
        &'a self,
        lock: &'a RefreshLock,
        expected: Option<&'a StoredTokens>,
        new: TokenPair,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        Box::pin(async move {
            TokenStore::save_if_current(self, lock, expected, new)
                .await
                .map_err(erase)
        })
    }

    fn release(&self, lock: RefreshLock) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move { TokenStore::release(self, lock).await.map_err(erase) })
    }
}
