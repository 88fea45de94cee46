//! `OTEL_RESOURCE_ATTRIBUTES`, parsed one way (strictly) for every crate.
//!
//! The value is a comma-separated list of `key=value` pairs whose keys and
//! values may be percent-encoded (W3C baggage octets). An empty item, a
//! missing `=`, an empty key or a bad `%` escape is a [`ConfigError`] naming
//! the variable and the position.
//!
//! ```
//! use telltale_core::config::Env;
//! use telltale_core::resource;
//!
//! let env = Env::from_pairs([(resource::VAR, "service.name=api, deployment.environment.name=stag%69ng")]);
//! let attrs = resource::attributes(&env).unwrap();
//! assert_eq!(attrs[0], ("service.name".to_owned(), "api".to_owned()));
//! assert_eq!(resource::deployment_environment(&env).unwrap().as_deref(), Some("staging"));
//!
//! let bad = Env::from_pairs([(resource::VAR, "a=1,,b=2")]);
//! let err = resource::attributes(&bad).unwrap_err();
//! assert_eq!((err.variable(), err.position()), (resource::VAR, 5));
//! ```

use crate::config::{ConfigError, Env, EnvSource, ParseError};
use crate::http::percent_decode;

/// The variable: `OTEL_RESOURCE_ATTRIBUTES`.
pub const VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// The current semantic-conventions key of the deployment environment.
pub const DEPLOYMENT_ENVIRONMENT_NAME: &str = "deployment.environment.name";

/// The deprecated key of the deployment environment, still widely set.
pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment";

/// The attributes in [`VAR`], in order; an empty list when it is unset or
/// empty.
pub fn attributes<S: EnvSource>(env: &Env<S>) -> Result<Vec<(String, String)>, ConfigError> {
    Ok(env.parse(VAR, parse_key_values)?.unwrap_or_default())
}

/// The deployment environment named in [`VAR`]: the value of
/// [`DEPLOYMENT_ENVIRONMENT_NAME`], else of [`DEPLOYMENT_ENVIRONMENT`];
/// `None` when neither is there. A malformed variable is an error.
pub fn deployment_environment<S: EnvSource>(env: &Env<S>) -> Result<Option<String>, ConfigError> {
    Ok(find_deployment_environment(&attributes(env)?).map(str::to_owned))
}

/// The deployment environment among parsed attributes: the last value of
/// [`DEPLOYMENT_ENVIRONMENT_NAME`], else the last of [`DEPLOYMENT_ENVIRONMENT`]
/// (a later pair overrides an earlier one, as in a resource).
pub fn find_deployment_environment(attributes: &[(String, String)]) -> Option<&str> {
    let last = |key: &str| {
        attributes
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    last(DEPLOYMENT_ENVIRONMENT_NAME).or_else(|| last(DEPLOYMENT_ENVIRONMENT))
}

/// Parses `key1=value1,key2=value2`: items and their keys and values are
/// trimmed, keys and values percent-decoded ([`percent_decode`]). The format
/// of `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`.
///
/// Errors: an empty item (`a=1,,b=2`, a trailing `,`), an item without `=`,
/// an empty key, a bad escape; each at its 1-based character position.
pub fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    let mut offset = 0; // characters before the current item
    for raw in s.split(',') {
        let len = raw.chars().count();
        let lead = raw.chars().take_while(|c| c.is_whitespace()).count();
        let item = raw.trim();
        if item.is_empty() {
            return Err(ParseError::new(offset + 1, "key=value before ','"));
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(ParseError::new(
                offset + lead + item.chars().count() + 1,
                "'=' after the key",
            ));
        };
        let key_len = key.chars().count();
        let key_lead = key.chars().take_while(|c| c.is_whitespace()).count();
        let key = key.trim();
        if key.is_empty() {
            return Err(ParseError::new(offset + lead + 1, "a key before '='"));
        }
        let value_lead = value.chars().take_while(|c| c.is_whitespace()).count();
        let value_offset = offset + lead + key_len + 1 + value_lead;
        let value = percent_decode(value.trim()).map_err(|e| e.shifted(value_offset))?;
        let key = percent_decode(key).map_err(|e| e.shifted(offset + lead + key_lead))?;
        out.push((key.into_owned(), value.into_owned()));
        offset += len + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        parse_key_values(s).unwrap()
    }

    #[test]
    fn parses_trims_and_decodes() {
        assert_eq!(
            pairs("service.name=x, deployment.environment=prod,team=a%2Cb"),
            [
                ("service.name".to_owned(), "x".to_owned()),
                ("deployment.environment".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "a,b".to_owned()),
            ]
        );
        assert_eq!(pairs("k = v "), [("k".to_owned(), "v".to_owned())]);
        assert_eq!(pairs("k="), [("k".to_owned(), String::new())]);
        assert_eq!(pairs("k=a=b"), [("k".to_owned(), "a=b".to_owned())]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let pos = |s: &str| parse_key_values(s).unwrap_err().position();
        assert_eq!(pos("a=1,,b=2"), 5);
        assert_eq!(pos("a=1,=2"), 5);
        assert_eq!(pos("a=1,b"), 6);
        assert_eq!(pos("a=1,"), 5);
        assert_eq!(pos("a=%zz"), 3);
        assert_eq!(pos("a=1, b= x%z"), 10);
        assert_eq!(pos("a%z=1"), 2);
    }

    #[test]
    fn deployment_environment_prefers_the_current_key() {
        let env = |v: &str| Env::from_pairs([(VAR, v)]);
        let get = |v: &str| deployment_environment(&env(v)).unwrap();
        assert_eq!(
            get("deployment.environment=stag%69ng").as_deref(),
            Some("staging")
        );
        assert_eq!(
            get("deployment.environment.name=dev").as_deref(),
            Some("dev")
        );
        assert_eq!(
            get("deployment.environment.name=new,deployment.environment=old").as_deref(),
            Some("new")
        );
        assert_eq!(
            get("deployment.environment=a,deployment.environment=b").as_deref(),
            Some("b")
        );
        assert_eq!(get("service.name=x"), None);
        assert_eq!(
            deployment_environment(&Env::from_pairs([("X", "1")])).unwrap(),
            None
        );
        let err = deployment_environment(&env("deployment.environment")).unwrap_err();
        assert_eq!(err.variable(), VAR);
    }

    proptest! {
        #[test]
        fn never_panics_and_positions_are_in_range(s in "\\PC{0,40}|[a=,% 0-9f]{0,16}") {
            if let Err(e) = parse_key_values(&s) {
                prop_assert!(e.position() >= 1 && e.position() <= s.chars().count() + 1, "{e:?} for {s:?}");
            }
        }
    }
}
