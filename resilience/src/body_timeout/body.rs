//! The response body of [`BodyTimeoutService`](super::BodyTimeoutService).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use telltale_core::body::drop_timed_out;
use telltale_core::{BodyTimedOut, BodyTimeoutSignal, BoxError};
use tokio::time::Instant;

use super::layer::Shared;
use super::reaper::{Reaper, Watch};

/// The error a response body ends with after its reader was idle longer than
/// the timeout (its permits were released when the timeout passed).
///
/// Its `source()` is [`telltale_core::BodyTimedOut`], which every telltale
/// layer classifies the same way (`Outcome::BodyTimeout`, `error.type`
/// `body_timeout`).
#[derive(Clone, Debug)]
pub struct BodyTimeout {
    /// The name of the layer (the bulkhead it protects).
    pub name: Arc<str>,
    /// The idle timeout that passed.
    pub idle: Duration,
}

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "response body `{}` ended: its reader was idle for {:?}",
            self.name, self.idle
        )
    }
}

impl std::error::Error for BodyTimeout {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&BodyTimedOut)
    }
}

/// The response body of [`BodyTimeoutService`](super::BodyTimeoutService):
/// the inner body, ended with a [`BodyTimeout`] error when its reader is
/// idle longer than the layer's timeout. Its error is the inner body's,
/// boxed.
///
/// It is `Unpin` whatever the inner body: the inner body is boxed (which
/// also lets a watched body move to the state it shares with the layer's
/// reaper once it streams).
pub struct ResponseBody<B> {
    inner: Inner<B>,
}

enum Inner<B> {
    /// No timeout, or a body at its end from the start: the body as it is.
    Plain(Pin<Box<B>>),
    Watched {
        shared: Arc<Shared>,
        state: State<B>,
    },
}

/// A watched body, from the reader's side.
enum State<B> {
    /// Owned here alone: no frame handed out yet, or only the last one.
    /// Boxed so that it can move to [`Watched`] when its reader becomes due.
    /// Nothing else is allocated until then: the [`BodyTimeoutSignal`] is
    /// made when the body streams, the only moment a reader can stall it.
    Owned {
        body: Pin<Box<B>>,
        span: Option<tracing::Span>,
    },
    /// Shared with the layer's reaper since a frame was handed out with more
    /// to come.
    Shared(Registered<B>),
    /// Ended (end of stream, error, or reported timeout).
    Ended,
}

/// The reader's hold on a body shared with the reaper: dropping it ends the
/// body (the reaper holds weak handles only).
struct Registered<B>(Arc<Watched<B>>);

impl<B> Drop for Registered<B> {
    fn drop(&mut self) {
        let ended = std::mem::replace(&mut *self.0.lock(), Slot::Ended);
        // Dropped outside the lock: the inner body releases its permits.
        drop(ended);
    }
}

/// A body shared by its reader and the layer's reaper.
struct Watched<B> {
    slot: Mutex<Slot<B>>,
}

/// Where a shared body is.
enum Slot<B> {
    /// Still streaming. `reader_since`: when the last frame was handed out
    /// with no poll since (the reader is due), `None` while the inner body is
    /// pending (the producer is due). `queued`: whether the reaper holds an
    /// entry for it (at most one). The request's span and the signal live
    /// as long as the body: the span's clone here must not keep it open once
    /// the body ended (the stalled reader may stay connected for long).
    /// `signal`: offered to the layers outside when the body started
    /// streaming, fired before the body is dropped.
    Live {
        body: Pin<Box<B>>,
        reader_since: Option<Instant>,
        queued: bool,
        span: tracing::Span,
        signal: BodyTimeoutSignal,
    },
    /// The reaper ended it; the error is reported once.
    TimedOut,
    /// Ended (end of stream, error, reported timeout, or dropped).
    Ended,
}

impl<B> Watched<B> {
    fn lock(&self) -> MutexGuard<'_, Slot<B>> {
        // A panic in the inner body while polled cannot leave the slot in an
        // inconsistent state: use it as it is.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B: Send + 'static> Watch for Watched<B> {
    fn check(&self, shared: &Shared, now: Instant) -> Option<Instant> {
        let idle = shared.idle?;
        let mut slot = self.lock();
        let Slot::Live {
            reader_since,
            queued,
            signal,
            ..
        } = &mut *slot
        else {
            return None;
        };
        let Some(since) = *reader_since else {
            // The producer is due: the next frame queues the body again.
            *queued = false;
            return None;
        };
        match since.checked_add(idle) {
            Some(deadline) if deadline <= now => {}
            // Read since the entry was queued: check again at the new
            // deadline (none: a timeout too long to ever pass).
            deadline => {
                *queued = deadline.is_some();
                return deadline;
            }
        }
        // The layers outside learn it first (the telemetry layer ends the
        // request's span and metrics with `body_timeout`; the reader may
        // never poll the body again), then the layers inside see their bodies
        // dropped by a timeout. Fired under the slot's lock, so that a reader
        // polling now sees the timeout only once the signal has fired.
        signal.fire();
        let ended = std::mem::replace(&mut *slot, Slot::TimedOut);
        drop(slot);
        let Slot::Live { body, span, .. } = ended else {
            return None;
        };
        // Dropping the inner body releases what it holds (a bulkhead slot, a
        // breaker permit, a chaos slot); the bodies in there that report
        // their end (a breaker's) report a body timeout.
        drop_timed_out(body);
        shared.timeouts.increment(1);
        tracing::warn!(
            target: "telltale::bulkhead",
            parent: &span,
            bulkhead = %shared.name,
            idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
            "response body reader idle: body ended, slot released"
        );
        None
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let watched = matches!(self.inner, Inner::Watched { .. });
        f.debug_struct("ResponseBody")
            .field("watched", &watched)
            .finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B>
where
    B: Body,
{
    /// Whether the layer watches a response with this body (else it passes
    /// through untouched).
    fn watches(shared: &Shared, body: &B) -> bool {
        shared.idle.is_some() && !body.is_end_stream()
    }

    pub(super) fn new(body: B, shared: Arc<Shared>, span: Option<tracing::Span>) -> Self {
        let inner = if Self::watches(&shared, &body) {
            Inner::Watched {
                shared,
                state: State::Owned {
                    body: Box::pin(body),
                    span,
                },
            }
        } else {
            Inner::Plain(Box::pin(body))
        };
        ResponseBody { inner }
    }
}

type Polled<B> = Poll<Option<Result<Frame<<B as Body>::Data>, BoxError>>>;

/// Polls a body owned by the reader; shares it with the reaper when it hands
/// out a frame with more to come.
fn poll_owned<B>(shared: &Arc<Shared>, state: &mut State<B>, cx: &mut Context<'_>) -> Polled<B>
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    let State::Owned { body, .. } = state else {
        return Poll::Ready(None);
    };
    match body.as_mut().poll_frame(cx) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Some(Ok(frame))) if !body.is_end_stream() => {
            // The reader is due from now: the reaper must be able to end the
            // body although the reader may never poll it again. Without a
            // tokio runtime there is no timer: the body stays unwatched.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let now = Instant::now();
                if let State::Owned { body, span } = std::mem::replace(state, State::Ended) {
                    // The layers outside polling this body now (telltale's
                    // telemetry layer) take the signal before this frame
                    // reaches the reader, so before the reader can stall.
                    let signal = BodyTimeoutSignal::new();
                    signal.offer();
                    let deadline = shared.idle.and_then(|idle| now.checked_add(idle));
                    let watched = Arc::new(Watched {
                        slot: Mutex::new(Slot::Live {
                            body,
                            reader_since: Some(now),
                            queued: deadline.is_some(),
                            span: span.unwrap_or_else(tracing::Span::none),
                            signal,
                        }),
                    });
                    if let Some(deadline) = deadline {
                        let weak: std::sync::Weak<dyn Watch> = Arc::downgrade(&watched) as _;
                        Reaper::queue(shared, deadline, weak, &runtime);
                    }
                    *state = State::Shared(Registered(watched));
                }
            }
            Poll::Ready(Some(Ok(frame)))
        }
        Poll::Ready(other) => {
            // The end (the last frame, an error, or none): release what the
            // body holds now.
            *state = State::Ended;
            Poll::Ready(other.map(|r| r.map_err(Into::into)))
        }
    }
}

/// Polls a body shared with the reaper.
fn poll_shared<B>(
    shared: &Arc<Shared>,
    watched: &Arc<Watched<B>>,
    cx: &mut Context<'_>,
) -> Polled<B>
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut slot = watched.lock();
    let (body, reader_since, queued) = match &mut *slot {
        Slot::Live {
            body,
            reader_since,
            queued,
            ..
        } => (body, reader_since, queued),
        Slot::TimedOut => {
            *slot = Slot::Ended;
            let name = shared.name.clone();
            let idle = shared.idle.unwrap_or_default();
            return Poll::Ready(Some(Err(BodyTimeout { name, idle }.into())));
        }
        Slot::Ended => return Poll::Ready(None),
    };
    match body.as_mut().poll_frame(cx) {
        Poll::Pending => {
            *reader_since = None;
            Poll::Pending
        }
        Poll::Ready(Some(Ok(frame))) if !body.is_end_stream() => {
            let now = Instant::now();
            *reader_since = Some(now);
            // Once in the queue, the body stays there (checked again at the
            // deadline of its last frame): a frame costs an `Instant` only.
            if !*queued
                && let Some(deadline) = shared.idle.and_then(|idle| now.checked_add(idle))
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                *queued = true;
                let weak: std::sync::Weak<dyn Watch> = Arc::downgrade(watched) as _;
                Reaper::queue(shared, deadline, weak, &runtime);
            }
            Poll::Ready(Some(Ok(frame)))
        }
        Poll::Ready(other) => {
            let ended = std::mem::replace(&mut *slot, Slot::Ended);
            drop(slot);
            drop(ended);
            Poll::Ready(other.map(|r| r.map_err(Into::into)))
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match &mut self.get_mut().inner {
            Inner::Plain(body) => body.as_mut().poll_frame(cx).map_err(Into::into),
            Inner::Watched { shared, state } => match state {
                State::Shared(Registered(watched)) => poll_shared(shared, watched, cx),
                State::Owned { .. } => poll_owned(shared, state, cx),
                State::Ended => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Plain(body) => body.is_end_stream(),
            Inner::Watched { state, .. } => match state {
                State::Owned { body, .. } => body.is_end_stream(),
                State::Shared(Registered(watched)) => match &*watched.lock() {
                    Slot::Live { body, .. } => body.is_end_stream(),
                    Slot::TimedOut => false,
                    Slot::Ended => true,
                },
                State::Ended => true,
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Plain(body) => body.size_hint(),
            Inner::Watched { state, .. } => match state {
                State::Owned { body, .. } => body.size_hint(),
                State::Shared(Registered(watched)) => match &*watched.lock() {
                    Slot::Live { body, .. } => body.size_hint(),
                    _ => SizeHint::default(),
                },
                State::Ended => SizeHint::with_exact(0),
            },
        }
    }
}
