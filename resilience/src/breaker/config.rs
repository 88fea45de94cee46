//! The circuit breaker's builder and its environment variables.

use std::sync::Arc;
use std::time::Duration;

use telltale_core::config::{EnvSource, ParseError, parse_list_with, parse_number};
use telltale_core::{ConfigError, Env, FailurePolicy};

use super::state::{Params, State, WaitParams};
use super::window::{Kind, MAX_BUCKETS, MAX_COUNT_WINDOW};
use super::{AbandonedPolicy, CircuitBreaker};
use crate::error::BuildError;

/// The sliding window the failure and slow-call rates are measured over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlidingWindow {
    /// The last `n` calls (1 ..= 10 000).
    Count(u32),
    /// The calls of the last `duration`, in `buckets` time buckets (1 ..= 120):
    /// the window slides by one bucket at a time. At most `min(4095, 32000 /
    /// buckets)` calls are sampled per bucket; the rest of a busy bucket's calls
    /// are not counted (the rates stay representative).
    Time {
        /// The window's length.
        duration: Duration,
        /// How many buckets it is cut into.
        buckets: u32,
    },
}

/// Builds a [`CircuitBreaker`]. Every setter says its default.
///
/// ```
/// use std::time::Duration;
/// use telltale_resilience::{CircuitBreaker, SlidingWindow};
///
/// let breaker = CircuitBreaker::builder("payments")
///     .sliding_window(SlidingWindow::Count(50))
///     .failure_rate_threshold(0.25)
///     .minimum_calls(20)
///     .wait_in_open(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(breaker.name(), "payments");
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct CircuitBreakerBuilder {
    pub(crate) name: Arc<str>,
    window: SlidingWindow,
    failure_rate: f64,
    slow_call_rate: f64,
    slow_call_duration: Duration,
    minimum_calls: u32,
    wait: Duration,
    wait_max: Duration,
    wait_multiplier: f64,
    wait_jitter: f64,
    probes: u32,
    probe_deadline: Duration,
    pub(crate) policy: FailurePolicy,
    pub(crate) abandoned: AbandonedPolicy,
    initial: State,
    pub(crate) metric_prefix: Arc<str>,
    pub(crate) event_capacity: usize,
}

/// The default metric prefix.
pub const DEFAULT_PREFIX: &str = "telltale_";

impl CircuitBreakerBuilder {
    pub(crate) fn new(name: impl Into<Arc<str>>) -> Self {
        CircuitBreakerBuilder {
            name: name.into(),
            window: SlidingWindow::Count(100),
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_duration: Duration::from_secs(60),
            minimum_calls: 100,
            wait: Duration::from_secs(60),
            wait_max: Duration::from_secs(60),
            wait_multiplier: 1.0,
            wait_jitter: 0.0,
            probes: 10,
            probe_deadline: Duration::from_secs(60),
            policy: FailurePolicy::default(),
            abandoned: AbandonedPolicy::Ignore,
            initial: State::Closed,
            metric_prefix: DEFAULT_PREFIX.into(),
            event_capacity: 64,
        }
    }

    pub(crate) fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The window rates are measured over. Defaults to the last 100 calls.
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// Failure rate (0 < r <= 1) at which the breaker opens. Defaults to `0.5`.
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        self.failure_rate = rate;
        self
    }

    /// Slow-call rate (0 < r <= 1) at which the breaker opens. Defaults to `1.0`.
    pub fn slow_call_rate_threshold(mut self, rate: f64) -> Self {
        self.slow_call_rate = rate;
        self
    }

    /// Calls at least this long are slow. Defaults to 60 s.
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.slow_call_duration = duration;
        self
    }

    /// Calls needed in the window before the rates are evaluated. Defaults to 100.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Wait in open before probes may pass. Defaults to 60 s.
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.wait = wait;
        if self.wait_max < wait {
            self.wait_max = wait;
        }
        self
    }

    /// Exponential backoff of the open wait: each re-open without a close in
    /// between multiplies the wait by `multiplier`, up to `max`. Defaults to no
    /// backoff (multiplier 1).
    pub fn wait_backoff(mut self, multiplier: f64, max: Duration) -> Self {
        self.wait_multiplier = multiplier;
        self.wait_max = max;
        self
    }

    /// Random jitter of the open wait, a fraction (0 ..= 1): the wait is scaled
    /// by a factor in `1 - jitter ..= 1 + jitter`. Defaults to 0.
    pub fn wait_jitter(mut self, jitter: f64) -> Self {
        self.wait_jitter = jitter;
        self
    }

    /// Probe calls permitted in half-open (1 ..= 4095). Defaults to 10.
    pub fn permitted_probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// Longest time half-open waits for its probes; when it passes with a probe
    /// still out (or never admitted), the breaker re-opens instead of staying
    /// wedged. Defaults to 60 s.
    pub fn probe_deadline(mut self, deadline: Duration) -> Self {
        self.probe_deadline = deadline;
        self
    }

    /// Which outcomes count as failures. Defaults to [`FailurePolicy::default`]
    /// (5xx, gRPC server errors, errors, timeouts).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// What a call that is dropped before its result counts as. Defaults to
    /// [`AbandonedPolicy::Ignore`].
    pub fn abandoned(mut self, policy: AbandonedPolicy) -> Self {
        self.abandoned = policy;
        self
    }

    /// The state the breaker starts in: `Closed`, `Disabled`, `MetricsOnly` or
    /// `ForcedOpen`. Defaults to `Closed`.
    pub fn initial_state(mut self, state: State) -> Self {
        self.initial = state;
        self
    }

    /// Prefix of every metric name. Defaults to [`DEFAULT_PREFIX`] (`telltale_`).
    pub fn metric_prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.metric_prefix = prefix.into();
        self
    }

    /// Events buffered per subscriber before the slowest one lags. Defaults to 64.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Reads `TELLTALE_BREAKER_*` variables from the process environment on top
    /// of this builder; see [`CircuitBreakerBuilder::from_env_source`].
    pub fn from_env(self) -> Result<Self, ConfigError> {
        self.from_env_source(&Env::process(), "TELLTALE_BREAKER_")
    }

    /// Reads variables named `prefix` + the names below from `env`; unset ones
    /// keep the builder's value.
    ///
    /// | variable | example | setting |
    /// | --- | --- | --- |
    /// | `WINDOW` | `100` (calls) or `60s` (time) | [`sliding_window`](Self::sliding_window) |
    /// | `WINDOW_BUCKETS` | `10` | buckets of a time window (default 10) |
    /// | `FAILURE_RATE` | `50%` | [`failure_rate_threshold`](Self::failure_rate_threshold) |
    /// | `SLOW_CALL_RATE` | `80%` | [`slow_call_rate_threshold`](Self::slow_call_rate_threshold) |
    /// | `SLOW_CALL_DURATION` | `2s` | [`slow_call_duration`](Self::slow_call_duration) |
    /// | `MINIMUM_CALLS` | `20` | [`minimum_calls`](Self::minimum_calls) |
    /// | `OPEN_WAIT` | `30s` | [`wait_in_open`](Self::wait_in_open) |
    /// | `OPEN_WAIT_MULTIPLIER` | `2` | backoff multiplier ([`wait_backoff`](Self::wait_backoff)) |
    /// | `OPEN_WAIT_MAX` | `5m` | backoff cap |
    /// | `OPEN_WAIT_JITTER` | `10%` | [`wait_jitter`](Self::wait_jitter) |
    /// | `HALF_OPEN_PROBES` | `5` | [`permitted_probes`](Self::permitted_probes) |
    /// | `PROBE_DEADLINE` | `10s` | [`probe_deadline`](Self::probe_deadline) |
    /// | `FAILURE_STATUSES` | `500-599,429` | HTTP statuses that fail (replaces the default's) |
    /// | `ABANDONED` | `ignore`, `failure` | [`abandoned`](Self::abandoned) |
    /// | `STATE` | `closed`, `disabled`, `metrics_only`, `forced_open` | [`initial_state`](Self::initial_state) |
    ///
    /// ```
    /// use telltale_core::Env;
    /// use telltale_resilience::CircuitBreaker;
    ///
    /// let env = Env::from_pairs([("TELLTALE_BREAKER_FAILURE_RATE", "25%"), ("TELLTALE_BREAKER_WINDOW", "30s")]);
    /// let builder = CircuitBreaker::builder("db").from_env_source(&env, "TELLTALE_BREAKER_").unwrap();
    /// assert!(builder.build().is_ok());
    ///
    /// let bad = Env::from_pairs([("TELLTALE_BREAKER_MINIMUM_CALLS", "ten")]);
    /// let err = CircuitBreaker::builder("db").from_env_source(&bad, "TELLTALE_BREAKER_").unwrap_err();
    /// assert_eq!(err.variable(), "TELLTALE_BREAKER_MINIMUM_CALLS");
    /// ```
    pub fn from_env_source<S: EnvSource>(
        mut self,
        env: &Env<S>,
        prefix: &str,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| format!("{prefix}{name}");
        let buckets = env.number::<u32>(&var("WINDOW_BUCKETS"))?;
        if let Some(window) = env.parse(&var("WINDOW"), |v| {
            if v.bytes().all(|b| b.is_ascii_digit()) {
                parse_number::<u32>(v).map(SlidingWindow::Count)
            } else {
                telltale_core::config::parse_duration(v).map(|duration| SlidingWindow::Time {
                    duration,
                    buckets: buckets.unwrap_or(10),
                })
            }
        })? {
            self.window = window;
        } else if let (Some(b), SlidingWindow::Time { duration, .. }) = (buckets, self.window) {
            self.window = SlidingWindow::Time {
                duration,
                buckets: b,
            };
        }
        if let Some(v) = env.percentage(&var("FAILURE_RATE"))? {
            self.failure_rate = v;
        }
        if let Some(v) = env.percentage(&var("SLOW_CALL_RATE"))? {
            self.slow_call_rate = v;
        }
        if let Some(v) = env.duration(&var("SLOW_CALL_DURATION"))? {
            self.slow_call_duration = v;
        }
        if let Some(v) = env.number(&var("MINIMUM_CALLS"))? {
            self.minimum_calls = v;
        }
        if let Some(v) = env.duration(&var("OPEN_WAIT"))? {
            self = self.wait_in_open(v);
        }
        if let Some(v) = env.parse(&var("OPEN_WAIT_MULTIPLIER"), |v| {
            v.parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && *m >= 1.0)
                .ok_or_else(|| ParseError::new(1, "a number >= 1"))
        })? {
            self.wait_multiplier = v;
        }
        if let Some(v) = env.duration(&var("OPEN_WAIT_MAX"))? {
            self.wait_max = v;
        }
        if let Some(v) = env.percentage(&var("OPEN_WAIT_JITTER"))? {
            self.wait_jitter = v;
        }
        if let Some(v) = env.number(&var("HALF_OPEN_PROBES"))? {
            self.probes = v;
        }
        if let Some(v) = env.duration(&var("PROBE_DEADLINE"))? {
            self.probe_deadline = v;
        }
        if let Some(ranges) = env.parse(&var("FAILURE_STATUSES"), |v| {
            parse_list_with(v, |item| {
                let (a, b) = item.split_once('-').unwrap_or((item, item));
                let a: u16 = parse_number(a.trim())?;
                let b: u16 =
                    parse_number(b.trim()).map_err(|e| e.shifted(a.to_string().len() + 1))?;
                if !(100..=599).contains(&a) || !(a..=599).contains(&b) {
                    return Err(ParseError::new(1, "a status or range within 100-599"));
                }
                Ok(a..=b)
            })
        })? {
            let mut policy = self.policy.status_range(100..=599, false);
            for r in ranges {
                policy = policy.status_range(r, true);
            }
            self.policy = policy;
        }
        if let Some(v) = env.parse(&var("ABANDONED"), |v| match v {
            "ignore" => Ok(AbandonedPolicy::Ignore),
            "failure" => Ok(AbandonedPolicy::Failure),
            _ => Err(ParseError::new(1, "`ignore` or `failure`")),
        })? {
            self.abandoned = v;
        }
        if let Some(v) = env.parse(&var("STATE"), |v| match v {
            "closed" => Ok(State::Closed),
            "disabled" => Ok(State::Disabled),
            "metrics_only" => Ok(State::MetricsOnly),
            "forced_open" => Ok(State::ForcedOpen),
            _ => Err(ParseError::new(
                1,
                "`closed`, `disabled`, `metrics_only` or `forced_open`",
            )),
        })? {
            self.initial = v;
        }
        Ok(self)
    }

    pub(crate) fn slow_nanos(&self) -> u64 {
        nanos(self.slow_call_duration)
    }

    pub(crate) fn initial(&self) -> State {
        self.initial
    }

    /// Checks the settings and builds the breaker.
    pub fn build(self) -> Result<CircuitBreaker, BuildError> {
        let (kind, params) = self.validate()?;
        Ok(CircuitBreaker::from_parts(self, kind, params))
    }

    pub(crate) fn validate(&self) -> Result<(Kind, Params), BuildError> {
        let rate_ok = |r: f64| r > 0.0 && r <= 1.0;
        if !rate_ok(self.failure_rate) {
            return Err(BuildError::invalid(
                "failure_rate_threshold",
                "must be in (0, 1]",
            ));
        }
        if !rate_ok(self.slow_call_rate) {
            return Err(BuildError::invalid(
                "slow_call_rate_threshold",
                "must be in (0, 1]",
            ));
        }
        if self.probes == 0 || self.probes > 4095 {
            return Err(BuildError::invalid(
                "permitted_probes",
                "must be in 1..=4095",
            ));
        }
        if !(self.wait_multiplier.is_finite() && self.wait_multiplier >= 1.0) {
            return Err(BuildError::invalid(
                "wait_backoff",
                "multiplier must be >= 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.wait_jitter) {
            return Err(BuildError::invalid("wait_jitter", "must be in [0, 1]"));
        }
        if matches!(self.initial, State::Open | State::HalfOpen) {
            return Err(BuildError::invalid(
                "initial_state",
                "must be closed, disabled, metrics_only or forced_open",
            ));
        }
        let kind = match self.window {
            SlidingWindow::Count(n) => {
                if n == 0 || n > MAX_COUNT_WINDOW {
                    return Err(BuildError::invalid(
                        "sliding_window",
                        "count must be in 1..=10000",
                    ));
                }
                Kind::Count { size: u64::from(n) }
            }
            SlidingWindow::Time { duration, buckets } => {
                if buckets == 0 || buckets > MAX_BUCKETS {
                    return Err(BuildError::invalid(
                        "sliding_window",
                        "buckets must be in 1..=120",
                    ));
                }
                let bucket_nanos = nanos(duration) / u64::from(buckets);
                if bucket_nanos == 0 {
                    return Err(BuildError::invalid("sliding_window", "duration too short"));
                }
                Kind::Time {
                    buckets: u64::from(buckets),
                    bucket_nanos,
                }
            }
        };
        let params = Params {
            failure_rate: self.failure_rate,
            slow_call_rate: self.slow_call_rate,
            minimum_calls: self.minimum_calls.max(1),
            probes: self.probes,
            probe_deadline_nanos: nanos(self.probe_deadline),
            wait: WaitParams {
                base_nanos: nanos(self.wait),
                max_nanos: nanos(self.wait_max),
                multiplier: self.wait_multiplier,
                jitter: self.wait_jitter,
            },
        };
        Ok((kind, params))
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use http::StatusCode;

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
            .from_env_source(&env, "X_")
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
                .from_env_source(&Env::from_pairs([(var, value)]), "X_")
                .unwrap_err();
            assert_eq!(err.variable(), var);
        }
    }

    #[test]
    fn build_validates() {
        let b = || CircuitBreakerBuilder::new("t");
        assert!(b().failure_rate_threshold(0.0).build().is_err());
        assert!(b().permitted_probes(0).build().is_err());
        assert!(b().sliding_window(SlidingWindow::Count(0)).build().is_err());
        assert!(b().initial_state(State::Open).build().is_err());
        assert!(
            b().sliding_window(SlidingWindow::Time {
                duration: Duration::from_secs(1),
                buckets: 500
            })
            .build()
            .is_err()
        );
    }
}
