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
//! A layer that ends a body on purpose says why with a
//! [`BodyTimeoutSignal`]: a body idle timeout (telltale-resilience's
//! `BodyTimeoutLayer`) ends the body of a reader that stopped reading, and the
//! layers around it may never see that body polled again (the stalled reader
//! is the reason). The signal reaches them anyway, and
//! [`BodyTimeoutSignal::resolve`] turns the error or drop that follows into
//! [`BodyEnd::TimedOut`], so that spans, RED metrics and breakers classify it
//! as [`Outcome::BodyTimeout`](crate::Outcome::BodyTimeout).
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
use std::sync::{Arc, Mutex, PoisonError};
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
    /// A layer ended the body because its reader stopped reading for longer
    /// than a bound: the body failed with [`BodyTimedOut`] in its error's
    /// chain, or was dropped by that layer (see [`BodyTimeoutSignal`]).
    TimedOut,
    /// The body was dropped before its end: the caller went away.
    Dropped,
}

/// The error a layer ends a response body with when the body's reader
/// stopped reading for longer than a bound (telltale-resilience's
/// `BodyTimeoutLayer`, whose `BodyTimeout` error has it as its source).
/// [`Outcome::from_error`](crate::Outcome::from_error) finds it in an
/// error's `source()` chain: [`Outcome::BodyTimeout`](crate::Outcome::BodyTimeout),
/// `error.type` `body_timeout`.
///
/// ```
/// use telltale_core::body::BodyTimedOut;
/// use telltale_core::{Outcome, Side};
///
/// let outcome = Outcome::from_error(&BodyTimedOut);
/// assert_eq!(outcome.error_type(Side::Server), Some("body_timeout"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// Whether an error or any error in its `source()` chain is a
    /// [`BodyTimedOut`].
    pub fn is_in(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(err);
        while let Some(e) = current {
            if e.is::<BodyTimedOut>() {
                return true;
            }
            current = e.source();
        }
        false
    }
}

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body ended: its reader stopped reading")
    }
}

impl std::error::Error for BodyTimedOut {}

/// Tells every layer of one exchange that a layer ended the response body
/// because its reader stopped reading, when it happens, even if the body is
/// never polled again.
///
/// The layer that may end the body (telltale-resilience's
/// `BodyTimeoutLayer`) creates it, puts a clone in the request's extensions
/// (for the layers inside it, whose bodies it drops) and in the response's
/// extensions (for the layers outside it), and calls [`fire`](Self::fire)
/// before it drops the body. A layer outside registers what to do then with
/// [`on_fire`](Self::on_fire) (telltale's telemetry layer ends the request's
/// span and metrics there, with `error.type` `body_timeout`); any layer maps
/// the error or drop it sees afterwards with [`resolve`](Self::resolve).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use telltale_core::body::{BodyEnd, BodyTimeoutSignal};
///
/// let signal = BodyTimeoutSignal::new();
/// let told = Arc::new(AtomicBool::new(false));
/// let flag = told.clone();
/// signal.on_fire(move || flag.store(true, Ordering::SeqCst));
/// assert!(matches!(signal.resolve(BodyEnd::Dropped), BodyEnd::Dropped));
///
/// signal.fire();
/// assert!(told.load(Ordering::SeqCst));
/// assert!(matches!(signal.resolve(BodyEnd::Dropped), BodyEnd::TimedOut));
/// assert!(matches!(signal.resolve(BodyEnd::Error), BodyEnd::TimedOut));
/// ```
#[derive(Clone, Default)]
pub struct BodyTimeoutSignal {
    state: Arc<Mutex<SignalState>>,
}

type Listener = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct SignalState {
    fired: bool,
    listeners: Vec<Listener>,
}

impl fmt::Debug for BodyTimeoutSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyTimeoutSignal")
            .field("fired", &self.fired())
            .finish()
    }
}

impl BodyTimeoutSignal {
    /// A signal not fired yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SignalState> {
        // A listener runs outside the lock: a panic cannot poison the state
        // in a way that matters. Use it as it is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the body as ended by its layer's timeout and runs the
    /// listeners, once (later calls do nothing).
    pub fn fire(&self) {
        let listeners = {
            let mut state = self.lock();
            if state.fired {
                return;
            }
            state.fired = true;
            std::mem::take(&mut state.listeners)
        };
        for listener in listeners {
            listener();
        }
    }

    /// Whether [`fire`](Self::fire) was called.
    pub fn fired(&self) -> bool {
        self.lock().fired
    }

    /// Runs `f` when the signal fires (now, if it has).
    pub fn on_fire(&self, f: impl FnOnce() + Send + 'static) {
        {
            let mut state = self.lock();
            if !state.fired {
                state.listeners.push(Box::new(f));
                return;
            }
        }
        f();
    }

    /// `end` as the layers around the timed-out body see it: once the signal
    /// has fired, a body error or drop is [`BodyEnd::TimedOut`]; anything
    /// else is unchanged.
    pub fn resolve<'a>(&self, end: BodyEnd<'a>) -> BodyEnd<'a> {
        match end {
            BodyEnd::Error | BodyEnd::Dropped if self.fired() => BodyEnd::TimedOut,
            other => other,
        }
    }
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
                BodyEnd::TimedOut => "timed out".to_owned(),
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
