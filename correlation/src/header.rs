//! Header names as configured: parsed once, at configuration time.

use http::HeaderName;
use telltale_core::config::ParseError;

use crate::error::BuildError;

/// Default header carrying the correlation ID.
pub const DEFAULT_HEADER: &str = "x-correlation-id";

/// The headers the server layer also reads by default, after the primary
/// one: `x-request-id`, what nginx (`$request_id`), Envoy, Heroku's router and
/// most load balancers and API gateways send. Replace them with
/// [`CorrelationLayerBuilder::aliases`](crate::CorrelationLayerBuilder::aliases)
/// or `TELLTALE_CORRELATION_ALIASES` (`none` for no alias).
pub const DEFAULT_ALIASES: &[&str] = &["x-request-id"];

/// A header name as configured: parsed, or the text that did not parse.
pub(crate) type HeaderSpec = Result<HeaderName, String>;

/// The default header, as a spec.
pub(crate) fn default_spec() -> HeaderSpec {
    Ok(HeaderName::from_static(DEFAULT_HEADER))
}

/// Parses a header name once, at configuration time. Well-known names become
/// static names (cloning them costs nothing per request).
pub(crate) fn header_spec(name: &str) -> HeaderSpec {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "x-correlation-id" => Ok(HeaderName::from_static("x-correlation-id")),
        "x-request-id" => Ok(HeaderName::from_static("x-request-id")),
        _ => HeaderName::from_bytes(lower.as_bytes()).map_err(|_| name.to_owned()),
    }
}

pub(crate) fn resolve(spec: &HeaderSpec) -> Result<HeaderName, BuildError> {
    spec.clone()
        .map_err(|name| BuildError::InvalidHeaderName { name })
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a header name with an error position, for environment variables.
pub(crate) fn parse_header_name(s: &str) -> Result<HeaderName, ParseError> {
    if let Some((i, _)) = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii() && is_tchar(c as u8)))
    {
        let position = s[..i].chars().count() + 1;
        return Err(ParseError::new(
            position,
            "a header name character (letters, digits, or !#$%&'*+-.^_`|~)",
        ));
    }
    header_spec(s).map_err(|_| ParseError::new(1, "a header name such as x-correlation-id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_parse_once_with_positions() {
        assert_eq!(
            header_spec("X-Request-Id").unwrap(),
            HeaderName::from_static("x-request-id")
        );
        assert!(header_spec("bad header").is_err());
        assert_eq!(parse_header_name("x-ok").unwrap().as_str(), "x-ok");
        assert_eq!(parse_header_name("x y").unwrap_err().position(), 2);
        assert_eq!(parse_header_name("é").unwrap_err().position(), 1);
    }
}
