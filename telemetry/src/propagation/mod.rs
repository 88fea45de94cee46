//! Context propagation: which headers carry the trace (and baggage) between
//! services.
//!
//! - [`TraceContextPropagator`]: telltale's W3C Trace Context Level 2
//!   propagator (`traceparent`, `tracestate`), built on [`TraceParent`] and
//!   [`W3cTraceState`], written here because opentelemetry's accepts
//!   malformed `traceparent` fields, follows an older `tracestate` grammar,
//!   masks the random flag and sends empty `tracestate` headers.
//! - [`B3Propagator`]: Zipkin's B3, single or multiple headers.
//! - [`W3cBaggagePropagator`]: W3C Baggage, read by opentelemetry's
//!   `BaggagePropagator`, written so that properties read back the same.
//! - [`Propagators`]: the list `OTEL_PROPAGATORS` names (`tracecontext`,
//!   `baggage`, `b3`, `b3multi`, `none`), composed in order and installed as
//!   the global propagator by [`init`](crate::init); by default
//!   `tracecontext,baggage`.
//!
//! telltale's server and client layers use the global propagator once
//! telltale installed one (so `OTEL_PROPAGATORS=none` means no propagation
//! at all), or one the application set itself; with neither (the layers used
//! without `init`), they use the default list.
//!
//! ```
//! use telltale_telemetry::propagation::{PropagatorKind, Propagators};
//!
//! let p: Propagators = "b3multi, tracecontext".parse().unwrap();
//! assert_eq!(p.kinds(), [PropagatorKind::B3Multi, PropagatorKind::TraceContext]);
//! assert!(Propagators::parse("none").unwrap().kinds().is_empty());
//! let err = Propagators::parse("tracecontext,xray").unwrap_err();
//! assert_eq!(err.position(), 14);
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use telltale_core::config::ParseError;

mod b3;
mod baggage;
mod traceparent;
mod tracestate;
pub(crate) mod w3c;

pub use b3::B3Propagator;
pub use baggage::{MAX_BAGGAGE_HEADER_LEN, W3cBaggagePropagator};
pub use traceparent::{FLAG_RANDOM, FLAG_SAMPLED, KNOWN_FLAGS, TraceParent};
pub use tracestate::{InvalidMember, LONG_ENTRY, MAX_HEADER_LEN, MAX_MEMBERS, W3cTraceState};
pub use w3c::{TRACEPARENT, TRACESTATE, TraceContextPropagator};

/// One propagator of [`Propagators`], by its `OTEL_PROPAGATORS` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PropagatorKind {
    /// `tracecontext`: W3C Trace Context ([`TraceContextPropagator`]).
    TraceContext,
    /// `baggage`: W3C Baggage.
    Baggage,
    /// `b3`: B3, sending the single `b3` header ([`B3Propagator::single`]).
    B3,
    /// `b3multi`: B3, sending the `X-B3-*` headers ([`B3Propagator::multi`]).
    B3Multi,
}

/// The values `OTEL_PROPAGATORS` accepts.
const ALLOWED: &str = "tracecontext, baggage, b3, b3multi or none";

impl PropagatorKind {
    /// The name in `OTEL_PROPAGATORS`.
    pub fn name(self) -> &'static str {
        match self {
            PropagatorKind::TraceContext => "tracecontext",
            PropagatorKind::Baggage => "baggage",
            PropagatorKind::B3 => "b3",
            PropagatorKind::B3Multi => "b3multi",
        }
    }

    /// The propagator.
    pub fn propagator(self) -> Box<dyn TextMapPropagator + Send + Sync> {
        match self {
            PropagatorKind::TraceContext => Box::new(TraceContextPropagator::new()),
            PropagatorKind::Baggage => Box::new(W3cBaggagePropagator::new()),
            PropagatorKind::B3 => Box::new(B3Propagator::single()),
            PropagatorKind::B3Multi => Box::new(B3Propagator::multi()),
        }
    }
}

impl fmt::Display for PropagatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An ordered list of propagators without duplicates: what `OTEL_PROPAGATORS`
/// configures. Extraction runs them in order (a later one's trace context
/// wins when several headers are present); injection writes every one's
/// headers. Empty means no propagation.
///
/// ```
/// use telltale_telemetry::propagation::{PropagatorKind, Propagators};
///
/// assert_eq!(Propagators::default().to_string(), "tracecontext,baggage");
/// let p = Propagators::new([PropagatorKind::B3, PropagatorKind::B3, PropagatorKind::Baggage]);
/// assert_eq!(p.to_string(), "b3,baggage");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagators {
    kinds: Vec<PropagatorKind>,
}

impl Default for Propagators {
    /// `tracecontext,baggage`, the OpenTelemetry default.
    fn default() -> Self {
        Propagators {
            kinds: vec![PropagatorKind::TraceContext, PropagatorKind::Baggage],
        }
    }
}

impl Propagators {
    /// The propagators `kinds`, in order, duplicates removed (the first one
    /// stays).
    pub fn new(kinds: impl IntoIterator<Item = PropagatorKind>) -> Self {
        let mut out: Vec<PropagatorKind> = Vec::new();
        for kind in kinds {
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        Propagators { kinds: out }
    }

    /// No propagation (`OTEL_PROPAGATORS=none`).
    pub fn none() -> Self {
        Propagators { kinds: Vec::new() }
    }

    /// The propagators, in order.
    pub fn kinds(&self) -> &[PropagatorKind] {
        &self.kinds
    }

    /// Parses an `OTEL_PROPAGATORS` value: comma-separated names
    /// (case-insensitive, spaces around them ignored), duplicates removed;
    /// `none` alone means no propagation; an empty value means the default
    /// (the OpenTelemetry rule for empty variables). An unknown name, or
    /// `none` beside other names, is an error at its position.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        if value.trim().is_empty() {
            return Ok(Self::default());
        }
        let items = telltale_core::config::parse_list_with(value, |item| {
            Ok(match item.to_ascii_lowercase().as_str() {
                "tracecontext" => Some(PropagatorKind::TraceContext),
                "baggage" => Some(PropagatorKind::Baggage),
                "b3" => Some(PropagatorKind::B3),
                "b3multi" => Some(PropagatorKind::B3Multi),
                "none" => None,
                _ => return Err(ParseError::new(1, ALLOWED)),
            })
        })?;
        if items.len() > 1 && items.iter().any(Option::is_none) {
            let at = telltale_core::config::parse_list_with(value, |item| {
                if item.eq_ignore_ascii_case("none") {
                    Err(ParseError::new(1, "no other propagator beside none"))
                } else {
                    Ok(())
                }
            });
            return Err(at.err().unwrap_or_else(|| ParseError::new(1, ALLOWED)));
        }
        Ok(Self::new(items.into_iter().flatten()))
    }

    /// The composite propagator of the list, in order.
    pub fn build(&self) -> TextMapCompositePropagator {
        TextMapCompositePropagator::new(self.kinds.iter().map(|k| k.propagator()).collect())
    }

    /// Makes the list's composite ([`build`](Self::build)) the global
    /// text-map propagator, and telltale's layers use it from then on (an
    /// empty list: no propagation at all). For the default list, the layers
    /// recognise it and read its headers directly, with the same result.
    pub fn install(&self) {
        opentelemetry::global::set_text_map_propagator(Installed::of(self));
        INSTALLED.store(true, Ordering::Release);
    }
}

impl FromStr for Propagators {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Propagators {
    /// The `OTEL_PROPAGATORS` value (`none` when empty).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kinds.is_empty() {
            return f.write_str("none");
        }
        for (i, kind) in self.kinds.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(kind.name())?;
        }
        Ok(())
    }
}

/// Whether [`Propagators::install`] ran in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The propagators of the layers when nobody installed any.
pub(crate) static FALLBACK: LazyLock<Installed> =
    LazyLock::new(|| Installed::of(&Propagators::default()));

/// The fields of the default list, `tracecontext,baggage`. A static, never
/// freed: the address of its first string tells the default list's
/// [`Installed`] from any other propagator (no other value can ever be
/// allocated there).
static DEFAULT_FIELDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    [TRACEPARENT, TRACESTATE, "baggage"]
        .map(str::to_owned)
        .to_vec()
});

/// What [`Propagators::install`] makes the global propagator: the list's
/// composite, which for the default list reports its fields from
/// [`DEFAULT_FIELDS`], so that telltale's layers can recognise it through
/// the global `&dyn TextMapPropagator` ([`is_default_list`]) and read its
/// headers directly (`layer::propagation`), with the same result as the
/// composite.
pub(crate) struct Installed {
    composite: TextMapCompositePropagator,
    default_list: bool,
}

impl Installed {
    pub(crate) fn of(list: &Propagators) -> Self {
        Installed {
            composite: list.build(),
            default_list: *list == Propagators::default(),
        }
    }
}

impl fmt::Debug for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Installed")
            .field("composite", &self.composite)
            .field("default_list", &self.default_list)
            .finish()
    }
}

impl TextMapPropagator for Installed {
    fn inject_context(
        &self,
        cx: &opentelemetry::Context,
        injector: &mut dyn opentelemetry::propagation::Injector,
    ) {
        self.composite.inject_context(cx, injector);
    }

    fn extract_with_context(
        &self,
        cx: &opentelemetry::Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> opentelemetry::Context {
        self.composite.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        if self.default_list {
            opentelemetry::propagation::text_map_propagator::FieldIter::new(
                DEFAULT_FIELDS.as_slice(),
            )
        } else {
            self.composite.fields()
        }
    }
}

/// Whether `p` is the default list as telltale installed it (or the layers'
/// fallback): its first field is [`DEFAULT_FIELDS`]'s own string.
pub(crate) fn is_default_list(p: &dyn TextMapPropagator) -> bool {
    p.fields()
        .next()
        .is_some_and(|field| std::ptr::eq(field.as_ptr(), DEFAULT_FIELDS[0].as_ptr()))
}

/// Calls `f` with the propagator telltale's layers use: the global one when
/// telltale installed it or the application set one (it has fields), else
/// the default list, so that propagation never fails silently when `init`
/// was not called.
pub(crate) fn with_propagator<R>(mut f: impl FnMut(&dyn TextMapPropagator) -> R) -> R {
    if INSTALLED.load(Ordering::Acquire) {
        return opentelemetry::global::get_text_map_propagator(|p| f(p));
    }
    opentelemetry::global::get_text_map_propagator(|p| p.fields().next().is_some().then(|| f(p)))
        .unwrap_or_else(|| f(&*FALLBACK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otel_propagators_values() {
        let p = |s: &str| Propagators::parse(s).unwrap().to_string();
        assert_eq!(p("tracecontext,baggage"), "tracecontext,baggage");
        assert_eq!(p("b3, b3multi"), "b3,b3multi");
        assert_eq!(p("TraceContext"), "tracecontext");
        assert_eq!(p("b3,tracecontext,b3"), "b3,tracecontext");
        assert_eq!(p("none"), "none");
        assert_eq!(p(""), "tracecontext,baggage");
        let err = Propagators::parse("tracecontext, bogus").unwrap_err();
        assert_eq!(err.position(), 15);
        assert_eq!(err.expected(), ALLOWED);
        let err = Propagators::parse("b3,none").unwrap_err();
        assert_eq!(err.position(), 4);
        assert!(Propagators::parse("b3,,baggage").is_err());
    }

    #[test]
    fn the_installed_default_list_has_the_composites_fields() {
        let sorted = |p: &dyn TextMapPropagator| -> Vec<String> {
            let mut f: Vec<String> = p.fields().map(str::to_owned).collect();
            f.sort();
            f
        };
        let list = Propagators::default();
        assert_eq!(sorted(&Installed::of(&list)), sorted(&list.build()));
    }

    #[test]
    fn composite_fields_are_the_lists_fields() {
        use opentelemetry::propagation::TextMapPropagator as _;
        let fields = |p: Propagators| -> Vec<String> {
            let mut f: Vec<String> = p.build().fields().map(str::to_owned).collect();
            f.sort();
            f
        };
        assert_eq!(
            fields(Propagators::default()),
            ["baggage", "traceparent", "tracestate"]
        );
        assert!(fields(Propagators::none()).is_empty());
        assert_eq!(
            fields(Propagators::parse("b3").unwrap()),
            [
                "b3",
                "x-b3-flags",
                "x-b3-parentspanid",
                "x-b3-sampled",
                "x-b3-spanid",
                "x-b3-traceid",
            ]
        );
    }
}
