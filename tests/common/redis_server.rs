//! A real `redis-server` of the test's own, on a Unix socket in a temporary folder: no port to
//! pick, no persistence (unless [`RedisServer::start_persistent`]), killed (and its folder removed)
//! when dropped.
//!
//! [`RedisServer::start_tls`] adds a TLS port on 127.0.0.1. Redis cannot listen on an ephemeral
//! port (`--tls-port 0` turns TLS off), so the harness takes a free port from the system (a
//! listener bound to port 0, closed at once) and passes it; a port taken by someone else in
//! between makes redis-server exit with "Address already in use" before it is ready, and the
//! harness then starts it again on another port (up to [`PORT_ATTEMPTS`] times). Once Redis
//! listens the port is its own.
//!
//! Readiness is an event, not a sleep: the server's own log line that it is ready to accept
//! connections.
//! Without `redis-server` installed the test fails, naming the script that installs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long a starting server may take to say it is ready before the test fails (a guard against
/// a hang; a ready server ends the wait at once).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many ports a TLS server tries before the test fails (each taken by another process
/// between the harness's choice and Redis's bind).
pub const PORT_ATTEMPTS: usize = 20;

/// A TLS port's certificate and what it asks of clients ([`RedisServer::start_tls`]).
#[derive(Clone)]
pub struct TlsFiles {
    /// The server's certificate chain, PEM.
    pub cert: String,
    /// Its private key, PEM.
    pub key: String,
    /// The CA that clients' certificates must chain to, PEM.
    pub ca: String,
    /// `tls-auth-clients yes`: a client without a certificate from `ca` is refused.
    pub auth_clients: bool,
}

pub struct RedisServer {
    binary: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    /// Append-only file on, fsynced before every answer ([`RedisServer::start_persistent`]).
    persistent: bool,
    /// A TLS port on 127.0.0.1 too ([`RedisServer::start_tls`]).
    tls: Option<TlsFiles>,
    /// The TLS port Redis listens on, once started.
    tls_port: Option<u16>,
    child: Option<Child>,
}

/// `redis-server` on PATH, or where Debian puts it.
fn find_redis_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

impl RedisServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a server that keeps its data across [`stop`](Self::stop) and
    /// [`start_again`](Self::start_again): the append-only file is on and fsynced before every
    /// answer (`appendfsync always`), so even a SIGKILL loses nothing Redis has answered.
    pub fn start_persistent() -> Self {
        Self::start_with(true)
    }

    /// Starts a server that also listens with TLS on 127.0.0.1 ([`tls_port`](Self::tls_port)),
    /// with `tls`'s certificate (its Unix socket stays plain).
    pub fn start_tls(tls: TlsFiles) -> Self {
        Self::start_full(false, Some(tls))
    }

    fn start_with(persistent: bool) -> Self {
        Self::start_full(persistent, None)
    }

    fn start_full(persistent: bool, tls: Option<TlsFiles>) -> Self {
        let binary = find_redis_server().unwrap_or_else(|| {
            panic!(
                "redis-server is not installed (not on PATH, nor in /usr/bin): run \
                 scripts/install-test-tools.sh (the README's test command does), which installs Debian's redis-server 7.0"
            )
        });
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lead-intake-redis-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        // A folder left by an earlier run with the same process id is stale.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let socket = dir.join("redis.sock");
        if let Some(tls) = &tls {
            for (name, pem) in [
                ("server.crt", &tls.cert),
                ("server.key", &tls.key),
                ("ca.crt", &tls.ca),
            ] {
                std::fs::write(dir.join(name), pem)
                    .unwrap_or_else(|e| panic!("cannot write {name} in {}: {e}", dir.display()));
            }
        }
        let mut server = Self {
            binary,
            dir,
            socket,
            persistent,
            tls,
            tls_port: None,
            child: None,
        };
        server.start_again();
        server
    }

    /// The `redis+unix://` URL of its socket.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Its socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TLS port on 127.0.0.1 ([`start_tls`](Self::start_tls) only).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
            .expect("the server was started with start_tls")
    }

    /// `rediss://127.0.0.1:<tls port>` ([`start_tls`](Self::start_tls) only).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port())
    }

    /// Kills the server (SIGKILL, as a crash): its data is gone, the socket no longer answers.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts the server (again) on the same socket, and waits until it is ready. A TLS server
    /// gets a new port (see the module's documentation).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        if self.tls.is_none() {
            match self.spawn(None) {
                Ok(child) => self.child = Some(child),
                Err(log) => panic!("redis-server exited before it was ready:\n{log}"),
            }
            return;
        }
        let mut logs = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("the system gives a free port")
                .port();
            match self.spawn(Some(port)) {
                Ok(child) => {
                    self.child = Some(child);
                    self.tls_port = Some(port);
                    return;
                }
                // Taken between our choice and Redis's bind: another port.
                Err(log) if log.contains("Address already in use") => logs.push_str(&log),
                Err(log) => panic!("redis-server exited before it was ready:\n{log}"),
            }
        }
        panic!("redis-server found no free TLS port in {PORT_ATTEMPTS} tries:\n{logs}");
    }

    /// Starts redis-server and waits for it to be ready; its log and errors if it exits first.
    fn spawn(&self, tls_port: Option<u16>) -> Result<Child, String> {
        let mut command = Command::new(&self.binary);
        if let (Some(tls), Some(port)) = (&self.tls, tls_port) {
            command
                .args(["--bind", "127.0.0.1", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.dir.join("ca.crt"))
                .args([
                    "--tls-auth-clients",
                    if tls.auth_clients { "yes" } else { "no" },
                ]);
        }
        let mut child = command
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--unixsocketperm", "700", "--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            })
            .args(["--daemonize", "no", "--loglevel", "notice", "--logfile", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        // Reads the log for the whole life of the server (a full pipe would block its logging).
        std::thread::spawn(move || {
            let mut seen = String::new();
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &ready {
                    // 7.0 on a socket: "The server is now ready to accept connections at
                    // <path>"; on TCP, and 7.2 on either: "Ready to accept connections ...".
                    if line
                        .to_ascii_lowercase()
                        .contains("ready to accept connections")
                    {
                        let _ = tx.send(Ok(()));
                        ready = None;
                    } else {
                        seen.push_str(&line);
                        seen.push('\n');
                    }
                }
            }
            if let Some(tx) = ready {
                let _ = tx.send(Err(seen));
            }
        });
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(())) => Ok(child),
            Ok(Err(log)) => {
                let _ = child.kill();
                let stderr = child
                    .wait_with_output()
                    .map(|o| o.stderr)
                    .unwrap_or_default();
                Err(format!("{log}{}", String::from_utf8_lossy(&stderr)))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server did not say it was ready within {READY_TIMEOUT:?}");
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
