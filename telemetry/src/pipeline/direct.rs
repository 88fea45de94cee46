//! [`DirectRequestAttributes`]: a subscriber's declaration that its log
//! formatters are telltale's, so that telltale's request layers may give
//! their attributes to the OpenTelemetry span directly and their fields to
//! the formatters only ([`enabled`], [`record_for_logs`]).
//!
//! Why by hand, and why this way: a request attribute recorded as a tracing
//! field (`Span::record`) reaches every layer, and `tracing-opentelemetry`
//! copies each one into an attribute `String`. Keeping it from that layer
//! would take a wrapper layer, which must forward `Layer::downcast_raw`, an
//! `unsafe fn` (the project forbids unsafe code). Instead the request layers
//! set the attributes on the OpenTelemetry span themselves and hand the
//! values to telltale's field formatter ([`JsonFields`]) here, through the
//! dispatch's safe `downcast_ref`: what `tracing_subscriber::fmt::Layer`'s
//! `on_record` does, without going through tracing's dispatch. No crate
//! offers this.

use tracing::Subscriber;
use tracing::field::ValueSet;
use tracing::span::Record;
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use super::fmt::JsonFields;

/// A layer that does nothing; adding it to a subscriber declares that every
/// log formatter in the subscriber is telltale's
/// ([`JsonFormat`](crate::JsonFormat), [`PrettyFormat`](crate::PrettyFormat),
/// with [`JsonFields`]), or that there is none.
///
/// Then telltale's request layers
/// ([`layer`](crate::layer)) give their request attributes (`http.route`,
/// `url.path`, `http.response.status_code`, …) to the OpenTelemetry span
/// directly, without the copies `tracing-opentelemetry` makes of tracing
/// fields, and hand the same values to telltale's formatters only: the log
/// lines of events inside the request span show them as before, with the
/// same escaping and length cap. They are no longer tracing fields of the
/// span, so any other layer that reads span fields — a foreign formatter
/// such as `tracing_subscriber::fmt::layer()` with its default field
/// formatter, or a layer of your own — does not see them. Without this
/// layer, the request layers record them as tracing fields, which every
/// layer sees.
///
/// Two more consequences of that, each of which rules this layer out where
/// it matters:
/// - a filter matching a field's *value* (`EnvFilter`'s
///   `[request{http.route=/status}]=debug`) no longer sees the request
///   fields' values;
/// - the client span's OpenTelemetry span gets its attributes once it has
///   started, so a custom SDK sampler that decides on attributes does not
///   see them (the pipeline's samplers, `OTEL_TRACES_SAMPLER`, read none).
///
/// [`Telemetry::builder`](crate::Telemetry::builder) adds it to the
/// pipeline's subscriber, unless its log or trace filter matches a field's
/// value: every formatter there is telltale's, and the pipeline's
/// subscriber takes no layers of yours (it is handed out as a finished
/// [`Dispatch`](tracing::Dispatch)).
///
/// Bare or filtered: tracing-subscriber treats a layer without a per-layer
/// filter as wanting every callsite. In a subscriber that already has such a
/// layer (a `fmt::layer()` added without `.with_filter`, as in most
/// subscribers, or the pipeline's), adding `DirectRequestAttributes` bare
/// changes nothing and costs nothing. In a subscriber whose layers all have
/// per-layer filters, the bare layer would lift the subscriber's level hint
/// (a disabled `debug!` then costs a filter evaluation, about 16 ns, instead
/// of one comparison): add [`DirectRequestAttributes::layer`] there, which
/// keeps every decision the other layers', at the price every per-layer
/// filtered layer pays (a span look-up on each span enter and exit, about
/// 18 ns per pair).
///
/// ```
/// use telltale_telemetry::{DirectRequestAttributes, JsonFields, JsonFormat};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(
///         tracing_subscriber::fmt::layer()
///             .fmt_fields(JsonFields::default())
///             .event_format(JsonFormat::default()),
///     )
///     .with(DirectRequestAttributes);
/// let dispatch = tracing::Dispatch::new(subscriber);
/// assert!(dispatch.downcast_ref::<DirectRequestAttributes>().is_some());
///
/// // All layers filtered: the filtered form.
/// use tracing_subscriber::Layer as _;
/// use tracing_subscriber::filter::LevelFilter;
/// let subscriber = tracing_subscriber::registry()
///     .with(
///         tracing_subscriber::fmt::layer()
///             .fmt_fields(JsonFields::default())
///             .event_format(JsonFormat::default())
///             .with_filter(LevelFilter::INFO),
///     )
///     .with(DirectRequestAttributes::layer());
/// let dispatch = tracing::Dispatch::new(subscriber);
/// assert!(dispatch.downcast_ref::<DirectRequestAttributes>().is_some());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectRequestAttributes;

impl DirectRequestAttributes {
    /// The layer in a per-layer filter that enables nothing, so that it
    /// changes nothing in what the subscriber enables: the form to add to a
    /// subscriber whose layers all have per-layer filters.
    pub fn layer<S>() -> Filtered<DirectRequestAttributes, LevelFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        DirectRequestAttributes.with_filter(LevelFilter::OFF)
    }

    /// Test entry for `enabled`; not part of the API.
    #[doc(hidden)]
    pub fn __enabled(span: &tracing::Span) -> bool {
        enabled(span)
    }

    /// Test entry for `record_for_logs`; not part of the API.
    #[doc(hidden)]
    pub fn __record_for_logs(span: &tracing::Span, values: &ValueSet<'_>) {
        record_for_logs(span, values);
    }
}

impl<S: Subscriber> Layer<S> for DirectRequestAttributes {}

/// Whether `span`'s subscriber holds a [`DirectRequestAttributes`] (bare,
/// filtered, boxed, in a `Vec` of layers: every wrapper of
/// tracing-subscriber forwards the look-up). False for a disabled span.
///
/// One virtual call and a few type-id comparisons when the layer is the
/// subscriber's outermost one, as in the pipeline (about 4 ns); no cache
/// needed.
pub(crate) fn enabled(span: &tracing::Span) -> bool {
    span.with_subscriber(|(_, dispatch)| {
        dispatch.downcast_ref::<DirectRequestAttributes>().is_some()
    })
    .unwrap_or(false)
}

/// Gives `values` to telltale's log formatters for `span`, as
/// `tracing_subscriber::fmt::Layer::on_record` would: appended with the
/// subscriber's [`JsonFields`] (its escaping and length cap) to the span's
/// `FormattedFields<JsonFields>`, which [`JsonFormat`](crate::JsonFormat) and
/// [`PrettyFormat`](crate::PrettyFormat) read. No other layer sees them.
///
/// Does nothing when the span is disabled, when the subscriber has no
/// [`JsonFields`] formatter or is not a `tracing_subscriber::Registry`
/// stack, or when the span has no formatted fields: the formatter's layer
/// did not see the span's creation, because its per-layer filter turned the
/// span away (as `Filtered` skips `on_record` for such a span) — then no
/// line shows the span's fields anyway.
pub(crate) fn record_for_logs(span: &tracing::Span, values: &ValueSet<'_>) {
    span.with_subscriber(|(id, dispatch)| {
        let Some(fields) = dispatch.downcast_ref::<JsonFields>() else {
            return;
        };
        let Some(registry) = dispatch.downcast_ref::<Registry>() else {
            return;
        };
        let Some(data) = registry.span(id) else {
            return;
        };
        let mut extensions = data.extensions_mut();
        if let Some(formatted) = extensions.get_mut::<FormattedFields<JsonFields>>() {
            // Writing to a `String` does not fail.
            let _ = fields.add_fields(formatted, &Record::new(values));
        }
    });
}

/// Whether filter `directives` (`EnvFilter` syntax) match a span field's
/// value (`target[span{field=value}]=level`): an `=` inside braces.
pub(crate) fn matches_field_values(directives: &str) -> bool {
    let mut depth = 0_usize;
    directives.chars().any(|c| {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        c == '=' && depth > 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn with_span(dispatch: tracing::Dispatch, f: impl FnOnce(&tracing::Span)) {
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("request");
            f(&span);
        });
    }

    #[test]
    fn field_value_matchers_are_told_apart() {
        assert!(!matches_field_values("info,my_crate=debug"));
        assert!(!matches_field_values("[{user}]=debug,info"));
        assert!(!matches_field_values("[request]=trace"));
        assert!(matches_field_values("info,[{correlation_id=req-42}]=debug"));
        assert!(matches_field_values("t[request{http.route=/status}]=debug"));
    }

    #[test]
    fn found_bare_filtered_boxed_and_in_a_vec() {
        let bare = tracing_subscriber::registry().with(DirectRequestAttributes);
        with_span(tracing::Dispatch::new(bare), |span| assert!(enabled(span)));

        // Beside a layer that enables the span: alone, the marker's filter
        // (which enables nothing) would leave the span disabled, with nothing
        // to find.
        let filtered = tracing_subscriber::registry()
            .with(DirectRequestAttributes::layer())
            .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO));
        with_span(tracing::Dispatch::new(filtered), |span| {
            assert!(enabled(span))
        });

        let boxed: Box<dyn Layer<Registry> + Send + Sync> = Box::new(DirectRequestAttributes);
        let boxed = tracing_subscriber::registry().with(boxed);
        with_span(tracing::Dispatch::new(boxed), |span| assert!(enabled(span)));

        let listed: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![
            Box::new(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO)),
            Box::new(DirectRequestAttributes::layer()),
        ];
        let listed = tracing_subscriber::registry().with(listed);
        with_span(tracing::Dispatch::new(listed), |span| {
            assert!(enabled(span))
        });
    }

    #[test]
    fn absent_disabled_or_without_subscriber() {
        let without = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer());
        with_span(tracing::Dispatch::new(without), |span| {
            assert!(!enabled(span))
        });
        // A disabled span: nothing to look up, no panic.
        assert!(!enabled(&tracing::Span::none()));
        with_probe_values(|values| record_for_logs(&tracing::Span::none(), values));
    }

    #[test]
    fn the_marker_changes_no_level_hint() {
        use tracing::Subscriber as _;
        let plain = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO));
        let marked = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO))
            .with(DirectRequestAttributes::layer());
        assert_eq!(plain.max_level_hint(), Some(LevelFilter::INFO));
        assert_eq!(marked.max_level_hint(), Some(LevelFilter::INFO));
        // Bare beside a layer without a filter (as in the pipeline): the
        // hint is that layer's already.
        let unfiltered = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO))
            .with(tracing_subscriber::layer::Identity::new());
        let bare = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO))
            .with(tracing_subscriber::layer::Identity::new())
            .with(DirectRequestAttributes);
        assert_eq!(bare.max_level_hint(), unfiltered.max_level_hint());
    }

    /// Calls `f` with a value set of one string field, `probe = "x"`.
    fn with_probe_values(f: impl FnOnce(&ValueSet<'_>)) {
        static CALLSITE: tracing::callsite::DefaultCallsite =
            tracing::callsite::DefaultCallsite::new(&META);
        static META: tracing::Metadata<'static> = tracing::Metadata::new(
            "probe",
            "probe",
            tracing::Level::INFO,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&["probe"], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::SPAN,
        );
        let fields = META.fields();
        let field = fields.field("probe").expect("declared");
        let values = [(&field, Some(&"x" as &dyn tracing::Value))];
        f(&fields.value_set(&values));
    }
}
