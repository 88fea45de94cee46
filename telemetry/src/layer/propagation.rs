//! W3C trace-context in and out, through the global propagator with a W3C
//! fallback so that propagation never fails silently.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Calls `f` with the global propagator, or with a W3C trace-context propagator
/// when no global one is configured (the global default propagates nothing).
fn with_propagator<R>(f: impl FnOnce(&dyn TextMapPropagator) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    opentelemetry::global::get_text_map_propagator(|p| {
        if p.fields().next().is_some() {
            if let Some(f) = f.take() {
                out = Some(f(p));
            }
        }
    });
    match (out, f) {
        (Some(out), _) => out,
        (None, Some(f)) => f(&TraceContextPropagator::new()),
        (None, None) => unreachable!("the closure ran or is still there"),
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self
            .0
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then_some(values)
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The remote context carried by `headers`, when they carry a valid one.
pub(crate) fn extract(headers: &HeaderMap) -> Option<Context> {
    with_propagator(|p| {
        // Skip the extraction (and its allocations) when none of the
        // propagator's fields is present.
        if !p.fields().any(|f| headers.contains_key(f)) {
            return None;
        }
        let cx = p.extract_with_context(&Context::new(), &HeaderExtractor(headers));
        cx.span().span_context().is_valid().then_some(cx)
    })
}

/// Writes `cx` into `headers` (`traceparent`, `tracestate`, or whatever the
/// global propagator writes).
pub(crate) fn inject(cx: &Context, headers: &mut HeaderMap) {
    with_propagator(|p| p.inject_context(cx, &mut HeaderInjector(headers)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn w3c_fallback_round_trip() {
        let sc = SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
            SpanId::from(0xb7ad6b7169203331_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let mut headers = HeaderMap::new();
        inject(&cx, &mut headers);
        assert_eq!(
            headers["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        let back = extract(&headers).expect("valid context");
        assert_eq!(
            back.span().span_context().trace_id(),
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128)
        );
        assert!(extract(&HeaderMap::new()).is_none());
        let mut bad = HeaderMap::new();
        bad.insert("traceparent", HeaderValue::from_static("garbage"));
        assert!(extract(&bad).is_none());
    }
}
