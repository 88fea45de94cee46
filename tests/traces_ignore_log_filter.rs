//! What is exported as traces does not depend on the log filter (issue 14,
//! item 4): with `RUST_LOG=warn`, a real request through `ServerStack` on a
//! real server still produces its INFO request span in the flight recorder
//! and at a real OTLP/gRPC receiver, while the log output holds the WARN line
//! (with the request's trace ID) and no INFO line.
//!
//! This test binary installs telemetry globally once (its own process).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use telltale::core::config::Env;
use telltale::stack::ServerStack;
use telltale::telemetry::{LogFormat, Profile, Telemetry};
use tokio::net::TcpListener;

mod support;
use support::serve;

/// Log lines written to memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
            .collect()
    }
}

/// A real OTLP/gRPC trace receiver: the span names and trace IDs it got.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, String)>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for span in ss.spans {
                    let id: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    got.push((span.name, id));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn receiver() -> (Receiver, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    let service = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (receiver, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_warn_still_exports_request_spans() {
    let (received, collector) = receiver().await;
    let logs = Captured::default();
    let env = Env::from_pairs([
        ("RUST_LOG", "warn".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("TELLTALE_EXPORT_DELAY", "20ms".to_owned()),
        ("TELLTALE_FLIGHT_RECORDER_CAPACITY", "100".to_owned()),
        ("OTEL_SERVICE_NAME", "quiet-logs".to_owned()),
    ]);
    let telemetry = Telemetry::builder()
        .log_format(LogFormat::Json(Profile::OpenTelemetry))
        .writer(logs.clone())
        .env(&env)
        .unwrap()
        .build()
        .unwrap();
    let recorder = telemetry.flight_recorder().expect("set on").clone();
    let guard = telemetry.install().expect("first install");

    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                tracing::info!("an info line the log filter drops");
                tracing::warn!("a warn line the log filter keeps");
                "ok"
            }),
        )
        .layer(ServerStack::new().layer());
    let addr = serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = http::Request::get(format!("http://{addr}/orders/7"))
        .header("x-correlation-id", "quiet-1")
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await.unwrap();

    // The flight recorder: the SERVER span of the request (bounded wait: the
    // span ends when the response body ends).
    let mut span = None;
    for _ in 0..200 {
        span = recorder
            .by_correlation_id("quiet-1")
            .into_iter()
            .find(|s| matches!(s.kind(), opentelemetry::trace::SpanKind::Server));
        if span.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let span = span.expect("the request span is in the flight recorder with RUST_LOG=warn");
    assert_eq!(span.name(), "GET /orders/{id}");
    let trace_id = span.trace_id().to_string();

    // The real OTLP receiver: the same span (bounded wait for the batch).
    let mut exported = false;
    for _ in 0..500 {
        exported = received
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(name, id)| name == "GET /orders/{id}" && *id == trace_id);
        if exported {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        exported,
        "the span reached the OTLP receiver: {:?}",
        received.0.lock().unwrap()
    );

    // The log output: the WARN line, carrying the request's trace ID, and no
    // INFO line at all.
    let lines = logs.lines();
    let levels: Vec<String> = lines
        .iter()
        .map(|l| l["severity_text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        !levels
            .iter()
            .any(|l| l == "INFO" || l == "DEBUG" || l == "TRACE"),
        "RUST_LOG=warn wrote {lines:#?}"
    );
    let warn = lines
        .iter()
        .find(|l| l["message"] == "a warn line the log filter keeps")
        .unwrap_or_else(|| panic!("the WARN line in {lines:#?}"));
    assert_eq!(warn["trace_id"], trace_id.as_str(), "{warn}");
    guard.shutdown().ok();
}
