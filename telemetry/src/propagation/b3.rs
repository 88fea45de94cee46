//! B3 propagation (Zipkin), single and multiple headers.
//!
//! Written here: the one crate offering it for opentelemetry 0.33,
//! `opentelemetry-zipkin`, is deprecated as a whole, and it stores B3's
//! "deferred" and "debug" states in trace-flags bits `0x02` and `0x04`,
//! which W3C Trace Context gives other meanings (the random flag; reserved),
//! so they would leak into `traceparent`.

use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const B3: &str = "b3";
const TRACE_ID: &str = "x-b3-traceid";
const SPAN_ID: &str = "x-b3-spanid";
const PARENT_SPAN_ID: &str = "x-b3-parentspanid";
const SAMPLED: &str = "x-b3-sampled";
const FLAGS: &str = "x-b3-flags";

/// Every header B3 reads (both forms, whichever is sent).
static FIELDS: LazyLock<[String; 6]> =
    LazyLock::new(|| [B3, TRACE_ID, SPAN_ID, PARENT_SPAN_ID, SAMPLED, FLAGS].map(str::to_owned));

/// B3 propagation, the single `b3` header or the multiple `X-B3-*` headers,
/// as `OTEL_PROPAGATORS=b3` and `b3multi` select, following the B3
/// specification (openzipkin/b3-propagation).
///
/// Both read either form (the single header first, then the multiple
/// headers); they differ in what they send:
/// `b3: {trace-id}-{span-id}-{1|0}`, or `X-B3-TraceId`, `X-B3-SpanId` and
/// `X-B3-Sampled: 1|0`. IDs are lowercase hex; a 64-bit (16-digit) trace ID
/// is left-padded with zeros; all-zero IDs are invalid. A debug request
/// (`d`, `X-B3-Flags: 1`) is sampled; a deferred one (no sampling state) is
/// continued as not sampled, as the span context cannot say "undecided";
/// `X-B3-Sampled: true`/`false` are read, as the specification asks of
/// readers. Nothing is sent outside a valid trace.
///
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use telltale_telemetry::propagation::B3Propagator;
///
/// let mut incoming = HashMap::new();
/// incoming.insert("b3".to_owned(), "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".to_owned());
/// let cx = B3Propagator::multi().extract(&incoming);
/// assert!(cx.span().span_context().is_sampled());
/// let mut outgoing = HashMap::new();
/// B3Propagator::multi().inject_context(&cx, &mut outgoing);
/// assert_eq!(outgoing["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
/// assert_eq!(outgoing["x-b3-spanid"], "e457b5a2e4d86bd1");
/// assert_eq!(outgoing["x-b3-sampled"], "1");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct B3Propagator {
    multi: bool,
}

impl B3Propagator {
    /// Sends the single `b3` header (`OTEL_PROPAGATORS=b3`).
    pub fn single() -> Self {
        B3Propagator { multi: false }
    }

    /// Sends the `X-B3-*` headers (`OTEL_PROPAGATORS=b3multi`).
    pub fn multi() -> Self {
        B3Propagator { multi: true }
    }
}

fn lower_hex(s: &str, lens: &[usize]) -> Option<u128> {
    let b = s.as_bytes();
    if !lens.contains(&b.len())
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

fn trace_id(s: &str) -> Option<TraceId> {
    lower_hex(s, &[16, 32])
        .filter(|v| *v != 0)
        .map(TraceId::from)
}

fn span_id(s: &str) -> Option<SpanId> {
    lower_hex(s, &[16])
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v != 0)
        .map(SpanId::from)
}

/// `Some(sampled)`, or `None` when the state is invalid.
fn sampling_state(s: &str) -> Option<bool> {
    match s {
        "1" | "d" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

fn single(value: &str) -> Option<(TraceId, SpanId, bool)> {
    let mut parts = value.trim_matches([' ', '\t']).split('-');
    let trace = trace_id(parts.next()?)?;
    let span = span_id(parts.next()?)?;
    let sampled = match parts.next() {
        None => false,
        Some(state) => sampling_state(state)?,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    parts.next().is_none().then_some((trace, span, sampled))
}

fn multi(ex: &dyn Extractor) -> Option<(TraceId, SpanId, bool)> {
    let trace = trace_id(ex.get(TRACE_ID)?.trim())?;
    let span = span_id(ex.get(SPAN_ID)?.trim())?;
    if let Some(parent) = ex.get(PARENT_SPAN_ID) {
        span_id(parent.trim())?;
    }
    let debug = ex.get(FLAGS).map(str::trim) == Some("1");
    let sampled = match ex.get(SAMPLED).map(str::trim) {
        None => false,
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        Some(_) if debug => true,
        Some(_) => return None,
    };
    Some((trace, span, sampled || debug))
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let sampled = if sc.is_sampled() { "1" } else { "0" };
        if self.multi {
            injector.set(TRACE_ID, sc.trace_id().to_string());
            injector.set(SPAN_ID, sc.span_id().to_string());
            injector.set(SAMPLED, sampled.to_owned());
        } else {
            injector.set(B3, format!("{}-{}-{sampled}", sc.trace_id(), sc.span_id()));
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let found = extractor
            .get(B3)
            .and_then(single)
            .or_else(|| multi(extractor));
        let Some((trace, span, sampled)) = found else {
            return cx.clone();
        };
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::NOT_SAMPLED
        };
        cx.with_remote_span_context(SpanContext::new(
            trace,
            span,
            flags,
            true,
            TraceState::default(),
        ))
    }

    /// Both forms' headers: the ones read, whichever form is sent.
    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(FIELDS.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TID: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const SID: &str = "e457b5a2e4d86bd1";

    fn extract(p: B3Propagator, pairs: &[(&str, &str)]) -> SpanContext {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .collect();
        p.extract(&map).span().span_context().clone()
    }

    #[test]
    fn single_header() {
        for p in [B3Propagator::single(), B3Propagator::multi()] {
            let sc = extract(p, &[("b3", &format!("{TID}-{SID}-1"))]);
            assert_eq!(sc.trace_id().to_string(), TID);
            assert_eq!(sc.span_id().to_string(), SID);
            assert!(sc.is_sampled() && sc.is_remote());
            let sc = extract(p, &[("b3", &format!("{TID}-{SID}-1-05e3ac9a4f6e3b90"))]);
            assert!(sc.is_valid());
            assert!(extract(p, &[("b3", &format!("{TID}-{SID}-d"))]).is_sampled());
            assert!(!extract(p, &[("b3", &format!("{TID}-{SID}-0"))]).is_sampled());
            // Deferred: continued, not sampled.
            let sc = extract(p, &[("b3", &format!("{TID}-{SID}"))]);
            assert!(sc.is_valid() && !sc.is_sampled());
            assert_eq!(sc.trace_flags().to_u8(), 0);
            // 64-bit trace IDs are padded.
            let sc = extract(p, &[("b3", &format!("a3ce929d0e0e4736-{SID}-1"))]);
            assert_eq!(
                sc.trace_id().to_string(),
                "0000000000000000a3ce929d0e0e4736"
            );
            for bad in [
                "0".to_owned(),
                "1".to_owned(),
                format!("{TID}-{SID}-2"),
                format!("{TID}-{SID}-1-x"),
                format!("{TID}-{SID}-1-05e3ac9a4f6e3b90-extra"),
                format!("{}-{SID}-1", "0".repeat(32)),
                format!("{TID}-0000000000000000-1"),
                format!("{}-{SID}-1", TID.to_uppercase()),
                format!("{TID}x-{SID}-1"),
            ] {
                assert!(!extract(p, &[("b3", &bad)]).is_valid(), "{bad:?}");
            }
        }
    }

    #[test]
    fn multiple_headers() {
        let p = B3Propagator::multi();
        let sc = extract(
            p,
            &[
                ("X-B3-TraceId", TID),
                ("X-B3-SpanId", SID),
                ("X-B3-Sampled", "1"),
            ],
        );
        assert_eq!(sc.trace_id().to_string(), TID);
        assert!(sc.is_sampled());
        let sc = extract(
            p,
            &[
                ("X-B3-TraceId", TID),
                ("X-B3-SpanId", SID),
                ("X-B3-Sampled", "true"),
            ],
        );
        assert!(sc.is_sampled());
        let sc = extract(
            p,
            &[
                ("X-B3-TraceId", TID),
                ("X-B3-SpanId", SID),
                ("X-B3-Flags", "1"),
            ],
        );
        assert!(sc.is_sampled());
        let sc = extract(p, &[("X-B3-TraceId", TID), ("X-B3-SpanId", SID)]);
        assert!(sc.is_valid() && !sc.is_sampled());
        assert!(
            !extract(
                p,
                &[
                    ("X-B3-TraceId", TID),
                    ("X-B3-SpanId", SID),
                    ("X-B3-Sampled", "2")
                ]
            )
            .is_valid()
        );
        assert!(!extract(p, &[("X-B3-TraceId", TID)]).is_valid());
        // The single header wins; an invalid one falls back to the others.
        let sc = extract(
            p,
            &[
                ("b3", &format!("{TID}-{SID}-0")),
                ("X-B3-TraceId", TID),
                ("X-B3-SpanId", SID),
                ("X-B3-Sampled", "1"),
            ],
        );
        assert!(!sc.is_sampled());
        let sc = extract(
            p,
            &[
                ("b3", "garbage"),
                ("X-B3-TraceId", TID),
                ("X-B3-SpanId", SID),
                ("X-B3-Sampled", "1"),
            ],
        );
        assert!(sc.is_sampled());
    }

    #[test]
    fn injects_a_valid_context_only_without_w3c_bits() {
        let mut out = HashMap::new();
        B3Propagator::single().inject_context(&Context::new(), &mut out);
        B3Propagator::multi().inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
        let sc = SpanContext::new(
            u128::from_str_radix(TID, 16).unwrap().into(),
            u64::from_str_radix(SID, 16).unwrap().into(),
            TraceFlags::new(0x03),
            false,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        B3Propagator::single().inject_context(&cx, &mut out);
        assert_eq!(out["b3"], format!("{TID}-{SID}-1"));
        let mut out = HashMap::new();
        B3Propagator::multi().inject_context(&cx, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out["x-b3-traceid"], TID);
        assert_eq!(out["x-b3-spanid"], SID);
        assert_eq!(out["x-b3-sampled"], "1");
    }

    proptest! {
        #[test]
        fn any_input_never_panics(s in ".{0,100}", t in ".{0,40}", f in ".{0,3}") {
            let _ = extract(B3Propagator::multi(), &[("b3", &s), ("X-B3-TraceId", &t), ("X-B3-SpanId", &t), ("X-B3-Sampled", &f)]);
        }

        #[test]
        fn emitted_headers_parse_back(t in 1u128.., s in 1u64.., sampled in any::<bool>(), multi in any::<bool>()) {
            let p = if multi { B3Propagator::multi() } else { B3Propagator::single() };
            let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::NOT_SAMPLED };
            let sc = SpanContext::new(t.into(), s.into(), flags, true, TraceState::default());
            let mut out = HashMap::new();
            p.inject_context(&Context::new().with_remote_span_context(sc.clone()), &mut out);
            let back = p.extract(&out).span().span_context().clone();
            prop_assert_eq!(back, sc);
        }
    }
}
