//! [`BodyTimeoutService`] and its future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use telltale_core::BoxError;
use tower_service::Service;

use super::ResponseBody;
use super::layer::Shared;

/// The service of [`BodyTimeoutLayer`](super::BodyTimeoutLayer).
#[derive(Clone, Debug)]
pub struct BodyTimeoutService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> BodyTimeoutService<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        BodyTimeoutService { inner, shared }
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BodyTimeoutService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The request's span, for the event of a timeout. Nothing else until
        // the body streams (see the body's `State::Owned`).
        let span = self.shared.idle.map(|_| tracing::Span::current());
        ResponseFuture {
            inner: self.inner.call(req),
            shared: self.shared.clone(),
            span,
        }
    }
}

pin_project! {
    /// The response future of [`BodyTimeoutService`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        shared: Arc<Shared>,
        span: Option<tracing::Span>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let shared = this.shared.clone();
        let span = this.span.take();
        Poll::Ready(Ok(res.map(|body| ResponseBody::new(body, shared, span))))
    }
}
