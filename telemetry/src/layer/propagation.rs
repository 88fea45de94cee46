//! Trace context in and out of HTTP headers, through the propagator
//! telltale installed (or the application's, or the default list when none
//! is installed; see [`crate::propagation`]).

use http::header::GetAll;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;

use crate::propagation::w3c::with_received;
use crate::propagation::{TraceParent, W3cBaggagePropagator, is_default_list, with_propagator};

/// Reads headers for a propagator. A header received more than once is one
/// list, its values joined with `, ` in order (RFC 9110, section 5.3): two
/// `traceparent` headers make an invalid value (the trace restarts), three
/// `tracestate` headers one list, and an empty `tracestate` followed by
/// `foo=1` is `, foo=1`, i.e. `foo=1`.
///
/// The headers of telltale's propagators ([`KNOWN`]) are looked up once,
/// when the extractor is built, and the propagators' reads are answered from
/// that (a lookup by `&str` parses the name again, and the presence check
/// and the propagators' reads would each look them up).
struct HeaderExtractor<'a> {
    headers: &'a HeaderMap,
    /// What each header of [`KNOWN`] holds, by its index there.
    known: [Found<'a>; KNOWN.len()],
    /// The joined values of repeated headers the propagator reads that are
    /// not in [`KNOWN`] (a propagator of the application's).
    joined: Vec<(&'a str, Option<String>)>,
}

/// A header's values as one: absent, received once, or joined.
fn read<'a>(all: GetAll<'a, HeaderValue>) -> Found<'a> {
    let mut iter = all.iter();
    match (iter.next(), iter.next()) {
        (None, _) => Found::Absent,
        (Some(value), None) => Found::Once(value),
        (Some(_), Some(_)) => Found::Joined(join(all)),
    }
}

/// One header in a request, as a propagator reads it.
#[derive(Default)]
enum Found<'a> {
    /// Not looked up: not one of the propagator's fields.
    #[default]
    Unread,
    Absent,
    Once(&'a HeaderValue),
    /// Received more than once: the values joined, or `None` when one is
    /// not visible ASCII.
    Joined(Option<String>),
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

/// The index of `key` in [`KNOWN`], whatever its case.
fn known(key: &str) -> Option<usize> {
    KNOWN
        .iter()
        .position(|name| name.as_str() == key)
        .or_else(|| {
            KNOWN
                .iter()
                .position(|name| name.as_str().eq_ignore_ascii_case(key))
        })
}

/// Every value of the header `key` (none when `key` is not a header name).
fn values<'h>(headers: &'h HeaderMap, key: &str) -> GetAll<'h, HeaderValue> {
    match known(key) {
        Some(i) => headers.get_all(&KNOWN[i]),
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

impl Found<'_> {
    /// The text a propagator reads: `None` when absent, or when a value is
    /// not visible ASCII.
    fn text(&self) -> Option<&str> {
        match self {
            Found::Unread | Found::Absent => None,
            Found::Once(value) => value.to_str().ok(),
            Found::Joined(value) => value.as_deref(),
        }
    }
}

impl<'a> HeaderExtractor<'a> {
    /// Looks up `fields` in `headers`; `None` when none of them is there
    /// (nothing to extract).
    fn new(headers: &'a HeaderMap, fields: impl Iterator<Item = &'a str>) -> Option<Self> {
        let mut extractor = HeaderExtractor {
            headers,
            known: Default::default(),
            joined: Vec::new(),
        };
        let mut any = false;
        for field in fields {
            let Some(i) = known(field) else {
                match read(headers.get_all(field)) {
                    Found::Joined(value) => extractor.joined.push((field, value)),
                    Found::Once(_) => {}
                    Found::Absent | Found::Unread => continue,
                }
                any = true;
                continue;
            };
            if !matches!(extractor.known[i], Found::Unread) {
                continue;
            }
            extractor.known[i] = read(headers.get_all(&KNOWN[i]));
            any |= !matches!(extractor.known[i], Found::Absent);
        }
        any.then_some(extractor)
    }
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if let Some(i) = known(key) {
            // Not one of the propagator's fields: read below.
            if !matches!(self.known[i], Found::Unread) {
                return self.known[i].text();
            }
        } else if let Some((_, value)) = self
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
    with_propagator(|p| {
        if is_default_list(p) {
            extract_default_list(headers)
        } else {
            extract_with(p, headers)
        }
    })
}

/// What the default list (`tracecontext,baggage`, as installed by
/// [`Propagators::install`](crate::propagation::Propagators::install))
/// extracts, read straight from the headers: one lookup when there is no
/// `traceparent` (the common case of an edge service), and otherwise no
/// composite propagator and no extractor unless a `baggage` header came. It
/// runs on every request, where the general path was most of what a request
/// the sampler drops cost beyond metrics (issue 16). The result is the
/// composite's (`tests::default_list_fast_path_matches_the_composite`).
fn extract_default_list(headers: &HeaderMap) -> Option<Context> {
    // Repeated, `traceparent` is one list, as the extractor reads it (an
    // invalid value, but for a future version's that can be read past its
    // end).
    let tp = TraceParent::parse(read(headers.get_all(&KNOWN[0])).text()?)?;
    let cx = with_received(&Context::new(), tp, read(headers.get_all(&KNOWN[1])).text());
    if !headers.contains_key(&KNOWN[2]) {
        return Some(cx);
    }
    Some(
        match HeaderExtractor::new(headers, std::iter::once(KNOWN[2].as_str())) {
            Some(baggage) => W3cBaggagePropagator::new().extract_with_context(&cx, &baggage),
            None => cx,
        },
    )
}

fn extract_with(p: &dyn TextMapPropagator, headers: &HeaderMap) -> Option<Context> {
    // Skips the extraction (and its allocations) when none of the
    // propagator's fields is present.
    let extractor = HeaderExtractor::new(headers, p.fields())?;
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

    /// A context's span context, the trace headers it injects, and its
    /// baggage entries, sorted.
    type Observed = (SpanContext, String, Vec<(String, String)>);

    /// Everything a context carries that a propagator reads or writes.
    fn observed(cx: Option<Context>) -> Option<Observed> {
        use opentelemetry::baggage::BaggageExt;
        let cx = cx?;
        let mut baggage: Vec<(String, String)> = cx
            .baggage()
            .iter()
            .map(|(k, (v, m))| (k.to_string(), format!("{v};{}", m.as_str())))
            .collect();
        baggage.sort();
        let mut out = HeaderMap::new();
        Propagators::default()
            .build()
            .inject_context(&cx, &mut HeaderInjector(&mut out));
        // The baggage header's order follows a hash map's: compared as the
        // sorted entries above.
        out.remove("baggage");
        let injected = format!("{out:?}");
        Some((cx.span().span_context().clone(), injected, baggage))
    }

    const PARENTS: [&str; 8] = [
        TP,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\t",
        "garbage",
    ];
    const STATES: [&str; 6] = [
        "",
        "foo=1,bar=2",
        "rojo=00f067aa0ba902b7",
        "bad key=1",
        "foo=1",
        "a@b=c",
    ];
    const BAGGAGES: [&str; 4] = ["", "k=v", "k1=v1;p=q, k2=v%202", "=bad"];

    proptest::proptest! {
        /// The default list's direct read gives what its composite gives,
        /// whatever the headers (repeated ones included).
        #[test]
        fn default_list_fast_path_matches_the_composite(
            parents in proptest::collection::vec(0..PARENTS.len(), 0..3),
            states in proptest::collection::vec(0..STATES.len(), 0..3),
            baggages in proptest::collection::vec(0..BAGGAGES.len(), 0..3),
        ) {
            let mut h = HeaderMap::new();
            for i in parents {
                h.append("traceparent", HeaderValue::from_static(PARENTS[i]));
            }
            for i in states {
                h.append("tracestate", HeaderValue::from_static(STATES[i]));
            }
            for i in baggages {
                h.append("baggage", HeaderValue::from_static(BAGGAGES[i]));
            }
            proptest::prop_assert_eq!(
                observed(extract_default_list(&h)),
                observed(extract_default(&h))
            );
        }
    }

    proptest::proptest! {
        /// Any header bytes: the same result both ways, and no panic.
        #[test]
        fn default_list_fast_path_takes_any_bytes(
            values in proptest::collection::vec(
                (0..3usize, proptest::collection::vec(0x09u8..=0xff, 0..80)),
                0..5,
            ),
        ) {
            let mut h = HeaderMap::new();
            for (name, bytes) in values {
                let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                    continue;
                };
                h.append(&KNOWN[name], value);
            }
            proptest::prop_assert_eq!(
                observed(extract_default_list(&h)),
                observed(extract_default(&h))
            );
        }
    }

    #[test]
    fn the_installed_default_list_is_recognised() {
        assert!(is_default_list(&*crate::propagation::FALLBACK));
        assert!(!is_default_list(&Propagators::default().build()));
        let b3: Propagators = "b3".parse().unwrap();
        assert!(!is_default_list(&crate::propagation::Installed::of(&b3)));
        let mut h = headers(&[
            ("traceparent", TP),
            ("tracestate", "foo=1"),
            ("baggage", "k=v"),
        ]);
        assert_eq!(observed(extract(&h)), observed(extract_default(&h)));
        h.clear();
        assert!(extract(&h).is_none());
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
