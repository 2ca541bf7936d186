//! A Kommo widget back end on axum: Salesbot's `widget_request` (verified, answered at once,
//! the bot continued after) and incoming-lead webhooks (typed events). See `app.rs`.
//!
//! ```sh
//! # Against the fake (lead-intake-fake), which plays Kommo's side:
//! cargo run -p lead-intake-fake -- --port 8080 --widget-url http://127.0.0.1:3000/widget \
//!     --webhook-url http://127.0.0.1:3000/webhooks &
//! KOMMO_BASE_URL=http://127.0.0.1:8080 KOMMO_TOKEN=fake-kommo-token \
//!     KOMMO_CLIENT_SECRET=fake-client-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHI cargo run --example widget_backend
//! curl -X POST http://127.0.0.1:8080/__admin/widget_request -d '{"bot_id": "4131", "data": {"a": 1}}'
//! ```
//!
//! With a real account: `KOMMO_BASE_URL=https://mycompany.kommo.com`, the integration's
//! long-lived token and its secret key, and `LISTEN` an address Kommo can reach (behind TLS).

#[path = "app.rs"]
mod app;

use lead_intake::Secret;
use lead_intake::widget::BotTokenVerifier;

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name} (see the comment at the top of main.rs)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base_url = var("KOMMO_BASE_URL")?;
    let token = Secret::new(var("KOMMO_TOKEN")?);
    let secret = Secret::new(var("KOMMO_CLIENT_SECRET")?);
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_string());

    let kommo = lead_intake::kommo::Client::from_base_url(&base_url, token)?;
    // A client secret shorter than 64 bytes is refused here (Kommo's are 64 letters and digits).
    let (router, mut done) = app::app(kommo, BotTokenVerifier::new(secret)?);
    tokio::spawn(async move {
        while let Some(done) = done.recv().await {
            println!("{done:?}");
        }
    });
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("widget back end on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
