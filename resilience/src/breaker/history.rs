//! What a breaker remembers for people looking at it: its settings and a
//! bounded log of its last state transitions, with their reasons.
//!
//! The log is written on transitions only (never per call): a short lock and
//! a push into a ring of [`TRANSITION_LOG_CAPACITY`] entries, allocated on
//! the first transition.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::{CircuitBreaker, SlidingWindow, State};
//!
//! let breaker = CircuitBreaker::builder("inventory")
//!     .sliding_window(SlidingWindow::Count(10))
//!     .build()
//!     .unwrap();
//! breaker.force_open();
//! breaker.reset();
//! let log = breaker.transitions();
//! assert_eq!(log.len(), 2);
//! assert_eq!((log[0].from, log[0].to), (State::Closed, State::ForcedOpen));
//! assert_eq!(log[1].reason.to_string(), "manual");
//! assert_eq!(breaker.settings().window, SlidingWindow::Count(10));
//! ```

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use telltale_core::CorrelationId;

use super::config::CircuitBreakerBuilder;
use super::state::{Reason, State, Transition};
use super::{CircuitBreaker, SlidingWindow};

/// How many transitions a breaker remembers (the oldest is dropped first).
pub const TRANSITION_LOG_CAPACITY: usize = 64;

/// One state transition, as [`CircuitBreaker::transitions`] returns it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TransitionRecord {
    /// When it happened (wall clock).
    pub at: SystemTime,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// The generation entered.
    pub generation: u32,
    /// The correlation ID of the call that made the transition, if any.
    pub correlation_id: Option<CorrelationId>,
}

/// The settings a breaker was built with, as [`CircuitBreaker::settings`]
/// returns them.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerSettings {
    /// The window the rates are measured over.
    pub window: SlidingWindow,
    /// The failure rate (0..=1) that opens the breaker.
    pub failure_rate_threshold: f64,
    /// The slow-call rate (0..=1) that opens the breaker.
    pub slow_call_rate_threshold: f64,
    /// Calls at least this long are slow.
    pub slow_call_duration: Duration,
    /// Calls in the window before the rates are evaluated.
    pub minimum_calls: u32,
    /// The (first) wait in open.
    pub wait_in_open: Duration,
    /// Probes permitted in half-open.
    pub permitted_probes: u32,
}

impl BreakerSettings {
    pub(super) fn of(builder: &CircuitBreakerBuilder) -> Self {
        BreakerSettings {
            window: builder.window,
            failure_rate_threshold: builder.failure_rate,
            slow_call_rate_threshold: builder.slow_call_rate,
            slow_call_duration: builder.slow_call_duration,
            minimum_calls: builder.minimum_calls,
            wait_in_open: builder.wait,
            permitted_probes: builder.probes,
        }
    }
}

/// The bounded transition log of one breaker, and its count of rejected
/// calls.
#[derive(Debug, Default)]
pub(super) struct TransitionLog {
    entries: Mutex<VecDeque<TransitionRecord>>,
    rejected: AtomicU64,
}

impl TransitionLog {
    /// Counts a rejected call (on the rejection path only).
    pub(super) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn push(&self, t: &Transition, correlation_id: Option<&CorrelationId>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= TRANSITION_LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(TransitionRecord {
            at: SystemTime::now(),
            from: t.from,
            to: t.to,
            reason: t.reason,
            generation: t.generation,
            correlation_id: correlation_id.cloned(),
        });
    }

    fn snapshot(&self) -> Vec<TransitionRecord> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }
}

impl CircuitBreaker {
    /// The last [`TRANSITION_LOG_CAPACITY`] state transitions, oldest first.
    pub fn transitions(&self) -> Vec<TransitionRecord> {
        self.inner.history.snapshot()
    }

    /// Calls rejected (not permitted) since the breaker was built.
    pub fn rejected(&self) -> u64 {
        self.inner.history.rejected.load(Ordering::Relaxed)
    }

    /// The settings the breaker was built with.
    pub fn settings(&self) -> BreakerSettings {
        self.inner.settings
    }

    /// The failure and slow-call rates (0..=1) of the current window, `None`
    /// while it holds fewer calls than the minimum (the rates are not
    /// evaluated yet), as the `telltale_circuitbreaker_*_rate` gauges say -1.
    pub fn rates(&self) -> Option<(f64, f64)> {
        let snap = self.inner.core.window_snapshot();
        (snap.total >= self.inner.core.minimum_calls() && snap.total > 0)
            .then(|| (snap.failure_rate(), snap.slow_rate()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_keeps_the_newest() {
        let breaker = CircuitBreaker::builder("log").build().unwrap();
        for _ in 0..(TRANSITION_LOG_CAPACITY / 2 + 3) {
            breaker.force_open();
            breaker.reset();
        }
        let log = breaker.transitions();
        assert_eq!(log.len(), TRANSITION_LOG_CAPACITY);
        let last = log.last().unwrap();
        assert_eq!((last.from, last.to), (State::ForcedOpen, State::Closed));
        assert!(log.windows(2).all(|w| w[0].generation < w[1].generation));
        assert_eq!(breaker.rates(), None);
        breaker.force_open();
        assert!(breaker.try_acquire().is_err());
        assert_eq!(breaker.rejected(), 1);
    }
}
