//! The base names of the breaker's and bulkhead's metrics, with their HELP
//! texts and units (declared here, once, and given to the recorder when a
//! breaker or bulkhead is built). A name is the builder's `metric_prefix`,
//! else the process-wide prefix (`TELLTALE_METRICS_PREFIX`, see
//! [`telltale_core::metric_name`]), joined with one `_` to the base name, by
//! [`telltale_core::metric_name::full`].
//!
//! | series | type | labels |
//! | --- | --- | --- |
//! | [`CIRCUITBREAKER_STATE`] | gauge | `name`, `state` (1 for the current state, 0 for the others) |
//! | [`CIRCUITBREAKER_CALLS`] | counter | `name`, `kind` (`successful`, `failed`, `slow`, `ignored`, `not_permitted`, `late`) |
//! | [`CIRCUITBREAKER_FAILURE_RATE`] | gauge | `name` (0..=1, or -1 below the minimum calls) |
//! | [`CIRCUITBREAKER_SLOW_CALL_RATE`] | gauge | `name` (0..=1, or -1 below the minimum calls) |
//! | [`CIRCUITBREAKER_TRANSITIONS`] | counter | `name`, `from`, `to`: the edges the state machine takes by itself (`closed`→`open`, `open`→`half_open`, `half_open`→`closed`, `half_open`→`open`) from the start; a transition made by hand (`force_open`, `disable`, `metrics_only`, `reset`, `transition_to`) from its first occurrence; a move to the current state (a reset of a closed breaker) is not a transition |
//! | [`BULKHEAD_AVAILABLE`] | gauge | `name` |
//! | [`BULKHEAD_MAX_ALLOWED`] | gauge | `name` |
//! | [`BULKHEAD_REJECTED`] | counter | `name` |
//! | [`BULKHEAD_BODY_TIMEOUTS`] | counter | `name`: response bodies ended because their reader was idle ([`body_timeout`](crate::body_timeout)) |
//! | [`BULKHEAD_WAIT_DURATION`] | histogram (seconds; buckets [`telltale_core::metric_name::BULKHEAD_WAIT_BUCKETS`]) | `name`: every admitted call's wait for a slot, 0 when admitted at once |

use metrics::{KeyName, Unit};

/// `telltale_circuitbreaker_state{name,state}`: gauge.
pub const CIRCUITBREAKER_STATE: &str = "telltale_circuitbreaker_state";
/// `telltale_circuitbreaker_calls_total{name,kind}`: counter.
pub const CIRCUITBREAKER_CALLS: &str = "telltale_circuitbreaker_calls_total";
/// `telltale_circuitbreaker_failure_rate{name}`: gauge.
pub const CIRCUITBREAKER_FAILURE_RATE: &str = "telltale_circuitbreaker_failure_rate";
/// `telltale_circuitbreaker_slow_call_rate{name}`: gauge.
pub const CIRCUITBREAKER_SLOW_CALL_RATE: &str = "telltale_circuitbreaker_slow_call_rate";
/// `telltale_circuitbreaker_transitions_total{name,from,to}`: counter.
pub const CIRCUITBREAKER_TRANSITIONS: &str = "telltale_circuitbreaker_transitions_total";
/// `telltale_bulkhead_available_concurrent_calls{name}`: gauge.
pub const BULKHEAD_AVAILABLE: &str = "telltale_bulkhead_available_concurrent_calls";
/// `telltale_bulkhead_max_allowed_concurrent_calls{name}`: gauge.
pub const BULKHEAD_MAX_ALLOWED: &str = "telltale_bulkhead_max_allowed_concurrent_calls";
/// `telltale_bulkhead_rejected_calls_total{name}`: counter.
pub const BULKHEAD_REJECTED: &str = "telltale_bulkhead_rejected_calls_total";
/// `telltale_bulkhead_body_timeouts_total{name}`: counter of response bodies
/// ended because their reader was idle (see [`body_timeout`](crate::body_timeout)).
pub const BULKHEAD_BODY_TIMEOUTS: &str = "telltale_bulkhead_body_timeouts_total";
/// `telltale_bulkhead_wait_duration_seconds{name}`: histogram (declared in
/// [`telltale_core::metric_name`], which holds its buckets).
pub const BULKHEAD_WAIT_DURATION: &str = telltale_core::metric_name::BULKHEAD_WAIT_DURATION;

/// What a family is, for its description.
#[derive(Clone, Copy)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

/// Type, unit and HELP text of every family, by base name.
const FAMILIES: [(&str, Type, Option<Unit>, &str); 10] = [
    (
        CIRCUITBREAKER_STATE,
        Type::Gauge,
        None,
        "Circuit breaker state: 1 for the current state, 0 for the others.",
    ),
    (
        CIRCUITBREAKER_CALLS,
        Type::Counter,
        Some(Unit::Count),
        "Calls through the circuit breaker, by outcome kind (successful, failed, slow, ignored, not_permitted, late).",
    ),
    (
        CIRCUITBREAKER_FAILURE_RATE,
        Type::Gauge,
        None,
        "Failure rate (0 to 1) of the circuit breaker's window; -1 below the minimum number of calls.",
    ),
    (
        CIRCUITBREAKER_SLOW_CALL_RATE,
        Type::Gauge,
        None,
        "Slow-call rate (0 to 1) of the circuit breaker's window; -1 below the minimum number of calls.",
    ),
    (
        CIRCUITBREAKER_TRANSITIONS,
        Type::Counter,
        Some(Unit::Count),
        "Circuit breaker state transitions, by from and to state.",
    ),
    (
        BULKHEAD_AVAILABLE,
        Type::Gauge,
        Some(Unit::Count),
        "Free slots of the bulkhead.",
    ),
    (
        BULKHEAD_MAX_ALLOWED,
        Type::Gauge,
        Some(Unit::Count),
        "Calls the bulkhead allows at once.",
    ),
    (
        BULKHEAD_REJECTED,
        Type::Counter,
        Some(Unit::Count),
        "Calls the bulkhead rejected because it was full.",
    ),
    (
        BULKHEAD_BODY_TIMEOUTS,
        Type::Counter,
        Some(Unit::Count),
        "Response bodies ended (and their bulkhead slot released) because the reader was idle longer than the body idle timeout.",
    ),
    (
        BULKHEAD_WAIT_DURATION,
        Type::Histogram,
        Some(Unit::Seconds),
        "Time each admitted call waited for a bulkhead slot (0 when admitted at once).",
    ),
];

/// The full name of `base` under `prefix` (a builder's `metric_prefix`, else
/// the process-wide prefix), described (HELP text, unit) to the current
/// recorder.
pub(crate) fn described(prefix: Option<&str>, base: &'static str) -> String {
    let name = match prefix {
        Some(p) => telltale_core::metric_name::full(Some(p), base),
        None => telltale_core::metric_name::process_full(base),
    };
    if let Some(&(_, kind, unit, help)) = FAMILIES.iter().find(|(b, ..)| *b == base) {
        metrics::with_recorder(|r| {
            let key = KeyName::from(name.clone());
            match kind {
                Type::Counter => r.describe_counter(key, unit, help.into()),
                Type::Gauge => r.describe_gauge(key, unit, help.into()),
                Type::Histogram => r.describe_histogram(key, unit, help.into()),
            }
        });
    }
    name
}

/// Runs `build` under the no-op recorder: the metric handles of a breaker or
/// bulkhead are registered when it is built, so one built here registers no
/// series.
pub(crate) fn unregistered<T>(build: impl FnOnce() -> T) -> T {
    metrics::with_local_recorder(&metrics::NoopRecorder, build)
}
