//! The environment variables of telltale-correlation, declared once.
//!
//! | variable | server builder | client builder | example |
//! |---|---|---|---|
//! | [`HEADER`] | [`header`](crate::CorrelationLayerBuilder::header) | [`header`](crate::InjectCorrelationLayerBuilder::header) | `x-correlation-id` |
//! | [`ALIASES`] | [`aliases`](crate::CorrelationLayerBuilder::aliases) | | `x-request-id,x-amzn-trace-id`, or `none` (default `x-request-id`) |
//! | [`TRUST_INCOMING`] | [`trust_incoming`](crate::CorrelationLayerBuilder::trust_incoming) | | `true` |
//! | [`REQUIRE`] | [`require_header`](crate::CorrelationLayerBuilder::require_header) | | `false` |
//! | [`ECHO`] | [`echo`](crate::CorrelationLayerBuilder::echo) | | `on` |
//! | [`MAX_LEN`] | [`max_len`](crate::CorrelationLayerBuilder::max_len) | | `64` |
//! | [`CLIENT_OVERRIDE`] | | [`override_existing`](crate::InjectCorrelationLayerBuilder::override_existing) | `true` |
//! | [`CLIENT_GENERATE`] | | [`generate_when_absent`](crate::InjectCorrelationLayerBuilder::generate_when_absent) | `false` |
//!
//! Allowed values: header names of at most [`MAX_HEADER_NAME_LEN`] characters
//! (HTTP token characters), at most [`MAX_ALIASES`] aliases, booleans
//! (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`), and a [`MAX_LEN`] from 1
//! to [`crate::MAX_LEN`]; anything else is an error naming the variable,
//! quoting the value and stating what is allowed.
//!
//! [`VARS`] holds every variable of this crate; [`is_configured`] says whether
//! any is set in `env` (a variable that is set but not valid Unicode counts as
//! set: building will report it).
//!
//! ```
//! use telltale_core::config::Env;
//! use telltale_correlation::env;
//!
//! assert!(env::is_configured(&Env::from_pairs([(env::ALIASES, "x-request-id")])));
//! assert!(!env::is_configured(&Env::from_pairs([("OTHER", "1")])));
//! ```

use http::HeaderName;
use telltale_core::config::{
    ConfigError, Env, EnvSource, ParseError, parse_list_with, parse_number,
};

use crate::header::parse_header_name;

telltale_core::env_vars! {
    /// `TELLTALE_CORRELATION_HEADER`: the header read, written and echoed by the
    /// server layer and set by the client layer.
    HEADER = "TELLTALE_CORRELATION_HEADER";
    /// `TELLTALE_CORRELATION_ALIASES`: further headers the server layer reads
    /// (replacing the default, [`DEFAULT_ALIASES`](crate::DEFAULT_ALIASES):
    /// `x-request-id`); `none` for none.
    ALIASES = "TELLTALE_CORRELATION_ALIASES";
    /// `TELLTALE_CORRELATION_TRUST_INCOMING`: whether incoming IDs are used.
    TRUST_INCOMING = "TELLTALE_CORRELATION_TRUST_INCOMING";
    /// `TELLTALE_CORRELATION_REQUIRE`: whether a request without a valid ID is refused.
    REQUIRE = "TELLTALE_CORRELATION_REQUIRE";
    /// `TELLTALE_CORRELATION_ECHO`: whether responses carry the ID.
    ECHO = "TELLTALE_CORRELATION_ECHO";
    /// `TELLTALE_CORRELATION_MAX_LEN`: the longest accepted ID (1 to
    /// [`MAX_LEN`](crate::MAX_LEN) bytes).
    MAX_LEN = "TELLTALE_CORRELATION_MAX_LEN";
    /// `TELLTALE_CORRELATION_CLIENT_OVERRIDE`: whether the client layer replaces a
    /// header the caller set.
    CLIENT_OVERRIDE = "TELLTALE_CORRELATION_CLIENT_OVERRIDE";
    /// `TELLTALE_CORRELATION_CLIENT_GENERATE`: whether the client layer generates an
    /// ID when there is none.
    CLIENT_GENERATE = "TELLTALE_CORRELATION_CLIENT_GENERATE";
}

/// The variables the server layer reads.
pub const SERVER_VARS: &[&str] = &[HEADER, ALIASES, TRUST_INCOMING, REQUIRE, ECHO, MAX_LEN];

/// The variables the client layer reads.
pub const CLIENT_VARS: &[&str] = &[HEADER, CLIENT_OVERRIDE, CLIENT_GENERATE];

/// The longest header name [`HEADER`] and [`ALIASES`] accept, in bytes.
pub const MAX_HEADER_NAME_LEN: usize = 64;
/// The most headers [`ALIASES`] may list.
pub const MAX_ALIASES: usize = 16;

/// A header name of at most [`MAX_HEADER_NAME_LEN`] bytes.
fn bounded_header_name(v: &str) -> Result<HeaderName, ParseError> {
    let name = parse_header_name(v)?;
    if v.len() > MAX_HEADER_NAME_LEN {
        return Err(ParseError::new(
            MAX_HEADER_NAME_LEN + 1,
            format!("a header name of at most {MAX_HEADER_NAME_LEN} characters"),
        ));
    }
    Ok(name)
}

pub(crate) fn header<S: EnvSource>(
    env: &Env<S>,
    name: &str,
) -> Result<Option<HeaderName>, ConfigError> {
    env.parse(name, bounded_header_name)
}

pub(crate) fn header_list<S: EnvSource>(
    env: &Env<S>,
    name: &str,
) -> Result<Option<Vec<HeaderName>>, ConfigError> {
    env.parse(name, |v| {
        if v.trim().eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        let list = parse_list_with(v, bounded_header_name)?;
        if list.len() > MAX_ALIASES {
            return Err(ParseError::new(
                1,
                format!("at most {MAX_ALIASES} header names"),
            ));
        }
        Ok(list)
    })
}

/// [`MAX_LEN`]: a length from 1 to the core limit.
pub(crate) fn max_len<S: EnvSource>(env: &Env<S>) -> Result<Option<usize>, ConfigError> {
    env.parse(MAX_LEN, |v| {
        let expected = || format!("a length from 1 to {}", crate::MAX_LEN);
        let n: usize = parse_number(v).map_err(|e| ParseError::new(e.position(), expected()))?;
        if (1..=crate::MAX_LEN).contains(&n) {
            Ok(n)
        } else {
            Err(ParseError::new(1, expected()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_positions() {
        let env = Env::from_pairs([("L", "x-a, x-b,x c")]);
        let err = header_list(&env, "L").unwrap_err();
        assert_eq!(err.variable(), "L");
        assert_eq!(err.position(), 11);
        for var in SERVER_VARS.iter().chain(CLIENT_VARS) {
            assert!(VARS.contains(var));
            assert!(is_configured(&Env::from_pairs([(*var, "x")])));
        }
        assert!(!is_configured(&Env::from_pairs([(HEADER, " ")])));
        assert_eq!(
            max_len(&Env::from_pairs([(MAX_LEN, "0")]))
                .unwrap_err()
                .position(),
            1
        );
    }
}
