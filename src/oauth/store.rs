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
pub(crate) const LOCK_BACKOFF_MIN: Duration = Duration::from_millis(5);
pub(crate) const LOCK_BACKOFF_MAX: Duration = Duration::from_millis(100);

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
    /// Not stored: the caller's lock had run out, and this store does not save without it.
    ///
    /// `lead_intake::shared::RedisTokenStore` never answers it: its compare-and-set checks the
    /// version *and* the refresh token of the pair refreshed from, which is enough without the
    /// lock (refresh tokens are single-use, so only the process that spent the stored refresh
    /// token holds a pair refreshed from it; see [`TokenStore::save_if_current`]). A store whose
    /// compare-and-set cannot tell pairs apart that well may answer it; the OAuth session then
    /// uses the new pair in its own process and stores it on its next refresh, if the store still
    /// holds the pair it came from.
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

    /// How long the lock lasts from when it was taken (or last [extended](TokenStore::extend)),
    /// unless released.
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
/// 1. [`lock`](Self::lock), with a time to live (a lease);
/// 2. [`load`](Self::load): if the stored version differs from the one this process used,
///    another process has refreshed: use its pair, [`release`](Self::release), done;
/// 3. otherwise refresh with the stored refresh token, renewing the lease with
///    [`extend`](Self::extend) while the token request is in flight (the OAuth session does every
///    third of the time to live), and abandoning the token request before the lease could run
///    out when a renewal fails or finds the lock lost: the refresh token is never sent, nor its
///    answer awaited, by a process whose lock may have passed to another;
/// 4. [`save_if_current`](Self::save_if_current) with the pair loaded in step 2;
/// 5. [`release`](Self::release).
///
/// A process that dies holding the lock holds it until its time to live ends (the last renewal
/// included). The save in step 4 needs no lock: it stores only over the pair refreshed from, and
/// a refresh token is single-use, so no other process can hold a pair refreshed from the same one
/// (a process whose lock ran out between its token answer and its save still stores its pair, and
/// a process that took the lock meanwhile and refreshed the same pair again is refused by Kommo,
/// then finds the stored pair).
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

    /// Stores `new` if the store still holds `expected` (the pair `new` was refreshed from;
    /// `None`: nothing stored, for the first pair): the same version *and* the same refresh
    /// token, so that a store emptied and filled again since cannot match by version alone.
    ///
    /// `lock` is the caller's refresh lock; the save should succeed even if it has run out
    /// (see the protocol above: the comparison with the refresh token makes that safe). A store
    /// that cannot compare that well may refuse with [`Saved::LockLost`] instead.
    fn save_if_current<'a>(
        &'a self,
        lock: &'a RefreshLock,
        expected: Option<&'a StoredTokens>,
        new: TokenPair,
    ) -> BoxFuture<'a, Result<Saved, Self::Error>>;

    /// Renews the lease: gives `lock` a time to live of `ttl` from now if it is still held
    /// (the store's lock holds its fencing token): `true` when extended, `false` when it had
    /// run out (and perhaps been taken by another process, whose lock must be left as it is).
    /// An error or `false` makes the OAuth session abandon its token request before the lease
    /// could run out.
    fn extend<'a>(
        &'a self,
        lock: &'a RefreshLock,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Self::Error>>;

    /// Releases the lock if it is still ours: `true` when released, `false` when it had expired
    /// (and perhaps been taken by another process, whose lock stays).
    fn release(&self, lock: RefreshLock) -> BoxFuture<'_, Result<bool, Self::Error>>;
}

/// A [`TokenStore`] with its error boxed, as the OAuth session holds it.
pub(crate) type StoreError = Arc<dyn StdError + Send + Sync>;

pub(crate) trait DynStore: Send + Sync {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, StoreError>>;
    fn try_lock(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<RefreshLock>, StoreError>>;
    fn lock(&self, ttl: Duration) -> BoxFuture<'_, Result<RefreshLock, StoreError>>;
    fn extend<'a>(
        &'a self,
        lock: &'a RefreshLock,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
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

    fn try_lock(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<RefreshLock>, StoreError>> {
        Box::pin(async move { TokenStore::try_lock(self, ttl).await.map_err(erase) })
    }

    fn lock(&self, ttl: Duration) -> BoxFuture<'_, Result<RefreshLock, StoreError>> {
        Box::pin(async move { TokenStore::lock(self, ttl).await.map_err(erase) })
    }

    fn extend<'a>(
        &'a self,
        lock: &'a RefreshLock,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { TokenStore::extend(self, lock, ttl).await.map_err(erase) })
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
