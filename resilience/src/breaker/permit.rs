//! [`BreakerPermit`]: permission to make one call, settled by its result or
//! by its drop.

use std::fmt;
use std::sync::Arc;

use telltale_core::{CorrelationId, Outcome};

use super::state::{Admit, Lane};
#[cfg(doc)]
use super::{AbandonedPolicy, CircuitBreaker};
use super::{Shared, Verdict};

/// Permission to make one call, given by [`CircuitBreaker::try_acquire`].
///
/// Report the call's result with [`record`](Self::record) (or
/// [`record_outcome`](Self::record_outcome)); dropping the permit instead
/// follows the breaker's [`AbandonedPolicy`].
pub struct BreakerPermit {
    inner: Arc<Shared>,
    admit: Option<Admit>,
    start: u64,
    correlation: Option<CorrelationId>,
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("breaker", &self.inner.name)
            .field("admit", &self.admit)
            .finish()
    }
}

impl BreakerPermit {
    pub(super) fn new(
        inner: Arc<Shared>,
        admit: Admit,
        start: u64,
        correlation: Option<CorrelationId>,
    ) -> Self {
        BreakerPermit {
            inner,
            admit: Some(admit),
            start,
            correlation,
        }
    }

    /// Reports the call's result.
    pub fn record(mut self, verdict: Verdict) {
        if let Some(admit) = self.admit.take() {
            self.inner
                .settle(admit, self.start, verdict, self.correlation.as_ref());
        }
    }

    /// Reports the call's [`Outcome`], classified with the breaker's failure
    /// policy; a cancellation follows the [`AbandonedPolicy`] unless the
    /// policy counts cancellations.
    pub fn record_outcome(self, outcome: &Outcome) {
        let verdict = if matches!(outcome, Outcome::Cancelled { .. })
            && !self.inner.policy.is_failure(outcome)
        {
            self.inner.abandoned_verdict(self.start)
        } else {
            Verdict::of(&self.inner.policy, outcome)
        };
        self.record(verdict);
    }

    /// Whether a rejection by a guard inside the breaker is `ignored` rather
    /// than counted (see
    /// [`count_rejections`](super::CircuitBreakerBuilder::count_rejections)).
    pub(crate) fn ignores_rejections(&self) -> bool {
        !self.inner.count_rejections
    }

    /// Reports an error returned by the call: `ignored` when it is a
    /// rejection the breaker does not count, else classified as
    /// [`record_outcome`](Self::record_outcome) does.
    pub(crate) fn record_error(self, err: &(dyn std::error::Error + 'static)) {
        if self.ignores_rejections() && crate::Error::rejection_in(err).is_some() {
            self.record(Verdict::Ignore);
        } else {
            self.record_outcome(&Outcome::from_error(err));
        }
    }

    /// Whether the call was admitted as a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.admit.is_some_and(|a| a.lane == Lane::Probe)
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(admit) = self.admit.take() {
            let verdict = self.inner.abandoned_verdict(self.start);
            self.inner
                .settle(admit, self.start, verdict, self.correlation.as_ref());
        }
    }
}
