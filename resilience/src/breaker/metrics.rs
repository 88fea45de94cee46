//! Metric handles of one breaker, registered once when it is built.

use std::sync::Mutex;

use metrics::{Counter, Gauge, counter, gauge};

use super::state::State;

use crate::names::{self, described};

/// The edges the state machine takes by itself; their series exist from the
/// start. Any other edge is a transition made by hand.
const AUTOMATIC: [(State, State); 4] = [
    (State::Closed, State::Open),
    (State::Open, State::HalfOpen),
    (State::HalfOpen, State::Closed),
    (State::HalfOpen, State::Open),
];

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
    /// The counters of [`AUTOMATIC`], in its order.
    automatic: [Counter; 4],
    /// The counters of the edges taken by hand so far, registered at their
    /// first occurrence (rare, off the request path).
    manual: Mutex<Vec<((State, State), Counter)>>,
    name: String,
    transitions_name: String,
}

impl BreakerMetrics {
    pub(crate) fn new(prefix: Option<&str>, name: &str, initial: State) -> Self {
        let name = name.to_owned();
        let calls = described(prefix, names::CIRCUITBREAKER_CALLS);
        let call =
            |kind: &'static str| counter!(calls.clone(), "name" => name.clone(), "kind" => kind);
        let state_name = described(prefix, names::CIRCUITBREAKER_STATE);
        let transitions_name = described(prefix, names::CIRCUITBREAKER_TRANSITIONS);
        let metrics = BreakerMetrics {
            state: State::ALL
                .map(|s| gauge!(state_name.clone(), "name" => name.clone(), "state" => s.as_str())),
            successful: call("successful"),
            failed: call("failed"),
            slow: call("slow"),
            ignored: call("ignored"),
            not_permitted: call("not_permitted"),
            late: call("late"),
            failure_rate: gauge!(described(prefix, names::CIRCUITBREAKER_FAILURE_RATE), "name" => name.clone()),
            slow_call_rate: gauge!(described(prefix, names::CIRCUITBREAKER_SLOW_CALL_RATE), "name" => name.clone()),
            automatic: AUTOMATIC
                .map(|(from, to)| transition_counter(&transitions_name, &name, from, to)),
            manual: Mutex::new(Vec::new()),
            name,
            transitions_name,
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

    /// Counts a transition; a move to the current state (a manual reset of
    /// a closed breaker) is not one.
    pub(crate) fn count_transition(&self, from: State, to: State) {
        if from == to {
            return;
        }
        if let Some(i) = AUTOMATIC.iter().position(|e| *e == (from, to)) {
            self.automatic[i].increment(1);
            return;
        }
        let mut manual = self.manual.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = manual.iter().find(|(e, _)| *e == (from, to)) {
            c.increment(1);
            return;
        }
        let c = transition_counter(&self.transitions_name, &self.name, from, to);
        c.increment(1);
        manual.push(((from, to), c));
    }
}

fn transition_counter(metric: &str, name: &str, from: State, to: State) -> Counter {
    counter!(
        metric.to_owned(),
        "name" => name.to_owned(),
        "from" => from.as_str(),
        "to" => to.as_str()
    )
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::DebuggingRecorder;

    use super::*;

    fn edges(snapshot: metrics_util::debugging::Snapshot) -> Vec<(String, String, u64)> {
        let mut out: Vec<_> = snapshot
            .into_vec()
            .into_iter()
            .filter(|(k, ..)| k.key().name() == names::CIRCUITBREAKER_TRANSITIONS)
            .map(|(k, _, _, v)| {
                let label = |l: &str| {
                    k.key()
                        .labels()
                        .find(|x| x.key() == l)
                        .map(|x| x.value().to_owned())
                        .unwrap_or_default()
                };
                let n = match v {
                    metrics_util::debugging::DebugValue::Counter(n) => n,
                    other => panic!("{other:?}"),
                };
                (label("from"), label("to"), n)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn only_real_edges_are_registered() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let m = BreakerMetrics::new(Some(""), "db", State::Closed);
            let s = |a: &str, b: &str, n| (a.to_owned(), b.to_owned(), n);
            assert_eq!(
                edges(snapshotter.snapshot()),
                vec![
                    s("closed", "open", 0),
                    s("half_open", "closed", 0),
                    s("half_open", "open", 0),
                    s("open", "half_open", 0),
                ]
            );
            m.count_transition(State::Closed, State::Closed);
            m.count_transition(State::Closed, State::Open);
            m.count_transition(State::Open, State::ForcedOpen);
            m.count_transition(State::Open, State::ForcedOpen);
            assert_eq!(
                edges(snapshotter.snapshot()),
                vec![
                    s("closed", "open", 1),
                    s("half_open", "closed", 0),
                    s("half_open", "open", 0),
                    s("open", "forced_open", 2),
                    s("open", "half_open", 0),
                ]
            );
        });
    }
}
