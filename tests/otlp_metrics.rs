//! Every metric `/metrics` shows also reaches a real OTLP collector (a
//! gRPC `MetricsService` decoding what arrives), with the same values: one
//! process with the README's setup, `Telemetry::install` pushing metrics
//! over OTLP and `install_prometheus` serving the exposition, a
//! `ServerStack` with a breaker, a bulkhead and armed chaos under traffic.
//! Counters `x_total` arrive as monotonic sums `x`, gauges as gauges,
//! histograms `x_seconds` with the same buckets, counts and sums; the RED
//! histogram under the semantic conventions' name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use http::StatusCode;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use telltale::ServerStack;
use telltale::chaos::{Injector, parse_rules};
use telltale::resilience::{Bulkhead, CircuitBreaker};
use telltale::telemetry::layer::ServerTelemetryLayer;
use telltale::telemetry::metrics::install_prometheus;
use telltale::telemetry::{LogFormat, Protocol, Telemetry};
use telltale_testkit::prometheus::{MAX_WAIT, client, get as fetch, serve};
use tokio::net::TcpListener;

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A series: name and attributes, values rendered.
type Id = (String, BTreeMap<String, String>);

/// (value) for numbers, (count, sum, cumulative bucket counts) for histograms.
#[derive(Debug, PartialEq)]
enum V {
    N(f64),
    H(u64, f64, Vec<u64>),
}

impl V {
    /// Equal counts and buckets; sums equal up to float rounding (each side
    /// adds concurrent observations in its own order).
    fn agrees_with(&self, other: &V) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
        match (self, other) {
            (V::N(a), V::N(b)) => close(*a, *b),
            (V::H(c1, s1, b1), V::H(c2, s2, b2)) => c1 == c2 && b1 == b2 && close(*s1, *s2),
            _ => false,
        }
    }
}

impl Sink {
    /// The latest point of each series.
    fn latest(&self) -> BTreeMap<Id, V> {
        let mut out = BTreeMap::new();
        let attrs = |kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
            kvs.iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        Some(any_value::Value::IntValue(i)) => i.to_string(),
                        other => format!("{other:?}"),
                    };
                    (kv.key.clone(), v)
                })
                .collect::<BTreeMap<_, _>>()
        };
        let number = |v: &Option<Value>| match v {
            Some(Value::AsDouble(d)) => *d,
            Some(Value::AsInt(i)) => *i as f64,
            None => f64::NAN,
        };
        for req in self.0.lock().unwrap().iter() {
            for m in req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
            {
                match &m.data {
                    Some(Data::Sum(s)) => {
                        for p in &s.data_points {
                            out.insert(
                                (m.name.clone(), attrs(&p.attributes)),
                                V::N(number(&p.value)),
                            );
                        }
                    }
                    Some(Data::Gauge(g)) => {
                        for p in &g.data_points {
                            out.insert(
                                (m.name.clone(), attrs(&p.attributes)),
                                V::N(number(&p.value)),
                            );
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            let mut acc = 0;
                            let cumulative = p
                                .bucket_counts
                                .iter()
                                .map(|c| {
                                    acc += c;
                                    acc
                                })
                                .collect();
                            out.insert(
                                (m.name.clone(), attrs(&p.attributes)),
                                V::H(p.count, p.sum.unwrap_or(f64::NAN), cumulative),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// What `/metrics` says, as OTLP should carry it (see the module docs),
/// for the families of `prefixes`.
fn expected(text: &str, prefixes: &[&str]) -> BTreeMap<Id, V> {
    let mut types = BTreeMap::new();
    let mut out = BTreeMap::new();
    let mut histos: BTreeMap<Id, (u64, f64, Vec<u64>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let mut labels: BTreeMap<String, String> = labels
            .split("\",")
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        let value: f64 = value.parse().unwrap();
        match types.get(name).map(String::as_str) {
            Some("counter") => {
                let otlp = name.strip_suffix("_total").unwrap_or(name).to_owned();
                out.insert((otlp, labels), V::N(value));
            }
            Some("gauge") => {
                out.insert((name.to_owned(), labels), V::N(value));
            }
            _ => {
                let (family, part) = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).map(|f| (f, *s)))
                    .unwrap_or_else(|| panic!("{line}"));
                let otlp = family.strip_suffix("_seconds").unwrap_or(family).to_owned();
                let le = labels.remove("le");
                let entry = histos.entry((otlp, labels)).or_default();
                match (part, le) {
                    ("_bucket", Some(_)) => entry.2.push(value as u64),
                    ("_sum", _) => entry.1 = value,
                    _ => entry.0 = value as u64,
                }
            }
        }
    }
    for (id, (count, sum, buckets)) in histos {
        out.insert(id, V::H(count, sum, buckets));
    }
    out
}

async fn work(Path(id): Path<u64>) -> StatusCode {
    tokio::time::sleep(Duration::from_millis(id % 5)).await;
    if id % 6 == 0 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_carries_what_metrics_shows() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let sink = Sink::default();
    let service = MetricsServiceServer::new(sink.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    // The README's setup: telemetry with OTLP metrics, then Prometheus.
    let guard = Telemetry::builder()
        .service_name("otlp-metrics")
        .log_format(LogFormat::None)
        .otlp_metrics(endpoint, Protocol::Grpc)
        .metric_export_interval(Duration::from_millis(200))
        .build()
        .unwrap()
        .install()
        .unwrap();
    let handle = install_prometheus(&Default::default()).unwrap();

    let chaos = Injector::builder()
        .rules(parse_rules("in GET /work/*: 20% status(503)").unwrap())
        .seed(7)
        .build()
        .unwrap();
    let stack = ServerStack::new()
        .telemetry(ServerTelemetryLayer::builder().build().unwrap())
        .breaker(CircuitBreaker::builder("work").build().unwrap())
        .bulkhead(
            Bulkhead::builder("work")
                .max_concurrent(2)
                .max_wait(Duration::from_millis(1))
                .build()
                .unwrap(),
        )
        .chaos(&chaos);
    let app = Router::new()
        .route("/work/{id}", get(work))
        .layer(stack.layer());
    let addr = serve(app).await;
    let http = client();
    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let _ = fetch(&http, addr, &format!("/work/{}", worker * 100 + i)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Traffic has stopped; push and compare until both sides agree (the
    // breaker's and bulkhead's gauges settle, an export lands), bounded.
    let families = [
        "telltale_circuitbreaker_",
        "telltale_bulkhead_",
        "telltale_chaos_",
    ];
    let metrics = guard.otlp_metrics().expect("OTLP metrics on");
    let deadline = Instant::now() + MAX_WAIT;
    loop {
        assert!(metrics.force_flush(), "flush");
        let text = handle.render();
        let want = expected(&text, &families);
        let got = sink.latest();
        let missing: Vec<_> = want
            .iter()
            .filter(|(id, v)| !got.get(*id).is_some_and(|g| g.agrees_with(v)))
            .collect();
        // Every family of each component is there, and the RED histogram
        // counts every request under its semantic-conventions name.
        let red: u64 = got
            .iter()
            .filter(|((n, _), _)| n == "http.server.request.duration")
            .map(|(_, v)| match v {
                V::H(count, ..) => *count,
                V::N(_) => 0,
            })
            .sum();
        let components = families
            .iter()
            .all(|f| want.keys().any(|(n, _)| n.starts_with(f)));
        // The exporter's own counter appears once its first export is done.
        let exporter = got
            .keys()
            .any(|(n, _)| n == "telltale_telemetry_metric_exports");
        if missing.is_empty() && red == 160 && components && exporter {
            assert!(want.len() >= 6, "{want:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "OTLP does not match /metrics: missing or different {missing:#?}\nRED count {red}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The exporter's own counters are in both too.
    let text = handle.render();
    assert!(
        text.contains(r#"telltale_telemetry_metric_exports_total{exporter="otlp_metrics"}"#),
        "{text}"
    );
    assert!(
        sink.latest()
            .keys()
            .any(|(n, _)| n == "telltale_telemetry_metric_exports")
    );
}
