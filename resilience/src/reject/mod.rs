//! Rejections and timeouts as responses, for servers, HTTP and gRPC alike:
//! [`RejectionResponseLayer`].
//!
//! | error | HTTP | gRPC (trailers-only, HTTP 200) |
//! | --- | --- | --- |
//! | [`CircuitOpen`](crate::CircuitOpen) | `503` + `Retry-After` (none when forced open) | `UNAVAILABLE` |
//! | [`BulkheadFull`](crate::BulkheadFull) | `503` (or `429`, [`bulkhead_status`](RejectionResponseLayer::bulkhead_status)) + `Retry-After: 1` | `RESOURCE_EXHAUSTED` |
//! | a timeout ([`telltale_core::is_timeout`]) | `504` | `DEADLINE_EXCEEDED` |
//! | any other error | passed through, or with [`answer_all`](RejectionResponseLayer::answer_all) `500` | `INTERNAL` |
//!
//! A request is gRPC when its content type is ([`telltale_core::grpc::is_grpc`]).
//! The errors are found anywhere in the error's source chain
//! ([`Error::rejection_in`](crate::Error::rejection_in)), so the layer may sit
//! outside other layers that box errors.
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
//!
//! let grpc = http::Request::builder()
//!     .header("content-type", "application/grpc")
//!     .body(String::new())
//!     .unwrap();
//! let res = svc.ready().await.unwrap().call(grpc).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.headers()["grpc-status"], "14");
//! # }
//! ```

mod body;
mod future;
mod layer;
mod service;

use http::{Response, StatusCode};
use telltale_core::grpc::trailers_only_response;
use telltale_core::{BoxError, GrpcCode, Refusal};

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::{AnswerAll, Mode, PassThrough, RejectionResponseLayer};
pub use service::RejectionResponseService;

use crate::error::{Error, Rejection};

/// The mark (a response extension) of a response that
/// [`RejectionResponseLayer`] made from a rejection
/// ([`CircuitOpen`](crate::CircuitOpen) or [`BulkheadFull`](crate::BulkheadFull)).
/// A [`CircuitBreaker`](crate::CircuitBreaker) outside the layer ignores such
/// responses (unless it [counts rejections](crate::CircuitBreakerBuilder::count_rejections)):
/// its `503` is this service shedding load, not a failure of the service.
///
/// ```
/// use telltale_resilience::{Bulkhead, CircuitBreaker, State};
/// use telltale_resilience::reject::{RejectedResponse, RejectionResponseLayer};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bulkhead = Bulkhead::builder("api").max_concurrent(1).build().unwrap();
/// let breaker = CircuitBreaker::builder("api").minimum_calls(1).build().unwrap();
/// let mut svc = ServiceBuilder::new()
///     .layer(breaker.layer())
///     .layer(RejectionResponseLayer::new())
///     .layer(bulkhead.layer())
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// let _held = bulkhead.try_acquire().unwrap();
/// let res = svc.ready().await.unwrap().call(http::Request::new(String::new())).await.unwrap();
/// assert_eq!(res.status(), 503);
/// assert!(res.extensions().get::<RejectedResponse>().is_some());
/// assert_eq!(breaker.state(), State::Closed);
/// assert_eq!(breaker.snapshot().calls, 0);
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RejectedResponse {
    _private: (),
}

/// The response `err` becomes: `Some` for a rejection or a timeout; for other
/// errors `Some(500 / INTERNAL)` when `answer_all`, else `None`.
pub(crate) fn response_for<B>(
    err: &(dyn std::error::Error + 'static),
    bulkhead_status: StatusCode,
    grpc: bool,
    answer_all: bool,
) -> Option<Response<ResponseBody<B>>> {
    let rejected = Error::rejection_in(err).is_some();
    let (mut res, code, message): (Response<()>, _, _) = match Error::rejection_in(err) {
        Some(Rejection::Open(open)) => (
            open.to_response(),
            GrpcCode::Unavailable,
            Refusal::CircuitOpen.message(),
        ),
        Some(Rejection::Full(full)) => (
            full.to_response(bulkhead_status),
            GrpcCode::ResourceExhausted,
            Refusal::BulkheadFull.message(),
        ),
        _ if telltale_core::is_timeout(err) => (
            status_response(StatusCode::GATEWAY_TIMEOUT),
            GrpcCode::DeadlineExceeded,
            "timeout",
        ),
        _ if answer_all => (
            status_response(StatusCode::INTERNAL_SERVER_ERROR),
            GrpcCode::Internal,
            "internal error",
        ),
        _ => return None,
    };
    // The layers above (the request span, metrics) classify the answer as the
    // rejection it is, not as any 503.
    if let Some(refusal) = Refusal::find(err) {
        res.extensions_mut().insert(refusal);
    }
    let (mut parts, ()) = res.into_parts();
    if rejected {
        parts.extensions.insert(RejectedResponse { _private: () });
    }
    if grpc {
        // Trailers-only; `Retry-After` of a rejection is kept as a hint.
        let (grpc_parts, ()) = trailers_only_response::<()>(code, message).into_parts();
        parts.status = grpc_parts.status;
        parts.headers.extend(grpc_parts.headers);
    }
    Some(Response::from_parts(parts, ResponseBody::empty()))
}

/// [`response_for`] of a boxed error: the response, or the error back.
pub(crate) fn respond<B>(
    err: BoxError,
    bulkhead_status: StatusCode,
    grpc: bool,
    answer_all: bool,
) -> Result<Response<ResponseBody<B>>, BoxError> {
    response_for(&*err, bulkhead_status, grpc, answer_all).ok_or(err)
}

fn status_response(status: StatusCode) -> Response<()> {
    let mut res = Response::new(());
    *res.status_mut() = status;
    res
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{BulkheadFull, CircuitOpen, State};

    fn respond(
        err: &(dyn std::error::Error + 'static),
        grpc: bool,
        answer_all: bool,
    ) -> Option<Response<ResponseBody<String>>> {
        response_for(err, StatusCode::TOO_MANY_REQUESTS, grpc, answer_all)
    }

    #[test]
    fn errors_become_statuses() {
        let open = CircuitOpen {
            name: "x".into(),
            state: State::Open,
            retry_after: Some(Duration::from_secs(1)),
        };
        let res = respond(&open, false, false).unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        let res = respond(&open, true, false).unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()["content-type"], "application/grpc");

        let full = BulkheadFull {
            name: "x".into(),
            max_concurrent: 1,
            waited: Duration::ZERO,
        };
        assert_eq!(respond(&full, false, false).unwrap().status(), 429);
        assert_eq!(
            respond(&full, true, false).unwrap().headers()["grpc-status"],
            "8"
        );

        let elapsed = tower::timeout::error::Elapsed::new();
        assert_eq!(respond(&elapsed, false, false).unwrap().status(), 504);
        assert_eq!(
            respond(&elapsed, true, false).unwrap().headers()["grpc-status"],
            "4"
        );

        let io = std::io::Error::other("boom");
        assert!(respond(&io, false, false).is_none());
        assert_eq!(respond(&io, false, true).unwrap().status(), 500);
        let res = respond(&io, true, true).unwrap();
        assert_eq!(res.headers()["grpc-status"], "13");
        assert_eq!(res.headers()["grpc-message"], "internal error");
    }

    /// Fails readiness; panics if called anyway.
    #[derive(Clone)]
    struct NeverReady;

    impl tower_service::Service<http::Request<()>> for NeverReady {
        type Response = Response<String>;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Err(std::io::Error::other("not ready")))
        }

        fn call(&mut self, _req: http::Request<()>) -> Self::Future {
            panic!("called without being ready")
        }
    }

    #[tokio::test]
    async fn readiness_errors_pass_or_are_answered_without_calling() {
        use tower::ServiceExt;
        use tower_layer::Layer;
        let layer = RejectionResponseLayer::new();
        assert!(
            layer
                .layer(NeverReady)
                .oneshot(http::Request::new(()))
                .await
                .is_err()
        );
        let svc = layer.answer_all().layer(NeverReady);
        let res = svc.oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(res.status(), 500);
    }
}
