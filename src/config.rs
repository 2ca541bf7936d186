//! Construction checks shared by both clients: base URLs, subdomains, credentials.

use reqwest::header::HeaderValue;

/// A client could not be built from the values given. Never contains a token or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The Kommo subdomain is not a single DNS label.
    #[error(
        "invalid Kommo subdomain {value:?}: {reason} (expected a single DNS label such as \"mycompany\")"
    )]
    InvalidSubdomain {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The base URL does not parse or cannot be a base.
    #[error("invalid base URL {value:?}: {reason}")]
    InvalidBaseUrl {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A plain-HTTP base URL on a host other than loopback: the token would travel in clear.
    #[error(
        "refusing the plain-HTTP base URL {value:?}: only loopback hosts may use http:// (the token would travel unencrypted)"
    )]
    InsecureBaseUrl {
        /// The value given.
        value: String,
    },
    /// The token or API key cannot be sent in an HTTP header.
    #[error("the {what} is empty or contains characters that cannot be sent in an HTTP header")]
    InvalidCredential {
        /// Which credential ("token", "API key").
        what: &'static str,
    },
    /// A required setting was not given to a builder.
    #[error("missing {what}")]
    Missing {
        /// What is missing.
        what: &'static str,
    },
    /// The rate limit given cannot work.
    #[error(transparent)]
    RateLimit(#[from] crate::ratelimit::InvalidRateLimit),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// A widget token verifier's key (the integration's client secret) is shorter than its
    /// algorithm's hash (RFC 7518 §3.2): a key that short can be guessed, and an empty one lets
    /// anyone sign. Only the lengths are named, never the key.
    #[error(
        "the {algorithm} key (the integration's client secret) is {length} bytes; it must be at least {minimum} (RFC 7518 §3.2)"
    )]
    WeakKey {
        /// `HS256` or `HS512`.
        algorithm: &'static str,
        /// The key's length in bytes.
        length: usize,
        /// The shortest key the algorithm accepts, in bytes.
        minimum: usize,
    },
}

/// Checks a Kommo account subdomain: one DNS label (letters, digits, inner hyphens, 1 to 63).
pub(crate) fn subdomain(value: &str) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::InvalidSubdomain {
        value: value.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(bad("it is empty"));
    }
    if value.len() > 63 {
        return Err(bad("it is longer than 63 characters"));
    }
    if value.contains('.') {
        return Err(bad(
            "it contains a dot; give only the first label of the account's host",
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(bad("only ASCII letters, digits and hyphens are allowed"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(bad("it starts or ends with a hyphen"));
    }
    Ok(value.to_ascii_lowercase())
}

/// Checks and normalizes a base URL (no trailing slash, since paths are appended to it).
pub(crate) fn base_url(value: &str, allow_insecure: bool) -> Result<String, ConfigError> {
    let bad = |reason: String| ConfigError::InvalidBaseUrl {
        value: value.to_string(),
        reason,
    };
    let url = url::Url::parse(value).map_err(|e| bad(e.to_string()))?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("it has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not contain credentials".into()));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure || is_loopback(&url) => {}
        "http" => {
            return Err(ConfigError::InsecureBaseUrl {
                value: value.to_string(),
            });
        }
        other => return Err(bad(format!("the scheme {other:?} is not http or https"))),
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A header value `{prefix}{secret}` for a credential, marked sensitive so reqwest never
/// prints it. A blank secret is refused (the prefix alone would make a blank header look set).
pub(crate) fn secret_header(
    prefix: &str,
    secret: &crate::Secret,
    what: &'static str,
) -> Result<HeaderValue, ConfigError> {
    if secret.expose().trim().is_empty() {
        return Err(ConfigError::InvalidCredential { what });
    }
    let mut header = HeaderValue::from_str(&format!("{prefix}{}", secret.expose()))
        .map_err(|_| ConfigError::InvalidCredential { what })?;
    header.set_sensitive(true);
    Ok(header)
}

/// The HTTP client both APIs use by default.
pub(crate) fn http_client() -> Result<reqwest::Client, ConfigError> {
    client_builder().build().map_err(ConfigError::HttpClient)
}

/// The settings of the default HTTP client (`lead_intake::http::client_builder`): user agent,
/// timeouts, the same-origin redirect policy, and no proxy from the environment unless the
/// `system-proxy` feature is on.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    ensure_crypto_provider();
    let builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(same_origin_redirects());
    // reqwest reads `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` unless told not to.
    #[cfg(not(feature = "system-proxy"))]
    let builder = builder.no_proxy();
    // The `native-tls` feature is a choice: it wins over rustls when both are compiled in.
    #[cfg(feature = "native-tls")]
    let builder = builder.tls_backend_native();
    builder
}

/// rustls needs a process-wide crypto provider. reqwest brings aws-lc-rs's only with
/// `rustls-aws-lc`; with the default `rustls` feature it brings none (and would panic when
/// building a client), so this installs ring's, or aws-lc-rs's when `rustls-aws-lc` is on, as the
/// process's default, unless the program has installed one already (then that one is used).
/// Called before every client the crate builds, and before `rediss://` connections.
#[cfg(any(feature = "rustls", feature = "rustls-aws-lc"))]
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_some() {
        return;
    }
    #[cfg(feature = "rustls-aws-lc")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "rustls-aws-lc"))]
    let provider = rustls::crypto::ring::default_provider();
    // Another thread may install one first: then that one is used, as wanted.
    let _ = provider.install_default();
}

/// Without rustls there is no provider to install.
#[cfg(not(any(feature = "rustls", feature = "rustls-aws-lc")))]
pub(crate) fn ensure_crypto_provider() {}

/// The `User-Agent` of the default HTTP client.
pub(crate) const USER_AGENT: &str = concat!("lead-intake/", env!("CARGO_PKG_VERSION"));
/// How long the default HTTP client waits for a connection.
pub(crate) const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long the default HTTP client gives a whole request.
pub(crate) const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How many redirects the default client follows for one request.
const MAX_REDIRECTS: usize = 10;

/// Follows a redirect only within the request's origin (scheme, host and port). reqwest's
/// default follows any redirect and drops only the standard credential headers on the way:
/// CloseBot's `X-CB-KEY` would go along to the other host, and so would a token request's body
/// (client secret and refresh token) after a 307 or 308. A redirect elsewhere is not followed:
/// the 3xx comes back as the answer.
pub(crate) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.stop();
        };
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let (from, to) = (first.origin(), attempt.url().origin());
        if from != to {
            tracing::warn!(
                target: "lead_intake::transport",
                status = attempt.status().as_u16(),
                from = %from.ascii_serialization(),
                to = %to.ascii_serialization(),
                "redirect to another origin not followed (the credentials would go along)"
            );
            return attempt.stop();
        }
        attempt.follow()
    })
}
