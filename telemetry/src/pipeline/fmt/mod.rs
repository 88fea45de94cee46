//! Enriched log lines, one module per concern as in tracing-subscriber's
//! `fmt::format`: [`JsonFormat`] (one JSON object per line, OpenTelemetry or
//! Elastic Common Schema names), [`PrettyFormat`] (terminals), the shared
//! field recording ([`JsonFields`]) and escaping ([`write_escaped`]), and the
//! [`OtelIdsLayer`] that lets both read the OpenTelemetry trace and span IDs.

use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

mod ecs;
mod escape;
mod fields;
mod json;
mod line;
mod pretty;

pub use ecs::{CUSTOM_NAMESPACE, KEYWORD_MAX_CHARS};
pub use escape::{TRUNCATION_MARKER, write_escaped};
pub use fields::JsonFields;
pub(crate) use fields::write_float;
pub use json::{ECS_VERSION, JsonFormat, Profile};
pub(crate) use json::{Head, write_line};
pub use pretty::PrettyFormat;
pub(crate) use pretty::write_span_line;

/// Where a formatter finds the dispatch it runs in, to ask the
/// OpenTelemetry layer for span contexts (`tracing::dispatcher::get_default`
/// is not usable while an event is being dispatched).
#[derive(Clone, Debug, Default)]
pub(crate) struct DispatchCell(Arc<OnceLock<WeakDispatch>>);

impl DispatchCell {
    pub(crate) fn set(&self, dispatch: &Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }

    pub(crate) fn span_context(&self, id: &tracing::span::Id) -> Option<SpanContext> {
        let dispatch = self.0.get()?.upgrade()?;
        tracing_opentelemetry::get_otel_context(id, &dispatch)
            .map(|cx| cx.span().span_context().clone())
    }
}

/// A layer that tells a [`JsonFormat`] or [`PrettyFormat`] which dispatch it
/// runs in, so it can read the OpenTelemetry trace and span IDs of the
/// current span. Get it from [`JsonFormat::ids_layer`] /
/// [`PrettyFormat::ids_layer`] and add it to the same subscriber (outside any
/// `Vec` of layers). [`init`](crate::init) does this.
#[derive(Clone, Debug)]
pub struct OtelIdsLayer {
    cell: DispatchCell,
}

impl OtelIdsLayer {
    /// A layer bound to no formatter (a placeholder when logs are off).
    pub(crate) fn unbound() -> Self {
        OtelIdsLayer {
            cell: DispatchCell::default(),
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for OtelIdsLayer {
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        self.cell.set(dispatch);
    }
}

impl OtelIdsLayer {
    fn new(cell: &DispatchCell) -> Self {
        OtelIdsLayer { cell: cell.clone() }
    }
}

/// The methods both formats have: the ids layer and the length cap.
macro_rules! format_common {
    () => {
        /// The layer to add to the same subscriber so lines carry the
        /// OpenTelemetry `trace_id` and `span_id`; see [`OtelIdsLayer`].
        pub fn ids_layer(&self) -> OtelIdsLayer {
            OtelIdsLayer::new(&self.cell)
        }

        /// Longest message written, in characters. Defaults to 4096. (Field
        /// values are cut by [`JsonFields`].)
        #[must_use]
        pub fn max_len(mut self, max: usize) -> Self {
            self.max_len = max.max(1);
            self
        }
    };
}
use format_common;

/// The severity of `level`: upper-case text, lower-case text, OpenTelemetry
/// severity number.
pub(crate) fn severity(level: &Level) -> (&'static str, &'static str, u8) {
    match *level {
        Level::TRACE => ("TRACE", "trace", 1),
        Level::DEBUG => ("DEBUG", "debug", 5),
        Level::INFO => ("INFO", "info", 9),
        Level::WARN => ("WARN", "warn", 13),
        Level::ERROR => ("ERROR", "error", 17),
    }
}

fn write_timestamp(w: &mut Writer<'_>) -> std::fmt::Result {
    SystemTime.format_time(w)
}
