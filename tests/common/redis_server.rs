//! A real `redis-server` of the test's own, on a Unix socket in a temporary folder: no port to
//! pick, no persistence (unless [`RedisServer::start_persistent`]), killed (and its folder removed)
//! when dropped.
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

pub struct RedisServer {
    binary: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    /// Append-only file on, fsynced before every answer ([`RedisServer::start_persistent`]).
    persistent: bool,
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

    fn start_with(persistent: bool) -> Self {
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
        let mut server = Self {
            binary,
            dir,
            socket,
            persistent,
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

    /// Kills the server (SIGKILL, as a crash): its data is gone, the socket no longer answers.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts the server (again) on the same socket, and waits until it is ready.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let mut child = Command::new(&self.binary)
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
            Ok(Ok(())) => {}
            Ok(Err(log)) => {
                let _ = child.kill();
                let stderr = child
                    .wait_with_output()
                    .map(|o| o.stderr)
                    .unwrap_or_default();
                panic!(
                    "redis-server exited before it was ready:\n{log}{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server did not say it was ready within {READY_TIMEOUT:?}");
            }
        }
        self.child = Some(child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
