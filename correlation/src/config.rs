//! Shared configuration pieces: header names and environment variables.

use http::HeaderName;
use telltale_core::config::{ConfigError, Env, EnvSource, ParseError, parse_list_with};

use crate::error::BuildError;

/// Default header carrying the correlation ID.
pub const DEFAULT_HEADER: &str = "x-correlation-id";

/// Header name variable: `TELLTALE_CORRELATION_HEADER`.
pub const ENV_HEADER: &str = "TELLTALE_CORRELATION_HEADER";
/// Alias list variable: `TELLTALE_CORRELATION_ALIASES`.
pub const ENV_ALIASES: &str = "TELLTALE_CORRELATION_ALIASES";
/// Trust incoming IDs variable: `TELLTALE_CORRELATION_TRUST_INCOMING`.
pub const ENV_TRUST_INCOMING: &str = "TELLTALE_CORRELATION_TRUST_INCOMING";
/// Require the header variable: `TELLTALE_CORRELATION_REQUIRE`.
pub const ENV_REQUIRE: &str = "TELLTALE_CORRELATION_REQUIRE";
/// Echo in responses variable: `TELLTALE_CORRELATION_ECHO`.
pub const ENV_ECHO: &str = "TELLTALE_CORRELATION_ECHO";
/// Longest accepted ID variable: `TELLTALE_CORRELATION_MAX_LEN`.
pub const ENV_MAX_LEN: &str = "TELLTALE_CORRELATION_MAX_LEN";
/// Client override variable: `TELLTALE_CORRELATION_CLIENT_OVERRIDE`.
pub const ENV_CLIENT_OVERRIDE: &str = "TELLTALE_CORRELATION_CLIENT_OVERRIDE";
/// Client generate variable: `TELLTALE_CORRELATION_CLIENT_GENERATE`.
pub const ENV_CLIENT_GENERATE: &str = "TELLTALE_CORRELATION_CLIENT_GENERATE";

/// A header name as configured: parsed, or the text that did not parse.
pub(crate) type HeaderSpec = Result<HeaderName, String>;

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

pub(crate) fn env_header<S: EnvSource>(
    env: &Env<S>,
    name: &str,
) -> Result<Option<HeaderName>, ConfigError> {
    env.parse(name, parse_header_name)
}

pub(crate) fn env_header_list<S: EnvSource>(
    env: &Env<S>,
    name: &str,
) -> Result<Option<Vec<HeaderName>>, ConfigError> {
    env.parse(name, |v| parse_list_with(v, parse_header_name))
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
        let env = Env::from_pairs([("L", "x-a, x-b,x c")]);
        let err = env_header_list(&env, "L").unwrap_err();
        assert_eq!(err.variable(), "L");
        assert_eq!(err.position(), 11);
    }
}
