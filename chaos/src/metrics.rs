//! The metrics telltale-chaos records: base names, labels and handles.
//!
//! Names follow the family rule (`telltale_core::metric_name`): telltale's
//! own metrics are `telltale_<component>_<what>`, under the process-wide
//! prefix (`TELLTALE_METRICS_PREFIX`). HELP texts and units are declared
//! here and given to the recorder when the counters are registered.
//!
//! | name | labels | counts |
//! |---|---|---|
//! | [`FAULTS_INJECTED_TOTAL`] | `direction` (`in`, `out`), `fault` (the fault kind), `rule` (the rule id, or `header`) | faults injected, once per fault of a fired chain |
//! | [`FAULTS_SKIPPED_TOTAL`] | `reason` (`max_active`) | rules that fired but were skipped |
//!
//! Series exist only where chaos is configured: the injected-fault series
//! of each armed rule's fault on the sides its group applies to (`in`,
//! `out`, both for `any`) when the rules are armed, those of
//! header-requested faults (`in`, rule `header`) when header faults are on,
//! and the skipped series from the first skip. An injector that is off or
//! refused registers nothing.
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

/// The full name of a chaos metric under the process-wide prefix,
/// described (HELP text, unit) to the current recorder.
fn full(base: &'static str) -> String {
    let name = telltale_core::metric_name::process_full(base);
    let help = if base == FAULTS_INJECTED_TOTAL {
        "Faults injected by telltale chaos, by direction, fault kind and rule."
    } else {
        "Chaos faults skipped because TELLTALE_CHAOS_MAX_ACTIVE faults were in progress, by reason."
    };
    metrics::with_recorder(|r| {
        r.describe_counter(
            metrics::KeyName::from(name.clone()),
            Some(metrics::Unit::Count),
            help.into(),
        );
    });
    name
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

/// Registers the injected-fault counters of a `kind` fault of `rule` on
/// `sides` (`None`: both); the other side gets a no-op counter (the rule
/// never fires there).
pub(crate) fn injected_counters(
    kind: &'static str,
    rule: &str,
    sides: Option<Side>,
) -> FaultCounters {
    let name = full(FAULTS_INJECTED_TOTAL);
    FaultCounters([Side::Server, Side::Client].map(|side| {
        if sides.is_some_and(|s| s != side) {
            return Counter::noop();
        }
        metrics::counter!(
            name.clone(),
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

#[cfg(test)]
mod tests {
    use metrics_util::debugging::DebuggingRecorder;

    use crate::{Injector, parse_rules};

    #[test]
    fn series_exist_only_where_chaos_is_configured() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let series = || -> Vec<(String, String, String, String)> {
            let mut out: Vec<_> = snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(k, ..)| {
                    let key = k.key();
                    let label = |l: &str| {
                        key.labels()
                            .find(|x| x.key() == l)
                            .map(|x| x.value().to_owned())
                            .unwrap_or_default()
                    };
                    (
                        key.name().to_owned(),
                        label("direction"),
                        label("fault"),
                        label("rule"),
                    )
                })
                .collect();
            out.sort();
            out
        };
        metrics::with_local_recorder(&recorder, || {
            let _off = Injector::disabled();
            let _refused = Injector::builder()
                .rules(parse_rules("in: status(500)").unwrap())
                .environment(Some("production"), ["dev"])
                .build()
                .unwrap();
            assert_eq!(series(), vec![]);
            let _armed = Injector::builder()
                .rules(parse_rules("in /a: status(500) | any /b: abort").unwrap())
                .max_active(1)
                .build()
                .unwrap();
        });
        let s = |d: &str, f: &str, r: &str| {
            (
                telltale_core::metric_name::process_full(super::FAULTS_INJECTED_TOTAL),
                d.to_owned(),
                f.to_owned(),
                r.to_owned(),
            )
        };
        // The `in` rule on its side only; the skipped counter from the
        // first skip only.
        assert_eq!(
            series(),
            vec![
                s("in", "abort", "2.1"),
                s("in", "status", "1.1"),
                s("out", "abort", "2.1"),
            ]
        );
    }
}
