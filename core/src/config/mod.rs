//! Configuration from environment variables, parsed one way everywhere.
//!
//! Every telltale crate reads its variables through [`Env`], so every malformed
//! value fails the same way: at start-up, with an error naming the variable, the
//! value (escaped, truncated) and the 1-based character position of the problem.
//!
//! ```
//! use std::time::Duration;
//! use telltale_core::config::Env;
//!
//! let env = Env::from_pairs([("TELLTALE_WAIT", "1.5s"), ("TELLTALE_RATE", "5%"), ("TELLTALE_BAD", "20xs")]);
//! assert_eq!(env.duration("TELLTALE_WAIT").unwrap(), Some(Duration::from_millis(1500)));
//! assert_eq!(env.percentage("TELLTALE_RATE").unwrap(), Some(0.05));
//! assert_eq!(env.duration("TELLTALE_UNSET").unwrap(), None);
//!
//! let err = env.duration("TELLTALE_BAD").unwrap_err();
//! assert_eq!(err.variable(), "TELLTALE_BAD");
//! assert_eq!(err.position(), 3);
//! assert_eq!(
//!     err.to_string(),
//!     "invalid TELLTALE_BAD=\"20xs\" at position 3: expected a duration unit (ns, us, ms, s, m, h, d)"
//! );
//! ```
//!
//! `new()` and `Default` never read the environment anywhere in telltale;
//! `from_env()` constructors take their values from an [`Env`] and return a
//! `Result`.
//!
//! The parsers are written by hand rather than taken from `humantime` or
//! `bytesize`: telltale needs the exact error position for every input, and
//! decimal durations (`1.5s`), neither of which those crates provide.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

mod parse;
mod vars;

pub use parse::{
    parse_bool, parse_duration, parse_list, parse_list_with, parse_number, parse_percentage,
    parse_size,
};

/// Why a value did not parse: where, and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    position: usize,
    expected: Cow<'static, str>,
}

impl ParseError {
    /// An error at a 1-based character `position` of the value.
    pub fn new(position: usize, expected: impl Into<Cow<'static, str>>) -> Self {
        ParseError {
            position: position.max(1),
            expected: expected.into(),
        }
    }

    /// The 1-based character position of the problem.
    pub fn position(&self) -> usize {
        self.position
    }

    /// What was expected at that position.
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// The same error, `offset` characters further right (for values nested in a
    /// larger one, such as an item of a list).
    #[must_use]
    pub fn shifted(mut self, offset: usize) -> Self {
        self.position += offset;
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at position {}: expected {}",
            self.position, self.expected
        )
    }
}

impl std::error::Error for ParseError {}

/// A configuration value that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    variable: Cow<'static, str>,
    value: String,
    position: usize,
    expected: Cow<'static, str>,
}

/// Longest value quoted in an error, in characters.
const MAX_QUOTED: usize = 120;

impl ConfigError {
    /// Names `variable` as holding `value`, which failed as `error` says.
    pub fn new(variable: impl Into<Cow<'static, str>>, value: &str, error: ParseError) -> Self {
        let mut quoted: String = value
            .chars()
            .take(MAX_QUOTED)
            .flat_map(char::escape_debug)
            .collect();
        if value.chars().count() > MAX_QUOTED {
            quoted.push_str("...");
        }
        ConfigError {
            variable: variable.into(),
            value: quoted,
            position: error.position,
            expected: error.expected,
        }
    }

    /// The variable (or builder setting) that held the value.
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// The value, escaped and truncated for display.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The 1-based character position of the problem within the value.
    pub fn position(&self) -> usize {
        self.position
    }

    /// What was expected at that position.
    pub fn expected(&self) -> &str {
        &self.expected
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}=\"{}\" at position {}: expected {}",
            self.variable, self.value, self.position, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Where variables come from: the process environment, or a map in tests.
pub trait EnvSource {
    /// The value of `name`, `Ok(None)` when it is not set. A value that is not
    /// valid Unicode is an error naming the variable.
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match std::env::var_os(name) {
            None => Ok(None),
            Some(os) => match os.into_string() {
                Ok(s) => Ok(Some(s)),
                Err(os) => {
                    let lossy = os.to_string_lossy();
                    let position = lossy.chars().position(|c| c == '\u{FFFD}').unwrap_or(0) + 1;
                    Err(ConfigError::new(
                        name.to_owned(),
                        &lossy,
                        ParseError::new(position, "valid UTF-8"),
                    ))
                }
            },
        }
    }
}

impl<S: EnvSource + ?Sized> EnvSource for &S {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        (**self).get(name)
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(HashMap::get(self, name).cloned())
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(BTreeMap::get(self, name).cloned())
    }
}

/// Typed access to configuration variables.
///
/// An empty value reads as unset, as the OpenTelemetry specification asks for
/// its own variables. Surrounding whitespace is ignored.
#[derive(Clone, Debug, Default)]
pub struct Env<S = ProcessEnv> {
    source: S,
}

impl Env<ProcessEnv> {
    /// Reads the process environment.
    pub fn process() -> Self {
        Env { source: ProcessEnv }
    }
}

impl Env<BTreeMap<String, String>> {
    /// Reads from the given pairs (tests, embedded defaults).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            source: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl<S: EnvSource> Env<S> {
    /// Reads from `source`.
    pub fn new(source: S) -> Self {
        Env { source }
    }

    /// The trimmed value of `name`, `None` when unset or empty.
    pub fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.source.get(name)?.and_then(|v| {
            let trimmed = v.trim();
            if trimmed.is_empty() {
                None
            } else if trimmed.len() == v.len() {
                Some(v)
            } else {
                Some(trimmed.to_owned())
            }
        }))
    }

    /// Whether any of `names` is set (to a value that is not empty or only
    /// whitespace, as [`Env::string`] reads it). Components use it for their
    /// `env::is_configured`; a value that is not valid Unicode is an error.
    ///
    /// ```
    /// use telltale_core::config::Env;
    ///
    /// let env = Env::from_pairs([("A", "1"), ("B", " ")]);
    /// assert!(env.any_set(&["X", "A"]).unwrap());
    /// assert!(!env.any_set(&["B", "C"]).unwrap());
    /// assert!(!env.any_set(&[]).unwrap());
    /// ```
    pub fn any_set(&self, names: &[&str]) -> Result<bool, ConfigError> {
        for name in names {
            if self.string(name)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Parses `name` with `parser`; the error names the variable.
    pub fn parse<T>(
        &self,
        name: &str,
        parser: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ConfigError> {
        match self.string(name)? {
            None => Ok(None),
            Some(value) => parser(&value)
                .map(Some)
                .map_err(|e| ConfigError::new(name.to_owned(), &value, e)),
        }
    }

    /// A duration such as `250ms`, `2s`, `1.5s` or `1m30s`; see [`parse_duration`].
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, ConfigError> {
        self.parse(name, parse_duration)
    }

    /// A fraction such as `5%` or `0.05`; see [`parse_percentage`].
    pub fn percentage(&self, name: &str) -> Result<Option<f64>, ConfigError> {
        self.parse(name, parse_percentage)
    }

    /// A boolean such as `true`, `off` or `1`; see [`parse_bool`].
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.parse(name, parse_bool)
    }

    /// A byte size such as `512`, `64KiB` or `1MB`; see [`parse_size`].
    pub fn size(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        self.parse(name, parse_size)
    }

    /// A non-negative integer.
    pub fn number<T: FromStr>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        self.parse(name, parse_number)
    }

    /// A comma-separated list of non-empty items; see [`parse_list`].
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        self.parse(name, |v| {
            Ok(parse_list(v)?.into_iter().map(str::to_owned).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_errors_name_the_variable_and_escape_the_value() {
        let env = Env::from_pairs([
            ("A", "  2s "),
            ("EMPTY", ""),
            ("CTRL", "1\u{1b}[31ms"),
            ("LONG", &"9".repeat(500)),
        ]);
        assert_eq!(env.duration("A").unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(env.duration("EMPTY").unwrap(), None);
        let err = env.duration("CTRL").unwrap_err();
        assert_eq!(err.variable(), "CTRL");
        assert_eq!(err.position(), 2);
        assert!(err.to_string().contains(r"1\u{1b}[31ms"), "{err}");
        let err = env.duration("LONG").unwrap_err();
        assert!(err.value().ends_with("..."));
        assert!(err.to_string().len() < 300);
        let list = Env::from_pairs([("L", "a,b")]);
        assert_eq!(
            list.list("L").unwrap(),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(list.number::<u8>("L").unwrap_err().position(), 1);
    }
}
