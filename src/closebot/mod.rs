//! CloseBot: the agency's sources (its connected CRMs).
//!
//! [`Client`] and the [`types`] are generated from `openapi/closebot.yaml`. Build a client with
//! [`Client::from_api_key`] (or [`Client::builder`]) and finish each call with
//! [`ResponseExt`](crate::error::ResponseExt): the [quickstart](crate#quickstart) on the crate's
//! front page ends with a CloseBot call; its sources stream with `list_sources_pager`
//! (`lead_intake::pagination`).

mod generated {
    #![allow(clippy::all, missing_docs, unused_imports, dead_code, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/closebot.rs"));
}
pub use generated::{ByteStream, Client, ClientInfo, ResponseValue, builder};

/// The answer types of the API, generated from its specification (no CloseBot call takes a
/// body). Each also has typify's `builder()`, undocumented in the generated code, which checks
/// required fields only at run time (`try_into()`); it is there for building an answer by hand,
/// in a test for instance.
pub mod types {
    #[allow(unused_imports)] // empty when the spec has no x-extensible-enum
    pub use super::generated::extensible::*;
    pub use super::generated::types::*;
}

use std::sync::Arc;

impl crate::list::ListItemType for types::Source {}

impl types::SourcePage {
    /// The sources of the page (`results`): those that decoded, derefs to a slice;
    /// [`Items::unrecognized`](crate::list::Items::unrecognized) has the others.
    pub fn results(&self) -> &crate::list::Items<types::Source> {
        &self.results
    }

    /// The sources of the page, owned.
    pub fn into_results(self) -> crate::list::Items<types::Source> {
        self.results
    }
}

use reqwest::header::{AUTHORIZATION, HeaderName};

use crate::auth::FixedHeader;
use crate::builder::Common;
use crate::config::ConfigError;
use crate::error::ProblemSummary;
use crate::secret::Secret;
use crate::transport::{Pipeline, operation_id};

/// CloseBot's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.closebot.com";

/// An error from a CloseBot call.
pub type Error = crate::error::ApiError<types::Problem>;

/// How the API key is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyHeader {
    /// `X-CB-KEY: <key>`, as CloseBot's API reference shows. The default.
    #[default]
    XCbKey,
    /// `Authorization: Key <key>`, as a CloseBot help-centre page shows.
    AuthorizationKey,
}

/// What the CloseBot client carries besides its base URL: the API key, rate limiter and retry
/// policy, shared by its clones. `Debug` redacts the key.
#[derive(Clone, Debug)]
pub struct ClientState {
    pipeline: Arc<Pipeline>,
}

/// Builds a CloseBot [`Client`].
///
/// Defaults: `https://api.closebot.com`, the key in `X-CB-KEY`, no rate limit (CloseBot
/// documents none), [`RetryPolicy::default`](crate::retry::RetryPolicy::default).
///
/// ```
/// use lead_intake::closebot::{Client, KeyHeader};
/// let client = Client::builder()
///     .api_key("cb-key")
///     .key_header(KeyHeader::AuthorizationKey)
///     .rate_limiter(lead_intake::ratelimit::RateLimiter::per_second(10)?)
///     .build()?;
/// # let _ = client;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
#[derive(Debug)]
pub struct ClientBuilder {
    api_key: Option<Secret>,
    base_url: String,
    key_header: KeyHeader,
    common: Common,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: DEFAULT_BASE_URL.to_string(),
            key_header: KeyHeader::default(),
            common: Common::new(None),
        }
    }
}

impl ClientBuilder {
    /// The agency's API key.
    pub fn api_key(mut self, api_key: impl Into<Secret>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// Another base URL. Plain `http://` is accepted only for loopback hosts unless
    /// [`ClientBuilder::allow_insecure_http`] is set.
    pub fn base_url(mut self, base_url: &str) -> Self {
        self.base_url = base_url.to_string();
        self
    }

    /// How the key is sent (default `X-CB-KEY`).
    pub fn key_header(mut self, key_header: KeyHeader) -> Self {
        self.key_header = key_header;
        self
    }

    crate::builder::builder_setters! {
        credential: "API key",
        default_limiter: "none, as CloseBot documents no limit",
        redirects: "and sends the `X-CB-KEY` header there (it drops only the standard `Authorization` header)",
        example: "lead_intake::closebot::Client::builder().api_key(\"cb-api-key\")",
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<Client, ConfigError> {
        let api_key = self.api_key.ok_or(ConfigError::Missing {
            what: "the API key",
        })?;
        let (name, prefix) = match self.key_header {
            KeyHeader::XCbKey => (HeaderName::from_static("x-cb-key"), ""),
            KeyHeader::AuthorizationKey => (AUTHORIZATION, "Key "),
        };
        let connection = self.common.connect(&self.base_url)?;
        let key = FixedHeader::new(name, prefix, api_key, "API key")?;
        let pipeline = connection.pipeline(Arc::new(key));
        Ok(Client::new_with_client(
            &connection.base_url,
            connection.http,
            ClientState { pipeline },
        ))
    }
}

impl Client {
    /// A [`ClientBuilder`] with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client for `https://api.closebot.com` with the agency's API key.
    ///
    /// ```
    /// let client = lead_intake::closebot::Client::from_api_key("my-secret-api-key")?;
    /// assert!(!format!("{client:?}").contains("my-secret-api-key"));
    /// # Ok::<(), lead_intake::ConfigError>(())
    /// ```
    pub fn from_api_key(api_key: impl Into<Secret>) -> Result<Self, ConfigError> {
        Self::builder().api_key(api_key).build()
    }

    /// A client for another base URL (plain `http://` only on loopback hosts). The arguments
    /// come in the order of [`kommo::Client::from_base_url`](crate::kommo::Client::from_base_url):
    /// where, then who.
    ///
    /// ```
    /// let client = lead_intake::closebot::Client::from_base_url("http://127.0.0.1:8080", "cb-key")?;
    /// # let _ = client;
    /// # Ok::<(), lead_intake::ConfigError>(())
    /// ```
    pub fn from_base_url(base_url: &str, api_key: impl Into<Secret>) -> Result<Self, ConfigError> {
        Self::builder().api_key(api_key).base_url(base_url).build()
    }

    /// The key header form and your own `reqwest::Client` (base URL first, as in
    /// [`from_base_url`](Self::from_base_url)).
    pub fn with_options(
        base_url: &str,
        api_key: impl Into<Secret>,
        key_header: KeyHeader,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        Self::builder()
            .api_key(api_key)
            .base_url(base_url)
            .key_header(key_header)
            .http_client(http)
            .build()
    }
}

impl Client {
    /// The secrets of the client's credentials, for errors made outside a call (a pager's).
    pub(crate) fn redactions(&self) -> crate::secret::Redactions {
        self.inner().pipeline.redactions()
    }
}

impl progenitor_client::ClientHooks<ClientState> for Client {
    /// The API key, the rate limiter (if any) and retries: see [`crate::retry`].
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

impl ProblemSummary for types::Problem {
    fn is_problem_document(&self) -> bool {
        match self {
            types::Problem::String(text) => !text.trim().is_empty(),
            types::Problem::ProblemDetails(p) => {
                p.title.is_some() || p.detail.is_some() || p.status.is_some() || p.type_.is_some()
            }
        }
    }

    fn summary(&self) -> String {
        match self {
            types::Problem::String(text) => text.clone(),
            types::Problem::ProblemDetails(p) => match (&p.title, &p.detail) {
                (Some(t), Some(d)) => format!("{t}: {d}"),
                (Some(s), None) | (None, Some(s)) => s.clone(),
                (None, None) => "no title or detail".to_string(),
            },
        }
    }
}
