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
        match self.breaker.try_acquire() {
            Ok(permit) => ResponseFuture::new(Ok(permit), self.inner.call(req)),
            // The inner service stays ready and uncalled, which tower allows.
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}
