//! `telltale::stack::ServerStack` on real servers (axum and tonic on
//! 127.0.0.1:0): spans recorded with the correlation ID, rejections as
//! responses (HTTP and gRPC), chaos from an environment source.
//!
//! This test binary installs telemetry globally once (its own process).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale::core::config::Env;
use telltale::resilience::{Bulkhead, CircuitBreaker};
use telltale::stack::ServerStack;
use telltale::telemetry::{FlightRecorder, RecordedSpan};
use tokio::net::TcpListener;
use tokio::sync::Notify;

mod support;
use support::serve;

fn recorder() -> &'static FlightRecorder {
    support::recorder("stack-test")
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get_with_id(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
    id: &str,
) -> http::Response<Bytes> {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("x-correlation-id", id)
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    http::Response::from_parts(parts, body)
}

/// The SERVER span of correlation ID `id`, once it ended (bounded wait: the
/// span ends when the response body ends, just after the client read it).
async fn server_span(id: &str) -> Arc<RecordedSpan> {
    for _ in 0..200 {
        if let Some(span) = recorder()
            .by_correlation_id(id)
            .into_iter()
            .find(|s| matches!(s.kind(), opentelemetry::trace::SpanKind::Server))
        {
            return span;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recent: Vec<_> = recorder().recent(20).iter().map(|s| s.to_json()).collect();
    panic!("no span recorded for {id}; recent: {recent:#?}");
}

fn hello_router() -> Router {
    Router::new().route("/hello/{name}", get(|| async { "hello" }))
}

#[tokio::test]
async fn axum_stack_records_the_span_with_route_and_correlation_id() {
    recorder();
    let app = hello_router().layer(telltale::stack().layer());
    let addr = serve(app).await;
    let res = get_with_id(&client(), addr, "/hello/ada", "stack-ok-1").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-correlation-id"], "stack-ok-1");
    let span = server_span("stack-ok-1").await;
    assert_eq!(span.name(), "GET /hello/{name}");
    assert_eq!(span.service_name(), Some("stack-test"));
    assert_eq!(span.correlation_id().as_deref(), Some("stack-ok-1"));
}

#[tokio::test]
async fn open_breaker_is_a_503_with_retry_after_inside_the_span() {
    recorder();
    let breaker = CircuitBreaker::builder("stack-open").build().unwrap();
    breaker.transition_to(telltale::resilience::State::Open);
    let stack = ServerStack::new().breaker(breaker);
    let addr = serve(hello_router().layer(stack.layer())).await;
    let res = get_with_id(&client(), addr, "/hello/bob", "stack-open-1").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    // Correlation is outside the rejection: still echoed.
    assert_eq!(res.headers()["x-correlation-id"], "stack-open-1");
    let span = server_span("stack-open-1").await;
    assert_eq!(
        span.attribute("http.response.status_code")
            .map(ToString::to_string)
            .as_deref(),
        Some("503")
    );
}

#[tokio::test]
async fn full_bulkhead_answers_429_when_configured_from_env() {
    recorder();
    let env = Env::from_pairs([
        ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "1"),
        ("TELLTALE_BULKHEAD_MAX_WAIT", "0"),
        ("TELLTALE_BULKHEAD_STATUS", "429"),
    ]);
    let stack = ServerStack::from_env_source(&env).unwrap();
    assert_eq!(stack.bulkhead_ref().unwrap().max_concurrent(), 1);
    let release = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    let (r, e) = (release.clone(), entered.clone());
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let (r, e) = (r.clone(), e.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    "done"
                }
            }),
        )
        .layer(stack.layer());
    let addr = serve(app).await;
    let client = client();
    let first = tokio::spawn({
        let client = client.clone();
        async move { get_with_id(&client, addr, "/slow", "bulk-1").await }
    });
    entered.notified().await;
    let second = get_with_id(&client, addr, "/slow", "bulk-2").await;
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    release.notify_one();
    assert_eq!(first.await.unwrap().status(), 200);
}

#[tokio::test]
async fn chaos_from_an_env_source_is_injected_and_tagged() {
    recorder();
    let env = Env::from_pairs([
        ("TELLTALE_CHAOS", "in GET /hello/*: status(502)"),
        ("TELLTALE_ENV", "test"),
    ]);
    let stack = ServerStack::from_env_source(&env).unwrap();
    assert_eq!(stack.injector().status(), telltale::chaos::Status::Armed);
    let addr = serve(hello_router().layer(stack.layer())).await;
    let res = get_with_id(&client(), addr, "/hello/eve", "stack-chaos-1").await;
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["x-telltale-chaos"], "1.1");
    let span = server_span("stack-chaos-1").await;
    let tagged = span
        .data()
        .events
        .iter()
        .any(|e| e.name == "chaos fault injected");
    assert!(tagged, "{}", span.to_json());
}

#[tokio::test]
async fn bad_env_values_name_the_variable() {
    let env = Env::from_pairs([("TELLTALE_BULKHEAD_STATUS", "418")]);
    let err = ServerStack::from_env_source(&env).unwrap_err();
    assert!(
        err.to_string().contains("TELLTALE_BULKHEAD_STATUS"),
        "{err}"
    );
    let env = Env::from_pairs([("TELLTALE_CHAOS", "in: 30% delay(")]);
    assert!(ServerStack::from_env_source(&env).is_err());
}

#[tokio::test]
async fn tonic_server_stack_serves_and_maps_rejections_to_grpc_statuses() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    recorder();
    let serve_tonic = |stack: ServerStack| async move {
        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(stack.layer())
                .add_service(health)
                .serve_with_incoming(incoming),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        HealthClient::new(channel)
    };

    // Health checks get no span unless asked for (they are still counted).
    let traced = telltale::telemetry::layer::ServerTelemetryLayer::builder()
        .trace_health_checks(true)
        .build()
        .unwrap();
    let mut ok = serve_tonic(ServerStack::new().telemetry(traced)).await;
    let mut req = tonic::Request::new(HealthCheckRequest::default());
    req.metadata_mut()
        .insert("x-correlation-id", "grpc-ok-1".parse().unwrap());
    let res = ok.check(req).await.unwrap();
    assert_eq!(res.get_ref().status(), ServingStatus::Serving);
    assert_eq!(res.metadata().get("x-correlation-id").unwrap(), "grpc-ok-1");
    let span = server_span("grpc-ok-1").await;
    assert_eq!(span.name(), "grpc.health.v1.Health/Check");

    let breaker = CircuitBreaker::builder("grpc-open").build().unwrap();
    breaker.force_open();
    let mut open = serve_tonic(ServerStack::new().breaker(breaker)).await;
    let status = open.check(HealthCheckRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "circuit open");

    let bulkhead = Bulkhead::builder("grpc-full")
        .max_concurrent(1)
        .build()
        .unwrap();
    let _held = bulkhead.try_acquire().unwrap();
    let mut full = serve_tonic(ServerStack::new().bulkhead(bulkhead)).await;
    let status = full.check(HealthCheckRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
}

#[tokio::test]
async fn the_breaker_counts_injected_faults_because_chaos_is_innermost() {
    recorder();
    let env = Env::from_pairs([
        ("TELLTALE_CHAOS", "in: status(500)"),
        ("TELLTALE_ENV", "test"),
        ("TELLTALE_BREAKER_WINDOW", "4"),
        ("TELLTALE_BREAKER_MINIMUM_CALLS", "2"),
        ("TELLTALE_BREAKER_OPEN_WAIT", "1m"),
    ]);
    let stack = ServerStack::from_env_source(&env).unwrap();
    let breaker = stack.breaker_ref().unwrap().clone();
    let addr = serve(hello_router().layer(stack.layer())).await;
    let client = client();
    for i in 0..2 {
        let res = get_with_id(&client, addr, "/hello/x", &format!("inner-{i}")).await;
        assert_eq!(res.status(), 500);
        assert!(res.headers().contains_key("x-telltale-chaos"));
    }
    // The server settles the breaker when it has sent the body's end, which
    // may be just after the client read the last byte: wait, bounded.
    for _ in 0..200 {
        if breaker.state() == telltale::resilience::State::Open {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(breaker.state(), telltale::resilience::State::Open);
    // Now the breaker answers before chaos is reached.
    let res = get_with_id(&client, addr, "/hello/x", "inner-2").await;
    assert_eq!(res.status(), 503);
    assert!(!res.headers().contains_key("x-telltale-chaos"));
}
