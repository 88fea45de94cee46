//! With `DirectRequestAttributes` declaring telltale's log formatters, the request
//! layers set their spans' attributes straight on the OpenTelemetry span
//! instead of through tracing fields. What a user sees must not change: the
//! exported server and client spans carry exactly the attributes (keys, value
//! types, values, order), name, kind and status the plain
//! tracing-opentelemetry layer gives them, and the log lines (which read the
//! same fields from the span) are the same, whether the sampler decides
//! before the span is built (`SamplerLayer`) or when the SDK starts it.
//!
//! Real servers on 127.0.0.1: a hyper client calls an axum server behind
//! `ServerTelemetryLayer` (a route with a parameter, one without, an unknown
//! method, a gRPC call),
//! whose handler logs and calls a second server through
//! `ClientTelemetryLayer` (plain HTTP and gRPC).

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Request, State};
use axum::routing::{any, post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Array, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use support::hop::{Hyper, hyper_client, serve};
use support::otel::Captured;
use telltale_core::CorrelationId;
use telltale_telemetry::DirectRequestAttributes;
use telltale_telemetry::layer::client::{ClientTelemetryLayer, ResponseBody};
use telltale_telemetry::layer::server::{RequestLog, ServerTelemetryLayer};
use telltale_telemetry::sampling::{PresetTraceIds, SamplerLayer};
use telltale_telemetry::{JsonFields, JsonFormat, Profile};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// How the subscriber bridges tracing to OpenTelemetry.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Bridge {
    /// `tracing_opentelemetry::layer()` alone: every attribute is a field.
    Plain,
    /// The plain layer, and `DirectRequestAttributes` declaring telltale's
    /// formatters: the request layers set attributes directly and hand the
    /// values to the formatters.
    Direct,
}

/// A subscriber as `init` builds one (JSON lines with the OpenTelemetry IDs,
/// spans to an in-memory exporter), with the sampler asked before spans are
/// built (`early`) or only by the SDK.
fn subscriber(
    bridge: Bridge,
    early: bool,
    exporter: &InMemorySpanExporter,
    logs: &Captured,
) -> Dispatch {
    let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
    let mut provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(sampler.clone());
    if early {
        provider = provider.with_id_generator(PresetTraceIds::default());
    }
    let tracer = provider.build().tracer("bridged");
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false);
    let format = JsonFormat::new(Profile::OpenTelemetry);
    let ids = format.ids_layer();
    let fmt = tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::default())
        .event_format(format)
        .with_writer(logs.clone());
    let base = tracing_subscriber::registry()
        .with(early.then(|| SamplerLayer::new(sampler)))
        .with(ids)
        .with(fmt);
    match bridge {
        Bridge::Plain => Dispatch::new(base.with(otel)),
        Bridge::Direct => Dispatch::new(base.with(otel).with(DirectRequestAttributes::layer())),
    }
}

type Outbound = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<ResponseBody<hyper::body::Incoming>>,
    String,
>;

/// The app under test: `/orders/{id}` (any method) logs and makes two
/// outbound calls, `/status` answers, `/pkg.Orders/Get` answers a gRPC call.
async fn app(downstream: SocketAddr) -> SocketAddr {
    let outbound: Outbound = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .map_err(|e: hyper_util::client::legacy::Error| e.to_string())
            .layer(
                ClientTelemetryLayer::builder()
                    .capture_request_headers(["x-note"])
                    .build()
                    .unwrap(),
            )
            // Inside the client span: the line carries its fields.
            .map_request(|request: http::Request<Full<Bytes>>| {
                tracing::info!("calling downstream");
                request
            })
            .service(hyper_client()),
    );
    let server = ServerTelemetryLayer::builder()
        .request_log(RequestLog::On)
        .capture_request_headers(["x-note"])
        .trusted_proxies(["127.0.0.1"])
        .build()
        .unwrap();
    let app = Router::new()
        .route("/orders/{id}", any(order))
        .route("/pkg.Orders/Get", post(|| async { "got" }))
        .route("/status", any(|| async { "up" }))
        .with_state((outbound, downstream))
        .layer(server)
        // Outside the telemetry layer, as telltale-correlation's layer is.
        .layer(axum::middleware::map_request(
            |mut req: Request| async move {
                req.extensions_mut()
                    .insert("req-42".parse::<CorrelationId>().unwrap());
                req
            },
        ));
    // With the peer's address, for `client.address`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn order(State((outbound, downstream)): State<(Outbound, SocketAddr)>) -> &'static str {
    tracing::info!("loading the order");
    let calls = [
        http::Request::get(format!("http://{downstream}/seen?token=abc&q=1"))
            .header("x-note", "outbound")
            .body(Full::default())
            .unwrap(),
        http::Request::post(format!("http://{downstream}/pkg.Stock/Check"))
            .header("content-type", "application/grpc")
            .body(Full::default())
            .unwrap(),
    ];
    for call in calls {
        let response = outbound.clone().oneshot(call).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
    "order"
}

/// The requests sent, one after the other.
fn requests(addr: SocketAddr) -> Vec<http::Request<Full<Bytes>>> {
    vec![
        http::Request::get(format!("http://{addr}/orders/7?token=secret&q=1"))
            .header("user-agent", "bridge-test/1.0")
            .header("x-note", "inbound")
            .header("x-forwarded-for", "2001:db8::17")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(Full::default())
            .unwrap(),
        http::Request::builder()
            .method("PURGE")
            .uri(format!("http://{addr}/orders/8"))
            .header("forwarded", "for=_hidden")
            .body(Full::default())
            .unwrap(),
        http::Request::get(format!("http://{addr}/status"))
            .body(Full::default())
            .unwrap(),
        http::Request::post(format!("http://{addr}/pkg.Orders/Get"))
            .header("content-type", "application/grpc")
            .header("x-forwarded-for", "198.51.100.7")
            .body(Full::default())
            .unwrap(),
    ]
}

/// A span as a user sees it exported: name, kind, status and every
/// attribute, with its value's type.
fn describe(span: &SpanData) -> String {
    let mut out = format!("{} {:?} {:?}\n", span.name, span.span_kind, span.status);
    for kv in &span.attributes {
        let value = match &kv.value {
            Value::Bool(b) => format!("bool {b}"),
            Value::I64(n) => format!("i64 {n}"),
            Value::F64(f) => format!("f64 {f}"),
            Value::String(s) => format!("string {:?}", s.as_str()),
            Value::Array(Array::String(values)) => format!(
                "string[] {:?}",
                values.iter().map(|v| v.as_str()).collect::<Vec<_>>()
            ),
            other => format!("other {other:?}"),
        };
        out.push_str(&format!("  {} = {value}\n", kv.key.as_str()));
    }
    out
}

/// A log line without what differs from run to run (time, IDs, durations).
fn stable(line: &str) -> serde_json::Value {
    let mut value: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    if let Some(object) = value.as_object_mut() {
        object.retain(|key, _| {
            !matches!(key.as_str(), "timestamp" | "trace_id" | "span_id")
                && !key.contains("duration")
        });
    }
    value
}

/// What one subscriber makes of the requests: the exported spans, sorted,
/// and the log lines.
async fn run(
    bridge: Bridge,
    early: bool,
    client: &Hyper,
    addr: SocketAddr,
) -> (Vec<String>, Vec<serde_json::Value>) {
    let exporter = InMemorySpanExporter::default();
    let logs = Captured::default();
    let guard = telltale_testkit::set_default(subscriber(bridge, early, &exporter, &logs));
    for request in requests(addr) {
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
    }
    // 4 server spans, 2 client spans for each of the 2 orders.
    let mut spans = Vec::new();
    for _ in 0..500 {
        spans = exporter.get_finished_spans().unwrap();
        if spans.len() >= 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(guard);
    assert_eq!(spans.len(), 8, "{bridge:?} early={early}: {spans:#?}");
    let mut spans: Vec<String> = spans.iter().map(describe).collect();
    spans.sort();
    // The app's and telltale's lines (hyper's differ with its pool's state).
    let lines = logs
        .text()
        .lines()
        .map(stable)
        .filter(|l| l["target"] == "direct_attributes" || l["target"] == "telltale::request")
        .collect();
    (spans, lines)
}

#[tokio::test(flavor = "current_thread")]
async fn direct_and_plain_spans_and_lines_are_identical() {
    let downstream = serve(
        Router::new()
            .route("/seen", any(|| async { "seen" }))
            .route("/pkg.Stock/Check", post(|| async { "checked" })),
    )
    .await;
    let addr = app(downstream).await;
    let client = hyper_client();
    for early in [true, false] {
        let (plain_spans, plain_lines) = run(Bridge::Plain, early, &client, addr).await;
        for bridge in [Bridge::Direct] {
            let (spans, lines) = run(bridge, early, &client, addr).await;
            assert_eq!(spans, plain_spans, "{bridge:?} early={early}");
            assert_eq!(lines, plain_lines, "{bridge:?} early={early}");
        }
        // What is compared is what the requests carry.
        let all = plain_spans.concat();
        for expected in [
            "GET /orders/{id} Server",
            "  http.request.method = string \"GET\"",
            "  http.request.method_original = string \"PURGE\"",
            "  http.route = string \"/orders/{id}\"",
            "  url.path = string \"/orders/7\"",
            "  url.query = string \"token=REDACTED&q=1\"",
            "  url.scheme = string \"http\"",
            "  network.protocol.version = string \"1.1\"",
            "  server.port = i64 ",
            "  client.address = string \"2001:db8::17\"",
            "  client.address = string \"_hidden\"",
            "  client.address = string \"198.51.100.7\"",
            "  user_agent.original = string \"bridge-test/1.0\"",
            "  correlation_id = string \"req-42\"",
            "  http.request.header.x-note = string[] [\"inbound\"]",
            "  http.response.status_code = i64 200",
            "GET /status Server",
            "  url.path = string \"/status\"",
            "pkg.Orders/Get Server",
            "  rpc.system = string \"grpc\"",
            "  rpc.service = string \"pkg.Orders\"",
            "  rpc.method = string \"Get\"",
            "GET Client",
            "  url.full = string \"http://127.0.0.1:",
            "  http.request.header.x-note = string[] [\"outbound\"]",
            "pkg.Stock/Check Client",
            "  rpc.service = string \"pkg.Stock\"",
        ] {
            assert!(
                all.contains(expected),
                "{expected:?} not in {plain_spans:#?}"
            );
        }
        let line = |message: &str, key: &str, value: &str| {
            assert!(
                plain_lines
                    .iter()
                    .any(|l| l["message"] == message && l[key] == value),
                "no {message:?} line with {key}={value}: {plain_lines:#?}"
            );
        };
        line("request finished", "url.path", "/orders/7");
        line("request finished", "rpc.method", "Get");
        line("loading the order", "http.request.method_original", "PURGE");
        line("calling downstream", "rpc.service", "pkg.Stock");
        line(
            "calling downstream",
            "url.full",
            &format!("http://{downstream}/seen?token=REDACTED&q=1"),
        );
    }
}
