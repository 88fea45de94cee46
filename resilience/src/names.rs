//! The base names of the breaker's and bulkhead's metrics. A name is the
//! builder's `metric_prefix` (none by default) joined with one `_` to the
//! base name, by [`telltale_core::metric_name::full`].
//!
//! | series | labels |
//! | --- | --- |
//! | [`CIRCUITBREAKER_STATE`] | `name`, `state` (1 for the current state, 0 for the others) |
//! | [`CIRCUITBREAKER_CALLS`] | `name`, `kind` (`successful`, `failed`, `slow`, `ignored`, `not_permitted`, `late`) |
//! | [`CIRCUITBREAKER_FAILURE_RATE`] | `name` (0..=1, or -1 below the minimum calls) |
//! | [`CIRCUITBREAKER_SLOW_CALL_RATE`] | `name` (0..=1, or -1 below the minimum calls) |
//! | [`CIRCUITBREAKER_TRANSITIONS`] | `name`, `from`, `to` |
//! | [`BULKHEAD_AVAILABLE`] | `name` |
//! | [`BULKHEAD_MAX_ALLOWED`] | `name` |
//! | [`BULKHEAD_REJECTED`] | `name` |
//! | [`BULKHEAD_WAIT_DURATION`] | `name` (histogram of the calls that had to wait) |

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
/// `telltale_bulkhead_wait_duration_seconds{name}`: histogram.
pub const BULKHEAD_WAIT_DURATION: &str = "telltale_bulkhead_wait_duration_seconds";

/// Runs `build` under the no-op recorder: the metric handles of a breaker or
/// bulkhead are registered when it is built, so one built here registers no
/// series.
pub(crate) fn unregistered<T>(build: impl FnOnce() -> T) -> T {
    metrics::with_local_recorder(&metrics::NoopRecorder, build)
}
