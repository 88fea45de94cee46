//! [`RedMetrics`] and [`InFlight`]: prepared handles, a capped label-set cache, and
//! the active-requests gauge settled exactly once.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use telltale_core::{GrpcCode, Outcome, Side, status_str};

use super::config::{Kind, Naming, RedConfig, Scheme};

/// The label value used in place of a route or server address once a metric has
/// reached its cap on distinct label sets.
pub const OVERFLOW: &str = "__overflow__";

/// The self-metric counting requests recorded under an overflow label set, with
/// label `metric` (the name of the capped metric).
pub const OVERFLOW_METRIC: &str = "telltale_metrics_label_overflow_total";

/// The method label for methods outside the standard set.
pub const OTHER_METHOD: &str = "_OTHER";

const METHODS: [&str; 10] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    OTHER_METHOD,
];
const METHOD_OTHER: u8 = 9;

/// The standard-method index of `method`; anything else is `_OTHER`.
fn method_index(method: &Method) -> u8 {
    // Comparisons against the standard constants compare an enum tag, no strings.
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    STANDARD
        .iter()
        .position(|m| m == method)
        .map_or(METHOD_OTHER, |i| i as u8)
}

/// The label value `http_request_method` takes for `method`: its name for the nine
/// standard methods, `_OTHER` for anything else.
///
/// ```
/// use telltale_telemetry::metrics::method_label;
///
/// assert_eq!(method_label(&http::Method::GET), "GET");
/// assert_eq!(method_label(&http::Method::from_bytes(b"PURGE").unwrap()), "_OTHER");
/// ```
pub fn method_label(method: &Method) -> &'static str {
    METHODS[method_index(method) as usize]
}

const ID_NONE: u32 = u32::MAX;
const ID_OVERFLOW: u32 = u32::MAX - 1;
const GRPC_NONE: u8 = u8::MAX;

/// Strings (routes, server addresses) mapped to small ids, at most `cap` of them.
/// Lookups of known strings take a read lock and allocate nothing.
struct Interner {
    map: RwLock<HashMap<Arc<str>, u32>>,
    names: RwLock<Vec<Arc<str>>>,
    cap: usize,
}

impl Interner {
    fn new(cap: usize) -> Self {
        Interner {
            map: RwLock::new(HashMap::new()),
            names: RwLock::new(Vec::new()),
            // Ids stay below the reserved values.
            cap: cap.min(ID_OVERFLOW as usize),
        }
    }

    /// The string of an id (cold path).
    fn name(&self, id: u32) -> Option<Arc<str>> {
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id as usize)
            .cloned()
    }

    fn id(&self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return ID_NONE };
        if let Some(&id) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(s)
        {
            return id;
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = map.get(s) {
            return id;
        }
        if map.len() >= self.cap {
            return ID_OVERFLOW;
        }
        let id = map.len() as u32;
        let name: Arc<str> = Arc::from(s);
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.clone());
        map.insert(name, id);
        id
    }
}

/// One label set, in small integers. Fields a kind does not use stay at their
/// "none" value so that they do not multiply series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    route: u32,
    addr: u32,
    port: Option<u16>,
    status: u16,
    grpc: u8,
    method: u8,
    scheme: Scheme,
    error: Option<&'static str>,
}

impl SeriesKey {
    fn has_overflow(&self) -> bool {
        self.route == ID_OVERFLOW || self.addr == ID_OVERFLOW
    }

    /// The same label set with route and address folded into the overflow value.
    fn folded(mut self) -> Self {
        if self.route != ID_NONE {
            self.route = ID_OVERFLOW;
        }
        if self.addr != ID_NONE {
            self.addr = ID_OVERFLOW;
        }
        self
    }

    /// Where a label set goes once the cap is reached: its route and address
    /// folded into `__overflow__`, or the catch-all when it has neither.
    fn overflow_target(self) -> Self {
        let folded = self.folded();
        if folded == self && !self.has_overflow() {
            self.catch_all()
        } else {
            folded
        }
    }

    /// The last-resort label set once even overflow label sets are exhausted.
    fn catch_all(self) -> Self {
        SeriesKey {
            route: ID_OVERFLOW,
            addr: if self.addr == ID_NONE {
                ID_NONE
            } else {
                ID_OVERFLOW
            },
            port: None,
            status: 0,
            grpc: GRPC_NONE,
            method: METHOD_OTHER,
            scheme: self.scheme,
            error: None,
        }
    }
}

/// A fast hasher for [`SeriesKey`]s (small integers chosen by this crate, not by
/// callers, so no flooding concern): the FxHash mixing step.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

/// The strings of a label set, available when a new label set is registered.
struct LabelValues<'a> {
    route: Option<&'a str>,
    addr: Option<&'a str>,
}

/// A capped map from label sets to prepared handles.
struct SeriesMap<V> {
    inner: RwLock<SeriesInner<V>>,
    cap: usize,
    reserve: usize,
}

struct SeriesInner<V> {
    /// Handles, and whether the label set is an overflow set.
    map: HashMap<SeriesKey, (V, bool), KeyHash>,
    overflow_sets: usize,
}

impl<V> SeriesInner<V> {
    /// The number of regular (not overflow) label sets.
    fn normal(&self) -> usize {
        self.map.len() - self.overflow_sets
    }
}

impl<V: Clone> SeriesMap<V> {
    fn new(cap: usize) -> Self {
        SeriesMap {
            inner: RwLock::new(SeriesInner {
                map: HashMap::default(),
                overflow_sets: 0,
            }),
            cap,
            reserve: cap.clamp(1, 100),
        }
    }

    fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// Runs `hit` on the handles for `key`, creating them with `create` when the
    /// label set is new. Returns whether the request was recorded under an
    /// overflow label set.
    ///
    /// Known label sets, and label sets folded into existing overflow sets once
    /// the cap is reached, take the read lock only.
    fn with<R>(
        &self,
        key: SeriesKey,
        values: &LabelValues<'_>,
        create: impl Fn(&SeriesKey, &LabelValues<'_>) -> V,
        hit: impl Fn(&V) -> R,
    ) -> (R, bool) {
        let target = key.overflow_target();
        {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((v, overflow)) = inner.map.get(&key) {
                return (hit(v), *overflow || key.has_overflow());
            }
            if key.has_overflow() || inner.normal() >= self.cap {
                if let Some((v, _)) = inner.map.get(&target) {
                    return (hit(v), true);
                }
                if inner.overflow_sets >= self.reserve {
                    if let Some((v, _)) = inner.map.get(&target.catch_all()) {
                        return (hit(v), true);
                    }
                }
            }
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((v, overflow)) = inner.map.get(&key) {
            return (hit(v), *overflow || key.has_overflow());
        }
        if !key.has_overflow() && inner.normal() < self.cap {
            let v = create(&key, values);
            let r = hit(&v);
            inner.map.insert(key, (v, false));
            return (r, false);
        }
        for candidate in [target, target.catch_all()] {
            if let Some((v, _)) = inner.map.get(&candidate) {
                return (hit(v), true);
            }
            // The catch-all is always admitted: it is the last label set.
            if inner.overflow_sets < self.reserve || candidate == candidate.catch_all() {
                let v = create(&candidate, values);
                let r = hit(&v);
                inner.map.insert(candidate, (v, true));
                inner.overflow_sets += 1;
                return (r, true);
            }
        }
        unreachable!("the catch-all label set is always admitted")
    }
}

/// Metric names for one kind under one naming scheme.
struct Names {
    /// Duration histogram.
    histogram: String,
    /// Request counter (classic naming only).
    counter: Option<String>,
    /// Active-requests gauge.
    gauge: Option<String>,
}

impl Names {
    fn new(kind: Kind, naming: Naming, prefix: Option<&str>) -> Self {
        let (h, c, g) = match (naming, kind) {
            (Naming::OpenTelemetry, Kind::HttpServer) => (
                "http_server_request_duration_seconds",
                None,
                Some("http_server_active_requests"),
            ),
            (Naming::OpenTelemetry, Kind::HttpClient) => (
                "http_client_request_duration_seconds",
                None,
                Some("http_client_active_requests"),
            ),
            (Naming::OpenTelemetry, Kind::RpcServer) => {
                ("rpc_server_call_duration_seconds", None, None)
            }
            (Naming::OpenTelemetry, Kind::RpcClient) => {
                ("rpc_client_call_duration_seconds", None, None)
            }
            (Naming::Classic, Kind::HttpServer) => (
                "http_request_duration_seconds",
                Some("http_requests_total"),
                Some("http_requests_in_flight"),
            ),
            (Naming::Classic, Kind::HttpClient) => (
                "http_client_request_duration_seconds",
                Some("http_client_requests_total"),
                Some("http_client_requests_in_flight"),
            ),
            (Naming::Classic, Kind::RpcServer) => (
                "grpc_server_handling_seconds",
                Some("grpc_server_handled_total"),
                None,
            ),
            (Naming::Classic, Kind::RpcClient) => (
                "grpc_client_handling_seconds",
                Some("grpc_client_handled_total"),
                None,
            ),
        };
        let p = |n: &str| match prefix {
            Some(p) => format!("{p}_{n}"),
            None => n.to_owned(),
        };
        Names {
            histogram: p(h),
            counter: c.map(p),
            gauge: g.map(p),
        }
    }
}

/// The names of every histogram telltale may record with `config` (all kinds),
/// for configuring exporters with explicit buckets.
pub(crate) fn histogram_names(config: &RedConfig) -> Vec<String> {
    let mut out = Vec::new();
    for naming in [Naming::OpenTelemetry, Naming::Classic] {
        for kind in [
            Kind::HttpServer,
            Kind::HttpClient,
            Kind::RpcServer,
            Kind::RpcClient,
        ] {
            let n = Names::new(kind, naming, config.prefix()).histogram;
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

#[derive(Clone)]
struct Series {
    histogram: Histogram,
    counter: Option<Counter>,
}

struct Inner {
    kind: Kind,
    naming: Naming,
    names: Names,
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    described: OnceLock<()>,
    overflow: OnceLock<Counter>,
    routes: Interner,
    addrs: Interner,
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

impl Inner {
    fn with_recorder<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match &self.recorder {
            Some(r) => f(r.as_ref()),
            None => metrics::with_recorder(f),
        }
    }

    fn describe(&self) {
        self.described.get_or_init(|| {
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
                    r.describe_counter(KeyName::from(c.clone()), None, what.into());
                }
                if let Some(g) = &self.names.gauge {
                    let what = if self.kind.is_client() {
                        "Number of active HTTP client requests."
                    } else {
                        "Number of active HTTP server requests."
                    };
                    r.describe_gauge(KeyName::from(g.clone()), None, what.into());
                }
                r.describe_counter(
                    KeyName::from_const_str(OVERFLOW_METRIC),
                    None,
                    "Requests recorded under an overflow label set because a metric reached its cap on distinct label sets.".into(),
                );
            });
        });
    }

    fn metadata() -> Metadata<'static> {
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
    }

    fn overflow_counter(&self) -> &Counter {
        self.overflow.get_or_init(|| {
            let key = Key::from_parts(
                OVERFLOW_METRIC,
                vec![Label::new("metric", self.names.histogram.clone())],
            );
            self.with_recorder(|r| r.register_counter(&key, &Self::metadata()))
        })
    }

    fn route_value(key: &SeriesKey, v: &LabelValues<'_>) -> Option<String> {
        match key.route {
            ID_NONE => None,
            ID_OVERFLOW => Some(OVERFLOW.to_owned()),
            _ => v.route.map(str::to_owned),
        }
    }

    fn addr_value(&self, key: &SeriesKey, v: &LabelValues<'_>) -> Option<String> {
        match key.addr {
            ID_NONE => None,
            ID_OVERFLOW => Some(OVERFLOW.to_owned()),
            id => v
                .addr
                .map(str::to_owned)
                .or_else(|| self.addrs.name(id).map(|a| a.to_string())),
        }
    }

    /// `/pkg.Service/Method` split into service and method.
    fn split_rpc(route: Option<String>) -> (Option<String>, Option<String>) {
        let Some(route) = route else {
            return (None, None);
        };
        if route == OVERFLOW {
            return (Some(route), None);
        }
        let trimmed = route.strip_prefix('/').unwrap_or(&route);
        match trimmed.rsplit_once('/') {
            Some((service, method)) if !service.is_empty() && !method.is_empty() => {
                (Some(service.to_owned()), Some(method.to_owned()))
            }
            _ => (Some(trimmed.to_owned()), None),
        }
    }

    /// Builds the label sets and registers the handles for a new series (cold path).
    fn create_series(&self, key: &SeriesKey, v: &LabelValues<'_>) -> Series {
        self.describe();
        let method = METHODS[key.method as usize];
        let status = (key.status != 0)
            .then(|| StatusCode::from_u16(key.status).ok())
            .flatten()
            .map(status_str);
        let grpc = (key.grpc != GRPC_NONE)
            .then(|| GrpcCode::from_i32(i32::from(key.grpc)))
            .flatten();
        let route = Self::route_value(key, v);
        let addr = self.addr_value(key, v);
        let port = key.port.map(|p| p.to_string());
        let mut hist: Vec<Label> = Vec::with_capacity(6);
        let mut counter: Vec<Label> = Vec::with_capacity(4);
        fn push(labels: &mut Vec<Label>, k: &'static str, v: Option<impl Into<String>>) {
            if let Some(v) = v {
                labels.push(Label::new(k, v.into()));
            }
        }
        match (self.naming, self.kind) {
            (Naming::OpenTelemetry, Kind::HttpServer) => {
                push(&mut hist, "http_request_method", Some(method));
                push(&mut hist, "http_route", route);
                push(&mut hist, "http_response_status_code", status);
                push(&mut hist, "error_type", key.error);
                push(&mut hist, "url_scheme", Some(key.scheme.as_str()));
            }
            (Naming::OpenTelemetry, Kind::HttpClient) => {
                push(&mut hist, "http_request_method", Some(method));
                push(&mut hist, "server_address", addr);
                push(&mut hist, "server_port", port);
                push(&mut hist, "url_template", route);
                push(&mut hist, "http_response_status_code", status);
                push(&mut hist, "error_type", key.error);
            }
            (Naming::OpenTelemetry, Kind::RpcServer | Kind::RpcClient) => {
                let (service, rpc_method) = Self::split_rpc(route);
                push(&mut hist, "rpc_system", Some("grpc"));
                push(&mut hist, "rpc_service", service);
                push(&mut hist, "rpc_method", rpc_method);
                push(
                    &mut hist,
                    "rpc_grpc_status_code",
                    grpc.map(GrpcCode::as_str),
                );
                push(&mut hist, "error_type", key.error);
                push(&mut hist, "server_address", addr);
                push(&mut hist, "server_port", port);
            }
            (Naming::Classic, Kind::HttpServer) => {
                push(&mut hist, "method", Some(method));
                push(&mut hist, "endpoint", route);
                counter.clone_from(&hist);
                push(&mut counter, "code", status);
            }
            (Naming::Classic, Kind::HttpClient) => {
                let host = match (addr, port) {
                    (Some(a), Some(p)) => Some(format!("{a}:{p}")),
                    (a, _) => a,
                };
                push(&mut hist, "method", Some(method));
                push(&mut hist, "host", host);
                push(&mut hist, "endpoint", route);
                counter.clone_from(&hist);
                push(&mut counter, "code", status);
            }
            (Naming::Classic, Kind::RpcServer | Kind::RpcClient) => {
                let (service, rpc_method) = Self::split_rpc(route);
                push(&mut hist, "grpc_service", service);
                push(&mut hist, "grpc_method", rpc_method);
                if self.kind == Kind::RpcClient {
                    let host = match (addr, port) {
                        (Some(a), Some(p)) => Some(format!("{a}:{p}")),
                        (a, _) => a,
                    };
                    push(&mut hist, "host", host);
                }
                counter.clone_from(&hist);
                push(&mut counter, "grpc_code", grpc.map(GrpcCode::name));
            }
        }
        let hist_key = Key::from_parts(self.names.histogram.clone(), hist);
        let counter_key = self
            .names
            .counter
            .as_ref()
            .map(|name| Key::from_parts(name.clone(), counter));
        let meta = Self::metadata();
        self.with_recorder(|r| Series {
            histogram: r.register_histogram(&hist_key, &meta),
            counter: counter_key.map(|k| r.register_counter(&k, &meta)),
        })
    }

    fn create_gauge(&self, key: &SeriesKey, v: &LabelValues<'_>) -> Gauge {
        self.describe();
        let Some(name) = &self.names.gauge else {
            return Gauge::noop();
        };
        let method = METHODS[key.method as usize];
        let addr = self.addr_value(key, v);
        let mut labels = Vec::with_capacity(4);
        match (self.naming, self.kind.is_client()) {
            (Naming::OpenTelemetry, false) => {
                labels.push(Label::new("http_request_method", method));
                labels.push(Label::new("url_scheme", key.scheme.as_str()));
            }
            (Naming::OpenTelemetry, true) => {
                labels.push(Label::new("http_request_method", method));
                if let Some(a) = addr {
                    labels.push(Label::new("server_address", a));
                }
                if let Some(p) = key.port {
                    labels.push(Label::new("server_port", p.to_string()));
                }
            }
            (Naming::Classic, false) => labels.push(Label::new("method", method)),
            (Naming::Classic, true) => {
                labels.push(Label::new("method", method));
                let host = match (addr, key.port) {
                    (Some(a), Some(p)) => Some(format!("{a}:{p}")),
                    (a, _) => a,
                };
                if let Some(h) = host {
                    labels.push(Label::new("host", h));
                }
            }
        }
        let key = Key::from_parts(name.clone(), labels);
        self.with_recorder(|r| r.register_gauge(&key, &Self::metadata()))
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
/// moment (normally the global one). After that, recording takes two read locks,
/// hashes a few integers and the route, and allocates nothing.
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
    inner: Arc<Inner>,
}

impl fmt::Debug for RedMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedMetrics")
            .field("kind", &self.inner.kind)
            .field("naming", &self.inner.naming)
            .field("histogram", &self.inner.names.histogram)
            .field("label_sets", &self.inner.series.len())
            .finish()
    }
}

impl RedMetrics {
    /// Prepares metrics for `kind` as `config` says. Registers nothing yet: label
    /// sets and descriptions are registered when first used.
    pub fn new(kind: Kind, config: &RedConfig) -> Self {
        let cap = config.max_label_sets;
        RedMetrics {
            inner: Arc::new(Inner {
                kind,
                naming: config.naming,
                names: Names::new(kind, config.naming, config.prefix()),
                recorder: config.recorder.clone(),
                described: OnceLock::new(),
                overflow: OnceLock::new(),
                routes: Interner::new(cap),
                addrs: Interner::new(cap),
                series: SeriesMap::new(cap),
                gauges: SeriesMap::new(cap),
                server_gauges: std::array::from_fn(|_| OnceLock::new()),
            }),
        }
    }

    /// The kind of request recorded.
    pub fn kind(&self) -> Kind {
        self.inner.kind
    }

    /// The name of the duration histogram (`http_server_request_duration_seconds`, …),
    /// also the `metric` label of the overflow counter.
    pub fn histogram_name(&self) -> &str {
        &self.inner.names.histogram
    }

    /// The number of distinct label sets of the duration histogram so far
    /// (including overflow sets): at most the cap, plus `min(cap, 100)` sets whose
    /// route or address is `__overflow__`, plus one catch-all set.
    pub fn label_sets(&self) -> usize {
        self.inner.series.len()
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
        let started = Instant::now();
        let inner = &*self.inner;
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
    started: Instant,
    gauge: GaugeRef,
    method: u8,
    scheme: Scheme,
    addr: u32,
    port: Option<u16>,
}

impl fmt::Debug for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("kind", &self.metrics.inner.kind)
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

    /// When the request started.
    pub fn started_at(&self) -> Instant {
        self.started
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
        let side = if self.metrics.inner.kind.is_client() {
            Side::Client
        } else {
            Side::Server
        };
        let error = outcome.error_type(side);
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
        let inner = &*self.metrics.inner;
        let rpc = inner.kind.is_rpc();
        let key = SeriesKey {
            route: inner.routes.id(route),
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
        let ((), overflowed) = inner.series.with(
            key,
            &values,
            |k, v| inner.create_series(k, v),
            |s| {
                s.histogram.record(secs);
                if let Some(c) = &s.counter {
                    c.increment(1);
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
                if let Some(g) = self.metrics.inner.server_gauges[*index as usize].get() {
                    g.decrement(1.0);
                }
            }
            GaugeRef::Client(g) => g.decrement(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::prometheus_builder;
    use metrics_exporter_prometheus::PrometheusHandle;

    fn setup(
        kind: Kind,
        builder: crate::metrics::RedConfigBuilder,
    ) -> (RedMetrics, PrometheusHandle) {
        let config = builder.build().unwrap();
        let recorder = prometheus_builder(&config).build_recorder();
        let handle = recorder.handle();
        let metrics = RedMetrics::new(kind, &config.with_recorder(Arc::new(recorder)));
        (metrics, handle)
    }

    /// Lines of the exposition for `name` (samples only), sorted.
    fn series(text: &str, name: &str) -> Vec<String> {
        let mut out: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .map(str::to_owned)
            .collect();
        out.sort();
        out
    }

    #[test]
    fn semconv_http_server_labels_and_buckets() {
        let (m, h) = setup(Kind::HttpServer, RedConfig::builder());
        m.start(&Method::GET, Scheme::Https).finish(
            Some("/users/{id}"),
            Some(StatusCode::OK),
            None,
            None,
        );
        m.start(&Method::from_bytes(b"PURGE").unwrap(), Scheme::Http)
            .finish(
                None,
                Some(StatusCode::SERVICE_UNAVAILABLE),
                None,
                Some("503"),
            );
        m.start(&Method::POST, Scheme::Http)
            .finish(Some("/orders"), None, None, Some("cancelled"));
        let text = h.render();
        assert!(
            text.contains("# TYPE http_server_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                "# HELP http_server_request_duration_seconds Duration of HTTP server requests."
            ),
            "{text}"
        );
        assert_eq!(
            series(&text, "http_server_request_duration_seconds_count"),
            [
                r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/users/{id}",http_response_status_code="200",url_scheme="https"} 1"#,
                r#"http_server_request_duration_seconds_count{http_request_method="POST",http_route="/orders",error_type="cancelled",url_scheme="http"} 1"#,
                r#"http_server_request_duration_seconds_count{http_request_method="_OTHER",http_response_status_code="503",error_type="503",url_scheme="http"} 1"#,
            ]
        );
        // Explicit semconv buckets, 14 boundaries plus +Inf, per series.
        let buckets = series(&text, "http_server_request_duration_seconds_bucket");
        assert_eq!(buckets.len(), 3 * 15);
        for le in ["0.005", "0.075", "7.5", "10", "+Inf"] {
            assert!(
                text.contains(&format!(r#"url_scheme="https",le="{le}"}} 1"#)),
                "{le}: {text}"
            );
        }
        assert_eq!(
            series(&text, "http_server_active_requests"),
            [
                r#"http_server_active_requests{http_request_method="GET",url_scheme="https"} 0"#,
                r#"http_server_active_requests{http_request_method="POST",url_scheme="http"} 0"#,
                r#"http_server_active_requests{http_request_method="_OTHER",url_scheme="http"} 0"#,
            ]
        );
        assert!(!text.contains(OVERFLOW_METRIC), "{text}");
    }

    #[test]
    fn active_gauge_counts_in_flight_and_returns_to_zero_when_dropped() {
        let (m, h) = setup(Kind::HttpServer, RedConfig::builder());
        let a = m.start(&Method::GET, Scheme::Http);
        let b = m.start(&Method::GET, Scheme::Http);
        let c = m.start(&Method::GET, Scheme::Http);
        let gauge = |h: &PrometheusHandle| series(&h.render(), "http_server_active_requests");
        assert_eq!(
            gauge(&h),
            [r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 3"#]
        );
        drop(a); // cancelled without finish: gauge down, nothing recorded
        let took = b.finish(Some("/x"), Some(StatusCode::OK), None, None);
        assert!(took < Duration::from_secs(60));
        assert_eq!(
            gauge(&h),
            [r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 1"#]
        );
        drop(c);
        assert_eq!(
            gauge(&h),
            [r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#]
        );
        let text = h.render();
        assert_eq!(
            series(&text, "http_server_request_duration_seconds_count"),
            [
                r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/x",http_response_status_code="200",url_scheme="http"} 1"#
            ]
        );
        // Many threads, a third of them dropping unfinished.
        std::thread::scope(|s| {
            for t in 0..8 {
                let m = m.clone();
                s.spawn(move || {
                    for i in 0..1000 {
                        let f = m.start(&Method::GET, Scheme::Http);
                        if (i + t) % 3 != 0 {
                            f.finish(Some("/x"), Some(StatusCode::OK), None, None);
                        }
                    }
                });
            }
        });
        assert_eq!(
            gauge(&h),
            [r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#]
        );
    }

    #[test]
    fn finish_with_and_outcome_use_the_given_duration_and_classification() {
        let (m, h) = setup(Kind::HttpServer, RedConfig::builder());
        m.start(&Method::GET, Scheme::Http).finish_with(
            Duration::from_millis(300),
            Some("/slow"),
            Some(StatusCode::OK),
            None,
            None,
        );
        let outcome = Outcome::Response {
            status: StatusCode::BAD_GATEWAY,
            grpc: None,
        };
        m.start(&Method::GET, Scheme::Http)
            .finish_outcome(Some("/slow"), &outcome);
        let text = h.render();
        assert!(text.contains(r#"http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/slow",http_response_status_code="200",url_scheme="http",le="0.25"} 0"#), "{text}");
        assert!(text.contains(r#"http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/slow",http_response_status_code="200",url_scheme="http",le="0.5"} 1"#), "{text}");
        assert!(text.contains(r#"http_server_request_duration_seconds_sum{http_request_method="GET",http_route="/slow",http_response_status_code="200",url_scheme="http"} 0.3"#), "{text}");
        assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/slow",http_response_status_code="502",error_type="502",url_scheme="http"} 1"#), "{text}");
    }

    #[test]
    fn semconv_client_labels() {
        let (m, h) = setup(Kind::HttpClient, RedConfig::builder());
        let f = m.start_client(
            &Method::GET,
            Scheme::Https,
            Some("api.example.com"),
            Some(443),
        );
        assert!(h.render().contains(r#"http_client_active_requests{http_request_method="GET",server_address="api.example.com",server_port="443"} 1"#));
        f.finish(None, Some(StatusCode::NOT_FOUND), None, Some("404"));
        let text = h.render();
        assert_eq!(
            series(&text, "http_client_request_duration_seconds_count"),
            [
                r#"http_client_request_duration_seconds_count{http_request_method="GET",server_address="api.example.com",server_port="443",http_response_status_code="404",error_type="404"} 1"#
            ]
        );
        assert!(text.contains(r#"http_client_active_requests{http_request_method="GET",server_address="api.example.com",server_port="443"} 0"#), "{text}");
    }

    #[test]
    fn semconv_rpc_labels_split_the_route() {
        let (m, h) = setup(Kind::RpcServer, RedConfig::builder());
        m.start(&Method::POST, Scheme::Http).finish(
            Some("/helloworld.Greeter/SayHello"),
            Some(StatusCode::OK),
            Some(GrpcCode::Ok),
            None,
        );
        m.start(&Method::POST, Scheme::Http).finish(
            Some("/helloworld.Greeter/SayHello"),
            Some(StatusCode::OK),
            Some(GrpcCode::Unavailable),
            Some("UNAVAILABLE"),
        );
        let (c, hc) = setup(Kind::RpcClient, RedConfig::builder());
        c.start_client(&Method::POST, Scheme::Http, Some("10.0.0.1"), Some(50051))
            .finish(
                Some("/helloworld.Greeter/SayHello"),
                None,
                Some(GrpcCode::NotFound),
                Some("NOT_FOUND"),
            );
        let text = h.render();
        assert_eq!(
            series(&text, "rpc_server_call_duration_seconds_count"),
            [
                r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="helloworld.Greeter",rpc_method="SayHello",rpc_grpc_status_code="0"} 1"#,
                r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="helloworld.Greeter",rpc_method="SayHello",rpc_grpc_status_code="14",error_type="UNAVAILABLE"} 1"#,
            ]
        );
        assert!(!text.contains("active"), "no RPC gauge: {text}");
        assert_eq!(
            series(&hc.render(), "rpc_client_call_duration_seconds_count"),
            [
                r#"rpc_client_call_duration_seconds_count{rpc_system="grpc",rpc_service="helloworld.Greeter",rpc_method="SayHello",rpc_grpc_status_code="5",error_type="NOT_FOUND",server_address="10.0.0.1",server_port="50051"} 1"#
            ]
        );
    }

    #[test]
    fn classic_naming() {
        let (m, h) = setup(
            Kind::HttpServer,
            RedConfig::builder().naming(Naming::Classic),
        );
        for status in [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            m.start(&Method::GET, Scheme::Https).finish(
                Some("/a"),
                Some(status),
                None,
                Some("500"),
            );
        }
        let keep = m.start(&Method::GET, Scheme::Https);
        let text = h.render();
        assert_eq!(
            series(&text, "http_requests_total"),
            [
                r#"http_requests_total{method="GET",endpoint="/a",code="200"} 2"#,
                r#"http_requests_total{method="GET",endpoint="/a",code="500"} 1"#,
            ]
        );
        assert_eq!(
            series(&text, "http_request_duration_seconds_count"),
            [r#"http_request_duration_seconds_count{method="GET",endpoint="/a"} 3"#]
        );
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram"),
            "{text}"
        );
        assert_eq!(
            series(&text, "http_requests_in_flight"),
            [r#"http_requests_in_flight{method="GET"} 1"#]
        );
        drop(keep);

        let (g, hg) = setup(
            Kind::RpcServer,
            RedConfig::builder().naming(Naming::Classic),
        );
        g.start(&Method::POST, Scheme::Http).finish(
            Some("/pkg.Svc/Get"),
            None,
            Some(GrpcCode::Internal),
            Some("INTERNAL"),
        );
        let text = hg.render();
        assert_eq!(
            series(&text, "grpc_server_handled_total"),
            [
                r#"grpc_server_handled_total{grpc_service="pkg.Svc",grpc_method="Get",grpc_code="INTERNAL"} 1"#
            ]
        );
        assert!(
            text.contains("# TYPE grpc_server_handling_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn prefix_applies_to_names_and_buckets() {
        let (m, h) = setup(Kind::HttpServer, RedConfig::builder().prefix("shop"));
        m.start(&Method::GET, Scheme::Http)
            .finish(Some("/"), Some(StatusCode::OK), None, None);
        let text = h.render();
        assert!(
            text.contains("# TYPE shop_http_server_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains("shop_http_server_active_requests{"), "{text}");
    }

    /// A small deterministic generator, so the test needs no extra crate.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn cardinality_is_capped_with_an_overflow_label_and_counter() {
        let cap = 50;
        let (m, h) = setup(Kind::HttpServer, RedConfig::builder().max_label_sets(cap));
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
        let mut after_cap = None;
        let total = 100_000;
        for i in 0..total {
            let route = format!("/r/{:x}", next(&mut rng));
            let status = if i % 10 == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            let err = (i % 10 == 0).then_some("500");
            m.start(&Method::GET, Scheme::Http)
                .finish(Some(&route), Some(status), None, err);
            if i == 1000 {
                after_cap = Some(h.render());
            }
        }
        let text = h.render();
        let count_lines = series(&text, "http_server_request_duration_seconds_count");
        let before = series(
            after_cap.as_deref().unwrap(),
            "http_server_request_duration_seconds_count",
        );
        // Same series as right after the cap was hit: nothing new appeared.
        let names = |v: &[String]| {
            v.iter()
                .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&count_lines), names(&before));
        assert_eq!(count_lines.len(), cap + 2, "{count_lines:#?}");
        assert_eq!(m.label_sets(), cap + 2);
        assert!(text.contains(
            r#"http_route="__overflow__",http_response_status_code="200",url_scheme="http"} "#
        ));
        assert!(text.contains(r#"http_route="__overflow__",http_response_status_code="500",error_type="500",url_scheme="http"} "#));
        // Every request is counted somewhere; the overflow counter says how many were folded.
        let sum: u64 = count_lines
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(sum, total);
        let overflow = series(&text, OVERFLOW_METRIC);
        assert_eq!(overflow.len(), 1, "{text}");
        assert_eq!(
            overflow[0],
            format!(
                r#"{OVERFLOW_METRIC}{{metric="http_server_request_duration_seconds"}} {}"#,
                total - cap as u64
            )
        );
        assert!(text.contains(&format!("# TYPE {OVERFLOW_METRIC} counter")));
    }

    #[test]
    fn overflow_sets_are_bounded_too() {
        // Cap 2, reserve 2: one folded overflow set, then only the catch-all.
        let (m, h) = setup(Kind::HttpServer, RedConfig::builder().max_label_sets(2));
        for code in 200..600u16 {
            let s = StatusCode::from_u16(code).unwrap();
            m.start(&Method::GET, Scheme::Http)
                .finish(Some("/a"), Some(s), None, None);
            m.start(&Method::PUT, Scheme::Http)
                .finish(None, Some(s), None, None);
        }
        let text = h.render();
        let lines = series(&text, "http_server_request_duration_seconds_count");
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert_eq!(m.label_sets(), 4);
        assert!(lines.iter().any(|l| l.starts_with(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="__overflow__",http_response_status_code="201",url_scheme="http"} 1"#)), "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with(r#"http_server_request_duration_seconds_count{http_request_method="_OTHER",http_route="__overflow__",url_scheme="http"}"#)), "{lines:#?}");
        let sum: u64 = lines
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(sum, 800);
    }

    #[test]
    fn client_addresses_are_capped() {
        let (m, h) = setup(Kind::HttpClient, RedConfig::builder().max_label_sets(3));
        for i in 0..100 {
            let host = format!("h{i}.example");
            m.start_client(&Method::GET, Scheme::Http, Some(&host), Some(80))
                .finish(None, Some(StatusCode::OK), None, None);
        }
        let text = h.render();
        assert_eq!(
            series(&text, "http_client_request_duration_seconds_count").len(),
            4,
            "{text}"
        );
        assert_eq!(
            series(&text, "http_client_active_requests").len(),
            4,
            "{text}"
        );
        assert!(text.contains(r#"server_address="__overflow__""#), "{text}");
    }

    #[test]
    fn binds_to_the_current_recorder_without_a_fixed_one() {
        let config = RedConfig::default();
        let recorder = prometheus_builder(&config).build_recorder();
        let m = RedMetrics::new(Kind::HttpServer, &config);
        metrics::with_local_recorder(&recorder, || {
            m.start(&Method::GET, Scheme::Http).finish(
                Some("/l"),
                Some(StatusCode::OK),
                None,
                None,
            );
        });
        // The handles stay bound after the scope ends.
        m.start(&Method::GET, Scheme::Http)
            .finish(Some("/l"), Some(StatusCode::OK), None, None);
        let text = recorder.handle().render();
        assert!(text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/l",http_response_status_code="200",url_scheme="http"} 2"#), "{text}");
    }

    #[test]
    fn method_labels() {
        for (m, l) in [
            (Method::GET, "GET"),
            (Method::PATCH, "PATCH"),
            (Method::CONNECT, "CONNECT"),
        ] {
            assert_eq!(method_label(&m), l);
        }
        assert_eq!(
            method_label(&Method::from_bytes(b"get").unwrap()),
            OTHER_METHOD
        );
    }
}
