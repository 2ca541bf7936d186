//! Work shared between processes, through Redis (feature `redis`): one rate limit and one OAuth
//! token pair for every worker of an integration.
//!
//! Kommo's rate limit and its OAuth tokens belong to the integration and the account, not to a
//! process. Four workers each throttled to 7 requests per second send 28, and two workers that
//! refresh at once spend the same single-use refresh token. The pieces here keep that state in
//! Redis, where every process sees it:
//!
//! - [`RedisRateLimit`]: the sliding window of [`RateLimiter`](crate::ratelimit::RateLimiter),
//!   with its rule and margin, kept by one Lua script run atomically on Redis's own clock, with
//!   fair waiters across processes; a request answered after the margin keeps its place until a
//!   period after its answer (it may have reached the server late). When Redis cannot be reached it answers
//!   [`SharedError::Unavailable`] and grants nothing, unless you opt in to a local fallback
//!   ([`RedisRateLimit::with_local_fallback`]).
//! - [`TokenStore`], implemented by [`RedisTokenStore`]: the token pair with a version, saved by
//!   compare-and-set, and a refresh lock with a fencing token, so a refresh token is sent at
//!   most once across processes.
//!
//! Both take a [`RedisConnection`] (one connection, multiplexed, that reconnects by itself after
//! Redis restarts; clone it to share it) and a key name of your choosing, e.g. the integration and
//! the account: every key lives under `{name}:` (a cluster hash tag, so one node holds them all).
//! Every process that shares a limit must use the same name, `max` and `period`.
//!
//! ```no_run
//! use std::time::Duration;
//! use lead_intake::shared::{RedisConnection, RedisRateLimit, RedisTokenStore};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisConnection::open("redis://127.0.0.1:6379")?;
//! // Kommo's 7 requests per second, for every process of this integration and account.
//! let limit = RedisRateLimit::new(&redis, "kommo:my-integration:mycompany", 7, Duration::from_secs(1))?;
//! let permit = limit.acquire().await?;
//! // ... send the request ...
//! permit.finish().await;
//!
//! let tokens = RedisTokenStore::new(&redis, "kommo:my-integration:mycompany")?;
//! let current = tokens.load().await?;
//! # let _ = current; Ok(()) }
//! ```
//!
//! Redis must not evict these keys: run it with `maxmemory-policy noeviction` (the default), since
//! the limiter's keys carry a time to live and `volatile-*` policies would evict them first. The
//! token pair is only as durable as Redis is: keep persistence (AOF) on, or keep storing each new
//! pair in your own database too.

mod limit;
mod tokens;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError, ServerErrorKind};

pub use crate::oauth::{RefreshLock, Saved, StoredTokens, TokenStore};
pub use limit::{RedisRateLimit, SharedPermit};
pub use tokens::RedisTokenStore;

use crate::Secret;

/// How long connecting, and waiting for one answer, may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to Redis for the shared limiter and token store: one multiplexed connection,
/// opened on first use and opened again after Redis restarts. Clones share it.
///
/// Its `Debug` and every error show where Redis is (`redis://host:port/db`, or the socket's
/// path), never the password of its URL.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    client: redis::Client,
    timeout: Duration,
    /// Made on first use: making it spawns a task, which needs the caller's tokio runtime.
    manager: tokio::sync::OnceCell<ConnectionManager>,
    /// Where Redis is, without credentials.
    address: String,
    /// The URL's password, removed from every error text.
    password: Option<Secret>,
}

impl RedisConnection {
    /// A connection to the Redis at `target`: a URL (`redis://[:password@]host:port[/db]`,
    /// `redis+unix:///path/to/redis.sock[?pass=...]`) or any other [`IntoConnectionInfo`]. No
    /// connection is made until the first command, so this works while Redis is down.
    ///
    /// ```
    /// use lead_intake::shared::RedisConnection;
    /// let redis = RedisConnection::open("redis://:hunter22@127.0.0.1:6379/2")?;
    /// assert_eq!(redis.address(), "redis://127.0.0.1:6379/2");
    /// assert!(!format!("{redis:?}").contains("hunter22"));
    /// assert!(RedisConnection::open("not a url").is_err());
    /// # Ok::<(), lead_intake::shared::SharedError>(())
    /// ```
    pub fn open(target: impl IntoConnectionInfo) -> Result<Self, SharedError> {
        let info = target.into_connection_info().map_err(|_| {
            SharedError::Invalid("the Redis address is not usable (expected redis://host:port/db or redis+unix:///path)")
        })?;
        let client = redis::Client::open(info).map_err(|_| {
            SharedError::Invalid("the Redis address is not usable (expected redis://host:port/db or redis+unix:///path)")
        })?;
        Ok(Self::from_client(client))
    }

    /// A connection through a [`redis::Client`] you configured yourself.
    pub fn from_client(client: redis::Client) -> Self {
        let info = client.get_connection_info();
        let db = info.redis_settings().db();
        let address = match info.addr() {
            ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{db}"),
            ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{db}"),
            ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
            // `ConnectionAddr` may grow: its Display has no credentials.
            other => other.to_string(),
        };
        let password = info.redis_settings().password().map(Secret::new);
        Self {
            inner: Arc::new(ConnectionInner {
                client,
                timeout: DEFAULT_TIMEOUT,
                manager: tokio::sync::OnceCell::new(),
                address,
                password,
            }),
        }
    }

    /// How long connecting, and then each command, may take before it fails with
    /// [`SharedError::Unavailable`] (default 2 seconds). A command that timed out may still have
    /// run in Redis: a limiter place taken that way is never used and leaves the window by
    /// itself, which only lowers the rate. Returns a new, unused connection.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lead_intake::shared::RedisConnection;
    /// let redis = RedisConnection::open("redis://127.0.0.1")?.with_timeout(Duration::from_millis(500));
    /// assert_eq!(redis.timeout(), Duration::from_millis(500));
    /// # Ok::<(), lead_intake::shared::SharedError>(())
    /// ```
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(ConnectionInner {
                client: self.inner.client.clone(),
                timeout,
                manager: tokio::sync::OnceCell::new(),
                address: self.inner.address.clone(),
                password: self.inner.password.clone(),
            }),
        }
    }

    /// Where Redis is, without credentials: `redis://host:port/db`, `rediss://...` or
    /// `unix:/path`.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The timeout of connecting and of each command ([`with_timeout`](Self::with_timeout)).
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The connection, made on first use (no I/O: it connects on its first command).
    async fn manager(&self, key: &str) -> Result<ConnectionManager, SharedError> {
        let inner = &self.inner;
        let manager = inner
            .manager
            .get_or_try_init(|| async {
                // One attempt per command: the limiter and the token store decide themselves
                // when to try again (and a waiting request must not hang in a reconnect loop).
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(inner.timeout))
                    .set_response_timeout(Some(inner.timeout));
                ConnectionManager::new_lazy_with_config(inner.client.clone(), config)
            })
            .await
            .map_err(|e| self.error(key, e))?;
        Ok(manager.clone())
    }

    /// Runs `script` and decodes its answer; a failure becomes a [`SharedError`] about `key`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        key: &str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, SharedError> {
        let mut manager = self.manager(key).await?;
        invocation
            .invoke_async(&mut manager)
            .await
            .map_err(|e| self.error(key, e))
    }

    /// A Redis failure as our error, its text without the password.
    fn error(&self, key: &str, error: RedisError) -> SharedError {
        let text = error.to_string();
        let reason = match &self.inner.password {
            Some(password) => crate::secret::redact(&text, [password.expose()]).into_owned(),
            None => text,
        };
        let at = self.inner.address.clone();
        let key = key.to_string();
        if is_unavailable(&error) {
            SharedError::Unavailable { at, key, reason }
        } else {
            SharedError::Refused { at, key, reason }
        }
    }

    fn corrupt(&self, key: &str, problem: impl Into<String>) -> SharedError {
        SharedError::Corrupt {
            at: self.inner.address.clone(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("address", &self.inner.address)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// A failure that may pass: Redis is down, restarting, loading its data, or too slow.
fn is_unavailable(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
            )
        )
}

/// A failure of the shared limiter or token store. Its texts say what failed and where (Redis's
/// address without credentials, and the key), and never carry a password or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// Redis cannot be reached, or did not answer in time, or is not ready (restarting, loading
    /// its data). Nothing was granted or stored as far as this process knows; trying again
    /// later may work.
    #[error("Redis at {at} is unavailable for `{key}`: {reason}")]
    Unavailable {
        /// Where Redis is, without credentials.
        at: String,
        /// The key (the name given to the limiter or store, with its suffix).
        key: String,
        /// Redis's or the connection's own words, without the password.
        reason: String,
    },
    /// Redis answered with an error: wrong credentials, no permission for scripts, or a key of
    /// that name that holds something else. Trying again will not help.
    #[error("Redis at {at} refused the command on `{key}`: {reason}")]
    Refused {
        /// Where Redis is, without credentials.
        at: String,
        /// The key.
        key: String,
        /// Redis's own words, without the password.
        reason: String,
    },
    /// A key holds data this module did not write (or wrote in a form it no longer reads).
    #[error("`{key}` in Redis at {at} is not what lead-intake stores there: {problem}")]
    Corrupt {
        /// Where Redis is, without credentials.
        at: String,
        /// The key.
        key: String,
        /// What is wrong, without quoting the data (it may hold a token).
        problem: String,
    },
    /// A setting that cannot work (zero requests, an empty name, a share outside (0, 1]).
    #[error("invalid shared setting: {0}")]
    Invalid(&'static str),
}

impl SharedError {
    /// True for [`SharedError::Unavailable`]: the failure may pass.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SharedError::Unavailable { .. })
    }
}

/// Checks a user's key name: the `{name}` hash tag must be the whole name.
fn check_name(name: &str) -> Result<(), SharedError> {
    if name.trim().is_empty() {
        return Err(SharedError::Invalid("the key name is empty"));
    }
    if name.contains(['{', '}']) {
        return Err(SharedError::Invalid(
            "the key name must not contain `{` or `}` (it becomes the keys' {hash tag})",
        ));
    }
    Ok(())
}
