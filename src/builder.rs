//! What the two clients' builders share: the HTTP client, plain-HTTP permission, rate limiter
//! and retry policy (their setters, [`builder_setters!`]), and turning them with the
//! credentials into the base URL, HTTP client and [`Pipeline`] of a client ([`Common::connect`]).

use std::sync::Arc;

use crate::auth::Authorizer;
use crate::config::{self, ConfigError};
use crate::ratelimit::RateLimiter;
use crate::retry::RetryPolicy;
use crate::transport::Pipeline;

/// The settings both builders take alike.
#[derive(Debug)]
pub(crate) struct Common {
    pub(crate) allow_insecure: bool,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) retry: RetryPolicy,
    pub(crate) http: Option<reqwest::Client>,
}

impl Common {
    /// The defaults, with the API's default limiter.
    pub(crate) fn new(limiter: Option<RateLimiter>) -> Self {
        Self {
            allow_insecure: false,
            limiter,
            retry: RetryPolicy::default(),
            http: None,
        }
    }

    /// Checks `base_url` and picks the HTTP client (the default one unless one was given).
    pub(crate) fn connect(self, base_url: &str) -> Result<Connection, ConfigError> {
        let base_url = config::base_url(base_url, self.allow_insecure)?;
        let http = match self.http {
            Some(http) => http,
            None => config::http_client()?,
        };
        Ok(Connection {
            base_url,
            http,
            limiter: self.limiter,
            retry: self.retry,
        })
    }
}

/// A client's checked base URL, HTTP client, limiter and retry policy, before its credentials.
pub(crate) struct Connection {
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) retry: RetryPolicy,
}

impl Connection {
    /// The pipeline of the client's requests, with its credentials.
    pub(crate) fn pipeline(&self, authorizer: Arc<dyn Authorizer>) -> Arc<Pipeline> {
        Pipeline::new(authorizer, self.limiter.clone(), self.retry)
    }
}

/// The setters of [`Common`] for a builder with a `common: Common` field, with the docs that
/// differ per API: the credential's name, the default limiter, and what reqwest's own
/// redirect policy would do with the credential.
macro_rules! builder_setters {
    (credential: $credential:literal, default_limiter: $limiter:literal, redirects: $redirects:literal $(,)?) => {
        #[doc = concat!("Accept plain `http://` on any host (the ", $credential, " then travels unencrypted).")]
        pub fn allow_insecure_http(mut self) -> Self {
            self.common.allow_insecure = true;
            self
        }

        #[doc = concat!(
            "The client-side rate limiter (default: ", $limiter, "); pass a clone of one limiter ",
            "to several clients to share its budget, or a shared one (e.g. a ",
            "`lead_intake::shared::RedisRateLimit`, feature `redis`) to share it with other processes."
        )]
        pub fn rate_limiter(mut self, limiter: impl Into<$crate::ratelimit::RateLimiter>) -> Self {
            self.common.limiter = Some(limiter.into());
            self
        }

        /// The retry policy; see [`crate::retry`].
        pub fn retry(mut self, retry: $crate::retry::RetryPolicy) -> Self {
            self.common.retry = retry;
            self
        }

        /// Your own `reqwest::Client` (proxies, timeouts, TLS).
        ///
        /// Its redirect policy is yours: the default client follows redirects only within the
        #[doc = concat!("base URL's origin, while reqwest's own default follows them to any host ", $redirects, ".")]
        pub fn http_client(mut self, http: reqwest::Client) -> Self {
            self.common.http = Some(http);
            self
        }
    };
}
pub(crate) use builder_setters;
