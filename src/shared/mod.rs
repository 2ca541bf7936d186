//! Work shared between processes, through Redis (feature `redis`): one rate limit and one OAuth
//! token pair for every worker of an integration ([`RedisRateLimit`], [`RedisTokenStore`],
//! [`RedisSeenTokens`] over a [`RedisConnection`]); the guide below.
//!
#![doc = "[BENCHMARKS.md]: crate::_texts::benchmarks"]
#![doc = include_str!("../guides/shared.md")]

mod limit;
mod seen;
#[cfg(feature = "redis-tls")]
mod tls;
mod tokens;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError, ServerErrorKind};

pub use crate::oauth::{RefreshLock, Saved, StoredTokens, TokenStore};
pub use limit::{RedisRateLimit, SharedPermit};
pub use seen::RedisSeenTokens;
#[cfg(feature = "redis-tls")]
pub use tls::RedisTls;
pub use tokens::RedisTokenStore;

use crate::Secret;

/// How long connecting, and waiting for one answer, may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The oldest Redis the Lua scripts run on: `ZADD ... LT` (finish.lua) came in Redis 6.2.0.
/// Every other command they use is older (`HSET` with several fields 4.0, `SET ... PX` 2.6.12,
/// `TIME` before writes needs 5.0's script effects replication).
///
/// Checked when a [`RedisConnection`] first talks to Redis, and again after each reconnection:
/// an older Redis fails every call with [`SharedError::UnsupportedVersion`].
pub const MIN_REDIS_VERSION: &str = "6.2.0";

/// [`MIN_REDIS_VERSION`] as numbers.
const MIN_VERSION: (u32, u32, u32) = (6, 2, 0);

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
    /// The server's version was checked on the current connection. Cleared by every failure
    /// that may have dropped the connection, so a reconnection (perhaps to another server behind
    /// the same address) is checked again.
    version_checked: AtomicBool,
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
    ///
    /// With the feature `redis-tls`, `rediss://host:port[/db]` connects with TLS, trusting the
    /// system's certificate authorities; [`open_tls`](Self::open_tls) takes other settings.
    /// Without it, a `rediss://` URL is refused with [`SharedError::Invalid`] naming the feature.
    pub fn open(target: impl IntoConnectionInfo) -> Result<Self, SharedError> {
        let info = target.into_connection_info().map_err(unusable_address)?;
        refuse_insecure(&info)?;
        let client = redis::Client::open(info).map_err(unusable_address)?;
        Ok(Self::from_client(client))
    }

    /// A `rediss://host:port[/db]` connection (TLS) with the trust and client certificate of
    /// `tls` (feature `redis-tls`). Fails with [`SharedError::Invalid`] for another kind of
    /// URL, or PEM text that holds no certificate or key; nothing is sent before the first
    /// command.
    ///
    /// ```
    /// use lead_intake::shared::{RedisConnection, RedisTls, SharedError};
    ///
    /// let redis = RedisConnection::open_tls("rediss://:hunter22@redis.example.com:6380/1", &RedisTls::new())?;
    /// assert_eq!(redis.address(), "rediss://redis.example.com:6380/1");
    /// assert!(matches!(
    ///     RedisConnection::open_tls("redis://127.0.0.1:6379", &RedisTls::new()),
    ///     Err(SharedError::Invalid(_))
    /// ));
    /// let not_pem = RedisTls::new().trust_only_pem("not a certificate");
    /// assert!(RedisConnection::open_tls("rediss://127.0.0.1:6380", &not_pem).is_err());
    /// # Ok::<(), SharedError>(())
    /// ```
    #[cfg(feature = "redis-tls")]
    pub fn open_tls(target: impl IntoConnectionInfo, tls: &RedisTls) -> Result<Self, SharedError> {
        let info = target.into_connection_info().map_err(unusable_address)?;
        if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
            return Err(SharedError::Invalid(
                "a TLS connection needs a rediss://host:port/db URL",
            ));
        }
        refuse_insecure(&info)?;
        let client =
            redis::Client::build_with_tls(info, tls.certificates()?).map_err(unusable_address)?;
        Ok(Self::from_client(client))
    }

    /// A connection through a [`redis::Client`] you configured yourself.
    pub fn from_client(client: redis::Client) -> Self {
        let info = client.get_connection_info();
        #[cfg(feature = "redis-tls")]
        if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
            // The redis crate builds rustls's configuration with the process's default crypto
            // provider, and rustls panics when there is none: the one HTTPS uses here.
            crate::config::ensure_crypto_provider();
        }
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
                version_checked: AtomicBool::new(false),
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
                version_checked: AtomicBool::new(false),
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
        let mut manager = manager.clone();
        if !inner.version_checked.load(Ordering::Acquire) {
            self.check_version(key, &mut manager).await?;
        }
        Ok(manager)
    }

    /// Asks the server its version (`INFO server`) and refuses one older than
    /// [`MIN_REDIS_VERSION`]. A server that does not say (INFO refused by an ACL or renamed, no
    /// `redis_version` line) is let through with a warning: its scripts then fail on their own
    /// if it is too old.
    async fn check_version(
        &self,
        key: &str,
        manager: &mut ConnectionManager,
    ) -> Result<(), SharedError> {
        let answer: Result<String, RedisError> =
            redis::cmd("INFO").arg("server").query_async(manager).await;
        let info = match answer {
            Ok(info) => info,
            Err(error) => {
                let error = self.error(key, error);
                if error.is_unavailable() {
                    return Err(error);
                }
                tracing::warn!(
                    target: "lead_intake::shared",
                    at = self.inner.address,
                    %error,
                    "Redis did not tell its version (INFO server): it is not checked against {MIN_REDIS_VERSION}"
                );
                self.inner.version_checked.store(true, Ordering::Release);
                return Ok(());
            }
        };
        match redis_version(&info) {
            Some((version, text)) if version < MIN_VERSION => {
                Err(SharedError::UnsupportedVersion {
                    at: self.inner.address.clone(),
                    found: text.to_string(),
                    needed: MIN_REDIS_VERSION,
                })
            }
            Some(_) => {
                self.inner.version_checked.store(true, Ordering::Release);
                Ok(())
            }
            None => {
                tracing::warn!(
                    target: "lead_intake::shared",
                    at = self.inner.address,
                    "Redis's INFO has no readable redis_version: it is not checked against {MIN_REDIS_VERSION}"
                );
                self.inner.version_checked.store(true, Ordering::Release);
                Ok(())
            }
        }
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
            // The connection may be reopened, perhaps to another server: check that one too.
            self.inner.version_checked.store(false, Ordering::Release);
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

/// A Redis address the redis crate refused. Its error is not quoted: it may hold the URL, and so
/// its password.
fn unusable_address(error: RedisError) -> SharedError {
    #[cfg(not(feature = "redis-tls"))]
    if error.kind() == ErrorKind::InvalidClientConfig && error.to_string().contains("TLS") {
        return SharedError::Invalid("rediss:// (TLS) needs lead-intake's feature `redis-tls`");
    }
    let _ = error;
    SharedError::Invalid(
        "the Redis address is not usable (expected redis://host:port/db, rediss://host:port/db or redis+unix:///path)",
    )
}

/// `rediss://...#insecure` asks the redis crate not to check the server's certificate: refused
/// (trust the server's CA with `RedisTls::trust_only_pem` instead).
fn refuse_insecure(info: &redis::ConnectionInfo) -> Result<(), SharedError> {
    match info.addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => Err(SharedError::Invalid(
            "rediss://...#insecure (no certificate check) is not supported: trust the server's CA instead",
        )),
        _ => Ok(()),
    }
}

/// A failure that may pass: Redis is down, restarting, loading its data, or too slow. A TLS
/// handshake refused over certificates is not one: it fails the same way until someone changes
/// a certificate or a setting.
fn is_unavailable(error: &RedisError) -> bool {
    #[cfg(feature = "redis-tls")]
    if tls::is_certificate_refusal(error) {
        return false;
    }
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
    /// that name that holds something else; or the TLS handshake failed over a certificate
    /// (the server's is signed by no CA this connection trusts, or is for another name, or the
    /// server refused ours). Trying again will not help.
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
    /// The Redis server is older than the scripts need ([`MIN_REDIS_VERSION`], 6.2.0): nothing
    /// was run. Upgrade Redis; trying again will not help.
    #[error(
        "Redis at {at} is version {found}; lead-intake's shared limit and token store need Redis {needed} or newer"
    )]
    UnsupportedVersion {
        /// Where Redis is, without credentials.
        at: String,
        /// The version the server reported (its `redis_version`).
        found: String,
        /// The oldest version that works: [`MIN_REDIS_VERSION`].
        needed: &'static str,
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

/// The `redis_version` line of an `INFO server` answer: the version as numbers (a missing minor
/// or patch counts as 0; a suffix such as `-rc1` is ignored) and as written. `None` when there is
/// no such line or its value does not start with a number.
fn redis_version(info: &str) -> Option<((u32, u32, u32), &str)> {
    let text = info
        .lines()
        .find_map(|line| line.trim_end_matches('\r').strip_prefix("redis_version:"))?
        .trim();
    let mut parts = text.split('.').map(|part| {
        let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        part[..digits].parse::<u32>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some(((major, minor, patch), text))
}

#[cfg(test)]
mod tests {
    use super::redis_version;

    #[test]
    fn the_version_is_read_from_info_server() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n";
        assert_eq!(redis_version(info), Some(((7, 0, 15), "7.0.15")));
        assert_eq!(
            redis_version("redis_version:6.0.16\n"),
            Some(((6, 0, 16), "6.0.16"))
        );
        assert_eq!(
            redis_version("redis_version:7.2.0-rc1\r\n"),
            Some(((7, 2, 0), "7.2.0-rc1"))
        );
        assert_eq!(redis_version("redis_version:6.2"), Some(((6, 2, 0), "6.2")));
        // Another line that merely contains the name does not count.
        assert_eq!(redis_version("valkey_redis_version:9.9.9\r\n"), None);
        assert_eq!(redis_version("# Server\r\nredis_mode:standalone\r\n"), None);
        assert_eq!(redis_version("redis_version:unknown\r\n"), None);
        assert_eq!(redis_version("redis_version:\r\n"), None);
        // A number too large for u32 is unreadable, not a panic.
        assert_eq!(redis_version("redis_version:99999999999.0.0\r\n"), None);
    }

    #[test]
    fn versions_compare_as_numbers() {
        let min = super::MIN_VERSION;
        let of = |info: &str| redis_version(info).unwrap().0;
        assert!(of("redis_version:6.0.16") < min);
        assert!(of("redis_version:6.1.99") < min);
        assert!(of("redis_version:5.0.14") < min);
        assert!(of("redis_version:6.2.0") >= min);
        assert!(of("redis_version:6.10.0") >= min);
        assert!(of("redis_version:7.0.15") >= min);
        assert!(of("redis_version:10.0.0") >= min);
    }
}
