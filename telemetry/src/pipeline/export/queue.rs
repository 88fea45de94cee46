//! The shared part of both processors: a bounded channel to a worker thread
//! with its own runtime, a control channel, and the counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use telltale_core::BoxError;
use tokio::sync::mpsc;

use super::diagnostics::{Diagnostics, Forwarder, Health, mark_worker_thread};
use super::transport::{LastCause, describe};
use super::{BatchConfig, ExportStats};
use crate::pipeline::error::ExporterError;

enum Control {
    Resource(Resource),
    Flush(std::sync::mpsc::SyncSender<OTelSdkResult>, Instant),
    Shutdown(std::sync::mpsc::SyncSender<OTelSdkResult>, Instant),
}

/// What a worker exports to: a span or a log exporter.
pub(super) trait Sink: 'static {
    type Item: Send + 'static;
    /// An estimate of the bytes an item holds, for the queue's byte budget.
    fn size(item: &Self::Item) -> usize;
    fn export(&mut self, batch: Vec<Self::Item>) -> impl Future<Output = OTelSdkResult>;
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult;
    fn set_resource(&mut self, resource: &Resource);
}

/// How a worker reports: what it exports (`spans`, `log records`), to
/// which endpoint, where its lines go, and where its transport leaves the
/// cause of a failed connection.
#[derive(Clone, Debug)]
pub(crate) struct Reporting {
    pub(crate) what: &'static str,
    pub(crate) endpoint: Option<String>,
    pub(crate) diagnostics: Diagnostics,
    pub(crate) cause: LastCause,
}

impl Reporting {
    /// Lines to the caller's current dispatcher, no endpoint known.
    pub(crate) fn new(what: &'static str) -> Self {
        Reporting {
            what,
            endpoint: None,
            diagnostics: Diagnostics::current(),
            cause: LastCause::default(),
        }
    }
}

/// The shared part: bounded channel, control channel, counts.
pub(super) struct Queue<T> {
    tx: mpsc::Sender<T>,
    size_of: fn(&T) -> usize,
    control: mpsc::UnboundedSender<Control>,
    pub(super) stats: ExportStats,
    pub(super) config: BatchConfig,
    pub(super) diagnostics: Diagnostics,
    is_shutdown: AtomicBool,
}

impl<T: Send + 'static> Queue<T> {
    pub(super) fn start<S, F>(
        name: &'static str,
        metrics: (&'static str, &'static str),
        config: BatchConfig,
        reporting: Reporting,
        make: F,
    ) -> Result<Self, ExporterError>
    where
        S: Sink<Item = T>,
        F: FnOnce() -> Result<S, BoxError> + Send + 'static,
    {
        // Bounded whatever the caller asks: no panic (tokio's channel and
        // `Instant + Duration` panic on zero or huge values), no absurd
        // allocation.
        let queue_size = config
            .queue_size
            .clamp(1, crate::pipeline::settings::MAX_EXPORT_QUEUE_SIZE);
        let max = crate::pipeline::settings::MAX_EXPORT_DURATION;
        let config = BatchConfig {
            queue_size,
            max_queue_bytes: config.max_queue_bytes.max(1),
            batch_size: config.batch_size.clamp(
                1,
                queue_size.min(crate::pipeline::settings::MAX_EXPORT_BATCH_SIZE),
            ),
            delay: config.delay.min(max),
            export_timeout: config.export_timeout.min(max),
            flush_timeout: config.flush_timeout.min(max),
            failure_log_interval: config.failure_log_interval.min(max),
        };
        let (tx, rx) = mpsc::channel(config.queue_size);
        let (control, control_rx) = mpsc::unbounded_channel();
        let stats = ExportStats {
            name,
            metrics: Arc::new((
                telltale_core::metric_name::process_full(metrics.0),
                telltale_core::metric_name::process_full(metrics.1),
            )),
            capacity: config.queue_size,
            max_bytes: config.max_queue_bytes,
            counters: Arc::default(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let worker_stats = stats.clone();
        let diagnostics = reporting.diagnostics.clone();
        std::thread::Builder::new()
            .name(format!("telltale-export-{name}"))
            .spawn(move || {
                // The exporter's own tracing (hyper, tonic) is dropped; the
                // SDK's internal logs and telltale's export lines go to the
                // user's log output, never back into an exporter.
                mark_worker_thread();
                let _forward = tracing::dispatcher::set_default(&tracing::Dispatch::new(
                    Forwarder(reporting.diagnostics.clone()),
                ));
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ExporterError::Worker(e)));
                        return;
                    }
                };
                let exporter = {
                    let _enter = runtime.enter();
                    match make() {
                        Ok(e) => e,
                        Err(e) => {
                            let _ = ready_tx.send(Err(ExporterError::Build(e)));
                            return;
                        }
                    }
                };
                let _ = ready_tx.send(Ok(()));
                runtime.block_on(
                    Worker {
                        exporter,
                        rx,
                        control: control_rx,
                        config,
                        health: Health::new(
                            name,
                            reporting.what,
                            reporting.endpoint,
                            config.failure_log_interval,
                        ),
                        cause: reporting.cause,
                        stats: worker_stats,
                        batch: Vec::with_capacity(config.batch_size),
                    }
                    .run(),
                );
            })
            .map_err(ExporterError::Worker)?;
        ready_rx.recv().map_err(|_| {
            ExporterError::Worker(std::io::Error::other(
                "export worker stopped while starting",
            ))
        })??;
        Ok(Queue {
            tx,
            size_of: S::size,
            control,
            stats,
            config,
            diagnostics,
            is_shutdown: AtomicBool::new(false),
        })
    }

    pub(super) fn push(&self, item: T) {
        if self.is_shutdown.load(Ordering::Relaxed) {
            self.stats.count_dropped("shutdown", 1);
            return;
        }
        // The byte budget: reserved before sending (and given back when the
        // span does not go), released by the worker once its batch is done.
        let size = (self.size_of)(&item) as u64;
        let counters = &self.stats.counters;
        let before = counters.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > self.config.max_queue_bytes as u64 {
            counters.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.stats.count_dropped("queue_full", 1);
            return;
        }
        // Counted before sending so the worker's decrement never underflows.
        counters.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                counters.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                self.stats.count_dropped("queue_full", 1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                counters.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                self.stats.count_dropped("shutdown", 1);
            }
        }
    }

    pub(super) fn flush(&self) -> OTelSdkResult {
        if self.is_shutdown.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.request(Control::Flush, self.config.flush_timeout)
    }

    pub(super) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        if self.is_shutdown.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.request(Control::Shutdown, timeout)
    }

    pub(super) fn set_resource(&self, resource: &Resource) {
        let _ = self.control.send(Control::Resource(resource.clone()));
    }

    fn request(
        &self,
        make: impl FnOnce(std::sync::mpsc::SyncSender<OTelSdkResult>, Instant) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (reply, wait) = std::sync::mpsc::sync_channel(1);
        let deadline = Instant::now() + timeout;
        if self.control.send(make(reply, deadline)).is_err() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        match wait.recv_timeout(timeout) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(OTelSdkError::AlreadyShutdown)
            }
        }
    }
}

struct Worker<S: Sink> {
    exporter: S,
    rx: mpsc::Receiver<S::Item>,
    control: mpsc::UnboundedReceiver<Control>,
    config: BatchConfig,
    stats: ExportStats,
    health: Health,
    cause: LastCause,
    batch: Vec<S::Item>,
}

impl<S: Sink> Worker<S> {
    async fn run(mut self) {
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let room = self.config.batch_size - self.batch.len();
            tokio::select! {
                biased;
                msg = self.control.recv() => match msg {
                    Some(Control::Resource(resource)) => self.exporter.set_resource(&resource),
                    Some(Control::Flush(reply, until)) => {
                        let result = self.drain(until).await;
                        deadline = None;
                        let _ = reply.send(result);
                    }
                    Some(Control::Shutdown(reply, until)) => {
                        let mut result = self.drain(until).await;
                        let left = until.saturating_duration_since(Instant::now());
                        if result.is_ok() {
                            result = self.exporter.shutdown(left);
                        }
                        let _ = reply.send(result);
                        return;
                    }
                    None => return,
                },
                n = self.rx.recv_many(&mut self.batch, room) => {
                    if n == 0 {
                        return;
                    }
                    self.stats.counters.queued.fetch_sub(n as u64, Ordering::Relaxed);
                    if self.batch.len() >= self.config.batch_size {
                        self.export(self.config.export_timeout).await;
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + self.config.delay);
                    }
                }
                () = sleep_until(deadline) => {
                    self.export(self.config.export_timeout).await;
                    deadline = None;
                }
            }
        }
    }

    /// Exports the current batch and everything queued, until `until`.
    async fn drain(&mut self, until: Instant) -> OTelSdkResult {
        let mut failed = false;
        loop {
            while self.batch.len() < self.config.batch_size {
                match self.rx.try_recv() {
                    Ok(span) => {
                        self.stats.counters.queued.fetch_sub(1, Ordering::Relaxed);
                        self.batch.push(span);
                    }
                    Err(_) => break,
                }
            }
            if self.batch.is_empty() {
                return match failed {
                    false => Ok(()),
                    true if Instant::now() >= until => Err(OTelSdkError::Timeout(Duration::ZERO)),
                    true => Err(OTelSdkError::InternalFailure(
                        "some batches could not be exported".to_owned(),
                    )),
                };
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let n = self.batch.len() as u64 + self.stats.queued();
                self.release(&self.batch);
                self.batch.clear();
                self.stats.count_dropped("shutdown", n);
                return Err(OTelSdkError::Timeout(Duration::ZERO));
            }
            failed |= !self.export(left.min(self.config.export_timeout)).await;
        }
    }

    /// Gives the bytes of `items` (taken from the queue, not exported) back
    /// to the budget.
    fn release(&self, items: &[S::Item]) {
        let bytes: u64 = items.iter().map(|item| S::size(item) as u64).sum();
        self.stats
            .counters
            .queued_bytes
            .fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Exports the current batch; `false` when the exporter failed or timed out.
    async fn export(&mut self, timeout: Duration) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.config.batch_size));
        let n = batch.len() as u64;
        let bytes: u64 = batch.iter().map(|item| S::size(item) as u64).sum();
        // A cause left by an earlier attempt is not this export's.
        let _ = self.cause.take();
        let result = tokio::time::timeout(timeout, self.exporter.export(batch)).await;
        // The batch is gone (exported, failed or timed out): its bytes leave
        // the budget.
        self.stats
            .counters
            .queued_bytes
            .fetch_sub(bytes, Ordering::Relaxed);
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(self.cause.take().unwrap_or_else(|| describe(&e))),
            Err(_) => Some(match self.cause.take() {
                Some(cause) => format!("no answer within {timeout:?} (last error: {cause})"),
                None => format!("no answer within {timeout:?} (export timeout)"),
            }),
        };
        match failure {
            None => {
                self.stats.counters.exported.fetch_add(n, Ordering::Relaxed);
                self.stats.describe();
                metrics::counter!(self.stats.metrics.1.clone(), "exporter" => self.stats.name)
                    .increment(n);
                self.health.succeeded(self.stats.dropped());
                true
            }
            Some(cause) => {
                self.stats
                    .counters
                    .failed_exports
                    .fetch_add(1, Ordering::Relaxed);
                self.stats.count_dropped("export_failed", n);
                self.health.failed(&cause, self.stats.dropped(), n);
                false
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
