//! Metric handles of one breaker, registered once when it is built.

use metrics::{Counter, Gauge, counter, gauge};

use super::state::State;
use telltale_core::metric_name::full;

use crate::names;

pub(crate) struct BreakerMetrics {
    pub(crate) state: [Gauge; 6],
    pub(crate) successful: Counter,
    pub(crate) failed: Counter,
    pub(crate) slow: Counter,
    pub(crate) ignored: Counter,
    pub(crate) not_permitted: Counter,
    pub(crate) late: Counter,
    pub(crate) failure_rate: Gauge,
    pub(crate) slow_call_rate: Gauge,
    pub(crate) transitions: [[Counter; 6]; 6],
}

impl BreakerMetrics {
    pub(crate) fn new(prefix: Option<&str>, name: &str, initial: State) -> Self {
        let name = name.to_owned();
        let calls = full(prefix, names::CIRCUITBREAKER_CALLS);
        let call =
            |kind: &'static str| counter!(calls.clone(), "name" => name.clone(), "kind" => kind);
        let state_name = full(prefix, names::CIRCUITBREAKER_STATE);
        let transitions_name = full(prefix, names::CIRCUITBREAKER_TRANSITIONS);
        let metrics = BreakerMetrics {
            state: State::ALL
                .map(|s| gauge!(state_name.clone(), "name" => name.clone(), "state" => s.as_str())),
            successful: call("successful"),
            failed: call("failed"),
            slow: call("slow"),
            ignored: call("ignored"),
            not_permitted: call("not_permitted"),
            late: call("late"),
            failure_rate: gauge!(full(prefix, names::CIRCUITBREAKER_FAILURE_RATE), "name" => name.clone()),
            slow_call_rate: gauge!(full(prefix, names::CIRCUITBREAKER_SLOW_CALL_RATE), "name" => name.clone()),
            transitions: State::ALL.map(|from| {
                State::ALL.map(|to| {
                    counter!(
                        transitions_name.clone(),
                        "name" => name.clone(),
                        "from" => from.as_str(),
                        "to" => to.as_str()
                    )
                })
            }),
        };
        metrics.set_state(initial);
        metrics.failure_rate.set(-1.0);
        metrics.slow_call_rate.set(-1.0);
        metrics
    }

    pub(crate) fn set_state(&self, current: State) {
        for s in State::ALL {
            self.state[s.index()].set(if s == current { 1.0 } else { 0.0 });
        }
    }
}
