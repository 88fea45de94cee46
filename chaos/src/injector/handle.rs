//! Run-time control: replace the rules, pause, resume, kill.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::armed::Armed;
use super::{ARMED, EXPIRED, KILLED, OFF, PAUSED, REFUSED, Shared, Status, status_of};
use crate::parse::{RuleError, parse_rules};
use crate::rules::RuleSet;

/// Run-time control of an [`Injector`](super::Injector): replace rules, pause,
/// resume, kill.
#[derive(Clone)]
pub struct ChaosHandle {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for ChaosHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosHandle")
            .field("status", &self.status())
            .finish()
    }
}

impl ChaosHandle {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        ChaosHandle { shared }
    }

    /// Where the injector stands now.
    pub fn status(&self) -> Status {
        status_of(self.shared.state.load(Ordering::Acquire))
    }

    /// The armed rules.
    pub fn rules(&self) -> RuleSet {
        self.shared
            .armed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .rules
            .clone()
    }

    /// Replaces the rules (count limits and the TTL start afresh) and arms them,
    /// unless the injector was refused by its environment guard or killed: those
    /// are final. Returns the status after the call.
    pub fn replace_rules(&self, rules: RuleSet) -> Status {
        let state = self.shared.state.load(Ordering::Acquire);
        if state == REFUSED || state == KILLED {
            tracing::warn!(target: "telltale_chaos", status = ?status_of(state), "chaos rules not replaced: the injector is refused or killed");
            return status_of(state);
        }
        *self.shared.armed.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Armed::new(rules, self.shared.ttl));
        let _ = self
            .shared
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                matches!(s, OFF | ARMED | EXPIRED).then_some(ARMED)
            });
        tracing::info!(target: "telltale_chaos", rules = %self.rules(), "chaos rules replaced");
        self.status()
    }

    /// Parses `text` with the rule grammar and [replaces](Self::replace_rules) the rules.
    pub fn replace_rules_str(&self, text: &str) -> Result<Status, RuleError> {
        let rules = parse_rules(text).map_err(|e| RuleError::new("rules", text, e))?;
        Ok(self.replace_rules(rules))
    }

    /// Stops injecting new faults; faults in progress finish. Undo with [`resume`](Self::resume).
    pub fn pause(&self) {
        if self.transition(ARMED, PAUSED) {
            tracing::info!(target: "telltale_chaos", "chaos paused");
        }
    }

    /// Arms again after [`pause`](Self::pause).
    pub fn resume(&self) {
        if self.transition(PAUSED, ARMED) {
            tracing::info!(target: "telltale_chaos", "chaos resumed");
        }
    }

    fn transition(&self, from: u8, to: u8) -> bool {
        self.shared
            .state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The kill switch: no new faults, and faults in progress (delays, hangs,
    /// slow and truncated bodies) stop at once and let the real exchange go on.
    /// Final for this injector.
    pub fn kill(&self) {
        let _ = self
            .shared
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s != REFUSED).then_some(KILLED)
            });
        self.shared.kill.notify_waiters();
        tracing::warn!(target: "telltale_chaos", "chaos killed");
    }

    /// Faults in flight now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }
}
