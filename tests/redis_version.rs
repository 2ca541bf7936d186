//! The shared limiter and token store refuse a Redis older than their Lua scripts need
//! (`MIN_REDIS_VERSION`, 6.2.0: `ZADD ... LT`), before running anything, with a typed error that
//! names both versions.
//!
//! An old Redis cannot be installed here, so the server is a small RESP server on loopback that
//! speaks what the redis crate sends (AUTH, CLIENT SETINFO, INFO, HMGET) and reports the version
//! the test chooses. The accepted side is also proved by every test against the real Redis 7.0
//! (tests/redis_shared.rs), which all go through the same check.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lead_intake::shared::{
    MIN_REDIS_VERSION, RedisConnection, RedisRateLimit, RedisTokenStore, SharedError,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the fake server answers to INFO.
#[derive(Clone)]
enum Info {
    /// `redis_version:<this>` in an `INFO server` answer.
    Version(&'static str),
    /// An error, as a Redis whose ACL forbids INFO answers.
    Refused,
}

struct FakeRedis {
    port: u16,
    /// Every command received, by name (upper case), in order.
    commands: Arc<Mutex<Vec<String>>>,
    /// Set: the next command is not answered and its connection is closed.
    drop_next: Arc<AtomicBool>,
}

impl FakeRedis {
    async fn start(info: Info) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let drop_next = Arc::new(AtomicBool::new(false));
        let (seen, dropping) = (commands.clone(), drop_next.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, info.clone(), seen.clone(), dropping.clone()));
            }
        });
        Self {
            port,
            commands,
            drop_next,
        }
    }

    fn count(&self, name: &str) -> usize {
        let commands = self.commands.lock().unwrap();
        commands.iter().filter(|c| *c == name).count()
    }

    fn received(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

/// One RESP command: an array of bulk strings. `None` at the end of the stream.
async fn read_command(reader: &mut BufReader<TcpStream>) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    reader.read_line(&mut line).await.ok()?;
    let count: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut parts = Vec::with_capacity(count.min(16));
    for _ in 0..count {
        line.clear();
        reader.read_line(&mut line).await.ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut part = vec![0; len + 2];
        reader.read_exact(&mut part).await.ok()?;
        part.truncate(len);
        parts.push(part);
    }
    Some(parts)
}

async fn serve(
    stream: TcpStream,
    info: Info,
    commands: Arc<Mutex<Vec<String>>>,
    drop_next: Arc<AtomicBool>,
) {
    let mut reader = BufReader::new(stream);
    while let Some(command) = read_command(&mut reader).await {
        let name =
            String::from_utf8_lossy(command.first().map_or(&[][..], |n| n)).to_ascii_uppercase();
        commands.lock().unwrap().push(name.clone());
        if drop_next.swap(false, Ordering::SeqCst) {
            return;
        }
        let answer = match (name.as_str(), &info) {
            ("AUTH" | "CLIENT" | "SELECT", _) => "+OK\r\n".to_string(),
            ("INFO", Info::Version(version)) => {
                let body = format!(
                    "# Server\r\nredis_version:{version}\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n"
                );
                format!("${}\r\n{body}\r\n", body.len())
            }
            ("INFO", Info::Refused) => {
                "-NOPERM this user has no permissions to run the 'info' command\r\n".to_string()
            }
            // An empty hash: the token store has nothing stored.
            ("HMGET", _) => "*2\r\n$-1\r\n$-1\r\n".to_string(),
            _ => format!("-ERR the fake does not know {name}\r\n"),
        };
        if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn connection(fake: &FakeRedis) -> RedisConnection {
    RedisConnection::open(format!(
        "redis://:REDIS-PASSWORD-789@127.0.0.1:{}/0",
        fake.port
    ))
    .unwrap()
    .with_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn a_redis_older_than_6_2_is_refused_naming_both_versions_before_any_script_runs() {
    let fake = FakeRedis::start(Info::Version("6.0.16")).await;
    let redis = connection(&fake);
    let limit = RedisRateLimit::new(&redis, "old", 7, Duration::from_secs(1))
        .unwrap()
        // Not even the fallback: an old Redis is not a Redis that is down.
        .with_local_fallback(1.0)
        .unwrap();
    let store = RedisTokenStore::new(&redis, "old").unwrap();

    let limit_error = limit.acquire().await.expect_err("no permit from Redis 6.0");
    let store_error = store.load().await.expect_err("no tokens from Redis 6.0");
    for error in [&limit_error, &store_error] {
        match error {
            SharedError::UnsupportedVersion { at, found, needed } => {
                assert_eq!(at, &format!("redis://127.0.0.1:{}/0", fake.port));
                assert_eq!(found, "6.0.16");
                assert_eq!(*needed, "6.2.0");
                assert_eq!(*needed, MIN_REDIS_VERSION);
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        assert!(!error.is_unavailable(), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains("6.0.16") && text.contains("6.2.0"),
            "names both versions: {text}"
        );
        assert!(
            text.contains(&format!("127.0.0.1:{}", fake.port)),
            "says where: {text}"
        );
        common::assert_not_leaked("the error", &text, "REDIS-PASSWORD-789");
        common::assert_not_leaked("the error", &format!("{error:?}"), "REDIS-PASSWORD-789");
    }
    let received = fake.received();
    assert!(received.contains(&"INFO".to_string()), "{received:?}");
    for never in ["EVALSHA", "EVAL", "SCRIPT", "HMGET"] {
        assert!(
            !received.contains(&never.to_string()),
            "nothing runs on an old Redis, but it received {never}: {received:?}"
        );
    }
}

#[tokio::test]
async fn redis_6_2_0_is_accepted() {
    let fake = FakeRedis::start(Info::Version("6.2.0")).await;
    let store = RedisTokenStore::new(&connection(&fake), "new-enough").unwrap();
    assert_eq!(store.load().await.expect("6.2.0 is enough"), None);
    assert_eq!(fake.count("HMGET"), 1);
}

#[tokio::test]
async fn the_version_is_asked_once_per_connection_and_again_after_a_reconnection() {
    let fake = FakeRedis::start(Info::Version("7.0.15")).await;
    let store = RedisTokenStore::new(&connection(&fake), "once").unwrap();
    for _ in 0..3 {
        assert_eq!(store.load().await.unwrap(), None);
    }
    assert_eq!(fake.count("INFO"), 1, "{:?}", fake.received());
    assert_eq!(fake.count("HMGET"), 3);

    // The connection drops (Redis restarted, or failed over to another server): the command
    // fails, and the next one, on a new connection, asks the version again.
    fake.drop_next.store(true, Ordering::SeqCst);
    let error = store.load().await.expect_err("the connection dropped");
    assert!(error.is_unavailable(), "{error:?}");
    assert_eq!(store.load().await.unwrap(), None);
    assert_eq!(fake.count("INFO"), 2, "{:?}", fake.received());
}

#[tokio::test]
async fn a_redis_that_refuses_info_is_not_blocked() {
    // Some managed Redis services forbid INFO to application users: the version cannot be
    // checked, and the work goes on (a script too new for the server then fails by itself).
    let fake = FakeRedis::start(Info::Refused).await;
    let store = RedisTokenStore::new(&connection(&fake), "no-info").unwrap();
    assert_eq!(store.load().await.expect("INFO refused is not fatal"), None);
    assert_eq!(store.load().await.unwrap(), None);
    assert_eq!(fake.count("INFO"), 1, "{:?}", fake.received());
}
