//! The record of one request, shared by the server and client layers: it owns the
//! span and the metrics in-flight handle and settles both from one [`Outcome`].

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use http::StatusCode;
use opentelemetry::trace::TraceContextExt;
use telltale_core::grpc::split_path;
use telltale_core::{
    BodyEnd, BodyTimeoutSignal, BoxError, GrpcCode, OnEnd, Outcome, ResponseHead, Side,
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::layer::names;
use crate::layer::request_log::Pending;
use crate::metrics::InFlight;

/// The route label and `http.route` of a request, as cheap to keep as possible.
#[derive(Clone, Debug, Default)]
pub(crate) enum Route {
    /// No route: unmatched requests get no route label.
    #[default]
    None,
    /// The route template axum matched.
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
    /// A gRPC call: the route is the URI's path, `/pkg.Service/Method` (the
    /// clone of the URI's path and query shares its bytes: no copy). Only
    /// that part of the URI is kept: a whole `Uri` is more than twice its size,
    /// and the route is moved with the record.
    Grpc(http::uri::PathAndQuery),
    /// A gRPC call that nothing has vouched for yet (no router match, no
    /// allow-list): no route until the response head shows that the server
    /// knew the method (a gRPC response that is neither `UNIMPLEMENTED` nor a
    /// rejection), when it becomes [`Route::Grpc`]. Unknown paths never become
    /// labels.
    Unvouched(http::uri::PathAndQuery),
}

impl Route {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Route::None => None,
            #[cfg(feature = "axum")]
            Route::Matched(m) => Some(m.as_str()),
            Route::Grpc(path) => Some(path.path()),
            Route::Unvouched(_) => None,
        }
    }

    /// Promotes an [`Unvouched`](Route::Unvouched) route whose server answered
    /// as one that knows the method; returns the promoted route's path.
    fn vouch(&mut self, head: &ResponseHead) -> Option<&str> {
        let Route::Unvouched(path) = self else {
            return None;
        };
        if !head.is_grpc()
            || head.refusal().is_some()
            || head.grpc_in_headers() == Some(GrpcCode::Unimplemented)
        {
            return None;
        }
        *self = Route::Grpc(path.clone());
        self.as_str()
    }
}

/// Classifies an inner service error without knowing its type: boxed errors,
/// I/O errors and tokio timeouts are read through [`Outcome::from_error`];
/// anything else is a plain error.
pub(crate) fn classify_error<E: Any>(err: &E) -> Outcome {
    let any = err as &dyn Any;
    if let Some(e) = any.downcast_ref::<BoxError>() {
        return Outcome::from_error(&**e);
    }
    if let Some(e) = any.downcast_ref::<Box<dyn std::error::Error + Send>>() {
        return Outcome::from_error(&**e);
    }
    if let Some(e) = any.downcast_ref::<Box<dyn std::error::Error>>() {
        return Outcome::from_error(&**e);
    }
    if let Some(e) = any.downcast_ref::<std::io::Error>() {
        return Outcome::from_error(e);
    }
    if let Some(e) = any.downcast_ref::<tokio::time::error::Elapsed>() {
        return Outcome::from_error(e);
    }
    Outcome::Error { status: None }
}

/// How a request layer gives its attributes to the OpenTelemetry span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direct {
    /// As tracing fields, which every layer gets: the tracing →
    /// OpenTelemetry layer converts each into an attribute.
    No,
    /// The subscriber declares with
    /// [`DirectRequestAttributes`](crate::DirectRequestAttributes) that its
    /// log formatters are telltale's: the values go to them only, and the
    /// layer sets the attributes on the OpenTelemetry span itself.
    Formatters,
}

impl Direct {
    /// How `span`'s subscriber takes request attributes.
    pub(crate) fn of(span: &Span) -> Self {
        if crate::pipeline::direct::enabled(span) {
            Direct::Formatters
        } else {
            Direct::No
        }
    }

    /// Records `values` on `span`: for every layer ([`Direct::No`]), or for
    /// all but the OpenTelemetry one, which gets them from the caller.
    pub(crate) fn record(self, span: &Span, values: &tracing::field::ValueSet<'_>) {
        match self {
            Direct::No => {
                span.record_all(values);
            }
            Direct::Formatters => crate::pipeline::direct::record_for_logs(span, values),
        }
    }
}

/// A request's span, as its layer built it.
#[derive(Debug)]
pub(crate) struct RequestSpan {
    /// The tracing span (`Span::none()` when there is none).
    pub(crate) span: Span,
    /// Whether `span` records attributes (see [`Record::recording`]).
    pub(crate) recording: bool,
    /// The OpenTelemetry context of a request sampled out before any span
    /// was built ([`sampling`](crate::sampling)): attached while the request
    /// runs, so lines and child spans see its trace ID.
    pub(crate) context: Option<opentelemetry::Context>,
}

impl RequestSpan {
    /// A span built the usual way: it records unless it is disabled.
    pub(crate) fn traced(span: Span) -> Self {
        RequestSpan {
            recording: !span.is_disabled(),
            span,
            context: None,
        }
    }

    /// No span and no context.
    pub(crate) fn none() -> Self {
        RequestSpan {
            span: Span::none(),
            recording: false,
            context: None,
        }
    }

    /// Whether there is nothing to enter.
    pub(crate) fn is_none(&self) -> bool {
        self.span.is_disabled() && self.context.is_none()
    }
}

/// The request entered: its span, or its attached context.
pub(crate) struct Entered<'a> {
    _span: tracing::span::Entered<'a>,
    _context: Option<opentelemetry::ContextGuard>,
}

/// One request's record. Settles exactly once: explicitly, or as cancelled when
/// dropped unsettled.
pub(crate) struct Record {
    pub(crate) span: Span,
    /// Whether the span records attributes: false when it is disabled, and
    /// when the sampler dropped the request (its OpenTelemetry span only
    /// carries IDs, so recording fields would convert them for nothing).
    pub(crate) recording: bool,
    /// See [`RequestSpan::context`].
    pub(crate) context: Option<opentelemetry::Context>,
    pub(crate) in_flight: Option<InFlight>,
    pub(crate) route: Route,
    pub(crate) side: Side,
    pub(crate) head: Option<ResponseHead>,
    pub(crate) settled: bool,
    pub(crate) described: bool,
    /// The request log line to write when the record settles (server side,
    /// when the log is on).
    pub(crate) log: Option<Pending>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("span", &self.span)
            .field("route", &self.route.as_str())
            .field("side", &self.side)
            .field("head", &self.head)
            .field("settled", &self.settled)
            .finish()
    }
}

impl Record {
    /// Enters the span, or attaches the context of a request without one.
    pub(crate) fn enter(&self) -> Entered<'_> {
        Entered {
            _span: self.span.enter(),
            _context: self.context.as_ref().map(|cx| cx.clone().attach()),
        }
    }

    /// The response head arrived: records the status now (it is known even if
    /// the body is cut later).
    pub(crate) fn on_head(&mut self, head: ResponseHead) {
        if let Some(path) = self.route.vouch(&head)
            && self.recording
            && let Some((service, method)) = split_path(path)
        {
            let name = names::name("", path, || format!("{service}/{method}"));
            self.span.record("otel.name", &*name);
            // A started OpenTelemetry span ignores a recorded `otel.name`.
            self.span.context().span().update_name(name);
            self.span.record("http.route", path);
            self.span.record("rpc.system", "grpc");
            self.span.record("rpc.service", service);
            self.span.record("rpc.method", method);
        }
        if self.recording {
            self.record_attribute(
                "http.response.status_code",
                i64::from(head.status().as_u16()),
            );
        }
        self.head = Some(head);
    }

    /// Records `value` as the span's field `field` (an attribute field, not
    /// one of the bridge's `otel.*` fields). When the request's attributes
    /// go to the OpenTelemetry span directly ([`Direct`]), the field reaches
    /// only the log formatters and the attribute is set on the OpenTelemetry
    /// span, with a static key: the bridge would copy it into a list of
    /// updates.
    fn record_attribute<V>(&self, field: &'static str, value: V)
    where
        V: tracing::Value + Into<opentelemetry::Value>,
    {
        let direct = Direct::of(&self.span);
        if direct == Direct::No {
            self.span.record(field, value);
            return;
        }
        if let Some(meta) = self.span.metadata()
            && let Some(key) = meta.fields().field(field)
        {
            let values: [(&tracing::field::Field, Option<&dyn tracing::Value>); 1] =
                [(&key, Some(&value))];
            direct.record(&self.span, &meta.fields().value_set(&values));
        }
        self.span
            .set_attribute(opentelemetry::Key::from_static_str(field), value);
    }

    /// Records a description of an inner error on the span.
    pub(crate) fn describe_error(&mut self, err: &dyn fmt::Display) {
        if self.recording {
            self.described = true;
            self.span
                .record("otel.status_description", tracing::field::display(err));
        }
    }

    /// Settles the span and the metrics from `outcome`, once.
    pub(crate) fn settle(&mut self, outcome: Outcome) {
        if self.settled {
            return;
        }
        self.settled = true;
        let error_type = outcome.error_type(self.side);
        let status: Option<StatusCode> = outcome.status();
        let grpc = outcome.grpc_code();
        let log = self.log.take();
        // One clock read for both: the RED record's duration, also the line's.
        let duration = self.in_flight.as_ref().map(InFlight::elapsed);
        // (A request without a span needs its context only for the line.)
        if !self.span.is_disabled() || (self.context.is_some() && log.is_some()) {
            // Entered once more so that the span's end time (its last exit, for
            // tracing-opentelemetry) is the end of the exchange.
            let _entered = self.enter();
            if self.recording
                && self.head.is_none()
                && let Some(status) = status
            {
                self.record_attribute("http.response.status_code", i64::from(status.as_u16()));
            }
            if let Some(code) = grpc.filter(|_| self.recording) {
                self.record_attribute("rpc.grpc.status_code", i64::from(code.as_i32()));
            }
            if let Some(error_type) = error_type.filter(|_| self.recording) {
                self.record_attribute("error.type", error_type);
                // A description already set the status to Error with its text.
                if !self.described {
                    match outcome {
                        // A rejection answered with a response: the fixed text.
                        Outcome::Refused { refusal, .. } => {
                            self.span
                                .record("otel.status_description", refusal.message());
                        }
                        _ => {
                            self.span.record("otel.status_code", "error");
                        }
                    }
                }
            }
            // Inside the span: the line carries its fields and trace ID.
            if let Some(log) = log {
                log.finish(&outcome, self.route.as_str(), error_type, duration);
            }
        } else if let Some(log) = log {
            log.finish(&outcome, self.route.as_str(), error_type, duration);
        }
        if let Some(mut in_flight) = self.in_flight.take() {
            // A sampled request's duration becomes its bucket's exemplar.
            if in_flight.wants_exemplar() && self.recording {
                in_flight.exemplar_from(self.span.context().span().span_context());
            }
            let duration = duration.unwrap_or_else(|| in_flight.elapsed());
            in_flight.finish_with(duration, self.route.as_str(), status, grpc, error_type);
        }
        // Close the span now (unless the application kept clones of it).
        self.span = Span::none();
    }

    /// Settles from how the body ended.
    fn settle_on(&mut self, end: &BodyEnd<'_>) {
        let outcome = self.outcome_at(end);
        self.settle(outcome);
    }

    /// The outcome when the body ends the way `end` says.
    fn outcome_at(&self, end: &BodyEnd<'_>) -> Outcome {
        match &self.head {
            Some(head) => head.finish(end),
            None => match end {
                BodyEnd::Complete { .. } => Outcome::Response {
                    status: StatusCode::OK,
                    grpc: None,
                },
                BodyEnd::Error => Outcome::Error { status: None },
                BodyEnd::TimedOut => Outcome::BodyTimeout { status: None },
                BodyEnd::Dropped => Outcome::Cancelled { status: None },
            },
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.settled {
            let status = self.head.map(|h| h.status());
            self.settle(Outcome::Cancelled { status });
        }
    }
}

/// The [`OnEnd`] of a response body: settles the record when the body ends,
/// or when a layer inside ends the body of a stalled reader, whichever comes
/// first.
///
/// A body idle timeout inside can only end a body that streams (it handed
/// out a frame with more to come): its [`BodyTimeoutSignal`] is offered while
/// the body's `CompletionBody` polls that frame through, before the reader
/// can stall, and turns `Owned` into `Shared`. Until then nothing is
/// allocated, which is every response whose body ends with its first frame.
#[derive(Debug)]
// `Owned` is every request's path: boxing the record would cost an
// allocation per request to save bytes only while a body streams.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Settle {
    /// The body's end settles the record.
    Owned(Record),
    /// The body's end or the signal settles it: the reader that stalled the
    /// body may never poll it again, so the signal cannot wait for the body.
    Shared {
        record: Arc<Mutex<Option<Record>>>,
        signal: BodyTimeoutSignal,
    },
}

fn take(record: &Mutex<Option<Record>>) -> Option<Record> {
    record.lock().unwrap_or_else(PoisonError::into_inner).take()
}

impl Settle {
    /// Settles the record from how the body ended, where it lies (moving it
    /// out would copy the whole record).
    fn settle_at(&mut self, end: BodyEnd<'_>) {
        match self {
            Settle::Owned(record) => record.settle_on(&end),
            Settle::Shared { record, signal } => {
                let end = signal.resolve(end);
                if let Some(mut record) = take(record) {
                    record.settle_on(&end);
                }
            }
        }
    }
}

impl OnEnd for Settle {
    fn on_end(mut self, end: BodyEnd<'_>) {
        self.settle_at(end);
    }

    /// Settles the record inside the body's slot and drops it there: the
    /// record is not copied out of the body first.
    fn on_end_in_place(slot: &mut Option<Self>, end: BodyEnd<'_>) {
        if let Some(settle) = slot {
            settle.settle_at(end);
        }
        *slot = None;
    }

    fn listens_for_timeout(&self) -> bool {
        matches!(self, Settle::Owned(_))
    }

    /// Settles the record when `signal` fires, or when the body ends.
    fn on_timeout_watch(self, signal: BodyTimeoutSignal) -> Self {
        let record = match self {
            Settle::Owned(record) => record,
            shared @ Settle::Shared { .. } => return shared,
        };
        let record = Arc::new(Mutex::new(Some(record)));
        let on_fire = Arc::downgrade(&record);
        signal.on_fire(move || {
            if let Some(mut record) = on_fire.upgrade().and_then(|r| take(&r)) {
                record.settle_on(&BodyEnd::TimedOut);
            }
        });
        Settle::Shared { record, signal }
    }
}
