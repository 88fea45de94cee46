//! The circuit breaker's environment variables: `prefix` + a name below, the
//! prefix being [`DEFAULT_PREFIX`] unless the builder is given another one
//! ([`CircuitBreakerBuilder::env_with_prefix`]).
//!
//! [`VARS`] lists every variable the breaker reads (without prefix);
//! [`is_configured`] says whether any `TELLTALE_BREAKER_*` variable of [`VARS`]
//! is set in `env` (presets leave an unconfigured breaker out, or
//! [inert](super::CircuitBreaker::inert)).
//!
//! | variable | example | setting |
//! | --- | --- | --- |
//! | [`WINDOW`] | `100` (calls) or `60s` (time) | [`sliding_window`](CircuitBreakerBuilder::sliding_window) |
//! | [`WINDOW_BUCKETS`] | `10` | buckets of a time window (default 10) |
//! | [`FAILURE_RATE`] | `50%` | [`failure_rate_threshold`](CircuitBreakerBuilder::failure_rate_threshold) |
//! | [`SLOW_CALL_RATE`] | `80%` | [`slow_call_rate_threshold`](CircuitBreakerBuilder::slow_call_rate_threshold) |
//! | [`SLOW_CALL_DURATION`] | `2s` | [`slow_call_duration`](CircuitBreakerBuilder::slow_call_duration) |
//! | [`MINIMUM_CALLS`] | `20` | [`minimum_calls`](CircuitBreakerBuilder::minimum_calls) |
//! | [`OPEN_WAIT`] | `30s` | [`wait_in_open`](CircuitBreakerBuilder::wait_in_open) |
//! | [`OPEN_WAIT_MULTIPLIER`] | `2` | backoff multiplier ([`wait_backoff`](CircuitBreakerBuilder::wait_backoff)) |
//! | [`OPEN_WAIT_MAX`] | `5m` | backoff cap |
//! | [`OPEN_WAIT_JITTER`] | `10%` | [`wait_jitter`](CircuitBreakerBuilder::wait_jitter) |
//! | [`HALF_OPEN_PROBES`] | `5` | [`permitted_probes`](CircuitBreakerBuilder::permitted_probes) |
//! | [`PROBE_DEADLINE`] | `10s` | [`probe_deadline`](CircuitBreakerBuilder::probe_deadline) |
//! | [`FAILURE_STATUSES`] | `500-599,429` | HTTP statuses that fail (replaces the default's) |
//! | [`ABANDONED`] | `ignore`, `failure` | [`abandoned`](CircuitBreakerBuilder::abandoned) |
//! | [`STATE`] | `closed`, `disabled`, `metrics_only`, `forced_open` | [`initial_state`](CircuitBreakerBuilder::initial_state) |
//!
//! ```
//! use telltale_core::Env;
//! use telltale_resilience::breaker::env;
//!
//! let set = Env::from_pairs([("TELLTALE_BREAKER_FAILURE_RATE", "25%")]);
//! assert!(env::is_configured(&set));
//! assert!(!env::is_configured(&Env::from_pairs([("OTHER", "1")])));
//! assert!(env::VARS.contains(&env::FAILURE_RATE));
//! ```
//!
//! [`CircuitBreakerBuilder::env`] overlays the variables on settings made in
//! code; a malformed value is an error naming the variable:
//!
//! ```
//! use std::time::Duration;
//! use telltale_core::Env;
//! use telltale_resilience::CircuitBreaker;
//!
//! let env = Env::from_pairs([("TELLTALE_BREAKER_FAILURE_RATE", "25%"), ("TELLTALE_BREAKER_WINDOW", "30s")]);
//! let builder = CircuitBreaker::builder("db").wait_in_open(Duration::from_secs(5)).env(&env).unwrap();
//! assert!(builder.build().is_ok());
//!
//! let bad = Env::from_pairs([("TELLTALE_BREAKER_MINIMUM_CALLS", "ten")]);
//! let err = CircuitBreaker::builder("db").env(&bad).unwrap_err();
//! assert_eq!(err.config().unwrap().variable(), "TELLTALE_BREAKER_MINIMUM_CALLS");
//! ```

use telltale_core::config::{EnvSource, ParseError, parse_duration, parse_list_with, parse_number};
use telltale_core::{ConfigError, Env};

use super::config::{CircuitBreakerBuilder, SlidingWindow};
use super::{AbandonedPolicy, State};

telltale_core::env_vars! {
    /// The prefix of the variables read by [`CircuitBreakerBuilder::env`] and
    /// [`CircuitBreaker::from_env`](super::CircuitBreaker::from_env).
    @prefix DEFAULT_PREFIX = "TELLTALE_BREAKER_";
    /// `WINDOW`: the sliding window, a count of calls (`100`) or a duration (`60s`).
    WINDOW;
    /// `WINDOW_BUCKETS`: the buckets of a time window.
    WINDOW_BUCKETS;
    /// `FAILURE_RATE`: the failure rate threshold (`50%`, `0.5`).
    FAILURE_RATE;
    /// `SLOW_CALL_RATE`: the slow-call rate threshold.
    SLOW_CALL_RATE;
    /// `SLOW_CALL_DURATION`: calls at least this long are slow.
    SLOW_CALL_DURATION;
    /// `MINIMUM_CALLS`: calls needed before the rates are evaluated.
    MINIMUM_CALLS;
    /// `OPEN_WAIT`: the wait in open.
    OPEN_WAIT;
    /// `OPEN_WAIT_MULTIPLIER`: the backoff multiplier of the open wait (>= 1).
    OPEN_WAIT_MULTIPLIER;
    /// `OPEN_WAIT_MAX`: the backoff cap of the open wait.
    OPEN_WAIT_MAX;
    /// `OPEN_WAIT_JITTER`: the jitter of the open wait (`10%`).
    OPEN_WAIT_JITTER;
    /// `HALF_OPEN_PROBES`: the probes permitted in half-open.
    HALF_OPEN_PROBES;
    /// `PROBE_DEADLINE`: the longest time half-open waits for its probes.
    PROBE_DEADLINE;
    /// `FAILURE_STATUSES`: the HTTP statuses that fail (`500-599,429`).
    FAILURE_STATUSES;
    /// `ABANDONED`: what an abandoned call counts as (`ignore`, `failure`).
    ABANDONED;
    /// `STATE`: the initial state (`closed`, `disabled`, `metrics_only`, `forced_open`).
    STATE;
}

/// Overlays the variables set in `env` (under `prefix`) on `b`.
pub(super) fn apply<S: EnvSource>(
    mut b: CircuitBreakerBuilder,
    env: &Env<S>,
    prefix: &str,
) -> Result<CircuitBreakerBuilder, ConfigError> {
    let var = |name: &str| format!("{prefix}{name}");
    let buckets = env.number::<u32>(&var(WINDOW_BUCKETS))?;
    if let Some(window) = env.parse(&var(WINDOW), |v| {
        if v.bytes().all(|b| b.is_ascii_digit()) {
            parse_number::<u32>(v).map(SlidingWindow::Count)
        } else {
            parse_duration(v).map(|duration| SlidingWindow::Time {
                duration,
                buckets: buckets.unwrap_or(10),
            })
        }
    })? {
        b.window = window;
    } else if let (Some(buckets), SlidingWindow::Time { duration, .. }) = (buckets, b.window) {
        b.window = SlidingWindow::Time { duration, buckets };
    }
    if let Some(v) = env.percentage(&var(FAILURE_RATE))? {
        b.failure_rate = v;
    }
    if let Some(v) = env.percentage(&var(SLOW_CALL_RATE))? {
        b.slow_call_rate = v;
    }
    if let Some(v) = env.duration(&var(SLOW_CALL_DURATION))? {
        b.slow_call_duration = v;
    }
    if let Some(v) = env.number(&var(MINIMUM_CALLS))? {
        b.minimum_calls = v;
    }
    if let Some(v) = env.duration(&var(OPEN_WAIT))? {
        b = b.wait_in_open(v);
    }
    if let Some(v) = env.parse(&var(OPEN_WAIT_MULTIPLIER), |v| {
        v.parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && *m >= 1.0)
            .ok_or_else(|| ParseError::new(1, "a number >= 1"))
    })? {
        b.wait_multiplier = v;
    }
    if let Some(v) = env.duration(&var(OPEN_WAIT_MAX))? {
        b.wait_max = v;
    }
    if let Some(v) = env.percentage(&var(OPEN_WAIT_JITTER))? {
        b.wait_jitter = v;
    }
    if let Some(v) = env.number(&var(HALF_OPEN_PROBES))? {
        b.probes = v;
    }
    if let Some(v) = env.duration(&var(PROBE_DEADLINE))? {
        b.probe_deadline = v;
    }
    if let Some(ranges) = env.parse(&var(FAILURE_STATUSES), |v| {
        parse_list_with(v, |item| {
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            let a: u16 = parse_number(a.trim())?;
            let b: u16 = parse_number(b.trim()).map_err(|e| e.shifted(a.to_string().len() + 1))?;
            if !(100..=599).contains(&a) || !(a..=599).contains(&b) {
                return Err(ParseError::new(1, "a status or range within 100-599"));
            }
            Ok(a..=b)
        })
    })? {
        let mut policy = b.policy.status_range(100..=599, false);
        for r in ranges {
            policy = policy.status_range(r, true);
        }
        b.policy = policy;
    }
    if let Some(v) = env.parse(&var(ABANDONED), |v| match v {
        "ignore" => Ok(AbandonedPolicy::Ignore),
        "failure" => Ok(AbandonedPolicy::Failure),
        _ => Err(ParseError::new(1, "`ignore` or `failure`")),
    })? {
        b.abandoned = v;
    }
    if let Some(v) = env.parse(&var(STATE), |v| match v {
        "closed" => Ok(State::Closed),
        "disabled" => Ok(State::Disabled),
        "metrics_only" => Ok(State::MetricsOnly),
        "forced_open" => Ok(State::ForcedOpen),
        _ => Err(ParseError::new(
            1,
            "`closed`, `disabled`, `metrics_only` or `forced_open`",
        )),
    })? {
        b.initial = v;
    }
    Ok(b)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use http::StatusCode;

    use super::*;

    #[test]
    fn env_variables() {
        let env = Env::from_pairs([
            ("X_WINDOW", "20s"),
            ("X_WINDOW_BUCKETS", "4"),
            ("X_FAILURE_RATE", "25%"),
            ("X_SLOW_CALL_RATE", "0.5"),
            ("X_SLOW_CALL_DURATION", "250ms"),
            ("X_MINIMUM_CALLS", "7"),
            ("X_OPEN_WAIT", "2s"),
            ("X_OPEN_WAIT_MULTIPLIER", "2"),
            ("X_OPEN_WAIT_MAX", "1m"),
            ("X_OPEN_WAIT_JITTER", "10%"),
            ("X_HALF_OPEN_PROBES", "3"),
            ("X_PROBE_DEADLINE", "5s"),
            ("X_FAILURE_STATUSES", "500-599, 429"),
            ("X_ABANDONED", "failure"),
            ("X_STATE", "metrics_only"),
        ]);
        let b = CircuitBreakerBuilder::new("t")
            .env_with_prefix(&env, "X_")
            .unwrap();
        assert_eq!(
            b.window,
            SlidingWindow::Time {
                duration: Duration::from_secs(20),
                buckets: 4
            }
        );
        assert_eq!(b.failure_rate, 0.25);
        assert_eq!(b.slow_call_rate, 0.5);
        assert_eq!(b.slow_call_duration, Duration::from_millis(250));
        assert_eq!(b.minimum_calls, 7);
        assert_eq!(b.wait, Duration::from_secs(2));
        assert_eq!(b.wait_multiplier, 2.0);
        assert_eq!(b.wait_max, Duration::from_secs(60));
        assert_eq!(b.wait_jitter, 0.1);
        assert_eq!(b.probes, 3);
        assert_eq!(b.probe_deadline, Duration::from_secs(5));
        assert!(b.policy.is_failure_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(b.policy.is_failure_status(StatusCode::BAD_GATEWAY));
        assert!(!b.policy.is_failure_status(StatusCode::NOT_FOUND));
        assert_eq!(b.abandoned, AbandonedPolicy::Failure);
        assert_eq!(b.initial, State::MetricsOnly);
        assert!(b.build().is_ok());
    }

    #[test]
    fn env_errors_name_the_variable() {
        for (var, value) in [
            ("X_WINDOW", "ten"),
            ("X_FAILURE_RATE", "150%x"),
            ("X_FAILURE_STATUSES", "500-abc"),
            ("X_STATE", "half_open"),
            ("X_OPEN_WAIT_MULTIPLIER", "0.5"),
        ] {
            let err = CircuitBreakerBuilder::new("t")
                .env_with_prefix(&Env::from_pairs([(var, value)]), "X_")
                .unwrap_err();
            assert_eq!(err.config().unwrap().variable(), var);
        }
    }
}
