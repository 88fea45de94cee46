//! A response-body wrapper that reports the end of the exchange exactly once.
//!
//! Durations, active-request gauges, bulkhead permits and breaker results settle
//! when the body ends, never when the headers are sent. [`CompletionBody`] calls
//! its [`OnEnd`] callback once, on the first of:
//!
//! - end of stream (`poll_frame` returned `None`, or the body was dropped after
//!   reporting [`is_end_stream`](http_body::Body::is_end_stream)),
//! - a trailers frame,
//! - a body error,
//! - drop before any of those (cancelled, client disconnect).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use http_body_util::{BodyExt, Full};
//! use telltale_core::{BodyEnd, CompletionBody};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! let body = CompletionBody::new(Full::new(bytes::Bytes::from_static(b"hi")), move |end: BodyEnd<'_>| {
//!     sink.lock().unwrap().push(format!("{end:?}"));
//! });
//! let bytes = body.collect().await.unwrap().to_bytes();
//! assert_eq!(&bytes[..], b"hi");
//! assert_eq!(*seen.lock().unwrap(), ["Complete { trailers: None }"]);
//! # }
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How a response body ended.
#[derive(Debug, Clone, Copy)]
pub enum BodyEnd<'a> {
    /// The body reached its end, with the trailers if it had any.
    Complete {
        /// The trailers frame, when the body ended with one.
        trailers: Option<&'a HeaderMap>,
    },
    /// The body returned an error.
    Error,
    /// The body was dropped before its end: the caller went away.
    Dropped,
}

/// Called once when a [`CompletionBody`] ends.
///
/// Implemented for every `FnOnce(BodyEnd<'_>)`.
pub trait OnEnd {
    /// Receives the end of the body. Called at most once.
    fn on_end(self, end: BodyEnd<'_>);
}

impl<F> OnEnd for F
where
    F: FnOnce(BodyEnd<'_>),
{
    fn on_end(self, end: BodyEnd<'_>) {
        self(end)
    }
}

/// Doing nothing at the end of the body.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ignore;

impl OnEnd for Ignore {
    fn on_end(self, _end: BodyEnd<'_>) {}
}

pin_project! {
    /// Wraps a body and calls an [`OnEnd`] exactly once when it ends.
    ///
    /// See the [module docs](self) for when that is.
    pub struct CompletionBody<B: Body, C: OnEnd> {
        #[pin]
        inner: B,
        on_end: Option<C>,
    }

    impl<B: Body, C: OnEnd> PinnedDrop for CompletionBody<B, C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(on_end) = this.on_end.take() {
                if this.inner.is_end_stream() {
                    on_end.on_end(BodyEnd::Complete { trailers: None });
                } else {
                    on_end.on_end(BodyEnd::Dropped);
                }
            }
        }
    }
}

impl<B: Body, C: OnEnd> CompletionBody<B, C> {
    /// Wraps `inner`, calling `on_end` when it ends.
    pub fn new(inner: B, on_end: C) -> Self {
        CompletionBody {
            inner,
            on_end: Some(on_end),
        }
    }

    /// Wraps `inner` with no callback: the body passes through untouched. Used by
    /// layers that decide per request whether to watch the body.
    pub fn passthrough(inner: B) -> Self {
        CompletionBody {
            inner,
            on_end: None,
        }
    }

    /// Whether the end has been reported already.
    pub fn is_settled(&self) -> bool {
        self.on_end.is_none()
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body + fmt::Debug, C: OnEnd> fmt::Debug for CompletionBody<B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionBody")
            .field("inner", &self.inner)
            .field("settled", &self.on_end.is_none())
            .finish()
    }
}

impl<B: Body + Default, C: OnEnd> Default for CompletionBody<B, C> {
    fn default() -> Self {
        Self::passthrough(B::default())
    }
}

impl<B: Body, C: OnEnd> Body for CompletionBody<B, C> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let result = ready!(this.inner.poll_frame(cx));
        if let Some(on_end) = this.on_end.take() {
            match &result {
                None => on_end.on_end(BodyEnd::Complete { trailers: None }),
                Some(Err(_)) => on_end.on_end(BodyEnd::Error),
                Some(Ok(frame)) => match frame.trailers_ref() {
                    Some(trailers) => on_end.on_end(BodyEnd::Complete {
                        trailers: Some(trailers),
                    }),
                    None => *this.on_end = Some(on_end),
                },
            }
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<String>>>;

    fn recorder() -> (Log, impl OnEnd + Send + 'static) {
        let log: Log = Arc::default();
        let sink = log.clone();
        let cb = move |end: BodyEnd<'_>| {
            let text = match end {
                BodyEnd::Complete { trailers: None } => "complete".to_owned(),
                BodyEnd::Complete { trailers: Some(t) } => {
                    format!(
                        "trailers:{}",
                        t.get("grpc-status").unwrap().to_str().unwrap()
                    )
                }
                BodyEnd::Error => "error".to_owned(),
                BodyEnd::Dropped => "dropped".to_owned(),
            };
            sink.lock().unwrap().push(text);
        };
        (log, cb)
    }

    fn taken(log: &Log) -> Vec<String> {
        log.lock().unwrap().clone()
    }

    type Item = Result<Frame<Bytes>, std::io::Error>;

    fn stream(
        items: Vec<Item>,
    ) -> StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Item>>> {
        StreamBody::new(futures_util::stream::iter(items))
    }

    #[tokio::test]
    async fn end_of_stream_reported_once() {
        let (log, cb) = recorder();
        let mut body = CompletionBody::new(
            stream(vec![
                Ok(Frame::data(Bytes::from("a"))),
                Ok(Frame::data(Bytes::from("b"))),
            ]),
            cb,
        );
        assert!(body.frame().await.unwrap().is_ok());
        assert!(taken(&log).is_empty());
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.is_none());
        assert!(body.frame().await.is_none());
        drop(body);
        assert_eq!(taken(&log), ["complete"]);
    }

    #[tokio::test]
    async fn trailers_reported_with_their_content() {
        let (log, cb) = recorder();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "13".parse().unwrap());
        let mut body = CompletionBody::new(
            stream(vec![
                Ok(Frame::data(Bytes::from("a"))),
                Ok(Frame::trailers(trailers)),
            ]),
            cb,
        );
        while body.frame().await.is_some() {}
        assert!(body.is_settled());
        drop(body);
        assert_eq!(taken(&log), ["trailers:13"]);
    }

    #[tokio::test]
    async fn body_error_reported_once() {
        let (log, cb) = recorder();
        let mut body = CompletionBody::new(
            stream(vec![
                Ok(Frame::data(Bytes::from("a"))),
                Err(std::io::Error::other("reset")),
                Ok(Frame::data(Bytes::from("late"))),
            ]),
            cb,
        );
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.unwrap().is_ok());
        drop(body);
        assert_eq!(taken(&log), ["error"]);
    }

    #[tokio::test]
    async fn dropped_mid_stream_is_cancelled() {
        let (log, cb) = recorder();
        let mut body = CompletionBody::new(
            stream(vec![
                Ok(Frame::data(Bytes::from("a"))),
                Ok(Frame::data(Bytes::from("b"))),
            ]),
            cb,
        );
        assert!(body.frame().await.unwrap().is_ok());
        drop(body);
        assert_eq!(taken(&log), ["dropped"]);
    }

    #[test]
    fn never_polled_body_is_cancelled() {
        let (log, cb) = recorder();
        let body = CompletionBody::new(stream(vec![Ok(Frame::data(Bytes::from("a")))]), cb);
        drop(body);
        assert_eq!(taken(&log), ["dropped"]);
    }

    #[test]
    fn never_polled_empty_body_is_complete() {
        // hyper does not poll a body that says it is already at its end.
        let (log, cb) = recorder();
        drop(CompletionBody::new(Empty::<Bytes>::new(), cb));
        assert_eq!(taken(&log), ["complete"]);
    }

    #[tokio::test]
    async fn full_body_dropped_after_its_data_is_complete() {
        let (log, cb) = recorder();
        let mut body = CompletionBody::new(Full::new(Bytes::from("x")), cb);
        assert!(body.frame().await.unwrap().is_ok());
        // Full reports is_end_stream() after its one frame; hyper stops there.
        assert!(body.is_end_stream());
        drop(body);
        assert_eq!(taken(&log), ["complete"]);
    }

    #[test]
    fn passthrough_reports_nothing() {
        let body: CompletionBody<Full<Bytes>, Ignore> =
            CompletionBody::passthrough(Full::new(Bytes::new()));
        assert!(body.is_settled());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
