//! Trace context in and out of HTTP headers, through the propagator
//! telltale installed (or the application's, or the default list when none
//! is installed; see [`crate::propagation`]).

use http::header::GetAll;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;

use crate::propagation::with_propagator;

/// Reads headers for a propagator. A header received more than once is one
/// list, its values joined with `, ` in order (RFC 9110, section 5.3): two
/// `traceparent` headers make an invalid value (the trace restarts), three
/// `tracestate` headers one list, and an empty `tracestate` followed by
/// `foo=1` is `, foo=1`, i.e. `foo=1`.
struct HeaderExtractor<'a> {
    headers: &'a HeaderMap,
    /// The joined values of the repeated headers the propagator reads.
    joined: Vec<(&'a str, Option<String>)>,
}

/// The header names telltale's propagators read, parsed once: a lookup by
/// `&str` parses the name again on every call (several per request).
static KNOWN: [HeaderName; 9] = [
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
    HeaderName::from_static("baggage"),
    HeaderName::from_static("b3"),
    HeaderName::from_static("x-b3-traceid"),
    HeaderName::from_static("x-b3-spanid"),
    HeaderName::from_static("x-b3-parentspanid"),
    HeaderName::from_static("x-b3-sampled"),
    HeaderName::from_static("x-b3-flags"),
];

/// Every value of the header `key` (none when `key` is not a header name).
fn values<'h>(headers: &'h HeaderMap, key: &str) -> GetAll<'h, HeaderValue> {
    match KNOWN.iter().find(|name| name.as_str() == key) {
        Some(name) => headers.get_all(name),
        None => headers.get_all(key),
    }
}

/// The values of one header joined, or `None` when one is not visible ASCII.
fn join(values: GetAll<'_, HeaderValue>) -> Option<String> {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(value.to_str().ok()?);
    }
    Some(out)
}

impl<'a> HeaderExtractor<'a> {
    fn new(headers: &'a HeaderMap, fields: impl Iterator<Item = &'a str>) -> Self {
        let joined = fields
            .filter_map(|field| {
                let all = values(headers, field);
                let mut iter = all.iter();
                (iter.next().is_some() && iter.next().is_some()).then(|| (field, join(all)))
            })
            .collect();
        HeaderExtractor { headers, joined }
    }
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if let Some((_, value)) = self
            .joined
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            return value.as_deref();
        }
        values(self.headers, key)
            .iter()
            .next()
            .and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let list: Vec<&str> = values(self.headers, key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!list.is_empty()).then_some(list)
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
    with_propagator(|p| extract_with(p, headers))
}

fn extract_with(p: &dyn TextMapPropagator, headers: &HeaderMap) -> Option<Context> {
    // Skip the extraction (and its allocations) when none of the
    // propagator's fields is present.
    if !p
        .fields()
        .any(|f| values(headers, f).iter().next().is_some())
    {
        return None;
    }
    let extractor = HeaderExtractor::new(headers, p.fields());
    let cx = p.extract_with_context(&Context::new(), &extractor);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Writes `cx` into `headers` (`traceparent`, `tracestate`, or whatever the
/// propagator writes).
pub(crate) fn inject(cx: &Context, headers: &mut HeaderMap) {
    with_propagator(|p| p.inject_context(cx, &mut HeaderInjector(headers)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::Propagators;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn extract_default(h: &HeaderMap) -> Option<Context> {
        extract_with(&Propagators::default().build(), h)
    }

    fn state_of(cx: &Context) -> String {
        let mut out = HeaderMap::new();
        Propagators::default()
            .build()
            .inject_context(cx, &mut HeaderInjector(&mut out));
        out.get("tracestate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn round_trip() {
        let sc = SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
            SpanId::from(0xb7ad6b7169203331_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let mut h = HeaderMap::new();
        Propagators::default()
            .build()
            .inject_context(&cx, &mut HeaderInjector(&mut h));
        assert_eq!(h["traceparent"], TP);
        assert!(!h.contains_key("tracestate"), "no empty tracestate");
        let back = extract_default(&h).expect("valid context");
        assert_eq!(
            back.span().span_context().trace_id(),
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128)
        );
        assert!(extract_default(&HeaderMap::new()).is_none());
        assert!(extract_default(&headers(&[("traceparent", "garbage")])).is_none());
    }

    #[test]
    fn repeated_headers_are_one_list() {
        // Two traceparent headers: invalid, the trace restarts.
        let h = headers(&[("traceparent", TP), ("traceparent", TP)]);
        assert!(extract_default(&h).is_none());
        // Three tracestate headers: one list, in order.
        let h = headers(&[
            ("traceparent", TP),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ]);
        let cx = extract_default(&h).unwrap();
        assert_eq!(state_of(&cx), "foo=1,bar=2,rojo=1,congo=2,baz=3");
        // An empty tracestate header, then foo=1.
        let h = headers(&[
            ("traceparent", TP),
            ("tracestate", ""),
            ("tracestate", "foo=1"),
        ]);
        assert_eq!(state_of(&extract_default(&h).unwrap()), "foo=1");
        let h = headers(&[
            ("traceparent", TP),
            ("tracestate", "foo=1"),
            ("tracestate", ""),
        ]);
        assert_eq!(state_of(&extract_default(&h).unwrap()), "foo=1");
        // Duplicate keys across headers: the list is discarded.
        let h = headers(&[
            ("traceparent", TP),
            ("tracestate", "foo=1"),
            ("tracestate", "foo=2"),
        ]);
        assert_eq!(state_of(&extract_default(&h).unwrap()), "");
    }
}
