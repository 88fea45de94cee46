//! What an export worker tells the user: its own failure lines (first
//! failure, a summary per interval, recovery) and the OpenTelemetry SDK's
//! internal logs, written through the user's pipeline but never exported
//! again as OTLP log records.
//!
//! The worker thread's default dispatcher is a [`Forwarder`]: a registered
//! subscriber (so `tracing`'s callsite cache never learns `never` from this
//! thread) that passes only telltale's export events and OpenTelemetry's
//! internal logs on to the user's dispatcher, and drops everything else
//! (hyper, h2, tonic spans and events of the exporter's own connections).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tracing::dispatcher::WeakDispatch;
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};

/// The target of telltale's export lines (`telltale_telemetry::export=off`
/// in `RUST_LOG` silences them).
pub(crate) const EXPORT_LOG_TARGET: &str = "telltale_telemetry::export";

/// Where an export worker's lines go: the pipeline's dispatcher once it is
/// built ([`set`](Self::set)), else the dispatcher current where the
/// processor was created.
#[derive(Clone, Debug)]
pub(crate) struct Diagnostics(Arc<RwLock<Option<WeakDispatch>>>);

impl Diagnostics {
    /// Points at the calling thread's current dispatcher.
    pub(crate) fn current() -> Self {
        let weak = tracing::dispatcher::get_default(|d| d.downgrade());
        Diagnostics(Arc::new(RwLock::new(Some(weak))))
    }

    /// From now on, lines go to `dispatch` (held weakly: the worker does not
    /// keep the pipeline alive).
    pub(crate) fn set(&self, dispatch: &Dispatch) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(dispatch.downgrade());
        }
    }

    fn target(&self) -> Option<Dispatch> {
        self.0.read().ok()?.as_ref()?.upgrade()
    }
}

/// Whether the worker passes this callsite on.
fn forwarded(meta: &Metadata<'_>) -> bool {
    meta.is_event()
        && (meta.target() == EXPORT_LOG_TARGET || meta.target().starts_with("opentelemetry"))
}

/// The worker thread's default subscriber; see the module docs.
pub(crate) struct Forwarder(pub(crate) Diagnostics);

impl Subscriber for Forwarder {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if forwarded(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The user's dispatcher decides the maximum level.
        Some(LevelFilter::OFF)
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        forwarded(meta) && self.0.target().is_some_and(|d| d.enabled(meta))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if let Some(d) = self.0.target() {
            d.event(event);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

thread_local! {
    static IN_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as an export worker: its events are never exported as
/// OTLP log records (no feedback from export into export).
pub(crate) fn mark_worker_thread() {
    IN_WORKER.with(|w| w.set(true));
}

/// Whether this thread is an export worker.
pub(crate) fn on_worker_thread() -> bool {
    IN_WORKER.with(std::cell::Cell::get)
}

/// An exporter's health as its lines tell it: the first failure, then at
/// most one summary per interval, then the recovery.
pub(crate) struct Health {
    exporter: &'static str,
    what: &'static str,
    endpoint: Option<String>,
    interval: Duration,
    failing: Option<Failing>,
}

struct Failing {
    since: Instant,
    last_line: Instant,
    dropped_at_start: u64,
    dropped_at_last_line: u64,
    failures_since_line: u64,
}

impl Health {
    pub(crate) fn new(
        exporter: &'static str,
        what: &'static str,
        endpoint: Option<String>,
        interval: Duration,
    ) -> Self {
        Health {
            exporter,
            what,
            endpoint,
            interval,
            failing: None,
        }
    }

    /// An export failed because of `cause`; `dropped` is the exporter's
    /// total of dropped items now.
    pub(crate) fn failed(&mut self, cause: &str, dropped: u64, batch: u64) {
        let now = Instant::now();
        let endpoint = self.endpoint.as_deref().unwrap_or("-");
        match &mut self.failing {
            None => {
                tracing::warn!(
                    target: EXPORT_LOG_TARGET,
                    exporter = self.exporter,
                    endpoint,
                    cause,
                    dropped = batch,
                    "OTLP export to {endpoint} failed: {cause}; {what} are dropped until it \
                     succeeds (at most one line per {interval:?} until then)",
                    what = self.what,
                    interval = self.interval,
                );
                self.failing = Some(Failing {
                    since: now,
                    last_line: now,
                    dropped_at_start: dropped.saturating_sub(batch),
                    dropped_at_last_line: dropped,
                    failures_since_line: 0,
                });
            }
            Some(f) => {
                f.failures_since_line += 1;
                if now.duration_since(f.last_line) >= self.interval {
                    let since_line = dropped.saturating_sub(f.dropped_at_last_line);
                    tracing::warn!(
                        target: EXPORT_LOG_TARGET,
                        exporter = self.exporter,
                        endpoint,
                        cause,
                        dropped = since_line,
                        failed_exports = f.failures_since_line,
                        failing_for_ms = now.duration_since(f.since).as_millis() as u64,
                        "OTLP export to {endpoint} still failing: {cause}; {since_line} {what} \
                         dropped in the last {elapsed:?}",
                        what = self.what,
                        elapsed = now.duration_since(f.last_line),
                    );
                    f.last_line = now;
                    f.dropped_at_last_line = dropped;
                    f.failures_since_line = 0;
                }
            }
        }
    }

    /// An export succeeded; `dropped` is the exporter's total of dropped
    /// items now.
    pub(crate) fn succeeded(&mut self, dropped: u64) {
        if let Some(f) = self.failing.take() {
            let endpoint = self.endpoint.as_deref().unwrap_or("-");
            let lost = dropped.saturating_sub(f.dropped_at_start);
            tracing::info!(
                target: EXPORT_LOG_TARGET,
                exporter = self.exporter,
                endpoint,
                dropped = lost,
                failing_for_ms = f.since.elapsed().as_millis() as u64,
                "OTLP export to {endpoint} recovered after {elapsed:?}; {lost} {what} were dropped",
                what = self.what,
                elapsed = f.since.elapsed(),
            );
        }
    }
}
