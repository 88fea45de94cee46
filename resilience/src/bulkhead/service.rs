//! The bulkhead's tower service.

use std::task::{Context, Poll};

use http::{Request, Response};
use telltale_core::BoxError;
use tower_service::Service;

use super::future::RespState;
use super::{Bulkhead, ResponseBody, ResponseFuture};
use crate::error::Error;

/// A service behind a [`Bulkhead`]; see [`BulkheadLayer`](super::BulkheadLayer).
#[derive(Clone, Debug)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S> BulkheadService<S> {
    /// Wraps `inner` in `bulkhead`.
    pub fn new(inner: S, bulkhead: Bulkhead) -> Self {
        BulkheadService { inner, bulkhead }
    }

    /// The bulkhead.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
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

pub(crate) fn call_through<S, ReqBody, B>(
    inner: &mut S,
    bulkhead: &Bulkhead,
    req: Request<ReqBody>,
) -> ResponseFuture<S, Request<ReqBody>>
where
    S: Service<Request<ReqBody>, Response = Response<B>> + Clone,
{
    if let Some(permit) = bulkhead.try_acquire_quiet() {
        return ResponseFuture {
            state: RespState::Called {
                fut: inner.call(req),
                permit: Some(permit),
            },
        };
    }
    if bulkhead.max_wait().is_zero() {
        return ResponseFuture {
            state: RespState::Rejected {
                error: Some(bulkhead.inner.reject(std::time::Duration::ZERO)),
            },
        };
    }
    // Keep the ready service for this request; leave a clone behind.
    let clone = inner.clone();
    let ready = std::mem::replace(inner, clone);
    ResponseFuture {
        state: RespState::Waiting {
            wait: bulkhead.wait(),
            service: ready,
            request: Some(req),
        },
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BulkheadService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Error;
    type Future = ResponseFuture<S, Request<ReqBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::Inner(e.into()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        call_through(&mut self.inner, &self.bulkhead, req)
    }
}
