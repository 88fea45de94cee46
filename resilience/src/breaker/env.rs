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
//! | [`COUNT_REJECTIONS`] | `false` (default), `true` | [`count_rejections`](CircuitBreakerBuilder::count_rejections) |
//!
//! Every value has a bounded range; a value outside it is an error naming the
//! variable, quoting the value and stating the range:
//!
//! | variable | allowed |
//! | --- | --- |
//! | [`WINDOW`] | a count 1 ..= 10 000, or a duration 1 s ..= 1 h |
//! | [`WINDOW_BUCKETS`] | 1 ..= 120, with a time window only |
//! | [`FAILURE_RATE`], [`SLOW_CALL_RATE`] | above 0 up to 100% |
//! | [`SLOW_CALL_DURATION`], [`OPEN_WAIT`], [`PROBE_DEADLINE`] | 1 ms ..= 1 h |
//! | [`MINIMUM_CALLS`] | 1 ..= 10 000 |
//! | [`OPEN_WAIT_MULTIPLIER`] | 1 ..= 100 |
//! | [`OPEN_WAIT_MAX`] | 1 ms ..= 24 h, and at least the open wait |
//! | [`OPEN_WAIT_JITTER`] | 0 ..= 100% |
//! | [`HALF_OPEN_PROBES`] | 1 ..= 4095 |
//! | [`FAILURE_STATUSES`] | statuses or ranges within 100-599 (600-999, codes no client can interpret, always fail) |
//! | [`ABANDONED`], [`STATE`], [`COUNT_REJECTIONS`] | the values above |
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

use std::time::Duration;

use telltale_core::config::{EnvSource, ParseError, parse_list_with, parse_number};
use telltale_core::{ConfigError, Env};

use super::config::{CircuitBreakerBuilder, MAX_PROBES, SlidingWindow};
use super::window::{MAX_BUCKETS, MAX_COUNT_WINDOW};
use super::{AbandonedPolicy, State};
use crate::env_range::{check_duration, check_number, duration_in, fraction, number_in, show};

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
    /// `COUNT_REJECTIONS`: whether rejections by guards inside the breaker (a
    /// full bulkhead) count as failures (default `false`; see
    /// [`count_rejections`](CircuitBreakerBuilder::count_rejections)).
    COUNT_REJECTIONS;
}

/// The longest time window ([`WINDOW`]).
pub const MAX_WINDOW_DURATION: Duration = Duration::from_secs(3600);
/// The shortest time window ([`WINDOW`]).
pub const MIN_WINDOW_DURATION: Duration = Duration::from_secs(1);
/// The longest duration of [`SLOW_CALL_DURATION`], [`OPEN_WAIT`] and
/// [`PROBE_DEADLINE`].
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The longest [`OPEN_WAIT_MAX`].
pub const MAX_OPEN_WAIT_MAX: Duration = Duration::from_secs(24 * 3600);
/// The largest [`OPEN_WAIT_MULTIPLIER`].
pub const MAX_MULTIPLIER: f64 = 100.0;

/// Overlays the variables set in `env` (under `prefix`) on `b`, each checked
/// against its range (the module docs' table), so that an error names the
/// variable the user set rather than a builder setting.
pub(super) fn apply<S: EnvSource>(
    mut b: CircuitBreakerBuilder,
    env: &Env<S>,
    prefix: &str,
) -> Result<CircuitBreakerBuilder, ConfigError> {
    let var = |name: &str| format!("{prefix}{name}");
    let ms = Duration::from_millis(1);
    let buckets_var = var(WINDOW_BUCKETS);
    let buckets = number_in::<_, u32>(env, &buckets_var, 1, MAX_BUCKETS)?;
    if let Some(window) = env.parse(&var(WINDOW), |v| {
        if v.bytes().all(|b| b.is_ascii_digit()) {
            check_number::<u32>(v, 1, MAX_COUNT_WINDOW).map(SlidingWindow::Count)
        } else {
            check_duration(v, MIN_WINDOW_DURATION, MAX_WINDOW_DURATION)
                .map_err(|e| {
                    ParseError::new(
                        e.position(),
                        format!(
                            "a count of calls from 1 to {MAX_COUNT_WINDOW}, or {}",
                            e.expected()
                        ),
                    )
                })
                .map(|duration| SlidingWindow::Time {
                    duration,
                    buckets: buckets.unwrap_or(10),
                })
        }
    })? {
        b.window = window;
    }
    if let Some(n) = buckets {
        match b.window {
            SlidingWindow::Time { duration, .. } => {
                b.window = SlidingWindow::Time {
                    duration,
                    buckets: n,
                };
            }
            SlidingWindow::Count(_) => {
                return Err(ConfigError::new(
                    buckets_var,
                    &n.to_string(),
                    ParseError::new(
                        1,
                        format!(
                            "no value: buckets apply to a time window only, and {} is a count of calls",
                            var(WINDOW)
                        ),
                    ),
                ));
            }
        }
    }
    if let Some(v) = fraction(env, &var(FAILURE_RATE), false)? {
        b.failure_rate = v;
    }
    if let Some(v) = fraction(env, &var(SLOW_CALL_RATE), false)? {
        b.slow_call_rate = v;
    }
    if let Some(v) = duration_in(env, &var(SLOW_CALL_DURATION), ms, MAX_DURATION)? {
        b.slow_call_duration = v;
    }
    if let Some(v) = number_in(env, &var(MINIMUM_CALLS), 1, MAX_COUNT_WINDOW)? {
        b.minimum_calls = v;
    }
    if let Some(v) = duration_in(env, &var(OPEN_WAIT), ms, MAX_DURATION)? {
        b = b.wait_in_open(v);
    }
    if let Some(v) = env.parse(&var(OPEN_WAIT_MULTIPLIER), |v| {
        v.parse::<f64>()
            .ok()
            .filter(|m| (1.0..=MAX_MULTIPLIER).contains(m))
            .ok_or_else(|| ParseError::new(1, format!("a number from 1 to {MAX_MULTIPLIER}")))
    })? {
        b.wait_multiplier = v;
    }
    let wait_max_var = var(OPEN_WAIT_MAX);
    if let Some(v) = duration_in(env, &wait_max_var, ms, MAX_OPEN_WAIT_MAX)? {
        if v < b.wait {
            return Err(ConfigError::new(
                wait_max_var,
                &show(v),
                ParseError::new(
                    1,
                    format!(
                        "a duration of at least the open wait ({}) and at most {}",
                        show(b.wait),
                        show(MAX_OPEN_WAIT_MAX)
                    ),
                ),
            ));
        }
        b.wait_max = v;
    }
    if let Some(v) = fraction(env, &var(OPEN_WAIT_JITTER), true)? {
        b.wait_jitter = v;
    }
    if let Some(v) = number_in(env, &var(HALF_OPEN_PROBES), 1, MAX_PROBES)? {
        b.probes = v;
    }
    if let Some(v) = duration_in(env, &var(PROBE_DEADLINE), ms, MAX_DURATION)? {
        b.probe_deadline = v;
    }
    if let Some(ranges) = env.parse(&var(FAILURE_STATUSES), |v| {
        parse_list_with(v, |item| {
            let expected = "a status or range within 100-599 (such as 500-599,429)";
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            let a: u16 =
                parse_number(a.trim()).map_err(|e| ParseError::new(e.position(), expected))?;
            let b: u16 = parse_number(b.trim()).map_err(|e| {
                ParseError::new(e.position(), expected).shifted(a.to_string().len() + 1)
            })?;
            if !(100..=599).contains(&a) || !(a..=599).contains(&b) {
                return Err(ParseError::new(1, expected));
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
    if let Some(v) = env.boolean(&var(COUNT_REJECTIONS))? {
        b.count_rejections = v;
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
