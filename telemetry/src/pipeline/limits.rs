//! Span limits: the attribute, event and link count limits of the
//! OpenTelemetry SDK environment specification (`OTEL_*_COUNT_LIMIT`), the
//! attribute value length limit (`OTEL_*_VALUE_LENGTH_LIMIT`), and the size
//! estimate behind the byte budgets of the flight recorder and the export
//! queue.
//!
//! The count limits are the SDK's own ([`opentelemetry_sdk::trace::SpanLimits`]:
//! attributes, events and links past a limit are dropped and counted in the
//! span's `dropped_*_count`). opentelemetry_sdk 0.33 has no value length
//! limit, so telltale applies it itself, in [`Truncating`], on every finished
//! span before the flight recorder, an exporter's queue or the stdout
//! exporter keep it.

use std::fmt;
use std::mem::size_of;
use std::time::Duration;

use opentelemetry::trace::Event;
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// Largest value of a limit variable: 2³¹ − 1, the range the OpenTelemetry
/// environment specification asks SDKs to support for integers.
pub const MAX_LIMIT: u32 = i32::MAX as u32;
/// The specification's default of every count limit: 128.
pub const DEFAULT_COUNT_LIMIT: u32 = 128;

/// The span limits of the pipeline (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`,
/// `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, …; see
/// [`TelemetryBuilder::span_limits`](crate::TelemetryBuilder::span_limits)).
///
/// The defaults are the specification's: no value length limit, 128 of
/// everything else. Request spans are bounded even so: telltale's layers cap
/// the values they take from a request (`url.path`, `url.query`,
/// `user_agent.original`, captured headers) at
/// [`DEFAULT_MAX_ATTRIBUTE_LEN`](crate::layer::DEFAULT_MAX_ATTRIBUTE_LEN)
/// characters.
///
/// ```
/// use telltale_telemetry::pipeline::SpanLimits;
///
/// let mut limits = SpanLimits::default();
/// limits.attribute_value_length = Some(256);
/// limits.attribute_count = 64;
/// assert_eq!(limits.event_count, 128);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpanLimits {
    /// Longest attribute value, in characters: longer strings (and each
    /// string of a string array) are cut to this many characters, on a
    /// character boundary. Applies to the attributes of spans, span events
    /// and links. `None`: no limit.
    pub attribute_value_length: Option<u32>,
    /// Most attributes of one span; the later ones are dropped.
    pub attribute_count: u32,
    /// Most events of one span.
    pub event_count: u32,
    /// Most links of one span.
    pub link_count: u32,
    /// Most attributes of one span event.
    pub event_attribute_count: u32,
    /// Most attributes of one link.
    pub link_attribute_count: u32,
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            attribute_value_length: None,
            attribute_count: DEFAULT_COUNT_LIMIT,
            event_count: DEFAULT_COUNT_LIMIT,
            link_count: DEFAULT_COUNT_LIMIT,
            event_attribute_count: DEFAULT_COUNT_LIMIT,
            link_attribute_count: DEFAULT_COUNT_LIMIT,
        }
    }
}

impl SpanLimits {
    /// The SDK's count limits.
    pub(crate) fn to_sdk(self) -> opentelemetry_sdk::trace::SpanLimits {
        opentelemetry_sdk::trace::SpanLimits {
            max_attributes_per_span: self.attribute_count,
            max_events_per_span: self.event_count,
            max_links_per_span: self.link_count,
            max_attributes_per_event: self.event_attribute_count,
            max_attributes_per_link: self.link_attribute_count,
        }
    }
}

/// `s` cut to at most `max` characters, on a character boundary (never a
/// panic, whatever the input).
pub(crate) fn truncate_chars(s: &str, max: usize) -> &str {
    // At most `max` bytes is at most `max` characters: the common case costs
    // one comparison.
    if s.len() <= max {
        return s;
    }
    // The byte index where character `max` starts, found by counting the
    // bytes that start a character (all but UTF-8 continuation bytes) a
    // slice at a time, a count the compiler vectorizes: `max` characters
    // take at least `max` bytes, so each slice is as long as the characters
    // still to count. Decoding character by character (`char_indices`)
    // costs about a nanosecond per character, microseconds at the lengths
    // limits are set to.
    let bytes = s.as_bytes();
    // ASCII up to the limit (the usual case): character `max` starts at
    // byte `max`.
    if bytes.get(..max).is_some_and(<[u8]>::is_ascii) {
        return s.get(..max).unwrap_or(s);
    }
    // Counted in blocks of 64 into a byte, which vectorizes well.
    let starts = |slice: &[u8]| -> usize {
        slice
            .chunks(64)
            .map(|block| {
                let n = block
                    .iter()
                    .fold(0_u8, |n, &b| n + u8::from((b as i8) >= -0x40));
                usize::from(n)
            })
            .sum()
    };
    let (mut end, mut left) = (0, max);
    while left > 0 && end < bytes.len() {
        let next = (end + left).min(bytes.len());
        left -= starts(&bytes[end..next]);
        end = next;
    }
    // `end` may be inside a character (the last counted start): move on to
    // the next start, or the end of the string.
    while end < bytes.len() && !s.is_char_boundary(end) {
        end += 1;
    }
    s.get(..end).unwrap_or(s)
}

/// Cuts a string value (or each string of a string array) to `max`
/// characters, as the specification's attribute value length limit says;
/// other values are left alone.
pub(crate) fn truncate_value(value: &mut Value, max: usize) {
    match value {
        Value::String(s) => {
            if let Some(cut) = cut(s, max) {
                *s = cut;
            }
        }
        Value::Array(Array::String(items)) => {
            for item in items.iter_mut() {
                if let Some(cut) = cut(item, max) {
                    *item = cut;
                }
            }
        }
        _ => {}
    }
}

fn cut(s: &StringValue, max: usize) -> Option<StringValue> {
    let text = s.as_str();
    let kept = truncate_chars(text, max);
    (kept.len() < text.len()).then(|| StringValue::from(kept.to_owned()))
}

fn truncate_all(attributes: &mut [KeyValue], max: usize) {
    for kv in attributes {
        truncate_value(&mut kv.value, max);
    }
}

/// Applies the value length limit to a finished span: its attributes, its
/// events' and its links' attributes.
pub(crate) fn truncate_span(span: &mut SpanData, max: usize) {
    truncate_all(&mut span.attributes, max);
    for event in &mut span.events.events {
        truncate_all(&mut event.attributes, max);
    }
    for link in &mut span.links.links {
        truncate_all(&mut link.attributes, max);
    }
}

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.as_str().len(),
        Value::Array(Array::String(items)) => items
            .iter()
            .map(|s| size_of::<StringValue>() + s.as_str().len())
            .sum(),
        Value::Array(Array::Bool(v)) => v.len(),
        Value::Array(Array::I64(v)) => v.len() * 8,
        Value::Array(Array::F64(v)) => v.len() * 8,
        _ => 0,
    }
}

fn attributes_bytes(attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|kv| size_of::<KeyValue>() + kv.key.as_str().len() + value_bytes(&kv.value))
        .sum()
}

/// An estimate of the memory a finished span holds, in bytes: the fixed
/// part, the name, and every attribute, event and link with their keys and
/// values. It counts what grows with the input (strings), not the
/// allocator's overhead; the byte budgets of the flight recorder and the
/// export queue are sums of it. Written here because neither the SDK nor a
/// crate offers one for `SpanData`.
pub fn estimated_size(span: &SpanData) -> usize {
    let events: usize = span
        .events
        .events
        .iter()
        .map(|e| size_of::<Event>() + e.name.len() + attributes_bytes(&e.attributes))
        .sum();
    let links: usize = span
        .links
        .links
        .iter()
        .map(|l| size_of::<opentelemetry::trace::Link>() + attributes_bytes(&l.attributes))
        .sum();
    size_of::<SpanData>() + span.name.len() + attributes_bytes(&span.attributes) + events + links
}

/// A span processor that applies the attribute value length limit to every
/// finished span before handing it to `P` (the flight recorder, an export
/// queue, the stdout exporter).
pub(crate) struct Truncating<P> {
    inner: P,
    max: usize,
}

impl<P> Truncating<P> {
    pub(crate) fn new(inner: P, max: usize) -> Self {
        Truncating { inner, max }
    }
}

impl<P: fmt::Debug> fmt::Debug for Truncating<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Truncating")
            .field("inner", &self.inner)
            .field("max", &self.max)
            .finish()
    }
}

impl<P: SpanProcessor> SpanProcessor for Truncating<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        truncate_span(&mut span, self.max);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_and_cuts_on_boundaries() {
        assert_eq!(truncate_chars("abcdef", 3), "abc");
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("", 0), "");
        assert_eq!(truncate_chars("abc", 0), "");
        // Multi-byte characters count as one each.
        assert_eq!(truncate_chars("héllo wörld", 4), "héll");
        assert_eq!(truncate_chars("日本語テキスト", 3), "日本語");
        assert_eq!(truncate_chars("🦀🦀🦀", 2), "🦀🦀");
        // Every cut of every prefix is a valid string, whatever the limit.
        let s = "aé日🦀".repeat(10);
        for max in 0..50 {
            let cut = truncate_chars(&s, max);
            assert_eq!(cut.chars().count(), max.min(s.chars().count()));
        }
        // The same cut as decoding character by character, on mixed widths
        // in every arrangement and at every limit.
        let pieces = ["a", "é", "日", "🦀", "ab", "éé", "a🦀"];
        let mut seed = 7_u32;
        for _ in 0..300 {
            let mut s = String::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                s.push_str(pieces[(seed >> 16) as usize % pieces.len()]);
            }
            for max in 0..=s.len() + 1 {
                let expected = s
                    .char_indices()
                    .nth(max)
                    .map_or(&s[..], |(end, _)| &s[..end]);
                assert_eq!(truncate_chars(&s, max), expected, "{s:?} at {max}");
            }
        }
    }

    #[test]
    fn values_strings_and_string_arrays_are_cut_others_kept() {
        let mut v = Value::from("0123456789");
        truncate_value(&mut v, 4);
        assert_eq!(v, Value::from("0123"));
        let mut a = Value::Array(Array::String(vec!["abcdef".into(), "xy".into()]));
        truncate_value(&mut a, 3);
        assert_eq!(
            a,
            Value::Array(Array::String(vec!["abc".into(), "xy".into()]))
        );
        let mut n = Value::I64(123456789);
        truncate_value(&mut n, 1);
        assert_eq!(n, Value::I64(123456789));
        let mut b = Value::Array(Array::Bool(vec![true; 10]));
        truncate_value(&mut b, 1);
        assert_eq!(b, Value::Array(Array::Bool(vec![true; 10])));
    }
}
