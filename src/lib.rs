// docs.rs cannot follow the README's links to the files beside it. Rustdoc joins these
// attributes into one text before reading it, and the first definition of a link name wins, so
// here `[BENCHMARKS.md]` and `[FUZZING.md]` lead to the same texts as pages of this crate.
#![doc = "[BENCHMARKS.md]: crate::_texts::benchmarks"]
#![doc = "[FUZZING.md]: crate::_texts::fuzzing"]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod answer;
mod auth;
pub mod batch;
mod builder;
mod clock;
pub mod closebot;
mod config;
pub mod error;
pub mod form;
/// The fuzz target's body (feature `fuzzing`; FUZZING.md). Not a public API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod kommo;
pub mod links;
pub mod list;
#[cfg(feature = "metrics")]
pub mod metrics;
// The same hooks, recording nothing.
#[cfg(not(feature = "metrics"))]
#[path = "metrics_off.rs"]
mod metrics;
pub mod oauth;
pub mod pagination;
pub mod ratelimit;
pub mod retry;
mod secret;
mod segment;
#[cfg(feature = "redis")]
pub mod shared;
pub mod spec;
pub mod sync;
mod text;
mod transport;
pub mod webhooks;
pub mod widget;
mod wire;

/// The texts that ship beside the code, as pages of the documentation: measured speed and memory
/// with the commands that reproduce them, and how the response decoders are fuzzed.
pub mod _texts {
    #[doc = include_str!("../BENCHMARKS.md")]
    pub mod benchmarks {}
    #[doc = include_str!("../FUZZING.md")]
    pub mod fuzzing {}
}

pub use config::ConfigError;
pub use secret::Secret;

/// Everything a caller needs in scope: `use lead_intake::prelude::*;`.
pub mod prelude {
    pub use crate::batch::{BatchOptions, BatchReport, ItemOutcome};
    pub use crate::error::{ApiError, ResponseExt};
    pub use crate::list::{Items, ListItem, UnrecognizedItem};
    pub use crate::oauth::{AuthError, OAuth, OAuthApp, TokenPair};
    pub use crate::pagination::{KommoPage, OnUnrecognized};
    pub use crate::ratelimit::RateLimiter;
    pub use crate::retry::RetryPolicy;
    pub use crate::{ConfigError, Secret};
    /// Stream combinators for the pagination streams (`next`, `try_next`, `try_collect`, ...).
    pub use futures_util::{StreamExt, TryStreamExt};
    pub use progenitor_client::ClientInfo;
}
