//! The trace context goes out through the propagators telemetry installed
//! (`OTEL_PROPAGATORS`), not a fixed format: with `b3multi` the server gets
//! B3 headers naming the reqwest CLIENT span, and no `traceparent`.
//!
//! This test binary installs telemetry globally once (its own process), with
//! `OTEL_PROPAGATORS=b3multi` read through the builder's `env`.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use opentelemetry::trace::SpanKind;
use telltale_core::config::Env;
use telltale_reqwest::ReqwestStack;
use telltale_telemetry::layer::ServerTelemetryLayer;
use telltale_telemetry::{FlightRecorder, LogFormat, Telemetry};
use tokio::net::TcpListener;

fn recorder() -> &'static FlightRecorder {
    static RECORDER: OnceLock<FlightRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let telemetry = Telemetry::builder()
            .env(&Env::from_pairs([("OTEL_PROPAGATORS", "b3multi")]))
            .expect("valid")
            .service_name("telltale-reqwest-b3")
            .log_format(LogFormat::None)
            .flight_recorder_capacity(1_000)
            .build()
            .expect("telemetry builds");
        let recorder = telemetry.flight_recorder().expect("on").clone();
        std::mem::forget(telemetry.install().expect("first install"));
        recorder
    })
}

#[tokio::test]
async fn otel_propagators_b3multi_is_what_goes_out() {
    recorder();
    let app = Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned()
                };
                format!(
                    "{} {} {} {}",
                    h("x-b3-traceid"),
                    h("x-b3-spanid"),
                    h("x-b3-sampled"),
                    h("traceparent")
                )
            }),
        )
        .layer(ServerTelemetryLayer::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReqwestStack::new())
        .build();
    let body = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fields: Vec<&str> = body.split(' ').collect();
    let [trace_id, span_id, sampled, traceparent] = fields[..] else {
        panic!("{body}")
    };
    assert_eq!(
        traceparent, "-",
        "W3C header sent although b3multi is installed"
    );
    assert_eq!(sampled, "1");
    assert_eq!(trace_id.len(), 32, "{body}");
    assert_eq!(span_id.len(), 16, "{body}");

    // B3 names the reqwest CLIENT span, and the server continued its trace.
    let mut found = None;
    for _ in 0..500 {
        let spans = recorder().recent(100);
        let client = spans
            .iter()
            .find(|s| *s.kind() == SpanKind::Client && s.span_id().to_string() == span_id);
        let server = spans
            .iter()
            .find(|s| *s.kind() == SpanKind::Server && s.trace_id().to_string() == trace_id);
        if let (Some(c), Some(s)) = (client, server) {
            found = Some((c.clone(), s.clone()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (client_span, server_span) = found.expect("CLIENT and SERVER spans recorded");
    assert_eq!(client_span.trace_id().to_string(), trace_id);
    assert_eq!(server_span.parent_span_id(), Some(client_span.span_id()));
}
