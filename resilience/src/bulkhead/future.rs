//! The futures of the bulkhead.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::Response;
use pin_project_lite::pin_project;
use telltale_core::{BoxError, CompletionBody};
use tower_service::Service;

use std::sync::Arc;

use super::slots::{Enqueued, Polled};
use super::{Bulkhead, BulkheadPermit, Shared};
use crate::error::{BulkheadFull, Error};

/// The wait for a slot of a full bulkhead, bounded by the max wait (not
/// zero): an entry in the bulkhead's queue, expired by the bulkhead's one
/// timer (see `slots.rs`), so a wait allocates nothing and arms no timer of
/// its own. Its `Arc` becomes the permit's.
pub(crate) struct Wait {
    /// `None` once done.
    inner: Option<Arc<Shared>>,
    /// The queue entry, once queued.
    key: Option<usize>,
}

impl Wait {
    pub(crate) fn new(inner: Arc<Shared>) -> Self {
        Wait {
            inner: Some(inner),
            key: None,
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let (Some(inner), Some(key)) = (&self.inner, self.key) {
            inner.slots.cancel(key);
        }
    }
}

impl Future for Wait {
    type Output = Result<BulkheadPermit, BulkheadFull>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Not reached once done: the bulkhead's futures move on after the
        // output.
        let Some(inner) = &this.inner else {
            return Poll::Pending;
        };
        match this.key {
            None => match inner.slots.enqueue(inner, cx.waker()) {
                Enqueued::Queued(key) => {
                    this.key = Some(key);
                    return Poll::Pending;
                }
                // A slot came free between the call and this first poll.
                Enqueued::Permit => inner.metrics.wait.record(0.0),
                Enqueued::NoTimer => {
                    let full = inner.reject(Duration::ZERO);
                    this.inner = None;
                    return Poll::Ready(Err(full));
                }
            },
            Some(key) => match inner.slots.poll(inner, key, cx.waker()) {
                Polled::Pending => return Poll::Pending,
                Polled::Granted(since) => {
                    // The wait ends now, as the waiter resumes with its permit.
                    let waited = quanta::Instant::now().saturating_duration_since(since);
                    inner.metrics.wait.record(waited.as_secs_f64());
                }
                Polled::Expired(start) => {
                    let full = inner.reject(start.elapsed());
                    this.inner = None;
                    return Poll::Ready(Err(full));
                }
            },
        }
        // Admitted: the wait's `Arc` becomes the permit's.
        match this.inner.take() {
            Some(inner) => Poll::Ready(Ok(Shared::wrap_owned(inner))),
            None => Poll::Pending,
        }
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
        pub(crate) state: RespState<S, Req>,
    }
}

pin_project! {
    #[project = RespProj]
    pub(crate) enum RespState<S, Req>
    where
        S: Service<Req>,
    {
        // Waiting for a slot with the ready service and the request. The
        // service is not in an `Option` and the request is taken straight
        // into the call: the request is the largest part of this future, and
        // every move of it on the waiting path costs (issue 16).
        Waiting { #[pin] wait: Wait, service: S, request: Option<Req> },
        Called { #[pin] fut: S::Future, permit: Option<BulkheadPermit> },
        Rejected { error: Option<BulkheadFull> },
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
                            // Always there: the state moves on right below.
                            // (Were it not, the permit would go back here.)
                            let Some(request) = request.take() else {
                                return Poll::Pending;
                            };
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
