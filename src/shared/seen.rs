//! The disposable tokens already used, for every worker: one Redis key per `jti`, set once.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::{RedisConnection, SharedError, check_name};
use crate::widget::{ReplayGuard, TokenError};

/// The `jti`s of the disposable tokens any worker has accepted, in Redis: the
/// [`ReplayGuard`] of [`DisposableTokenVerifier::verify_first_use`](crate::widget::DisposableTokenVerifier::verify_first_use)
/// for several processes, so a token used with one worker is refused by every other.
///
/// Each token is one key, `{name}:widget:jti:{sha256(jti)}`, written with `SET ... NX PX`: the
/// first use sets it, with a time to live of as long as the verifier still accepts the token, and
/// any later use finds it. Redis drops the key when it expires, so memory follows the tokens still
/// alive. When Redis cannot be reached the token is refused
/// ([`TokenError::ReplayUnchecked`]), never let through unchecked. Run Redis with
/// `maxmemory-policy noeviction` (its default): an evicted key would let its token be used again.
///
/// ```no_run
/// use lead_intake::shared::{RedisConnection, RedisSeenTokens};
/// use lead_intake::widget::DisposableTokenVerifier;
///
/// # async fn f(secret: lead_intake::Secret, header: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisConnection::open("redis://127.0.0.1:6379")?;
/// let seen = RedisSeenTokens::new(&redis, "kommo:my-integration")?;
/// let verifier = DisposableTokenVerifier::new(secret, "https://widget.example/oauth")?;
/// let claims = verifier.verify_first_use(header, &seen).await?;
/// # let _ = claims; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSeenTokens {
    redis: RedisConnection,
    name: String,
    prefix: String,
}

impl RedisSeenTokens {
    /// The guard for `name` (e.g. the integration; no `{` or `}`) on this Redis. Every worker
    /// that shares the integration's tokens must use the same name.
    ///
    /// ```
    /// use lead_intake::shared::{RedisConnection, RedisSeenTokens};
    /// let redis = RedisConnection::open("redis://127.0.0.1")?;
    /// assert_eq!(RedisSeenTokens::new(&redis, "kommo:acme")?.name(), "kommo:acme");
    /// assert!(RedisSeenTokens::new(&redis, "{bad}").is_err());
    /// # Ok::<(), lead_intake::shared::SharedError>(())
    /// ```
    pub fn new(redis: &RedisConnection, name: impl Into<String>) -> Result<Self, SharedError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self {
            redis: redis.clone(),
            prefix: format!("{{{name}}}:widget:jti:"),
            name,
        })
    }

    /// The key name given to [`new`](Self::new).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records `jti` for `keep` (at least 1 ms) and answers whether this was its first use, in one
    /// `SET NX PX`.
    pub async fn first_use(&self, jti: &str, keep: Duration) -> Result<bool, SharedError> {
        let digest = Sha256::digest(jti.as_bytes());
        let mut key = self.prefix.clone();
        for byte in digest {
            key.push_str(&format!("{byte:02x}"));
        }
        let ttl_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut manager = self.redis.manager(&key).await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut manager)
            .await
            .map_err(|e| self.redis.error(&key, e))?;
        Ok(set.is_some())
    }
}

impl ReplayGuard for RedisSeenTokens {
    fn first_use<'a>(
        &'a self,
        jti: &'a str,
        keep: Duration,
    ) -> BoxFuture<'a, Result<bool, TokenError>> {
        Box::pin(async move {
            RedisSeenTokens::first_use(self, jti, keep)
                .await
                .map_err(|e| TokenError::ReplayUnchecked {
                    reason: e.to_string(),
                })
        })
    }
}

impl fmt::Debug for RedisSeenTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSeenTokens")
            .field("redis", &self.redis)
            .field("name", &self.name)
            .finish()
    }
}
