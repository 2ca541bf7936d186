#![forbid(unsafe_code)]
pub mod closebot;
pub mod kommo;
mod secret;
pub use secret::Secret;
