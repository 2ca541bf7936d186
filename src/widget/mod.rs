//! A widget's back end: Salesbot's `widget_request` and the widget's disposable token.
//!
//! **Salesbot `widget_request`.** A bot step of the widget POSTs JSON to the widget's URL:
//! `token` (a JWT signed HS512 with the integration's client secret), `data` (the step's
//! values) and `return_url` (where to continue the bot). [`WidgetRequest`] reads the body;
//! [`WidgetRequest::verify`] checks the token with a [`BotTokenVerifier`], types its claims
//! ([`BotTokenClaims`]) and requires the `return_url` on the account the token names (every
//! account that installs the integration gets tokens signed with the same secret); only that
//! [`VerifiedWidgetRequest`] can be continued, by
//! [`continue_widget_request`](crate::kommo::Client::continue_widget_request) on the client of
//! that same account, with `data` and `execute_handlers`.
//!
//! **Disposable token.** The widget's front end calls its back end with an `X-Auth-Token`
//! header (a JWT signed HS256, meant for the redirect URI's `scheme://host`):
//! [`DisposableTokenVerifier`] checks it and types its claims ([`DisposableTokenClaims`]);
//! [`DisposableTokenVerifier::verify_first_use`] also refuses a token already used (its `jti`,
//! kept until it expires in a [`ReplayGuard`]: [`SeenTokens`] in one process,
//! `lead_intake::shared::RedisSeenTokens` for several).
//!
//! **Keys and clocks.** The verifiers refuse a client secret shorter than their hash (64 bytes
//! for HS512, 32 for HS256: RFC 7518 §3.2; Kommo's are 64 letters and digits) with
//! [`ConfigError::WeakKey`](crate::ConfigError::WeakKey), and allow [`DEFAULT_LEEWAY`] (10 s)
//! of clock skew on `exp`, `nbf` and `iat` unless told otherwise.
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
//!     // The token, and the return_url on the account the token was signed for.
//!     let request = request.verify(verifier)?;
//!     let claims = request.claims();
//!     println!("{:?} {} of account {}", claims.entity_type, claims.entity_id, claims.account_id);
//!     // ... the widget's work, then the bot goes on (`kommo` must be that account's client):
//!     kommo
//!         .continue_widget_request(&request)
//!         .data(serde_json::Map::from_iter([("status".to_string(), "done".into())]))
//!         .send()
//!         .await?;
//!     Ok(())
//! }
//!
//! // What Kommo sends, signed here as Kommo signs it.
//! let secret = lead_intake::Secret::new("hO3kxLw0vTq9ZcNa5RjfE1uYb8sDm2GpXi7KtV6eWnA4yCrU0lHdJ9oBgF3QzM5S");
//! let exp = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
//! let claims = BotTokenClaims::new("https://mycompany.kommo.com", 31, "mycompany", "c0ffee",
//!     1001, EntityType::Leads, BotType::Salesbot, exp);
//! let body = serde_json::json!({
//!     "token": sign_bot_token(&claims, &secret),
//!     "data": {"phone": "+1 415 555"},
//!     "return_url": "https://mycompany.kommo.com/api/v4/salesbot/4131/continue/7a1c2e",
//! });
//! let request = WidgetRequest::from_http(Some("application/json"), body.to_string().as_bytes())?;
//! let verifier = BotTokenVerifier::new(secret)?.at(exp - chrono::Duration::minutes(1));
//! let verified = request.verify(&verifier)?;
//! assert_eq!(verified.claims().entity_id, 1001);
//! assert_eq!(verified.target().bot_id(), "4131");
//!
//! // The same token with a return_url on another account is refused.
//! let other = body.as_object().unwrap().clone().into_iter().map(|(k, v)| match k.as_str() {
//!     "return_url" => (k, "https://othercompany.kommo.com/api/v4/salesbot/1/continue/2".into()),
//!     _ => (k, v),
//! }).collect::<serde_json::Map<_, _>>();
//! let other = WidgetRequest::from_json(serde_json::Value::Object(other).to_string().as_bytes())?;
//! assert!(matches!(other.verify(&verifier), Err(RequestError::OtherAccount { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
#![doc = include_str!("../guides/widget.md")]

mod continue_bot;
mod replay;
mod request;
mod token;

pub use continue_bot::{ContinueFrom, ContinueWidgetRequest};
pub use replay::{DEFAULT_SEEN_CAPACITY, ReplayGuard, SeenTokens};
pub use request::{
    ContinueTarget, RequestError, ReturnUrlError, VerifiedWidgetRequest, WidgetRequest,
};
#[cfg(feature = "fuzzing")]
pub(crate) use token::sign_parts;
pub use token::{
    Algorithm, BotTokenClaims, BotTokenVerifier, BotType, DEFAULT_LEEWAY, DisposableTokenClaims,
    DisposableTokenVerifier, EntityType, TokenError, TokenPart, sign_bot_token,
    sign_disposable_token, sign_token,
};
