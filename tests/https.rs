//! HTTPS with the default features: rustls with ring's crypto (BENCHMARKS.md §5). reqwest is
//! built without a crypto provider of its own, so a client built while the process has none
//! would panic; the crate installs ring's first. Nothing in this binary installs a provider
//! otherwise: the server below is given ring's explicitly, not as the process's default.
//! Against a TLS server on loopback with a certificate from a CA made here.

mod common;

use std::sync::Arc;

use common::ca::Ca;
use lead_intake::prelude::*;
use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SOURCES: &str = include_str!("../openapi/examples/kommo/listSources.response.200.json");

/// An HTTPS server on 127.0.0.1 that answers every request with the documented source list.
/// Returns its base URL.
async fn https_server(ca: &Ca) -> String {
    let (cert, key) = ca.sign(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/hal+json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{SOURCES}",
                    SOURCES.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}

fn trusting(ca: &Ca) -> reqwest::Certificate {
    reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn the_default_client_speaks_https_with_rings_provider_installed_by_the_crate() {
    let ca = Ca::new("lead-intake HTTPS test CA");
    let base = https_server(&ca).await;
    let root = trusting(&ca);
    let kommo = lead_intake::kommo::Client::builder()
        .base_url(&base)
        .token("long-lived-token")
        .no_rate_limit()
        .http_client_builder(move |http| http.tls_certs_merge([root]))
        .build()
        .expect("the crate installs a crypto provider before it builds its HTTP client");
    let list = kommo.list_sources().send().or_empty().await.unwrap();
    assert!(!list.into_sources().is_empty());

    // The provider the crate installed is ring's: aws-lc-rs's offers other key exchanges (its
    // post-quantum hybrid among them).
    let installed = rustls::crypto::CryptoProvider::get_default().expect("a provider");
    let names = |p: &rustls::crypto::CryptoProvider| {
        p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(installed),
        names(&rustls::crypto::ring::default_provider())
    );
}

#[tokio::test]
async fn a_reqwest_client_of_your_own_works_after_install_crypto_provider() {
    let ca = Ca::new("lead-intake HTTPS test CA");
    let base = https_server(&ca).await;
    lead_intake::http::install_crypto_provider();
    let http = reqwest::Client::builder()
        .tls_certs_merge([trusting(&ca)])
        .build()
        .expect("a provider is installed");
    let kommo = lead_intake::kommo::Client::builder()
        .base_url(&base)
        .token("long-lived-token")
        .no_rate_limit()
        .http_client(http)
        .build()
        .unwrap();
    let list = kommo.list_sources().send().or_empty().await.unwrap();
    assert!(!list.into_sources().is_empty());
}
