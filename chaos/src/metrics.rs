//! The metrics telltale-chaos records: base names, labels and handles.
//!
//! Names follow the family rule (`telltale_core::metric_name`): telltale's
//! own metrics are `telltale_<component>_<what>`, and chaos has no configurable
//! prefix.
//!
//! | name | labels | counts |
//! |---|---|---|
//! | [`FAULTS_INJECTED_TOTAL`] | `direction` (`in`, `out`), `fault` (the fault kind), `rule` (the rule id, or `header`) | faults injected, once per fault of a fired chain |
//! | [`FAULTS_SKIPPED_TOTAL`] | `reason` (`max_active`) | rules that fired but were skipped |
//!
//! ```
//! assert_eq!(telltale_chaos::metrics::FAULTS_INJECTED_TOTAL, "telltale_chaos_faults_injected_total");
//! ```

use metrics::Counter;
use telltale_core::Side;

/// Faults injected: `telltale_chaos_faults_injected_total{direction,fault,rule}`.
pub const FAULTS_INJECTED_TOTAL: &str = "telltale_chaos_faults_injected_total";

/// Faults skipped: `telltale_chaos_faults_skipped_total{reason}`.
pub const FAULTS_SKIPPED_TOTAL: &str = "telltale_chaos_faults_skipped_total";

/// The full name of a chaos metric (chaos has no configurable prefix).
fn full(base: &'static str) -> String {
    telltale_core::metric_name::full(None, base)
}

/// The injected-fault counters of one fault of one rule, one per side.
#[derive(Clone)]
pub(crate) struct FaultCounters([Counter; 2]);

impl FaultCounters {
    /// The same counter on both sides (header-requested faults are inbound only).
    pub(crate) fn same(counter: Counter) -> Self {
        FaultCounters([counter.clone(), counter])
    }

    /// The counter for `side`.
    pub(crate) fn on(&self, side: Side) -> &Counter {
        &self.0[usize::from(side == Side::Client)]
    }
}

/// The `direction` label of a side: `in` (server) or `out` (client).
pub(crate) const fn direction(side: Side) -> &'static str {
    crate::rules::side_keyword(Some(side))
}

/// Registers the injected-fault counters of a `kind` fault of `rule`.
pub(crate) fn injected_counters(kind: &'static str, rule: &str) -> FaultCounters {
    FaultCounters([Side::Server, Side::Client].map(|side| {
        metrics::counter!(
            full(FAULTS_INJECTED_TOTAL),
            "direction" => direction(side),
            "fault" => kind,
            "rule" => rule.to_owned()
        )
    }))
}

/// Registers the counter of faults skipped at the `TELLTALE_CHAOS_MAX_ACTIVE` cap.
pub(crate) fn skipped_counter() -> Counter {
    metrics::counter!(full(FAULTS_SKIPPED_TOTAL), "reason" => "max_active")
}
