//! Exemplars of the request-duration histograms: for each series and each
//! bucket, the last sampled request that landed there (its trace and span
//! IDs, its duration, when it ended).
//!
//! The `metrics` facade has no place for exemplars (a histogram handle takes
//! a value and nothing else), so telltale keeps them beside it: a small store
//! per histogram series, one slot per bucket, created with the series (cold
//! path) and written by [`InFlight::finish`](super::InFlight::finish) when
//! the request's span is sampled. A write takes one uncontended `try_lock`
//! on the bucket's slot and copies 40 bytes: no allocation, and a write that
//! finds the slot busy is skipped rather than waited for (an exemplar is a
//! sample, not a count). The `/metrics` route
//! ([`metrics_router`](super::metrics_router)) appends them to the bucket
//! lines of the OpenMetrics exposition.
//!
//! Exemplars are collected only once something can serve them: building a
//! [`metrics_router`](super::metrics_router) (or calling [`enable`]) turns
//! collection on for the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::SpanContext;

/// Whether exemplars are collected (see the module docs).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns exemplar collection on for the process (done by
/// [`metrics_router`](super::metrics_router)).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether exemplar collection is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// One exemplar: the request behind an observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    /// The W3C trace ID of the request's trace.
    pub trace_id: [u8; 16],
    /// The span ID of the request's span.
    pub span_id: [u8; 8],
    /// The observed value (the request's duration, in seconds).
    pub value: f64,
    /// When the observation was made.
    pub timestamp: SystemTime,
}

impl Exemplar {
    /// The exemplar of a sampled span context, `None` when the context is
    /// invalid or not sampled (only sampled traces become exemplars: an
    /// unsampled trace ID leads nowhere).
    pub fn from_span_context(sc: &SpanContext, value: f64) -> Option<Exemplar> {
        if !sc.is_valid() || !sc.is_sampled() {
            return None;
        }
        Some(Exemplar {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            value,
            timestamp: SystemTime::now(),
        })
    }

    /// The OpenMetrics exemplar text: ` # {trace_id="…",span_id="…"} value timestamp`.
    pub(crate) fn write_openmetrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str(" # {trace_id=\"");
        for b in self.trace_id {
            let _ = write!(out, "{b:02x}");
        }
        out.push_str("\",span_id=\"");
        for b in self.span_id {
            let _ = write!(out, "{b:02x}");
        }
        let since = self
            .timestamp
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let _ = write!(
            out,
            "\"}} {} {}.{:03}",
            FloatText(self.value),
            since.as_secs(),
            since.subsec_millis()
        );
    }
}

/// An f64 as the exposition formats write it (`+Inf`, `-Inf`, `NaN`).
pub(crate) struct FloatText(pub(crate) f64);

impl std::fmt::Display for FloatText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            write!(f, "{v}")
        }
    }
}

/// The exemplar slots of one histogram series: one per bucket of `bounds`,
/// plus one for `+Inf`.
pub(crate) struct SeriesExemplars {
    bounds: Arc<[f64]>,
    slots: Box<[Mutex<Option<Exemplar>>]>,
}

impl SeriesExemplars {
    fn new(bounds: Arc<[f64]>) -> Self {
        let slots = (0..=bounds.len()).map(|_| Mutex::new(None)).collect();
        SeriesExemplars { bounds, slots }
    }

    /// Keeps `exemplar` as the latest of its bucket; skipped when the slot
    /// is being written or read right now.
    pub(crate) fn record(&self, exemplar: Exemplar) {
        let index = self.bounds.partition_point(|&b| b < exemplar.value);
        if let Some(slot) = self.slots.get(index)
            && let Ok(mut slot) = slot.try_lock()
        {
            *slot = Some(exemplar);
        }
    }

    /// Every exemplar kept, lowest bucket first.
    pub(crate) fn all(&self) -> Vec<Exemplar> {
        self.slots
            .iter()
            .filter_map(|s| *s.lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }
}

/// A series: its metric name and its labels, sorted by name.
type SeriesId = (String, Vec<(String, String)>);

/// Every series' exemplars, by metric name and label set. One per process,
/// like the global `metrics` recorder the `/metrics` route renders.
fn registry() -> &'static RwLock<HashMap<SeriesId, Arc<SeriesExemplars>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<SeriesId, Arc<SeriesExemplars>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The slots of the series `name{labels}` (created, or shared with another
/// histogram of the same series), for buckets `bounds` (cold path: when a
/// series is created).
pub(crate) fn series(
    name: &str,
    labels: impl Iterator<Item = (String, String)>,
    bounds: &Arc<[f64]>,
) -> Arc<SeriesExemplars> {
    let mut labels: Vec<(String, String)> = labels.collect();
    labels.sort();
    let id = (name.to_owned(), labels);
    let mut map = registry().write().unwrap_or_else(PoisonError::into_inner);
    match map.get(&id) {
        Some(existing) if existing.bounds == *bounds => existing.clone(),
        _ => {
            let slots = Arc::new(SeriesExemplars::new(bounds.clone()));
            map.insert(id, slots.clone());
            slots
        }
    }
}

/// The exemplars kept for the series `name{labels}` (`labels` sorted by
/// name), for rendering.
pub(crate) fn lookup(name: &str, labels: &[(String, String)]) -> Vec<Exemplar> {
    let map = registry().read().unwrap_or_else(PoisonError::into_inner);
    // The key is owned; rendering is the cold path.
    map.get(&(name.to_owned(), labels.to_vec()))
        .map(|s| s.all())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn context(sampled: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes([1; 16]),
            SpanId::from_bytes([2; 8]),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn only_sampled_contexts_become_exemplars() {
        assert!(Exemplar::from_span_context(&context(true), 0.2).is_some());
        assert!(Exemplar::from_span_context(&context(false), 0.2).is_none());
        assert!(Exemplar::from_span_context(&SpanContext::empty_context(), 0.2).is_none());
    }

    #[test]
    fn each_bucket_keeps_its_latest_exemplar() {
        let bounds: Arc<[f64]> = Arc::from(&[0.1, 1.0][..]);
        let s = series(
            "exemplar_test_seconds",
            [("b".into(), "2".into()), ("a".into(), "1".into())].into_iter(),
            &bounds,
        );
        let e = |value| Exemplar {
            value,
            ..Exemplar::from_span_context(&context(true), 0.0).unwrap()
        };
        s.record(e(0.05));
        s.record(e(0.1)); // le="0.1" includes 0.1
        s.record(e(0.5));
        s.record(e(5.0));
        let labels = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
        let values: Vec<f64> = lookup("exemplar_test_seconds", &labels)
            .iter()
            .map(|e| e.value)
            .collect();
        assert_eq!(values, [0.1, 0.5, 5.0]);
    }

    #[test]
    fn openmetrics_text() {
        let e = Exemplar {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            value: 0.25,
            timestamp: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        let mut out = String::new();
        e.write_openmetrics(&mut out);
        assert_eq!(
            out,
            format!(
                " # {{trace_id=\"{}\",span_id=\"0101010101010101\"}} 0.25 1700000000.123",
                "ab".repeat(16)
            )
        );
    }
}
