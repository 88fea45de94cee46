//! [`RedMetrics`] and [`InFlight`]: recording. Handles are prepared once per
//! label set ([`storage`](super::storage)), label sets are built once
//! ([`labels`](super::labels)), and the active-requests gauge is settled
//! exactly once.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The request clock: `quanta`'s, which reads the CPU's time-stamp counter
/// (calibrated against the OS clock, and the OS clock itself where the counter
/// is unreliable) in a few nanoseconds, where `Instant::now` costs a system
/// clock read (tens of nanoseconds on virtual machines); twice per request.
/// The Prometheus recorder already reads it for every histogram sample.
type Clock = quanta::Instant;

use http::{Method, StatusCode};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use telltale_core::http::METHOD_LABELS as METHODS;
use telltale_core::{GrpcCode, Outcome};

use super::config::{Kind, Naming, RedConfig, Scheme};
use super::exemplars::{self, SeriesExemplars};
use telltale_core::metric_name::full;

use super::names::{Names, OVERFLOW_HELP, OVERFLOW_METRIC};
use super::storage::{GRPC_NONE, ID_NONE, Interner, LabelValues, Routes, SeriesKey, SeriesMap};

/// The method index of methods outside the standard set.
pub(super) const METHOD_OTHER: u8 = (METHODS.len() - 1) as u8;

/// The standard-method index of `method` (no strings compared); anything
/// else is [`METHOD_OTHER`].
fn method_index(method: &Method) -> u8 {
    telltale_core::http::method_index(method) as u8
}

/// The handles of one label set.
#[derive(Clone)]
pub(super) struct Series {
    pub(super) histogram: Histogram,
    pub(super) counter: Option<Counter>,
    /// The exemplars of the histogram's buckets.
    pub(super) exemplars: Option<Arc<SeriesExemplars>>,
}

/// What the clones of one [`RedMetrics`] share.
pub(super) struct Shared {
    pub(super) kind: Kind,
    pub(super) naming: Naming,
    pub(super) names: Names,
    /// The histogram's buckets (where exemplars are kept).
    pub(super) buckets: Arc<[f64]>,
    /// The full name of the label-cap counter.
    overflow_name: String,
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    described: OnceLock<()>,
    overflow: OnceLock<Counter>,
    /// Route ids, with the handles of the label sets seen under each route.
    routes: Routes<Series>,
    pub(super) addrs: Interner,
    series: SeriesMap<Series>,
    /// Client gauges, labelled by server address (capped).
    gauges: SeriesMap<Gauge>,
    /// Server gauges: one per method and scheme, created on first use.
    server_gauges: [OnceLock<Gauge>; SERVER_GAUGES],
}

const SERVER_GAUGES: usize = METHODS.len() * 2;

/// The active-requests gauge an [`InFlight`] lowers when dropped.
enum GaugeRef {
    None,
    Server(u8),
    Client(Gauge),
}

impl Shared {
    pub(super) fn with_recorder<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match &self.recorder {
            Some(r) => f(r.as_ref()),
            None => metrics::with_recorder(f),
        }
    }

    pub(super) fn describe(&self) {
        self.described.get_or_init(|| {
            // OTLP pushes this histogram with the same buckets.
            super::otlp::note_buckets(&self.names.histogram, &self.buckets);
            self.with_recorder(|r| {
                let what = match self.kind {
                    Kind::HttpServer => "Duration of HTTP server requests.",
                    Kind::HttpClient => "Duration of HTTP client requests.",
                    Kind::RpcServer => "Duration of RPC server calls.",
                    Kind::RpcClient => "Duration of RPC client calls.",
                };
                r.describe_histogram(
                    KeyName::from(self.names.histogram.clone()),
                    Some(Unit::Seconds),
                    what.into(),
                );
                if let Some(c) = &self.names.counter {
                    let what = if self.kind.is_rpc() {
                        "Completed RPCs."
                    } else {
                        "Completed HTTP requests."
                    };
                    r.describe_counter(KeyName::from(c.clone()), Some(Unit::Count), what.into());
                }
                if let Some(g) = &self.names.gauge {
                    let what = if self.kind.is_client() {
                        "Number of active HTTP client requests."
                    } else {
                        "Number of active HTTP server requests."
                    };
                    r.describe_gauge(KeyName::from(g.clone()), Some(Unit::Count), what.into());
                }
                r.describe_counter(
                    KeyName::from(self.overflow_name.clone()),
                    Some(Unit::Count),
                    OVERFLOW_HELP.into(),
                );
            });
        });
    }

    pub(super) fn metadata() -> Metadata<'static> {
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
    }

    fn overflow_counter(&self) -> &Counter {
        self.overflow.get_or_init(|| {
            let key = Key::from_parts(
                self.overflow_name.clone(),
                vec![Label::new("metric", self.names.histogram.clone())],
            );
            self.with_recorder(|r| r.register_counter(&key, &Self::metadata()))
        })
    }
}

/// RED metrics (rate, errors, duration) for one [`Kind`] of request, with handles
/// and label sets prepared once and reused.
///
/// Cheap to clone (an `Arc`). Each request calls [`start`](Self::start) (or
/// [`start_client`](Self::start_client)) and then [`InFlight::finish`]; the
/// active-requests gauge goes back down when the [`InFlight`] is dropped,
/// finished or not.
///
/// Label sets are registered with the recorder the first time they are seen: the
/// one given with [`RedConfig::with_recorder`], else the recorder current at that
/// moment (normally the global one). After that, recording takes one read lock,
/// hashes the route and compares a few integers (the label sets seen under a
/// route are kept next to it), and allocates nothing. Durations are measured
/// with the CPU's time-stamp counter (`quanta`, calibrated against the OS
/// clock, which it falls back to where the counter is unreliable), two reads
/// per request.
///
/// ```
/// use std::sync::Arc;
/// use http::{Method, StatusCode};
/// use telltale_telemetry::metrics::{prometheus_builder, Kind, RedConfig, RedMetrics, Scheme};
///
/// let config = RedConfig::default();
/// let recorder = prometheus_builder(&config).build_recorder();
/// let handle = recorder.handle();
/// let metrics = RedMetrics::new(Kind::HttpServer, &config.with_recorder(Arc::new(recorder)));
///
/// let request = metrics.start(&Method::GET, Scheme::Http);
/// request.finish(Some("/users/{id}"), Some(StatusCode::OK), None, None);
///
/// let text = handle.render();
/// assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/users/{id}",http_response_status_code="200",url_scheme="http"} 1"#));
/// assert!(text.contains(r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#));
/// ```
#[derive(Clone)]
pub struct RedMetrics {
    shared: Arc<Shared>,
}

impl fmt::Debug for RedMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedMetrics")
            .field("kind", &self.shared.kind)
            .field("naming", &self.shared.naming)
            .field("histogram", &self.shared.names.histogram)
            .field("label_sets", &self.shared.series.len())
            .finish()
    }
}

impl RedMetrics {
    /// Prepares metrics for `kind` as `config` says. Registers nothing yet: label
    /// sets and descriptions are registered when first used.
    pub fn new(kind: Kind, config: &RedConfig) -> Self {
        // The request clock calibrates on its first read (once per process,
        // usually 10-20 ms): here, not on the first request.
        let _ = Clock::now();
        let cap = config.max_label_sets;
        RedMetrics {
            shared: Arc::new(Shared {
                kind,
                naming: config.naming,
                names: Names::new(kind, config.naming, config.effective_prefix()),
                buckets: config.buckets.clone(),
                overflow_name: full(telltale_core::metric_name::prefix(), OVERFLOW_METRIC),
                recorder: config.recorder.clone(),
                described: OnceLock::new(),
                overflow: OnceLock::new(),
                routes: Routes::new(cap),
                addrs: Interner::new(cap),
                series: SeriesMap::new(cap),
                gauges: SeriesMap::new(cap),
                server_gauges: std::array::from_fn(|_| OnceLock::new()),
            }),
        }
    }

    /// The kind of request recorded.
    pub fn kind(&self) -> Kind {
        self.shared.kind
    }

    /// The name of the duration histogram (`http_server_request_duration_seconds`, …),
    /// also the `metric` label of the overflow counter.
    pub fn histogram_name(&self) -> &str {
        &self.shared.names.histogram
    }

    /// The number of distinct label sets of the duration histogram so far
    /// (including overflow sets): at most the cap, plus `min(cap, 100)` sets whose
    /// route or address is `__overflow__`, plus one catch-all set.
    pub fn label_sets(&self) -> usize {
        self.shared.series.len()
    }

    /// A request begins: the active-requests gauge (labels method and scheme) goes
    /// up by one, and the clock starts. Client kinds label by server address with
    /// [`start_client`](Self::start_client) instead.
    pub fn start(&self, method: &Method, scheme: Scheme) -> InFlight {
        self.start_client(method, scheme, None, None)
    }

    /// A client request to `server_address:server_port` begins (`server.address`
    /// and `server.port` in the conventions). Server kinds ignore the address.
    pub fn start_client(
        &self,
        method: &Method,
        scheme: Scheme,
        server_address: Option<&str>,
        server_port: Option<u16>,
    ) -> InFlight {
        let started = Clock::now();
        let inner = &*self.shared;
        let kind = inner.kind;
        let method = if kind.is_rpc() {
            0
        } else {
            method_index(method)
        };
        let (addr, port) = if kind.is_client() {
            (inner.addrs.id(server_address), server_port)
        } else {
            (ID_NONE, None)
        };
        // Semconv labels the server gauge by scheme; nothing else does.
        let gauge_scheme = if kind == Kind::HttpServer && inner.naming == Naming::OpenTelemetry {
            scheme
        } else {
            Scheme::Http
        };
        let key = SeriesKey {
            route: ID_NONE,
            addr,
            port,
            status: 0,
            grpc: GRPC_NONE,
            method,
            scheme: gauge_scheme,
            error: None,
        };
        let gauge = if inner.names.gauge.is_none() {
            GaugeRef::None
        } else if !kind.is_client() {
            // A fixed slot per method and scheme: no lock, no map.
            let index = method as usize * 2 + usize::from(gauge_scheme == Scheme::Https);
            let values = LabelValues {
                route: None,
                addr: None,
            };
            inner.server_gauges[index]
                .get_or_init(|| inner.create_gauge(&key, &values))
                .increment(1.0);
            GaugeRef::Server(index as u8)
        } else {
            let values = LabelValues {
                route: None,
                addr: server_address,
            };
            let (gauge, _) = inner.gauges.with(
                key,
                &values,
                |k, v| inner.create_gauge(k, v),
                |g| {
                    g.increment(1.0);
                    g.clone()
                },
            );
            GaugeRef::Client(gauge)
        };
        InFlight {
            metrics: self.clone(),
            started,
            gauge,
            method,
            scheme,
            addr,
            port,
            trace: None,
        }
    }
}

/// One request in flight, from [`RedMetrics::start`] to [`finish`](Self::finish).
///
/// Dropping it (finished or not) lowers the active-requests gauge exactly once; a
/// drop without `finish` records nothing else, so a layer should call `finish`
/// for cancelled requests too (with `error_type` `"cancelled"`).
pub struct InFlight {
    metrics: RedMetrics,
    started: Clock,
    gauge: GaugeRef,
    method: u8,
    scheme: Scheme,
    addr: u32,
    port: Option<u16>,
    /// The sampled trace and span IDs this request's exemplar points to.
    trace: Option<([u8; 16], [u8; 8])>,
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("kind", &self.metrics.shared.kind)
            .field("method", &METHODS[self.method as usize])
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

impl InFlight {
    /// Time since [`RedMetrics::start`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// When the request started, on the standard monotonic clock: now minus
    /// [`elapsed`](Self::elapsed) (the request clock is the CPU's time-stamp
    /// counter, see [`RedMetrics`]).
    pub fn started_at(&self) -> Instant {
        let now = Instant::now();
        now.checked_sub(self.elapsed()).unwrap_or(now)
    }

    /// Whether exemplars are collected (see [`exemplars`](super::exemplars)):
    /// when not, [`exemplar_from`](Self::exemplar_from) need not be called.
    pub fn wants_exemplar(&self) -> bool {
        exemplars::enabled()
    }

    /// The request's span: when its trace is sampled, the duration
    /// [`finish`](Self::finish) records is also kept as the exemplar of its
    /// histogram bucket, pointing to this trace and span. Unsampled and
    /// invalid contexts are ignored. The request layers call it.
    pub fn exemplar_from(&mut self, span_context: &opentelemetry::trace::SpanContext) {
        if span_context.is_valid() && span_context.is_sampled() {
            self.trace = Some((
                span_context.trace_id().to_bytes(),
                span_context.span_id().to_bytes(),
            ));
        }
    }

    /// Records the request with the time elapsed since it started, and returns that
    /// duration (so the span can report the same one).
    ///
    /// - `route`: the router's template (axum `MatchedPath`, e.g. `/users/{id}`), the
    ///   gRPC path `/pkg.Service/Method`, or for HTTP clients an optional URL
    ///   template; `None` when unmatched (the label is then omitted). Never a raw path.
    /// - `status`: the HTTP status, when a response head was produced.
    /// - `grpc`: the gRPC status, for gRPC calls.
    /// - `error_type`: the `error.type` of the outcome (see
    ///   [`Outcome::error_type`]), `None` when not an error.
    pub fn finish(
        self,
        route: Option<&str>,
        status: Option<StatusCode>,
        grpc: Option<GrpcCode>,
        error_type: Option<&'static str>,
    ) -> Duration {
        let duration = self.started.elapsed();
        self.finish_with(duration, route, status, grpc, error_type);
        duration
    }

    /// Like [`finish`](Self::finish), taking the status, gRPC code and `error.type`
    /// from a core [`Outcome`] seen from this kind's side.
    pub fn finish_outcome(self, route: Option<&str>, outcome: &Outcome) -> Duration {
        let error = outcome.error_type(self.metrics.shared.kind.side());
        self.finish(route, outcome.status(), outcome.grpc_code(), error)
    }

    /// Records the request with a duration measured elsewhere (the layer's single
    /// clock); otherwise like [`finish`](Self::finish).
    pub fn finish_with(
        self,
        duration: Duration,
        route: Option<&str>,
        status: Option<StatusCode>,
        grpc: Option<GrpcCode>,
        error_type: Option<&'static str>,
    ) {
        let inner = &*self.metrics.shared;
        let rpc = inner.kind.is_rpc();
        let key = SeriesKey {
            // Set by `routes.with`.
            route: ID_NONE,
            addr: self.addr,
            port: self.port,
            status: if rpc {
                0
            } else {
                status.map_or(0, |s| s.as_u16())
            },
            grpc: if rpc {
                grpc.map_or(GRPC_NONE, |g| g.as_i32() as u8)
            } else {
                GRPC_NONE
            },
            method: self.method,
            scheme: if inner.kind == Kind::HttpServer && inner.naming == Naming::OpenTelemetry {
                self.scheme
            } else {
                Scheme::Http
            },
            error: match inner.naming {
                Naming::OpenTelemetry => error_type,
                Naming::Classic => None,
            },
        };
        let values = LabelValues { route, addr: None };
        let secs = duration.as_secs_f64();
        let exemplar = self.trace.map(|(trace_id, span_id)| exemplars::Exemplar {
            trace_id,
            span_id,
            value: secs,
            timestamp: std::time::SystemTime::now(),
        });
        let ((), overflowed) = inner.routes.with(
            route,
            key,
            |key| {
                inner
                    .series
                    .resolve(key, &values, |k, v| inner.create_series(k, v))
            },
            |s| {
                s.histogram.record(secs);
                if let Some(c) = &s.counter {
                    c.increment(1);
                }
                if let (Some(e), Some(slots)) = (exemplar, &s.exemplars) {
                    slots.record(e);
                }
            },
        );
        if overflowed {
            inner.overflow_counter().increment(1);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        match &self.gauge {
            GaugeRef::None => {}
            GaugeRef::Server(index) => {
                if let Some(g) = self.metrics.shared.server_gauges[*index as usize].get() {
                    g.decrement(1.0);
                }
            }
            GaugeRef::Client(g) => g.decrement(1.0),
        }
    }
}

#[cfg(test)]
mod tests;
