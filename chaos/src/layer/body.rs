use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use telltale_core::BoxError;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;

use super::error::BodyTruncated;
use crate::injector::{ActiveGuard, Plan, Shared};

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Synthetic { data: Option<Bytes> },
    }
}

/// Slow and truncated delivery, and the active-fault slot held until the body ends.
struct BodyFault {
    guard: Option<ActiveGuard>,
    shared: Arc<Shared>,
    rule: Arc<str>,
    slow: Option<Slow>,
    truncate: Option<Truncate>,
    pending: Bytes,
}

struct Slow {
    bytes_per_second: u64,
    sleep: Option<Pin<Box<Sleep>>>,
    kill: Pin<Box<OwnedNotified>>,
}

struct Truncate {
    after: u64,
    left: u64,
    cut: bool,
    reported: bool,
}

impl Slow {
    fn chunk(&self) -> usize {
        usize::try_from((self.bytes_per_second / 10).max(1)).unwrap_or(usize::MAX)
    }

    fn wait_for(&mut self, bytes: usize) {
        // A `Fault::Slow` built in code may say 0 bytes per second (the
        // parser refuses it): read as 1, and never a panicking conversion on
        // the request path.
        let secs = bytes as f64 / self.bytes_per_second.max(1) as f64;
        let wait = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
        self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
    }
}

pin_project! {
    /// The response body of [`ChaosService`](super::ChaosService): the inner body untouched, a
    /// synthetic fault body, or an inner body delivered slowly or cut short. It
    /// holds the fault's `TELLTALE_CHAOS_MAX_ACTIVE` slot until it ends.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
        fault: Option<Box<BodyFault>>,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
            fault: None,
        }
    }

    pub(crate) fn faulty_inner(body: B, plan: Plan) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
            fault: Some(Box::new(BodyFault::new(plan))),
        }
    }

    pub(crate) fn synthetic(data: Bytes, plan: Option<Plan>) -> Self {
        ResponseBody {
            kind: Kind::Synthetic {
                data: (!data.is_empty()).then_some(data),
            },
            fault: plan.map(|p| Box::new(BodyFault::new(p))),
        }
    }
}

impl BodyFault {
    fn new(plan: Plan) -> Self {
        let shared = plan.guard.shared.clone();
        BodyFault {
            rule: plan.rules.clone(),
            slow: plan.slow.map(|bytes_per_second| Slow {
                bytes_per_second,
                sleep: None,
                kill: Box::pin(shared.kill.clone().notified_owned()),
            }),
            truncate: plan.truncate.map(|after| Truncate {
                after,
                left: after,
                cut: false,
                reported: false,
            }),
            pending: Bytes::new(),
            guard: Some(plan.guard),
            shared,
        }
    }

    fn killed(&mut self, cx: &mut Context<'_>) -> bool {
        if self.slow.is_none() && self.truncate.is_none() {
            return false;
        }
        let killed = self.shared.is_killed()
            || self
                .slow
                .as_mut()
                .is_some_and(|s| s.kill.as_mut().poll(cx).is_ready());
        if killed {
            self.slow = None;
            self.truncate = None;
        }
        killed
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let mut kind = this.kind;
        let Some(fault) = this.fault.as_mut() else {
            return poll_kind(kind.as_mut(), cx);
        };
        loop {
            fault.killed(cx);
            if !fault.pending.is_empty() {
                let Some(slow) = fault.slow.as_mut() else {
                    let data = std::mem::take(&mut fault.pending);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                };
                if let Some(sleep) = slow.sleep.as_mut() {
                    ready!(sleep.as_mut().poll(cx));
                }
                let chunk = fault
                    .pending
                    .split_to(slow.chunk().min(fault.pending.len()));
                if fault.pending.is_empty() {
                    slow.sleep = None;
                } else {
                    let next = slow.chunk().min(fault.pending.len());
                    slow.wait_for(next);
                }
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if let Some(t) = fault.truncate.as_mut() {
                if t.cut {
                    if t.reported {
                        return Poll::Ready(None);
                    }
                    t.reported = true;
                    fault.guard = None;
                    return Poll::Ready(Some(Err(Box::new(BodyTruncated {
                        rule: fault.rule.clone(),
                        after: t.after,
                    }))));
                }
            }
            let frame = match ready!(poll_kind(kind.as_mut(), cx)) {
                None => {
                    *this.fault = None;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    fault.guard = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Ok(frame)) => frame,
            };
            let mut data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            if let Some(t) = fault.truncate.as_mut() {
                let len = data.len() as u64;
                if len >= t.left {
                    data.truncate(usize::try_from(t.left).unwrap_or(usize::MAX));
                    t.left = 0;
                    t.cut = true;
                } else {
                    t.left -= len;
                }
            }
            if data.is_empty() {
                continue;
            }
            match fault.slow.as_mut() {
                Some(slow) => {
                    let first = slow.chunk().min(data.len());
                    slow.wait_for(first);
                    fault.pending = data;
                }
                None => return Poll::Ready(Some(Ok(Frame::data(data)))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if let Some(fault) = &self.fault {
            if !fault.pending.is_empty()
                || fault
                    .truncate
                    .as_ref()
                    .is_some_and(|t| t.cut && !t.reported)
            {
                return false;
            }
        }
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Synthetic { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.fault.as_ref().is_some_and(|f| f.truncate.is_some()) {
            return SizeHint::default();
        }
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Synthetic { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

fn poll_kind<B>(
    kind: Pin<&mut Kind<B>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match kind.project() {
        KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
        KindProj::Synthetic { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("synthetic", &matches!(self.kind, Kind::Synthetic { .. }))
            .field("faulty", &self.fault.is_some())
            .finish()
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        ResponseBody::inner(B::default())
    }
}
