//! Pagination streams (work in progress).
