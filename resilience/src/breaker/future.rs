//! The futures of the breaker: [`Call`] for `breaker.call(fut)` and
//! [`ResponseFuture`] for the tower service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use telltale_core::{BoxError, CompletionBody, ResponseHead};

use super::body::{ResponseBody, SettleOnEnd};
use super::{BreakerPermit, Verdict};
use crate::error::{CircuitOpen, Error};
use crate::reject::RejectedResponse;

pin_project! {
    /// The future of [`CircuitBreaker::call`](super::CircuitBreaker::call):
    /// the wrapped future with its permit, settled when it finishes and released
    /// (per the abandoned policy) when dropped before.
    pub struct Call<F, C> {
        #[pin]
        state: CallState<F, C>,
    }
}

pin_project! {
    #[project = CallProj]
    enum CallState<F, C> {
        Rejected { error: Option<CircuitOpen> },
        Running {
            #[pin]
            fut: F,
            permit: Option<BreakerPermit>,
            classify: Option<C>,
        },
    }
}

impl<F, C> Call<F, C> {
    pub(crate) fn new(permit: Result<BreakerPermit, CircuitOpen>, fut: F, classify: C) -> Self {
        Call {
            state: CallState::new(permit, fut, classify),
        }
    }
}

impl<F, C> CallState<F, C> {
    fn new(permit: Result<BreakerPermit, CircuitOpen>, fut: F, classify: C) -> Self {
        match permit {
            Ok(permit) => CallState::Running {
                fut,
                permit: Some(permit),
                classify: Some(classify),
            },
            Err(error) => CallState::Rejected { error: Some(error) },
        }
    }
}

impl<F, C> std::fmt::Debug for Call<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.state.fmt(f)
    }
}

impl<F, C> std::fmt::Debug for CallState<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallState::Rejected { error } => {
                f.debug_struct("Rejected").field("error", error).finish()
            }
            CallState::Running { permit, .. } => {
                f.debug_struct("Running").field("permit", permit).finish()
            }
        }
    }
}

impl<F, C, T, E> Future for Call<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: FnOnce(&Result<T, E>) -> Verdict,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            CallProj::Rejected { error } => Poll::Ready(Err(Error::Open(
                error.take().expect("Call polled after completion"),
            ))),
            CallProj::Running {
                fut,
                permit,
                classify,
            } => {
                let result = ready!(fut.poll(cx));
                let classify = classify.take().expect("Call polled after completion");
                let verdict = classify(&result);
                let result = result.map_err(Into::<BoxError>::into);
                if let Some(permit) = permit.take() {
                    // A rejection inside the breaker is load shedding, not a
                    // failure of what it protects (unless asked to count it).
                    let verdict = match &result {
                        Err(e)
                            if verdict == Verdict::Failure
                                && permit.ignores_rejections()
                                && Error::rejection_in(&**e).is_some() =>
                        {
                            Verdict::Ignore
                        }
                        _ => verdict,
                    };
                    permit.record(verdict);
                }
                Poll::Ready(result.map_err(Error::Inner))
            }
        }
    }
}

pin_project! {
    /// The response future of [`CircuitBreakerService`](super::CircuitBreakerService).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: CallState<F, ()>,
    }
}

impl<F> ResponseFuture<F> {
    /// The future of an admitted call, built around the inner service's
    /// future as `call` returns it: in one expression, with the inner future
    /// evaluated first, so that it is written where it stays rather than
    /// moved in (it holds every layer inside, hundreds of bytes).
    #[inline]
    pub(crate) fn running(permit: BreakerPermit, call: impl FnOnce() -> F) -> Self {
        ResponseFuture {
            inner: CallState::Running {
                fut: call(),
                permit: Some(permit),
                classify: Some(()),
            },
        }
    }

    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        ResponseFuture {
            inner: CallState::Rejected { error: Some(error) },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.project() {
            CallProj::Rejected { error } => Poll::Ready(Err(Error::Open(
                error
                    .take()
                    .expect("ResponseFuture polled after completion"),
            ))),
            CallProj::Running { fut, permit, .. } => {
                let result = ready!(fut.poll(cx));
                let permit = permit.take();
                match result {
                    Ok(response) => {
                        let head = ResponseHead::from_response(&response);
                        let permit = match permit {
                            Some(permit)
                                if permit.ignores_rejections()
                                    && response
                                        .extensions()
                                        .get::<RejectedResponse>()
                                        .is_some() =>
                            {
                                permit.record(Verdict::Ignore);
                                None
                            }
                            other => other,
                        };
                        // One body built either way (a value chosen by a
                        // `match` is copied out of it).
                        let settle = permit.map(|permit| SettleOnEnd { permit, head });
                        let (parts, body) = response.into_parts();
                        Poll::Ready(Ok(Response::from_parts(
                            parts,
                            CompletionBody::with_optional(body, settle),
                        )))
                    }
                    Err(e) => {
                        let e: BoxError = e.into();
                        if let Some(permit) = permit {
                            permit.record_error(&*e);
                        }
                        Poll::Ready(Err(Error::Inner(e)))
                    }
                }
            }
        }
    }
}
