mod generated {
    #![allow(clippy::all, missing_docs, unused_imports, dead_code, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/kommo.rs"));
}
pub use generated::*;

/// Per-client state.
#[derive(Clone, Debug, Default)]
pub struct ClientState;
