//! One OAuth token pair for every process: [`TokenStore`] and [`RedisTokenStore`].

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use redis::Script;
use serde::{Deserialize, Serialize};

use super::{RedisConnection, SharedError, check_name};
use crate::Secret;
use crate::oauth::{RefreshLock, Saved, StoredTokens, TokenPair, TokenStore};

static LOCK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lock.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
static SAVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("save.lua")));
static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("extend_lock.lua")));

/// A [`TokenStore`] in Redis: the pair as JSON with a version, saved by a compare-and-set
/// script (against the version and the refresh token of the pair refreshed from; it stores even
/// after the saver's lock ran out, and never answers [`Saved::LockLost`]); the refresh lock as
/// `SET NX PX` with a fencing token from a counter, extended and released by scripts that touch
/// it only if it still holds our fence.
///
/// Keys (under the `{name}` hash tag): `{name}:oauth:pair` (a hash: `version`, `pair`, and `rt`,
/// the SHA-1 of the pair's refresh token), `{name}:oauth:lock`, `{name}:oauth:fence`. The pair and
/// the counter never expire. Tokens are never in this type's `Debug` or its errors.
///
/// The refresh protocol (see [`TokenStore`]), with the store's own methods, which need no
/// trait in scope:
///
/// ```no_run
/// use std::time::Duration;
/// use lead_intake::oauth::TokenPair;
/// use lead_intake::shared::{RedisConnection, RedisTokenStore, Saved, StoredTokens};
///
/// # async fn refresh(_: &TokenPair) -> TokenPair { unimplemented!() }
/// # async fn f(mine: StoredTokens) -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisConnection::open("redis://127.0.0.1:6379")?;
/// let store = RedisTokenStore::new(&redis, "kommo:my-integration:mycompany")?;
///
/// let lock = store.lock(Duration::from_secs(30)).await?;
/// let current = store.load().await?.ok_or("no tokens stored")?;
/// let pair = if current.version() != mine.version() {
///     current.into_pair() // another process refreshed: use its pair
/// } else {
///     let new = refresh(current.pair()).await;
///     match store.save_if_current(&lock, Some(&current), new.clone()).await? {
///         Saved::Stored(_) => new,
///         Saved::Changed(Some(newer)) => newer.into_pair(),
///         _ => return Err("the refreshed pair could not be stored".into()),
///     }
/// };
/// store.release(lock).await?;
/// # let _ = pair; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTokenStore {
    redis: RedisConnection,
    name: String,
    pair_key: String,
    lock_key: String,
    fence_key: String,
}

/// The stored JSON of a pair. Its own type rather than `TokenPair`'s serde form, so the format
/// in Redis, which processes of different versions share, changes only here.
#[derive(Serialize)]
struct PairJson<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct PairJsonOwned {
    access_token: String,
    refresh_token: String,
    expires_at: DateTime<Utc>,
}

impl RedisTokenStore {
    /// The store for `name` (e.g. integration and account; no `{` or `}`) on this Redis.
    ///
    /// ```
    /// use lead_intake::shared::{RedisConnection, RedisTokenStore};
    /// let redis = RedisConnection::open("redis://127.0.0.1")?;
    /// let store = RedisTokenStore::new(&redis, "kommo:acme")?;
    /// assert_eq!(store.name(), "kommo:acme");
    /// # Ok::<(), lead_intake::shared::SharedError>(())
    /// ```
    pub fn new(redis: &RedisConnection, name: impl Into<String>) -> Result<Self, SharedError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self {
            redis: redis.clone(),
            pair_key: format!("{{{name}}}:oauth:pair"),
            lock_key: format!("{{{name}}}:oauth:lock"),
            fence_key: format!("{{{name}}}:oauth:fence"),
            name,
        })
    }

    /// The key name given to [`new`](Self::new).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored pair, or `None` when nothing is stored yet ([`TokenStore::load`]).
    pub async fn load(&self) -> Result<Option<StoredTokens>, SharedError> {
        let mut manager = self.redis.manager(&self.pair_key).await?;
        let (version, json): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&self.pair_key)
            .arg("version")
            .arg("pair")
            .query_async(&mut manager)
            .await
            .map_err(|e| self.redis.error(&self.pair_key, e))?;
        match (version, json) {
            (None, None) => Ok(None),
            (Some(version), Some(json)) => Ok(Some(self.decode(&version, &json)?)),
            _ => Err(self
                .redis
                .corrupt(&self.pair_key, "the hash lacks its version or its pair")),
        }
    }

    /// Takes the refresh lock if nobody holds it ([`TokenStore::try_lock`]). A `ttl` under 1 ms
    /// counts as 1 ms.
    pub async fn try_lock(&self, ttl: Duration) -> Result<Option<RefreshLock>, SharedError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = LOCK.prepare_invoke();
        invocation
            .key(&self.lock_key)
            .key(&self.fence_key)
            .arg(ttl_ms);
        let (taken, value): (i64, i64) = self.redis.run(&self.lock_key, &invocation).await?;
        if taken != 1 {
            return Ok(None);
        }
        let fence = u64::try_from(value).map_err(|_| {
            self.redis
                .corrupt(&self.fence_key, "a negative fencing token")
        })?;
        Ok(Some(RefreshLock::new(fence, Duration::from_millis(ttl_ms))))
    }

    /// Waits for the refresh lock and takes it ([`TokenStore::lock`]).
    pub async fn lock(&self, ttl: Duration) -> Result<RefreshLock, SharedError> {
        TokenStore::lock(self, ttl).await
    }

    /// Gives the refresh lock `ttl` more from now if it is still ours ([`TokenStore::extend`]):
    /// `true` when extended, `false` when it had run out (another process's lock is left as it
    /// is). A `ttl` under 1 ms counts as 1 ms.
    pub async fn extend(&self, lock: &RefreshLock, ttl: Duration) -> Result<bool, SharedError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = EXTEND.prepare_invoke();
        invocation.key(&self.lock_key).arg(lock.fence()).arg(ttl_ms);
        let extended: i64 = self.redis.run(&self.lock_key, &invocation).await?;
        Ok(extended == 1)
    }

    /// Stores `new` if the store still holds `expected` ([`TokenStore::save_if_current`]),
    /// whether or not `lock` is still held: never [`Saved::LockLost`].
    pub async fn save_if_current(
        &self,
        _lock: &RefreshLock,
        expected: Option<&StoredTokens>,
        new: TokenPair,
    ) -> Result<Saved, SharedError> {
        let json = serde_json::to_string(&PairJson {
            access_token: new.access_token.expose(),
            refresh_token: new.refresh_token.expose(),
            expires_at: new.expires_at,
        })
        .map_err(|_| SharedError::Invalid("the token pair cannot be written as JSON"))?;
        let (expected_version, expected_refresh) = match expected {
            Some(stored) => (stored.version(), stored.pair().refresh_token.expose()),
            None => (0, ""),
        };
        let mut invocation = SAVE.prepare_invoke();
        invocation
            .key(&self.pair_key)
            .arg(expected_version)
            .arg(expected_refresh)
            .arg(&json)
            .arg(new.refresh_token.expose());
        let (outcome, version, current): (i64, i64, String) =
            self.redis.run(&self.pair_key, &invocation).await?;
        let version = u64::try_from(version)
            .map_err(|_| self.redis.corrupt(&self.pair_key, "a negative version"))?;
        match outcome {
            1 => Ok(Saved::Stored(StoredTokens::new(version, new))),
            2 if version == 0 => Ok(Saved::Changed(None)),
            2 => Ok(Saved::Changed(Some(
                self.decode(&version.to_string(), &current)?,
            ))),
            _ => Err(self
                .redis
                .corrupt(&self.pair_key, "the save script answered something unknown")),
        }
    }

    /// Releases the lock if it is still ours ([`TokenStore::release`]).
    pub async fn release(&self, lock: RefreshLock) -> Result<bool, SharedError> {
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(&self.lock_key).arg(lock.fence());
        let released: i64 = self.redis.run(&self.lock_key, &invocation).await?;
        Ok(released == 1)
    }

    /// Reads a stored pair. Errors say where the data is wrong, never what it holds.
    fn decode(&self, version: &str, json: &str) -> Result<StoredTokens, SharedError> {
        let version: u64 = version.parse().map_err(|_| {
            self.redis
                .corrupt(&self.pair_key, "the version is not a number")
        })?;
        let pair: PairJsonOwned = serde_json::from_str(json).map_err(|e| {
            self.redis.corrupt(
                &self.pair_key,
                format!(
                    "the pair is not the JSON lead-intake writes (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Ok(StoredTokens::new(
            version,
            TokenPair {
                access_token: Secret::new(pair.access_token),
                refresh_token: Secret::new(pair.refresh_token),
                expires_at: pair.expires_at,
            },
        ))
    }
}

impl TokenStore for RedisTokenStore {
    type Error = SharedError;

    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, SharedError>> {
        Box::pin(Self::load(self))
    }

    fn try_lock(&self, ttl: Duration) -> BoxFuture<'_, Result<Option<RefreshLock>, SharedError>> {
        Box::pin(Self::try_lock(self, ttl))
    }

    fn save_if_current<'a>(
        &'a self,
        lock: &'a RefreshLock,
        expected: Option<&'a StoredTokens>,
        new: TokenPair,
    ) -> BoxFuture<'a, Result<Saved, SharedError>> {
        Box::pin(Self::save_if_current(self, lock, expected, new))
    }

    fn extend<'a>(
        &'a self,
        lock: &'a RefreshLock,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedError>> {
        Box::pin(Self::extend(self, lock, ttl))
    }

    fn release(&self, lock: RefreshLock) -> BoxFuture<'_, Result<bool, SharedError>> {
        Box::pin(Self::release(self, lock))
    }
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("redis", &self.redis)
            .field("name", &self.name)
            .finish()
    }
}
