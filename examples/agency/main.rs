//! An agency's service in two copies, one Kommo account, one Redis. The service is
//! `service.rs` (the part a user writes); this file is the run that shows it works, and
//! `processes.rs` what the run starts.
//!
//! `cargo run --example agency --features redis` (needs `redis-server`:
//! `scripts/install-redis.sh`; or `REDIS_URL` pointing at a Redis 6.2+ of your own).
//!
//! The run starts, as real OS processes where the service would have them:
//!
//! - Redis (a `redis-server` of its own, on a Unix socket in a temporary folder), unless
//!   `REDIS_URL` is set;
//! - the fake Kommo and CloseBot (`lead-intake-fake`, in this process), enforcing Kommo's 7
//!   requests a second, with 25 CloseBot sources (19 connected), a Kommo source that is not the
//!   service's (`phone`), and a mirror of a CloseBot source that is gone (`cb-src-999`);
//! - a front door (a load balancer) that sends every webhook to *every* copy (Kommo delivers a
//!   webhook at least once; this is that at its worst, so every lead is raced) and each
//!   `widget_request` to the next copy in turn;
//! - two copies of this program as the service (`AGENCY_WORKER=1`), which sync their sources at
//!   the same moment.
//!
//! Then it plays Kommo's users: stores the OAuth pair once (the integration's installation),
//! expires every access token, sends 8 web forms (the fake then sends Kommo's webhook) and two
//! Salesbot `widget_request`s. It exits non-zero unless: each connected CloseBot source is
//! mirrored once, the stale mirror deleted and the other source left alone; every lead is
//! decided once, as the service's rule says, and no copy failed on one; Kommo answered no 429;
//! one token refresh served both copies; both bots were continued.

#[path = "processes.rs"]
mod processes;
#[path = "service.rs"]
mod service;

use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, Instant};

use lead_intake::kommo::types::{
    AddIncomingForm, ContactInput, FormsMetadata, IncomingLeadEmbeddedInput,
};
use lead_intake::oauth;
use lead_intake::prelude::*;
use lead_intake::shared::{RedisConnection, RedisRateLimit, RedisTokenStore};
use lead_intake::webhooks::{self, Event};
use lead_intake_fake::{Config, FakeServer, Faults, Fixtures};
use processes::{Copy, FrontDoor, RedisServer, Said};
use serde_json::json;
use tokio::sync::mpsc;

const COPIES: usize = 2;
/// The web forms sent, by source: those through a `cb-` source are to be accepted.
const FORMS: [&str; 8] = [
    "cb-src-001",
    "cb-src-002",
    "web-form",
    "cb-src-003",
    "cb-src-005",
    "web-form",
    "cb-src-006",
    "cb-src-007",
];
/// The connected CloseBot sources among the fake's 25 (those not numbered a multiple of 4).
const CONNECTED: usize = 19;
/// The longest the run may take before it fails (a guard against a hang, never waited out).
const WATCHDOG: Duration = Duration::from_secs(90);

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    if std::env::var_os("AGENCY_WORKER").is_some() {
        // A copy of the service: it stops when its standard input closes (the run is over).
        let settings = service::Settings::from_env()?;
        let (closed, stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = closed.send(());
        });
        return runtime.block_on(service::run(settings, async {
            let _ = stop.await;
        }));
    }
    let failed = runtime.block_on(async {
        tokio::time::timeout(WATCHDOG, the_run())
            .await
            .map_err(|_| format!("the run did not end within {WATCHDOG:?}"))?
    })?;
    if failed > 0 {
        return Err(format!("{failed} of the run's checks failed (FAIL above)").into());
    }
    println!("agency: every check passed");
    Ok(())
}

/// Everything, in order; returns how many checks failed.
async fn the_run() -> Result<usize, Box<dyn Error>> {
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

    // The front door listens first: the fake is told where to send webhooks and widget_request.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let door_url = format!("http://{}", listener.local_addr()?);
    let door = FrontDoor::serve(listener);
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

    // The integration's installation: the authorization code's pair, stored in Redis once. The
    // token request counts towards Kommo's limit too, so it takes its turn at the shared one.
    let redis = RedisConnection::open(redis_url.as_str())?;
    let limit = RedisRateLimit::kommo_default(&redis, shared_name.as_str())?;
    let turn = limit.acquire().await?;
    let app = fake.oauth_app();
    let pair = oauth::exchange_code(&fake.base_url(), &app, &fake.authorization_code()).await;
    turn.finish().await;
    oauth::store_tokens(&RedisTokenStore::new(&redis, shared_name.as_str())?, pair?).await?;

    // The copies, started together; each says where it listens, then how its sync went.
    let integration = fake.oauth();
    let env = [
        ("KOMMO_BASE_URL", fake.base_url()),
        ("CLOSEBOT_BASE_URL", fake.base_url()),
        ("CLOSEBOT_KEY", fake.closebot_key().expose().to_string()),
        ("REDIS_URL", redis_url.clone()),
        ("SHARED_NAME", shared_name.clone()),
        ("KOMMO_CLIENT_ID", integration.client_id().to_string()),
        (
            "KOMMO_CLIENT_SECRET",
            integration.client_secret().expose().to_string(),
        ),
        ("KOMMO_REDIRECT_URI", integration.redirect_uri().to_string()),
    ];
    let (said_tx, mut said) = mpsc::unbounded_channel();
    let copies = (0..COPIES)
        .map(|copy| Copy::start(copy, &env, said_tx.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut next_line = async || match said.recv().await {
        Some((copy, Said::Line(line))) => {
            println!("copy {copy}: {line}");
            Ok((copy, line))
        }
        _ => Err("a copy ended before the run was over (its errors are above)"),
    };
    let mut addresses = vec![String::new(); COPIES];
    let mut synced = 0;
    while synced < COPIES {
        let (copy, line) = next_line().await?;
        if let Some(url) = line.strip_prefix("listening ") {
            addresses[copy] = url.to_string();
        }
        synced += usize::from(line.starts_with("synced "));
    }
    door.open(addresses);

    // Every access token expires now: both copies need the next pair at the same moment.
    fake.expire_access_tokens();

    // The website sends its forms through the API (the fake then sends Kommo's webhook). It is
    // the same integration, so it takes its turns at the same shared limit.
    let website = lead_intake::kommo::Client::builder()
        .base_url(&fake.base_url())
        .token(fake.kommo_token())
        .rate_limiter(limit)
        .build()?;
    let forms: Vec<_> = (1..)
        .zip(FORMS)
        .map(|(n, source)| {
            let form = FormsMetadata::new()
                .with_form_id("contact")
                .with_form_name("Contact us");
            // Kommo refuses a form identical to one it has (`Duplicate`): each visitor differs.
            let visitor = ContactInput::new().with_name(format!("Visitor {n}"));
            let entities = IncomingLeadEmbeddedInput::new().with_contacts(vec![visitor]);
            AddIncomingForm::new(source, "Website", form, entities)
        })
        .collect();
    let added = website
        .add_incoming_forms()
        .body(forms)
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

    // Until each copy has said what it did with every lead, and both bots went on.
    let mut outcomes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut widgets = 0;
    while outcomes.values().map(Vec::len).sum::<usize>() < COPIES * uids.len() || widgets < 2 {
        let (_, line) = next_line().await?;
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["lead", uid, outcome, ..] => outcomes
                .entry(uid.to_string())
                .or_default()
                .push(outcome.to_string()),
            ["widget", ..] => widgets += 1,
            _ => {}
        }
    }
    // Each decision sends a webhook too; once they are through (or a lead was left undecided:
    // the checks say which), the copies stop.
    let _ = tokio::time::timeout(Duration::from_secs(10), fake.webhooks_sent(1 + uids.len())).await;
    for copy in copies {
        copy.stop()?;
    }

    let failed = checks(&fake, &uids, &outcomes);
    let requests = fake.stats().requests;
    println!(
        "agency: {requests} requests to the fake in {:.1?}",
        started.elapsed()
    );
    Ok(failed)
}

/// The checks, from what the fake holds (the ground truth) and what the copies said; prints
/// each and returns how many failed.
fn checks(fake: &FakeServer, uids: &[String], outcomes: &BTreeMap<String, Vec<String>>) -> usize {
    let mut failed = 0;
    let mut check = |ok: bool, what: String| {
        println!("{} {what}", if ok { "ok:  " } else { "FAIL:" });
        failed += usize::from(!ok);
    };

    let mut sources = BTreeMap::<String, usize>::new();
    for source in fake.state()["kommo"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = source["external_id"].as_str().unwrap_or_default();
        *sources.entry(id.to_string()).or_default() += 1;
    }
    let mirrored = sources
        .keys()
        .filter(|id| id.starts_with("cb-src-0"))
        .count();
    let twice: Vec<_> = sources
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    check(
        mirrored == CONNECTED && twice.is_empty(),
        format!(
            "each connected CloseBot source mirrored once ({mirrored}; more than once: {twice:?})"
        ),
    );
    check(
        sources.contains_key("phone") && !sources.contains_key("cb-src-999"),
        "the source that is not ours left alone, the stale mirror deleted".to_string(),
    );

    let stored = fake.incoming_leads();
    for (uid, source) in uids.iter().zip(FORMS) {
        let state = stored
            .iter()
            .find(|lead| &lead.uid == uid)
            .map(|lead| lead.state.as_str());
        let want = if source.starts_with(service::PREFIX) {
            "accepted"
        } else {
            "declined"
        };
        let said = outcomes.get(uid).cloned().unwrap_or_default();
        let by_a_copy = said
            .iter()
            .filter(|o| *o == "accepted" || *o == "declined")
            .count();
        check(
            state == Some(want) && by_a_copy == 1 && !said.iter().any(|o| o == "error"),
            format!("lead from {source} {want} once (it is {state:?}; the copies said {said:?})"),
        );
    }
    let decided = decisions_in_webhooks(fake);
    check(
        decided.len() == uids.len() && uids.iter().all(|uid| decided.get(uid) == Some(&1)),
        format!(
            "one decision per lead in Kommo's webhooks ({:?})",
            decided.values().collect::<Vec<_>>()
        ),
    );

    let stats = fake.stats();
    check(
        stats.rate_limited == 0,
        format!(
            "no 429 in {} requests ({} answered 429)",
            stats.requests, stats.rate_limited
        ),
    );
    let oauth = fake.oauth_stats();
    check(
        oauth.refreshes == 1 && oauth.revoked_reuses == 0,
        format!(
            "one token refresh for both copies ({} refreshes, {} refresh tokens sent again)",
            oauth.refreshes, oauth.revoked_reuses
        ),
    );
    let continued = fake.continued_bots().len();
    check(
        continued == 2,
        format!("both bots continued ({continued} continued)"),
    );
    let violations = fake.violations();
    check(
        violations.is_empty(),
        format!("every answer of the fake by the spec ({violations:?})"),
    );
    failed
}

/// How many times each lead was decided, as Kommo's webhooks tell (`unsorted[delete]`).
fn decisions_in_webhooks(fake: &FakeServer) -> BTreeMap<String, usize> {
    let mut decided = BTreeMap::new();
    for delivery in fake.webhook_deliveries() {
        let form = Some("application/x-www-form-urlencoded");
        let Ok(hook) = webhooks::parse(form, delivery.body.as_bytes()) else {
            continue;
        };
        for event in hook.events() {
            if let Event::IncomingLeadDeleted(lead) = event {
                *decided.entry(lead.uid.clone()).or_default() += 1;
            }
        }
    }
    decided
}
