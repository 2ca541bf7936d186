//! The shared rate limit and token store against a real Redis (feature `redis`): each test
//! starts its own `redis-server` on a Unix socket (tests/common/redis_server.rs).
//!
//! Redis's clock cannot be paused, so real time passes here: periods are short, and the tests
//! assert the safety property (measured on Redis's clock, from the script's own answers) and
//! eventual progress, never an upper bound on elapsed time that a busy machine could break.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::TimeZone;
use common::redis_server::RedisServer;
use lead_intake::Secret;
use lead_intake::oauth::TokenPair;
use lead_intake::shared::{
    RedisConnection, RedisRateLimit, RedisTokenStore, Saved, SharedError, SharedPermit,
    StoredTokens, TokenStore,
};

/// The bound on any wait for progress: far beyond what any step needs, so only a hang fails.
const PROGRESS: Duration = Duration::from_secs(60);

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

fn granted_us(permit: &SharedPermit) -> i64 {
    micros(
        permit
            .granted_at()
            .expect("granted by Redis, not the local fallback"),
    )
}

/// No window of one period (half-open, on Redis's clock) holds more than `max` grants.
fn assert_window(grants: &mut [i64], max: usize, period: Duration) {
    grants.sort_unstable();
    let period = period.as_micros() as i64;
    for (i, start) in grants.iter().enumerate() {
        let in_window = grants[i..]
            .iter()
            .take_while(|t| **t < start + period)
            .count();
        assert!(
            in_window <= max,
            "{in_window} grants within {period} µs from grant {i} at {start} (max {max})"
        );
    }
}

#[test]
fn the_window_check_catches_a_burst() {
    let mut grants: Vec<i64> = (0..6).map(|i| 1_000_000 + i * 1000).collect();
    let caught =
        std::panic::catch_unwind(move || assert_window(&mut grants, 5, Duration::from_millis(100)));
    assert!(caught.is_err());
}

/// A raw connection of the test's own, to look at the keys.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn zcard(con: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("ZCARD").arg(key).query_async(con).await.unwrap()
}

/// Waits (by asking Redis, every millisecond) until `key` holds `n` members.
async fn until_zcard(con: &mut redis::aio::MultiplexedConnection, key: &str, n: i64) {
    tokio::time::timeout(PROGRESS, async {
        while zcard(con, key).await != n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{key} never held {n} members"));
}

fn connection(server: &RedisServer) -> RedisConnection {
    RedisConnection::open(server.url()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_window_holds_more_than_max_under_32_concurrent_acquirers_from_4_clients() {
    let server = RedisServer::start();
    let (max, period) = (8, Duration::from_millis(150));
    let mut tasks = Vec::new();
    for client in 0..4 {
        // Each client has its own connection, as separate processes would.
        let limit = RedisRateLimit::new(&connection(&server), "window", max, period)
            .unwrap()
            .with_margin(Duration::from_millis(20));
        for task in 0..8 {
            let limit = limit.clone();
            let mut rng = fastrand::Rng::with_seed(client * 8 + task);
            tasks.push(tokio::spawn(async move {
                let mut grants = Vec::new();
                for _ in 0..3 {
                    let permit = limit.acquire().await.expect("Redis is up");
                    grants.push(granted_us(&permit));
                    // Answers take up to 40 ms: some within the margin, some beyond it.
                    tokio::time::sleep(Duration::from_millis(rng.u64(0..=40))).await;
                    permit.finish().await;
                }
                grants
            }));
        }
    }
    let mut grants = Vec::new();
    for task in tasks {
        grants.extend(
            tokio::time::timeout(PROGRESS, task)
                .await
                .expect("every acquirer progresses")
                .unwrap(),
        );
    }
    assert_eq!(grants.len(), 96);
    assert_window(&mut grants, max as usize, period);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_request_frees_its_place_before_its_margin() {
    let server = RedisServer::start();
    let period = Duration::from_millis(200);
    let margin = Duration::from_secs(30);
    let limit = RedisRateLimit::new(&connection(&server), "finish", 1, period)
        .unwrap()
        .with_margin(margin);
    let first = limit.acquire().await.unwrap();
    let first_at = granted_us(&first);
    first.finish().await;
    let second = tokio::time::timeout(PROGRESS, limit.acquire())
        .await
        .expect("the finished place leaves the window")
        .unwrap();
    let gap = granted_us(&second) - first_at;
    assert!(gap >= period.as_micros() as i64, "only {gap} µs apart");
    // Unfinished, the first place would have held the window for 30 s more.
    assert!(
        gap < margin.as_micros() as i64,
        "{gap} µs: the margin was kept"
    );
    second.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_place_of_a_holder_that_never_finishes_expires_after_its_margin() {
    let server = RedisServer::start();
    let (period, margin) = (Duration::from_millis(200), Duration::from_millis(100));
    let crashed = RedisRateLimit::new(&connection(&server), "crash", 1, period)
        .unwrap()
        .with_margin(margin);
    let other = RedisRateLimit::new(&connection(&server), "crash", 1, period).unwrap();
    let lost = crashed.acquire().await.unwrap();
    let lost_at = granted_us(&lost);
    drop(lost); // the "process" dies before the answer
    let next = tokio::time::timeout(PROGRESS, other.acquire())
        .await
        .expect("the crashed holder's place expires")
        .unwrap();
    let gap = granted_us(&next) - lost_at;
    assert!(
        gap >= (period + margin).as_micros() as i64,
        "granted {gap} µs after an unfinished place"
    );
    next.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_in_arrival_order_across_clients() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let period = Duration::from_millis(100);
    // A long margin that every request beats (each finishes at once), so a waiter cannot know
    // when a place frees up and asks again at its poll interval. The first waiters ask slowly,
    // the later ones fast: by speed alone the later ones would win every place.
    let limit = |poll: u64| {
        RedisRateLimit::new(&connection(&server), "fair", 1, period)
            .unwrap()
            .with_margin(Duration::from_secs(10))
            .with_poll_interval(Duration::from_millis(poll))
    };
    let (slow, fast) = (limit(120), limit(2));
    let holder = slow.acquire().await.unwrap();
    let mut waiters = Vec::new();
    for i in 0..6usize {
        let limit = if i < 3 { slow.clone() } else { fast.clone() };
        waiters.push(tokio::spawn(async move {
            let permit = limit.acquire().await.unwrap();
            let at = granted_us(&permit);
            permit.finish().await;
            at
        }));
        // Waiter i holds its ticket before waiter i + 1 asks.
        until_zcard(&mut look, "{fair}:limit:queue", i as i64 + 1).await;
    }
    holder.finish().await;
    let mut served = Vec::new();
    for (i, waiter) in waiters.into_iter().enumerate() {
        let at = tokio::time::timeout(PROGRESS, waiter)
            .await
            .expect("every waiter is served")
            .unwrap();
        served.push((at, i));
    }
    served.sort();
    let order: Vec<usize> = served.iter().map(|(_, i)| *i).collect();
    assert_eq!(order, [0, 1, 2, 3, 4, 5], "served out of turn");
    let mut grants: Vec<i64> = served.iter().map(|(at, _)| *at).collect();
    assert_window(&mut grants, 1, period);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_vanishes_does_not_block_the_queue() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let period = Duration::from_millis(100);
    let limit = RedisRateLimit::new(&connection(&server), "vanish", 1, period)
        .unwrap()
        .with_margin(Duration::ZERO);
    let other = RedisRateLimit::new(&connection(&server), "vanish", 1, period).unwrap();
    let holder = limit.acquire().await.unwrap();
    // A waiter takes a ticket, then its process freezes for good: its future is neither polled
    // nor dropped (a drop would give its turn up).
    let mut frozen = Box::pin(limit.acquire());
    tokio::select! {
        _ = &mut frozen => panic!("granted while the window is full"),
        _ = until_zcard(&mut look, "{vanish}:limit:queue", 1) => {}
    }
    std::mem::forget(frozen);
    holder.finish().await;
    let permit = tokio::time::timeout(PROGRESS, other.acquire())
        .await
        .expect("the frozen waiter's ticket dies")
        .unwrap();
    permit.finish().await;
    assert_eq!(zcard(&mut look, "{vanish}:limit:queue").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_wait_gives_its_turn_up_at_once() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    // Tickets live 3 poll intervals and a second: longer than the test waits, so only the
    // cancelled waiter itself can take its ticket out in time.
    let limit = RedisRateLimit::new(&connection(&server), "cancel", 1, Duration::from_secs(30))
        .unwrap()
        .with_poll_interval(Duration::from_secs(30));
    let _holder = limit.acquire().await.unwrap();
    let mut waiting = Box::pin(limit.acquire());
    tokio::select! {
        _ = &mut waiting => panic!("granted while the window is full"),
        _ = until_zcard(&mut look, "{cancel}:limit:queue", 1) => {}
    }
    drop(waiting);
    until_zcard(&mut look, "{cancel}:limit:queue", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_limit_leaves_no_keys_behind() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let limit = RedisRateLimit::new(&connection(&server), "idle", 1, Duration::from_millis(100))
        .unwrap()
        .with_margin(Duration::from_millis(10));
    let first = limit.acquire().await.unwrap();
    // The second waits, so the queue keys exist too.
    let second = limit.clone();
    let waiter = tokio::spawn(async move { second.acquire().await.unwrap().finish().await });
    until_zcard(&mut look, "{idle}:limit:queue", 1).await;
    // The counter stays: its absence would mean a limit without history (see `:hold`).
    for key in ["places", "queue", "alive"] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("{{idle}}:limit:{key}"))
            .query_async(&mut look)
            .await
            .unwrap();
        assert!(ttl > 0, "{{idle}}:limit:{key} has no time to live ({ttl})");
    }
    first.finish().await;
    waiter.await.unwrap();
    tokio::time::timeout(PROGRESS, async {
        loop {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("{idle}:*")
                .query_async(&mut look)
                .await
                .unwrap();
            if keys == ["{idle}:limit:seq"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the keys expire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_a_typed_error_and_grants_nothing() {
    // A socket path nobody listens on, with a password in the URL.
    let dir = std::env::temp_dir().join(format!("lead-intake-no-redis-{}", std::process::id()));
    let url = format!(
        "redis+unix://{}/missing.sock?pass=REDIS-PASSWORD-123",
        dir.display()
    );
    let redis = RedisConnection::open(url.as_str()).unwrap();
    let limit = RedisRateLimit::new(&redis, "down", 7, Duration::from_secs(1)).unwrap();
    let error = limit.acquire().await.expect_err("no permit without Redis");
    assert!(error.is_unavailable(), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("missing.sock"), "says where: {text}");
    assert!(
        text.contains("{down}:limit:places"),
        "says which key: {text}"
    );
    for shown in [
        text,
        format!("{error:?}"),
        format!("{redis:?}"),
        format!("{limit:?}"),
    ] {
        common::assert_not_leaked("the error and Debug", &shown, "REDIS-PASSWORD-123");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_times_out_without_showing_its_password() {
    // A listener that accepts and never answers: the handshake (AUTH) times out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let redis = RedisConnection::open(format!("redis://:REDIS-PASSWORD-456@127.0.0.1:{port}/3"))
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    assert_eq!(redis.address(), format!("redis://127.0.0.1:{port}/3"));
    let limit = RedisRateLimit::new(&redis, "silent", 7, Duration::from_secs(1)).unwrap();
    let error = limit
        .acquire()
        .await
        .expect_err("no permit without an answer");
    assert!(error.is_unavailable(), "{error:?}");
    let store = RedisTokenStore::new(&redis, "silent").unwrap();
    let store_error = store.load().await.expect_err("no tokens without an answer");
    assert!(store_error.is_unavailable(), "{store_error:?}");
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        store_error.to_string(),
        format!("{store:?}"),
    ] {
        assert!(
            shown.contains(&format!("127.0.0.1:{port}")),
            "says where: {shown}"
        );
        common::assert_not_leaked("the error and Debug", &shown, "REDIS-PASSWORD-456");
    }
}

/// The place of the one request under `name`, and its anchor (µs on Redis's clock).
async fn only_place(look: &mut redis::aio::MultiplexedConnection, name: &str) -> (String, i64) {
    let places: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("{{{name}}}:limit:places"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(look)
        .await
        .unwrap();
    assert_eq!(places.len(), 1, "{places:?}");
    let (id, anchor) = places[0].clone();
    (id, anchor as i64)
}

/// A limit under `name` that has history (its counter exists), so its first grant does not wait
/// for the hold of a limit without one.
async fn with_history(look: &mut redis::aio::MultiplexedConnection, name: &str) {
    let _: () = redis::cmd("SET")
        .arg(format!("{{{name}}}:limit:seq"))
        .arg(0)
        .query_async(look)
        .await
        .unwrap();
}

/// Issue 20 §2: a request may reach the server later than the margin after its grant (the
/// grant's answer from Redis, a busy machine, a slow network come between); its answer is the
/// only moment the client knows the server has counted it. An answer after the margin must move
/// the place's anchor up to the answer, so the place stays in the window for a period after it
/// (and the places' key must live that long). With margin zero, every answer is late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_after_the_margin_keeps_the_place_a_period_after_the_answer() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let name = "late-answer";
    with_history(&mut look, name).await;
    let period = Duration::from_secs(60);
    let limit = RedisRateLimit::new(&connection(&server), name, 1, period)
        .unwrap()
        .with_margin(Duration::ZERO);
    let permit = limit.acquire().await.unwrap();
    let granted = granted_us(&permit);
    // The answer comes after the grant plus the margin (zero) on Redis's clock.
    let mut answered = micros(redis_now(&mut look).await);
    while answered <= granted {
        answered = micros(redis_now(&mut look).await);
    }
    permit.finish().await;
    let (_, anchor) = only_place(&mut look, name).await;
    assert!(
        anchor >= answered,
        "the place is anchored at {anchor}, before the answer at {answered} \
         (granted at {granted}): the server may still count it for a period after"
    );
    let expires_ms: i64 = redis::cmd("PEXPIRETIME")
        .arg(format!("{{{name}}}:limit:places"))
        .query_async(&mut look)
        .await
        .unwrap();
    assert!(
        expires_ms * 1000 >= anchor + period.as_micros() as i64,
        "the places expire at {expires_ms} ms, before the place leaves the window"
    );
}

/// Issue 20 §2: a request still in flight may reach the server at any moment before its answer
/// (measured under load: over a second after its grant), so its place must not leave the window
/// at the grant plus the margin and the period: the permit's lease keeps moving it up until the
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_keeps_its_place_past_the_margin_and_the_period() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let name = "in-flight";
    with_history(&mut look, name).await;
    let period = Duration::from_secs(1);
    let limit = RedisRateLimit::new(&connection(&server), name, 1, period)
        .unwrap()
        .with_margin(Duration::ZERO);
    let permit = limit.acquire().await.unwrap();
    let granted = granted_us(&permit);
    // Without its answer, half a period after the place would have left (grant + margin +
    // period), on Redis's clock.
    let late = granted + (period * 3 / 2).as_micros() as i64;
    let mut now = micros(redis_now(&mut look).await);
    while now < late {
        tokio::time::sleep(Duration::from_millis(10)).await;
        now = micros(redis_now(&mut look).await);
    }
    let (_, anchor) = only_place(&mut look, name).await;
    assert!(
        anchor + period.as_micros() as i64 > now,
        "the place of a request in flight left the window at {} (granted at {granted}, now {now})",
        anchor + period.as_micros() as i64
    );
    permit.finish().await;
}

/// Issue 20 §2: Redis loses its data (a restart without persistence) while a request is in
/// flight: the window forgets its place although the server counts the request. Its answer puts
/// the place back (as its lease would while it is in flight), under a member no new grant can
/// take (place ids start again with the lost counter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_lost_with_redis_s_data_is_put_back_by_its_answer() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let name = "lost-in-flight";
    with_history(&mut look, name).await;
    let period = Duration::from_secs(60);
    let limit = RedisRateLimit::new(&connection(&server), name, 2, period)
        .unwrap()
        .with_margin(Duration::ZERO);
    let in_flight = limit.acquire().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut look).await.unwrap();
    let lost_at = micros(redis_now(&mut look).await);
    in_flight.finish().await;
    let (_, anchor) = only_place(&mut look, name).await;
    assert!(
        anchor >= lost_at,
        "the answered place is anchored at {anchor}, before the loss at {lost_at}"
    );
}

/// Issue 20 §2: an answer that comes while Redis restarts (it keeps its data) is recorded once
/// Redis is back, so the place of a request that reached the server late is not let go at the
/// grant plus the margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_while_redis_restarts_is_recorded_once_it_is_back() {
    let mut server = RedisServer::start_persistent();
    let name = "late-restart";
    with_history(&mut raw(&server).await, name).await;
    let limit = RedisRateLimit::new(
        &connection(&server).with_timeout(Duration::from_millis(500)),
        name,
        1,
        Duration::from_secs(60),
    )
    .unwrap()
    .with_margin(Duration::ZERO);
    let permit = limit.acquire().await.unwrap();
    let granted = granted_us(&permit);
    server.stop();
    let finish = tokio::spawn(permit.finish());
    server.start_again();
    tokio::time::timeout(PROGRESS, finish)
        .await
        .expect("the finish ends")
        .unwrap();
    let mut look = raw(&server).await;
    let (_, anchor) = only_place(&mut look, name).await;
    assert!(
        anchor > granted,
        "the answer during the restart was not recorded: anchored at the grant {granted}"
    );
}

/// Acquires until Redis (not the fallback) grants, after a restart: the first tries may still
/// meet the dead connection.
async fn until_redis_grants(limit: &RedisRateLimit) -> SharedPermit {
    tokio::time::timeout(PROGRESS, async {
        loop {
            match limit.acquire().await {
                Ok(permit) if !permit.is_local() => return permit,
                Ok(local) => local.finish().await,
                Err(e) => assert!(e.is_unavailable(), "{e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("Redis is used again once back")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_fallback_a_stopped_redis_fails_every_acquire_until_it_is_back() {
    let mut server = RedisServer::start();
    let limit = RedisRateLimit::new(
        &connection(&server),
        "outage",
        5,
        Duration::from_millis(100),
    )
    .unwrap();
    limit.acquire().await.unwrap().finish().await;
    server.stop();
    for _ in 0..3 {
        let error = limit
            .acquire()
            .await
            .expect_err("no permit while Redis is down");
        assert!(error.is_unavailable(), "{error:?}");
    }
    server.start_again();
    until_redis_grants(&limit).await.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_fallback_grants_its_share_while_redis_is_down_and_redis_again_once_back() {
    let mut server = RedisServer::start();
    let period = Duration::from_millis(300);
    let limit = RedisRateLimit::new(&connection(&server), "fallback", 4, period)
        .unwrap()
        .with_local_fallback(0.5)
        .unwrap();
    assert_eq!(limit.local_fallback(), Some(2));
    let permit = limit.acquire().await.unwrap();
    assert!(!permit.is_local());
    permit.finish().await;

    server.stop();
    // floor(4 * 0.5) = 2 per period, counted locally.
    let mut local = Vec::new();
    for _ in 0..5 {
        let permit = tokio::time::timeout(PROGRESS, limit.acquire())
            .await
            .expect("the fallback progresses")
            .expect("the fallback grants instead of failing");
        assert!(permit.is_local());
        assert!(permit.granted_at().is_none());
        local.push(tokio::time::Instant::now());
        permit.finish().await;
    }
    // Every third grant comes at least a period after the first of its window.
    for window in local.windows(3) {
        assert!(
            window[2] - window[0] >= period,
            "3 local grants within {:?}",
            window[2] - window[0]
        );
    }

    server.start_again();
    until_redis_grants(&limit).await.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_are_refused() {
    let redis = RedisConnection::open("redis://127.0.0.1:1").unwrap();
    let second = Duration::from_secs(1);
    for (name, max, period) in [
        ("", 1, second),
        ("a{b}", 1, second),
        ("ok", 0, second),
        ("ok", 1, Duration::ZERO),
        ("ok", 1, Duration::MAX),
    ] {
        assert!(
            matches!(
                RedisRateLimit::new(&redis, name, max, period),
                Err(SharedError::Invalid(_))
            ),
            "{name:?} {max} {period:?}"
        );
    }
    let limit = RedisRateLimit::new(&redis, "ok", 7, second).unwrap();
    for share in [0.0, -1.0, 1.01, f64::NAN] {
        assert!(limit.clone().with_local_fallback(share).is_err(), "{share}");
    }
    assert_eq!(
        limit
            .clone()
            .with_local_fallback(0.01)
            .unwrap()
            .local_fallback(),
        Some(1)
    );
    assert!(RedisTokenStore::new(&redis, "}").is_err());
}

// The token store.

fn pair(n: u32) -> TokenPair {
    TokenPair {
        access_token: Secret::new(format!("ACCESS-TOKEN-{n}-SECRET")),
        refresh_token: Secret::new(format!("REFRESH-TOKEN-{n}-SECRET")),
        expires_at: chrono::Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, n).unwrap(),
    }
}

fn store(server: &RedisServer, name: &str) -> RedisTokenStore {
    RedisTokenStore::new(&connection(server), name).unwrap()
}

/// Stores pair 1 as version 1.
async fn seed(store: &RedisTokenStore) -> StoredTokens {
    let lock = store
        .try_lock(Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    let Saved::Stored(stored) = store.save_if_current(&lock, None, pair(1)).await.unwrap() else {
        panic!("an empty store takes the first pair");
    };
    assert!(store.release(lock).await.unwrap());
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_from_a_pair_that_is_no_longer_stored_is_refused() {
    let server = RedisServer::start();
    let (a, b) = (store(&server, "cas"), store(&server, "cas"));
    assert_eq!(a.load().await.unwrap(), None);
    let v1 = seed(&a).await;
    assert_eq!(v1, StoredTokens::new(1, pair(1)));
    assert_eq!(b.load().await.unwrap(), Some(v1.clone()));

    let lock = b.lock(Duration::from_secs(10)).await.unwrap();
    // Stale: B thinks nothing is stored.
    assert_eq!(
        b.save_if_current(&lock, None, pair(2)).await.unwrap(),
        Saved::Changed(Some(v1.clone()))
    );
    // The same version number with another refresh token is not the stored pair either.
    let impostor = StoredTokens::new(1, pair(9));
    assert_eq!(
        b.save_if_current(&lock, Some(&impostor), pair(2))
            .await
            .unwrap(),
        Saved::Changed(Some(v1.clone()))
    );
    let v2 = match b.save_if_current(&lock, Some(&v1), pair(2)).await.unwrap() {
        Saved::Stored(v2) => v2,
        other => panic!("{other:?}"),
    };
    assert_eq!(v2, StoredTokens::new(2, pair(2)));
    // A second save from version 1 (a process that refreshed from it too) is refused.
    assert_eq!(
        b.save_if_current(&lock, Some(&v1), pair(3)).await.unwrap(),
        Saved::Changed(Some(v2.clone()))
    );
    assert!(b.release(lock).await.unwrap());
    assert_eq!(a.load().await.unwrap(), Some(v2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_lock_is_held_by_one_process_at_a_time() {
    let server = RedisServer::start();
    let (a, b, c) = (
        store(&server, "x"),
        store(&server, "x"),
        store(&server, "x"),
    );
    let held = a
        .try_lock(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("free");
    for other in [&b, &c, &a] {
        assert_eq!(other.try_lock(Duration::from_secs(30)).await.unwrap(), None);
    }
    let released = Arc::new(AtomicBool::new(false));
    let waiter = {
        let released = released.clone();
        tokio::spawn(async move {
            let lock = b.lock(Duration::from_secs(30)).await.unwrap();
            assert!(released.load(Ordering::SeqCst), "B took the lock A holds");
            lock
        })
    };
    let fence = held.fence();
    released.store(true, Ordering::SeqCst);
    assert!(a.release(held).await.unwrap());
    let taken = tokio::time::timeout(PROGRESS, waiter)
        .await
        .expect("the waiter takes the released lock")
        .unwrap();
    assert!(taken.fence() > fence);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_is_never_released_expires() {
    let server = RedisServer::start();
    let (a, b) = (store(&server, "expire"), store(&server, "expire"));
    let dead = a
        .try_lock(Duration::from_millis(200))
        .await
        .unwrap()
        .expect("free");
    // Its process dies holding it: never released.
    let dead_fence = dead.fence();
    let taken = tokio::time::timeout(PROGRESS, b.lock(Duration::from_secs(10)))
        .await
        .expect("the dead holder's lock expires")
        .unwrap();
    assert!(taken.fence() > dead_fence);
}

/// Issue 20 §3: a holder whose lock ran out after its token answer still stores its pair, as
/// long as the store holds the pair it refreshed from (refresh tokens are single-use: nobody else
/// can hold a pair refreshed from it); a process that took the lock meanwhile and refreshed the
/// same pair (Kommo refuses that) cannot store over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lock_expired_still_stores_over_the_pair_it_refreshed_from() {
    let server = RedisServer::start();
    let (a, b) = (store(&server, "fence"), store(&server, "fence"));
    let v1 = seed(&a).await;

    let slow = a.lock(Duration::from_millis(150)).await.unwrap();
    let loaded = a.load().await.unwrap().unwrap();
    // A's refresh takes longer than its lock: B takes the lock once it expires.
    let fast = tokio::time::timeout(PROGRESS, b.lock(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    // The stored pair is still the one A refreshed from: A's pair is stored.
    let v2 = match a
        .save_if_current(&slow, Some(&loaded), pair(2))
        .await
        .unwrap()
    {
        Saved::Stored(v2) => v2,
        other => panic!("the pair refreshed from the stored one is stored: {other:?}"),
    };
    assert_eq!(v2, StoredTokens::new(2, pair(2)));
    // B refreshed from version 1 too (its answer would be Kommo's refusal): refused here.
    assert_eq!(
        b.save_if_current(&fast, Some(&v1), pair(3)).await.unwrap(),
        Saved::Changed(Some(v2.clone()))
    );
    // A's old lock saves nothing over a pair it did not refresh from.
    assert_eq!(
        a.save_if_current(&slow, Some(&loaded), pair(4))
            .await
            .unwrap(),
        Saved::Changed(Some(v2.clone()))
    );
    assert!(b.release(fast).await.unwrap());
    assert_eq!(a.load().await.unwrap(), Some(v2));
}

/// Issue 20 §3: the lease. `extend` gives our lock a new time to live only while it holds our
/// fence: a lock that ran out and was taken by another process is left as it is, and one that
/// ran out is not brought back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_renews_only_a_lock_that_is_still_ours() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let (a, b) = (store(&server, "lease"), store(&server, "lease"));
    let pttl = |look: &mut redis::aio::MultiplexedConnection| {
        let mut look = look.clone();
        async move {
            let ms: i64 = redis::cmd("PTTL")
                .arg("{lease}:oauth:lock")
                .query_async(&mut look)
                .await
                .unwrap();
            ms
        }
    };

    // Ours: extended (from 1 s to 60 s), and still held against others.
    let held = a.lock(Duration::from_secs(1)).await.unwrap();
    assert!(pttl(&mut look).await <= 1_000);
    assert!(a.extend(&held, Duration::from_secs(60)).await.unwrap());
    assert!(pttl(&mut look).await > 1_000, "the lease was renewed");
    assert_eq!(b.try_lock(Duration::from_secs(1)).await.unwrap(), None);
    assert!(a.release(held).await.unwrap());

    // Lost: A's lock ran out and B took it. A's renewal changes nothing of B's lock.
    let lost = a.lock(Duration::from_millis(100)).await.unwrap();
    let taken = tokio::time::timeout(PROGRESS, b.lock(Duration::from_secs(2)))
        .await
        .expect("A's lock runs out")
        .unwrap();
    assert!(!a.extend(&lost, Duration::from_secs(60)).await.unwrap());
    assert!(pttl(&mut look).await <= 2_000, "B's lock was extended by A");
    let holder: String = redis::cmd("GET")
        .arg("{lease}:oauth:lock")
        .query_async(&mut look)
        .await
        .unwrap();
    assert_eq!(holder, taken.fence().to_string());
    assert!(b.release(taken).await.unwrap());

    // Gone: a lock that ran out and nobody took is not brought back by its old holder.
    assert!(!b.extend(&lost, Duration::from_secs(60)).await.unwrap());
    assert_eq!(pttl(&mut look).await, -2, "no lock key");
    assert!(a.try_lock(Duration::from_secs(1)).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_by_a_process_that_no_longer_holds_the_lock_does_nothing() {
    let server = RedisServer::start();
    let (a, b, c) = (
        store(&server, "rel"),
        store(&server, "rel"),
        store(&server, "rel"),
    );
    let expired = a.lock(Duration::from_millis(100)).await.unwrap();
    let holder = tokio::time::timeout(PROGRESS, b.lock(Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !a.release(expired).await.unwrap(),
        "released someone else's lock"
    );
    assert_eq!(c.try_lock(Duration::from_secs(30)).await.unwrap(), None);
    assert!(b.release(holder).await.unwrap());
    assert!(c.try_lock(Duration::from_secs(30)).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_works_through_the_trait_object() {
    let server = RedisServer::start();
    let store: Arc<dyn TokenStore<Error = SharedError>> = Arc::new(store(&server, "dyn"));
    let lock = store.lock(Duration::from_secs(10)).await.unwrap();
    let saved = store.save_if_current(&lock, None, pair(1)).await.unwrap();
    assert_eq!(saved, Saved::Stored(StoredTokens::new(1, pair(1))));
    assert!(store.extend(&lock, Duration::from_secs(10)).await.unwrap());
    assert!(store.release(lock).await.unwrap());
    assert_eq!(
        store.load().await.unwrap(),
        Some(StoredTokens::new(1, pair(1)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_show_in_debug_or_in_errors() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let store = store(&server, "secret");
    let stored = seed(&store).await;
    let lock = store.lock(Duration::from_secs(10)).await.unwrap();
    let saved = store.save_if_current(&lock, None, pair(2)).await.unwrap();
    let shown = format!("{stored:?} {saved:?} {lock:?} {store:?}");
    for token in [
        "ACCESS-TOKEN-1-SECRET",
        "REFRESH-TOKEN-1-SECRET",
        "REFRESH-TOKEN-2-SECRET",
    ] {
        common::assert_not_leaked("Debug", &shown, token);
    }
    // Something else in the key: the error says where, not what.
    let _: () = redis::cmd("HSET")
        .arg("{secret}:oauth:pair")
        .arg("pair")
        .arg(r#"{"access_token":"ACCESS-LEAK-SECRET","refresh_token":7,"x":"REFRESH-LEAK-SECRET"}"#)
        .query_async(&mut look)
        .await
        .unwrap();
    let error = store.load().await.expect_err("not our JSON");
    assert!(matches!(error, SharedError::Corrupt { .. }), "{error:?}");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(shown.contains("{secret}:oauth:pair"), "{shown}");
        common::assert_not_leaked("the error", &shown, "ACCESS-LEAK-SECRET");
        common::assert_not_leaked("the error", &shown, "REFRESH-LEAK-SECRET");
    }
    // A key of that name holding another type: refused, not corrupt, not a panic.
    let _: () = redis::cmd("SET")
        .arg("{secret}:oauth:pair")
        .arg("REFRESH-LEAK-SECRET")
        .query_async(&mut look)
        .await
        .unwrap();
    let error = store.load().await.expect_err("a string, not a hash");
    assert!(matches!(error, SharedError::Refused { .. }), "{error:?}");
    common::assert_not_leaked("the error", &error.to_string(), "REFRESH-LEAK-SECRET");
}

/// Redis's clock now.
async fn redis_now(look: &mut redis::aio::MultiplexedConnection) -> std::time::SystemTime {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(look).await.unwrap();
    std::time::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_whose_history_is_gone_grants_nothing_for_a_period_and_the_margin() {
    let server = RedisServer::start();
    let mut look = raw(&server).await;
    let period = Duration::from_millis(300);
    let margin = Duration::from_millis(20);
    let limit = RedisRateLimit::new(&connection(&server), "lost", 5, period)
        .unwrap()
        .with_margin(margin);
    for _ in 0..5 {
        limit.acquire().await.unwrap().finish().await;
    }
    // Redis loses its data (a restart without persistence): the five places are forgotten.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut look).await.unwrap();
    let lost_at = redis_now(&mut look).await;
    let permit = limit.acquire().await.unwrap();
    let granted = permit.granted_at().expect("granted by Redis");
    assert!(
        granted.duration_since(lost_at).unwrap_or_default() >= period + margin,
        "granted {:?} after the loss",
        granted.duration_since(lost_at)
    );
    permit.finish().await;
}
