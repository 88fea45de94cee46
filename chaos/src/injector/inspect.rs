//! Read-only views for people looking at an injector (a debug page): the
//! time left before the TTL switches it off and, per armed rule, how often it
//! fired.
//!
//! ```
//! use telltale_chaos::Injector;
//!
//! let injector = Injector::builder()
//!     .rules("in GET /a: 50% delay(10ms); 2* status(503)".parse().unwrap())
//!     .build()
//!     .unwrap();
//! let rules = injector.handle().rule_stats();
//! assert_eq!(rules.len(), 2);
//! assert_eq!(rules[1].id.as_ref(), "1.2");
//! assert_eq!(rules[1].matcher, "in GET /a");
//! assert_eq!(rules[1].rule, "2* status(503)");
//! assert_eq!((rules[1].fired, rules[1].limit), (0, Some(2)));
//! assert_eq!(injector.handle().ttl_left(), None);
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::ChaosHandle;

/// One armed rule and how often it fired, as [`ChaosHandle::rule_stats`]
/// returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleStats {
    /// The rule's id (`group.rule`, from 1), as in the `rule` metric label.
    pub id: Arc<str>,
    /// The group's matcher in the grammar (`in GET /payments/*`).
    pub matcher: String,
    /// The rule in the grammar (`30% delay(200ms..800ms)`).
    pub rule: String,
    /// How many requests it fired on (each injected its chain of faults).
    pub fired: u64,
    /// Its count limit, if any.
    pub limit: Option<u64>,
}

impl ChaosHandle {
    /// Time left before `TELLTALE_CHAOS_TTL` switches the armed rules off;
    /// `None` without a TTL. Zero once it ran out.
    pub fn ttl_left(&self) -> Option<Duration> {
        let armed = self.shared.armed.read().unwrap_or_else(|e| e.into_inner());
        armed
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Every armed rule, in the order written, with how often it fired.
    pub fn rule_stats(&self) -> Vec<RuleStats> {
        let armed = self.shared.armed.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (group, armed_group) in armed.rules.groups.iter().zip(&armed.groups) {
            for (rule, armed_rule) in group.rules.iter().zip(&armed_group.rules) {
                out.push(RuleStats {
                    id: armed_rule.id.clone(),
                    matcher: group.matcher.to_string(),
                    rule: rule.to_string(),
                    fired: armed_rule.fired.load(Ordering::Acquire),
                    limit: armed_rule.limit,
                });
            }
        }
        out
    }
}

impl ChaosHandle {
    /// Whether two handles control the same injector.
    pub fn same_as(&self, other: &ChaosHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Why the environment guard refused to arm, when it did.
    pub fn refusal(&self) -> Option<&str> {
        self.shared.refusal.as_deref()
    }
}
