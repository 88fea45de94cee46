//! The response body of [`BodyTimeoutService`](super::BodyTimeoutService)
//! and its watchdog.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use telltale_core::{BodyTimedOut, BodyTimeoutSignal, BoxError};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::layer::Shared;

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

/// Where a watched body is.
enum Slot<B> {
    /// Still streaming. `reader_since`: when the last frame was handed out
    /// with no poll since (the reader is due), `None` while the inner body is
    /// pending (the producer is due) or before the first frame.
    Live {
        body: Pin<Box<B>>,
        reader_since: Option<Instant>,
    },
    /// The watchdog ended it; the error is reported once.
    TimedOut,
    /// Ended (end of stream, error, reported timeout, or dropped).
    Ended,
}

/// A body shared by its wrapper and its watchdog.
struct Watched<B> {
    slot: Mutex<Slot<B>>,
    done: Notify,
}

impl<B> Watched<B> {
    fn lock(&self) -> MutexGuard<'_, Slot<B>> {
        // A panic in the inner body while polled cannot leave the slot in an
        // inconsistent state: use it as it is.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the body (if live) and wakes the watchdog; returns the inner body
    /// to be dropped outside the lock.
    fn end(&self, to: Slot<B>) -> Option<Pin<Box<B>>> {
        let old = std::mem::replace(&mut *self.lock(), to);
        self.done.notify_one();
        match old {
            Slot::Live { body, .. } => Some(body),
            _ => None,
        }
    }
}

enum Inner<B> {
    /// No timeout (or no tokio runtime to run a watchdog): the body as it is.
    Plain(Pin<Box<B>>),
    Watched(Arc<Watched<B>>, Arc<str>, Duration),
}

/// The response body of [`BodyTimeoutService`](super::BodyTimeoutService):
/// the inner body, ended with a [`BodyTimeout`] error when its reader is
/// idle longer than the layer's timeout. Its error is the inner body's,
/// boxed.
pub struct ResponseBody<B> {
    inner: Inner<B>,
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let watched = matches!(self.inner, Inner::Watched(..));
        f.debug_struct("ResponseBody")
            .field("watched", &watched)
            .finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B>
where
    B: Body + Send + 'static,
{
    pub(super) fn new(
        body: B,
        shared: Arc<Shared>,
        span: Option<tracing::Span>,
        signal: Option<BodyTimeoutSignal>,
    ) -> Self {
        let body = Box::pin(body);
        let (Some(idle), Ok(runtime)) = (shared.idle, tokio::runtime::Handle::try_current()) else {
            return ResponseBody {
                inner: Inner::Plain(body),
            };
        };
        if body.is_end_stream() {
            return ResponseBody {
                inner: Inner::Plain(body),
            };
        }
        let watched = Arc::new(Watched {
            slot: Mutex::new(Slot::Live {
                body,
                reader_since: None,
            }),
            done: Notify::new(),
        });
        runtime.spawn(watchdog(
            Arc::downgrade(&watched),
            shared.clone(),
            idle,
            span,
            signal,
        ));
        ResponseBody {
            inner: Inner::Watched(watched, shared.name.clone(), idle),
        }
    }
}

/// Ends the body once its reader has been due for `idle`; returns when the
/// body ends.
async fn watchdog<B>(
    watched: std::sync::Weak<Watched<B>>,
    shared: Arc<Shared>,
    idle: Duration,
    span: Option<tracing::Span>,
    signal: Option<BodyTimeoutSignal>,
) {
    loop {
        let Some(w) = watched.upgrade() else { return };
        let deadline = match &*w.lock() {
            Slot::Live {
                reader_since: Some(since),
                ..
            } => *since + idle,
            Slot::Live {
                reader_since: None, ..
            } => Instant::now() + idle,
            Slot::TimedOut | Slot::Ended => return,
        };
        if deadline <= Instant::now() {
            let expired = match &*w.lock() {
                Slot::Live {
                    reader_since: Some(since),
                    ..
                } => since.elapsed() >= idle,
                _ => false,
            };
            if expired {
                // The layers around learn it first (the telemetry layer ends
                // the request's span and metrics with `body_timeout`; the
                // reader may never poll the body again), then the layers
                // inside see their bodies dropped by a timeout.
                if let Some(signal) = &signal {
                    signal.fire();
                }
                // Dropping the inner body releases what it holds (a bulkhead
                // slot, a breaker permit, a chaos slot).
                drop(w.end(Slot::TimedOut));
                shared.timeouts.increment(1);
                let span = span.unwrap_or_else(tracing::Span::none);
                tracing::warn!(
                    target: "telltale::bulkhead",
                    parent: &span,
                    bulkhead = %shared.name,
                    idle_ms = idle.as_millis() as u64,
                    "response body reader idle: body ended, slot released"
                );
                return;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = w.done.notified() => {}
        }
    }
}

impl<B> Drop for ResponseBody<B> {
    fn drop(&mut self) {
        if let Inner::Watched(watched, ..) = &self.inner {
            drop(watched.end(Slot::Ended));
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let (watched, name, idle) = match &mut self.get_mut().inner {
            Inner::Plain(body) => {
                return body.as_mut().poll_frame(cx).map_err(Into::into);
            }
            Inner::Watched(watched, name, idle) => (watched, name, *idle),
        };
        let mut slot = watched.lock();
        let (body, reader_since) = match &mut *slot {
            Slot::Live { body, reader_since } => (body, reader_since),
            Slot::TimedOut => {
                *slot = Slot::Ended;
                let name = name.clone();
                return Poll::Ready(Some(Err(BodyTimeout { name, idle }.into())));
            }
            Slot::Ended => return Poll::Ready(None),
        };
        match body.as_mut().poll_frame(cx) {
            Poll::Pending => {
                *reader_since = None;
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                if body.is_end_stream() {
                    let ended = std::mem::replace(&mut *slot, Slot::Ended);
                    drop(slot);
                    watched.done.notify_one();
                    drop(ended);
                } else {
                    *reader_since = Some(Instant::now());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                let ended = std::mem::replace(&mut *slot, Slot::Ended);
                drop(slot);
                watched.done.notify_one();
                drop(ended);
                Poll::Ready(other.map(|r| r.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Plain(body) => body.is_end_stream(),
            Inner::Watched(watched, ..) => match &*watched.lock() {
                Slot::Live { body, .. } => body.is_end_stream(),
                Slot::TimedOut => false,
                Slot::Ended => true,
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Plain(body) => body.size_hint(),
            Inner::Watched(watched, ..) => match &*watched.lock() {
                Slot::Live { body, .. } => body.size_hint(),
                _ => SizeHint::default(),
            },
        }
    }
}
