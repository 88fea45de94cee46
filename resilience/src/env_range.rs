//! Bounded parsing of this crate's variables: every value is checked against
//! an explicit range, and a value out of it is a [`ConfigError`] naming the
//! variable, quoting the value and stating the range. Written here rather
//! than in `telltale_core::config` because the ranges are this crate's: core
//! parses the syntax, this module adds the bounds.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use telltale_core::config::{
    EnvSource, ParseError, parse_duration, parse_number, parse_percentage,
};
use telltale_core::{ConfigError, Env};

/// A whole number in `min..=max`.
pub(crate) fn number_in<S, T>(
    env: &Env<S>,
    name: &str,
    min: T,
    max: T,
) -> Result<Option<T>, ConfigError>
where
    S: EnvSource,
    T: FromStr + PartialOrd + Display + Copy,
{
    env.parse(name, |v| check_number(v, min, max))
}

/// [`number_in`] on a value already read.
pub(crate) fn check_number<T>(v: &str, min: T, max: T) -> Result<T, ParseError>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    let expected = || format!("a whole number from {min} to {max}");
    let n: T = parse_number(v).map_err(|e| ParseError::new(e.position(), expected()))?;
    if n < min || n > max {
        return Err(ParseError::new(1, expected()));
    }
    Ok(n)
}

/// A duration in `min..=max` (`min` zero: `0` allowed).
pub(crate) fn duration_in<S: EnvSource>(
    env: &Env<S>,
    name: &str,
    min: Duration,
    max: Duration,
) -> Result<Option<Duration>, ConfigError> {
    env.parse(name, |v| check_duration(v, min, max))
}

/// [`duration_in`] on a value already read.
pub(crate) fn check_duration(
    v: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ParseError> {
    let expected = || {
        format!(
            "a duration from {} to {} (such as 250ms, 2s or 1m30s)",
            show(min),
            show(max)
        )
    };
    let d = parse_duration(v).map_err(|e| ParseError::new(e.position(), expected()))?;
    if d < min || d > max {
        return Err(ParseError::new(1, expected()));
    }
    Ok(d)
}

/// A fraction of one: in `(0, 1]` when `zero` is false, `[0, 1]` when true.
pub(crate) fn fraction<S: EnvSource>(
    env: &Env<S>,
    name: &str,
    zero: bool,
) -> Result<Option<f64>, ConfigError> {
    env.parse(name, |v| {
        let expected = || {
            if zero {
                "a fraction from 0 to 1 (0% to 100%, such as 10% or 0.1)"
            } else {
                "a fraction above 0 and at most 1 (above 0% up to 100%, such as 50% or 0.5)"
            }
        };
        let f = parse_percentage(v).map_err(|e| ParseError::new(e.position(), expected()))?;
        if !(0.0..=1.0).contains(&f) || (!zero && f == 0.0) {
            return Err(ParseError::new(1, expected()));
        }
        Ok(f)
    })
}

/// A duration as a user writes it (`0`, `250ms`, `30s`, `5m`, `1h`).
pub(crate) fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 && d.is_zero() {
        "0".to_owned()
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms > 0 {
        format!("{ms}ms")
    } else {
        format!("{}us", d.as_micros())
    }
}
