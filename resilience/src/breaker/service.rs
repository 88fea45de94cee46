//! The breaker's tower service.

use std::task::{Context, Poll};

use http::{Request, Response};
use telltale_core::BoxError;
use tower_service::Service;

use super::{CircuitBreaker, ResponseBody, ResponseFuture};
use crate::error::Error;

/// A service behind a [`CircuitBreaker`]; see [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S> CircuitBreakerService<S> {
    /// Wraps `inner` in `breaker`.
    pub fn new(inner: S, breaker: CircuitBreaker) -> Self {
        CircuitBreakerService { inner, breaker }
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Calls `inner` if `breaker` admits the request; else the future answers the
/// rejection (the inner service stays ready and uncalled, which tower allows).
pub(crate) fn call_through<S, Req>(
    inner: &mut S,
    breaker: &CircuitBreaker,
    req: Req,
) -> ResponseFuture<S::Future>
where
    S: Service<Req>,
{
    call_through_at(inner, breaker, req, tokio::time::Instant::now())
}

/// [`call_through`] with the clock already read.
pub(crate) fn call_through_at<S, Req>(
    inner: &mut S,
    breaker: &CircuitBreaker,
    req: Req,
    now: tokio::time::Instant,
) -> ResponseFuture<S::Future>
where
    S: Service<Req>,
{
    match breaker.try_acquire_at(now) {
        Ok(permit) => ResponseFuture::running(permit, || inner.call(req)),
        Err(open) => ResponseFuture::rejected(open),
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CircuitBreakerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::Inner(e.into()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        call_through(&mut self.inner, &self.breaker, req)
    }
}
