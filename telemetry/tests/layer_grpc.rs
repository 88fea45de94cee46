//! The request layers on a real tonic server and channel, with the generated
//! gRPC health service (no protoc): unary OK with the status in the trailers,
//! trailers-only errors, a server stream that fails mid-stream, and the health
//! filter.

mod support;

use std::net::SocketAddr;
use std::pin::Pin;

use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use support::harness::{Harness, attr, attr_str};
use telltale_telemetry::layer::client::ClientTelemetryLayer;
use telltale_telemetry::layer::server::ServerTelemetryLayer;
use tonic::codegen::tokio_stream::{self, Stream, StreamExt};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::ServiceBuilder;

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

/// Health service: `""` is serving, `"down"` is UNAVAILABLE, anything else
/// NOT_FOUND; `Watch` sends one status and then fails with INTERNAL.
struct Svc;

#[tonic::async_trait]
impl Health for Svc {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, tonic::Status> {
        match request.get_ref().service.as_str() {
            "" => Ok(Response::new(response(ServingStatus::Serving))),
            "down" => Err(tonic::Status::unavailable("down")),
            _ => Err(tonic::Status::not_found("unknown service")),
        }
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, tonic::Status>> + Send>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, tonic::Status> {
        Ok(Response::new(Box::pin(tokio_stream::iter([
            Ok(response(ServingStatus::Serving)),
            Err(tonic::Status::internal("broke mid-stream")),
        ]))))
    }
}

async fn serve(layer: ServerTelemetryLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(HealthServer::new(Svc))
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

async fn client(
    h: &Harness,
    addr: SocketAddr,
) -> HealthClient<
    telltale_telemetry::layer::client::ClientTelemetryService<tonic::transport::Channel>,
> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(
            ClientTelemetryLayer::builder()
                .red_config(h.config.clone())
                .build()
                .unwrap(),
        )
        .service(channel);
    HealthClient::new(svc)
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

fn traced(h: &Harness) -> ServerTelemetryLayer {
    ServerTelemetryLayer::builder()
        .red_config(h.config.clone())
        .trace_health_checks(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn ok_unary_call_with_status_in_trailers_is_ok() {
    let h = Harness::new();
    let addr = serve(traced(&h)).await;
    let mut client = client(&h, addr).await;
    let res = client.check(check("")).await.unwrap();
    assert_eq!(res.get_ref().status, ServingStatus::Serving as i32);

    let server = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(server.name, "grpc.health.v1.Health/Check");
    assert_eq!(server.status, Status::Unset);
    assert_eq!(attr_str(&server, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attr_str(&server, "rpc.service").as_deref(),
        Some("grpc.health.v1.Health")
    );
    assert_eq!(attr_str(&server, "rpc.method").as_deref(), Some("Check"));
    assert_eq!(attr(&server, "rpc.grpc.status_code"), Some(&Value::I64(0)));
    assert_eq!(
        attr_str(&server, "http.route").as_deref(),
        Some("/grpc.health.v1.Health/Check")
    );
    assert!(attr(&server, "error.type").is_none());
    // HTTP/2: the authority comes from `:authority`.
    assert_eq!(
        attr_str(&server, "network.protocol.version").as_deref(),
        Some("2")
    );
    assert_eq!(
        attr_str(&server, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(&server, "server.port"),
        Some(&Value::I64(i64::from(addr.port())))
    );

    let client_span = h.wait_spans(SpanKind::Client, 1).await.remove(0);
    assert_eq!(client_span.name, "grpc.health.v1.Health/Check");
    assert_eq!(client_span.status, Status::Unset);
    assert_eq!(
        server.span_context.trace_id(),
        client_span.span_context.trace_id()
    );
    assert_eq!(server.parent_span_id, client_span.span_context.span_id());

    h.wait_metric(r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="grpc.health.v1.Health",rpc_method="Check",rpc_grpc_status_code="0"} 1"#).await;
    h.wait_metric(r#"rpc_client_call_duration_seconds_count{rpc_system="grpc",rpc_service="grpc.health.v1.Health",rpc_method="Check",rpc_grpc_status_code="0""#).await;
}

#[tokio::test]
async fn trailers_only_errors_follow_the_rpc_conventions() {
    let h = Harness::new();
    let addr = serve(traced(&h)).await;
    let mut client = client(&h, addr).await;
    let err = client.check(check("missing")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client.check(check("down")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    let servers = h.wait_spans(SpanKind::Server, 2).await;
    let by_code = |spans: &[SpanData], code: i64| {
        spans
            .iter()
            .find(|s| attr(s, "rpc.grpc.status_code") == Some(&Value::I64(code)))
            .cloned()
            .unwrap_or_else(|| panic!("no span with code {code}"))
    };
    // NOT_FOUND is the caller's problem: not a server error.
    let not_found = by_code(&servers, 5);
    assert_eq!(not_found.status, Status::Unset);
    assert!(attr(&not_found, "error.type").is_none());
    let unavailable = by_code(&servers, 14);
    assert!(matches!(unavailable.status, Status::Error { .. }));
    assert_eq!(
        attr_str(&unavailable, "error.type").as_deref(),
        Some("UNAVAILABLE")
    );

    let clients = h.wait_spans(SpanKind::Client, 2).await;
    let not_found = by_code(&clients, 5);
    assert!(matches!(not_found.status, Status::Error { .. }));
    assert_eq!(
        attr_str(&not_found, "error.type").as_deref(),
        Some("NOT_FOUND")
    );
    h.wait_metric(r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="grpc.health.v1.Health",rpc_method="Check",rpc_grpc_status_code="14",error_type="UNAVAILABLE"} 1"#).await;
    h.wait_metric(r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="grpc.health.v1.Health",rpc_method="Check",rpc_grpc_status_code="5"} 1"#).await;
}

#[tokio::test]
async fn stream_failing_mid_stream_is_an_error_in_span_and_metrics() {
    let h = Harness::new();
    let addr = serve(traced(&h)).await;
    let mut client = client(&h, addr).await;
    let mut stream = client.watch(check("")).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert!(stream.next().await.is_none());

    let server = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(server.name, "grpc.health.v1.Health/Watch");
    assert!(matches!(server.status, Status::Error { .. }));
    assert_eq!(attr(&server, "rpc.grpc.status_code"), Some(&Value::I64(13)));
    assert_eq!(attr_str(&server, "error.type").as_deref(), Some("INTERNAL"));
    // The response head said 200: the error only came in the trailers.
    assert_eq!(
        attr(&server, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    let client_span = h.wait_spans(SpanKind::Client, 1).await.remove(0);
    assert!(matches!(client_span.status, Status::Error { .. }));
    h.wait_metric(r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="grpc.health.v1.Health",rpc_method="Watch",rpc_grpc_status_code="13",error_type="INTERNAL"} 1"#).await;
    h.wait_metric(r#"rpc_client_call_duration_seconds_count{rpc_system="grpc",rpc_service="grpc.health.v1.Health",rpc_method="Watch",rpc_grpc_status_code="13",error_type="INTERNAL""#).await;
}

#[tokio::test]
async fn grpc_health_checks_are_counted_but_not_traced_by_default() {
    let h = Harness::new();
    let layer = ServerTelemetryLayer::builder()
        .red_config(h.config.clone())
        .build()
        .unwrap();
    let addr = serve(layer).await;
    let mut client = client(&h, addr).await;
    client.check(check("")).await.unwrap();
    h.wait_metric(r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="grpc.health.v1.Health",rpc_method="Check",rpc_grpc_status_code="0"} 1"#).await;
    // The client span is there (the filter is a server option); no server span.
    h.wait_spans(SpanKind::Client, 1).await;
    let servers: Vec<_> = h
        .exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    assert!(servers.is_empty(), "{servers:#?}");
}
