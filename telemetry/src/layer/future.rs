use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;
use telltale_core::{CompletionBody, Outcome, ResponseHead, Side};

use super::server::ResponseBody;
use crate::layer::attrs::{Capture, protocol_version};
use crate::layer::record::{Record, RequestSpan, Route, Settle, classify_error};
use crate::layer::request_log::Pending;
use crate::metrics::InFlight;

pin_project! {
    /// The response future of the [`ServerTelemetryService`](super::server::ServerTelemetryService)
    /// and [`ClientTelemetryService`](super::client::ClientTelemetryService): settles the record on an
    /// inner error, hands it to the body on a response, or settles it as
    /// cancelled when dropped first.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: Option<Record>,
        capture: Option<Arc<Capture>>,
    }
}

impl<F> ResponseFuture<F> {
    /// Calls the inner service with `call` inside the request's span and
    /// records the request; a passthrough when there is nothing to record.
    pub(crate) fn start(
        span: RequestSpan,
        in_flight: Option<InFlight>,
        route: Route,
        side: Side,
        capture: Option<Arc<Capture>>,
        log: Option<Pending>,
        call: impl FnOnce() -> F,
    ) -> Self {
        if in_flight.is_none() && span.is_none() && log.is_none() {
            return ResponseFuture::passthrough(call());
        }
        let mut record = Record {
            span: span.span,
            recording: span.recording,
            context: span.context,
            in_flight,
            route,
            side,
            head: None,
            settled: false,
            described: false,
            log,
        };
        // A line with no span to carry the correlation ID learns it from the
        // correlation layer inside, while it settles it.
        let awaits = record.log.as_ref().is_some_and(Pending::awaits_correlation);
        let entered = record.enter();
        // Built in one expression, the inner service called (inside the
        // span) while its first field is evaluated: the inner future (every
        // layer inside, hundreds of bytes) is written where it stays, not
        // moved again on its way out (one expression per branch: a value
        // chosen by an `if` is copied out of it). If the call unwinds, the
        // span is left and the record settles as cancelled when dropped.
        if awaits {
            let mut heard = None;
            ResponseFuture {
                inner: telltale_core::correlation::listen_into(&mut heard, call),
                record: {
                    drop(entered);
                    if let Some(log) = record.log.as_mut() {
                        log.heard(heard);
                    }
                    Some(record)
                },
                capture,
            }
        } else {
            ResponseFuture {
                inner: call(),
                record: {
                    drop(entered);
                    Some(record)
                },
                capture,
            }
        }
    }

    fn passthrough(inner: F) -> Self {
        ResponseFuture {
            inner,
            record: None,
            capture: None,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: fmt::Display + 'static,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.record.as_ref().map(Record::enter);
            ready!(this.inner.poll(cx))
        };
        // Worked on where it lies, and moved once: from the future straight
        // into the response body.
        let Some(record) = this.record.as_mut() else {
            return Poll::Ready(result.map(|res| res.map(ResponseBody::passthrough)));
        };
        match result {
            Ok(response) => {
                // A server knows the version from the request; a client learns
                // it from the response.
                if record.side == Side::Client
                    && !record.span.is_disabled()
                    && let Some(version) = protocol_version(response.version())
                {
                    record.span.record("network.protocol.version", version);
                }
                record.on_head(ResponseHead::from_response(&response));
                if let Some(capture) = this.capture.take().filter(|_| record.recording) {
                    capture.record(&record.span, response.headers());
                }
                // A body timeout inside may end the body before anyone polls
                // it again: once the body streams, its signal settles the
                // record then (see `Settle`).
                let (parts, body) = response.into_parts();
                let settle = this.record.take().map(Settle::Owned);
                Poll::Ready(Ok(Response::from_parts(
                    parts,
                    ResponseBody::new(CompletionBody::with_optional(body, settle)),
                )))
            }
            Err(err) => {
                let outcome = classify_error(&err);
                // A guard's refusal has a fixed description; its per-call
                // numbers are attributes (`resilience.*`), not status text.
                match outcome {
                    Outcome::Refused { refusal, .. } => record.describe_error(&refusal),
                    _ => record.describe_error(&err),
                }
                record.settle(outcome);
                *this.record = None;
                Poll::Ready(Err(err))
            }
        }
    }
}
