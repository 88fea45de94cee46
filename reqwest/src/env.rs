//! The environment variables of [`ReqwestStack::from_env`](crate::ReqwestStack::from_env)
//! that are its own. It also reads every variable of the crates it composes,
//! through their own parsers: `TELLTALE_HTTP_CLIENT_*` and the metrics
//! variables (telemetry), `TELLTALE_CORRELATION_CLIENT_*` (correlation),
//! `TELLTALE_BREAKER_*` and `TELLTALE_BULKHEAD_*` (resilience: the template
//! of the per-host instances) and `TELLTALE_CHAOS*` (chaos).
//!
//! | variable | allowed | default |
//! | --- | --- | --- |
//! | [`TIMEOUT`] | a duration from 1 ms to 1 h | 30 s ([`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT)) |
//! | [`MAX_HOSTS`] | 1 ..= 10 000 | 100 ([`DEFAULT_MAX_HOSTS`](crate::DEFAULT_MAX_HOSTS)) |
//!
//! A value outside its range is an error naming the variable, quoting the
//! value and stating what is allowed:
//!
//! ```
//! use telltale_core::config::Env;
//! use telltale_reqwest::{ReqwestStack, env};
//!
//! let err = ReqwestStack::from_env_source(&Env::from_pairs([(env::TIMEOUT, "2h")]), "payments").unwrap_err();
//! assert!(err.to_string().contains("TELLTALE_REQWEST_TIMEOUT"), "{err}");
//! assert!(env::is_configured(&Env::from_pairs([(env::MAX_HOSTS, "8")])));
//! ```

use std::time::Duration;

use telltale_core::config::{
    ConfigError, Env, EnvSource, ParseError, parse_duration, parse_number,
};

telltale_core::env_vars! {
    /// `TELLTALE_REQWEST_TIMEOUT`: the time allowed for a response's head
    /// (a duration from 1 ms to 1 h), counted as a breaker failure when it
    /// elapses.
    TIMEOUT = "TELLTALE_REQWEST_TIMEOUT";
    /// `TELLTALE_REQWEST_MAX_HOSTS`: the most hosts that get a breaker and a
    /// bulkhead of their own (1 to 10 000); further hosts share the overflow
    /// instance until idle ones are evicted.
    MAX_HOSTS = "TELLTALE_REQWEST_MAX_HOSTS";
}

/// The shortest [`TIMEOUT`].
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// The longest [`TIMEOUT`].
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The largest [`MAX_HOSTS`].
pub const MAX_MAX_HOSTS: usize = 10_000;

/// [`TIMEOUT`]: 1 ms ..= 1 h.
pub(crate) fn timeout<S: EnvSource>(env: &Env<S>) -> Result<Option<Duration>, ConfigError> {
    env.parse(TIMEOUT, |v| {
        let expected = "a duration from 1ms to 1h (such as 2s or 500ms)";
        let d = parse_duration(v).map_err(|e| ParseError::new(e.position(), expected))?;
        if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&d) {
            Ok(d)
        } else {
            Err(ParseError::new(1, expected))
        }
    })
}

/// [`MAX_HOSTS`]: 1 ..= 10 000.
pub(crate) fn max_hosts<S: EnvSource>(env: &Env<S>) -> Result<Option<usize>, ConfigError> {
    env.parse(MAX_HOSTS, |v| {
        let expected = "a number of hosts from 1 to 10000";
        let n: usize = parse_number(v).map_err(|e| ParseError::new(e.position(), expected))?;
        if (1..=MAX_MAX_HOSTS).contains(&n) {
            Ok(n)
        } else {
            Err(ParseError::new(1, expected))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_range_are_read_and_others_name_the_variable() {
        let env = Env::from_pairs([(TIMEOUT, "250ms"), (MAX_HOSTS, "8")]);
        assert_eq!(timeout(&env).unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(max_hosts(&env).unwrap(), Some(8));
        assert_eq!(timeout(&Env::from_pairs([("OTHER", "1")])).unwrap(), None);
        for (var, value) in [
            (TIMEOUT, "0s"),
            (TIMEOUT, "2h"),
            (TIMEOUT, "soon"),
            (MAX_HOSTS, "0"),
            (MAX_HOSTS, "10001"),
            (MAX_HOSTS, "-1"),
        ] {
            let env = Env::from_pairs([(var, value)]);
            let err = if var == TIMEOUT {
                timeout(&env).unwrap_err()
            } else {
                max_hosts(&env).map(|_| None::<Duration>).unwrap_err()
            };
            assert_eq!(err.variable(), var);
            let text = err.to_string();
            assert!(text.contains(value), "{text}");
            assert!(text.contains("from 1"), "{text}");
        }
    }
}
