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
//! for source in sources.embedded.map(|e| e.sources).unwrap_or_default() {
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
}

mod leads;
mod problem;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};

use crate::Secret;
use crate::config::{self, ConfigError};

/// An error from a Kommo call: its problem document, an unexpected answer, a decoding failure
/// or a transport failure.
pub type Error = crate::error::ApiError<types::Problem>;

/// What the Kommo client carries besides its base URL: the credentials. `Debug` redacts them.
#[derive(Clone)]
pub struct ClientState {
    authorization: HeaderValue,
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientState")
            .field("authorization", &"Bearer [redacted]")
            .finish()
    }
}

/// Kommo answers hal+json and problem+json; say so (a strict server refuses bare JSON).
const ACCEPT_VALUE: &str = "application/hal+json, application/problem+json, application/json;q=0.9";

impl Client {
    /// A client for the account at `https://{subdomain}.kommo.com` with an OAuth access token or
    /// a private integration's long-lived token.
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
        let subdomain = config::subdomain(subdomain)?;
        Self::from_base_url(&format!("https://{subdomain}.kommo.com"), token)
    }

    /// A client for a Russian amoCRM account at `https://{subdomain}.amocrm.ru`.
    pub fn from_amocrm_subdomain(
        subdomain: &str,
        token: impl Into<Secret>,
    ) -> Result<Self, ConfigError> {
        let subdomain = config::subdomain(subdomain)?;
        Self::from_base_url(&format!("https://{subdomain}.amocrm.ru"), token)
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
        Self::build(base_url, token.into(), false, config::http_client()?)
    }

    /// Like [`Client::from_base_url`], but also accepts plain `http://` on any host.
    pub fn from_base_url_insecure(
        base_url: &str,
        token: impl Into<Secret>,
    ) -> Result<Self, ConfigError> {
        Self::build(base_url, token.into(), true, config::http_client()?)
    }

    /// Like [`Client::from_base_url`], with your own `reqwest::Client` (proxies, timeouts, TLS).
    pub fn from_base_url_with_client(
        base_url: &str,
        token: impl Into<Secret>,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        Self::build(base_url, token.into(), false, http)
    }

    fn build(
        base_url: &str,
        token: Secret,
        allow_insecure: bool,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let base_url = config::base_url(base_url, allow_insecure)?;
        let authorization = config::secret_header("Bearer ", &token, "token")?;
        Ok(Self::new_with_client(
            &base_url,
            http,
            ClientState { authorization },
        ))
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
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.inner().authorization.clone());
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_VALUE));
        Ok(())
    }
}
