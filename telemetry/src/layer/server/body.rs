use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use telltale_core::CompletionBody;

use crate::layer::record::Settle;

pin_project! {
    /// The response body of the server and client telemetry services
    /// ([`ServerTelemetryService`](super::ServerTelemetryService)): the span and the metrics
    /// settle when it ends (end of stream, trailers, error, or drop).
    pub struct ResponseBody<B: Body> {
        #[pin]
        inner: CompletionBody<B, Settle>,
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: CompletionBody<B, Settle>) -> Self {
        ResponseBody { inner }
    }

    pub(crate) fn passthrough(inner: B) -> Self {
        ResponseBody {
            inner: CompletionBody::passthrough(inner),
        }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        self.inner.get_ref()
    }
}

impl<B: Body + fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResponseBody").field(&self.inner).finish()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
