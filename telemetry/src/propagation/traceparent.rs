//! The `traceparent` header: parsing by the W3C Trace Context rules
//! (versions, lengths, lowercase hex, all-zero IDs) and formatting.

use std::fmt;

use opentelemetry::trace::{SpanId, TraceId};

/// Length of a version `00` `traceparent`: `2 + 1 + 32 + 1 + 16 + 1 + 2`.
const V00_LEN: usize = 55;

/// The sampled flag (bit 0) of `trace-flags`.
pub const FLAG_SAMPLED: u8 = 0x01;
/// The random trace ID flag (bit 1) of `trace-flags`, Trace Context Level 2.
pub const FLAG_RANDOM: u8 = 0x02;
/// The flags Trace Context Level 2 defines; the others are reserved and a
/// sender MUST set them to zero.
pub const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

/// A parsed `traceparent` header value.
///
/// [`parse`](Self::parse) follows the specification exactly: version `00` is
/// exactly 55 characters; a higher version (not `ff`) may be longer when the
/// extra part starts with `-`; every field is lowercase hex of its exact
/// length; an all-zero trace ID or parent ID is invalid. Surrounding spaces
/// and tabs (optional whitespace) are ignored. [`Display`](fmt::Display)
/// writes version `00`.
///
/// ```
/// use telltale_telemetry::propagation::TraceParent;
///
/// let tp = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03").unwrap();
/// assert!(tp.is_sampled() && tp.is_random());
/// assert_eq!(tp.to_string(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03");
/// // Wrong lengths, uppercase, version ff, all-zero IDs: restart the trace.
/// assert!(TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01").is_none());
/// assert!(TraceParent::parse("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01").is_none());
/// assert!(TraceParent::parse("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_none());
/// // A future version may carry more fields.
/// assert!(TraceParent::parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what").is_some());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    version: u8,
    trace_id: TraceId,
    parent_id: SpanId,
    flags: u8,
}

/// The digit value of each byte: `0`-`9` and `a`-`f` map to 0-15, every
/// other byte (uppercase hex included, which the specification forbids) to
/// `0xff`.
static HEX: [u8; 256] = {
    let mut table = [0xff_u8; 256];
    let mut b = 0;
    while b < 10 {
        table[b'0' as usize + b] = b as u8;
        b += 1;
    }
    let mut b = 0;
    while b < 6 {
        table[b'a' as usize + b] = 10 + b as u8;
        b += 1;
    }
    table
};

/// The value of 1 to 16 lowercase hex digits. Branch-free over the digits
/// (a table lookup and a shift each; an invalid byte sets a high bit that is
/// checked once at the end): it runs on every request that carries a
/// `traceparent`, where a `match` per digit on a `u128` accumulator cost
/// about 50 ns (issue 16).
fn hex_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    let mut value = 0u64;
    let mut invalid = 0u8;
    for &b in bytes {
        let digit = HEX[usize::from(b)];
        invalid |= digit;
        value = (value << 4) | u64::from(digit & 0x0f);
    }
    (invalid & 0xf0 == 0).then_some(value)
}

/// The value of 1 to 32 lowercase hex digits.
fn hex_u128(bytes: &[u8]) -> Option<u128> {
    if bytes.len() <= 16 {
        return hex_u64(bytes).map(u128::from);
    }
    let (high, low) = bytes.split_at(bytes.len() - 16);
    Some((u128::from(hex_u64(high)?) << 64) | u128::from(hex_u64(low)?))
}

impl TraceParent {
    /// A version `00` value from its parts; `None` when an ID is all zeros.
    pub fn new(trace_id: TraceId, parent_id: SpanId, flags: u8) -> Option<Self> {
        (trace_id != TraceId::INVALID && parent_id != SpanId::INVALID).then_some(TraceParent {
            version: 0,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Parses a header value; `None` when the specification says to ignore
    /// it (and restart the trace).
    pub fn parse(value: &str) -> Option<Self> {
        let b = value.trim_matches([' ', '\t']).as_bytes();
        if b.len() < V00_LEN || b[2] != b'-' {
            return None;
        }
        let version = u8::try_from(hex_u64(&b[0..2])?).ok()?;
        match version {
            0xff => return None,
            0 if b.len() != V00_LEN => return None,
            _ if b.len() > V00_LEN && b[V00_LEN] != b'-' => return None,
            _ => {}
        }
        if b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let trace_id = TraceId::from(hex_u128(&b[3..35])?);
        let parent_id = SpanId::from(hex_u64(&b[36..52])?);
        let flags = u8::try_from(hex_u64(&b[53..55])?).ok()?;
        let mut tp = TraceParent::new(trace_id, parent_id, flags)?;
        tp.version = version;
        Some(tp)
    }

    /// The version received (`0` for what this crate writes).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The trace ID.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The parent ID (the caller's span ID).
    pub fn parent_id(&self) -> SpanId {
        self.parent_id
    }

    /// All eight bits of `trace-flags`, as received.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The sampled flag.
    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The random trace ID flag (Level 2).
    pub fn is_random(&self) -> bool {
        self.flags & FLAG_RANDOM != 0
    }
}

impl fmt::Display for TraceParent {
    /// Writes version `00` (the highest version this crate knows), whatever
    /// version was received, with the flags as they are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TID: &str = "12345678901234567890123456789012";
    const PID: &str = "1234567890123456";

    fn ok(s: &str) -> TraceParent {
        TraceParent::parse(s).unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    fn bad(s: &str) {
        assert_eq!(TraceParent::parse(s), None, "{s:?} should be rejected");
    }

    // Cases of the W3C trace-context test suite (test/test.py), traceparent.
    #[test]
    fn version_00_exact() {
        let tp = ok(&format!("00-{TID}-{PID}-01"));
        assert_eq!(tp.trace_id().to_string(), TID);
        assert_eq!(tp.parent_id().to_string(), PID);
        assert!(tp.is_sampled());
        bad(&format!("00-{TID}-{PID}-01."));
        bad(&format!("00-{TID}-{PID}-01-what-the-future-will-be-like"));
    }

    #[test]
    fn future_versions() {
        assert_eq!(ok(&format!("cc-{TID}-{PID}-01")).version(), 0xcc);
        let tp = ok(&format!("cc-{TID}-{PID}-01-what-the-future-will-be-like"));
        assert_eq!(tp.trace_id().to_string(), TID);
        assert_eq!(tp.to_string(), format!("00-{TID}-{PID}-01"));
        bad(&format!("cc-{TID}-{PID}-01.what-the-future-will-be-like"));
        bad(&format!("ff-{TID}-{PID}-01"));
        // Shorter than 55 characters: not parsed.
        bad(&format!("cc-{TID}-{PID}-1"));
    }

    #[test]
    fn version_field() {
        bad(&format!(".0-{TID}-{PID}-01"));
        bad(&format!("0.-{TID}-{PID}-01"));
        bad(&format!("000-{TID}-{PID}-01"));
        bad(&format!("0000-{TID}-{PID}-01"));
        bad(&format!("0-{TID}-{PID}-01"));
        bad(&format!("0A-{TID}-{PID}-01"));
    }

    #[test]
    fn trace_id_field() {
        bad(&format!("00-00000000000000000000000000000000-{PID}-01"));
        bad(&format!("00-.2345678901234567890123456789012-{PID}-01"));
        bad(&format!("00-1234567890123456789012345678901.-{PID}-01"));
        bad(&format!("00-123456789012345678901234567890123-{PID}-01"));
        bad(&format!("00-1234567890123456789012345678901-{PID}-01"));
        bad(&format!("00-ABCDEF78901234567890123456789012-{PID}-01"));
    }

    #[test]
    fn parent_id_field() {
        bad(&format!("00-{TID}-0000000000000000-01"));
        bad(&format!("00-{TID}-.234567890123456-01"));
        bad(&format!("00-{TID}-123456789012345.-01"));
        bad(&format!("00-{TID}-12345678901234567-01"));
        bad(&format!("00-{TID}-123456789012345-01"));
        bad(&format!("00-{TID}-ABCDEF7890123456-01"));
    }

    #[test]
    fn flags_field() {
        bad(&format!("00-{TID}-{PID}-.0"));
        bad(&format!("00-{TID}-{PID}-0."));
        bad(&format!("00-{TID}-{PID}-001"));
        bad(&format!("00-{TID}-{PID}-1"));
        bad(&format!("00-{TID}-{PID}-0A"));
        let tp = ok(&format!("00-{TID}-{PID}-03"));
        assert!(tp.is_sampled() && tp.is_random());
        let tp = ok(&format!("00-{TID}-{PID}-02"));
        assert!(!tp.is_sampled() && tp.is_random());
        // Every bit is kept as received (masking is the sender's job).
        assert_eq!(ok(&format!("00-{TID}-{PID}-ff")).flags(), 0xff);
        assert!(ok(&format!("00-{TID}-{PID}-09")).is_sampled());
    }

    #[test]
    fn optional_whitespace() {
        for s in [
            format!(" 00-{TID}-{PID}-01"),
            format!("\t00-{TID}-{PID}-01"),
            format!("00-{TID}-{PID}-01 "),
            format!("00-{TID}-{PID}-01\t"),
            format!("\t 00-{TID}-{PID}-01 \t"),
        ] {
            assert_eq!(ok(&s).trace_id().to_string(), TID);
        }
    }

    #[test]
    fn two_headers_joined_are_invalid() {
        bad(&format!(
            "00-{TID}-{PID}-01, 00-12345678901234567890123456789011-{PID}-01"
        ));
    }

    proptest! {
        #[test]
        fn any_input_never_panics(s in ".{0,120}") {
            let _ = TraceParent::parse(&s);
        }

        #[test]
        fn any_ascii_never_panics(s in "[0-9a-fA-F\\- \t.]{50,70}") {
            let _ = TraceParent::parse(&s);
        }

        #[test]
        fn hex_matches_from_str_radix(s in "[0-9a-fA-F.g/:@`G-]{0,34}") {
            let expected = if s.is_empty() || s.len() > 32 || s.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                None
            } else {
                u128::from_str_radix(&s, 16).ok()
            };
            prop_assert_eq!(hex_u128(s.as_bytes()), expected);
            let expected64 = expected.filter(|_| s.len() <= 16).map(|v| v as u64);
            prop_assert_eq!(hex_u64(s.as_bytes()), expected64);
        }

        #[test]
        fn written_values_parse_back(t in 1u128.., p in 1u64.., flags in any::<u8>()) {
            let tp = TraceParent::new(TraceId::from(t), SpanId::from(p), flags).unwrap();
            let text = tp.to_string();
            prop_assert_eq!(text.len(), V00_LEN);
            prop_assert_eq!(TraceParent::parse(&text), Some(tp));
        }
    }
}
