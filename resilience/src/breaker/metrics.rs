//! Metric handles of one breaker, registered once when it is built.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Mutex, TryLockError};

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

/// The handles and numbers a counted call touches, kept apart from the rest
/// (see the breaker's `Shared`): its `calls_total` counters (a successful
/// call's first) and the rates the gauges show.
#[repr(C)]
pub(crate) struct CallMetrics {
    pub(crate) successful: Counter,
    pub(crate) rates: Rates,
    pub(crate) failed: Counter,
    pub(crate) slow: Counter,
}

/// The rest of a breaker's metric handles: touched on transitions,
/// rejections, ignored and late calls, and rate changes.
pub(crate) struct BreakerMetrics {
    pub(crate) ignored: Counter,
    pub(crate) late: Counter,
    pub(crate) not_permitted: Counter,
    failure_rate: Gauge,
    slow_call_rate: Gauge,
    /// One writer of the rate gauges at a time (see [`Rates`]).
    publisher: Publisher,
    state: [Gauge; 6],
    /// The counters of [`AUTOMATIC`], in its order.
    automatic: [Counter; 4],
    /// The counters of the edges taken by hand so far, registered at their
    /// first occurrence (rare, off the request path).
    manual: Mutex<Vec<((State, State), Counter)>>,
    name: String,
    transitions_name: String,
}

impl BreakerMetrics {
    /// Registers every series of the breaker `name` (the rate gauges at -1,
    /// the state gauge at `initial`).
    pub(crate) fn new(prefix: Option<&str>, name: &str, initial: State) -> (CallMetrics, Self) {
        let name = name.to_owned();
        let calls = described(prefix, names::CIRCUITBREAKER_CALLS);
        let call =
            |kind: &'static str| counter!(calls.clone(), "name" => name.clone(), "kind" => kind);
        let state_name = described(prefix, names::CIRCUITBREAKER_STATE);
        let transitions_name = described(prefix, names::CIRCUITBREAKER_TRANSITIONS);
        // Registered in the order they always were.
        let state = State::ALL
            .map(|s| gauge!(state_name.clone(), "name" => name.clone(), "state" => s.as_str()));
        let hot = CallMetrics {
            successful: call("successful"),
            failed: call("failed"),
            slow: call("slow"),
            rates: Rates::new(),
        };
        let metrics = BreakerMetrics {
            state,
            ignored: call("ignored"),
            not_permitted: call("not_permitted"),
            late: call("late"),
            failure_rate: gauge!(described(prefix, names::CIRCUITBREAKER_FAILURE_RATE), "name" => name.clone()),
            slow_call_rate: gauge!(described(prefix, names::CIRCUITBREAKER_SLOW_CALL_RATE), "name" => name.clone()),
            publisher: Publisher::default(),
            automatic: AUTOMATIC
                .map(|(from, to)| transition_counter(&transitions_name, &name, from, to)),
            manual: Mutex::new(Vec::new()),
            name,
            transitions_name,
        };
        metrics.set_state(initial);
        metrics.failure_rate.set(-1.0);
        metrics.slow_call_rate.set(-1.0);
        (hot, metrics)
    }

    /// Brings the rate gauges to `current()`, the rates of the window now
    /// (see [`Rates`]).
    pub(crate) fn publish_rates(&self, shown: &Rates, current: impl Fn() -> (f64, f64)) {
        let publisher = &self.publisher;
        publisher.dirty.store(true, Ordering::SeqCst);
        loop {
            let guard = match publisher.lock.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                // The holder sees `dirty` before it lets go.
                Err(TryLockError::WouldBlock) => return,
            };
            loop {
                publisher.dirty.store(false, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                let (failure, slow) = current();
                if shown.shows((failure, slow)) {
                    break;
                }
                self.failure_rate.set(failure);
                self.slow_call_rate.set(slow);
                shown.failure.store(failure.to_bits(), Ordering::SeqCst);
                shown.slow.store(slow.to_bits(), Ordering::SeqCst);
            }
            drop(guard);
            fence(Ordering::SeqCst);
            if !publisher.dirty.load(Ordering::SeqCst) {
                return;
            }
        }
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

/// The failure and slow-call rates the two rate gauges show, so that a call
/// whose result leaves them unchanged (every call of a healthy, full window)
/// touches neither gauge: a gauge is written only when its value changes.
///
/// Every write of the gauges goes through
/// [`BreakerMetrics::publish_rates`]: one caller at a time (a `try_lock`:
/// nobody waits) writes the rates of the window as it is *now*, stores them
/// here and looks at the window again, until what it wrote is still current.
/// A call that changed the window checks [`changed`](Self::changed) after its
/// change and, when the gauges are behind, marks them `dirty` and publishes,
/// or leaves it to the caller already publishing, who looks again when it
/// sees the mark. Sequentially consistent fences between a window update and
/// the check, and between storing and looking again, make either side see the
/// other: the gauges never stay behind the window. Written by hand: a cache
/// of two numbers.
pub(crate) struct Rates {
    /// `f64` bits of the failure rate the gauge shows.
    failure: AtomicU64,
    /// `f64` bits of the slow-call rate the gauge shows.
    slow: AtomicU64,
}

impl Rates {
    /// The gauges start at -1 (fewer calls than the minimum).
    fn new() -> Self {
        Rates {
            failure: AtomicU64::new((-1.0f64).to_bits()),
            slow: AtomicU64::new((-1.0f64).to_bits()),
        }
    }

    fn shows(&self, (failure, slow): (f64, f64)) -> bool {
        self.failure.load(Ordering::SeqCst) == failure.to_bits()
            && self.slow.load(Ordering::SeqCst) == slow.to_bits()
    }

    /// Whether `rates` (failure, slow), computed after a change of the
    /// window, differ from what the gauges show.
    pub(crate) fn changed(&self, rates: (f64, f64)) -> bool {
        fence(Ordering::SeqCst);
        !self.shows(rates)
    }
}

/// The writer side of [`Rates`]: a change waiting for the caller holding the
/// lock, and the lock.
#[derive(Default)]
struct Publisher {
    dirty: AtomicBool,
    lock: Mutex<()>,
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
            let (_, m) = BreakerMetrics::new(Some(""), "db", State::Closed);
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
