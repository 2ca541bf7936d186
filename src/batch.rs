//! Batch chunking (work in progress).
