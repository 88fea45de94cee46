//! The admission and transition state machine, lock-free.
//!
//! One `AtomicU64` holds `generation:32 | state:8`. Every transition is a
//! compare-and-swap from the exact `(generation, state)` it starts from to the
//! next generation, so at most one transition leaves a generation. The data a
//! new generation needs (an empty window, a zeroed probe counter, the open
//! deadline) is tagged with that generation and written *before* the state is
//! published; readers only trust data tagged with the generation they read.
//! A result carries the generation it was admitted under and only ever touches
//! data of that generation, so a late result cannot move the current state.

use std::fmt;

use crate::sync::{AtomicU64, Ordering};

use super::window::{Kind, Recorded, Sample, Snapshot, Window};

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls pass and are counted in the sliding window.
    Closed,
    /// Calls are rejected until the open wait has elapsed.
    Open,
    /// A limited number of probe calls pass; their results close or re-open.
    HalfOpen,
    /// Forced open by hand: every call is rejected until [`reset`](crate::CircuitBreaker::reset).
    ForcedOpen,
    /// Disabled by hand: every call passes and nothing is counted.
    Disabled,
    /// Every call passes; results are counted and reported, the state never changes.
    MetricsOnly,
}

impl State {
    pub(crate) const ALL: [State; 6] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
        State::MetricsOnly,
    ];

    /// The label used in metrics and events: `closed`, `open`, `half_open`,
    /// `forced_open`, `disabled`, `metrics_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics_only",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn from_index(i: u64) -> State {
        State::ALL[i as usize]
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reason {
    /// The failure rate in the window reached the threshold.
    FailureRate {
        /// The measured failure rate (0..=1).
        rate: f64,
        /// The slow-call rate measured at the same time (0..=1).
        slow_call_rate: f64,
        /// The configured threshold.
        threshold: f64,
    },
    /// The slow-call rate in the window reached the threshold.
    SlowCallRate {
        /// The measured slow-call rate (0..=1).
        rate: f64,
        /// The failure rate measured at the same time (0..=1).
        failure_rate: f64,
        /// The configured threshold.
        threshold: f64,
    },
    /// The open wait elapsed: probes may pass.
    OpenWaitElapsed,
    /// Every probe settled and the rates stayed under the thresholds.
    ProbesSucceeded {
        /// The failure rate among the probes.
        failure_rate: f64,
        /// The slow-call rate among the probes.
        slow_call_rate: f64,
    },
    /// Every probe settled and a rate reached its threshold.
    ProbesFailed {
        /// The failure rate among the probes.
        failure_rate: f64,
        /// The slow-call rate among the probes.
        slow_call_rate: f64,
    },
    /// The probes did not all settle before the probe deadline.
    ProbeDeadline,
    /// Changed by hand through the handle.
    Manual,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::FailureRate {
                rate, threshold, ..
            } => write!(
                f,
                "failure rate {:.1}% >= threshold {:.1}%",
                rate * 100.0,
                threshold * 100.0
            ),
            Reason::SlowCallRate {
                rate, threshold, ..
            } => write!(
                f,
                "slow-call rate {:.1}% >= threshold {:.1}%",
                rate * 100.0,
                threshold * 100.0
            ),
            Reason::OpenWaitElapsed => f.write_str("open wait elapsed"),
            Reason::ProbesSucceeded {
                failure_rate,
                slow_call_rate,
            } => write!(
                f,
                "probes succeeded (failure rate {:.1}%, slow-call rate {:.1}%)",
                failure_rate * 100.0,
                slow_call_rate * 100.0
            ),
            Reason::ProbesFailed {
                failure_rate,
                slow_call_rate,
            } => write!(
                f,
                "probes failed (failure rate {:.1}%, slow-call rate {:.1}%)",
                failure_rate * 100.0,
                slow_call_rate * 100.0
            ),
            Reason::ProbeDeadline => f.write_str("probe deadline passed"),
            Reason::Manual => f.write_str("manual"),
        }
    }
}

/// A state change made by the core, for the handle to report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Transition {
    pub(crate) from: State,
    pub(crate) to: State,
    pub(crate) generation: u32,
    pub(crate) reason: Reason,
}

/// How a call was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Counted in the window (closed or metrics-only).
    Window,
    /// A half-open probe.
    Probe,
    /// Not counted (disabled).
    Untracked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admit {
    pub(crate) generation: u32,
    pub(crate) lane: Lane,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) state: State,
    /// Nanoseconds until the next probe may pass, when known.
    pub(crate) retry_after: Option<u64>,
}

/// What became of a result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Settled {
    /// Counted; the window (or probe) snapshot when there is one.
    Counted(Option<Snapshot>),
    /// Admitted under an earlier generation: not counted.
    Late,
}

/// The numbers the state machine runs on (`repr(C)`: those a closed breaker
/// reads on every call first).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub(crate) struct Params {
    pub(crate) minimum_calls: u32,
    pub(crate) probes: u32,
    pub(crate) failure_rate: f64,
    pub(crate) slow_call_rate: f64,
    pub(crate) probe_deadline_nanos: u64,
    pub(crate) wait: WaitParams,
}

/// The wait in open: `base * multiplier^(opens)`, capped at `max`, then
/// scaled by a random factor in `1 - jitter ..= 1 + jitter`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct WaitParams {
    pub(crate) base_nanos: u64,
    pub(crate) max_nanos: u64,
    pub(crate) multiplier: f64,
    pub(crate) jitter: f64,
}

impl WaitParams {
    pub(crate) fn wait(&self, consecutive_opens: u32) -> u64 {
        let exp = self.multiplier.powi(consecutive_opens.min(64) as i32);
        let raw = (self.base_nanos as f64 * exp).min(self.max_nanos.max(self.base_nanos) as f64);
        let jittered = if self.jitter > 0.0 {
            raw * (1.0 + self.jitter * (2.0 * rand::random::<f64>() - 1.0))
        } else {
            raw
        };
        jittered.max(0.0) as u64
    }
}

const fn pack(generation: u32, state: State) -> u64 {
    ((generation as u64) << 8) | state as u64
}

fn unpack(w: u64) -> (u32, State) {
    ((w >> 8) as u32, State::from_index(w & 0xFF))
}

const fn tag(generation: u32) -> u64 {
    (generation as u64) & 0xFFFF
}

// Probe word: gen:16 | admitted:12 | settled:12 | failed:12 | slow:12.
const fn probe_pack(generation: u32, admitted: u64, settled: u64, failed: u64, slow: u64) -> u64 {
    (tag(generation) << 48) | (admitted << 36) | (settled << 24) | (failed << 12) | slow
}

const fn probe_fields(p: u64) -> (u64, u64, u64, u64, u64) {
    (
        p >> 48,
        (p >> 36) & 0xFFF,
        (p >> 24) & 0xFFF,
        (p >> 12) & 0xFFF,
        p & 0xFFF,
    )
}

// Deadline word: gen:16 | micros since origin:48.
const fn deadline_pack(generation: u32, nanos: u64) -> u64 {
    (tag(generation) << 48) | ((nanos / 1_000) & 0xFFFF_FFFF_FFFF)
}

/// The deadline in `word` when it is tagged with `generation`; `None` while
/// a transition to another generation is being published.
fn deadline_for(word: &AtomicU64, generation: u32) -> Option<u64> {
    let d = word.load(Ordering::Acquire);
    (d >> 48 == tag(generation)).then_some((d & 0xFFFF_FFFF_FFFF) * 1_000)
}

/// Tags `word` with `generation` and `nanos`, unless a newer generation
/// already wrote it (a stale writer never overwrites a newer tag).
fn set_deadline(word: &AtomicU64, generation: u32, nanos: u64) {
    let value = deadline_pack(generation, nanos);
    let _ = word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
        let ahead = ((d >> 48).wrapping_sub(tag(generation)) & 0xFFFF) < 0x8000;
        (!ahead).then_some(value)
    });
}

/// The breaker's shared state machine. Time is passed in as nanoseconds since
/// the breaker's origin so the same code runs under tokio's paused clock and
/// under loom.
///
/// In declaration order (`repr(C)`): the state word, the window and the
/// parameters a closed breaker reads on every call come first; the probe
/// counter and deadlines, used while open or half-open, last.
#[repr(C)]
pub(crate) struct Core {
    state: AtomicU64,
    window: Window,
    params: Params,
    probes: AtomicU64,
    /// End of the open wait, tagged with the open generation.
    open_until: AtomicU64,
    /// End of the half-open probe window, tagged with the half-open generation.
    probe_deadline: AtomicU64,
    /// Opens since the last close (drives the open-wait backoff).
    opens: AtomicU64,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (generation, state) = self.current();
        f.debug_struct("Core")
            .field("generation", &generation)
            .field("state", &state)
            .field("window", &self.window)
            .finish()
    }
}

impl Core {
    pub(crate) fn new(kind: Kind, params: Params, initial: State) -> Self {
        Core {
            state: AtomicU64::new(pack(1, initial)),
            window: Window::new(kind, 1),
            probes: AtomicU64::new(probe_pack(0, 0, 0, 0, 0)),
            open_until: AtomicU64::new(deadline_pack(0, 0)),
            probe_deadline: AtomicU64::new(deadline_pack(0, 0)),
            opens: AtomicU64::new(0),
            params,
        }
    }

    pub(crate) fn current(&self) -> (u32, State) {
        unpack(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn window_snapshot(&self) -> Snapshot {
        self.window.snapshot()
    }

    /// Opens since the last close, for the backoff.
    pub(crate) fn consecutive_opens(&self) -> u32 {
        self.opens.load(Ordering::Acquire) as u32
    }

    /// Admits a call or rejects it. `open_wait` gives the open wait for the
    /// given count of consecutive opens (only called on a transition to open).
    pub(crate) fn try_acquire(
        &self,
        now: u64,
        transitions: &mut dyn FnMut(Transition),
    ) -> Result<Admit, Reject> {
        loop {
            let word = self.state.load(Ordering::Acquire);
            let (generation, state) = unpack(word);
            match state {
                State::Closed | State::MetricsOnly => {
                    return Ok(Admit {
                        generation,
                        lane: Lane::Window,
                    });
                }
                State::Disabled => {
                    return Ok(Admit {
                        generation,
                        lane: Lane::Untracked,
                    });
                }
                State::ForcedOpen => {
                    return Err(Reject {
                        state,
                        retry_after: None,
                    });
                }
                State::Open => {
                    let Some(until) = deadline_for(&self.open_until, generation) else {
                        // A transition is being published: reject rather than spin.
                        if self.state.load(Ordering::Acquire) == word {
                            return Err(Reject {
                                state,
                                retry_after: Some(0),
                            });
                        }
                        continue;
                    };
                    if now < until {
                        return Err(Reject {
                            state,
                            retry_after: Some(until - now),
                        });
                    }
                    let next = generation.wrapping_add(1);
                    let _ = self
                        .probes
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                            (probe_fields(p).0 != tag(next)).then(|| probe_pack(next, 0, 0, 0, 0))
                        });
                    set_deadline(
                        &self.probe_deadline,
                        next,
                        now.saturating_add(self.params.probe_deadline_nanos),
                    );
                    self.publish(
                        word,
                        next,
                        State::HalfOpen,
                        Reason::OpenWaitElapsed,
                        transitions,
                    );
                }
                State::HalfOpen => {
                    let admitted =
                        self.probes
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                                let (g, admitted, ..) = probe_fields(p);
                                (g == tag(generation) && admitted < u64::from(self.params.probes))
                                    .then(|| p + (1 << 36))
                            });
                    match admitted {
                        Ok(_) => {
                            return Ok(Admit {
                                generation,
                                lane: Lane::Probe,
                            });
                        }
                        Err(p)
                            if probe_fields(p).0 != tag(generation)
                                && self.state.load(Ordering::Acquire) != word =>
                        {
                            continue;
                        }
                        Err(p) if probe_fields(p).0 != tag(generation) => {
                            // A transition is being published: reject rather than spin.
                            return Err(Reject {
                                state,
                                retry_after: Some(0),
                            });
                        }
                        Err(_) => {
                            let Some(until) = deadline_for(&self.probe_deadline, generation) else {
                                if self.state.load(Ordering::Acquire) == word {
                                    return Err(Reject {
                                        state,
                                        retry_after: Some(0),
                                    });
                                }
                                continue;
                            };
                            if now < until {
                                return Err(Reject {
                                    state,
                                    retry_after: Some(until - now),
                                });
                            }
                            // A probe never came back: re-open.
                            self.open(word, now, Reason::ProbeDeadline, transitions);
                        }
                    }
                }
            }
        }
    }

    fn publish(
        &self,
        from_word: u64,
        next: u32,
        to: State,
        reason: Reason,
        transitions: &mut dyn FnMut(Transition),
    ) -> bool {
        let from = unpack(from_word).1;
        let ok = self
            .state
            .compare_exchange(
                from_word,
                pack(next, to),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if ok {
            match to {
                State::Open => {
                    self.opens.fetch_add(1, Ordering::AcqRel);
                }
                State::Closed => self.opens.store(0, Ordering::Release),
                _ => {}
            }
            transitions(Transition {
                from,
                to,
                generation: next,
                reason,
            });
        }
        ok
    }

    /// Moves `from_word` to open with the configured wait.
    fn open(
        &self,
        from_word: u64,
        now: u64,
        reason: Reason,
        transitions: &mut dyn FnMut(Transition),
    ) -> bool {
        let next = unpack(from_word).0.wrapping_add(1);
        let wait = self.params.wait.wait(self.consecutive_opens());
        set_deadline(&self.open_until, next, now.saturating_add(wait));
        self.publish(from_word, next, State::Open, reason, transitions)
    }

    fn close(
        &self,
        from_word: u64,
        reason: Reason,
        transitions: &mut dyn FnMut(Transition),
    ) -> bool {
        let next = unpack(from_word).0.wrapping_add(1);
        self.window.reset(next);
        self.publish(from_word, next, State::Closed, reason, transitions)
    }

    /// Records the result of a call admitted as `admit`.
    pub(crate) fn settle(
        &self,
        admit: Admit,
        now: u64,
        sample: Sample,
        transitions: &mut dyn FnMut(Transition),
    ) -> Settled {
        let word = self.state.load(Ordering::Acquire);
        let (generation, state) = unpack(word);
        if generation != admit.generation {
            return Settled::Late;
        }
        match admit.lane {
            Lane::Untracked => Settled::Counted(None),
            Lane::Window => match self.window.record(admit.generation, now, sample) {
                Recorded::Late => Settled::Late,
                Recorded::Dropped => Settled::Counted(None),
                Recorded::Current(snap) => {
                    if state == State::Closed && snap.total >= self.params.minimum_calls {
                        let failure_rate = snap.failure_rate();
                        let slow_call_rate = snap.slow_rate();
                        let reason = if failure_rate >= self.params.failure_rate {
                            Some(Reason::FailureRate {
                                rate: failure_rate,
                                slow_call_rate,
                                threshold: self.params.failure_rate,
                            })
                        } else if slow_call_rate >= self.params.slow_call_rate {
                            Some(Reason::SlowCallRate {
                                rate: slow_call_rate,
                                failure_rate,
                                threshold: self.params.slow_call_rate,
                            })
                        } else {
                            None
                        };
                        if let Some(reason) = reason {
                            self.open(word, now, reason, transitions);
                        }
                    }
                    Settled::Counted(Some(snap))
                }
            },
            Lane::Probe => {
                let mut after = 0;
                let updated = self
                    .probes
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                        let (g, ..) = probe_fields(p);
                        if g != tag(admit.generation) {
                            return None;
                        }
                        after = p
                            + (1 << 24)
                            + (u64::from(sample.failed) << 12)
                            + u64::from(sample.slow);
                        Some(after)
                    });
                if updated.is_err() {
                    return Settled::Late;
                }
                let (_, _, settled, failed, slow) = probe_fields(after);
                let snap = Snapshot {
                    total: settled as u32,
                    failed: failed as u32,
                    slow: slow as u32,
                };
                if settled == u64::from(self.params.probes) {
                    let failure_rate = snap.failure_rate();
                    let slow_call_rate = snap.slow_rate();
                    if failure_rate >= self.params.failure_rate
                        || slow_call_rate >= self.params.slow_call_rate
                    {
                        let reason = Reason::ProbesFailed {
                            failure_rate,
                            slow_call_rate,
                        };
                        self.open(word, now, reason, transitions);
                    } else {
                        let reason = Reason::ProbesSucceeded {
                            failure_rate,
                            slow_call_rate,
                        };
                        self.close(word, reason, transitions);
                    }
                }
                Settled::Counted(Some(snap))
            }
        }
    }

    /// A call admitted as `admit` was abandoned and is not counted: a probe
    /// gives its place back so another probe can be admitted.
    pub(crate) fn release(&self, admit: Admit) -> Settled {
        if admit.lane != Lane::Probe {
            return if self.current().0 == admit.generation {
                Settled::Counted(None)
            } else {
                Settled::Late
            };
        }
        let released = self
            .probes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                let (g, admitted, ..) = probe_fields(p);
                (g == tag(admit.generation) && admitted > 0).then(|| p - (1 << 36))
            });
        if released.is_ok() {
            Settled::Counted(None)
        } else {
            Settled::Late
        }
    }

    /// Moves to `to` by hand, whatever the current state.
    pub(crate) fn force(&self, to: State, now: u64, transitions: &mut dyn FnMut(Transition)) {
        loop {
            let word = self.state.load(Ordering::Acquire);
            let next = unpack(word).0.wrapping_add(1);
            let done = match to {
                State::Closed => self.close(word, Reason::Manual, transitions),
                State::Open => self.open(word, now, Reason::Manual, transitions),
                State::HalfOpen => {
                    let _ = self
                        .probes
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                            (probe_fields(p).0 != tag(next)).then(|| probe_pack(next, 0, 0, 0, 0))
                        });
                    set_deadline(
                        &self.probe_deadline,
                        next,
                        now.saturating_add(self.params.probe_deadline_nanos),
                    );
                    self.publish(word, next, to, Reason::Manual, transitions)
                }
                State::MetricsOnly => {
                    self.window.reset(next);
                    self.publish(word, next, to, Reason::Manual, transitions)
                }
                State::ForcedOpen | State::Disabled => {
                    self.publish(word, next, to, Reason::Manual, transitions)
                }
            };
            if done {
                return;
            }
        }
    }
}

impl Core {
    pub(crate) fn minimum_calls(&self) -> u32 {
        self.params.minimum_calls
    }
}

/// Model checks of the admission and transition state machine:
/// `RUSTFLAGS="--cfg loom" cargo test -p telltale-resilience --release loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    const FAIL: Sample = Sample {
        failed: true,
        slow: false,
    };
    const OK: Sample = Sample {
        failed: false,
        slow: false,
    };

    fn core(minimum_calls: u32, probes: u32) -> Core {
        Core::new(
            Kind::Count { size: 4 },
            Params {
                failure_rate: 0.5,
                slow_call_rate: 1.0,
                minimum_calls,
                probes,
                probe_deadline_nanos: 1_000,
                wait: WaitParams {
                    base_nanos: 0,
                    max_nanos: 0,
                    multiplier: 1.0,
                    jitter: 0.0,
                },
            },
            State::Closed,
        )
    }

    fn open(c: &Core) {
        c.force(State::Open, 0, &mut |_| {});
        assert_eq!(c.current().1, State::Open);
    }

    /// Three callers race the open → half-open transition and one probe slot:
    /// exactly one transition, at most one probe. (Preemptions bounded to 3 to
    /// keep the run in seconds; the two-caller case below is exhaustive.)
    #[test]
    fn loom_one_probe_and_one_transition() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let c = Arc::new(core(1, 1));
            open(&c);
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let c = c.clone();
                    thread::spawn(move || {
                        let mut transitions = 0;
                        let admitted = c.try_acquire(10, &mut |_| transitions += 1).is_ok();
                        (usize::from(admitted), transitions)
                    })
                })
                .collect();
            let (mut probes, mut transitions) = (0, 0);
            for h in handles {
                let (p, t) = h.join().unwrap();
                probes += p;
                transitions += t;
            }
            assert_eq!(probes, 1);
            assert_eq!(transitions, 1);
            assert_eq!(c.current().1, State::HalfOpen);
        });
    }

    /// A probe of an earlier half-open generation succeeding late races the
    /// current probe failing: the breaker never closes.
    #[test]
    fn loom_late_probe_cannot_close() {
        loom::model(|| {
            let c = Arc::new(core(1, 1));
            open(&c);
            let stale = c.try_acquire(10, &mut |_| {}).unwrap();
            // The probe deadline passes: re-open (zero wait), then a new
            // half-open admits a new probe.
            let current = c.try_acquire(2_000, &mut |_| {}).unwrap();
            assert_eq!(current.lane, Lane::Probe);
            assert_ne!(stale.generation, current.generation);
            let c1 = c.clone();
            let t1 = thread::spawn(move || c1.settle(stale, 2_001, OK, &mut |_| {}));
            let c2 = c.clone();
            let t2 = thread::spawn(move || c2.settle(current, 2_001, FAIL, &mut |_| {}));
            assert_eq!(t1.join().unwrap(), Settled::Late);
            assert!(matches!(t2.join().unwrap(), Settled::Counted(_)));
            assert_eq!(c.current().1, State::Open);
        });
    }

    /// Two callers race the open → half-open transition and one probe slot
    /// (exhaustive).
    #[test]
    fn loom_one_probe_two_callers_exhaustive() {
        loom::model(|| {
            let c = Arc::new(core(1, 1));
            open(&c);
            let spawn = || {
                let c = c.clone();
                thread::spawn(move || {
                    let mut transitions = 0;
                    let admitted = c.try_acquire(10, &mut |_| transitions += 1).is_ok();
                    (usize::from(admitted), transitions)
                })
            };
            let (a, b) = (spawn(), spawn());
            let (a, b) = (a.join().unwrap(), b.join().unwrap());
            assert_eq!(a.0 + b.0, 1);
            assert_eq!(a.1 + b.1, 1);
            assert_eq!(c.current().1, State::HalfOpen);
        });
    }

    /// Two failures settle at once when both cross the threshold: one
    /// closed → open transition.
    #[test]
    fn loom_concurrent_failures_open_once() {
        loom::model(|| {
            let c = Arc::new(core(2, 1));
            let a = c.try_acquire(0, &mut |_| {}).unwrap();
            let b = c.try_acquire(0, &mut |_| {}).unwrap();
            let spawn = |admit| {
                let c = c.clone();
                thread::spawn(move || {
                    let mut transitions = 0;
                    c.settle(admit, 1, FAIL, &mut |t| {
                        assert_eq!((t.from, t.to), (State::Closed, State::Open));
                        transitions += 1;
                    });
                    transitions
                })
            };
            let (ta, tb) = (spawn(a), spawn(b));
            assert_eq!(ta.join().unwrap() + tb.join().unwrap(), 1);
            assert_eq!(c.current().1, State::Open);
        });
    }

    /// A result of the previous closed generation racing a reset never lands
    /// in the new window.
    #[test]
    fn loom_result_racing_reset_stays_out_of_the_new_window() {
        loom::model(|| {
            let c = Arc::new(core(10, 1));
            let old = c.try_acquire(0, &mut |_| {}).unwrap();
            let c1 = c.clone();
            let t1 = thread::spawn(move || c1.settle(old, 1, FAIL, &mut |_| {}));
            let c2 = c.clone();
            let t2 = thread::spawn(move || c2.force(State::Closed, 1, &mut |_| {}));
            t1.join().unwrap();
            t2.join().unwrap();
            let (generation, state) = c.current();
            assert_eq!(state, State::Closed);
            assert_ne!(generation, old.generation);
            assert_eq!(c.window_snapshot().total, 0);
        });
    }

    /// A probe released (abandoned) while another caller asks for one: the
    /// slot is reused, never doubled.
    #[test]
    fn loom_released_probe_slot_is_reused_once() {
        loom::model(|| {
            let c = Arc::new(core(1, 1));
            open(&c);
            let probe = c.try_acquire(10, &mut |_| {}).unwrap();
            let c1 = c.clone();
            let t1 = thread::spawn(move || {
                c1.release(probe);
            });
            let c2 = c.clone();
            let t2 = thread::spawn(move || c2.try_acquire(10, &mut |_| {}).is_ok());
            let c3 = c.clone();
            let t3 = thread::spawn(move || c3.try_acquire(10, &mut |_| {}).is_ok());
            t1.join().unwrap();
            let admitted = usize::from(t2.join().unwrap()) + usize::from(t3.join().unwrap());
            assert!(admitted <= 1);
        });
    }
}
