//! OpenTelemetry conventions of the presets' spans and metrics, against real
//! servers on 127.0.0.1:0:
//!
//! - a real tonic client through `ClientStack` (with the channel's origin) to
//!   a real tonic server: the CLIENT span follows the RPC conventions
//!   (`rpc.*`, `server.address`, `server.port`, `network.protocol.version`,
//!   no `url.full`) and `rpc_client_call_duration_seconds` has
//!   `server_address` and `server_port`;
//! - breaker and bulkhead rejections: `error.type` `circuit_open` /
//!   `bulkhead_full` on the span and in the metrics alike, a fixed span
//!   status text, the per-call numbers as attributes.
//!
//! This test binary installs telemetry globally once (its own process).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry::trace::{SpanKind, Status};
use telltale::resilience::{Bulkhead, CircuitBreaker, State};
use telltale::stack::{ClientStack, ServerStack};
use telltale::telemetry::layer::{ClientTelemetryLayer, ServerTelemetryLayer};
use telltale::telemetry::metrics::{RedConfig, prometheus_builder};
use telltale::telemetry::{FlightRecorder, RecordedSpan};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

mod support;
use support::serve;

fn recorder() -> &'static FlightRecorder {
    support::recorder("otel-conventions-test")
}

/// A RED configuration recording into its own Prometheus registry.
fn red() -> (RedConfig, PrometheusHandle) {
    let config = RedConfig::default();
    let recorder = prometheus_builder(&config).build_recorder();
    let handle = recorder.handle();
    (config.with_recorder(Arc::new(recorder)), handle)
}

fn attr(span: &RecordedSpan, key: &str) -> Option<String> {
    span.attribute(key).map(ToString::to_string)
}

/// The most recent span of `kind` for which `pick` holds (bounded wait).
async fn wait_span(kind: SpanKind, pick: impl Fn(&RecordedSpan) -> bool) -> Arc<RecordedSpan> {
    for _ in 0..500 {
        if let Some(span) = recorder()
            .recent(200)
            .into_iter()
            .find(|s| *s.kind() == kind && pick(s))
        {
            return span;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no such {kind:?} span");
}

/// The exposition lines of `family` (bounded wait until one contains `needle`).
async fn wait_metric(handle: &PrometheusHandle, needle: &str) -> String {
    let mut text = String::new();
    for _ in 0..500 {
        text = handle.render();
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("metrics lack {needle}:\n{text}");
}

#[tokio::test]
async fn tonic_client_spans_and_metrics_name_the_server_from_the_channel_origin() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    recorder();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let origin: http::Uri = format!("http://{addr}").parse().unwrap();
    let channel = tonic::transport::Endpoint::from(origin.clone())
        .connect()
        .await
        .unwrap();
    let (config, metrics) = red();
    let telemetry = ClientTelemetryLayer::builder()
        .red_config(config)
        .build()
        .unwrap();
    let stack = ClientStack::new()
        .telemetry(telemetry)
        .origin(origin)
        .unwrap();
    let mut client = HealthClient::new(ServiceBuilder::new().layer(stack.layer()).service(channel));
    client.check(HealthCheckRequest::default()).await.unwrap();

    let span = wait_span(SpanKind::Client, |s| {
        attr(s, "rpc.service").as_deref() == Some("grpc.health.v1.Health")
            && attr(s, "server.port") == Some(addr.port().to_string())
    })
    .await;
    assert_eq!(span.name(), "grpc.health.v1.Health/Check");
    assert_eq!(attr(&span, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attr(&span, "rpc.method").as_deref(), Some("Check"));
    assert_eq!(attr(&span, "rpc.grpc.status_code").as_deref(), Some("0"));
    assert_eq!(attr(&span, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(&span, "network.protocol.version").as_deref(),
        Some("2")
    );
    // The RPC conventions have no `url.full`; never a bare path.
    assert_eq!(attr(&span, "url.full"), None, "{:?}", span.to_json());
    assert_eq!(span.status(), &Status::Unset);

    let text = wait_metric(&metrics, "rpc_client_call_duration_seconds_count").await;
    let line = text
        .lines()
        .find(|l| l.starts_with("rpc_client_call_duration_seconds_count"))
        .unwrap();
    assert!(line.contains(r#"server_address="127.0.0.1""#), "{line}");
    assert!(
        line.contains(&format!(r#"server_port="{}""#, addr.port())),
        "{line}"
    );
    assert!(line.contains(r#"rpc_method="Check""#), "{line}");
}

#[tokio::test]
async fn http_client_without_an_authority_has_no_relative_url_full() {
    recorder();
    let upstream = serve(Router::new().route("/plain", get(|| async { "ok" }))).await;
    // A transport that adds the origin itself (as tonic's channel does).
    let transport = tower::service_fn(move |req: Request<Full<Bytes>>| async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let (mut parts, body) = req.into_parts();
        parts.uri = format!("http://{upstream}{}", parts.uri.path())
            .parse()
            .unwrap();
        client.request(Request::from_parts(parts, body)).await
    });
    let path_only = || {
        Request::get("/plain?token=secret")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // No origin: no `url.full`, no `server.*`.
    let plain = ServiceBuilder::new()
        .layer(ClientStack::new().layer())
        .service(transport);
    let res = plain.oneshot(path_only()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();
    let span = wait_span(SpanKind::Client, |s| {
        attr(s, "http.response.status_code").as_deref() == Some("200")
            && attr(s, "rpc.system").is_none()
            && attr(s, "url.full").is_none()
    })
    .await;
    assert_eq!(attr(&span, "server.address"), None);

    // With the origin: absolute, redacted.
    let origin: http::Uri = format!("http://{upstream}").parse().unwrap();
    let with_origin = ServiceBuilder::new()
        .layer(ClientStack::new().origin(origin).unwrap().layer())
        .service(transport);
    let res = with_origin.oneshot(path_only()).await.unwrap();
    res.into_body().collect().await.unwrap();
    let expected = format!("http://{upstream}/plain?token=REDACTED");
    let span = wait_span(SpanKind::Client, |s| {
        attr(s, "url.full").as_deref() == Some(expected.as_str())
    })
    .await;
    assert_eq!(attr(&span, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(&span, "server.port"),
        Some(upstream.port().to_string())
    );
}

type Hyper = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

async fn hyper_get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let client: Hyper = Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .request(
            Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let id = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    res.into_body().collect().await.unwrap();
    (status, id)
}

fn status_message(span: &RecordedSpan) -> Option<String> {
    match span.status() {
        Status::Error { description } => Some(description.to_string()),
        _ => None,
    }
}

#[tokio::test]
async fn server_rejections_have_low_cardinality_error_types_on_span_and_metrics() {
    recorder();
    let (config, metrics) = red();
    let breaker = CircuitBreaker::builder("conv-open").build().unwrap();
    breaker.transition_to(State::Open);
    let stack = ServerStack::new()
        .telemetry(
            ServerTelemetryLayer::builder()
                .red_config(config.clone())
                .build()
                .unwrap(),
        )
        .breaker(breaker);
    let app = Router::new()
        .route("/r", get(|| async { "never" }))
        .layer(stack.layer());
    let addr = serve(app).await;
    for _ in 0..2 {
        let (status, id) = hyper_get(addr, "/r").await;
        assert_eq!(status, 503);
        let span = wait_span(SpanKind::Server, |s| {
            s.correlation_id().as_deref() == Some(id.as_str())
        })
        .await;
        assert_eq!(attr(&span, "error.type").as_deref(), Some("circuit_open"));
        assert_eq!(
            attr(&span, "http.response.status_code").as_deref(),
            Some("503")
        );
        // Fixed text: the same on every call.
        assert_eq!(status_message(&span).as_deref(), Some("circuit open"));
        assert_eq!(
            attr(&span, "resilience.circuit_breaker.name").as_deref(),
            Some("conv-open")
        );
        assert_eq!(attr(&span, "resilience.rejected").as_deref(), Some("true"));
        // The wait until the next probe is an attribute.
        let retry: u64 = attr(&span, "resilience.circuit_breaker.retry_after_ms")
            .expect("retry_after_ms")
            .parse()
            .unwrap();
        assert!(retry > 0);
    }
    let text = wait_metric(&metrics, r#"error_type="circuit_open""#).await;
    let line = text
        .lines()
        .find(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .unwrap();
    assert!(line.contains(r#"error_type="circuit_open""#), "{line}");
    assert!(line.ends_with(" 2"), "{line}");

    // A full bulkhead: `bulkhead_full`.
    let bulkhead = Bulkhead::builder("conv-full")
        .max_concurrent(1)
        .build()
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    let stack = ServerStack::new()
        .telemetry(
            ServerTelemetryLayer::builder()
                .red_config(config)
                .build()
                .unwrap(),
        )
        .bulkhead(bulkhead);
    let addr = serve(
        Router::new()
            .route("/b", get(|| async { "never" }))
            .layer(stack.layer()),
    )
    .await;
    let (status, id) = hyper_get(addr, "/b").await;
    assert_eq!(status, 503);
    let span = wait_span(SpanKind::Server, |s| {
        s.correlation_id().as_deref() == Some(id.as_str())
    })
    .await;
    assert_eq!(attr(&span, "error.type").as_deref(), Some("bulkhead_full"));
    assert_eq!(status_message(&span).as_deref(), Some("bulkhead full"));
    assert_eq!(
        attr(&span, "resilience.bulkhead.name").as_deref(),
        Some("conv-full")
    );
    assert!(attr(&span, "resilience.bulkhead.waited_ms").is_some());
    wait_metric(&metrics, r#"error_type="bulkhead_full""#).await;
}

#[tokio::test]
async fn client_rejections_have_low_cardinality_error_types_on_span_and_metrics() {
    recorder();
    let upstream = serve(Router::new().route("/u", get(|| async { "ok" }))).await;
    let (config, metrics) = red();
    let breaker = CircuitBreaker::builder("conv-client").build().unwrap();
    breaker.transition_to(State::Open);
    let stack = ClientStack::new()
        .telemetry(
            ClientTelemetryLayer::builder()
                .red_config(config)
                .build()
                .unwrap(),
        )
        .breaker(breaker);
    let client = ServiceBuilder::new()
        .layer(stack.layer())
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let url = format!("http://{upstream}/u");
    let mut messages = Vec::new();
    for _ in 0..2 {
        let err = client
            .clone()
            .oneshot(Request::get(&url).body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap_err();
        assert!(telltale::resilience::Error::rejection_in(&*err).is_some());
        let span = wait_span(SpanKind::Client, |s| {
            attr(s, "url.full").as_deref() == Some(url.as_str())
                && attr(s, "error.type").is_some()
                && !messages.iter().any(|(id, _)| *id == s.span_id())
        })
        .await;
        assert_eq!(attr(&span, "error.type").as_deref(), Some("circuit_open"));
        assert!(
            attr(&span, "resilience.circuit_breaker.retry_after_ms").is_some(),
            "{:?}",
            span.to_json()
        );
        messages.push((span.span_id(), status_message(&span)));
    }
    // Stable: the same text on both calls, without the per-call wait.
    assert_eq!(messages[0].1.as_deref(), Some("circuit open"));
    assert_eq!(messages[0].1, messages[1].1);
    let text = wait_metric(&metrics, r#"error_type="circuit_open""#).await;
    assert!(!text.contains("_OTHER"), "{text}");
}

#[tokio::test]
async fn grpc_server_rejections_keep_the_grpc_status_and_name_the_refusal() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    recorder();
    let breaker = CircuitBreaker::builder("conv-grpc-open").build().unwrap();
    breaker.force_open();
    let traced = ServerTelemetryLayer::builder()
        .trace_health_checks(true)
        .build()
        .unwrap();
    let stack = ServerStack::new().telemetry(traced).breaker(breaker);
    let addr = support::grpc_health_server(stack).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut req = tonic::Request::new(HealthCheckRequest::default());
    req.metadata_mut()
        .insert("x-correlation-id", "conv-grpc-1".parse().unwrap());
    let status = HealthClient::new(channel).check(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "circuit open");
    let span = wait_span(SpanKind::Server, |s| {
        s.correlation_id().as_deref() == Some("conv-grpc-1")
    })
    .await;
    assert_eq!(attr(&span, "rpc.grpc.status_code").as_deref(), Some("14"));
    assert_eq!(attr(&span, "error.type").as_deref(), Some("circuit_open"));
    assert_eq!(status_message(&span).as_deref(), Some("circuit open"));
}
