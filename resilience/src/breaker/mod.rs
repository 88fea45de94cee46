//! Circuit breakers: a cheap-to-clone [`CircuitBreaker`] handle, its tower
//! layer ([`CircuitBreakerLayer`]) and a plain `async` wrapper
//! ([`CircuitBreaker::call`]), all sharing one state.
//!
//! ```
//! use std::time::Duration;
//! use telltale_resilience::{CircuitBreaker, Error, SlidingWindow, State};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let breaker = CircuitBreaker::builder("inventory")
//!     .sliding_window(SlidingWindow::Count(10))
//!     .minimum_calls(4)
//!     .failure_rate_threshold(0.5)
//!     .wait_in_open(Duration::from_secs(30))
//!     .build()
//!     .unwrap();
//!
//! for _ in 0..4 {
//!     let r: Result<(), _> = breaker.call(async { Err::<(), _>("down") }).await;
//!     assert!(matches!(r, Err(Error::Inner(_))));
//! }
//! assert_eq!(breaker.state(), State::Open);
//! let r = breaker.call(async { Ok::<_, std::io::Error>(1) }).await;
//! assert!(matches!(r, Err(Error::Open(ref open)) if open.retry_after.is_some()));
//! # }
//! ```
//!
//! # How results are counted
//!
//! Every admitted call is tagged with the state *generation* it was admitted
//! under. Its result only counts in that generation: a call admitted while
//! closed that finishes after the breaker opened is counted as `late` and
//! cannot re-open or close anything. Slow calls (at least the slow-call
//! duration) are counted as `slow` in addition to `successful` or `failed`.
//!
//! Rejections by guards inside the breaker (a full bulkhead, an open inner
//! breaker, or a response [`RejectionResponseLayer`](crate::reject::RejectionResponseLayer)
//! made from one) are `ignored`, not failures, unless
//! [`count_rejections`](CircuitBreakerBuilder::count_rejections) says
//! otherwise: a bulkhead shedding load is not evidence that the dependency is
//! broken.
//!
//! A call whose future (or response body) is dropped before it ends is
//! *abandoned*: its permit is released (a half-open probe slot is given back)
//! and [`AbandonedPolicy`] says whether it counts. With `tower::timeout`
//! *inside* the breaker, timeouts reach the breaker as errors and count as
//! failures (see [`telltale_core::is_timeout`]). With the timeout *outside*,
//! the breaker only sees its future dropped: use
//! `AbandonedPolicy::FailureAfter(timeout)` (or `Failure`) so those count too.
//!
//! # Instrumentation
//!
//! Metrics (names in [`names`](crate::names), an optional prefix), shaped like
//! resilience4j's:
//! `telltale_circuitbreaker_state{name,state}` (1 for the current state, 0 for
//! the others), `telltale_circuitbreaker_calls_total{name,kind}` with kind
//! `successful`, `failed`, `slow`, `ignored`, `not_permitted`, `late`,
//! `telltale_circuitbreaker_failure_rate{name}` and
//! `telltale_circuitbreaker_slow_call_rate{name}` (0..=1, or -1 below the
//! minimum calls), `telltale_circuitbreaker_transitions_total{name,from,to}`.
//!
//! Every transition is a tracing event (target `telltale::breaker`, WARN when
//! opening, INFO otherwise) with the fields `breaker`, `from`, `to`, `reason`,
//! `failure_rate`, `slow_call_rate` and `correlation_id` (the correlation ID of
//! the call whose result or admission made the transition).
//!
//! A rejection records these fields on the current span, when the span
//! declared them (for example as `tracing::field::Empty`):
//! `resilience.circuit_breaker.name`, `resilience.circuit_breaker.state`,
//! `resilience.rejected` (`true`), and emits a DEBUG event.
//!
//! [`CircuitBreaker::subscribe`] hands out a channel of [`BreakerEvent`]s
//! (state changes and rejections).

mod body;
mod config;
pub mod env;
mod future;
mod history;
mod layer;
mod metrics;
mod permit;
mod service;
pub(crate) mod state;
pub(crate) mod window;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use telltale_core::{CorrelationId, FailurePolicy, Outcome};
use tokio::sync::broadcast;
use tokio::time::Instant;

pub use body::ResponseBody;
pub(crate) use config::nanos;
pub use config::{CircuitBreakerBuilder, SlidingWindow};
pub use future::{Call, ResponseFuture};
pub use history::{BreakerSettings, TRANSITION_LOG_CAPACITY, TransitionRecord};
pub use layer::CircuitBreakerLayer;
pub use permit::BreakerPermit;
pub use service::CircuitBreakerService;
pub(crate) use service::call_through_at;
pub use state::{Reason, State};

use self::metrics::{BreakerMetrics, CallMetrics};
use self::state::{Admit, Core, Lane, Params, Reject, Settled, Transition};
use self::window::{Kind, Sample};
use crate::error::CircuitOpen;
#[cfg(doc)]
use crate::error::Error;

/// The classifier of [`CircuitBreaker::call`]: `Ok` succeeds, `Err` fails.
pub type OkIsSuccess<T, E> = fn(&Result<T, E>) -> Verdict;

/// What a call that was dropped before its result (cancelled, timed out from
/// outside, client gone) counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbandonedPolicy {
    /// Not counted: the permit is released and the call is reported as `ignored`.
    Ignore,
    /// Counted as a failure.
    Failure,
    /// Counted as a failure when the call had run at least this long (a
    /// timeout outside the breaker), ignored otherwise.
    FailureAfter(Duration),
}

/// How a finished call counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// A success.
    Success,
    /// A failure.
    Failure,
    /// Not counted (for example a cache miss, or a cancellation): reported as
    /// `ignored`.
    Ignore,
}

impl Verdict {
    /// Success or failure of an [`Outcome`] under `policy`; a cancellation
    /// or a body timeout (a reader that stopped reading) that the policy does
    /// not count is ignored: neither says anything about the service.
    pub fn of(policy: &FailurePolicy, outcome: &Outcome) -> Self {
        if policy.is_failure(outcome) {
            Verdict::Failure
        } else if matches!(
            outcome,
            Outcome::Cancelled { .. } | Outcome::BodyTimeout { .. }
        ) {
            Verdict::Ignore
        } else {
            Verdict::Success
        }
    }
}

/// A state change or rejection, as handed to [`CircuitBreaker::subscribe`]rs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// The breaker changed state.
    StateTransition {
        /// The breaker's name.
        name: Arc<str>,
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
        /// Why.
        reason: Reason,
        /// The generation entered (every transition increments it by one).
        generation: u32,
        /// The correlation ID of the call that made the transition, if any.
        correlation_id: Option<CorrelationId>,
    },
    /// A call was rejected.
    Rejected {
        /// The breaker's name.
        name: Arc<str>,
        /// The state that rejected it.
        state: State,
        /// Time until the next probe may pass, when known.
        retry_after: Option<Duration>,
    },
}

/// The state shared by the clones of one breaker (and its permits).
///
/// `repr(C)` keeps the declared order: what every call reads or writes comes
/// first, right after the `Arc`'s reference counts (which every call touches
/// too), so that a call touches a few adjacent cache lines of its breaker
/// (plus the window slot it writes and its `calls_total` counter); names,
/// the other metric handles, events, settings and history follow, touched on
/// transitions, rejections and reads only. With many breakers called in turn
/// (a keyed registry), the memory a call touches is what decides its cost.
#[repr(C)]
pub(crate) struct Shared {
    origin: Instant,
    slow_nanos: u64,
    count_rejections: bool,
    calls: CallMetrics,
    core: Core,
    policy: FailurePolicy,
    abandoned: AbandonedPolicy,
    metrics: BreakerMetrics,
    name: Arc<str>,
    events: broadcast::Sender<BreakerEvent>,
    settings: BreakerSettings,
    history: history::TransitionLog,
}

/// A circuit breaker: a cheap-to-clone handle on shared state.
///
/// See the [module docs](self).
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Shared>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("core", &self.inner.core)
            .finish()
    }
}

/// Rates and counts of a breaker's current window.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerMetricsSnapshot {
    /// The current state.
    pub state: State,
    /// Calls in the window.
    pub calls: u32,
    /// Failed calls in the window.
    pub failed: u32,
    /// Slow calls in the window.
    pub slow: u32,
}

impl CircuitBreaker {
    crate::macros::env_constructors!(CircuitBreakerBuilder, "TELLTALE_BREAKER_*");

    /// An inert breaker: [`State::Disabled`] (every call passes, nothing is
    /// counted), with no metric series registered, so that a preset can hold
    /// a breaker in every position and only the configured ones show in the
    /// exposition. Its metric handles stay no-ops even if it is later moved
    /// out of `Disabled`: build a configured breaker instead.
    ///
    /// ```
    /// use telltale_resilience::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::inert("server");
    /// assert_eq!(breaker.state(), State::Disabled);
    /// ```
    pub fn inert(name: impl Into<Arc<str>>) -> Self {
        crate::names::unregistered(|| {
            Self::builder(name)
                .initial_state(State::Disabled)
                .build()
                .expect("the default breaker settings are valid")
        })
    }

    pub(crate) fn from_parts(builder: CircuitBreakerBuilder, kind: Kind, params: Params) -> Self {
        let initial = builder.initial();
        let (events, _) = broadcast::channel(builder.event_capacity.max(1));
        let settings = BreakerSettings::of(&builder);
        let (calls, metrics) =
            BreakerMetrics::new(builder.metric_prefix.as_deref(), &builder.name, initial);
        CircuitBreaker {
            inner: Arc::new(Shared {
                calls,
                metrics,
                core: Core::new(kind, params, initial),
                origin: Instant::now(),
                slow_nanos: builder.slow_nanos(),
                policy: builder.policy,
                abandoned: builder.abandoned,
                count_rejections: builder.count_rejections,
                name: builder.name,
                events,
                settings,
                history: history::TransitionLog::default(),
            }),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The failure policy the tower layer classifies responses with.
    pub fn failure_policy(&self) -> &FailurePolicy {
        &self.inner.policy
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.inner.core.current().1
    }

    /// The current state and the counts of its window.
    pub fn snapshot(&self) -> BreakerMetricsSnapshot {
        let snap = self.inner.core.window_snapshot();
        BreakerMetricsSnapshot {
            state: self.state(),
            calls: snap.total,
            failed: snap.failed,
            slow: snap.slow,
        }
    }

    /// Whether two handles share the same breaker.
    pub fn same_as(&self, other: &CircuitBreaker) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Subscribes to state changes and rejections. A subscriber that falls more
    /// than the event capacity behind gets `RecvError::Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.inner.events.subscribe()
    }

    /// Asks to make a call. The returned permit must be given the call's result
    /// (or dropped, which follows the [`AbandonedPolicy`]).
    pub fn try_acquire(&self) -> Result<BreakerPermit, CircuitOpen> {
        self.try_acquire_at(Instant::now())
    }

    /// [`try_acquire`](Self::try_acquire) with the clock already read (the
    /// keyed service reads it once for the registry and the breaker).
    pub(crate) fn try_acquire_at(&self, now: Instant) -> Result<BreakerPermit, CircuitOpen> {
        let inner = &self.inner;
        let now = inner.nanos_at(now);
        let correlation = telltale_core::correlation::current();
        let result = inner
            .core
            .try_acquire(now, &mut |t| inner.emit(t, correlation.as_ref()));
        match result {
            Ok(admit) => Ok(BreakerPermit::new(
                self.inner.clone(),
                admit,
                now,
                correlation,
            )),
            Err(reject) => Err(inner.reject(reject)),
        }
    }

    /// Runs `fut` through the breaker: `Ok` counts as a success, `Err` as a
    /// failure. Rejected calls return [`Error::Open`] without polling `fut`.
    pub fn call<F, T, E>(&self, fut: F) -> Call<F, OkIsSuccess<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<telltale_core::BoxError>,
    {
        self.call_with(fut, |r: &Result<T, E>| match r {
            Ok(_) => Verdict::Success,
            Err(_) => Verdict::Failure,
        })
    }

    /// Runs `fut` through the breaker, classifying its result with `classify`.
    ///
    /// ```
    /// use telltale_resilience::{CircuitBreaker, Verdict};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let breaker = CircuitBreaker::builder("cache").build().unwrap();
    /// // A cache miss is an `Err` but not a failure of the dependency.
    /// let r = breaker
    ///     .call_with(async { Err::<u32, _>(std::io::Error::other("miss")) }, |r| match r {
    ///         Err(_) => Verdict::Ignore,
    ///         Ok(_) => Verdict::Success,
    ///     })
    ///     .await;
    /// assert!(r.is_err());
    /// assert_eq!(breaker.snapshot().calls, 0);
    /// # }
    /// ```
    pub fn call_with<F, T, E, C>(&self, fut: F, classify: C) -> Call<F, C>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<telltale_core::BoxError>,
        C: FnOnce(&Result<T, E>) -> Verdict,
    {
        Call::new(self.try_acquire(), fut, classify)
    }

    /// Forces the breaker open: every call is rejected until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.force(State::ForcedOpen);
    }

    /// Disables the breaker: every call passes, nothing is counted.
    pub fn disable(&self) {
        self.force(State::Disabled);
    }

    /// Counts and reports every call but never changes state.
    pub fn metrics_only(&self) {
        self.force(State::MetricsOnly);
    }

    /// Closes the breaker with an empty window (also leaves the manual states).
    pub fn reset(&self) {
        self.force(State::Closed);
    }

    /// Moves to `state` by hand. Open starts the open wait; half-open admits
    /// the permitted probes.
    pub fn transition_to(&self, state: State) {
        self.force(state);
    }

    fn force(&self, to: State) {
        let inner = &self.inner;
        let correlation = telltale_core::correlation::current();
        inner.core.force(to, inner.now(), &mut |t| {
            inner.emit(t, correlation.as_ref())
        });
    }
}

impl Shared {
    fn now(&self) -> u64 {
        self.nanos_at(Instant::now())
    }

    fn nanos_at(&self, at: Instant) -> u64 {
        config::nanos(at.saturating_duration_since(self.origin))
    }

    fn reject(&self, reject: Reject) -> CircuitOpen {
        self.history.rejected();
        self.metrics.not_permitted.increment(1);
        let retry_after = reject.retry_after.map(Duration::from_nanos);
        let span = tracing::Span::current();
        span.record("resilience.circuit_breaker.name", &*self.name);
        span.record("resilience.circuit_breaker.state", reject.state.as_str());
        span.record("resilience.rejected", true);
        // The per-call number goes in an attribute; the span status stays
        // the fixed `circuit open` (see `telltale_core::Refusal`).
        span.record(
            "resilience.circuit_breaker.retry_after_ms",
            retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        );
        tracing::debug!(
            target: "telltale::breaker",
            breaker = %self.name,
            state = reject.state.as_str(),
            retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
            "call not permitted"
        );
        let _ = self.events.send(BreakerEvent::Rejected {
            name: self.name.clone(),
            state: reject.state,
            retry_after,
        });
        CircuitOpen {
            name: self.name.clone(),
            state: reject.state,
            retry_after,
        }
    }

    fn emit(&self, t: Transition, correlation: Option<&CorrelationId>) {
        self.history.push(&t, correlation);
        self.metrics.count_transition(t.from, t.to);
        self.metrics.set_state(self.core.current().1);
        if t.to == State::Closed || t.to == State::MetricsOnly {
            // The window was just emptied: the rates read -1 again.
            self.publish_rates();
        }
        let (failure_rate, slow_call_rate) = match t.reason {
            Reason::FailureRate {
                rate,
                slow_call_rate,
                ..
            } => (Some(rate), Some(slow_call_rate)),
            Reason::SlowCallRate {
                rate, failure_rate, ..
            } => (Some(failure_rate), Some(rate)),
            Reason::ProbesFailed {
                failure_rate,
                slow_call_rate,
            }
            | Reason::ProbesSucceeded {
                failure_rate,
                slow_call_rate,
            } => (Some(failure_rate), Some(slow_call_rate)),
            _ => (None, None),
        };
        let correlation_id = correlation.map(CorrelationId::as_str);
        if t.to == State::Open || t.to == State::ForcedOpen {
            tracing::warn!(
                target: "telltale::breaker",
                breaker = %self.name,
                from = t.from.as_str(),
                to = t.to.as_str(),
                reason = %t.reason,
                failure_rate,
                slow_call_rate,
                correlation_id,
                generation = t.generation,
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                target: "telltale::breaker",
                breaker = %self.name,
                from = t.from.as_str(),
                to = t.to.as_str(),
                reason = %t.reason,
                failure_rate,
                slow_call_rate,
                correlation_id,
                generation = t.generation,
                "circuit breaker state changed"
            );
        }
        let _ = self.events.send(BreakerEvent::StateTransition {
            name: self.name.clone(),
            from: t.from,
            to: t.to,
            reason: t.reason,
            generation: t.generation,
            correlation_id: correlation.cloned(),
        });
    }

    fn settle(
        &self,
        admit: Admit,
        start: u64,
        verdict: Verdict,
        correlation: Option<&CorrelationId>,
    ) {
        let now = self.now();
        let elapsed = now.saturating_sub(start);
        let slow = elapsed >= self.slow_nanos;
        let settled = match verdict {
            Verdict::Ignore => {
                let s = self.core.release(admit);
                if s != Settled::Late {
                    self.metrics.ignored.increment(1);
                }
                s
            }
            Verdict::Success | Verdict::Failure => {
                let failed = verdict == Verdict::Failure;
                let s = self
                    .core
                    .settle(admit, now, Sample { failed, slow }, &mut |t| {
                        self.emit(t, correlation)
                    });
                if let Settled::Counted(snap) = s {
                    if failed {
                        self.calls.failed.increment(1);
                    } else {
                        self.calls.successful.increment(1);
                    }
                    if slow {
                        self.calls.slow.increment(1);
                    }
                    if let (Some(snap), Lane::Window) = (snap, admit.lane) {
                        if self.calls.rates.changed(self.rates_of(snap)) {
                            self.publish_rates();
                        }
                    }
                }
                s
            }
        };
        if settled == Settled::Late {
            self.metrics.late.increment(1);
        }
    }

    /// The failure and slow-call rates the gauges show for `snap`: -1 below
    /// the minimum calls.
    fn rates_of(&self, snap: window::Snapshot) -> (f64, f64) {
        if snap.total >= self.core_minimum_calls() {
            (snap.failure_rate(), snap.slow_rate())
        } else {
            (-1.0, -1.0)
        }
    }

    /// Sets the rate gauges to the rates of the current window (see
    /// [`metrics::Rates`]).
    fn publish_rates(&self) {
        self.metrics.publish_rates(&self.calls.rates, || {
            self.rates_of(self.core.window_snapshot())
        });
    }

    fn core_minimum_calls(&self) -> u32 {
        self.core.minimum_calls()
    }

    fn abandoned_verdict(&self, start: u64) -> Verdict {
        match self.abandoned {
            AbandonedPolicy::Ignore => Verdict::Ignore,
            AbandonedPolicy::Failure => Verdict::Failure,
            AbandonedPolicy::FailureAfter(d) => {
                if self.now().saturating_sub(start) >= config::nanos(d) {
                    Verdict::Failure
                } else {
                    Verdict::Ignore
                }
            }
        }
    }
}
