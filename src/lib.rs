#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod closebot;
mod config;
pub mod error;
pub mod kommo;
mod links;
mod secret;

pub use config::ConfigError;
pub use secret::Secret;

/// Everything a caller needs in scope: `use lead_intake::prelude::*;`.
pub mod prelude {
    pub use crate::error::{ApiError, ResponseExt};
    pub use crate::{ConfigError, Secret};
    pub use progenitor_client::ClientInfo;
}
