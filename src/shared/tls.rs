//! `rediss://`: TLS to Redis (feature `redis-tls`).

use std::fmt;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::SharedError;

/// What a `rediss://` connection trusts, and the certificate it shows when the server asks for
/// one (feature `redis-tls`). Give it to [`RedisConnection::open_tls`](super::RedisConnection::open_tls).
///
/// [`RedisTls::new`] trusts the system's certificate authorities, as managed Redis services
/// (Amazon ElastiCache, Azure Cache for Redis, Google Memorystore with a public CA, Upstash,
/// Redis Cloud) need. A service with its own CA (Memorystore's server CA, a self-signed Redis)
/// gives its CA in PEM with [`trust_only_pem`](Self::trust_only_pem); one that checks clients'
/// certificates (Redis's `tls-auth-clients yes`, Redis Cloud's mutual TLS) takes yours with
/// [`client_certificate_pem`](Self::client_certificate_pem). The server's name is always
/// checked against its certificate: there is no switch to turn that off.
///
/// Its `Debug` shows which parts are set, never a key.
///
/// ```
/// use lead_intake::shared::{RedisConnection, RedisTls};
///
/// # fn f(ca_pem: &[u8]) -> Result<(), lead_intake::shared::SharedError> {
/// // A managed Redis with a certificate from a public CA:
/// let redis = RedisConnection::open_tls("rediss://:password@my-redis.example.com:6380", &RedisTls::new())?;
/// // A Redis with its own CA (e.g. the PEM file the service lets you download):
/// let tls = RedisTls::new().trust_only_pem(ca_pem);
/// let redis = RedisConnection::open_tls("rediss://10.0.0.5:6378", &tls)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct RedisTls {
    /// The CAs to trust instead of the system's, in PEM.
    ca: Option<Vec<u8>>,
    /// Our certificate chain and its private key, in PEM.
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    /// Trusts the system's certificate authorities (read by `rustls-native-certs`: the
    /// platform's store, or `SSL_CERT_FILE` / `SSL_CERT_DIR`), shows no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only the certificate authorities in `pem` (one or more `BEGIN CERTIFICATE`
    /// blocks), instead of the system's: a server whose certificate none of them signed is
    /// refused. Checked by [`RedisConnection::open_tls`](super::RedisConnection::open_tls).
    pub fn trust_only_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(pem.into());
        self
    }

    /// Shows this certificate (`chain`: yours first, then any intermediates, in PEM) when the
    /// server asks for one (mutual TLS), proven with `key` (its private key in PEM: PKCS #8,
    /// PKCS #1 or SEC1). Checked by
    /// [`RedisConnection::open_tls`](super::RedisConnection::open_tls).
    pub fn client_certificate_pem(
        mut self,
        chain: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.client = Some((chain.into(), key.into()));
        self
    }

    /// True when [`trust_only_pem`](Self::trust_only_pem) replaced the system's CAs.
    pub fn trusts_only_given_cas(&self) -> bool {
        self.ca.is_some()
    }

    /// True when a client certificate is set.
    pub fn has_client_certificate(&self) -> bool {
        self.client.is_some()
    }

    /// The redis crate's form, after checking that every PEM part holds what it should (the
    /// redis crate would take a CA file with no certificate in it, and trust nothing).
    pub(super) fn certificates(&self) -> Result<redis::TlsCertificates, SharedError> {
        if let Some(ca) = &self.ca {
            certificates_in(ca).ok_or(SharedError::Invalid(
                "the CA certificates to trust are not PEM certificates (-----BEGIN CERTIFICATE-----)",
            ))?;
        }
        if let Some((chain, key)) = &self.client {
            certificates_in(chain).ok_or(SharedError::Invalid(
                "the client certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
            ))?;
            // The parser's error is not quoted: it could show part of the key.
            PrivateKeyDer::from_pem_slice(key).map_err(|_| {
                SharedError::Invalid("the client certificate's key is not a PEM private key")
            })?;
        }
        Ok(redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(chain, key)| redis::ClientTlsConfig {
                    client_cert: chain.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca.clone(),
        })
    }
}

/// How many certificates `pem` holds; `None` for none, or a block that does not parse.
fn certificates_in(pem: &[u8]) -> Option<usize> {
    let count = CertificateDer::pem_slice_iter(pem)
        .try_fold(0, |n, cert| cert.map(|_| n + 1))
        .ok()?;
    (count > 0).then_some(count)
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls")
            .field(
                "trust",
                &if self.ca.is_some() {
                    "the given CAs only"
                } else {
                    "the system's CAs"
                },
            )
            .field(
                "client_certificate",
                &if self.client.is_some() {
                    "set (key hidden)"
                } else {
                    "none"
                },
            )
            .finish()
    }
}

/// True when `error` is a TLS handshake that failed over a certificate: ours refused by the
/// server, or the server's by us. The redis crate carries rustls's error inside an I/O error,
/// behind an `Arc` (which hides it from `source()`'s chain), so each link is unwrapped.
pub(super) fn is_certificate_refusal(error: &redis::RedisError) -> bool {
    use rustls::AlertDescription as Alert;
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(shared) = error.downcast_ref::<Shared>() {
            return rustls_error(&**shared);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io.get_ref().and_then(|inner| rustls_error(inner));
        }
        error.downcast_ref::<rustls::Error>()
    }
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        let tls = rustls_error(current);
        if let Some(tls) = tls {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::PeerIncompatible(_)
                    | rustls::Error::AlertReceived(
                        Alert::BadCertificate
                            | Alert::UnsupportedCertificate
                            | Alert::CertificateRevoked
                            | Alert::CertificateExpired
                            | Alert::CertificateUnknown
                            | Alert::UnknownCA
                            | Alert::CertificateRequired
                            | Alert::HandshakeFailure
                            | Alert::AccessDenied
                    )
            );
        }
        source = current.source();
    }
    false
}
