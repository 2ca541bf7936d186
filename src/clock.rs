//! The wall clock, for the few values that are dates: token expiry, `Retry-After` dates.
//! Timers and deadlines use tokio's clock instead (`tokio::time::Instant`), so tests can pause
//! it.

use chrono::{DateTime, Utc};

/// The wall clock as a chrono time (chrono's own `Utc::now` needs its `clock` feature).
pub(crate) fn now_utc() -> DateTime<Utc> {
    std::time::SystemTime::now().into()
}
