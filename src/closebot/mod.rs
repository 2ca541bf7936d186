//! CloseBot: the agency's sources (its connected CRMs).
//!
//! [`Client`] and the [`types`] are generated from `openapi/closebot.yaml`.
//!
//! ```no_run
//! use lead_intake::prelude::*;
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let closebot = lead_intake::closebot::Client::from_api_key("cb-key")?;
//! let page = closebot.list_sources().page(0).page_size(100).send().body().await?;
//! println!("{} sources", page.total.unwrap_or_default());
//! # Ok(()) }
//! ```

mod generated {
    #![allow(clippy::all, missing_docs, unused_imports, dead_code, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/closebot.rs"));
}
pub use generated::{ByteStream, Client, ClientInfo, ResponseValue, builder};

/// The request and response types of the API, generated from its specification.
pub mod types {
    #[allow(unused_imports)] // empty when the spec has no x-extensible-enum
    pub use super::generated::extensible::*;
    pub use super::generated::types::*;
}

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};

use crate::Secret;
use crate::config::{self, ConfigError};
use crate::error::ProblemSummary;

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

/// What the CloseBot client carries besides its base URL: the API key. `Debug` redacts it.
#[derive(Clone)]
pub struct ClientState {
    header: (HeaderName, HeaderValue),
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientState")
            .field(self.header.0.as_str(), &"[redacted]")
            .finish()
    }
}

impl Client {
    /// A client for `https://api.closebot.com` with the agency's API key.
    ///
    /// ```
    /// let client = lead_intake::closebot::Client::from_api_key("my-secret-api-key")?;
    /// assert!(!format!("{client:?}").contains("my-secret-api-key"));
    /// # Ok::<(), lead_intake::ConfigError>(())
    /// ```
    pub fn from_api_key(api_key: impl Into<Secret>) -> Result<Self, ConfigError> {
        Self::from_api_key_with_base_url(api_key, DEFAULT_BASE_URL)
    }

    /// A client for another base URL (plain `http://` only on loopback hosts).
    pub fn from_api_key_with_base_url(
        api_key: impl Into<Secret>,
        base_url: &str,
    ) -> Result<Self, ConfigError> {
        Self::build(
            api_key.into(),
            base_url,
            KeyHeader::default(),
            config::http_client()?,
        )
    }

    /// Full control: the key header form and your own `reqwest::Client`.
    pub fn with_options(
        api_key: impl Into<Secret>,
        base_url: &str,
        key_header: KeyHeader,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        Self::build(api_key.into(), base_url, key_header, http)
    }

    fn build(
        api_key: Secret,
        base_url: &str,
        key_header: KeyHeader,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let base_url = config::base_url(base_url, false)?;
        let header = match key_header {
            KeyHeader::XCbKey => (
                HeaderName::from_static("x-cb-key"),
                config::secret_header("", &api_key, "API key")?,
            ),
            KeyHeader::AuthorizationKey => (
                AUTHORIZATION,
                config::secret_header("Key ", &api_key, "API key")?,
            ),
        };
        Ok(Self::new_with_client(
            &base_url,
            http,
            ClientState { header },
        ))
    }
}

impl progenitor_client::ClientHooks<ClientState> for Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        _info: &progenitor_client::OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        let (name, value) = &self.inner().header;
        request.headers_mut().insert(name.clone(), value.clone());
        Ok(())
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
