//! A widget's back end: Salesbot's `widget_request` and the widget's disposable token.
//!
//! **Salesbot `widget_request`.** A bot step of the widget POSTs JSON to the widget's URL:
//! `token` (a JWT signed HS512 with the integration's client secret), `data` (the step's
//! values) and `return_url` (where to continue the bot). [`WidgetRequest`] reads the body,
//! [`BotTokenVerifier`] checks the token and types its claims ([`BotTokenClaims`]), and
//! [`continue_widget_request`](crate::kommo::Client::continue_widget_request) continues the bot
//! on the client's own account, with `data` and `execute_handlers`.
//!
//! **Disposable token.** The widget's front end calls its back end with an `X-Auth-Token`
//! header (a JWT signed HS256, meant for the redirect URI's `scheme://host`):
//! [`DisposableTokenVerifier`] checks it and types its claims ([`DisposableTokenClaims`]).
//!
//! Framework-neutral: everything takes bytes and header values and gives typed values or a
//! typed error ([`RequestError`], [`TokenError`], [`ReturnUrlError`]); none of them, and no
//! `Debug` output, carries a token or the secret.
//!
//! Sources: the official PHP SDK (amocrm/amocrm-api-php, `src/AmoCRM/OAuth/AmoCRMOAuth.php`
//! `parseBotDisposableToken` and `parseDisposableToken`, `src/AmoCRM/Models/BotDisposableTokenModel.php`,
//! `src/AmoCRM/Models/DisposableTokenModel.php`), Kommo's pages "One-time tokens"
//! (developers.kommo.com/docs/one-time-tokens) and "SalesBot widget block execution
//! confirmation" (developers.kommo.com/reference/salesbot-widget-block-execution-confirmation).
//!
//! ```
//! use lead_intake::widget::*;
//!
//! /// The handler of the widget's URL: the body and its Content-Type as received.
//! async fn on_widget_request(
//!     kommo: &lead_intake::kommo::Client,
//!     verifier: &BotTokenVerifier,
//!     content_type: Option<&str>,
//!     body: &[u8],
//! ) -> Result<(), Box<dyn std::error::Error>> {
//!     let request = WidgetRequest::from_http(content_type, body)?;
//!     let claims = request.verify(verifier)?;
//!     println!("{:?} {} of account {}", claims.entity_type, claims.entity_id, claims.account_id);
//!     // ... the widget's work, then the bot goes on:
//!     kommo
//!         .continue_widget_request(&request)
//!         .data(serde_json::Map::from_iter([("status".to_string(), "done".into())]))
//!         .send()
//!         .await?;
//!     Ok(())
//! }
//!
//! // What Kommo sends, signed here as Kommo signs it.
//! let secret = lead_intake::Secret::new("client-secret");
//! let exp = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
//! let claims = BotTokenClaims::new("https://mycompany.kommo.com", 31, "mycompany", "c0ffee",
//!     1001, EntityType::Leads, BotType::Salesbot, exp);
//! let body = serde_json::json!({
//!     "token": sign_bot_token(&claims, &secret),
//!     "data": {"phone": "+1 415 555"},
//!     "return_url": "https://mycompany.kommo.com/api/v4/salesbot/4131/continue/7a1c2e",
//! });
//! let request = WidgetRequest::from_http(Some("application/json"), body.to_string().as_bytes())?;
//! let verifier = BotTokenVerifier::new(secret).at(exp - chrono::Duration::minutes(1));
//! assert_eq!(request.verify(&verifier)?.entity_id, 1001);
//! assert_eq!(request.continue_target()?.bot_id(), "4131");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod continue_bot;
mod request;
mod token;

pub use continue_bot::{ContinueFrom, ContinueWidgetRequest};
pub use request::{ContinueTarget, RequestError, ReturnUrlError, WidgetRequest};
#[cfg(feature = "fuzzing")]
pub(crate) use token::sign_parts;
pub use token::{
    Algorithm, BotTokenClaims, BotTokenVerifier, BotType, DEFAULT_LEEWAY, DisposableTokenClaims,
    DisposableTokenVerifier, EntityType, TokenError, TokenPart, sign_bot_token,
    sign_disposable_token, sign_token,
};
