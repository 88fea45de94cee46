//! RED per route from the process's own Prometheus recorder.
//!
//! The request layers already keep every request's duration in a histogram
//! (`http_server_request_duration_seconds`, `rpc_server_call_duration_seconds`
//! or the classic names) in the `metrics` recorder. The debug surface reads
//! those through the recorder's [`PrometheusHandle`] when a page is asked
//! for, so it adds no work to the request path. `PrometheusHandle` offers the
//! text exposition only: the few families needed are read back from it with
//! the small parser below (hand-written: it reads sample lines of the
//! Prometheus text format 0.0.4 as its own recorder wrote them, names,
//! label sets with `\\`, `\"` and `\n` escapes, and a value, and nothing
//! else of the format is needed).
//!
//! Rates and quantiles cover a window: the surface keeps the totals it saw
//! at earlier reads (at most one every [`SAMPLE_EVERY`], for [`WINDOW`]) and
//! compares with the oldest; before any earlier read, the window is the time
//! since the surface was built. p50 and p99 interpolate inside the bucket as
//! PromQL's `histogram_quantile` does.
//!
//! ```
//! use telltale_debug::DebugSurface;
//! use telltale_telemetry::metrics::{RedConfig, prometheus_builder};
//!
//! let recorder = prometheus_builder(&RedConfig::default()).build_recorder();
//! let surface = DebugSurface::new().metrics(recorder.handle());
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::histogram!(
//!         "http_server_request_duration_seconds",
//!         "http_request_method" => "GET",
//!         "http_route" => "/orders/{id}",
//!         "http_response_status_code" => "200",
//!         "url_scheme" => "http",
//!     )
//!     .record(0.012);
//! });
//! assert!(surface.render_page(None).contains("data-route=\"GET /orders/{id}\""));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};

/// How far back rates look (at most).
pub const WINDOW: Duration = Duration::from_secs(60);
/// The least time between two kept totals.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// What a route is called on the page: `GET /orders/{id}` or
/// `grpc pkg.Service/Method`.
type RouteKey = String;

/// The totals of one route.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) count: f64,
    pub(crate) errors: f64,
    /// Cumulative bucket counts by upper bound (`+Inf` last).
    pub(crate) buckets: Vec<(f64, f64)>,
}

impl Totals {
    fn add_bucket(&mut self, le: f64, n: f64) {
        match self.buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += n,
            None => {
                self.buckets.push((le, n));
                self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
    }

    fn minus(&self, earlier: Option<&Totals>) -> Totals {
        let Some(e) = earlier else {
            return self.clone();
        };
        Totals {
            count: (self.count - e.count).max(0.0),
            errors: (self.errors - e.errors).max(0.0),
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| {
                    let before = e
                        .buckets
                        .iter()
                        .find(|(b, _)| b == le)
                        .map_or(0.0, |(_, c)| *c);
                    (*le, (n - before).max(0.0))
                })
                .collect(),
        }
    }

    /// The `q` quantile (0..=1) in seconds, as `histogram_quantile` computes
    /// it; `None` without observations.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last().map(|(_, n)| *n)?;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = 0.0;
        let mut below = 0.0;
        for (i, (le, n)) in self.buckets.iter().enumerate() {
            if *n >= rank {
                if le.is_infinite() {
                    // As PromQL: the upper bound of the last finite bucket.
                    return Some(if i == 0 { 0.0 } else { self.buckets[i - 1].0 });
                }
                let in_bucket = n - below;
                if in_bucket <= 0.0 {
                    return Some(*le);
                }
                return Some(lower + (le - lower) * ((rank - below) / in_bucket));
            }
            lower = *le;
            below = *n;
        }
        None
    }
}

/// Which family a sample line belongs to, by the end of its name (any
/// prefix is allowed).
enum Family {
    /// OpenTelemetry HTTP server histogram: `_bucket`, `_count`.
    OtelHttp(Part),
    /// OpenTelemetry RPC server histogram.
    OtelRpc(Part),
    /// Classic HTTP histogram (no status): `_bucket`, `_count`.
    ClassicHttp(Part),
    /// Classic HTTP counter, for errors (`code`).
    ClassicHttpTotal,
    /// Classic gRPC histogram.
    ClassicGrpc(Part),
    /// Classic gRPC counter, for errors (`grpc_code`).
    ClassicGrpcTotal,
}

enum Part {
    Bucket,
    Count,
}

fn family(name: &str) -> Option<Family> {
    let ends = |base: &str| name == base || name.ends_with(&format!("_{base}"));
    let part = |base: &str| {
        if ends(&format!("{base}_bucket")) {
            Some(Part::Bucket)
        } else if ends(&format!("{base}_count")) {
            Some(Part::Count)
        } else {
            None
        }
    };
    if !name.contains("_server_") && !name.contains("http_request") {
        return None;
    }
    if let Some(p) = part("http_server_request_duration_seconds") {
        return Some(Family::OtelHttp(p));
    }
    if let Some(p) = part("rpc_server_call_duration_seconds") {
        return Some(Family::OtelRpc(p));
    }
    if let Some(p) = part("http_request_duration_seconds") {
        return Some(Family::ClassicHttp(p));
    }
    if ends("http_requests_total") {
        return Some(Family::ClassicHttpTotal);
    }
    if let Some(p) = part("grpc_server_handling_seconds") {
        return Some(Family::ClassicGrpc(p));
    }
    if ends("grpc_server_handled_total") {
        return Some(Family::ClassicGrpcTotal);
    }
    None
}

/// A sample: its name, its labels and its value.
pub(crate) type Sample<'a> = (&'a str, Vec<(&'a str, String)>, f64);

/// One sample line: name, labels, value. `None` for comments, blank lines
/// and anything malformed.
pub(crate) fn parse_line(line: &str) -> Option<Sample<'_>> {
    let line = line.trim_end();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.trim_start_matches([',', ' ']);
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = body.find('=')?;
            let key = body[..eq].trim();
            let after = body[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut end = None;
            let mut chars = after.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    other => value.push(other),
                }
            }
            labels.push((key, value));
            body = &after[end?..];
        }
    }
    let value = rest.split_whitespace().next()?;
    Some((name, labels, parse_value(value)?))
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => v.parse().ok(),
    }
}

fn label<'a>(labels: &'a [(&str, String)], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
}

/// Totals per route from an exposition text.
pub(crate) fn totals(text: &str) -> BTreeMap<RouteKey, Totals> {
    let mut out: BTreeMap<RouteKey, Totals> = BTreeMap::new();
    let mut classic_errors: BTreeMap<RouteKey, f64> = BTreeMap::new();
    for line in text.lines() {
        let Some(first) = line.as_bytes().first() else {
            continue;
        };
        if *first == b'#' {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let Some(fam) = family(&line[..name_end]) else {
            continue;
        };
        let Some((_, labels, value)) = parse_line(line) else {
            continue;
        };
        let http_key = |method: &str, route: Option<&str>| {
            format!("{method} {}", route.unwrap_or("(no route)"))
        };
        match fam {
            Family::OtelHttp(part) => {
                let key = http_key(
                    label(&labels, "http_request_method").unwrap_or("_OTHER"),
                    label(&labels, "http_route"),
                );
                let t = out.entry(key).or_default();
                match part {
                    Part::Bucket => t.add_bucket(le(&labels), value),
                    Part::Count => {
                        t.count += value;
                        if label(&labels, "error_type").is_some_and(|e| !e.is_empty()) {
                            t.errors += value;
                        }
                    }
                }
            }
            Family::OtelRpc(part) => {
                let key = format!(
                    "{} {}/{}",
                    label(&labels, "rpc_system").unwrap_or("rpc"),
                    label(&labels, "rpc_service").unwrap_or("?"),
                    label(&labels, "rpc_method").unwrap_or("?"),
                );
                let t = out.entry(key).or_default();
                match part {
                    Part::Bucket => t.add_bucket(le(&labels), value),
                    Part::Count => {
                        t.count += value;
                        if label(&labels, "error_type").is_some_and(|e| !e.is_empty()) {
                            t.errors += value;
                        }
                    }
                }
            }
            Family::ClassicHttp(part) => {
                let key = http_key(
                    label(&labels, "method").unwrap_or("_OTHER"),
                    label(&labels, "endpoint"),
                );
                let t = out.entry(key).or_default();
                match part {
                    Part::Bucket => t.add_bucket(le(&labels), value),
                    Part::Count => t.count += value,
                }
            }
            Family::ClassicHttpTotal => {
                let failed = label(&labels, "code")
                    .and_then(|c| c.parse::<u16>().ok())
                    .is_some_and(|c| c >= 500);
                if failed {
                    let key = http_key(
                        label(&labels, "method").unwrap_or("_OTHER"),
                        label(&labels, "endpoint"),
                    );
                    *classic_errors.entry(key).or_default() += value;
                }
            }
            Family::ClassicGrpc(part) => {
                let key = format!(
                    "grpc {}/{}",
                    label(&labels, "grpc_service").unwrap_or("?"),
                    label(&labels, "grpc_method").unwrap_or("?"),
                );
                let t = out.entry(key).or_default();
                match part {
                    Part::Bucket => t.add_bucket(le(&labels), value),
                    Part::Count => t.count += value,
                }
            }
            Family::ClassicGrpcTotal => {
                let code = label(&labels, "grpc_code").unwrap_or("OK");
                if grpc_server_error(code) {
                    let key = format!(
                        "grpc {}/{}",
                        label(&labels, "grpc_service").unwrap_or("?"),
                        label(&labels, "grpc_method").unwrap_or("?"),
                    );
                    *classic_errors.entry(key).or_default() += value;
                }
            }
        }
    }
    for (key, errors) in classic_errors {
        out.entry(key).or_default().errors += errors;
    }
    out
}

/// The gRPC codes the semantic conventions count as server errors.
fn grpc_server_error(code: &str) -> bool {
    matches!(
        code,
        "UNKNOWN"
            | "DEADLINE_EXCEEDED"
            | "UNIMPLEMENTED"
            | "INTERNAL"
            | "UNAVAILABLE"
            | "DATA_LOSS"
            | "2"
            | "4"
            | "12"
            | "13"
            | "14"
            | "15"
    )
}

fn le(labels: &[(&str, String)]) -> f64 {
    label(labels, "le")
        .and_then(parse_value)
        .unwrap_or(f64::INFINITY)
}

/// The RED reader of one surface: the recorder's handle and the totals seen
/// at earlier reads.
pub(crate) struct Red {
    handle: Option<PrometheusHandle>,
    started: Instant,
    samples: Mutex<VecDeque<(Instant, BTreeMap<RouteKey, Totals>)>>,
}

impl std::fmt::Debug for Red {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Red")
            .field("recorder", &self.handle.is_some())
            .finish_non_exhaustive()
    }
}

impl Red {
    pub(crate) fn new(handle: Option<PrometheusHandle>) -> Self {
        Red {
            handle,
            started: Instant::now(),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// RED per route now, as JSON: `{window_seconds, since_start, routes: [...]}`.
    pub(crate) fn read(&self) -> Value {
        let Some(handle) = &self.handle else {
            return json!({ "recorder": false, "routes": [] });
        };
        let now = Instant::now();
        let current = totals(&handle.render());
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            samples.pop_front();
        }
        let (base_time, base) = match samples.front() {
            Some((t, totals)) => (*t, Some(totals.clone())),
            None => (self.started, None),
        };
        if samples
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= SAMPLE_EVERY)
        {
            samples.push_back((now, current.clone()));
        }
        drop(samples);
        let window = now.duration_since(base_time).as_secs_f64().max(0.001);
        let routes: Vec<Value> = current
            .iter()
            .map(|(route, t)| {
                let d = t.minus(base.as_ref().and_then(|b| b.get(route)));
                // Latency over the window when it had requests, else since start.
                let (lat, lat_window) = if d.count > 0.0 {
                    (&d, true)
                } else {
                    (t, false)
                };
                json!({
                    "route": route,
                    "requests": d.count,
                    "errors": d.errors,
                    "rate_per_second": d.count / window,
                    "error_ratio": if d.count > 0.0 { Some(d.errors / d.count) } else { None },
                    "p50_ms": lat.quantile(0.5).map(|s| s * 1000.0),
                    "p99_ms": lat.quantile(0.99).map(|s| s * 1000.0),
                    "latency_over_window": lat_window,
                    "total_requests": t.count,
                    "total_errors": t.errors,
                })
            })
            .collect();
        json!({
            "recorder": true,
            "window_seconds": window,
            "since_start": base.is_none(),
            "routes": routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_the_format_says() {
        let (name, labels, v) =
            parse_line(r#"x_bucket{a="1",b="q\"u\\o\nte",le="+Inf"} 42"#).unwrap();
        assert_eq!(name, "x_bucket");
        assert_eq!(labels[0], ("a", "1".to_owned()));
        assert_eq!(labels[1], ("b", "q\"u\\o\nte".to_owned()));
        assert_eq!(labels[2], ("le", "+Inf".to_owned()));
        assert_eq!(v, 42.0);
        assert_eq!(parse_line("up 1").unwrap().2, 1.0);
        assert_eq!(parse_line(r#"y{} 3.5"#).unwrap().2, 3.5);
        for bad in [
            "# HELP x y",
            "",
            r#"x{a="1} 2"#,
            r#"x{a=1} 2"#,
            "x{",
            "x notanumber",
        ] {
            assert!(parse_line(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn otel_histograms_become_routes_with_quantiles() {
        let text = r#"# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/a",http_response_status_code="200",url_scheme="http",le="0.1"} 90
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/a",http_response_status_code="200",url_scheme="http",le="1"} 99
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/a",http_response_status_code="200",url_scheme="http",le="+Inf"} 99
http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="200",url_scheme="http"} 99
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/a",http_response_status_code="503",error_type="503",url_scheme="http",le="0.1"} 0
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/a",http_response_status_code="503",error_type="503",url_scheme="http",le="1"} 0
http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/a",http_response_status_code="503",error_type="503",url_scheme="http",le="+Inf"} 1
http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="503",error_type="503",url_scheme="http"} 1
myapp_http_server_request_duration_seconds_count{http_request_method="POST",url_scheme="http"} 2
"#;
        let t = totals(text);
        let a = &t["GET /a"];
        assert_eq!((a.count, a.errors), (100.0, 1.0));
        assert_eq!(
            a.buckets,
            vec![(0.1, 90.0), (1.0, 99.0), (f64::INFINITY, 100.0)]
        );
        // rank 50 of 100 in the first bucket: 0 + 0.1 * 50/90.
        assert!((a.quantile(0.5).unwrap() - 0.1 * 50.0 / 90.0).abs() < 1e-9);
        // rank 99: the end of the second bucket.
        assert!((a.quantile(0.99).unwrap() - 1.0).abs() < 1e-9);
        // rank 100 falls in +Inf: the last finite bound.
        assert_eq!(a.quantile(1.0), Some(1.0));
        assert_eq!(t["POST (no route)"].count, 2.0);
        assert_eq!(Totals::default().quantile(0.5), None);
    }

    #[test]
    fn classic_errors_come_from_the_counter() {
        let text = r#"http_requests_total{method="GET",endpoint="/b",code="200"} 7
http_requests_total{method="GET",endpoint="/b",code="500"} 3
http_request_duration_seconds_count{method="GET",endpoint="/b"} 10
grpc_server_handled_total{grpc_service="p.S",grpc_method="M",grpc_code="UNAVAILABLE"} 2
grpc_server_handled_total{grpc_service="p.S",grpc_method="M",grpc_code="NOT_FOUND"} 1
grpc_server_handling_seconds_count{grpc_service="p.S",grpc_method="M"} 5
"#;
        let t = totals(text);
        assert_eq!((t["GET /b"].count, t["GET /b"].errors), (10.0, 3.0));
        assert_eq!((t["grpc p.S/M"].count, t["grpc p.S/M"].errors), (5.0, 2.0));
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use telltale_telemetry::metrics::{RedConfig, prometheus_builder};

    #[test]
    fn rates_and_quantiles_from_the_recorder() {
        let recorder = prometheus_builder(&RedConfig::default()).build_recorder();
        let red = Red::new(Some(recorder.handle()));
        metrics::with_local_recorder(&recorder, || {
            let h = metrics::histogram!(
                "http_server_request_duration_seconds",
                "http_request_method" => "GET",
                "http_route" => "/orders/{id}",
                "http_response_status_code" => "200",
                "url_scheme" => "http",
            );
            for _ in 0..9 {
                h.record(0.003);
            }
            metrics::histogram!(
                "http_server_request_duration_seconds",
                "http_request_method" => "GET",
                "http_route" => "/orders/{id}",
                "http_response_status_code" => "500",
                "error_type" => "500",
                "url_scheme" => "http",
            )
            .record(2.0);
        });
        let v = red.read();
        assert_eq!(v["recorder"], true);
        assert_eq!(v["since_start"], true);
        let route = &v["routes"][0];
        assert_eq!(route["route"], "GET /orders/{id}");
        assert_eq!(route["requests"], 10.0);
        assert_eq!(route["errors"], 10.0 - 9.0);
        assert_eq!(route["error_ratio"], 0.1);
        // 9 of 10 in the first bucket (le 0.005): p50 inside it, p99 in (1, 2.5].
        assert!(route["p50_ms"].as_f64().unwrap() < 5.0);
        let p99 = route["p99_ms"].as_f64().unwrap();
        assert!((1000.0..=2500.0).contains(&p99), "{p99}");
        // A second read compares with the first: no new requests.
        let v = red.read();
        assert_eq!(v["since_start"], false);
        assert_eq!(v["routes"][0]["requests"], 0.0);
        assert_eq!(v["routes"][0]["total_requests"], 10.0);
        assert_eq!(v["routes"][0]["latency_over_window"], false);
        assert!(
            Red::new(None).read()["routes"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}
