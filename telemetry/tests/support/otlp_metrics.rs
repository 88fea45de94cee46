//! A real OTLP metrics receiver (gRPC `MetricsService` and HTTP
//! `/v1/metrics`, protobuf decoded with opentelemetry-proto), and what it
//! received, as the latest value of each series.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use prost::Message;
use tokio::net::TcpListener;

/// What a metrics receiver got.
#[derive(Clone, Default)]
pub struct MetricsSink {
    requests: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

/// The latest point of one series.
#[derive(Clone, Debug, PartialEq)]
pub enum Point {
    /// A sum (`monotonic`) or gauge (`None`) value.
    Number { value: f64, monotonic: Option<bool> },
    /// An explicit-bucket histogram.
    Histogram {
        count: u64,
        sum: f64,
        bounds: Vec<f64>,
        /// Per bucket (not cumulative), `bounds.len() + 1` of them.
        counts: Vec<u64>,
    },
}

/// A series: metric name and attributes (values rendered; integers tagged
/// `i:`).
pub type SeriesId = (String, BTreeMap<String, String>);

fn render(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => format!("i:{i}"),
        other => format!("{other:?}"),
    }
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), render(&kv.value)))
        .collect()
}

impl MetricsSink {
    fn push(&self, req: ExportMetricsServiceRequest) {
        self.requests.lock().unwrap().push(req);
    }

    /// Export requests received so far.
    pub fn exports(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Every request's resource `service.name`.
    pub fn services(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_metrics.iter())
            .flat_map(|rm| rm.resource.iter())
            .flat_map(|r| r.attributes.iter())
            .filter(|kv| kv.key == "service.name")
            .map(|kv| render(&kv.value))
            .collect()
    }

    /// The units of every metric received, by name.
    pub fn units(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for req in self.requests.lock().unwrap().iter() {
            for rm in &req.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        out.insert(m.name.clone(), m.unit.clone());
                    }
                }
            }
        }
        out
    }

    /// The latest point of every series received.
    pub fn latest(&self) -> BTreeMap<SeriesId, Point> {
        let mut out = BTreeMap::new();
        for req in self.requests.lock().unwrap().iter() {
            for rm in &req.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        match &m.data {
                            Some(Data::Sum(s)) => {
                                for p in &s.data_points {
                                    let value = match p.value {
                                        Some(Value::AsDouble(d)) => d,
                                        Some(Value::AsInt(i)) => i as f64,
                                        None => f64::NAN,
                                    };
                                    out.insert(
                                        (m.name.clone(), attrs(&p.attributes)),
                                        Point::Number {
                                            value,
                                            monotonic: Some(s.is_monotonic),
                                        },
                                    );
                                }
                            }
                            Some(Data::Gauge(g)) => {
                                for p in &g.data_points {
                                    let value = match p.value {
                                        Some(Value::AsDouble(d)) => d,
                                        Some(Value::AsInt(i)) => i as f64,
                                        None => f64::NAN,
                                    };
                                    out.insert(
                                        (m.name.clone(), attrs(&p.attributes)),
                                        Point::Number {
                                            value,
                                            monotonic: None,
                                        },
                                    );
                                }
                            }
                            Some(Data::Histogram(h)) => {
                                for p in &h.data_points {
                                    out.insert(
                                        (m.name.clone(), attrs(&p.attributes)),
                                        Point::Histogram {
                                            count: p.count,
                                            sum: p.sum.unwrap_or(f64::NAN),
                                            bounds: p.explicit_bounds.clone(),
                                            counts: p.bucket_counts.clone(),
                                        },
                                    );
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        out
    }

    /// Waits (bounded) until `done` accepts the latest points.
    pub async fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&BTreeMap<SeriesId, Point>) -> bool,
    ) -> BTreeMap<SeriesId, Point> {
        let deadline = Instant::now() + super::otel::MAX_WAIT;
        loop {
            let latest = self.latest();
            if done(&latest) {
                return latest;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; latest: {latest:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tonic::async_trait]
impl MetricsService for MetricsSink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A real OTLP/gRPC metrics receiver on `listener`.
pub fn grpc_metrics_receiver_on(listener: TcpListener) -> MetricsSink {
    let sink = MetricsSink::default();
    let service = MetricsServiceServer::new(sink.clone());
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    sink
}

async fn http_export(State(sink): State<MetricsSink>, body: Bytes) -> Response {
    match ExportMetricsServiceRequest::decode(body) {
        Ok(req) => {
            sink.push(req);
            http::Response::builder()
                .header("content-type", "application/x-protobuf")
                .body(Body::from(
                    ExportMetricsServiceResponse::default().encode_to_vec(),
                ))
                .unwrap()
        }
        Err(_) => http::Response::builder()
            .status(400)
            .body(Body::empty())
            .unwrap(),
    }
}

/// A real OTLP/HTTP (protobuf) metrics receiver (`/v1/metrics`) on `listener`.
pub fn http_metrics_receiver_on(listener: TcpListener) -> MetricsSink {
    let sink = MetricsSink::default();
    let app = Router::new()
        .route("/v1/metrics", axum::routing::post(http_export))
        .with_state(sink.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    sink
}

/// A receiver of `protocol` (`grpc` or `http/protobuf`) on 127.0.0.1:0, and
/// the value of `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` for it.
pub async fn metrics_receiver(protocol: &str) -> (MetricsSink, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    if protocol == "grpc" {
        (grpc_metrics_receiver_on(listener), format!("http://{addr}"))
    } else {
        (
            http_metrics_receiver_on(listener),
            format!("http://{addr}/v1/metrics"),
        )
    }
}

/// One Prometheus histogram series: cumulative bucket counts by bound, sum,
/// count.
pub type PromHistogram = (Vec<(f64, u64)>, f64, u64);

/// The histogram series of `name` in a Prometheus text exposition, by
/// labels (without `le`).
pub fn prometheus_histograms(
    text: &str,
    name: &str,
) -> BTreeMap<BTreeMap<String, String>, PromHistogram> {
    let mut out: BTreeMap<BTreeMap<String, String>, PromHistogram> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, labels) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map: BTreeMap<String, String> = labels
            .split("\",")
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        if metric == format!("{name}_bucket") {
            let le = map.remove("le").unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            out.entry(map)
                .or_default()
                .0
                .push((le, value.parse().unwrap()));
        } else if metric == format!("{name}_sum") {
            out.entry(map).or_default().1 = value.parse().unwrap();
        } else if metric == format!("{name}_count") {
            out.entry(map).or_default().2 = value.parse().unwrap();
        }
    }
    out
}
