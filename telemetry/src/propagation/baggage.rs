//! W3C Baggage: opentelemetry's `BaggagePropagator` reads the `baggage`
//! header; writing it is done here, because opentelemetry's writes each
//! entry's properties as decoded text: a property received as `p=a%2Cb`
//! goes out as `p=a,b`, and the next service reads a baggage entry `b` that
//! nobody set (found by the `propagation` fuzz target in `fuzz/`).

use std::borrow::Cow;

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::BaggagePropagator;
use telltale_core::http::percent_encode_with;

/// Longest `baggage` header written, in bytes (the W3C Baggage limit).
pub const MAX_BAGGAGE_HEADER_LEN: usize = 8192;

/// The W3C Baggage propagator: reads `baggage` as opentelemetry's does, and
/// writes keys, values and properties percent-encoded wherever a byte is not
/// a `baggage-octet`, so that what is written reads back as the same entries.
/// The header written stays within [`MAX_BAGGAGE_HEADER_LEN`] bytes: an
/// entry that would not fit is left out whole (encoding can make a received
/// header longer).
///
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::baggage::BaggageExt;
/// use telltale_telemetry::propagation::W3cBaggagePropagator;
///
/// let p = W3cBaggagePropagator::new();
/// let incoming = HashMap::from([("baggage".to_owned(), "k=v;p=a%2Cb".to_owned())]);
/// let cx = p.extract(&incoming);
/// let mut out = HashMap::new();
/// p.inject_context(&cx, &mut out);
/// assert_eq!(out["baggage"], "k=v;p=a%2Cb");
/// assert_eq!(p.extract(&out).baggage().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct W3cBaggagePropagator {
    inner: BaggagePropagator,
}

impl W3cBaggagePropagator {
    /// The propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// `baggage-octet` of the W3C Baggage grammar: visible ASCII except `"`,
/// `,`, `;` and `\`.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

fn encode_key(s: &str) -> Cow<'_, str> {
    percent_encode_with(s.as_bytes(), |b| is_baggage_octet(b) && b != b'=')
}

fn encode_value(s: &str) -> Cow<'_, str> {
    percent_encode_with(s.as_bytes(), is_baggage_octet)
}

/// Properties keep their `;` separators and `=`; everything else that is
/// not a `baggage-octet` (a `,` above all) is encoded.
fn encode_properties(s: &str) -> Cow<'_, str> {
    percent_encode_with(s.as_bytes(), |b| is_baggage_octet(b) || b == b';')
}

impl TextMapPropagator for W3cBaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let baggage = cx.baggage();
        if baggage.is_empty() {
            return;
        }
        let mut header = String::new();
        let entries = baggage.iter().map(|(name, (value, metadata))| {
            let mut entry = format!(
                "{}={}",
                encode_key(name.as_str().trim()),
                encode_value(value.as_str().trim())
            );
            let properties = metadata.as_str().trim();
            if !properties.is_empty() {
                entry.push(';');
                entry.push_str(&encode_properties(properties));
            }
            entry
        });
        for entry in entries {
            let sep = usize::from(!header.is_empty());
            if header.len() + sep + entry.len() > MAX_BAGGAGE_HEADER_LEN {
                continue;
            }
            if sep == 1 {
                header.push(',');
            }
            header.push_str(&entry);
        }
        if !header.is_empty() {
            injector.set("baggage", header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.inner.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        self.inner.fields()
    }
}
