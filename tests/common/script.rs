//! A scripted HTTP server that runs inside the test's own tokio runtime.
//!
//! httpmock answers from its own thread, which paused tokio time cannot see. This server is a
//! task of the test's runtime, so with `#[tokio::test(start_paused = true)]` every request is
//! recorded at its exact virtual arrival time, and scripted delays cost no real time.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// A request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Virtual arrival time.
    pub at: Instant,
    pub method: String,
    /// Path and query, exactly as sent.
    pub target: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        let content_type = if status >= 400 {
            "application/problem+json"
        } else {
            "application/hal+json"
        };
        Self::status(status)
            .header("content-type", content_type)
            .body(body.to_string())
    }
    pub fn html(status: u16, page: &str) -> Self {
        Self::status(status)
            .header("content-type", "text/html")
            .body(page)
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
    /// The status it answers with.
    pub fn status_code(&self) -> u16 {
        self.status
    }
    /// Answer only after this much (virtual) time.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// The running server.
pub struct ScriptServer {
    pub base_url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    /// How many requests have arrived, for waiting on an arrival rather than for a time.
    arrived: Arc<tokio::sync::watch::Sender<usize>>,
}

impl ScriptServer {
    /// Starts a server answering each request with `handler(request, n)`, `n` counting the
    /// requests before it (from 0).
    pub async fn start(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let arrived = Arc::new(tokio::sync::watch::Sender::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let server_log = log.clone();
        let server_arrived = arrived.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = server_log.clone();
                let arrived = server_arrived.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let log = log.clone();
                        let arrived = arrived.clone();
                        let handler = handler.clone();
                        async move {
                            let at = Instant::now();
                            let method = req.method().to_string();
                            let target = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.as_str().to_string())
                                .unwrap_or_default();
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                            let recorded = Recorded {
                                at,
                                method,
                                target,
                                headers,
                                body,
                            };
                            let reply = {
                                let mut log = log.lock().unwrap();
                                let reply = handler(&recorded, log.len());
                                log.push(recorded);
                                arrived.send_replace(log.len());
                                reply
                            };
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut response = hyper::Response::builder().status(reply.status);
                            for (name, value) in &reply.headers {
                                response = response.header(name, value);
                            }
                            Ok::<_, Infallible>(
                                response.body(Full::new(Bytes::from(reply.body))).unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base_url,
            log,
            arrived,
        }
    }

    /// Answers the scripted replies in order; the last one repeats.
    pub async fn sequence(replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty());
        Self::start(move |_, n| replies[n.min(replies.len() - 1)].clone()).await
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived (at once if they have), for a test to wait on an
    /// event rather than for a time. Panics after a minute of real time without them: a
    /// watchdog thread, because on paused time a tokio timeout would fire as soon as the
    /// runtime waits for a socket.
    pub async fn until_requests(&self, n: usize) {
        let mut arrived = self.arrived.subscribe();
        let (expired_tx, expired) = tokio::sync::oneshot::channel::<()>();
        let (done, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                done_rx.recv_timeout(Duration::from_secs(60))
            {
                let _ = expired_tx.send(());
            }
        });
        tokio::select! {
            _ = arrived.wait_for(|count| *count >= n) => {}
            _ = expired => panic!(
                "{n} requests expected, {} arrived: {:?}",
                self.requests().len(),
                self.targets()
            ),
        }
        drop(done);
    }

    /// The targets (path and query) of every request so far, in arrival order.
    pub fn targets(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.target).collect()
    }

    /// The requests to one path.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }
}

/// A client without timeouts: under paused time a timeout would fire while the (real) socket
/// is still being read.
pub fn http_without_timeouts() -> reqwest::Client {
    lead_intake::http::install_crypto_provider();
    reqwest::Client::builder().build().unwrap()
}
