//! An agency's service, two copies of it, one Kommo account, one Redis: the service is
//! `service.rs` (the part a user writes); this file is the run that shows it works.
//!
//! `cargo run --example agency --features redis` (needs `redis-server`:
//! `scripts/install-redis.sh`, or `REDIS_URL` pointing at a Redis 6.2+ of your own).
//!
//! The run starts, as real OS processes where the service would have them:
//!
//! - Redis (its own `redis-server`, on a Unix socket in a temporary folder) unless `REDIS_URL`
//!   is set;
//! - the fake Kommo and CloseBot (`lead-intake-fake`), enforcing Kommo's 7 requests a second,
//!   with 25 CloseBot sources (19 connected), a Kommo source that is not the service's
//!   (`phone`), and a stale mirror of a CloseBot source that is gone (`cb-src-999`);
//! - a front door (a load balancer in front of the copies): it sends every webhook to *every*
//!   copy (Kommo delivers a webhook at least once; this is the worst case, so every lead is
//!   raced) and each `widget_request` to the next copy in turn;
//! - two copies of this program as the service (`AGENCY_WORKER=1`), which sync their sources at
//!   the same moment.
//!
//! Then it plays Kommo's users: stores the OAuth pair once (the integration's installation),
//! expires every access token, sends 8 web forms (Kommo then sends the webhook), and two
//! Salesbot `widget_request`s. It exits non-zero unless: each CloseBot source is mirrored once
//! and the other source is left alone; every lead is decided once, as the rule says; Kommo
//! answered no 429; both copies went on after one token refresh; both bots were continued.

#[path = "service.rs"]
mod service;

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use lead_intake::kommo::types::{
    AddIncomingForm, ContactInput, FormsMetadata, IncomingLeadEmbeddedInput,
};
use lead_intake::oauth;
use lead_intake::prelude::*;
use lead_intake::shared::{RedisConnection, RedisRateLimit, RedisTokenStore};
use lead_intake::webhooks::{self, Event};
use lead_intake_fake::{Config, FakeServer, Faults, Fixtures};
use serde_json::json;
use tokio::sync::mpsc;

const COPIES: usize = 2;
/// The forms sent: `(source_uid, name)`; those through a `cb-` source are to be accepted.
const FORMS: [(&str, &str); 8] = [
    ("cb-src-001", "Ann"),
    ("cb-src-002", "Bob"),
    ("web-form", "Cid"),
    ("cb-src-003", "Dee"),
    ("cb-src-005", "Eve"),
    ("web-form", "Fay"),
    ("cb-src-006", "Gus"),
    ("cb-src-007", "Hal"),
];
/// How long the whole run may take before it fails (a guard against a hang, not a wait).
const WATCHDOG: Duration = Duration::from_secs(90);

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    if std::env::var_os("AGENCY_WORKER").is_some() {
        // A copy of the service: it stops when its standard input closes (the run ended, or died).
        let settings = service::Settings::from_env()?;
        let (stopped, stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = stopped.send(());
        });
        return runtime.block_on(service::run(settings, async {
            let _ = stop.await;
        }));
    }
    let failures = runtime.block_on(async {
        tokio::time::timeout(WATCHDOG, the_run())
            .await
            .map_err(|_| format!("the run did not end within {WATCHDOG:?}"))?
    })?;
    if failures.is_empty() {
        println!("agency: every check passed");
        Ok(())
    } else {
        Err(format!("{} of the run's checks failed (FAIL above)", failures.len()).into())
    }
}

/// Everything, in order; returns the checks that failed.
async fn the_run() -> Result<Vec<String>, Box<dyn Error>> {
    let started = Instant::now();
    let (_redis, redis_url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let redis = RedisServer::start()?;
            let url = redis.url();
            (Some(redis), url)
        }
    };
    // One name per integration and account (a fresh one per run, for a Redis of your own).
    let shared_name = format!("kommo:agency-example:{}", std::process::id());

    // The front door's address first: the fake is told where to send webhooks and widget_request.
    let door_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let door_url = format!("http://{}", door_listener.local_addr()?);
    let fixtures = Fixtures::documented()
        .source(json!({"name": "Phone line", "external_id": "phone"}))
        .source(json!({"name": "A bot no longer at CloseBot", "external_id": "cb-src-999"}));
    let fake = FakeServer::start(
        Config::default()
            .fixtures(fixtures)
            .faults(Faults::none().rate_limit(7))
            .webhook_url(format!("{door_url}/webhooks"))
            .widget_url(format!("{door_url}/widget")),
    )?;
    let door = Arc::new(FrontDoor::default());
    let router = Router::new()
        .route("/webhooks", post(to_every_copy))
        .route("/widget", post(to_next_copy))
        .with_state(door.clone());
    tokio::spawn(async move { axum::serve(door_listener, router).await });

    // The integration's installation: the authorization code's pair, stored in Redis once.
    let redis = RedisConnection::open(redis_url.as_str())?;
    let pair = oauth::exchange_code(
        &fake.base_url(),
        &fake.oauth_app(),
        &fake.authorization_code(),
    )
    .await?;
    oauth::store_tokens(&RedisTokenStore::new(&redis, shared_name.as_str())?, pair).await?;

    // The two copies, started together.
    let client = fake.oauth();
    let env = [
        ("KOMMO_BASE_URL", fake.base_url()),
        ("CLOSEBOT_BASE_URL", fake.base_url()),
        ("CLOSEBOT_KEY", fake.closebot_key().expose().to_string()),
        ("REDIS_URL", redis_url.clone()),
        ("SHARED_NAME", shared_name.clone()),
        ("KOMMO_CLIENT_ID", client.client_id().to_string()),
        (
            "KOMMO_CLIENT_SECRET",
            client.client_secret().expose().to_string(),
        ),
        ("KOMMO_REDIRECT_URI", client.redirect_uri().to_string()),
    ];
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let mut copies = Vec::new();
    for copy in 0..COPIES {
        copies.push(Copy::start(copy, &env, lines_tx.clone())?);
    }
    drop(lines_tx);

    // Each copy says where it listens, then how its sync went.
    let mut addresses = vec![String::new(); COPIES];
    let mut synced = 0;
    let mut lines_of = vec![Vec::<String>::new(); COPIES];
    while synced < COPIES {
        let (copy, line) = lines.recv().await.ok_or("a copy ended before it synced")?;
        println!("copy {copy}: {line}");
        if let Some(url) = line.strip_prefix("listening ") {
            addresses[copy] = url.to_string();
        } else if line.starts_with("synced ") {
            synced += 1;
        }
        lines_of[copy].push(line);
    }
    let _ = door.copies.set(addresses);

    // Every access token expires now: both copies need the next pair at the same moment.
    fake.expire_access_tokens();

    // The website sends its forms (through the API, so the fake sends Kommo's webhook); it
    // belongs to the same integration, so it takes its turn at the same shared limit.
    let website = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .rate_limiter(RedisRateLimit::kommo_default(&redis, shared_name.as_str())?)
        .build()?;
    let forms = FORMS.iter().enumerate().map(|(n, (source, name))| {
        let metadata = FormsMetadata::new()
            .with_form_id("contact")
            .with_form_name("Contact us");
        let contact = IncomingLeadEmbeddedInput::new()
            .with_contacts(vec![ContactInput::new().with_name(*name)]);
        AddIncomingForm::new(*source, "Website", metadata, contact).with_request_id(n.to_string())
    });
    let added = website
        .add_incoming_forms()
        .body(forms.collect::<Vec<_>>())
        .send()
        .body()
        .await?;
    let uids: Vec<String> = added
        .embedded
        .map(|e| e.unsorted.into_iter().map(|lead| lead.uid).collect())
        .unwrap_or_default();

    // Salesbot reaches the widget's step on two leads.
    for lead in [1001, 1002] {
        let sent = fake
            .send_widget_request("salesbot", "4131", lead, json!({"step": "check"}))
            .await?;
        println!("widget_request for lead {lead}: answered {:?}", sent.status);
    }

    // Wait until each copy has said what it did with every lead, and both bots went on.
    let mut outcomes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut widgets = 0;
    while outcomes.values().map(Vec::len).sum::<usize>() < COPIES * uids.len() || widgets < 2 {
        let (copy, line) = lines.recv().await.ok_or("a copy ended early")?;
        println!("copy {copy}: {line}");
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("lead"), Some(uid), Some(outcome)) => {
                outcomes
                    .entry(uid.to_string())
                    .or_default()
                    .push(outcome.to_string());
            }
            (Some("widget"), _, _) => widgets += 1,
            _ => {}
        }
        lines_of[copy].push(line);
    }
    // Every decision made sends a webhook too; once they are all through (or a lead was not
    // decided: the checks below say which), stop the copies.
    let all_sent = fake.webhooks_sent(1 + uids.len());
    let _ = tokio::time::timeout(Duration::from_secs(10), all_sent).await;
    for copy in copies {
        copy.stop()?;
    }

    // The checks, from what the fake holds (the ground truth), not from what the copies said.
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        println!("{} {what}", if ok { "ok:  " } else { "FAIL:" });
        if !ok {
            failures.push(what);
        }
    };
    let state = fake.state();
    let sources = state["kommo"]["sources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut by_external_id = BTreeMap::<String, usize>::new();
    for source in &sources {
        let id = source["external_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *by_external_id.entry(id).or_default() += 1;
    }
    let mirrored = by_external_id
        .keys()
        .filter(|id| id.starts_with("cb-src-0"))
        .count();
    check(
        mirrored == 19 && by_external_id.values().all(|n| *n == 1),
        format!(
            "each of the 19 connected CloseBot sources mirrored once ({mirrored} mirrored; {} sources in all)",
            sources.len()
        ),
    );
    check(
        by_external_id.contains_key("phone") && !by_external_id.contains_key("cb-src-999"),
        "the source that is not ours left alone, the stale mirror deleted".to_string(),
    );
    let stored = fake.incoming_leads();
    for (uid, form) in uids.iter().zip(FORMS) {
        let state = stored
            .iter()
            .find(|lead| &lead.uid == uid)
            .map(|lead| lead.state.as_str());
        let want = if form.0.starts_with(service::PREFIX) {
            "accepted"
        } else {
            "declined"
        };
        let said = outcomes.get(uid).cloned().unwrap_or_default();
        let by_a_copy = said
            .iter()
            .filter(|o| ["accepted", "declined"].contains(&o.as_str()));
        check(
            state == Some(want) && by_a_copy.count() == 1 && !said.iter().any(|o| o == "error"),
            format!(
                "lead from {} {want} once ({state:?}; the copies said {said:?})",
                form.0
            ),
        );
    }
    let decisions = decisions_in_webhooks(&fake);
    check(
        uids.iter().all(|uid| decisions.get(uid) == Some(&1)) && decisions.len() == uids.len(),
        format!(
            "one decision per lead in Kommo's webhooks (times decided: {:?})",
            decisions.values().collect::<Vec<_>>()
        ),
    );
    let stats = fake.stats();
    check(
        stats.rate_limited == 0,
        format!(
            "no 429 in {} requests ({})",
            stats.requests, stats.rate_limited
        ),
    );
    let oauth = fake.oauth_stats();
    check(
        oauth.refreshes == 1 && oauth.revoked_reuses == 0,
        format!(
            "one token refresh for both copies ({} refreshes, {} refresh tokens spent twice)",
            oauth.refreshes, oauth.revoked_reuses
        ),
    );
    let continued = fake.continued_bots();
    check(
        continued.iter().filter(|bot| bot.bot_id == "4131").count() == 2,
        format!("both bots continued ({} continue calls)", continued.len()),
    );
    check(
        fake.violations().is_empty(),
        format!("the fake answered by the spec ({:?})", fake.violations()),
    );
    println!(
        "agency: {} requests to the fake in {:.1?}",
        stats.requests,
        started.elapsed()
    );
    Ok(failures)
}

/// How many times each lead was decided, as Kommo's webhooks tell it (`unsorted[delete]`).
fn decisions_in_webhooks(fake: &FakeServer) -> BTreeMap<String, usize> {
    let mut decisions = BTreeMap::new();
    for delivery in fake.webhook_deliveries() {
        let Ok(hook) = webhooks::parse(
            Some("application/x-www-form-urlencoded"),
            delivery.body.as_bytes(),
        ) else {
            continue;
        };
        for event in hook.events() {
            if let Event::IncomingLeadDeleted(lead) = event {
                *decisions.entry(lead.uid.clone()).or_default() += 1;
            }
        }
    }
    decisions
}

/// The load balancer in front of the copies (their addresses once they listen).
#[derive(Default)]
struct FrontDoor {
    copies: OnceLock<Vec<String>>,
    next: AtomicUsize,
    http: reqwest::Client,
}

impl FrontDoor {
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

/// Webhooks: to every copy at once (at-least-once delivery, at its worst).
async fn to_every_copy(
    State(door): State<Arc<FrontDoor>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let copies = door.copies.get().cloned().unwrap_or_default();
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

/// `widget_request`: to one copy, the next in turn.
async fn to_next_copy(
    State(door): State<Arc<FrontDoor>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let copies = door.copies.get().cloned().unwrap_or_default();
    if copies.is_empty() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let copy = &copies[door.next.fetch_add(1, Ordering::Relaxed) % copies.len()];
    door.forward(copy, &uri, &headers, body).await
}

/// One copy of the service: this program again, as a child process.
struct Copy {
    child: Child,
    stdin: ChildStdin,
}

impl Copy {
    /// Starts it; each line it prints goes to `lines` as `(copy, line)`.
    fn start(
        copy: usize,
        env: &[(&str, String)],
        lines: mpsc::UnboundedSender<(usize, String)>,
    ) -> Result<Self, Box<dyn Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .env("AGENCY_WORKER", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send((copy, line));
            }
        });
        Ok(Self { child, stdin })
    }

    /// Closes its standard input (it then stops), and waits for it to exit successfully.
    fn stop(self) -> Result<(), Box<dyn Error>> {
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
struct RedisServer {
    child: Child,
    dir: PathBuf,
}

impl RedisServer {
    fn start() -> Result<Self, Box<dyn Error>> {
        let dir = std::env::temp_dir().join(format!("lead-intake-agency-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(dir.join("redis.sock"))
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start redis-server ({e}): run scripts/install-redis.sh, or set REDIS_URL"))?;
        // Ready when it says so in its log (read to its end, so its log never blocks it).
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
            .map_err(|_| "redis-server did not become ready")?;
        Ok(server)
    }

    fn url(&self) -> String {
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
