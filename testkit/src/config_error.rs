//! The one check of a rejected environment variable (ARCHITECTURE.md,
//! "Configuration from the environment"): the error names the variable,
//! quotes the value and states what is allowed.

use std::fmt::Display;

use telltale_core::ConfigError;

/// How many characters of a value `telltale_core::ConfigError` quotes
/// (escaped); a longer value is cut there and followed by `...`.
pub const QUOTED_CHARS: usize = 120;

/// Longest error text accepted, in characters: a rejected 10 KiB value must
/// not become a 10 KiB error line.
pub const MAX_ERROR_CHARS: usize = 2000;

/// The value as a [`ConfigError`] quotes it: its first [`QUOTED_CHARS`]
/// characters escaped as Rust's `char::escape_debug` escapes them, then
/// `...` when the value is longer.
pub fn quoted(value: &str) -> String {
    let mut quoted: String = value
        .chars()
        .take(QUOTED_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > QUOTED_CHARS {
        quoted.push_str("...");
    }
    quoted
}

/// Checks that `error`, returned for `variable=value`, is a configuration
/// error a user can act on; `config` is the [`ConfigError`] it carries (the
/// error itself for a bare `ConfigError`). Every one of these must hold:
///
/// - `config` names `variable`;
/// - the text of `error` starts with `invalid VARIABLE="value"` (the value
///   [`quoted`]: escaped, and cut after [`QUOTED_CHARS`] characters);
/// - what `config` expects, and so the text, contains `allowed` (a piece of
///   the allowed range or form, such as `"from 1 to 10000"`);
/// - the text is shorter than [`MAX_ERROR_CHARS`] characters.
///
/// Returns every failed rule in one message, for tests that collect the
/// failures of many rows; [`assert_config_error`] panics with it.
///
/// ```
/// use telltale_core::{ConfigError, ParseError};
/// use telltale_testkit::check_config_error;
///
/// let err = ConfigError::new("APP_WORKERS", "0", ParseError::new(1, "a number from 1 to 64"));
/// assert_eq!(check_config_error(&err, &err, "APP_WORKERS", "0", "from 1 to 64"), Ok(()));
/// // Another range, another value, another variable: refused.
/// assert!(check_config_error(&err, &err, "APP_WORKERS", "0", "from 1 to 8").is_err());
/// assert!(check_config_error(&err, &err, "APP_WORKERS", "00", "from 1 to 64").is_err());
/// assert!(check_config_error(&err, &err, "APP_THREADS", "0", "from 1 to 64").is_err());
/// ```
pub fn check_config_error(
    error: &dyn Display,
    config: &ConfigError,
    variable: &str,
    value: &str,
    allowed: &str,
) -> Result<(), String> {
    let text = error.to_string();
    let mut problems = Vec::new();
    if config.variable() != variable {
        problems.push(format!("names the variable {:?}", config.variable()));
    }
    let start = format!("invalid {variable}=\"{}\"", quoted(value));
    if !text.starts_with(&start) {
        problems.push(format!("does not start with {start:.200}"));
    }
    if !config.expected().contains(allowed) || !text.contains(allowed) {
        problems.push(format!(
            "does not state what is allowed ({allowed:?}), expects {:?}",
            config.expected()
        ));
    }
    let chars = text.chars().count();
    if chars >= MAX_ERROR_CHARS {
        problems.push(format!("is {chars} characters long"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{variable}={value:.60?}: {}: {text:.300}",
            problems.join("; ")
        ))
    }
}

/// Asserts [`check_config_error`]: `error`, returned for `variable=value`
/// and carrying `config`, names the variable, quotes the value and states
/// what is allowed (`allowed` is a piece of it).
///
/// ```
/// use telltale_core::{ConfigError, ParseError};
///
/// let value = "x".repeat(500);
/// let err = ConfigError::new("APP_NAME", &value, ParseError::new(256, "at most 255 characters"));
/// telltale_testkit::assert_config_error(&err, &err, "APP_NAME", &value, "at most 255");
/// ```
///
/// # Panics
///
/// When any rule of [`check_config_error`] fails, with all that failed.
#[track_caller]
pub fn assert_config_error(
    error: &dyn Display,
    config: &ConfigError,
    variable: &str,
    value: &str,
    allowed: &str,
) {
    if let Err(problems) = check_config_error(error, config, variable, value, allowed) {
        panic!("{problems}");
    }
}
