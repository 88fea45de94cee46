//! HTTP wire knowledge shared by every telltale crate: method classes, host and
//! port, and percent-encoding.
//!
//! ```
//! use http::Method;
//! use telltale_core::http::{method_label, percent_decode, percent_encode, split_host_port};
//!
//! assert_eq!(method_label(&Method::GET), "GET");
//! assert_eq!(method_label(&Method::from_bytes(b"PURGE").unwrap()), "_OTHER");
//! assert_eq!(split_host_port("[::1]:8080"), ("::1", Some(8080)));
//! assert_eq!(percent_encode("a b,c"), "a%20b%2Cc");
//! assert_eq!(percent_decode("a%20b%2Cc").unwrap(), "a b,c");
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

use ::http::Method;

use crate::config::ParseError;

/// The label value of any method outside the nine standard ones, as the
/// OpenTelemetry HTTP conventions spell it.
pub const OTHER_METHOD: &str = "_OTHER";

/// The nine standard methods (RFC 9110 and PATCH), in the order of
/// [`METHOD_LABELS`] and [`method_index`].
pub const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// The label of each [`method_index`]: the nine standard methods, then
/// [`OTHER_METHOD`].
pub const METHOD_LABELS: [&str; 10] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    OTHER_METHOD,
];

/// The index of `method` in [`STANDARD_METHODS`], or `9` (the index of
/// [`OTHER_METHOD`] in [`METHOD_LABELS`]) for any other method. Compares enum
/// tags, no strings: cheap enough for a hot path.
pub fn method_index(method: &Method) -> usize {
    STANDARD_METHODS
        .iter()
        .position(|m| m == method)
        .unwrap_or(STANDARD_METHODS.len())
}

/// The name of a standard method (`GET`, ..., `PATCH`), `None` for any other
/// (extension methods such as `PURGE`), whose name is the client's to choose
/// and must not become a span attribute or a label as it is.
pub fn known_method(method: &Method) -> Option<&'static str> {
    let i = method_index(method);
    (i < STANDARD_METHODS.len()).then(|| METHOD_LABELS[i])
}

/// The label value of `method`: its name for the nine standard methods,
/// [`OTHER_METHOD`] (`_OTHER`) for anything else.
pub fn method_label(method: &Method) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

/// Splits an authority `host[:port]` into the host and the port.
///
/// - user information (`user:pw@`) is dropped;
/// - an IPv6 literal in brackets (`[::1]:443`) gives the address without the
///   brackets;
/// - a port is the digits after the last `:`; digits out of `u16` range (or
///   none, `host:`) give the host without a port;
/// - anything after a `:` that is not all digits is not a port: the whole
///   authority is the host (`host:abc`, an unbracketed IPv6 address).
///
/// ```
/// use telltale_core::http::split_host_port;
///
/// assert_eq!(split_host_port("example.com:8080"), ("example.com", Some(8080)));
/// assert_eq!(split_host_port("example.com"), ("example.com", None));
/// assert_eq!(split_host_port("[::1]:443"), ("::1", Some(443)));
/// assert_eq!(split_host_port("user:pw@h:1"), ("h", Some(1)));
/// assert_eq!(split_host_port("h:99999"), ("h", None));
/// ```
pub fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let port = |p: &str| p.parse::<u16>().ok();
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => (host, port(p)),
                _ => (authority, None),
            },
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port(p))
        }
        _ => (authority, None),
    }
}

/// Whether a byte is unreserved in RFC 3986 (`A-Z a-z 0-9 - . _ ~`): the
/// bytes [`percent_encode`] keeps.
pub const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes every byte of `s` that is not unreserved in RFC 3986 as
/// `%XX` (upper-case hex of the UTF-8 bytes). The strictest encoding: any
/// percent-decoder gives `s` back, and the result is safe in a header value,
/// a URL component, a W3C baggage value or `OTEL_RESOURCE_ATTRIBUTES`.
pub fn percent_encode(s: &str) -> Cow<'_, str> {
    percent_encode_with(s.as_bytes(), is_unreserved)
}

/// Percent-encodes `bytes`, keeping the bytes for which `keep` is true, and
/// encoding every other byte as `%XX`. `keep` must return false for `%` and
/// for bytes that are not ASCII (a kept non-ASCII byte is encoded anyway, so
/// the result is always ASCII).
pub fn percent_encode_with(bytes: &[u8], keep: impl Fn(u8) -> bool) -> Cow<'_, str> {
    let kept = |b: u8| b.is_ascii() && b != b'%' && keep(b);
    match bytes.iter().position(|&b| !kept(b)) {
        // All kept bytes are ASCII, so this is valid UTF-8.
        None => match std::str::from_utf8(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(String::new()),
        },
        Some(first) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            out.extend(bytes[..first].iter().map(|&b| char::from(b)));
            for &b in &bytes[first..] {
                if kept(b) {
                    out.push(char::from(b));
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
            Cow::Owned(out)
        }
    }
}

/// The byte of two hex digits (`b"2C"`, `b"2c"`), `None` for anything else.
pub(crate) fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    match two {
        [hi, lo] => Some((digit(*hi)? * 16 + digit(*lo)?) as u8),
        _ => None,
    }
}

/// Decodes `%XX` escapes in `s`, strictly: a `%` must be followed by two hex
/// digits, and the decoded bytes must form UTF-8. Errors carry the 1-based
/// character position of the bad `%` (or `1` for bad UTF-8); shift them with
/// [`ParseError::shifted`] when `s` is part of a larger value.
///
/// ```
/// use telltale_core::http::percent_decode;
///
/// assert_eq!(percent_decode("team=a%2Cb").unwrap(), "team=a,b");
/// assert_eq!(percent_decode("100%").unwrap_err().position(), 4);
/// ```
pub fn percent_decode(s: &str) -> Result<Cow<'_, str>, ParseError> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => {
                    return Err(ParseError::new(
                        s[..i].chars().count() + 1,
                        "two hex digits after '%'",
                    ));
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| ParseError::new(1, "percent-escapes forming UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn methods() {
        assert_eq!(known_method(&Method::GET), Some("GET"));
        assert_eq!(known_method(&Method::PATCH), Some("PATCH"));
        let purge = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(known_method(&purge), None);
        assert_eq!(method_label(&purge), "_OTHER");
        assert_eq!(method_index(&purge), 9);
        for (i, m) in STANDARD_METHODS.iter().enumerate() {
            assert_eq!(method_index(m), i);
            assert_eq!(method_label(m), m.as_str());
            assert_eq!(known_method(m), Some(m.as_str()));
        }
    }

    #[test]
    fn host_and_port() {
        let cases = [
            ("example.com:8080", ("example.com", Some(8080))),
            ("example.com", ("example.com", None)),
            ("example.com:", ("example.com", None)),
            ("example.com:99999", ("example.com", None)),
            ("example.com:abc", ("example.com:abc", None)),
            ("[::1]:443", ("::1", Some(443))),
            ("[::1]", ("::1", None)),
            ("[::1]x", ("[::1]x", None)),
            ("[::1", ("[::1", None)),
            ("::1", ("::1", None)),
            ("user:pw@h:1", ("h", Some(1))),
            ("", ("", None)),
        ];
        for (input, want) in cases {
            assert_eq!(split_host_port(input), want, "{input:?}");
        }
    }

    #[test]
    fn encoding() {
        assert_eq!(percent_encode("plain-text_1.0~"), "plain-text_1.0~");
        assert!(matches!(percent_encode("plain"), Cow::Borrowed(_)));
        assert_eq!(percent_encode("a b%\u{e9}"), "a%20b%25%C3%A9");
        assert_eq!(percent_encode_with(b"a b%", |_| true), "a b%25");
        assert_eq!(percent_encode_with(b"\xff", |_| true), "%FF");
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2cb%2C").unwrap(), "a,b,");
        assert!(matches!(percent_decode("plain").unwrap(), Cow::Borrowed(_)));
        let err = percent_decode("\u{e9}%zz").unwrap_err();
        assert_eq!(err.position(), 2);
        assert_eq!(err.expected(), "two hex digits after '%'");
        assert_eq!(percent_decode("%4").unwrap_err().position(), 1);
        assert_eq!(percent_decode("%ff").unwrap_err().position(), 1);
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            let encoded = percent_encode(&s);
            prop_assert!(encoded.bytes().all(|b| is_unreserved(b) || b == b'%'));
            prop_assert_eq!(percent_decode(&encoded).unwrap(), s.as_str());
        }

        #[test]
        fn decode_never_panics_and_positions_are_in_range(s in "\\PC{0,40}|[%0-9a-fA-Fg]{0,12}") {
            if let Err(e) = percent_decode(&s) {
                prop_assert!(e.position() >= 1 && e.position() <= s.chars().count().max(1));
            }
        }

        #[test]
        fn host_port_never_panics(s in "\\PC{0,40}|[\\[\\]:@0-9a-z]{0,16}") {
            let (host, _) = split_host_port(&s);
            prop_assert!(s.contains(host));
        }
    }
}
