//! OTLP metrics: the `metrics` facade bridged to OpenTelemetry's metrics SDK
//! ([`OtlpRecorder`]), pushed by a periodic reader to a collector, beside
//! (or instead of) the Prometheus exposition.
//!
//! # Why a bridge of telltale's own
//!
//! Two crates bridge `metrics` 0.24 to `opentelemetry_sdk` 0.33:
//! `metrics-exporter-opentelemetry` 0.2 builds a new gauge handle (starting
//! from 0) each time a gauge is registered, which breaks the
//! `increment`/`decrement` gauges telltale uses, and panics on a poisoned
//! lock; `metrics-opentelemetry` 0.24033 sets histogram buckets by exact name
//! only and passes names and label keys through unchanged. telltale needs
//! more than either: the names and attribute keys of the OpenTelemetry
//! semantic conventions on the wire (`http.server.request.duration` with
//! `http.request.method`, not the Prometheus spellings), buckets by base
//! name under any prefix (as [`prometheus_builder`](super::prometheus_builder)
//! sets them), and counters and gauges that cost one atomic operation on the
//! request path. So [`OtlpRecorder`] is a thin `metrics::Recorder` (a few
//! hundred lines) over the SDK's instruments:
//!
//! - counters are `AtomicU64`s read by an observable counter at each
//!   export (cumulative, exactly the value `/metrics` shows);
//! - gauges are `f64` atomics read by an observable gauge (the
//!   active-requests gauges by an observable up-down counter, their type in
//!   the conventions);
//! - histograms are the SDK's explicit-bucket histograms, with the buckets
//!   the Prometheus exposition has.
//!
//! # Names on the wire
//!
//! | `/metrics` | OTLP |
//! | --- | --- |
//! | `http_server_request_duration_seconds{http_request_method,http_route,…}` (and the other RED series of the OpenTelemetry naming) | `http.server.request.duration` (unit `s`) with attributes `http.request.method`, `http.route`, `http.response.status_code` (an integer), `error.type`, `url.scheme`, `server.address`, `server.port`, `url.template`, `rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code` |
//! | any other counter `x_total` | `x` (monotonic sum) |
//! | any other histogram `x_seconds` | `x` (unit `s`) |
//! | any other gauge `x` | `x` |
//!
//! The names are chosen so that the OpenTelemetry-to-Prometheus translation
//! (a collector's `prometheus` exporter adds `_total` to monotonic sums and
//! `_seconds` for unit `s`) gives back the names `/metrics` shows. Under a
//! prefix (`TELLTALE_METRICS_PREFIX=myapp`), a RED series is
//! `myapp.http.server.request.duration`.
//!
//! # Prometheus and OTLP together
//!
//! [`Telemetry::install`](crate::Telemetry::install) with OTLP metrics on and
//! [`install_prometheus`](super::install_prometheus), in either order, share
//! one global recorder: every series goes to both. Install both before the
//! layers record (series register with the recorders present at their first
//! use).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::PrometheusRecorder;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::config::SEMCONV_BUCKETS;
use super::names::red_histogram_bases;
use telltale_core::metric_name::{BULKHEAD_WAIT_BUCKETS, BULKHEAD_WAIT_DURATION};

/// The RED base names of the OpenTelemetry naming and their names in the
/// semantic conventions.
const SEMCONV_NAMES: &[(&str, &str, &str)] = &[
    (
        super::names::HTTP_SERVER_REQUEST_DURATION,
        "http.server.request.duration",
        "s",
    ),
    (
        super::names::HTTP_SERVER_ACTIVE_REQUESTS,
        "http.server.active_requests",
        "{request}",
    ),
    (
        super::names::HTTP_CLIENT_REQUEST_DURATION,
        "http.client.request.duration",
        "s",
    ),
    (
        super::names::HTTP_CLIENT_ACTIVE_REQUESTS,
        "http.client.active_requests",
        "{request}",
    ),
    (
        super::names::RPC_SERVER_CALL_DURATION,
        "rpc.server.call.duration",
        "s",
    ),
    (
        super::names::RPC_CLIENT_CALL_DURATION,
        "rpc.client.call.duration",
        "s",
    ),
];

/// Label keys of the OpenTelemetry naming and their attribute keys; `true`
/// for the integer attributes.
const SEMCONV_KEYS: &[(&str, &str, bool)] = &[
    ("http_request_method", "http.request.method", false),
    ("http_route", "http.route", false),
    (
        "http_response_status_code",
        "http.response.status_code",
        true,
    ),
    ("error_type", "error.type", false),
    ("url_scheme", "url.scheme", false),
    ("url_template", "url.template", false),
    ("server_address", "server.address", false),
    ("server_port", "server.port", true),
    ("rpc_system", "rpc.system", false),
    ("rpc_service", "rpc.service", false),
    ("rpc_method", "rpc.method", false),
    ("rpc_grpc_status_code", "rpc.grpc.status_code", true),
];

/// How one `/metrics` name is sent over OTLP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireName {
    pub(crate) name: String,
    pub(crate) unit: Option<&'static str>,
    /// Attribute keys follow the semantic conventions.
    pub(crate) semconv: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

/// The OTLP name of the `/metrics` name `name` (see the module docs);
/// `semconv_labels` says whether the series has the OpenTelemetry naming's
/// labels (the classic HTTP client histogram shares its name).
fn wire_name(name: &str, kind: Type, unit: Option<Unit>, semconv_labels: bool) -> WireName {
    if semconv_labels {
        for (base, semconv, unit) in SEMCONV_NAMES {
            let prefix = if name == *base {
                Some("")
            } else {
                name.strip_suffix(base)
                    .and_then(|p| p.strip_suffix('_'))
                    .filter(|p| !p.is_empty())
            };
            if let Some(prefix) = prefix {
                let name = if prefix.is_empty() {
                    (*semconv).to_owned()
                } else {
                    format!("{prefix}.{semconv}")
                };
                return WireName {
                    name,
                    unit: Some(unit),
                    semconv: true,
                };
            }
        }
    }
    let (name, unit) = match kind {
        Type::Counter => (name.strip_suffix("_total").unwrap_or(name), None),
        Type::Histogram => match (name.strip_suffix("_seconds"), unit) {
            (Some(stem), _) => (stem, Some("s")),
            (None, Some(Unit::Seconds)) => (name, Some("s")),
            (None, _) => (name, None),
        },
        Type::Gauge => (name, None),
    };
    WireName {
        name: name.to_owned(),
        unit,
        semconv: false,
    }
}

/// The attributes of a series: label keys translated when `semconv`, and
/// the integer attributes as integers.
fn attributes(key: &Key, semconv: bool) -> Vec<KeyValue> {
    key.labels()
        .map(|l| {
            let found = semconv
                .then(|| SEMCONV_KEYS.iter().find(|(k, _, _)| *k == l.key()))
                .flatten();
            match found {
                Some((_, attr, true)) => match l.value().parse::<i64>() {
                    Ok(n) => KeyValue::new(*attr, n),
                    Err(_) => KeyValue::new(*attr, l.value().to_owned()),
                },
                Some((_, attr, false)) => KeyValue::new(*attr, l.value().to_owned()),
                None => KeyValue::new(l.key().to_owned(), l.value().to_owned()),
            }
        })
        .collect()
}

/// Whether a series carries the OpenTelemetry naming's labels.
fn has_semconv_labels(key: &Key) -> bool {
    key.labels()
        .any(|l| matches!(l.key(), "http_request_method" | "rpc_system"))
}

/// The buckets of RED histograms by full name, as their
/// [`RedConfig`](super::RedConfig) says (noted when a
/// [`RedMetrics`](super::RedMetrics) first records, before it registers).
fn noted_buckets() -> &'static RwLock<HashMap<String, Arc<[f64]>>> {
    static NOTED: OnceLock<RwLock<HashMap<String, Arc<[f64]>>>> = OnceLock::new();
    NOTED.get_or_init(Default::default)
}

/// Notes the buckets of the RED histogram `name` (cold path).
pub(crate) fn note_buckets(name: &str, buckets: &Arc<[f64]>) {
    noted_buckets()
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_owned(), buckets.clone());
}

/// The explicit buckets of a histogram: those its `RedConfig` noted, else
/// the RED buckets for the RED base names (under any prefix), the
/// bulkhead's for its wait, the conventions' default otherwise (as
/// [`prometheus_builder`](super::prometheus_builder)).
fn buckets_for(name: &str, red: &[f64]) -> Vec<f64> {
    if let Some(noted) = noted_buckets()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
    {
        return noted.to_vec();
    }
    let matches =
        |base: &str| name == base || name.strip_suffix(base).is_some_and(|p| p.ends_with('_'));
    if matches(BULKHEAD_WAIT_DURATION) {
        return BULKHEAD_WAIT_BUCKETS.to_vec();
    }
    if red_histogram_bases().into_iter().any(matches) {
        return red.to_vec();
    }
    SEMCONV_BUCKETS.to_vec()
}

/// The series of one observable family: attributes and the atomic read at
/// export.
type Series = Arc<RwLock<Vec<(Vec<KeyValue>, Arc<AtomicU64>)>>>;

struct Inner {
    meter: Meter,
    red_buckets: Vec<f64>,
    descriptions: RwLock<HashMap<String, (Option<Unit>, SharedString)>>,
    counters: RwLock<HashMap<Key, Counter>>,
    gauges: RwLock<HashMap<Key, Gauge>>,
    histograms: RwLock<HashMap<Key, Histogram>>,
    /// Observable families by OTLP name: their series.
    families: Mutex<HashMap<String, Series>>,
    /// Histogram instruments by OTLP name.
    histogram_instruments: Mutex<HashMap<String, opentelemetry::metrics::Histogram<f64>>>,
}

/// A `metrics::Recorder` that records into OpenTelemetry instruments of one
/// [`Meter`], with the names, attributes and buckets described in the
/// [module docs](self). Cheap to clone.
///
/// ```
/// use opentelemetry::metrics::MeterProvider as _;
/// use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
/// use telltale_telemetry::metrics::{OtlpRecorder, SEMCONV_BUCKETS};
///
/// let exporter = InMemoryMetricExporter::default();
/// let provider = SdkMeterProvider::builder()
///     .with_reader(PeriodicReader::builder(exporter.clone()).build())
///     .build();
/// let recorder = OtlpRecorder::new(provider.meter("app"), &SEMCONV_BUCKETS);
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("jobs_total", "queue" => "mail").increment(2);
/// });
/// provider.force_flush().unwrap();
/// let exported = exporter.get_finished_metrics().unwrap();
/// let names: Vec<String> = exported[0]
///     .scope_metrics()
///     .flat_map(|s| s.metrics().map(|m| m.name().to_owned()))
///     .collect();
/// assert_eq!(names, ["jobs"]);
/// ```
#[derive(Clone)]
pub struct OtlpRecorder {
    inner: Arc<Inner>,
}

impl fmt::Debug for OtlpRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpRecorder").finish_non_exhaustive()
    }
}

impl OtlpRecorder {
    /// A recorder over `meter`; the RED duration histograms get `red_buckets`
    /// (those of the [`RedConfig`](super::RedConfig), normally
    /// [`SEMCONV_BUCKETS`]).
    pub fn new(meter: Meter, red_buckets: &[f64]) -> Self {
        OtlpRecorder {
            inner: Arc::new(Inner {
                meter,
                red_buckets: red_buckets.to_vec(),
                descriptions: RwLock::default(),
                counters: RwLock::default(),
                gauges: RwLock::default(),
                histograms: RwLock::default(),
                families: Mutex::default(),
                histogram_instruments: Mutex::default(),
            }),
        }
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .descriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.as_str().to_owned(), (unit, description));
    }

    fn description(&self, name: &str) -> (Option<Unit>, Option<SharedString>) {
        match self
            .inner
            .descriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            Some((unit, text)) => (*unit, Some(text.clone())),
            None => (None, None),
        }
    }

    /// The atomic of a new observable series (its family registered on
    /// first use).
    fn observable(&self, key: &Key, kind: Type) -> Arc<AtomicU64> {
        let name = key.name();
        let (unit, text) = self.description(name);
        let semconv_labels = has_semconv_labels(key);
        let wire = wire_name(name, kind, unit, semconv_labels);
        let attrs = attributes(key, wire.semconv);
        let value = Arc::new(AtomicU64::new(0));
        let mut families = self
            .inner
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let series = families.entry(wire.name.clone()).or_insert_with(|| {
            let series: Series = Arc::default();
            let read = series.clone();
            let meter = &self.inner.meter;
            let text = text.map(|t| t.into_owned()).unwrap_or_default();
            let unit = wire.unit.unwrap_or("");
            let up_down = wire.name.ends_with("active_requests");
            match (kind, up_down) {
                (Type::Counter, _) => {
                    meter
                        .u64_observable_counter(wire.name.clone())
                        .with_description(text)
                        .with_unit(unit)
                        .with_callback(move |o| {
                            for (attrs, v) in
                                read.read().unwrap_or_else(PoisonError::into_inner).iter()
                            {
                                o.observe(v.load(Ordering::Relaxed), attrs);
                            }
                        })
                        .build();
                }
                (_, true) => {
                    meter
                        .f64_observable_up_down_counter(wire.name.clone())
                        .with_description(text)
                        .with_unit(unit)
                        .with_callback(move |o| {
                            for (attrs, v) in
                                read.read().unwrap_or_else(PoisonError::into_inner).iter()
                            {
                                o.observe(f64::from_bits(v.load(Ordering::Relaxed)), attrs);
                            }
                        })
                        .build();
                }
                _ => {
                    meter
                        .f64_observable_gauge(wire.name.clone())
                        .with_description(text)
                        .with_unit(unit)
                        .with_callback(move |o| {
                            for (attrs, v) in
                                read.read().unwrap_or_else(PoisonError::into_inner).iter()
                            {
                                o.observe(f64::from_bits(v.load(Ordering::Relaxed)), attrs);
                            }
                        })
                        .build();
                }
            }
            series
        });
        series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push((attrs, value.clone()));
        value
    }

    fn histogram(&self, key: &Key) -> Histogram {
        let name = key.name();
        let (unit, text) = self.description(name);
        let wire = wire_name(name, Type::Histogram, unit, has_semconv_labels(key));
        let attrs = attributes(key, wire.semconv);
        let instrument = self
            .inner
            .histogram_instruments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(wire.name.clone())
            .or_insert_with(|| {
                self.inner
                    .meter
                    .f64_histogram(wire.name.clone())
                    .with_description(text.map(|t| t.into_owned()).unwrap_or_default())
                    .with_unit(wire.unit.unwrap_or(""))
                    .with_boundaries(buckets_for(name, &self.inner.red_buckets))
                    .build()
            })
            .clone();
        Histogram::from_arc(Arc::new(OtelHistogram { instrument, attrs }))
    }
}

/// One histogram series: the SDK instrument and the series' attributes.
struct OtelHistogram {
    instrument: opentelemetry::metrics::Histogram<f64>,
    attrs: Vec<KeyValue>,
}

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.instrument.record(value, &self.attrs);
    }
}

/// The handle of `key` in `map`, created with `create` once.
fn cached<H: Clone>(map: &RwLock<HashMap<Key, H>>, key: &Key, create: impl FnOnce() -> H) -> H {
    if let Some(h) = map.read().unwrap_or_else(PoisonError::into_inner).get(key) {
        return h.clone();
    }
    let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
    map.entry(key.clone()).or_insert_with(create).clone()
}

impl Recorder for OtlpRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        cached(&self.inner.counters, key, || {
            Counter::from_arc(self.observable(key, Type::Counter))
        })
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        cached(&self.inner.gauges, key, || {
            Gauge::from_arc(self.observable(key, Type::Gauge))
        })
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        cached(&self.inner.histograms, key, || self.histogram(key))
    }
}

/// The process's global `metrics` recorder once telltale installs one:
/// Prometheus, OTLP, or both side by side.
#[derive(Default)]
struct Hub {
    prometheus: OnceLock<PrometheusRecorder>,
    otlp: OnceLock<OtlpRecorder>,
}

impl Hub {
    fn each<T>(&self, f: impl Fn(&dyn Recorder) -> T) -> Vec<T> {
        let mut out = Vec::with_capacity(2);
        if let Some(p) = self.prometheus.get() {
            out.push(f(p));
        }
        if let Some(o) = self.otlp.get() {
            out.push(f(o));
        }
        out
    }
}

/// The hub handed to `metrics` as the global recorder.
struct HubRecorder(&'static Hub);

impl Recorder for HubRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .each(|r| r.describe_counter(key.clone(), unit, description.clone()));
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .each(|r| r.describe_gauge(key.clone(), unit, description.clone()));
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0
            .each(|r| r.describe_histogram(key.clone(), unit, description.clone()));
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        one_counter(self.0.each(|r| r.register_counter(key, metadata)))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        one_gauge(self.0.each(|r| r.register_gauge(key, metadata)))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        one_histogram(self.0.each(|r| r.register_histogram(key, metadata)))
    }
}

/// The handles of one series in every recorder of the hub (metrics-util's
/// `Fanout` keeps its handle types private, so the three impls are here).
struct Fan<H>(Vec<H>);

impl CounterFn for Fan<Counter> {
    fn increment(&self, value: u64) {
        self.0.iter().for_each(|c| c.increment(value));
    }

    fn absolute(&self, value: u64) {
        self.0.iter().for_each(|c| c.absolute(value));
    }
}

impl GaugeFn for Fan<Gauge> {
    fn increment(&self, value: f64) {
        self.0.iter().for_each(|g| g.increment(value));
    }

    fn decrement(&self, value: f64) {
        self.0.iter().for_each(|g| g.decrement(value));
    }

    fn set(&self, value: f64) {
        self.0.iter().for_each(|g| g.set(value));
    }
}

impl HistogramFn for Fan<Histogram> {
    fn record(&self, value: f64) {
        self.0.iter().for_each(|h| h.record(value));
    }

    fn record_many(&self, value: f64, count: usize) {
        self.0.iter().for_each(|h| h.record_many(value, count));
    }
}

fn one_counter(mut handles: Vec<Counter>) -> Counter {
    match handles.len() {
        0 => Counter::noop(),
        1 => handles.remove(0),
        _ => Counter::from_arc(Arc::new(Fan(handles))),
    }
}

fn one_gauge(mut handles: Vec<Gauge>) -> Gauge {
    match handles.len() {
        0 => Gauge::noop(),
        1 => handles.remove(0),
        _ => Gauge::from_arc(Arc::new(Fan(handles))),
    }
}

fn one_histogram(mut handles: Vec<Histogram>) -> Histogram {
    match handles.len() {
        0 => Histogram::noop(),
        1 => handles.remove(0),
        _ => Histogram::from_arc(Arc::new(Fan(handles))),
    }
}

/// Several recorders as one: every description and series goes to each.
/// For a local (not global) recorder with Prometheus and OTLP side by side,
/// as [`RedConfig::with_recorder`](super::RedConfig::with_recorder) takes
/// one (metrics-util's `Fanout` is not `Send`).
///
/// ```
/// use std::sync::Arc;
/// use opentelemetry::metrics::MeterProvider as _;
/// use opentelemetry_sdk::metrics::SdkMeterProvider;
/// use telltale_telemetry::metrics::{
///     FanoutRecorder, OtlpRecorder, RedConfig, SEMCONV_BUCKETS, prometheus_builder,
/// };
///
/// let prometheus = prometheus_builder(&RedConfig::default()).build_recorder();
/// let handle = prometheus.handle();
/// let provider = SdkMeterProvider::builder().build();
/// let otlp = OtlpRecorder::new(provider.meter("app"), &SEMCONV_BUCKETS);
/// let both = FanoutRecorder::new(vec![Arc::new(prometheus), Arc::new(otlp)]);
/// metrics::with_local_recorder(&both, || metrics::counter!("jobs_total").increment(1));
/// assert!(handle.render().contains("jobs_total 1"));
/// ```
pub struct FanoutRecorder {
    recorders: Vec<Arc<dyn Recorder + Send + Sync>>,
}

impl fmt::Debug for FanoutRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanoutRecorder")
            .field("recorders", &self.recorders.len())
            .finish()
    }
}

impl FanoutRecorder {
    /// One recorder over `recorders`.
    pub fn new(recorders: Vec<Arc<dyn Recorder + Send + Sync>>) -> Self {
        FanoutRecorder { recorders }
    }
}

impl Recorder for FanoutRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        for r in &self.recorders {
            r.describe_counter(key.clone(), unit, description.clone());
        }
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        for r in &self.recorders {
            r.describe_gauge(key.clone(), unit, description.clone());
        }
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        for r in &self.recorders {
            r.describe_histogram(key.clone(), unit, description.clone());
        }
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        one_counter(
            self.recorders
                .iter()
                .map(|r| r.register_counter(key, metadata))
                .collect(),
        )
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        one_gauge(
            self.recorders
                .iter()
                .map(|r| r.register_gauge(key, metadata))
                .collect(),
        )
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        one_histogram(
            self.recorders
                .iter()
                .map(|r| r.register_histogram(key, metadata))
                .collect(),
        )
    }
}

/// Why a recorder could not join the global hub.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// Another `metrics` recorder (not telltale's) is the global one.
    #[error("another global metrics recorder is already installed")]
    ForeignRecorder,
    /// A recorder of this kind was already installed.
    #[error("a {0} metrics recorder is already installed")]
    AlreadyInstalled(&'static str),
}

/// The global hub, made the global `metrics` recorder on first use.
fn hub() -> Result<&'static Hub, InstallError> {
    static HUB: OnceLock<Result<&'static Hub, ()>> = OnceLock::new();
    let hub = HUB.get_or_init(|| {
        let hub: &'static Hub = Box::leak(Box::default());
        metrics::set_global_recorder(HubRecorder(hub))
            .map(|()| hub)
            .map_err(drop)
    });
    hub.map_err(|()| InstallError::ForeignRecorder)
}

/// Makes `recorder` part of the global recorder; gives it back when the
/// global recorder is another one, or already has a Prometheus recorder.
pub(crate) fn install_prometheus_recorder(
    recorder: PrometheusRecorder,
) -> Result<(), PrometheusRecorder> {
    match hub() {
        Ok(hub) => hub.prometheus.set(recorder),
        Err(_) => Err(recorder),
    }
}

/// Makes `recorder` part of the global recorder.
pub(crate) fn install_otlp_recorder(recorder: OtlpRecorder) -> Result<(), InstallError> {
    hub()?
        .otlp
        .set(recorder)
        .map_err(|_| InstallError::AlreadyInstalled("OTLP"))
}

/// Live counts of the OTLP metrics exporter, a cheap-clone handle (the same
/// numbers go to `telltale_telemetry_metric_exports_total` and
/// `telltale_telemetry_metric_exports_failed_total`).
#[derive(Clone, Debug, Default)]
pub struct MetricExportStats {
    counts: Arc<(AtomicU64, AtomicU64)>,
}

impl MetricExportStats {
    /// Exports the collector accepted.
    pub fn exported(&self) -> u64 {
        self.counts.0.load(Ordering::Relaxed)
    }

    /// Exports that failed or timed out (the values they carried reach the
    /// collector with the next export that succeeds: OTLP metrics are
    /// cumulative).
    pub fn failed(&self) -> u64 {
        self.counts.1.load(Ordering::Relaxed)
    }

    pub(crate) fn count(&self, ok: bool) {
        let c = if ok { &self.counts.0 } else { &self.counts.1 };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The OTLP metrics pipeline the telemetry pipeline built: the meter
/// provider (its periodic reader pushes every export interval) and the
/// recorder that feeds it. Dropping it (with the
/// [`TelemetryGuard`](crate::TelemetryGuard)) pushes a last time, bounded.
pub struct OtlpMetrics {
    provider: SdkMeterProvider,
    recorder: OtlpRecorder,
    stats: MetricExportStats,
    shutdown_timeout: Duration,
}

impl fmt::Debug for OtlpMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpMetrics")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl OtlpMetrics {
    pub(crate) fn new(
        provider: SdkMeterProvider,
        meter: Meter,
        red_buckets: &[f64],
        stats: MetricExportStats,
        shutdown_timeout: Duration,
    ) -> Self {
        OtlpMetrics {
            recorder: OtlpRecorder::new(meter, red_buckets),
            provider,
            stats,
            shutdown_timeout,
        }
    }

    /// The recorder to give `metrics` (done by
    /// [`Telemetry::install`](crate::Telemetry::install); tests and
    /// applications with a local recorder combine it themselves, e.g. with
    /// `metrics_util::layers::Fanout`).
    pub fn recorder(&self) -> &OtlpRecorder {
        &self.recorder
    }

    /// The exporter's counts.
    pub fn stats(&self) -> &MetricExportStats {
        &self.stats
    }

    /// Pushes now, bounded by the shutdown timeout.
    pub fn force_flush(&self) -> bool {
        let provider = self.provider.clone();
        bounded(self.shutdown_timeout, move || {
            provider.force_flush().is_ok()
        })
    }
}

impl Drop for OtlpMetrics {
    fn drop(&mut self) {
        let provider = self.provider.clone();
        let _ = bounded(self.shutdown_timeout, move || provider.shutdown().is_ok());
    }
}

/// Runs `f` on its own thread, waiting at most `timeout` for its answer
/// (false when it does not come in time).
fn bounded(timeout: Duration, f: impl FnOnce() -> bool + Send + 'static) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("telltale-metrics-flush".into())
        .spawn(move || {
            let _ = tx.send(f());
        });
    spawned.is_ok() && rx.recv_timeout(timeout).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_the_wire() {
        let n = |name, kind, semconv| wire_name(name, kind, None, semconv).name;
        assert_eq!(
            n(
                "http_server_request_duration_seconds",
                Type::Histogram,
                true
            ),
            "http.server.request.duration"
        );
        assert_eq!(
            n(
                "myapp_http_server_request_duration_seconds",
                Type::Histogram,
                true
            ),
            "myapp.http.server.request.duration"
        );
        assert_eq!(
            n("http_server_active_requests", Type::Gauge, true),
            "http.server.active_requests"
        );
        assert_eq!(
            n(
                "http_client_request_duration_seconds",
                Type::Histogram,
                false
            ),
            "http_client_request_duration"
        );
        assert_eq!(
            n("http_requests_total", Type::Counter, false),
            "http_requests"
        );
        assert_eq!(
            n("telltale_circuitbreaker_state", Type::Gauge, false),
            "telltale_circuitbreaker_state"
        );
        assert_eq!(
            wire_name("x_seconds", Type::Histogram, None, false).unit,
            Some("s")
        );
    }

    #[test]
    fn semconv_attributes() {
        let key = Key::from_parts(
            "http_server_request_duration_seconds",
            vec![
                metrics::Label::new("http_request_method", "GET"),
                metrics::Label::new("http_response_status_code", "200"),
                metrics::Label::new("custom", "x"),
            ],
        );
        let attrs = attributes(&key, true);
        assert_eq!(
            attrs,
            [
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", 200_i64),
                KeyValue::new("custom", "x"),
            ]
        );
        assert_eq!(
            attributes(&key, false)[0].key.as_str(),
            "http_request_method"
        );
    }

    #[test]
    fn buckets_by_base_name() {
        assert_eq!(
            buckets_for("p_http_request_duration_seconds", &[1.0]),
            vec![1.0]
        );
        assert_eq!(
            buckets_for("telltale_bulkhead_wait_duration_seconds", &[1.0]),
            BULKHEAD_WAIT_BUCKETS.to_vec()
        );
        assert_eq!(
            buckets_for("other_seconds", &[1.0]),
            SEMCONV_BUCKETS.to_vec()
        );
    }
}
