//! The one rule for metric names (see `docs/ARCHITECTURE.md`, "Metric names"),
//! the process-wide prefix, and the buckets of the duration histograms
//! recorded outside telltale-telemetry.
//!
//! A name is the configured prefix (none by default) joined with exactly one
//! `_` to the base name. telltale's own metrics have base names
//! `telltale_<component>_<what>`; RED metrics have the base names of their
//! scheme.
//!
//! The prefix is one process-wide setting, [`TELLTALE_METRICS_PREFIX`](env::PREFIX),
//! read once (on first use) by [`prefix`]. Every crate builds its names with
//! [`full`]`(prefix(), base)` once, when a component is built, so recording
//! never formats a name. A component setting that names a prefix explicitly
//! (`RedConfig::prefix`, the breaker's and bulkhead's `metric_prefix`) wins
//! over the process-wide one; an explicit empty prefix means none.
//!
//! ```
//! use telltale_core::metric_name::full;
//!
//! assert_eq!(full(None, "telltale_correlation_ids_generated_total"), "telltale_correlation_ids_generated_total");
//! assert_eq!(full(Some("myapp"), "http_requests_total"), "myapp_http_requests_total");
//! assert_eq!(full(Some("myapp_"), "http_requests_total"), "myapp_http_requests_total");
//! assert_eq!(full(Some(""), "http_requests_total"), "http_requests_total");
//! ```

use std::sync::OnceLock;

use crate::config::{ConfigError, Env, EnvSource, ParseError};

/// The environment variable of the process-wide prefix.
pub mod env {
    crate::env_vars! {
        /// `TELLTALE_METRICS_PREFIX`: a prefix put before every metric name
        /// telltale registers (`myapp` or `myapp_` gives `myapp_http_…`,
        /// `myapp_telltale_…`); `[a-zA-Z_][a-zA-Z0-9_]*`, none by default.
        PREFIX = "TELLTALE_METRICS_PREFIX";
    }
}

/// The full name of the metric `base` under `prefix`: `base` when there is
/// no prefix (`None`, empty, or only underscores), else the prefix without its
/// trailing underscores, one `_`, and `base`.
pub fn full(prefix: Option<&str>, base: &str) -> String {
    match prefix.map(|p| p.trim_end_matches('_')) {
        None | Some("") => base.to_owned(),
        Some(p) => {
            let mut name = String::with_capacity(p.len() + 1 + base.len());
            name.push_str(p);
            name.push('_');
            name.push_str(base);
            name
        }
    }
}

/// Checks a metric-name prefix: `[a-zA-Z_][a-zA-Z0-9_]*` (the start of a
/// Prometheus metric name; `:` is reserved for recording rules).
///
/// ```
/// use telltale_core::metric_name::parse_prefix;
///
/// assert_eq!(parse_prefix("myapp_").unwrap(), "myapp_");
/// assert!(parse_prefix("9app").is_err());
/// assert!(parse_prefix("my-app").is_err());
/// ```
pub fn parse_prefix(value: &str) -> Result<String, ParseError> {
    let mut chars = value.char_indices();
    let first_ok = chars
        .next()
        .is_some_and(|(_, c)| c.is_ascii_alphabetic() || c == '_');
    if !first_ok {
        return Err(ParseError::new(
            1,
            "a prefix matching [a-zA-Z_][a-zA-Z0-9_]*",
        ));
    }
    if let Some((i, _)) = chars.find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(ParseError::new(
            i + 1,
            "a prefix matching [a-zA-Z_][a-zA-Z0-9_]*",
        ));
    }
    Ok(value.to_owned())
}

/// Reads [`env::PREFIX`] from `env`: `None` when unset or empty, an error
/// naming the variable, the value and the allowed form when invalid.
pub fn prefix_from_env<S: EnvSource>(env: &Env<S>) -> Result<Option<String>, ConfigError> {
    env.parse(env::PREFIX, parse_prefix)
}

fn process_prefix() -> &'static Result<Option<&'static str>, ConfigError> {
    static PREFIX: OnceLock<Result<Option<&'static str>, ConfigError>> = OnceLock::new();
    PREFIX.get_or_init(|| {
        prefix_from_env(&Env::process())
            // Leaked once per process: names are built from it for the
            // lifetime of the process.
            .map(|p| p.map(|p| &*Box::leak(p.into_boxed_str())))
    })
}

/// The process-wide prefix: [`env::PREFIX`] of the process environment,
/// read once. An invalid value counts as none here: the `from_env` of the
/// RED metrics, the request layers and the presets read the same variable
/// with [`prefix_from_env`] and fail with its error (so does
/// [`check_process_prefix`]).
pub fn prefix() -> Option<&'static str> {
    process_prefix().as_ref().ok().copied().flatten()
}

/// The process-wide prefix, or the error of an invalid
/// [`TELLTALE_METRICS_PREFIX`](env::PREFIX) (naming the variable, the value
/// and the allowed form).
pub fn check_process_prefix() -> Result<Option<&'static str>, ConfigError> {
    process_prefix().clone()
}

/// The full name of `base` under the process-wide [`prefix`].
pub fn process_full(base: &str) -> String {
    full(prefix(), base)
}

/// `telltale_bulkhead_wait_duration_seconds`: the time each admitted call
/// waited for a bulkhead slot (0 when admitted at once). Declared here, not in
/// telltale-resilience, because the Prometheus builder of telltale-telemetry
/// must give it its buckets and the feature crates do not depend on each
/// other.
pub const BULKHEAD_WAIT_DURATION: &str = "telltale_bulkhead_wait_duration_seconds";

/// The buckets of [`BULKHEAD_WAIT_DURATION`], in seconds. The first
/// boundary is `0`: `le="0"` counts the calls admitted at once.
pub const BULKHEAD_WAIT_BUCKETS: [f64; 13] = [
    0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_underscore() {
        assert_eq!(full(None, "x_total"), "x_total");
        assert_eq!(full(Some(""), "x_total"), "x_total");
        assert_eq!(full(Some("_"), "x_total"), "x_total");
        assert_eq!(full(Some("app"), "x_total"), "app_x_total");
        assert_eq!(full(Some("app_"), "x_total"), "app_x_total");
        assert_eq!(full(Some("app__"), "x_total"), "app_x_total");
        assert_eq!(full(Some("my_app"), "x_total"), "my_app_x_total");
    }

    #[test]
    fn prefix_from_env_validates() {
        let ok = Env::from_pairs([(env::PREFIX, "myapp_")]);
        assert_eq!(prefix_from_env(&ok).unwrap().as_deref(), Some("myapp_"));
        let unset = Env::from_pairs(Vec::<(String, String)>::new());
        assert_eq!(prefix_from_env(&unset).unwrap(), None);
        let bad = Env::from_pairs([(env::PREFIX, "my-app")]);
        let err = prefix_from_env(&bad).unwrap_err().to_string();
        assert!(err.contains(env::PREFIX) && err.contains("my-app"), "{err}");
        assert!(err.contains("[a-zA-Z_][a-zA-Z0-9_]*"), "{err}");
    }

    #[test]
    fn bulkhead_buckets_increase() {
        assert!(BULKHEAD_WAIT_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
