//! Shared pieces of telltale-telemetry's own integration tests: a captured
//! log writer, a tiny traced axum server and client (test-local stand-ins for
//! the request layers), and real OTLP receivers (gRPC and HTTP/protobuf).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use tokio::net::TcpListener;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Longest any test waits for something to arrive.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// Log lines written to memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

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
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);
impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);
impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Test-local server middleware: a server span whose parent comes from the
/// incoming headers through the global propagator.
pub async fn traced(req: Request, next: Next) -> Response {
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(req.headers()))
    });
    let correlation = req
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    let name = format!("{} {}", req.method(), req.uri().path());
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        http.route = %req.uri().path(),
        correlation_id = %correlation,
    );
    let _ = span.set_parent(parent);
    next.run(req).instrument(span).await
}

/// Serves `app` over HTTP/1 on 127.0.0.1:0, every connection running with
/// `dispatch` as its tracing subscriber (so two services in one process keep
/// their own telemetry).
pub async fn serve(app: Router, dispatch: tracing::Dispatch) -> SocketAddr {
    // Tests capture what the connections log and trace: the testkit's global
    // dispatcher must exist before a request registers a callsite.
    telltale_testkit::init();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.layer(axum::middleware::from_fn(traced));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(
                async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                .with_subscriber(dispatch.clone()),
            );
        }
    });
    addr
}

pub type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// GET `url`, injecting the current span's context (test-local stand-in for
/// the client layer) plus `headers`.
pub async fn get(client: &Client, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = http::Request::get(url).body(Body::empty()).unwrap();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(req.headers_mut()))
    });
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let response = client.request(req).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// What a receiver got.
#[derive(Clone, Default)]
pub struct Sink {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    /// The headers (gRPC metadata) of every export request, in order.
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    /// When not 0, every export is refused: this HTTP status, or for gRPC
    /// `UNAUTHENTICATED`.
    fail_with: Arc<std::sync::atomic::AtomicU16>,
    notify: Arc<tokio::sync::Notify>,
}

/// One received span with its resource.
#[derive(Clone, Debug)]
pub struct Received {
    pub service: String,
    pub resource: BTreeMap<String, String>,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    /// The instrumentation scope's name and version.
    pub scope: (String, String),
}

fn any_to_string(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One received log record with its service.
#[derive(Clone, Debug)]
pub struct ReceivedLog {
    pub service: String,
    pub body: String,
    pub severity_text: String,
    pub trace_id: String,
    pub span_id: String,
    pub attributes: BTreeMap<String, String>,
}

impl Sink {
    /// Refuses every export from now on with `status` (0: accepts again).
    pub fn fail_with(&self, status: u16) {
        self.fail_with
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    fn failing(&self) -> u16 {
        self.fail_with.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn record_headers(&self, headers: HeaderMap) {
        self.headers.lock().unwrap().push(headers);
        self.notify.notify_waiters();
    }

    /// The headers of every export request so far.
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.headers.lock().unwrap().clone()
    }

    /// Spans in each trace export request, in order.
    pub fn spans_per_request(&self) -> Vec<usize> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                r.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .map(|ss| ss.spans.len())
                    .sum()
            })
            .collect()
    }

    /// Log records in each log export request, in order.
    pub fn logs_per_request(&self) -> Vec<usize> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                r.resource_logs
                    .iter()
                    .flat_map(|rl| &rl.scope_logs)
                    .map(|sl| sl.log_records.len())
                    .sum()
            })
            .collect()
    }

    fn push(&self, req: ExportTraceServiceRequest) {
        self.requests.lock().unwrap().push(req);
        self.notify.notify_waiters();
    }

    fn push_logs(&self, req: ExportLogsServiceRequest) {
        self.logs.lock().unwrap().push(req);
        self.notify.notify_waiters();
    }

    pub fn logs(&self) -> Vec<ReceivedLog> {
        let mut out = Vec::new();
        for req in self.logs.lock().unwrap().iter() {
            for rl in &req.resource_logs {
                let service = rl
                    .resource
                    .iter()
                    .flat_map(|r| r.attributes.iter())
                    .find(|kv| kv.key == "service.name")
                    .map(|kv| any_to_string(&kv.value))
                    .unwrap_or_default();
                for sl in &rl.scope_logs {
                    for r in &sl.log_records {
                        out.push(ReceivedLog {
                            service: service.clone(),
                            body: any_to_string(&r.body),
                            severity_text: r.severity_text.clone(),
                            trace_id: hex(&r.trace_id),
                            span_id: hex(&r.span_id),
                            attributes: r
                                .attributes
                                .iter()
                                .map(|kv| (kv.key.clone(), any_to_string(&kv.value)))
                                .collect(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Waits (bounded) until `done` holds for the received log records.
    pub async fn wait_for_logs(&self, done: impl Fn(&[ReceivedLog]) -> bool) -> Vec<ReceivedLog> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let notified = self.notify.notified();
            let logs = self.logs();
            if done(&logs) {
                return logs;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let logs = self.logs();
                assert!(done(&logs), "timed out waiting; received {logs:#?}");
                return logs;
            }
        }
    }

    pub fn spans(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for req in self.requests.lock().unwrap().iter() {
            for rs in &req.resource_spans {
                let resource: BTreeMap<String, String> = rs
                    .resource
                    .iter()
                    .flat_map(|r| r.attributes.iter())
                    .map(|kv| (kv.key.clone(), any_to_string(&kv.value)))
                    .collect();
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push(Received {
                            service: resource.get("service.name").cloned().unwrap_or_default(),
                            resource: resource.clone(),
                            name: s.name.clone(),
                            trace_id: hex(&s.trace_id),
                            span_id: hex(&s.span_id),
                            parent_span_id: hex(&s.parent_span_id),
                            kind: s.kind,
                            scope: ss
                                .scope
                                .as_ref()
                                .map(|sc| (sc.name.clone(), sc.version.clone()))
                                .unwrap_or_default(),
                            attributes: s
                                .attributes
                                .iter()
                                .map(|kv| (kv.key.clone(), any_to_string(&kv.value)))
                                .collect(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Waits (bounded) until `done` holds for the received spans.
    pub async fn wait_for(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let notified = self.notify.notified();
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let spans = self.spans();
                assert!(done(&spans), "timed out waiting; received {spans:#?}");
                return spans;
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record_headers(request.metadata().clone().into_headers());
        if self.failing() != 0 {
            return Err(tonic::Status::unauthenticated("bad token"));
        }
        self.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.record_headers(request.metadata().clone().into_headers());
        if self.failing() != 0 {
            return Err(tonic::Status::unauthenticated("bad token"));
        }
        self.push_logs(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// The trace and log services of a gRPC receiver (gzip accepted).
pub fn grpc_services(sink: &Sink) -> (TraceServiceServer<Sink>, LogsServiceServer<Sink>) {
    use tonic::codec::CompressionEncoding::Gzip;
    (
        TraceServiceServer::new(sink.clone()).accept_compressed(Gzip),
        LogsServiceServer::new(sink.clone()).accept_compressed(Gzip),
    )
}

/// A real OTLP/gRPC collector (traces and logs) on `listener`.
pub fn grpc_receiver_on(listener: TcpListener) -> (Sink, tokio::task::JoinHandle<()>) {
    let sink = Sink::default();
    let (service, logs) = grpc_services(&sink);
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .add_service(logs)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    (sink, task)
}

/// A real OTLP/gRPC collector on 127.0.0.1:0; returns its endpoint.
pub async fn grpc_receiver() -> (Sink, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    (grpc_receiver_on(listener).0, endpoint)
}

/// The body of an HTTP export, gunzipped when its `Content-Encoding` says.
/// The error is the status to answer with.
fn http_body(sink: &Sink, headers: HeaderMap, body: Bytes) -> Result<Bytes, u16> {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    sink.record_headers(headers);
    let status = sink.failing();
    if status != 0 {
        return Err(status);
    }
    if !gzip {
        return Ok(body);
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
        .map_err(|_| 400_u16)?;
    Ok(out.into())
}

async fn http_export(State(sink): State<Sink>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match http_body(&sink, headers, body) {
        Ok(body) => body,
        Err(status) => {
            return http::Response::builder()
                .status(status)
                .body(Body::empty())
                .unwrap();
        }
    };
    match ExportTraceServiceRequest::decode(body) {
        Ok(req) => {
            sink.push(req);
            http::Response::builder()
                .header("content-type", "application/x-protobuf")
                .body(Body::from(
                    ExportTraceServiceResponse::default().encode_to_vec(),
                ))
                .unwrap()
        }
        Err(_) => http::Response::builder()
            .status(400)
            .body(Body::empty())
            .unwrap(),
    }
}

async fn http_export_logs(State(sink): State<Sink>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match http_body(&sink, headers, body) {
        Ok(body) => body,
        Err(status) => {
            return http::Response::builder()
                .status(status)
                .body(Body::empty())
                .unwrap();
        }
    };
    match ExportLogsServiceRequest::decode(body) {
        Ok(req) => {
            sink.push_logs(req);
            http::Response::builder()
                .header("content-type", "application/x-protobuf")
                .body(Body::from(
                    ExportLogsServiceResponse::default().encode_to_vec(),
                ))
                .unwrap()
        }
        Err(_) => http::Response::builder()
            .status(400)
            .body(Body::empty())
            .unwrap(),
    }
}

/// A real OTLP/HTTP (protobuf) collector (`/v1/traces`, `/v1/logs`) on `listener`.
pub fn http_receiver_on(listener: TcpListener) -> Sink {
    let sink = Sink::default();
    let app = http_app(&sink);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    sink
}

/// The routes of an OTLP/HTTP receiver (`/v1/traces`, `/v1/logs`; gzip
/// bodies decoded).
pub fn http_app(sink: &Sink) -> Router {
    Router::new()
        .route("/v1/traces", axum::routing::post(http_export))
        .route("/v1/logs", axum::routing::post(http_export_logs))
        .with_state(sink.clone())
}

/// A real OTLP/HTTP (protobuf) collector on 127.0.0.1:0; returns the traces
/// endpoint (`…/v1/traces`).
pub async fn http_receiver() -> (Sink, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    (http_receiver_on(listener), endpoint)
}

/// A collector that accepts connections and never answers; dropping the
/// returned task handle (abort) closes everything.
pub async fn stalled_collector() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// Binds `addr` again once its previous owner is gone (bounded retries).
pub async fn rebind(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("could not bind {addr} again");
}

/// Log text with its timestamps (JSON `timestamp`/`@timestamp`, or a pretty
/// line's first word) and the given IDs replaced by placeholders, line by
/// line: what golden files and line-by-line comparisons compare.
pub fn normalize_lines<P: AsRef<str>>(text: &str, ids: &[(String, P)]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_owned();
        for key in ["\"timestamp\":\"", "\"@timestamp\":\""] {
            if let Some(start) = line.find(key) {
                let value_start = start + key.len();
                let end = value_start + line[value_start..].find('"').unwrap();
                line.replace_range(value_start..end, "<timestamp>");
            }
        }
        if !line.starts_with('{') {
            // Pretty: the timestamp is the first word.
            let end = line.find(' ').unwrap();
            line.replace_range(..end, "<timestamp>");
        }
        for (id, placeholder) in ids {
            line = line.replace(id.as_str(), placeholder.as_ref());
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
