use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use telltale_core::correlation::{self, CorrelationId};
use telltale_core::{GrpcCode, grpc};
use tokio::task::futures::TaskLocalFuture;

use super::ResponseBody;

/// Why a request is answered without calling the inner service.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) grpc: bool,
    /// Plain text, ending in a newline; no part of the request's values.
    pub(crate) message: Bytes,
}

impl Refusal {
    fn into_response<B>(self) -> Response<ResponseBody<B>> {
        if self.grpc {
            // Trailers-only gRPC response: INVALID_ARGUMENT, with the message
            // (without its newline) as grpc-message.
            let text = self.message.strip_suffix(b"\n").unwrap_or(&self.message);
            let text = String::from_utf8_lossy(text);
            return grpc::trailers_only_response::<()>(GrpcCode::InvalidArgument, &text)
                .map(|()| ResponseBody::message(Bytes::new()));
        }
        let mut res = Response::new(ResponseBody::message(self.message));
        *res.status_mut() = StatusCode::BAD_REQUEST;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`CorrelationService`](super::CorrelationService): the inner future,
    /// run with the request's ID as the current one.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Scoped {
            // Holds the ID while the inner future runs, and hands it over
            // when it is done (`take_value`): no second copy of it is kept
            // (the future is moved whole by every layer outside).
            #[pin]
            fut: TaskLocalFuture<CorrelationId, F>,
            // The primary header, and the alias the ID came from.
            echo: Option<(HeaderName, Option<HeaderName>)>,
        },
        Refused {
            refusal: Option<Refusal>,
        },
    }
}

impl<F> ResponseFuture<F> {
    /// Runs `call` (the inner service's `call`) with `id` as the current ID,
    /// and its future with `id` as the current ID whenever it is polled.
    /// Built in one expression around what `call` returns, so that the inner
    /// future (every layer inside, hundreds of bytes) is not moved from one
    /// wrapper into the next on the way out.
    #[inline]
    pub(crate) fn scoped(
        id: CorrelationId,
        echo: Option<(HeaderName, Option<HeaderName>)>,
        call: impl FnOnce() -> F,
    ) -> Self
    where
        F: Future,
    {
        let in_call = id.clone();
        ResponseFuture {
            state: State::Scoped {
                fut: correlation::scope(id, correlation::sync_scope(in_call, call)),
                echo,
            },
        }
    }

    pub(crate) fn refused(refusal: Refusal) -> Self {
        ResponseFuture {
            state: State::Refused {
                refusal: Some(refusal),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Scoped { mut fut, echo } => {
                let res = std::task::ready!(fut.as_mut().poll(cx))?;
                let id = fut
                    .take_value()
                    .expect("ResponseFuture polled after completion");
                let (mut parts, body) = res.into_parts();
                if let Some((name, alias)) = echo.take() {
                    for name in std::iter::once(name).chain(alias) {
                        if let header::Entry::Vacant(slot) = parts.headers.entry(name) {
                            slot.insert(id.to_header_value());
                        }
                    }
                }
                Poll::Ready(Ok(Response::from_parts(
                    parts,
                    ResponseBody::scoped(body, id),
                )))
            }
            StateProj::Refused { refusal } => Poll::Ready(Ok(refusal
                .take()
                .expect("ResponseFuture polled after completion")
                .into_response())),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
