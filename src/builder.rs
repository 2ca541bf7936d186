//! What the two clients' builders share: the HTTP client, plain-HTTP permission, rate limiter
//! and retry policy (their setters, [`builder_setters!`]), and turning them with the
//! credentials into the base URL, HTTP client and [`Pipeline`] of a client ([`Common::connect`]).

use std::sync::Arc;

use crate::answer::AnswerLimits;
use crate::auth::Authorizer;
use crate::config::{self, ConfigError};
use crate::ratelimit::RateLimiter;
use crate::retry::{RetryPolicy, RetryRules};
use crate::transport::Pipeline;

/// The settings both builders take alike.
#[derive(Debug)]
pub(crate) struct Common {
    pub(crate) allow_insecure: bool,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) retry: RetryPolicy,
    pub(crate) rules: RetryRules,
    pub(crate) http: Option<HttpChoice>,
    pub(crate) limits: AnswerLimits,
}

impl Common {
    /// The defaults, with the API's default limiter.
    pub(crate) fn new(limiter: Option<RateLimiter>) -> Self {
        Self {
            allow_insecure: false,
            limiter,
            retry: RetryPolicy::default(),
            rules: RetryRules::default(),
            http: None,
            limits: AnswerLimits::default(),
        }
    }

    /// Checks `base_url` and picks the HTTP client (the default one unless one was given).
    pub(crate) fn connect(self, base_url: &str) -> Result<Connection, ConfigError> {
        let base_url = config::base_url(base_url, self.allow_insecure)?;
        let http = match self.http {
            Some(HttpChoice::Client(http)) => http,
            Some(HttpChoice::Extend(extend)) => extend(config::client_builder())
                // Put back after the caller's additions: it is what keeps the credentials
                // on the base URL's origin.
                .redirect(config::same_origin_redirects())
                .build()
                .map_err(ConfigError::HttpClient)?,
            None => config::http_client()?,
        };
        Ok(Connection {
            base_url,
            http,
            limiter: self.limiter,
            retry: self.retry,
            rules: self.rules,
            limits: self.limits,
        })
    }
}

/// The HTTP client a builder was given: a whole one, or additions to the default one.
pub(crate) enum HttpChoice {
    /// `http_client` on a client's builder: used as it is.
    Client(reqwest::Client),
    /// `http_client_builder` on a client's builder: applied to the default client's builder.
    Extend(Box<dyn FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync>),
}

impl std::fmt::Debug for HttpChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(http) => f.debug_tuple("Client").field(http).finish(),
            Self::Extend(_) => f.write_str("Extend(..)"),
        }
    }
}

/// A client's checked base URL, HTTP client, limiter and retry policy, before its credentials.
pub(crate) struct Connection {
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) retry: RetryPolicy,
    pub(crate) rules: RetryRules,
    pub(crate) limits: AnswerLimits,
}

impl Connection {
    /// The pipeline of the client's requests, with its credentials.
    pub(crate) fn pipeline(&self, authorizer: Arc<dyn Authorizer>) -> Arc<Pipeline> {
        Pipeline::new(
            authorizer,
            self.limiter.clone(),
            self.retry,
            self.limits,
            self.rules.clone(),
        )
    }
}

/// The setters of [`Common`] for a builder with a `common: Common` field, with the docs that
/// differ per API: the credential's name, the default limiter, and what reqwest's own
/// redirect policy would do with the credential.
macro_rules! builder_setters {
    (credential: $credential:literal, default_limiter: $limiter:literal, redirects: $redirects:literal, example: $example:literal $(,)?) => {
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

        /// Extensions of the retry table for every call of the client (default: none): statuses
        /// to retry, operations never to retry, requests safe to send again; see
        /// [`crate::retry`]. A call's [`CallOptions`](crate::options::CallOptions) can add to
        /// them.
        pub fn retry_rules(mut self, rules: $crate::retry::RetryRules) -> Self {
            self.common.rules = rules;
            self
        }

        /// The most bytes of an answer's body the client reads (default
        /// [`DEFAULT_MAX_ANSWER_SIZE`](crate::error::DEFAULT_MAX_ANSWER_SIZE), 32 MiB): every
        /// body, of operations, `follow`, pagers and the OAuth token endpoint alike. Over it the
        /// read stops at the limit and the call fails with
        /// [`AnswerError::TooLarge`](crate::error::AnswerError::TooLarge) naming the endpoint
        /// and the limit. At least 1 byte.
        ///
        /// ```
        #[doc = concat!("let client = ", $example)]
        ///     .max_answer_size(64 * 1024 * 1024)
        ///     .answer_timeout(std::time::Duration::from_secs(120))
        ///     .build()?;
        /// # let _ = client;
        /// # Ok::<(), lead_intake::ConfigError>(())
        /// ```
        pub fn max_answer_size(mut self, bytes: u64) -> Self {
            self.common.limits.max_size = bytes.max(1);
            self
        }

        /// How long an answer's body may take to arrive whole, from its headers (default
        /// [`DEFAULT_ANSWER_TIMEOUT`](crate::error::DEFAULT_ANSWER_TIMEOUT), 60 s). A server that
        /// stops sending, or sends too slowly, fails the call with
        /// [`AnswerError::TimedOut`](crate::error::AnswerError::TimedOut), which says after how
        /// long and how many bytes came. The HTTP client's own timeout (60 s for the whole
        /// request by default) still applies too.
        pub fn answer_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.limits.timeout = timeout;
            self
        }

        /// Your own `reqwest::Client`, used as it is.
        ///
        /// Its redirect policy is yours: the default client follows redirects only within the
        #[doc = concat!("base URL's origin, while reqwest's own default follows them to any host ", $redirects, ".")]
        /// To keep the default client's settings and add to them (a CA, a client certificate,
        /// a proxy), use [`http_client_builder`](Self::http_client_builder), or start from
        /// [`lead_intake::http::client_builder`](crate::http::client_builder).
        pub fn http_client(mut self, http: reqwest::Client) -> Self {
            self.common.http = Some($crate::builder::HttpChoice::Client(http));
            self
        }

        /// Adds to the default HTTP client's settings rather than replacing them: `extend` gets
        /// [`lead_intake::http::client_builder`](crate::http::client_builder) (user agent,
        /// timeouts, no proxy from the environment unless the `system-proxy` feature is on)
        /// and returns it with your additions, such as a CA, a client certificate for mutual
        /// TLS or a proxy with its credentials. The same-origin redirect policy is put back
        /// after `extend`, so the credentials never follow a redirect to another origin; a
        /// different policy takes [`http_client`](Self::http_client).
        ///
        /// ```
        /// # fn f() -> Result<(), Box<dyn std::error::Error>> {
        /// let proxy = reqwest::Proxy::https("http://proxy.internal:3128")?
        ///     .basic_auth("intake", "proxy-password");
        #[doc = concat!("let client = ", $example)]
        ///     .http_client_builder(move |http| http.proxy(proxy))
        ///     .build()?;
        /// # let _ = client;
        /// # Ok(())
        /// # }
        /// ```
        pub fn http_client_builder(
            mut self,
            extend: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
        ) -> Self {
            self.common.http = Some($crate::builder::HttpChoice::Extend(Box::new(extend)));
            self
        }
    };
}
pub(crate) use builder_setters;
