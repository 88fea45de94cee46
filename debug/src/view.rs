//! What the page and the JSON endpoints show, read once per request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use telltale_chaos::Status;
use telltale_resilience::{Bulkhead, CircuitBreaker, SlidingWindow};
use telltale_telemetry::RecordedSpan;

use crate::registry::{self, RegisteredInjector};
use crate::surface::Inner;
use crate::traces::{self, Dependency, Lists};

/// Everything one page shows.
pub(crate) struct View {
    pub(crate) service: String,
    pub(crate) red: Value,
    pub(crate) breakers: Vec<CircuitBreaker>,
    pub(crate) bulkheads: Vec<Bulkhead>,
    pub(crate) injectors: Vec<RegisteredInjector>,
    /// `None` without a flight recorder.
    pub(crate) recorder: Option<RecorderView>,
    pub(crate) writable: bool,
}

pub(crate) struct RecorderView {
    pub(crate) capacity: usize,
    pub(crate) len: usize,
    pub(crate) recorded: u64,
    pub(crate) lists: Lists,
    pub(crate) dependencies: Vec<Dependency>,
    /// The lookup asked for and the spans it found.
    pub(crate) lookup: Option<(String, Vec<Arc<RecordedSpan>>)>,
}

/// The longest lookup string looked up; longer ones find nothing.
pub(crate) const MAX_QUERY_LEN: usize = 1024;

impl View {
    pub(crate) fn read(inner: &Inner, query: Option<&str>) -> View {
        let recorder = inner.recorder.as_ref().map(|r| {
            let spans = r.spans();
            let service = inner.service_name.clone();
            let lookup = query.filter(|q| !q.is_empty()).map(|q| {
                let found = if q.len() <= MAX_QUERY_LEN {
                    traces::lookup(r, q)
                } else {
                    Vec::new()
                };
                (q.to_owned(), found)
            });
            RecorderView {
                capacity: r.capacity(),
                len: spans.len(),
                recorded: r.recorded(),
                dependencies: traces::dependencies(
                    &spans,
                    service.as_deref().unwrap_or("this service"),
                ),
                lists: traces::lists(&spans),
                lookup,
            }
        });
        let service = inner
            .service_name
            .clone()
            .or_else(|| {
                recorder.as_ref().and_then(|r| {
                    r.lists
                        .recent
                        .first()
                        .and_then(|t| t.root.service_name().map(str::to_owned))
                })
            })
            .unwrap_or_else(|| "this service".to_owned());
        View {
            service,
            red: inner.red.read(),
            breakers: registry::registered_breakers(),
            bulkheads: registry::registered_bulkheads(),
            injectors: registry::registered_injectors(),
            recorder,
            writable: inner.token.is_some(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "service": self.service,
            "generated_unix_ms": traces::unix_ms(SystemTime::now()),
            "writable": self.writable,
            "red": self.red,
            "breakers": self.breakers.iter().map(breaker_json).collect::<Vec<_>>(),
            "bulkheads": self.bulkheads.iter().map(bulkhead_json).collect::<Vec<_>>(),
            "chaos": self.injectors.iter().map(injector_json).collect::<Vec<_>>(),
            "traces": self.recorder.as_ref().map(traces_json),
            "dependencies": self.recorder.as_ref().map(|r| r.dependencies.iter().map(Dependency::to_json).collect::<Vec<_>>()),
        })
    }
}

pub(crate) fn traces_json(r: &RecorderView) -> Value {
    let list = |l: &[traces::TraceSummary]| l.iter().map(|t| t.to_json()).collect::<Vec<_>>();
    json!({
        "flight_recorder": { "capacity": r.capacity, "spans": r.len, "recorded": r.recorded },
        "recent": list(&r.lists.recent),
        "slowest": list(&r.lists.slowest),
        "failed": list(&r.lists.failed),
    })
}

/// `last 100 calls` or `10s in 10 buckets`.
pub(crate) fn window_text(w: SlidingWindow) -> String {
    match w {
        SlidingWindow::Count(n) => format!("last {n} calls"),
        SlidingWindow::Time { duration, buckets } => {
            format!("last {} in {buckets} buckets", duration_text(duration))
        }
        _ => "?".to_owned(),
    }
}

pub(crate) fn duration_text(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{}s", trim(ms / 1000.0))
    } else {
        format!("{}ms", trim(ms))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

pub(crate) fn breaker_json(b: &CircuitBreaker) -> Value {
    let snap = b.snapshot();
    let settings = b.settings();
    let rates = b.rates();
    json!({
        "name": b.name(),
        "state": snap.state.as_str(),
        "window": window_text(settings.window),
        "calls": snap.calls,
        "rejected": b.rejected(),
        "failed": snap.failed,
        "slow": snap.slow,
        "failure_rate": rates.map(|r| r.0),
        "slow_call_rate": rates.map(|r| r.1),
        "failure_rate_threshold": settings.failure_rate_threshold,
        "slow_call_rate_threshold": settings.slow_call_rate_threshold,
        "slow_call_duration_ms": settings.slow_call_duration.as_secs_f64() * 1000.0,
        "minimum_calls": settings.minimum_calls,
        "wait_in_open_ms": settings.wait_in_open.as_secs_f64() * 1000.0,
        "transitions": b.transitions().iter().map(|t| json!({
            "at_unix_ms": traces::unix_ms(t.at),
            "from": t.from.as_str(),
            "to": t.to.as_str(),
            "reason": t.reason.to_string(),
            "generation": t.generation,
            "correlation_id": t.correlation_id.as_ref().map(|c| c.as_str()),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn bulkhead_json(b: &Bulkhead) -> Value {
    json!({
        "name": b.name(),
        "in_use": b.in_use(),
        "limit": b.max_concurrent(),
        "waiting": b.waiting(),
        "rejected": b.rejected(),
        "max_wait_ms": b.max_wait().as_secs_f64() * 1000.0,
    })
}

pub(crate) fn status_text(s: Status) -> &'static str {
    match s {
        Status::Off => "off",
        Status::Armed => "armed",
        Status::Paused => "paused",
        Status::Killed => "killed",
        Status::Expired => "expired",
        Status::Refused => "refused",
        _ => "unknown",
    }
}

pub(crate) fn injector_json(i: &RegisteredInjector) -> Value {
    let h = &i.handle;
    json!({
        "label": i.label,
        "status": status_text(h.status()),
        "refusal": h.refusal(),
        "active": h.active(),
        "ttl_left_ms": h.ttl_left().map(|d| d.as_secs_f64() * 1000.0),
        "rules": h.rule_stats().iter().map(|r| json!({
            "id": r.id.as_ref(),
            "matcher": r.matcher,
            "rule": r.rule,
            "fired": r.fired,
            "limit": r.limit,
        })).collect::<Vec<_>>(),
    })
}
