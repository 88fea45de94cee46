//! The futures of the bulkhead.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use telltale_core::{BoxError, CompletionBody};
use tower_service::Service;

use std::sync::Arc;

use tokio::time::{Instant, Sleep};

use super::{Bulkhead, BulkheadPermit, Shared};
use crate::error::{BulkheadFull, Error};

/// tokio's acquire future cannot be named: it is boxed, on the waiting path only.
type Acquire = Pin<Box<dyn Future<Output = BulkheadPermit> + Send>>;

pin_project! {
    /// The wait for a slot of a full bulkhead, bounded by the max wait (not
    /// zero). The timer is only set up once a first poll found no slot.
    pub(crate) struct Wait {
        inner: Arc<Shared>,
        acquire: Acquire,
        started: Instant,
        #[pin]
        sleep: Option<Sleep>,
        waiting: super::stats::Waiting,
    }
}

impl Wait {
    pub(crate) fn new(inner: Arc<Shared>) -> Self {
        let owner = inner.clone();
        let acquire = Box::pin(async move {
            // Never closed; forgotten and wrapped in the same poll, so a
            // cancelled wait cannot leak a permit.
            if let Ok(permit) = owner.semaphore.acquire().await {
                permit.forget();
            }
            owner.wrap()
        });
        Wait {
            waiting: super::stats::Waiting::new(inner.clone()),
            inner,
            acquire,
            started: Instant::now(),
            sleep: None,
        }
    }
}

impl Future for Wait {
    type Output = Result<BulkheadPermit, BulkheadFull>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(permit) = this.acquire.as_mut().poll(cx) {
            let waited = this.started.elapsed();
            this.inner.metrics.wait.record(waited.as_secs_f64());
            return Poll::Ready(Ok(permit));
        }
        if this.sleep.is_none() {
            let deadline = *this.started + this.inner.max_wait;
            this.sleep.set(Some(tokio::time::sleep_until(deadline)));
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            ready!(sleep.poll(cx));
        }
        let waited = this.started.elapsed();
        Poll::Ready(Err(this.inner.reject(waited)))
    }
}

/// The response body of [`BulkheadService`](super::BulkheadService): the slot
/// is released when the body ends (or is dropped).
pub type ResponseBody<B> = CompletionBody<B, BulkheadPermit>;

pin_project! {
    /// The future of [`Bulkhead::call`].
    pub struct Call<F> {
        #[pin]
        state: CallState<F>,
    }
}

pin_project! {
    #[project = CallProj]
    enum CallState<F> {
        // Waiting for a slot (only when the bulkhead is full).
        Waiting { #[pin] wait: Wait, fut: Option<F> },
        Running { #[pin] fut: F, permit: Option<BulkheadPermit> },
        Rejected { error: Option<BulkheadFull> },
    }
}

impl<F> Call<F> {
    pub(crate) fn new(bulkhead: Bulkhead, fut: F) -> Self {
        let state = match bulkhead.try_acquire_quiet() {
            Some(permit) => CallState::Running {
                fut,
                permit: Some(permit),
            },
            None if bulkhead.max_wait().is_zero() => CallState::Rejected {
                error: Some(bulkhead.inner.reject(std::time::Duration::ZERO)),
            },
            None => CallState::Waiting {
                wait: bulkhead.wait(),
                fut: Some(fut),
            },
        };
        Call { state }
    }
}

impl<F> fmt::Debug for Call<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            CallState::Waiting { .. } => "Waiting",
            CallState::Running { .. } => "Running",
            CallState::Rejected { .. } => "Rejected",
        };
        f.debug_tuple("Call").field(&state).finish()
    }
}

impl<F, T, E> Future for Call<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                CallProj::Waiting { wait, fut } => {
                    let next = match ready!(wait.poll(cx)) {
                        Ok(permit) => CallState::Running {
                            fut: fut.take().expect("polled after completion"),
                            permit: Some(permit),
                        },
                        Err(error) => CallState::Rejected { error: Some(error) },
                    };
                    state.set(next);
                }
                CallProj::Running { fut, permit } => {
                    let out = ready!(fut.poll(cx));
                    drop(permit.take());
                    return Poll::Ready(out.map_err(|e| Error::Inner(e.into())));
                }
                CallProj::Rejected { error } => {
                    return Poll::Ready(Err(Error::Full(
                        error.take().expect("polled after completion"),
                    )));
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`BulkheadService`](super::BulkheadService).
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: RespState<S, Req>,
    }
}

pin_project! {
    #[project = RespProj]
    pub(crate) enum RespState<S, Req>
    where
        S: Service<Req>,
    {
        // Waiting for a slot with the ready service and the request.
        Waiting { #[pin] wait: Wait, service: Option<S>, request: Option<Req> },
        Called { #[pin] fut: S::Future, permit: Option<BulkheadPermit> },
        Rejected { error: Option<BulkheadFull> },
    }
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    pub(crate) fn new(state: RespState<S, Req>) -> Self {
        ResponseFuture { state }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            RespState::Waiting { .. } => "Waiting",
            RespState::Called { .. } => "Called",
            RespState::Rejected { .. } => "Rejected",
        };
        f.debug_tuple("ResponseFuture").field(&state).finish()
    }
}

impl<S, Req, B> Future for ResponseFuture<S, Req>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                RespProj::Waiting {
                    wait,
                    service,
                    request,
                } => {
                    let next = match ready!(wait.poll(cx)) {
                        Ok(permit) => {
                            let mut service = service.take().expect("polled after completion");
                            let request = request.take().expect("polled after completion");
                            RespState::Called {
                                fut: service.call(request),
                                permit: Some(permit),
                            }
                        }
                        Err(error) => RespState::Rejected { error: Some(error) },
                    };
                    state.set(next);
                }
                RespProj::Called { fut, permit } => {
                    let out = ready!(fut.poll(cx));
                    let permit = permit.take().expect("polled after completion");
                    return Poll::Ready(match out {
                        Ok(response) => Ok(response.map(|body| CompletionBody::new(body, permit))),
                        Err(e) => Err(Error::Inner(e.into())),
                    });
                }
                RespProj::Rejected { error } => {
                    return Poll::Ready(Err(Error::Full(
                        error.take().expect("polled after completion"),
                    )));
                }
            }
        }
    }
}
