//! [`RejectionResponseService`].

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use telltale_core::BoxError;
use tower_service::Service;

use super::{Mode, PassThrough, ResponseBody, ResponseFuture};

/// The service of [`RejectionResponseLayer`](super::RejectionResponseLayer).
pub struct RejectionResponseService<S, M = PassThrough> {
    inner: S,
    bulkhead_status: StatusCode,
    mode: M,
    /// A readiness error, answered (as a response) by the next call.
    not_ready: Option<BoxError>,
}

impl<S, M: Mode> RejectionResponseService<S, M> {
    pub(super) fn new(inner: S, bulkhead_status: StatusCode, mode: M) -> Self {
        RejectionResponseService {
            inner,
            bulkhead_status,
            mode,
            not_ready: None,
        }
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

impl<S: Clone, M: Mode> Clone for RejectionResponseService<S, M> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), self.bulkhead_status, self.mode)
    }
}

impl<S: fmt::Debug, M: Mode> fmt::Debug for RejectionResponseService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionResponseService")
            .field("inner", &self.inner)
            .field("bulkhead_status", &self.bulkhead_status)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for RejectionResponseService<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    M: Mode,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = M::Error;
    type Future = ResponseFuture<S::Future, M>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Breakers, bulkheads and chaos reserve in `call` and are ready when
        // the handler is; should the inner service fail readiness anyway,
        // `AnswerAll` answers that error as a response by the next call,
        // without calling the inner service.
        if self.not_ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => match M::pass(e.into()) {
                Ok(err) => Poll::Ready(Err(err)),
                Err(e) => {
                    self.not_ready = Some(e);
                    Poll::Ready(Ok(()))
                }
            },
        }
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let grpc = telltale_core::grpc::is_grpc(req.headers());
        match self.not_ready.take() {
            Some(err) => ResponseFuture::not_ready(err, self.bulkhead_status, grpc),
            None => ResponseFuture::new(self.inner.call(req), self.bulkhead_status, grpc),
        }
    }
}
