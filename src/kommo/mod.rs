//! Kommo CRM v4: lead sources, widgets and incoming leads.
//!
//! [`Client`] and the request/response [`types`] are generated from `openapi/kommo.yaml`. Build a
//! client with [`Client::from_subdomain`] (or [`Client::from_base_url`]), call an operation, and
//! finish it with [`crate::prelude::ResponseExt`]:
//!
//! ```no_run
//! use lead_intake::prelude::*;
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let kommo = lead_intake::kommo::Client::from_subdomain("mycompany", "long-lived-token")?;
//! let sources = kommo.list_sources().send().or_empty().await?;
//! for source in sources.sources() {
//!     println!("{} {:?}", source.id, source.name);
//! }
//! # Ok(()) }
//! ```

mod generated {
    #![allow(clippy::all, missing_docs, unused_imports, dead_code, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/kommo.rs"));
}
pub use generated::{ByteStream, Client, ClientInfo, ResponseValue, builder};

/// The request and response types of the API, generated from its specification.
pub mod types {
    #[allow(unused_imports)] // empty when the spec has no x-extensible-enum
    pub use super::generated::extensible::*;
    pub use super::generated::types::*;
    pub use super::leads::{
        IncomingLead, IncomingLeadMetadata, UnrecognizedMetadata, UnrecognizedMetadataReason,
    };
    pub use super::widget_settings::WidgetSettings;
    pub use crate::wire::{Amount, IntOrString, WidgetRating};
}

mod continue_bot;
pub use continue_bot::{MAX_BUTTONS, MAX_HANDLERS, MAX_SHOW_TEXT};
mod leads;
mod lists;
mod problem;
mod requests;
mod widget_settings;

use std::sync::Arc;

use reqwest::header::{ACCEPT, HeaderValue};

use crate::Secret;
use crate::config::{self, ConfigError};
use crate::oauth::{OAuth, TokenPair};
use crate::ratelimit::RateLimiter;
use crate::retry::RetryPolicy;
use crate::transport::{Auth, Pipeline};

/// An error from a Kommo call: its problem document, an unexpected answer, a decoding failure
/// or a transport failure.
pub type Error = crate::error::ApiError<types::Problem>;

/// What the Kommo client carries besides its base URL: credentials, rate limiter and retry
/// policy, shared by every clone of the client. `Debug` redacts the credentials.
#[derive(Clone, Debug)]
pub struct ClientState {
    pipeline: Arc<Pipeline>,
}

/// Kommo answers hal+json and problem+json; say so (a strict server refuses bare JSON).
const ACCEPT_VALUE: &str = "application/hal+json, application/problem+json, application/json;q=0.9";

/// Builds a Kommo [`Client`]: the account, the credentials, and how requests are throttled and
/// retried.
///
/// Defaults: Kommo's rate limit of 7 requests per second ([`RateLimiter::kommo_default`],
/// shared by the client's clones), [`RetryPolicy::default`], and an HTTP client with a 15 s
/// connect timeout and a 60 s request timeout.
///
/// ```
/// use lead_intake::ratelimit::RateLimiter;
/// use lead_intake::retry::RetryPolicy;
///
/// let client = lead_intake::kommo::Client::builder()
///     .subdomain("mycompany")
///     .token("long-lived-token")
///     .rate_limiter(RateLimiter::per_second(5)?)
///     .retry(RetryPolicy::default().with_max_attempts(3))
///     .build()?;
/// assert_eq!(lead_intake::prelude::ClientInfo::baseurl(&client), "https://mycompany.kommo.com");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
#[derive(Debug)]
pub struct ClientBuilder {
    base_url: Result<Option<String>, ConfigError>,
    allow_insecure: bool,
    credentials: Option<Credentials>,
    limiter: Option<RateLimiter>,
    retry: RetryPolicy,
    http: Option<reqwest::Client>,
}

#[derive(Debug)]
enum Credentials {
    Token(Secret),
    OAuth(OAuth),
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base_url: Ok(None),
            allow_insecure: false,
            credentials: None,
            limiter: Some(RateLimiter::kommo_default()),
            retry: RetryPolicy::default(),
            http: None,
        }
    }
}

impl ClientBuilder {
    /// The account at `https://{subdomain}.kommo.com`. The subdomain must be a single DNS label
    /// (`mycompany`, not `mycompany.kommo.com`).
    pub fn subdomain(mut self, subdomain: &str) -> Self {
        self.base_url =
            config::subdomain(subdomain).map(|s| Some(format!("https://{s}.kommo.com")));
        self
    }

    /// A Russian amoCRM account at `https://{subdomain}.amocrm.ru`.
    pub fn amocrm_subdomain(mut self, subdomain: &str) -> Self {
        self.base_url =
            config::subdomain(subdomain).map(|s| Some(format!("https://{s}.amocrm.ru")));
        self
    }

    /// Any base URL (e.g. a test server). Plain `http://` is accepted only for loopback hosts
    /// unless [`ClientBuilder::allow_insecure_http`] is set.
    pub fn base_url(mut self, base_url: &str) -> Self {
        self.base_url = Ok(Some(base_url.to_string()));
        self
    }

    /// Accept plain `http://` on any host (the token then travels unencrypted).
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure = true;
        self
    }

    /// A long-lived token (a private integration's) or an access token you refresh yourself.
    pub fn token(mut self, token: impl Into<Secret>) -> Self {
        self.credentials = Some(Credentials::Token(token.into()));
        self
    }

    /// OAuth 2.0 with automatic refresh; see [`crate::oauth`].
    pub fn oauth(mut self, oauth: OAuth) -> Self {
        self.credentials = Some(Credentials::OAuth(oauth));
        self
    }

    /// The rate limiter; pass a clone of one limiter to several clients to share its budget.
    pub fn rate_limiter(mut self, limiter: RateLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// No client-side rate limiting (Kommo blocks accounts that keep exceeding 7 requests per
    /// second: only do this when something else throttles).
    pub fn no_rate_limit(mut self) -> Self {
        self.limiter = None;
        self
    }

    /// The retry policy; see [`crate::retry`].
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Your own `reqwest::Client` (proxies, timeouts, TLS).
    ///
    /// Its redirect policy is yours: the default client follows redirects only within the base
    /// URL's origin, while reqwest's own default follows them to any host (dropping the
    /// `Authorization` header there, but not the body of a 307 or 308).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<Client, ConfigError> {
        let base_url = self.base_url?.ok_or(ConfigError::Missing {
            what: "the account (subdomain or base_url)",
        })?;
        let base_url = config::base_url(&base_url, self.allow_insecure)?;
        let http = match self.http {
            Some(http) => http,
            None => config::http_client()?,
        };
        let auth = match self.credentials {
            None => {
                return Err(ConfigError::Missing {
                    what: "the credentials (token or oauth)",
                });
            }
            Some(Credentials::Token(token)) => Auth::Header(
                reqwest::header::AUTHORIZATION,
                config::secret_header("Bearer ", &token, "token")?,
                crate::secret::Redactions::new(vec![token]),
            ),
            Some(Credentials::OAuth(oauth)) => Auth::OAuth(Box::new(crate::oauth::Session::new(
                oauth,
                &base_url,
                http.clone(),
                self.limiter.clone(),
                self.retry,
            )?)),
        };
        let pipeline = Pipeline::new(auth, self.limiter, self.retry);
        Ok(Client::new_with_client(
            &base_url,
            http,
            ClientState { pipeline },
        ))
    }
}

impl Client {
    /// A [`ClientBuilder`] with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client for the account at `https://{subdomain}.kommo.com` with an OAuth access token or
    /// a private integration's long-lived token, and the default limiter and retries.
    ///
    /// The subdomain must be a single DNS label (`mycompany`, not `mycompany.kommo.com`).
    ///
    /// ```
    /// use lead_intake::prelude::*;
    /// let client = lead_intake::kommo::Client::from_subdomain("mycompany", "token")?;
    /// assert_eq!(client.baseurl(), "https://mycompany.kommo.com");
    /// assert!(lead_intake::kommo::Client::from_subdomain("evil.com/x", "token").is_err());
    /// # Ok::<(), lead_intake::ConfigError>(())
    /// ```
    pub fn from_subdomain(subdomain: &str, token: impl Into<Secret>) -> Result<Self, ConfigError> {
        Self::builder().subdomain(subdomain).token(token).build()
    }

    /// A client for a Russian amoCRM account at `https://{subdomain}.amocrm.ru`.
    pub fn from_amocrm_subdomain(
        subdomain: &str,
        token: impl Into<Secret>,
    ) -> Result<Self, ConfigError> {
        Self::builder()
            .amocrm_subdomain(subdomain)
            .token(token)
            .build()
    }

    /// A client for any base URL (e.g. a test server). Plain `http://` is accepted only for
    /// loopback hosts; see [`Client::from_base_url_insecure`].
    ///
    /// ```
    /// use lead_intake::prelude::*;
    /// let client = lead_intake::kommo::Client::from_base_url("http://127.0.0.1:8080/", "t")?;
    /// assert_eq!(client.baseurl(), "http://127.0.0.1:8080");
    /// assert!(lead_intake::kommo::Client::from_base_url("http://example.com", "t").is_err());
    /// # Ok::<(), lead_intake::ConfigError>(())
    /// ```
    pub fn from_base_url(base_url: &str, token: impl Into<Secret>) -> Result<Self, ConfigError> {
        Self::builder().base_url(base_url).token(token).build()
    }

    /// Like [`Client::from_base_url`], but also accepts plain `http://` on any host.
    pub fn from_base_url_insecure(
        base_url: &str,
        token: impl Into<Secret>,
    ) -> Result<Self, ConfigError> {
        Self::builder()
            .base_url(base_url)
            .allow_insecure_http()
            .token(token)
            .build()
    }

    /// Like [`Client::from_base_url`], with your own `reqwest::Client` (proxies, timeouts, TLS).
    pub fn from_base_url_with_client(
        base_url: &str,
        token: impl Into<Secret>,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        Self::builder()
            .base_url(base_url)
            .token(token)
            .http_client(http)
            .build()
    }

    /// The OAuth tokens in use (after any refresh), for a client built with OAuth.
    pub async fn oauth_tokens(&self) -> Option<TokenPair> {
        self.inner().pipeline.tokens().await
    }

    /// The rate limiter the client uses, if any (shared by its clones).
    pub fn rate_limiter(&self) -> Option<&RateLimiter> {
        self.inner().pipeline.limiter.as_ref()
    }
}

impl Client {
    /// Follows a HAL link (`_links.next`, `_links.self`, ...) and decodes the answer as `T`.
    /// `Ok(None)` is a `204 No Content`. A relative href resolves against the base URL; an
    /// absolute href to another origin is refused ([`crate::error::ApiError::InvalidLink`]):
    /// following it would send the account's token to a host you did not choose.
    ///
    /// ```no_run
    /// use lead_intake::kommo::types::WidgetList;
    /// use lead_intake::prelude::*;
    /// # async fn f(client: lead_intake::kommo::Client) -> Result<(), lead_intake::kommo::Error> {
    /// let first = client.list_widgets().limit(250).send().or_empty().await?;
    /// if let Some(next) = first.links.as_ref().and_then(|l| l.next.as_ref()) {
    ///     let second: Option<WidgetList> = client.follow(next.href.as_deref().unwrap_or("")).await?;
    ///     # let _ = second;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn follow<T>(
        &self,
        href: &str,
    ) -> Result<Option<T>, crate::error::ApiError<T::Problem>>
    where
        T: serde::de::DeserializeOwned + crate::error::ApiResponse,
    {
        crate::links::follow::<_, ClientState, T>(self, href).await
    }
}

impl progenitor_client::ClientHooks<ClientState> for Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        _info: &progenitor_client::OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static(ACCEPT_VALUE));
        Ok(())
    }

    /// Credentials, the rate limiter, retries and the OAuth refresh: see [`crate::retry`].
    async fn exec(
        &self,
        request: reqwest::Request,
        _info: &progenitor_client::OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        self.inner().pipeline.execute(self.client(), request).await
    }
}
