//! telltale's W3C Trace Context (Level 2) propagator.

use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::traceparent::{FLAG_RANDOM, FLAG_SAMPLED, KNOWN_FLAGS, TraceParent};
use super::tracestate::W3cTraceState;

/// Header name of the trace parent.
pub const TRACEPARENT: &str = "traceparent";
/// Header name of the trace state.
pub const TRACESTATE: &str = "tracestate";

static FIELDS: LazyLock<[String; 2]> =
    LazyLock::new(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]);

/// What was received, kept in the [`Context`] beside the span context: the
/// `tracestate` list as telltale parsed it (opentelemetry's `TraceState`
/// cannot hold every valid list), and the `TraceState` handed to
/// opentelemetry, to tell the members a sampler or user changed.
#[derive(Clone, Debug)]
struct Received {
    trace_id: TraceId,
    /// The received flags, of which the random flag is sent on (the SDK
    /// clears every flag of a span it does not sample).
    flags: u8,
    list: W3cTraceState,
    given: TraceState,
}

/// The W3C Trace Context propagator (`traceparent`, `tracestate`), Level 2,
/// implementing opentelemetry's [`TextMapPropagator`] so that it composes
/// with `TextMapCompositePropagator` and the global propagator API.
/// [`telemetry::init`](crate::init) installs it (with W3C Baggage) by default.
///
/// Receiving: [`TraceParent::parse`] and [`W3cTraceState::parse`] (exact
/// lengths, lowercase hex, future versions, all-zero IDs; Level 2's
/// tracestate grammar, where `@` is a key character, and a header with an
/// invalid member, more than 32 members or a duplicate key discarded whole).
/// An invalid `traceparent` extracts nothing (the trace restarts) and its
/// `tracestate` is not read. The span context's `TraceFlags` carry the
/// sampled flag (which drives sampling) and the random flag; the reserved
/// bits are dropped, as the specification says senders MUST set them to
/// zero ([`TraceParent::flags`] keeps all eight as received).
///
/// Sending: version `00`, the span's ID as parent ID, the sampled flag as
/// decided and the random flag as received (the reserved flags are zero, as
/// the specification requires of senders); the received `tracestate` with
/// the members changed through opentelemetry's `TraceState` (a sampler, a
/// user) moved to the left, truncated to 512 characters by whole entries;
/// no `tracestate` header at all when the list is empty.
///
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use telltale_telemetry::propagation::TraceContextPropagator;
///
/// let propagator = TraceContextPropagator::new();
/// let mut incoming = HashMap::new();
/// incoming.insert("traceparent".to_owned(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03".to_owned());
/// incoming.insert("tracestate".to_owned(), "tenant@congo=t61rcWkgMzE".to_owned());
/// let cx = propagator.extract(&incoming);
/// assert!(cx.span().span_context().is_sampled());
///
/// let mut outgoing = HashMap::new();
/// propagator.inject_context(&cx, &mut outgoing);
/// assert_eq!(outgoing["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03");
/// assert_eq!(outgoing["tracestate"], "tenant@congo=t61rcWkgMzE");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// The propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The members of `list` opentelemetry's `TraceState` accepts, in order.
fn to_otel(list: &W3cTraceState) -> TraceState {
    // Most requests carry no `tracestate`: skip building an empty one.
    if list.is_empty() {
        return TraceState::default();
    }
    let accepted: Vec<(&str, &str)> = list
        .iter()
        .filter(|(k, v)| TraceState::from_key_value([(*k, *v)]).is_ok())
        .collect();
    TraceState::from_key_value(accepted).unwrap_or_default()
}

/// `received`, with the changes made to `given` (now `current`) applied as
/// the specification's mutations: removed keys removed, changed or added
/// keys moved to the left.
fn merge(received: &W3cTraceState, given: &TraceState, current: &TraceState) -> W3cTraceState {
    let mut list = received.clone();
    if given == current {
        return list;
    }
    let before = W3cTraceState::parse_members(&given.header());
    let after = W3cTraceState::parse_members(&current.header());
    for (key, _) in before.iter() {
        if after.get(key).is_none() {
            list.remove(key);
        }
    }
    let changed: Vec<(&str, &str)> = after
        .iter()
        .filter(|(k, v)| before.get(k) != Some(*v))
        .collect();
    for (key, value) in changed.into_iter().rev() {
        // Both come from a parsed list: valid.
        let _ = list.insert(key, value);
    }
    list
}

/// `cx` with the remote span context of a valid `traceparent` and its
/// `tracestate` header (the values of all `tracestate` headers joined), as
/// [`TraceContextPropagator`] extracts them.
pub(crate) fn with_received(cx: &Context, tp: TraceParent, tracestate: Option<&str>) -> Context {
    let mut list = tracestate.map(W3cTraceState::parse).unwrap_or_default();
    // What is propagated, also what the span context carries.
    list.truncate_to_limit();
    let given = to_otel(&list);
    let sc = SpanContext::new(
        tp.trace_id(),
        tp.parent_id(),
        TraceFlags::new(tp.flags() & KNOWN_FLAGS),
        true,
        given.clone(),
    );
    let cx = cx.with_remote_span_context(sc);
    // Nothing beyond the span context to keep (no list, no random flag
    // for the SDK to clear): two allocations per request saved.
    if list.is_empty() && tp.flags() & FLAG_RANDOM == 0 {
        return cx;
    }
    cx.with_value(Received {
        trace_id: tp.trace_id(),
        flags: tp.flags(),
        list,
        given,
    })
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        let received = cx.get::<Received>().filter(|r| r.trace_id == sc.trace_id());
        let random = match received {
            Some(r) => r.flags & FLAG_RANDOM,
            None => sc.trace_flags().to_u8() & FLAG_RANDOM,
        };
        let flags = (sc.trace_flags().to_u8() & FLAG_SAMPLED) | random;
        let Some(tp) = TraceParent::new(sc.trace_id(), sc.span_id(), flags) else {
            return;
        };
        injector.set(TRACEPARENT, tp.to_string());
        let list = match received {
            Some(r) => merge(&r.list, &r.given, sc.trace_state()),
            None => W3cTraceState::parse_members(&sc.trace_state().header()),
        };
        let header = list.header();
        if !header.is_empty() {
            injector.set(TRACESTATE, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(tp) = extractor.get(TRACEPARENT).and_then(TraceParent::parse) else {
            return cx.clone();
        };
        with_received(cx, tp, extractor.get(TRACESTATE))
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(FIELDS.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::SpanId;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TP: &str = "00-12345678901234567890123456789012-1234567890123456-03";

    fn extract(pairs: &[(&str, &str)]) -> Context {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceContextPropagator::new().extract(&map)
    }

    fn inject(cx: &Context) -> HashMap<String, String> {
        let mut out = HashMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut out);
        out
    }

    #[test]
    fn round_trip_keeps_flags_and_level2_state() {
        let state: String = (1..=32)
            .map(|i| format!("t{i}@v{i}=x{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let cx = extract(&[("traceparent", TP), ("tracestate", &state)]);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_flags().to_u8(), 0x03);
        let out = inject(&cx);
        assert_eq!(out["traceparent"], TP);
        assert_eq!(out["tracestate"], state);
    }

    #[test]
    fn reserved_flags_are_not_sent() {
        let cx = extract(&[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-ff",
        )]);
        assert_eq!(
            inject(&cx)["traceparent"],
            "00-12345678901234567890123456789012-1234567890123456-03"
        );
    }

    #[test]
    fn invalid_traceparent_ignores_tracestate() {
        let cx = extract(&[("traceparent", "00-bad"), ("tracestate", "foo=1")]);
        assert!(!cx.span().span_context().is_valid());
        assert!(inject(&cx).is_empty());
        let cx = extract(&[("tracestate", "foo=1")]);
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn no_empty_tracestate_is_sent() {
        let cx = extract(&[("traceparent", TP), ("tracestate", " , ")]);
        let out = inject(&cx);
        assert_eq!(out["traceparent"], TP);
        assert!(!out.contains_key("tracestate"));
    }

    #[test]
    fn changes_through_opentelemetry_move_left() {
        let cx = extract(&[("traceparent", TP), ("tracestate", "rojo=1,t@x=2,congo=3")]);
        let sc = cx.span().span_context().clone();
        // A sampler updates `congo` and adds `ot` on the child's state.
        let state = sc
            .trace_state()
            .insert("congo", "4")
            .unwrap()
            .insert("ot", "th:8")
            .unwrap();
        let child = SpanContext::new(
            sc.trace_id(),
            SpanId::from(7_u64),
            sc.trace_flags(),
            false,
            state,
        );
        let out = inject(&cx.with_remote_span_context(child));
        assert_eq!(out["tracestate"], "ot=th:8,congo=4,rojo=1,t@x=2");
        assert_eq!(
            out["traceparent"],
            "00-12345678901234567890123456789012-0000000000000007-03"
        );
    }

    #[test]
    fn level2_keys_pass_and_an_invalid_member_discards_the_received_list() {
        let state = "foo@=1,foo@@bar=2,t@vvvvvvvvvvvvvvv=3,bar=4";
        let out = inject(&extract(&[("traceparent", TP), ("tracestate", state)]));
        assert_eq!(out["tracestate"], state);
        for bad in ["@foo=1,bar=2", "foo=,bar=3", "bar=2,FOO=1"] {
            let out = inject(&extract(&[("traceparent", TP), ("tracestate", bad)]));
            assert_eq!(out["traceparent"], TP, "{bad:?}");
            assert!(!out.contains_key("tracestate"), "{bad:?}");
        }
    }

    #[test]
    fn a_member_set_in_code_that_is_invalid_is_left_out_alone() {
        let cx = extract(&[("traceparent", TP), ("tracestate", "rojo=1,foo@=2")]);
        let sc = cx.span().span_context().clone();
        // opentelemetry's TraceState takes an empty value; Level 2 does not.
        let state = sc
            .trace_state()
            .insert("ot", "")
            .unwrap()
            .insert("congo", "3")
            .unwrap();
        let child = SpanContext::new(
            sc.trace_id(),
            SpanId::from(7_u64),
            sc.trace_flags(),
            false,
            state,
        );
        let out = inject(&cx.with_remote_span_context(child));
        assert_eq!(out["tracestate"], "congo=3,rojo=1,foo@=2");
    }

    #[test]
    fn random_flag_survives_an_unsampled_child() {
        let cx = extract(&[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-02",
        )]);
        let sc = cx.span().span_context().clone();
        // What the SDK makes of a span it drops: every flag cleared.
        let child = SpanContext::new(
            sc.trace_id(),
            SpanId::from(7_u64),
            TraceFlags::default(),
            false,
            sc.trace_state().clone(),
        );
        assert_eq!(
            inject(&cx.with_remote_span_context(child))["traceparent"],
            "00-12345678901234567890123456789012-0000000000000007-02"
        );
    }

    #[test]
    fn a_new_trace_does_not_inherit_the_received_list() {
        let cx = extract(&[("traceparent", TP), ("tracestate", "rojo=1")]);
        let other = SpanContext::new(
            TraceId::from(9_u128),
            SpanId::from(7_u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let out = inject(&cx.with_remote_span_context(other));
        assert!(!out.contains_key("tracestate"));
    }

    proptest! {
        #[test]
        fn any_headers_never_panic(tp in ".{0,80}", ts in ".{0,300}") {
            let cx = extract(&[("traceparent", &tp), ("tracestate", &ts)]);
            let _ = inject(&cx);
        }

        #[test]
        fn emitted_headers_parse_back_identically(
            t in 1u128.., p in 1u64.., flags in any::<u8>(),
            ts in "([a-z][a-z0-9]{0,5}(@[a-z]{1,3})?=[!-+\\--<>-~]{1,8},){0,40}",
        ) {
            let tp = TraceParent::new(TraceId::from(t), SpanId::from(p), flags).unwrap().to_string();
            let first = inject(&extract(&[("traceparent", &tp), ("tracestate", &ts)]));
            let pairs: Vec<(&str, &str)> = first.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let second = inject(&extract(&pairs));
            prop_assert_eq!(first, second);
        }
    }
}
