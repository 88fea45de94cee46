//! The circuit breaker's builder and its environment variables.

use std::sync::Arc;
use std::time::Duration;

use telltale_core::FailurePolicy;

use super::state::{Params, State, WaitParams};
use super::window::{Kind, MAX_BUCKETS, MAX_COUNT_WINDOW};
use super::{AbandonedPolicy, CircuitBreaker};
use crate::error::BuildError;

/// The most probes permitted in half-open.
pub(crate) const MAX_PROBES: u32 = 4095;

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
    pub(super) window: SlidingWindow,
    pub(super) failure_rate: f64,
    pub(super) slow_call_rate: f64,
    pub(super) slow_call_duration: Duration,
    pub(super) minimum_calls: u32,
    pub(super) wait: Duration,
    pub(super) wait_max: Duration,
    pub(super) wait_multiplier: f64,
    pub(super) wait_jitter: f64,
    pub(super) probes: u32,
    pub(super) probe_deadline: Duration,
    pub(crate) policy: FailurePolicy,
    pub(crate) abandoned: AbandonedPolicy,
    pub(crate) count_rejections: bool,
    pub(super) initial: State,
    pub(crate) metric_prefix: Option<Arc<str>>,
    pub(crate) event_capacity: usize,
}

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
            count_rejections: false,
            initial: State::Closed,
            metric_prefix: None,
            event_capacity: 64,
        }
    }

    pub(crate) fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    crate::macros::setters! {
        /// The window rates are measured over. Defaults to the last 100 calls.
        sliding_window(window: SlidingWindow);
        /// Failure rate (0 < r <= 1) at which the breaker opens. Defaults to `0.5`.
        failure_rate_threshold(failure_rate: f64);
        /// Slow-call rate (0 < r <= 1) at which the breaker opens. Defaults to `1.0`.
        slow_call_rate_threshold(slow_call_rate: f64);
        /// Calls at least this long are slow. Defaults to 60 s.
        slow_call_duration(slow_call_duration: Duration);
        /// Calls needed in the window before the rates are evaluated (at least
        /// 1; 0 is refused by [`build`](Self::build)). Defaults to 100.
        minimum_calls(minimum_calls: u32);
        /// Random jitter of the open wait, a fraction (0 ..= 1): the wait is scaled
        /// by a factor in `1 - jitter ..= 1 + jitter`. Defaults to 0.
        wait_jitter(wait_jitter: f64);
        /// Probe calls permitted in half-open (1 ..= 4095). Defaults to 10.
        permitted_probes(probes: u32);
        /// Longest time half-open waits for its probes; when it passes with a probe
        /// still out (or never admitted), the breaker re-opens instead of staying
        /// wedged. Defaults to 60 s.
        probe_deadline(probe_deadline: Duration);
        /// Which outcomes count as failures. Defaults to [`FailurePolicy::default`]
        /// (5xx, gRPC server errors, errors, timeouts).
        failure_policy(policy: FailurePolicy);
        /// What a call that is dropped before its result counts as. Defaults to
        /// [`AbandonedPolicy::Ignore`].
        abandoned(abandoned: AbandonedPolicy);
        /// Whether a rejection by a guard *inside* this breaker counts as a
        /// failure: a [`BulkheadFull`](crate::BulkheadFull) or
        /// [`CircuitOpen`](crate::CircuitOpen) anywhere in the error's source
        /// chain, or a response made from one by
        /// [`RejectionResponseLayer`](crate::reject::RejectionResponseLayer)
        /// (it carries [`RejectedResponse`](crate::reject::RejectedResponse)).
        /// Defaults to `false`: such calls are `ignored`, because a full
        /// bulkhead is this service shedding load, not evidence that what the
        /// breaker protects is broken (counting it opens the breaker under
        /// overload and turns shedding into a total outage). Set it with
        /// `TELLTALE_BREAKER_COUNT_REJECTIONS=true` too.
        count_rejections(count_rejections: bool);
        /// The state the breaker starts in: `Closed`, `Disabled`, `MetricsOnly` or
        /// `ForcedOpen`. Defaults to `Closed`.
        initial_state(initial: State);
        /// Events buffered per subscriber before the slowest one lags. Defaults to 64.
        event_capacity(event_capacity: usize);
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

    crate::macros::env_setters!("TELLTALE_BREAKER_*", "telltale_circuitbreaker_state");

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
        if self.probes == 0 || self.probes > MAX_PROBES {
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
        if self.minimum_calls == 0 {
            return Err(BuildError::invalid("minimum_calls", "must be at least 1"));
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
            minimum_calls: self.minimum_calls,
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
