//! A widget's back end: Salesbot's `widget_request` ([`WidgetRequest`], [`BotTokenVerifier`]) and
//! the widget's disposable token ([`DisposableTokenVerifier`]); the guide below.
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
