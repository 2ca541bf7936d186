//! Without the `metrics` feature: the hooks of the request path record nothing and cost
//! nothing (the same functions as `metrics.rs`, empty).

use std::time::Duration;

use reqwest::{Method, Request, Response};

use crate::ratelimit::{Permit, RateLimiter, RateLimiterUnavailable};
use crate::retry::Attempt;

/// No label to keep.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Endpoint;

#[inline]
pub(crate) fn operation<F: FnOnce(Request) -> Fut, Fut>(
    _: Option<&'static str>,
    request: Request,
    send: F,
) -> Fut {
    send(request)
}

#[inline]
pub(crate) fn endpoint(_: &Request) -> Endpoint {
    Endpoint
}

#[inline]
pub(crate) async fn acquire(
    limiter: &RateLimiter,
    _: &Endpoint,
) -> Result<Permit, RateLimiterUnavailable> {
    limiter.acquire().await
}

#[inline]
pub(crate) fn answered(_: &Endpoint, _: &Method, _: &reqwest::Result<Response>, _: Duration) {}

#[inline]
pub(crate) fn retrying(_: &Endpoint, _: &Attempt) {}

#[inline]
pub(crate) fn token_refresh(_: bool, _: bool) {}

#[inline]
pub(crate) fn unrecognized_items(_: usize) {}
