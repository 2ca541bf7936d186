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

/// Makes sure rustls has a process-wide crypto provider, for a `reqwest::Client` you build
/// yourself (`reqwest::Client::new()`, `reqwest::Client::builder()`) rather than from
/// [`client_builder`].
///
/// With the default `rustls` feature, reqwest is built without a crypto provider of its own
/// (ring's builds much faster than aws-lc-rs's, BENCHMARKS.md §5), and a reqwest client built
/// while the process has none panics ("No rustls crypto provider is configured"). Everything in
/// this crate that builds a client calls this first, so this is needed only when your code
/// builds one before any of them, for example to pass it to `http_client(..)` or
/// `lead_intake::closebot::Client::with_options`. It installs ring's provider (aws-lc-rs's with
/// the `rustls-aws-lc` feature) unless the program has installed one already, which is then
/// kept; calling it again does nothing. Without a rustls feature it does nothing.
///
/// ```
/// lead_intake::http::install_crypto_provider();
/// let http = reqwest::Client::builder().build()?;
/// let closebot = lead_intake::closebot::Client::with_options(
///     "https://api.closebot.com",
///     "cb-api-key",
///     lead_intake::closebot::KeyHeader::XCbKey,
///     http,
/// )?;
/// # let _ = closebot;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// If your program depends on reqwest with its own `rustls` feature (its default), reqwest falls
/// back to aws-lc-rs by itself and nothing panics, but aws-lc-rs is then built too.
pub fn install_crypto_provider() {
    crate::config::ensure_crypto_provider();
}
