//! Kommo CRM v4: lead sources, widgets and incoming leads.
//!
//! [`Client`] and the request/response [`types`] are generated from `openapi/kommo.yaml`. Build a
//! client with [`Client::from_subdomain`] (or [`Client::builder`]), call an operation, and finish
//! it with [`ResponseExt`](crate::error::ResponseExt) (in `lead_intake::prelude`): the
//! [quickstart](crate#quickstart) on the crate's front page. The guide below is on what this module
//! adds to the generated calls.
//!
#![doc = include_str!("../guides/kommo.md")]

mod generated {
    #![allow(clippy::all, missing_docs, unused_imports, dead_code, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/kommo.rs"));
}
pub use generated::{ByteStream, Client, ClientInfo, ResponseValue, builder};

/// The request and response types of the API, generated from its specification.
///
/// Build a request type with `new(..)` (its required fields, so a forgotten one is a compile
/// error) and its `with_*` setters. Each type also has typify's `builder()`, undocumented in the
/// generated code: it checks the required fields only at run time (`try_into()`, or when the call
/// is sent), for code that fills a request field by field from untyped data. Both, with
/// examples: "Typed requests" in [the module's guide](super).
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
mod decide;
pub use decide::{Decided, PriorDecision};
mod leads;
mod lists;
mod problem;
mod requests;
mod widget_settings;

use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};

use crate::auth::{Authorizer, FixedHeader};
use crate::builder::Common;
use crate::config::{self, ConfigError};
use crate::oauth::{OAuth, Session, TokenPair};
use crate::ratelimit::RateLimiter;
use crate::secret::Secret;
use crate::transport::{Pipeline, operation_id};

/// An error from a Kommo call: its problem document, an unexpected answer, a decoding failure
/// or a transport failure.
pub type Error = crate::error::ApiError<types::Problem>;

/// What the Kommo client carries besides its base URL: credentials, rate limiter and retry
/// policy, shared by every clone of the client. `Debug` redacts the credentials.
#[derive(Clone)]
pub struct ClientState {
    pipeline: Arc<Pipeline>,
    /// The OAuth session, also the pipeline's authorizer, for [`Client::oauth_tokens`].
    oauth: Option<Arc<Session>>,
}

/// Kommo answers hal+json and problem+json; say so (a strict server refuses bare JSON).
const ACCEPT_VALUE: &str = "application/hal+json, application/problem+json, application/json;q=0.9";

/// Builds a Kommo [`Client`]: the account, the credentials, and how requests are throttled and
/// retried.
///
/// Defaults: Kommo's rate limit of 7 requests per second ([`RateLimiter::kommo_default`],
/// shared by the client's clones), [`RetryPolicy::default`](crate::retry::RetryPolicy::default), and an HTTP client with a 15 s
/// connect timeout and a 60 s request timeout. Every default, client-wide and per call, is in
/// the table "Defaults" in `lead_intake::options`.
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
    credentials: Option<Credentials>,
    common: Common,
}

#[derive(Debug)]
enum Credentials {
    Token(Secret),
    OAuth(OAuth),
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The session is the pipeline's authorizer, which shows it redacted.
        f.debug_struct("ClientState")
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base_url: Ok(None),
            credentials: None,
            common: Common::new(Some(RateLimiter::kommo_default())),
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

    /// No client-side rate limiting (Kommo blocks accounts that keep exceeding 7 requests per
    /// second: only do this when something else throttles).
    pub fn no_rate_limit(mut self) -> Self {
        self.common.limiter = None;
        self
    }

    crate::builder::builder_setters! {
        credential: "token",
        default_limiter: "Kommo's 7 requests per second",
        redirects: "(dropping the `Authorization` header there, but not the body of a 307 or 308)",
        example: "lead_intake::kommo::Client::builder().subdomain(\"mycompany\").token(\"long-lived-token\")",
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<Client, ConfigError> {
        let base_url = self.base_url?.ok_or(ConfigError::Missing {
            what: "the account (subdomain or base_url)",
        })?;
        let connection = self.common.connect(&base_url)?;
        let (authorizer, oauth): (Arc<dyn Authorizer>, _) = match self.credentials {
            None => {
                return Err(ConfigError::Missing {
                    what: "the credentials (token or oauth)",
                });
            }
            Some(Credentials::Token(token)) => (
                Arc::new(FixedHeader::new(AUTHORIZATION, "Bearer ", token, "token")?),
                None,
            ),
            Some(Credentials::OAuth(oauth)) => {
                let session = Arc::new(Session::new(
                    oauth,
                    &connection.base_url,
                    connection.http.clone(),
                    connection.limiter.clone(),
                    connection.retry,
                    connection.limits,
                )?);
                (session.clone(), Some(session))
            }
        };
        let pipeline = connection.pipeline(authorizer);
        Ok(Client::new_with_client(
            &connection.base_url,
            connection.http,
            ClientState { pipeline, oauth },
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
        match &self.inner().oauth {
            Some(session) => Some(session.tokens().await),
            None => None,
        }
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

impl Client {
    /// The secrets of the client's credentials, for errors made outside a call (a pager's).
    pub(crate) fn redactions(&self) -> crate::secret::Redactions {
        self.inner().pipeline.redactions()
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
        info: &progenitor_client::OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let operation = operation_id(info);
        crate::metrics::operation(operation, request, |request| {
            self.inner()
                .pipeline
                .execute_operation(self.client(), request, operation)
        })
        .await
    }
}
