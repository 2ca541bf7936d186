//! A back end for the fake to send to (webhooks, Salesbot's `widget_request`): a hyper server on
//! a port of its own (port 0), which hands every request it receives to the test through a
//! channel and answers with the status it was started with.
#![allow(dead_code)]

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// How long a test waits for something the fake sends: a watchdog, not a pause; only a fake
/// that never sends takes this long.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A request the back end received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// The running back end; it stops with the test's runtime.
pub struct BackEnd {
    addr: std::net::SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
}

impl BackEnd {
    /// A back end answering every request with `status` and an empty body.
    pub async fn start(status: u16) -> Self {
        Self::answering(status, None).await
    }

    /// A back end answering every request with a redirect: `status` (a `3xx`) and
    /// `Location: location`.
    pub async fn redirecting(status: u16, location: &str) -> Self {
        Self::answering(status, Some(location.to_string())).await
    }

    async fn answering(status: u16, location: Option<String>) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("its address");
        let (send, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let send = send.clone();
                let location = location.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let send = send.clone();
                    let location = location.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        let _ = send.send(Received {
                            method: parts.method.to_string(),
                            path: parts.uri.to_string(),
                            content_type: parts
                                .headers
                                .get(http::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string),
                            body,
                        });
                        let mut response = Response::new(Empty::<Bytes>::new());
                        *response.status_mut() =
                            http::StatusCode::from_u16(status).expect("a valid status");
                        if let Some(location) = location {
                            response.headers_mut().insert(
                                http::header::LOCATION,
                                location.parse().expect("a valid Location"),
                            );
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, received }
    }

    /// A back end that is down in the way a client can observe without assuming a port stays
    /// free: it accepts each connection and closes it without reading or answering.
    pub async fn closing() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        addr
    }

    /// The URL of `path` on this back end, e.g. `url("/hooks")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request received, in order.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.received.recv())
            .await
            .expect("the fake sent a request within the watchdog")
            .expect("the back end runs")
    }

    /// A request already received and not read yet, if any (never waits).
    pub fn try_next(&mut self) -> Option<Received> {
        self.received.try_recv().ok()
    }
}
