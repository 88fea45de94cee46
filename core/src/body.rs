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
//! - drop before any of those (cancelled, client disconnect; or a body idle
//!   timeout outside ended the body, [`BodyEnd::TimedOut`]).
//!
//! A layer that ends a body on purpose says why. A body idle timeout
//! (telltale-resilience's `BodyTimeoutLayer`) ends the body of a reader that
//! stopped reading: it drops the body inside it with [`drop_timed_out`], so
//! the [`CompletionBody`]s in there (a breaker's) end with
//! [`BodyEnd::TimedOut`] rather than [`BodyEnd::Dropped`]; and the layers
//! outside, which may never see the body polled again (the stalled reader is
//! the reason), learn it from a [`BodyTimeoutSignal`]. Spans, RED metrics and
//! breakers then classify it as
//! [`Outcome::BodyTimeout`](crate::Outcome::BodyTimeout).
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

use std::cell::Cell;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::thread::LocalKey;

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::relay::{self, Relayed, Slot};

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
    /// chain, or was dropped by that layer (see [`BodyTimeoutSignal::resolve`]
    /// for the layers outside it, [`drop_timed_out`] for those inside).
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

/// Tells the layers outside a body idle timeout that it ended the response
/// body because its reader stopped reading, when it happens, even if the body
/// is never polled again.
///
/// The layer that may end the body (telltale-resilience's
/// `BodyTimeoutLayer`) creates one only when the body can stall: when the body
/// hands out a frame with more to come. It then [`offer`](Self::offer)s it,
/// during that same poll, to the layers outside that [`listen`](Self::listen)
/// while they poll the body (a [`CompletionBody`] does when its [`OnEnd`]
/// [asks](OnEnd::listens_for_timeout)), and calls [`fire`](Self::fire) before
/// it drops the body. A layer outside registers what to do then with
/// [`on_fire`](Self::on_fire) (telltale's telemetry layer ends the request's
/// span and metrics there, with `error.type` `body_timeout`) and maps the
/// error or drop it sees afterwards with [`resolve`](Self::resolve). A
/// response whose body ends with its first frame (most responses) never has
/// one, and costs nothing.
///
/// The hand-over is the thread-local relay by which the request's correlation
/// ID also reaches an outer layer ([`correlation::listen`](crate::correlation::listen)),
/// so that nothing is allocated for a response that never streams: a layer
/// between the two that polls the body on another task hides the signal from
/// the layers outside it (they then see the timeout only as the body's error
/// or drop, if the reader ever polls again).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use telltale_core::body::{BodyEnd, BodyTimeoutSignal};
///
/// // The layer outside listens while it polls the body; the one inside
/// // offers the signal when the body starts streaming.
/// let ((), heard) = BodyTimeoutSignal::listen(|| BodyTimeoutSignal::new().offer());
/// let signal = heard.unwrap();
///
/// let told = Arc::new(AtomicBool::new(false));
/// let flag = told.clone();
/// signal.on_fire(move || flag.store(true, Ordering::SeqCst));
/// assert!(matches!(signal.resolve(BodyEnd::Dropped), BodyEnd::Dropped));
///
/// signal.fire();
/// assert!(told.load(Ordering::SeqCst));
/// assert!(matches!(signal.resolve(BodyEnd::Dropped), BodyEnd::TimedOut));
/// assert!(matches!(signal.resolve(BodyEnd::Error), BodyEnd::TimedOut));
///
/// // Nobody listening: the offer is a thread-local check.
/// BodyTimeoutSignal::new().offer();
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

    /// Hands a clone of the signal to the layers outside that
    /// [`listen`](Self::listen) now (while they poll the body that calls
    /// this). Called by the layer that may end the body, in the poll in which
    /// its body starts streaming; with nobody listening it costs a
    /// thread-local check.
    pub fn offer(&self) {
        relay::offer(|| self.clone());
    }

    /// Runs `poll` (a poll of an inner body) and returns what it returned,
    /// with the signal a layer inside [`offer`](Self::offer)ed meanwhile (the
    /// last one, if several did). A listener around this one hears it too.
    pub fn listen<R>(poll: impl FnOnce() -> R) -> (R, Option<BodyTimeoutSignal>) {
        relay::listen(poll)
    }
}

impl Relayed for BodyTimeoutSignal {
    fn slot() -> &'static LocalKey<Slot<Self>> {
        thread_local!(static SLOT: Slot<BodyTimeoutSignal> = const { Slot::new(None) });
        &SLOT
    }
}

thread_local! {
    /// Whether [`drop_timed_out`] is dropping a body on this thread.
    static DROPPING_TIMED_OUT: Cell<bool> = const { Cell::new(false) };
}

/// Drops `body`, a response body that a layer ends because its reader
/// stopped reading for longer than a bound (after [`BodyTimeoutSignal::fire`]):
/// every [`CompletionBody`] inside it that is dropped before its end reports
/// [`BodyEnd::TimedOut`] instead of [`BodyEnd::Dropped`], so that a breaker
/// inside records the call as a body timeout, not as a caller that went away.
///
/// Written with a thread-local rather than a signal in the request's
/// extensions: the bodies inside are dropped right here, on this thread, so
/// nothing needs to be allocated per request for them to know.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use http_body_util::Full;
/// use telltale_core::body::{BodyEnd, CompletionBody, drop_timed_out};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// let body = CompletionBody::new(Full::new(bytes::Bytes::from_static(b"hi")), move |end: BodyEnd<'_>| {
///     sink.lock().unwrap().push(format!("{end:?}"));
/// });
/// drop_timed_out(body);
/// assert_eq!(*seen.lock().unwrap(), ["TimedOut"]);
/// ```
pub fn drop_timed_out<T>(body: T) {
    relay::during(&DROPPING_TIMED_OUT, true, || drop(body));
}

/// Whether [`drop_timed_out`] is dropping a body on this thread now.
fn dropping_timed_out() -> bool {
    DROPPING_TIMED_OUT.try_with(Cell::get).unwrap_or(false)
}

/// Called once when a [`CompletionBody`] ends.
///
/// Implemented for every `FnOnce(BodyEnd<'_>)`.
pub trait OnEnd {
    /// Receives the end of the body. Called at most once.
    fn on_end(self, end: BodyEnd<'_>);

    /// Whether the [`CompletionBody`] should [listen](BodyTimeoutSignal::listen)
    /// for the [`BodyTimeoutSignal`] of a body idle timeout inside while it
    /// polls the body, and hand it to
    /// [`on_timeout_watch`](Self::on_timeout_watch). `false` by default: a
    /// callback that only needs the end learns a timeout from
    /// [`BodyEnd::TimedOut`] when the body is dropped inside the timeout
    /// ([`drop_timed_out`]), or from the body's error.
    fn listens_for_timeout(&self) -> bool {
        false
    }

    /// Called when a body idle timeout inside starts watching the body (it
    /// handed out a frame with more to come): `signal` fires when the timeout
    /// ends the body, which the reader may never poll again. Returns the
    /// callback to call at the end. By default, `self` unchanged.
    fn on_timeout_watch(self, signal: BodyTimeoutSignal) -> Self
    where
        Self: Sized,
    {
        let _ = signal;
        self
    }

    /// Receives the end of the body where the callback lies, in `slot`.
    /// What a [`CompletionBody`] calls, once: it empties `slot` afterwards
    /// whatever an override left there, so the callback is never called
    /// again (an override should leave it `None` itself). By default it
    /// takes the callback out and calls [`on_end`](Self::on_end); a large
    /// callback (telltale's telemetry layer keeps a request's whole record
    /// in its own) can do its work in place instead, rather than be copied
    /// out first.
    fn on_end_in_place(slot: &mut Option<Self>, end: BodyEnd<'_>)
    where
        Self: Sized,
    {
        if let Some(on_end) = slot.take() {
            on_end.on_end(end);
        }
    }
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
            if this.on_end.is_some() {
                let end = if this.inner.is_end_stream() {
                    BodyEnd::Complete { trailers: None }
                } else if dropping_timed_out() {
                    BodyEnd::TimedOut
                } else {
                    BodyEnd::Dropped
                };
                C::on_end_in_place(this.on_end, end);
                *this.on_end = None;
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

    /// Wraps `inner` with `on_end` when there is one ([`new`](Self::new)),
    /// or with none ([`passthrough`](Self::passthrough)): for a layer whose
    /// callback is already an `Option`, which it hands over as it is (one
    /// move, no branch between two bodies to copy from).
    pub fn with_optional(inner: B, on_end: Option<C>) -> Self {
        CompletionBody { inner, on_end }
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
        let result = if this.on_end.as_ref().is_some_and(OnEnd::listens_for_timeout) {
            let inner = this.inner;
            let (result, signal) = BodyTimeoutSignal::listen(|| inner.poll_frame(cx));
            if let Some(signal) = signal {
                *this.on_end = this.on_end.take().map(|c| c.on_timeout_watch(signal));
            }
            ready!(result)
        } else {
            ready!(this.inner.poll_frame(cx))
        };
        // A data frame leaves the callback where it is: only the end takes it
        // out (a callback can be large, as a request's record is, and moving
        // it out and back for every frame copies it twice).
        let end = match &result {
            None => Some(BodyEnd::Complete { trailers: None }),
            Some(Err(_)) => Some(BodyEnd::Error),
            Some(Ok(frame)) => frame.trailers_ref().map(|trailers| BodyEnd::Complete {
                trailers: Some(trailers),
            }),
        };
        if let Some(end) = end {
            C::on_end_in_place(this.on_end, end);
            *this.on_end = None;
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

    /// A body that offers a signal with its first frame, as a body idle
    /// timeout does when its body starts streaming.
    struct Offering<B> {
        inner: B,
        signal: Option<BodyTimeoutSignal>,
    }

    impl<B: Body + Unpin> Body for Offering<B> {
        type Data = B::Data;
        type Error = B::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            if let Some(signal) = self.signal.take() {
                signal.offer();
            }
            Pin::new(&mut self.inner).poll_frame(cx)
        }
    }

    /// Listens, and logs what it hears and how the body ends.
    struct Listening(Log);

    impl OnEnd for Listening {
        fn on_end(self, end: BodyEnd<'_>) {
            self.0.lock().unwrap().push(format!("{end:?}"));
        }

        fn listens_for_timeout(&self) -> bool {
            true
        }

        fn on_timeout_watch(self, signal: BodyTimeoutSignal) -> Self {
            let log = self.0.clone();
            log.lock().unwrap().push("heard".to_owned());
            signal.on_fire(move || log.lock().unwrap().push("fired".to_owned()));
            self
        }
    }

    fn two_frames() -> StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Item>>> {
        stream(vec![
            Ok(Frame::data(Bytes::from("a"))),
            Ok(Frame::data(Bytes::from("b"))),
        ])
    }

    #[tokio::test]
    async fn a_listening_callback_hears_the_signal_offered_while_it_polls() {
        let log: Log = Arc::default();
        let signal = BodyTimeoutSignal::new();
        let inner = Offering {
            inner: two_frames(),
            signal: Some(signal.clone()),
        };
        let mut body = CompletionBody::new(inner, Listening(log.clone()));
        assert!(body.frame().await.unwrap().is_ok());
        assert_eq!(taken(&log), ["heard"]);
        signal.fire();
        assert_eq!(taken(&log), ["heard", "fired"]);
        drop(body);
        assert_eq!(taken(&log), ["heard", "fired", "Dropped"]);
        // Offered with nobody listening: nothing is kept for later.
        signal.offer();
        let ((), heard) = BodyTimeoutSignal::listen(|| ());
        assert!(heard.is_none());
    }

    #[tokio::test]
    async fn a_callback_that_does_not_listen_hears_nothing() {
        let (log, cb) = recorder();
        let inner = Offering {
            inner: two_frames(),
            signal: Some(BodyTimeoutSignal::new()),
        };
        let mut body = CompletionBody::new(inner, cb);
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.is_none());
        assert_eq!(taken(&log), ["complete"]);
    }

    #[test]
    fn nested_listeners_both_hear_the_offer() {
        let signal = BodyTimeoutSignal::new();
        let ((inner_heard, ()), outer_heard) = BodyTimeoutSignal::listen(|| {
            let ((), heard) = BodyTimeoutSignal::listen(|| signal.offer());
            (heard, ())
        });
        for heard in [inner_heard, outer_heard] {
            let heard = heard.expect("heard");
            heard.fire();
        }
        assert!(signal.fired());
        // Without an offer, a listener hears nothing.
        let ((), heard) = BodyTimeoutSignal::listen(|| ());
        assert!(heard.is_none());
    }

    #[test]
    fn bodies_dropped_by_a_timeout_report_it_and_only_those() {
        let (log, cb) = recorder();
        drop_timed_out(CompletionBody::new(two_frames(), cb));
        assert_eq!(taken(&log), ["timed out"]);
        // A body at its end when dropped is complete, timeout or not.
        let (log, cb) = recorder();
        drop_timed_out(CompletionBody::new(Empty::<Bytes>::new(), cb));
        assert_eq!(taken(&log), ["complete"]);
        // Afterwards, a drop is a drop again.
        let (log, cb) = recorder();
        drop(CompletionBody::new(two_frames(), cb));
        assert_eq!(taken(&log), ["dropped"]);
    }
}
