//! Worker processes for issue 14 §5: one account, several OS processes.
//!
//! The same file serves both sides:
//!
//! - the **worker** ([`run_if_worker`]): a process started with [`WORKER_ENV`] set to a
//!   [`WorkerConfig`] (JSON) and the token in [`TOKEN_ENV`]. It builds one Kommo client (the
//!   shared Redis limiter, or an in-process limiter of its own as the control), says `ready` on
//!   stdout, waits for a line on stdin (the barrier: every worker starts at once), runs its
//!   [`Job`] with `tasks` concurrent tasks, and prints one [`Report`] as a JSON line;
//! - the **harness** ([`Workers`]): spawns the processes (the test binary or the benchmark
//!   re-executing itself), waits until all are ready, releases them together, reads their events
//!   and reports.
//!
//! Everything a worker prints for the harness follows [`PREFIX`] on a line; anything else on its
//! stdout (libtest's own lines, when the worker is a test binary) is ignored. Roles are a `Job` and a
//! `Mode`, so more (e.g. OAuth tokens through a shared store) are one more variant each.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lead_intake::batch::{BatchOptions, ItemOutcome};
use lead_intake::error::{ApiError, ResponseExt};
use lead_intake::kommo;
use lead_intake::ratelimit::RateLimiter;
use lead_intake::retry::RetryPolicy;
use lead_intake::shared::{RedisConnection, RedisRateLimit};
use serde::{Deserialize, Serialize};

/// Set in a worker's environment: its [`WorkerConfig`] as JSON.
pub const WORKER_ENV: &str = "LEAD_INTAKE_WORKER";
/// Set in a worker's environment: the Kommo token (kept out of the config, which is printed).
pub const TOKEN_ENV: &str = "LEAD_INTAKE_WORKER_TOKEN";
/// Set in a worker's environment with [`WorkerConfig::oauth`]: the integration's client secret.
pub const CLIENT_SECRET_ENV: &str = "LEAD_INTAKE_WORKER_CLIENT_SECRET";
/// Optional in a worker's environment: how many times its client sends a request in all
/// (`RetryPolicy::with_max_attempts`; 1, no retries, when unset), e.g. so that a token request
/// answered `429` with `Retry-After` is sent again.
pub const RETRY_ATTEMPTS_ENV: &str = "LEAD_INTAKE_WORKER_RETRY_ATTEMPTS";
/// What starts every line a worker prints for the harness.
pub const PREFIX: &str = "lead-intake-worker:";

/// A pipeline the fake's account does not have: an item with it is rejected.
pub const MISSING_PIPELINE: i64 = 999_999;

/// Which limiter the worker's client has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The shared Redis limiter (`RedisRateLimit`), no local fallback.
    Redis,
    /// The control: an in-process `RateLimiter` of this process alone, at the whole limit.
    LocalControl,
}

/// What the worker's tasks do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Job {
    /// Each task sends `requests_per_task` `GET /api/v4/sources`, one after another.
    List { requests_per_task: usize },
    /// Like `List`, but every second request is a raw call (`client.request`) of
    /// `GET /api/v4/widgets?limit=50` instead of the typed `list_sources`.
    Mixed { requests_per_task: usize },
    /// One batch import of `items` incoming-lead forms through `add_incoming_forms_batched`
    /// (`tasks` chunks in flight at once), each with the `request_id` `{prefix}-{i}`; every item
    /// whose index is a multiple of `invalid_every` (if set) names a pipeline the account does
    /// not have. While the only failures are the limiter's `RateLimiterUnavailable`, the items
    /// the report marks safe to resend are sent again, until none is left or `give_up_after_ms`
    /// passes; any other failure ends the import with the rest in `not_sent`.
    Batch {
        items: usize,
        prefix: String,
        chunk_size: usize,
        invalid_every: Option<usize>,
        give_up_after_ms: u64,
    },
}

/// What a worker is given.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The fake's base URL.
    pub base_url: String,
    /// The Redis URL (`redis+unix://...`); unused in [`Mode::LocalControl`].
    pub redis_url: String,
    /// The shared limit's key name.
    pub key: String,
    /// At most `max` requests per `period_ms`.
    pub max: u32,
    pub period_ms: u64,
    /// The Redis connection's timeout (connecting and each command).
    pub redis_timeout_ms: u64,
    /// Concurrent tasks.
    pub tasks: usize,
    pub mode: Mode,
    pub job: Job,
    /// OAuth through the shared token store instead of the fixed token.
    #[serde(default)]
    pub oauth: Option<OAuthWorker>,
}

/// A worker's OAuth: `OAuth::from_store` on a `RedisTokenStore` (the secret comes in
/// [`CLIENT_SECRET_ENV`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OAuthWorker {
    /// The token store's key name.
    pub key: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub refresh_margin_ms: u64,
    pub lock_ttl_ms: u64,
}

/// How a request (or a batch's failed request) ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Answered with success.
    pub ok: u64,
    /// `429`.
    pub rate_limited: u64,
    /// The blocked account's `403`.
    pub blocked: u64,
    /// `ApiError::RateLimiterUnavailable`: not sent.
    pub limiter_unavailable: u64,
    /// Any other error, by kind (`http 500`, `Transport`, ...).
    pub other: BTreeMap<String, u64>,
    /// The first few texts of the other errors, for the assertion messages.
    pub samples: Vec<String>,
}

impl Counts {
    fn record(&mut self, error: &kommo::Error) {
        if error.is_rate_limited() {
            self.rate_limited += 1;
        } else if error.is_account_blocked() {
            self.blocked += 1;
        } else if matches!(error, ApiError::RateLimiterUnavailable { .. }) {
            self.limiter_unavailable += 1;
        } else {
            let kind = match error.status() {
                Some(status) => format!("http {}", status.as_u16()),
                None => {
                    let debug = format!("{error:?}");
                    debug
                        .split(|c: char| !c.is_alphanumeric())
                        .next()
                        .unwrap_or_default()
                        .to_string()
                }
            };
            *self.other.entry(kind).or_default() += 1;
            if self.samples.len() < 5 {
                self.samples.push(error.to_string());
            }
        }
    }

    fn merge(&mut self, other: Counts) {
        self.ok += other.ok;
        self.rate_limited += other.rate_limited;
        self.blocked += other.blocked;
        self.limiter_unavailable += other.limiter_unavailable;
        for (kind, n) in other.other {
            *self.other.entry(kind).or_default() += n;
        }
        for sample in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(sample);
            }
        }
    }

    /// Every error of any kind.
    pub fn errors(&self) -> u64 {
        self.rate_limited
            + self.blocked
            + self.limiter_unavailable
            + self.other.values().sum::<u64>()
    }
}

/// A batch's final account, by the items' `request_id`s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItems {
    /// Created, as the server answered.
    pub succeeded: Vec<String>,
    /// Refused by the server for their own validation errors.
    pub rejected: Vec<String>,
    /// Sent, and whether they were applied is open.
    pub unknown: Vec<String>,
    /// Still safe to resend when the worker gave up (never applied).
    pub not_sent: Vec<String>,
    /// How many times the batch call ran (1 + resends).
    pub rounds: u32,
}

/// A worker's one JSON line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Requests (list) or failed batch requests (batch: `ok` counts rounds without error).
    pub counts: Counts,
    /// When the first and the last successful answer arrived, µs since the epoch (list jobs).
    pub first_ok_us: Option<u64>,
    pub last_ok_us: Option<u64>,
    /// The batch's items (batch jobs).
    pub batch: Option<BatchItems>,
    /// How many times `on_refresh` ran in this process (OAuth workers).
    #[serde(default)]
    pub refreshes: u64,
}

/// What a worker tells the harness.
#[derive(Debug)]
pub enum Event {
    /// Built its client, waiting for the go.
    Ready,
    /// Saw its first `RateLimiterUnavailable` (printed once).
    Unavailable,
    /// Its report.
    Report(Box<Report>),
    /// Its stdout closed (it exited); `Err` holds what went wrong, with its stderr.
    Exited(Result<(), String>),
}

// ---------------------------------------------------------------------------------------------
// The worker side.

/// Runs the worker and returns true if this process is one ([`WORKER_ENV`] is set); false
/// otherwise, doing nothing.
pub fn run_if_worker() -> bool {
    let Some(config) = std::env::var_os(WORKER_ENV) else {
        return false;
    };
    let config: WorkerConfig = match config.to_str().map(serde_json::from_str) {
        Some(Ok(config)) => config,
        Some(Err(e)) => fail(&format!("{WORKER_ENV} is not a worker config: {e}")),
        None => fail(&format!("{WORKER_ENV} is not UTF-8")),
    };
    let Ok(token) = std::env::var(TOKEN_ENV) else {
        fail(&format!("{TOKEN_ENV} is not set"));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("no tokio runtime: {e}")));
    let mut report = runtime.block_on(work(config, token));
    report.refreshes = REFRESHES.load(std::sync::atomic::Ordering::SeqCst);
    say(&format!(
        "report {}",
        serde_json::to_string(&report).unwrap_or_else(|e| fail(&e.to_string()))
    ));
    true
}

fn fail(message: &str) -> ! {
    eprintln!("{PREFIX} {message}");
    std::process::exit(2)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A harness that stopped reading has failed already; the worker just ends.
    let _ = writeln!(out, "{PREFIX} {line}");
    let _ = out.flush();
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Prints `unavailable` the first time it is called.
struct FirstUnavailable(std::sync::Once);

impl FirstUnavailable {
    fn seen(&self) {
        self.0.call_once(|| say("unavailable"));
    }
}

static FIRST_UNAVAILABLE: FirstUnavailable = FirstUnavailable(std::sync::Once::new());

/// `on_refresh` calls in this process.
static REFRESHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn work(config: WorkerConfig, token: String) -> Report {
    let period = Duration::from_millis(config.period_ms);
    let limiter: RateLimiter = match config.mode {
        Mode::Redis => {
            let redis = RedisConnection::open(config.redis_url.as_str())
                .unwrap_or_else(|e| fail(&e.to_string()))
                .with_timeout(Duration::from_millis(config.redis_timeout_ms));
            RedisRateLimit::new(&redis, config.key.as_str(), config.max, period)
                .unwrap_or_else(|e| fail(&e.to_string()))
                .into()
        }
        Mode::LocalControl => {
            RateLimiter::new(config.max, period).unwrap_or_else(|e| fail(&e.to_string()))
        }
    };
    // No retries (unless RETRY_ATTEMPTS_ENV says): every 429 the fake sends is an error the
    // report counts.
    let attempts = match std::env::var(RETRY_ATTEMPTS_ENV) {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| fail(&format!("{RETRY_ATTEMPTS_ENV} is not a number"))),
        Err(_) => 1,
    };
    let builder = kommo::Client::builder()
        .base_url(&config.base_url)
        .rate_limiter(limiter)
        .retry(RetryPolicy::default().with_max_attempts(attempts));
    let builder = match &config.oauth {
        None => builder.token(token),
        Some(oauth) => builder.oauth(shared_oauth(&config.redis_url, oauth).await),
    };
    let client = builder.build().unwrap_or_else(|e| fail(&e.to_string()));

    // The barrier: every worker is built; the harness releases them with one line each.
    say("ready");
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() || line.trim() != "go" {
        fail("the harness did not say go");
    }

    match config.job {
        Job::List { requests_per_task } => {
            list(&client, config.tasks, requests_per_task, false).await
        }
        Job::Mixed { requests_per_task } => {
            list(&client, config.tasks, requests_per_task, true).await
        }
        Job::Batch {
            items,
            prefix,
            chunk_size,
            invalid_every,
            give_up_after_ms,
        } => {
            let forms: Vec<_> = (0..items)
                .map(|i| form(&prefix, i, invalid_every.is_some_and(|n| i % n == 0)))
                .collect();
            let options = BatchOptions::new()
                .with_chunk_size(chunk_size)
                .with_concurrency(config.tasks);
            batch(
                &client,
                &forms,
                &options,
                Duration::from_millis(give_up_after_ms),
            )
            .await
        }
    }
}

/// OAuth from the shared store, counting this process's refreshes.
async fn shared_oauth(redis_url: &str, config: &OAuthWorker) -> lead_intake::oauth::OAuth {
    let secret = std::env::var(CLIENT_SECRET_ENV)
        .unwrap_or_else(|_| fail(&format!("{CLIENT_SECRET_ENV} is not set")));
    let redis = RedisConnection::open(redis_url).unwrap_or_else(|e| fail(&e.to_string()));
    let store = lead_intake::shared::RedisTokenStore::new(&redis, config.key.as_str())
        .unwrap_or_else(|e| fail(&e.to_string()));
    let app = lead_intake::oauth::OAuthApp::new(
        config.client_id.clone(),
        secret,
        config.redirect_uri.clone(),
    );
    lead_intake::oauth::OAuth::from_store(app, store)
        .await
        .unwrap_or_else(|e| fail(&e.to_string()))
        .refresh_margin(Duration::from_millis(config.refresh_margin_ms))
        .lock_ttl(Duration::from_millis(config.lock_ttl_ms))
        .on_refresh(|_pair| async {
            REFRESHES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<(), std::io::Error>(())
        })
}

async fn list(client: &kommo::Client, tasks: usize, each: usize, mixed: bool) -> Report {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let mut counts = Counts::default();
            let (mut first, mut last) = (None::<u64>, None::<u64>);
            for i in 0..each {
                let result = if mixed && i % 2 == 1 {
                    client
                        .request(reqwest::Method::GET, "/api/v4/widgets")
                        .query(&serde_json::json!({"limit": 50}))
                        .or_empty::<serde_json::Value>()
                        .await
                        .map(drop)
                } else {
                    client.list_sources().send().or_empty().await.map(drop)
                };
                match result {
                    Ok(()) => {
                        counts.ok += 1;
                        let at = now_us();
                        first = Some(first.map_or(at, |f| f.min(at)));
                        last = Some(last.map_or(at, |l| l.max(at)));
                    }
                    Err(error) => {
                        if matches!(error, ApiError::RateLimiterUnavailable { .. }) {
                            FIRST_UNAVAILABLE.seen();
                        }
                        counts.record(&error);
                    }
                }
            }
            (counts, first, last)
        }));
    }
    let mut report = Report::default();
    for handle in handles {
        let (counts, first, last) = handle
            .await
            .unwrap_or_else(|e| fail(&format!("a task panicked: {e}")));
        report.counts.merge(counts);
        report.first_ok_us = match (report.first_ok_us, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        report.last_ok_us = match (report.last_ok_us, last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    report
}

/// A web form submission, different for each `i` (the fake refuses identical ones).
pub fn form(prefix: &str, i: usize, invalid: bool) -> kommo::types::AddIncomingForm {
    let mut item = serde_json::json!({
        "source_uid": "multi-process",
        "source_name": "Site",
        "created_at": 1_700_000_000 + i as i64,
        "request_id": format!("{prefix}-{i}"),
        "metadata": {"form_id": format!("{prefix}-{i}"), "form_name": "Contact"},
        "_embedded": {"contacts": [{"name": format!("Visitor {prefix} {i}")}]}
    });
    if invalid {
        item["pipeline_id"] = serde_json::json!(MISSING_PIPELINE);
    }
    serde_json::from_value(item).unwrap_or_else(|e| fail(&format!("not an AddIncomingForm: {e}")))
}

/// The import, with the items the report marks safe to resend sent again: what an importer does
/// when the limiter is unavailable for a while.
async fn batch(
    client: &kommo::Client,
    forms: &[kommo::types::AddIncomingForm],
    options: &BatchOptions,
    give_up_after: Duration,
) -> Report {
    let id = |i: usize| {
        forms[i]
            .request_id
            .clone()
            .unwrap_or_else(|| fail("every form has a request_id"))
    };
    let mut report = Report::default();
    let mut items = BatchItems::default();
    let mut pending: Vec<usize> = (0..forms.len()).collect();
    let deadline = Instant::now() + give_up_after;
    while !pending.is_empty() && Instant::now() < deadline {
        items.rounds += 1;
        let inputs: Vec<_> = pending.iter().map(|&i| forms[i].clone()).collect();
        let result = client.add_incoming_forms_batched(&inputs, options).await;
        if result.errors().is_empty() {
            report.counts.ok += 1;
        }
        // Only the limiter's outage is waited out; after any other failure the rest stays
        // not sent.
        let mut only_unavailable = true;
        for error in result.errors() {
            match error.api_error() {
                Some(error) => {
                    if matches!(error, ApiError::RateLimiterUnavailable { .. }) {
                        FIRST_UNAVAILABLE.seen();
                    } else {
                        only_unavailable = false;
                    }
                    report.counts.record(error);
                }
                None => fail(&format!("the batch was refused: {error}")),
            }
        }
        let mut again = Vec::new();
        for (outcome, &i) in result.outcomes().iter().zip(&pending) {
            match outcome {
                ItemOutcome::Succeeded(_) => items.succeeded.push(id(i)),
                ItemOutcome::Rejected(_) => items.rejected.push(id(i)),
                ItemOutcome::Unknown => items.unknown.push(id(i)),
                other if other.is_safe_to_resend() => again.push(i),
                other => fail(&format!("an outcome this worker does not know: {other:?}")),
            }
        }
        if again.len() == pending.len() {
            // No progress (the limiter is unavailable): ask again shortly, not in a hot loop.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pending = again;
        if !only_unavailable {
            break;
        }
    }
    items.not_sent = pending.iter().map(|&i| id(i)).collect();
    report.batch = Some(items);
    report
}

// ---------------------------------------------------------------------------------------------
// The harness side.

/// How long the harness waits for any one event before it gives up: a watchdog against a hung
/// worker, far beyond what a run takes on a busy machine.
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// Worker processes, killed when dropped.
pub struct Workers {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    events: mpsc::Receiver<(usize, Event)>,
}

impl Workers {
    /// Starts one process of `program` (with `args`) per config, each with `token`, and waits
    /// until every one is ready.
    pub fn start(program: &Path, args: &[&str], token: &str, configs: &[WorkerConfig]) -> Self {
        Self::start_with(program, args, &[(TOKEN_ENV, token)], configs)
    }

    /// [`start`](Self::start) with more environment (e.g. [`CLIENT_SECRET_ENV`]).
    pub fn start_with(
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        configs: &[WorkerConfig],
    ) -> Self {
        let (tx, events) = mpsc::channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for (n, config) in configs.iter().enumerate() {
            let json = serde_json::to_string(config).expect("a config serializes");
            let mut child = Command::new(program)
                .args(args)
                .env(WORKER_ENV, json)
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            stdins.push(child.stdin.take());
            let stdout = child.stdout.take().expect("stdout is piped");
            let mut stderr = child.stderr.take().expect("stderr is piped");
            let tx = tx.clone();
            std::thread::spawn(move || {
                // stderr on a thread of its own, so a chatty worker never blocks on it.
                let errors = std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
                    text
                });
                let mut other = String::new();
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // libtest writes `test worker_process ... ` with no line end before it.
                    let Some(rest) = line.find(PREFIX).map(|at| &line[at + PREFIX.len()..]) else {
                        other.push_str(&line);
                        other.push('\n');
                        continue;
                    };
                    let rest = rest.trim();
                    let event = if rest == "ready" {
                        Event::Ready
                    } else if rest == "unavailable" {
                        Event::Unavailable
                    } else if let Some(json) = rest.strip_prefix("report ") {
                        match serde_json::from_str(json) {
                            Ok(report) => Event::Report(Box::new(report)),
                            Err(e) => Event::Exited(Err(format!("a bad report ({e}): {json}"))),
                        }
                    } else {
                        Event::Exited(Err(format!("an unknown line: {line}")))
                    };
                    if tx.send((n, event)).is_err() {
                        return;
                    }
                }
                let stderr = errors.join().unwrap_or_default();
                let outcome = if stderr.contains(PREFIX) || stderr.contains("panicked") {
                    Err(format!("stdout:\n{other}\nstderr:\n{stderr}"))
                } else {
                    Ok(())
                };
                let _ = tx.send((n, Event::Exited(outcome)));
            });
            children.push(child);
        }
        let mut workers = Self {
            children,
            stdins,
            events,
        };
        let mut ready = vec![false; configs.len()];
        while !ready.iter().all(|r| *r) {
            match workers.next() {
                (n, Event::Ready) => ready[n] = true,
                (n, other) => panic!("worker {n} before it was ready: {other:?}"),
            }
        }
        workers
    }

    /// The next event of any worker (panics after [`WATCHDOG`] without one).
    pub fn next(&mut self) -> (usize, Event) {
        match self.events.recv_timeout(WATCHDOG) {
            Ok(event) => event,
            Err(_) => panic!("no worker said anything for {WATCHDOG:?}"),
        }
    }

    /// Kills every worker with SIGKILL (a crash: no cleanup, no lock released) and waits for
    /// them to end.
    pub fn kill(mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Releases every worker at once.
    pub fn go(&mut self) {
        for stdin in &mut self.stdins {
            let mut stdin = stdin.take().expect("go is said once");
            stdin
                .write_all(b"go\n")
                .and_then(|()| stdin.flush())
                .expect("a worker reads its stdin");
        }
    }

    /// Waits until `n` workers have seen the limiter unavailable (other events but reports are
    /// dropped; a report before that fails the test).
    pub fn wait_unavailable(&mut self, n: usize) {
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < n {
            match self.next() {
                (w, Event::Unavailable) => {
                    seen.insert(w);
                }
                (w, other) => panic!("worker {w} before Redis's outage was seen: {other:?}"),
            }
        }
    }

    /// Every worker's report, in the order of the configs; each worker exited cleanly.
    pub fn reports(mut self) -> Vec<Report> {
        let count = self.children.len();
        let mut reports: Vec<Option<Report>> = vec![None; count];
        let mut exited = vec![false; count];
        while !exited.iter().all(|e| *e) {
            match self.next() {
                (n, Event::Report(report)) => reports[n] = Some(*report),
                (n, Event::Exited(Ok(()))) => exited[n] = true,
                (n, Event::Exited(Err(e))) => panic!("worker {n} failed: {e}"),
                (_, Event::Unavailable | Event::Ready) => {}
            }
        }
        for (n, child) in self.children.iter_mut().enumerate() {
            let status = child.wait().expect("a worker can be waited for");
            assert!(status.success(), "worker {n} exited with {status}");
        }
        reports
            .into_iter()
            .enumerate()
            .map(|(n, r)| r.unwrap_or_else(|| panic!("worker {n} sent no report")))
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The reports' counts, added up.
pub fn total(reports: &[Report]) -> Counts {
    let mut counts = Counts::default();
    for report in reports {
        counts.merge(report.counts.clone());
    }
    counts
}

/// The aggregate rate of successful answers across all workers: (answers - 1) over the time from
/// the first to the last, in requests per second.
pub fn aggregate_rate(reports: &[Report]) -> Option<f64> {
    let first = reports.iter().filter_map(|r| r.first_ok_us).min()?;
    let last = reports.iter().filter_map(|r| r.last_ok_us).max()?;
    let ok: u64 = reports.iter().map(|r| r.counts.ok).sum();
    (last > first && ok > 1).then(|| (ok - 1) as f64 / ((last - first) as f64 / 1e6))
}
