//! Turning rejections into HTTP responses, for servers: an open circuit
//! becomes `503 Service Unavailable` with `Retry-After`, a full bulkhead `503`
//! (or `429`) with `Retry-After: 1`. Other errors pass through.
//!
//! ```
//! use telltale_resilience::CircuitBreaker;
//! use telltale_resilience::reject::RejectionResponseLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let breaker = CircuitBreaker::builder("api").build().unwrap();
//! breaker.force_open();
//! let mut svc = ServiceBuilder::new()
//!     .layer(RejectionResponseLayer::new())
//!     .layer(breaker.layer())
//!     .service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     });
//! let res = svc.ready().await.unwrap().call(http::Request::new(String::new())).await.unwrap();
//! assert_eq!(res.status(), 503);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use telltale_core::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{Error, Rejection};

/// Maps rejections ([`CircuitOpen`](crate::CircuitOpen),
/// [`BulkheadFull`](crate::BulkheadFull)) found in the inner service's error
/// into responses. The response body is `B::default()`.
#[derive(Clone, Copy, Debug)]
pub struct RejectionResponseLayer {
    bulkhead_status: StatusCode,
}

impl Default for RejectionResponseLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RejectionResponseLayer {
    /// `503` for both rejections.
    pub fn new() -> Self {
        RejectionResponseLayer {
            bulkhead_status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The status of a full bulkhead (`429 Too Many Requests` is the other
    /// usual choice). Defaults to `503`.
    #[must_use]
    pub fn bulkhead_status(mut self, status: StatusCode) -> Self {
        self.bulkhead_status = status;
        self
    }
}

impl<S> Layer<S> for RejectionResponseLayer {
    type Service = RejectionResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RejectionResponse {
            inner,
            bulkhead_status: self.bulkhead_status,
        }
    }
}

/// The service of [`RejectionResponseLayer`].
#[derive(Clone, Debug)]
pub struct RejectionResponse<S> {
    inner: S,
    bulkhead_status: StatusCode,
}

impl<S, Req, B> Service<Req> for RejectionResponse<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Default,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = RejectionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        RejectionFuture {
            inner: self.inner.call(req),
            bulkhead_status: self.bulkhead_status,
        }
    }
}

pin_project! {
    /// The future of [`RejectionResponse`].
    #[derive(Debug)]
    pub struct RejectionFuture<F> {
        #[pin]
        inner: F,
        bulkhead_status: StatusCode,
    }
}

impl<F, B, E> Future for RejectionFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Default,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match ready!(this.inner.poll(cx)) {
            Ok(res) => Poll::Ready(Ok(res)),
            Err(e) => {
                let e: BoxError = e.into();
                let mapped = match Error::rejection_in(&*e) {
                    Some(Rejection::Open(open)) => Some(open.to_response()),
                    Some(Rejection::Full(full)) => Some(full.to_response(*this.bulkhead_status)),
                    None => None,
                };
                Poll::Ready(mapped.ok_or(e))
            }
        }
    }
}
