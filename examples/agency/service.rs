//! The agency service: what one copy does. Run any number of copies against one Kommo account
//! and one Redis; they share the account's OAuth token pair and its rate limit through Redis.
//!
//! Each copy:
//!
//! 1. mirrors the agency's connected CloseBot sources into Kommo sources `cb-<sourceId>`
//!    (`sync_sources`: copies that sync at the same time all end complete, and only `cb-`
//!    sources are ever deleted, so the account's other sources are left alone);
//! 2. serves `POST /webhooks`: every incoming lead Kommo announces is read back through the
//!    API (a webhook is not signed: it is a hint) and accepted if it came through one of our
//!    `cb-` sources, declined if not; when another copy (or a person) decided it first, that
//!    is an answer, not an error;
//! 3. serves `POST /widget`: Salesbot's `widget_request`, verified (the token's signature and
//!    the `return_url` on the token's account), answered at once, the bot continued after.
//!
//! It prints one line per thing it did (`lead <uid> accepted`, ...): `main.rs` reads them.

use std::error::Error;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use axum::routing::post;
use lead_intake::kommo::Decided;
use lead_intake::kommo::types::{AcceptIncomingLeadRequest, AddSource, DeclineIncomingLeadRequest};
use lead_intake::oauth::{OAuth, OAuthApp};
use lead_intake::prelude::*;
use lead_intake::shared::{RedisConnection, RedisRateLimit, RedisTokenStore};
use lead_intake::sync::{SyncOptions, SyncReport};
use lead_intake::webhooks::{self, Event};
use lead_intake::widget::{BotTokenVerifier, VerifiedWidgetRequest, WidgetRequest};

/// The prefix of the Kommo sources this service manages.
pub const PREFIX: &str = "cb-";

/// What a copy needs, from its environment (the names `main.rs` sets).
pub struct Settings {
    /// `KOMMO_BASE_URL`: `https://mycompany.kommo.com`, or the fake's base URL.
    pub kommo_base_url: String,
    /// `CLOSEBOT_BASE_URL` and `CLOSEBOT_KEY`: the agency's CloseBot API.
    pub closebot_base_url: String,
    pub closebot_key: Secret,
    /// `REDIS_URL`: the Redis every copy shares.
    pub redis_url: String,
    /// `SHARED_NAME`: one name per integration and account, the same in every copy.
    pub shared_name: String,
    /// `KOMMO_CLIENT_ID`, `KOMMO_CLIENT_SECRET`, `KOMMO_REDIRECT_URI`: the integration.
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        Ok(Self {
            kommo_base_url: var("KOMMO_BASE_URL")?,
            closebot_base_url: var("CLOSEBOT_BASE_URL")?,
            closebot_key: Secret::new(var("CLOSEBOT_KEY")?),
            redis_url: var("REDIS_URL")?,
            shared_name: var("SHARED_NAME")?,
            client_id: var("KOMMO_CLIENT_ID")?,
            client_secret: Secret::new(var("KOMMO_CLIENT_SECRET")?),
            redirect_uri: var("KOMMO_REDIRECT_URI")?,
        })
    }
}

/// What the two handlers share.
struct Service {
    kommo: lead_intake::kommo::Client,
    verifier: BotTokenVerifier,
}

/// Runs one copy until `stop` resolves (then lets the requests in flight finish).
pub async fn run(
    settings: Settings,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn Error>> {
    // Kommo, through Redis: the token pair stored when the user installed the integration
    // (`main.rs` stands in for that), refreshed by one copy for all; 7 requests a second for all.
    let redis = RedisConnection::open(settings.redis_url.as_str())?;
    let name = settings.shared_name.as_str();
    let app = OAuthApp::new(
        settings.client_id.as_str(),
        settings.client_secret.clone(),
        settings.redirect_uri.as_str(),
    );
    let kommo = lead_intake::kommo::Client::builder()
        .base_url(&settings.kommo_base_url)
        .oauth(OAuth::from_store(app, RedisTokenStore::new(&redis, name)?).await?)
        .rate_limiter(RedisRateLimit::kommo_default(&redis, name)?)
        .build()?;
    let closebot = lead_intake::closebot::Client::from_base_url(
        &settings.closebot_base_url,
        settings.closebot_key.clone(),
    )?;
    // Salesbot signs its tokens with the integration's secret key (refused here if too short).
    let verifier = BotTokenVerifier::new(settings.client_secret.clone())?;

    // Listen before syncing, so no webhook finds the door closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening http://{}", listener.local_addr()?);
    let service = Arc::new(Service {
        kommo: kommo.clone(),
        verifier,
    });
    let router = Router::new()
        .route("/webhooks", post(on_webhook))
        .route("/widget", post(on_widget_request))
        .with_state(service);
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
    });

    let report = mirror_closebot_sources(&kommo, &closebot).await?;
    println!("synced {report}");
    if !report.is_complete() {
        return Err(format!("the sources are not as desired: {report}").into());
    }
    server.await??;
    Ok(())
}

/// Step 1: every connected CloseBot source is a Kommo source `cb-<sourceId>`; a `cb-` source
/// whose CloseBot source is gone (or disconnected) is deleted; other sources are not touched.
async fn mirror_closebot_sources(
    kommo: &lead_intake::kommo::Client,
    closebot: &lead_intake::closebot::Client,
) -> Result<SyncReport, Box<dyn Error>> {
    let sources: Vec<_> = closebot
        .list_sources_pager(|req| req)
        .typed_items()
        .try_collect()
        .await?;
    let desired: Vec<AddSource> = sources
        .iter()
        .filter(|source| source.connected == Some(true))
        .filter_map(|source| {
            let id = source.source_id.as_deref()?;
            let name = source
                .name
                .clone()
                .unwrap_or_else(|| format!("CloseBot {id}"));
            Some(AddSource::new(name, format!("{PREFIX}{id}")))
        })
        .collect();
    let options = SyncOptions::new()
        .with_delete_undesired(true)
        .managing_prefix(PREFIX);
    Ok(kommo.sync_sources(&desired, &options).await?)
}

/// Step 2: `POST /webhooks`. Answered at once; each new incoming lead is decided on a task.
async fn on_webhook(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let hook = match webhooks::parse(content_type(&headers), &body) {
        Ok(hook) => hook,
        Err(e) => {
            eprintln!("webhook refused: {e}");
            return StatusCode::BAD_REQUEST;
        }
    };
    for event in hook.events() {
        // Leads leaving the list (accepted or declined, by us or anyone) need nothing.
        if let Event::IncomingLeadAdded(lead) = event {
            let (service, uid) = (service.clone(), lead.uid.clone());
            tokio::spawn(async move {
                match decide(&service.kommo, &uid).await {
                    Ok(outcome) => println!("lead {uid} {outcome}"),
                    Err(e) => println!("lead {uid} error {e}"),
                }
            });
        }
    }
    for odd in hook.unrecognized() {
        eprintln!("webhook event not understood: {odd}");
    }
    StatusCode::OK
}

/// Accepts an incoming lead that came through one of our sources, declines the others. Returns
/// what happened, as a word: `accepted` or `declined` (by this call), `already-accepted`,
/// `already-declined`, `already-linked` (by someone before us), `gone` (not waiting any more
/// when read back).
async fn decide(
    kommo: &lead_intake::kommo::Client,
    uid: &str,
) -> Result<&'static str, lead_intake::kommo::Error> {
    // Read it back with our own token: only Kommo's answer says where it came from.
    let Some(lead) = kommo.get_incoming_lead().uid(uid).send().or_gone().await? else {
        // Kommo shows only waiting leads: another copy decided it between the webhook and now.
        return Ok("gone");
    };
    let ours = lead
        .source_uid
        .as_deref()
        .is_some_and(|s| s.starts_with(PREFIX));
    // Another copy got the same webhook and may decide at the same moment: whoever is second
    // gets `Already...`, in one request, without reading the lead again.
    let decided = if ours {
        kommo
            .accept_incoming_lead_idempotent(uid, AcceptIncomingLeadRequest::new())
            .await?
    } else {
        kommo
            .decline_incoming_lead_idempotent(uid, DeclineIncomingLeadRequest::new())
            .await?
    };
    Ok(match decided {
        Decided::Accepted(_) => "accepted",
        Decided::Declined(_) => "declined",
        Decided::AlreadyAccepted => "already-accepted",
        Decided::AlreadyDeclined => "already-declined",
        _ => "already-linked",
    })
}

/// Step 3: `POST /widget`. Verified before anything is done, answered at once, the bot
/// continued on a task (Kommo waits for our answer, not for our work).
async fn on_widget_request(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let request = WidgetRequest::from_http(content_type(&headers), &body)
        .and_then(|request| request.verify(&service.verifier));
    let request = match request {
        Ok(request) => request,
        // A forged token, an expired one, another account's `return_url`: the error says
        // which, never the token or the secret.
        Err(e) => {
            eprintln!("widget_request refused: {e}");
            return StatusCode::UNAUTHORIZED;
        }
    };
    tokio::spawn(async move {
        let lead = request.claims().entity_id;
        match continue_bot(&service.kommo, &request).await {
            Ok(()) => println!("widget lead {lead} continued"),
            Err(e) => println!("widget lead {lead} error {e}"),
        }
    });
    StatusCode::OK
}

/// The widget's work: here, telling the bot which lead was checked and by which copy.
async fn continue_bot(
    kommo: &lead_intake::kommo::Client,
    request: &VerifiedWidgetRequest,
) -> Result<(), lead_intake::kommo::Error> {
    let data = serde_json::Map::from_iter([
        (
            "checked_lead".to_string(),
            request.claims().entity_id.into(),
        ),
        ("worker".to_string(), std::process::id().into()),
    ]);
    kommo
        .continue_widget_request(request)
        .data(data)
        .send()
        .await
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
}
