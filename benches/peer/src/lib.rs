//! Nothing but the benchmark in `benches/overhead.rs`.
