//! The cap on attribute values the layers take from a request.
//!
//! A request is the client's to shape: a 60 KB path or a 200 KB
//! `User-Agent` is accepted by hyper's defaults (an HTTP/1 head may be up to
//! about 400 KB) and would otherwise be copied whole into the request's span,
//! and kept by the flight recorder or an export queue. The OpenTelemetry
//! specification's value length limit (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`)
//! has no default, so the layers cap what they copy from a request themselves:
//! `url.path`, `url.query`, `user_agent.original`, `server.address`,
//! `http.request.method_original`, `url.full` and captured
//! headers (each value of a header), at
//! [`DEFAULT_MAX_ATTRIBUTE_LEN`] characters unless
//! `TELLTALE_HTTP_MAX_ATTRIBUTE_LEN` (or the builders' `max_attribute_len`)
//! says otherwise. Values are cut on a character boundary, without a marker
//! (as the specification's truncation).

use telltale_core::config::ParseError;

/// Default cap on request-derived attribute values, in characters: 2048.
///
/// Long enough for any URL or `User-Agent` a real client sends (browsers and
/// CDNs cap URLs around 2 to 8 KB, and user agents are a few hundred
/// characters); short enough that a hostile request adds at most a few KB
/// (at most 4 bytes per character) to its span.
pub const DEFAULT_MAX_ATTRIBUTE_LEN: usize = 2048;

/// Largest `TELLTALE_HTTP_MAX_ATTRIBUTE_LEN`: 1 MiB of characters.
pub const MAX_ATTRIBUTE_LEN: usize = 1 << 20;

/// `s` cut to at most `max` characters.
pub(crate) fn cap(s: &str, max: usize) -> &str {
    crate::pipeline::limits::truncate_chars(s, max)
}

/// A cap from 1 to [`MAX_ATTRIBUTE_LEN`] characters.
pub(crate) fn parse_max_attribute_len(s: &str) -> Result<usize, ParseError> {
    let expected = || format!("a length from 1 to {MAX_ATTRIBUTE_LEN} characters");
    let n: u64 = telltale_core::config::parse_number(s)
        .map_err(|e| ParseError::new(e.position(), expected()))?;
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_ATTRIBUTE_LEN).contains(&n) => Ok(n),
        _ => Err(ParseError::new(1, expected())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_parsing() {
        assert_eq!(cap("/a/b/c", 3), "/a/");
        assert_eq!(cap("ü".repeat(5).as_str(), 2), "üü");
        assert_eq!(parse_max_attribute_len("2048"), Ok(2048));
        assert_eq!(parse_max_attribute_len("1"), Ok(1));
        for bad in ["0", "1048577", "-1", "2k", "99999999999999999999999"] {
            let err = parse_max_attribute_len(bad).unwrap_err();
            assert!(err.expected().contains("1 to 1048576"), "{bad}: {err:?}");
        }
    }
}
