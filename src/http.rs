//! The HTTP client the clients use by default, to add to rather than replace ([`client_builder`]);
//! the guide below.
//!
#![doc = include_str!("guides/http.md")]

/// The builder of the default HTTP client, with the settings of the table above, for you to
/// add to and build.
///
/// ```
/// # fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let http = lead_intake::http::client_builder()
///     .proxy(reqwest::Proxy::all("http://proxy.internal:3128")?.basic_auth("intake", "secret"))
///     .build()?;
/// let kommo = lead_intake::kommo::Client::builder()
///     .subdomain("mycompany")
///     .token("long-lived-token")
///     .http_client(http.clone())
///     .build()?;
/// # let _ = kommo;
/// # Ok(())
/// # }
/// ```
///
/// Setting `redirect` on it replaces the same-origin policy: then the credentials follow
/// wherever a redirect leads.
pub fn client_builder() -> reqwest::ClientBuilder {
    crate::config::client_builder()
}
