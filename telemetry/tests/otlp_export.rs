//! Real export to real OTLP receivers (gRPC and HTTP/protobuf) from two real
//! axum services, A calling B, each with its own telemetry pipeline.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get as route_get;
use support::otel::{Captured, Received, Sink, client, get, grpc_receiver, http_receiver, serve};
use telltale_telemetry::{LogFormat, Profile, Protocol, Telemetry, install_propagators};
use tracing::Instrument;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REMOTE_PARENT: &str = "00f067aa0ba902b7";

fn pipeline(
    service: &str,
    endpoint: &str,
    protocol: Protocol,
    profile: Profile,
    logs: &Captured,
) -> Telemetry {
    let logs_endpoint = endpoint.replace("/v1/traces", "/v1/logs");
    Telemetry::builder()
        .service_name(service)
        .resource_attribute("deployment.environment", "test")
        .resource_attribute("service.version", "1.2.3")
        .otlp(endpoint, protocol)
        .otlp_logs(logs_endpoint, protocol)
        .otlp_timeout(Duration::from_secs(5))
        .export_delay(Duration::from_millis(20))
        .log_format(LogFormat::Json(profile))
        .writer(logs.clone())
        .filter("info")
        .build()
        .unwrap()
}

fn one<'a>(spans: &'a [Received], service: &str, name: &str) -> &'a Received {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "{service} {name} in {spans:#?}");
    found[0]
}

async fn a_calls_b(protocol: Protocol, sink: Sink, endpoint: String) {
    install_propagators();
    let logs_a = Captured::default();
    let logs_b = Captured::default();
    let (dispatch_a, guard_a) = pipeline(
        "svc-a",
        &endpoint,
        protocol,
        Profile::OpenTelemetry,
        &logs_a,
    )
    .into_parts();
    let (dispatch_b, guard_b) = pipeline(
        "svc-b",
        &endpoint,
        protocol,
        Profile::ElasticCommonSchema,
        &logs_b,
    )
    .into_parts();
    assert!(guard_a.flight_recorder().is_none(), "an exporter is set");

    let app_b = Router::new().route(
        "/b",
        route_get(|| async {
            tracing::info!(step = "b", "handled in b");
            "from b"
        }),
    );
    let b = serve(app_b, dispatch_b).await;
    let http = client();
    let app_a = Router::new().route(
        "/a",
        route_get(move || {
            let http = http.clone();
            async move {
                tracing::info!(step = "a", "handled in a");
                let (status, body) = get(
                    &http,
                    &format!("http://{b}/b"),
                    &[("x-correlation-id", "corr-1")],
                )
                .instrument(tracing::info_span!("call b", otel.kind = "client"))
                .await;
                format!("{status} {body}")
            }
        }),
    );
    let a = serve(app_a, dispatch_a).await;

    let traceparent = format!("00-{TRACE_ID}-{REMOTE_PARENT}-01");
    let (status, body) = get(
        &client(),
        &format!("http://{a}/a"),
        &[
            ("traceparent", &traceparent),
            ("x-correlation-id", "corr-1"),
        ],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "200 from b"));

    guard_a.force_flush().unwrap();
    guard_b.force_flush().unwrap();
    let spans = sink
        .wait_for(|s| s.iter().any(|s| s.name == "GET /b") && s.iter().any(|s| s.name == "call b"))
        .await;

    let a_server = one(&spans, "svc-a", "GET /a");
    let a_client = one(&spans, "svc-a", "call b");
    let b_server = one(&spans, "svc-b", "GET /b");
    for span in [a_server, a_client, b_server] {
        assert_eq!(span.trace_id, TRACE_ID, "{span:?}");
        assert_eq!(span.resource["deployment.environment"], "test");
        assert_eq!(span.resource["service.version"], "1.2.3");
        assert_eq!(span.resource["telemetry.sdk.language"], "rust");
    }
    // Parent/child links across the two services.
    assert_eq!(a_server.parent_span_id, REMOTE_PARENT);
    assert_eq!(a_client.parent_span_id, a_server.span_id);
    assert_eq!(b_server.parent_span_id, a_client.span_id);
    assert_eq!(a_server.kind, 2, "server"); // SPAN_KIND_SERVER
    assert_eq!(a_client.kind, 3, "client"); // SPAN_KIND_CLIENT
    assert_eq!(a_server.attributes["correlation_id"], "corr-1");

    // The log lines carry the exported IDs.
    let line_a = logs_a
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "handled in a")
        .expect("a logged");
    assert_eq!(line_a["trace_id"], TRACE_ID);
    assert_eq!(line_a["span_id"], a_server.span_id.as_str());
    assert_eq!(line_a["service.name"], "svc-a");
    assert_eq!(line_a["correlation_id"], "corr-1");
    assert_eq!(line_a["http.route"], "/a");
    assert_eq!(line_a["step"], "a");
    let line_b = logs_b
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "handled in b")
        .expect("b logged");
    assert_eq!(line_b["trace.id"], TRACE_ID);
    assert_eq!(line_b["span.id"], b_server.span_id.as_str());
    assert_eq!(line_b["service.name"], "svc-b");
    assert_eq!(line_b["http.request.id"], "corr-1");
    assert_eq!(line_b["log.level"], "info");
    assert_eq!(line_b["ecs.version"], "8.11.0");

    // The same events went out as OTLP log records, linked to the spans.
    let records = sink
        .wait_for_logs(|logs| {
            logs.iter().any(|l| l.body == "handled in a")
                && logs.iter().any(|l| l.body == "handled in b")
        })
        .await;
    let record_a = records.iter().find(|l| l.body == "handled in a").unwrap();
    assert_eq!(record_a.service, "svc-a");
    assert_eq!(record_a.severity_text, "INFO");
    assert_eq!(record_a.trace_id, TRACE_ID);
    assert_eq!(record_a.span_id, a_server.span_id);
    assert_eq!(record_a.attributes["step"], "a");
    let record_b = records.iter().find(|l| l.body == "handled in b").unwrap();
    assert_eq!(record_b.service, "svc-b");
    assert_eq!(record_b.span_id, b_server.span_id);

    for guard in [guard_a, guard_b] {
        for stats in guard.export_stats() {
            assert_eq!(stats.dropped(), 0, "{stats:?}");
        }
        guard.shutdown().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_grpc_to_a_real_receiver() {
    let (sink, endpoint) = grpc_receiver().await;
    a_calls_b(Protocol::Grpc, sink, endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_over_http_protobuf_to_a_real_receiver() {
    let (sink, endpoint) = http_receiver().await;
    a_calls_b(Protocol::HttpProtobuf, sink, endpoint).await;
}
