//! What the run starts besides the fake: Redis, the front door in front of the copies, and
//! the copies themselves (this program again, as child processes).

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use tokio::sync::mpsc;

/// The load balancer in front of the copies: webhooks go to every copy at once (Kommo
/// delivers a webhook at least once; this is that at its worst), each `widget_request` to the
/// next copy in turn.
#[derive(Default)]
pub struct FrontDoor {
    copies: OnceLock<Vec<String>>,
    next: AtomicUsize,
    http: reqwest::Client,
}

impl FrontDoor {
    /// Serves on `listener` (bound first, so the fake can be told its address).
    pub fn serve(listener: tokio::net::TcpListener) -> Arc<Self> {
        // A `reqwest::Client` of our own, built before any lead-intake client: with the default
        // `rustls` feature rustls needs its crypto provider first (`lead_intake::http`).
        lead_intake::http::install_crypto_provider();
        let door = Arc::new(Self::default());
        let router = Router::new()
            .route("/webhooks", post(to_every_copy))
            .route("/widget", post(to_next_copy))
            .with_state(door.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        door
    }

    /// The copies' base URLs, once they listen (requests before that are answered 503).
    pub fn open(&self, copies: Vec<String>) {
        let _ = self.copies.set(copies);
    }

    fn copies(&self) -> Vec<String> {
        self.copies.get().cloned().unwrap_or_default()
    }

    async fn forward(&self, copy: &str, uri: &Uri, headers: &HeaderMap, body: Bytes) -> StatusCode {
        let mut request = self.http.post(format!("{copy}{uri}")).body(body);
        if let Some(content_type) = headers.get(reqwest::header::CONTENT_TYPE) {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        match request.send().await {
            Ok(answer) => answer.status(),
            Err(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

async fn to_every_copy(
    State(door): State<Arc<FrontDoor>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let copies = door.copies();
    if copies.is_empty() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut sends = tokio::task::JoinSet::new();
    for copy in copies {
        let (door, uri, headers, body) = (door.clone(), uri.clone(), headers.clone(), body.clone());
        sends.spawn(async move { door.forward(&copy, &uri, &headers, body).await });
    }
    let mut status = StatusCode::OK;
    while let Some(answer) = sends.join_next().await {
        match answer {
            Ok(answer) if answer.is_success() => {}
            Ok(answer) => status = answer,
            Err(_) => status = StatusCode::BAD_GATEWAY,
        }
    }
    status
}

async fn to_next_copy(
    State(door): State<Arc<FrontDoor>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let copies = door.copies();
    if copies.is_empty() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let copy = &copies[door.next.fetch_add(1, Ordering::Relaxed) % copies.len()];
    door.forward(copy, &uri, &headers, body).await
}

/// What a copy printed (`Line`), or that it ended (`Exited`).
pub enum Said {
    Line(String),
    Exited,
}

/// One copy of the service: this program again, with `AGENCY_WORKER` set.
pub struct Copy {
    child: Child,
    stdin: ChildStdin,
}

impl Copy {
    /// Starts it with `env`; what it prints goes to `said` as `(copy, Said)`.
    pub fn start(
        copy: usize,
        env: &[(&str, String)],
        said: mpsc::UnboundedSender<(usize, Said)>,
    ) -> Result<Self, Box<dyn Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .env("AGENCY_WORKER", "1")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = said.send((copy, Said::Line(line)));
            }
            let _ = said.send((copy, Said::Exited));
        });
        Ok(Self { child, stdin })
    }

    /// Closes its standard input (it then stops), and waits for it to exit successfully.
    pub fn stop(self) -> Result<(), Box<dyn Error>> {
        let Self { mut child, stdin } = self;
        drop(stdin);
        let status = child.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("a copy exited with {status}").into())
        }
    }
}

/// A `redis-server` of the run's own, on a Unix socket in a temporary folder (no port to pick),
/// killed when dropped.
pub struct RedisServer {
    child: Child,
    dir: PathBuf,
}

impl RedisServer {
    pub fn start() -> Result<Self, Box<dyn Error>> {
        let dir = std::env::temp_dir().join(format!("lead-intake-agency-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir); // left by an earlier run with our process id
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(dir.join("redis.sock"))
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server ({e}): run scripts/install-redis.sh, or set REDIS_URL")
            })?;
        // Ready when its log says so (read to its end, so a full pipe never blocks it).
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line
                    .to_ascii_lowercase()
                    .contains("ready to accept connections")
                {
                    let _ = ready_tx.send(());
                }
            }
        });
        let server = Self { child, dir };
        ready
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "redis-server did not say it was ready")?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.dir.join("redis.sock").display())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
