//! The response future of [`RejectionResponseService`](super::RejectionResponseService).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use telltale_core::BoxError;

use super::{Mode, ResponseBody, respond};

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        NotReady { err: Option<BoxError> },
    }
}

pin_project! {
    /// The response future of
    /// [`RejectionResponseService`](super::RejectionResponseService).
    pub struct ResponseFuture<F, M> {
        #[pin]
        state: State<F>,
        bulkhead_status: StatusCode,
        grpc: bool,
        mode: PhantomData<fn() -> M>,
    }
}

impl<F, M> ResponseFuture<F, M> {
    pub(super) fn new(future: F, bulkhead_status: StatusCode, grpc: bool) -> Self {
        ResponseFuture {
            state: State::Called { future },
            bulkhead_status,
            grpc,
            mode: PhantomData,
        }
    }

    pub(super) fn not_ready(err: BoxError, bulkhead_status: StatusCode, grpc: bool) -> Self {
        ResponseFuture {
            state: State::NotReady { err: Some(err) },
            bulkhead_status,
            grpc,
            mode: PhantomData,
        }
    }
}

impl<F, M> fmt::Debug for ResponseFuture<F, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("grpc", &self.grpc)
            .finish_non_exhaustive()
    }
}

impl<F, M, B, E> Future for ResponseFuture<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    M: Mode,
{
    type Output = Result<Response<ResponseBody<B>>, M::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let err = match this.state.project() {
            StateProj::Called { future } => match ready!(future.poll(cx)) {
                Ok(res) => return Poll::Ready(Ok(res.map(ResponseBody::new))),
                Err(e) => e.into(),
            },
            StateProj::NotReady { err } => err
                .take()
                .unwrap_or_else(|| "ResponseFuture polled after completion".into()),
        };
        // Rejections and timeouts are always answered; other errors as the
        // mode says.
        Poll::Ready(
            match respond(err, *this.bulkhead_status, *this.grpc, false) {
                Ok(res) => Ok(res),
                Err(err) => match M::pass(err) {
                    Ok(err) => Err(err),
                    Err(err) => Ok(respond(err, *this.bulkhead_status, *this.grpc, true)
                        .expect("answer_all answers every error")),
                },
            },
        )
    }
}
