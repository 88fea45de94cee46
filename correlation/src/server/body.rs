use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use telltale_core::correlation::{self, CorrelationId};

pin_project_lite::pin_project! {
    /// Response body of [`CorrelationService`](super::CorrelationService): the inner body,
    /// polled with the request's ID as the current one (so streaming bodies see
    /// it too), or the plain-text refusal message.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Scoped {
            #[pin]
            body: B,
            id: CorrelationId,
        },
        Message {
            text: Option<Bytes>,
        },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn scoped(body: B, id: CorrelationId) -> Self {
        ResponseBody {
            kind: Kind::Scoped { body, id },
        }
    }

    pub(crate) fn message(text: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Message {
                text: (!text.is_empty()).then_some(text),
            },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Scoped { body, id } => {
                correlation::sync_scope(id.clone(), || body.poll_frame(cx))
            }
            KindProj::Message { text } => {
                Poll::Ready(text.take().map(|t| Ok(Frame::data(t.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Scoped { body, .. } => body.is_end_stream(),
            Kind::Message { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Scoped { body, .. } => body.size_hint(),
            Kind::Message { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Scoped { id, .. } => f
                .debug_struct("ResponseBody")
                .field("id", id)
                .finish_non_exhaustive(),
            Kind::Message { .. } => f
                .debug_struct("ResponseBody")
                .field("message", &true)
                .finish(),
        }
    }
}
