//! Issue 14, item 6, the outcome: a client requests a large body from a
//! real server behind `ServerStack` (bulkhead, breaker, body idle timeout)
//! and never reads it. When the idle timeout ends the body, the request's
//! span records `error.type=body_timeout` (with an error status), the RED
//! histogram counts it under `error_type="body_timeout"`, and the breaker
//! records the call as `ignored` (a stalled reader says nothing about the
//! service): one classification, `Outcome::BodyTimeout`, read by all three.
//! All of it while the reader is still connected: the span does not wait for
//! the client to go away.
//!
//! This test binary installs telemetry and a Prometheus recorder globally
//! (its own process).

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::Status;
use telltale::resilience::{Bulkhead, CircuitBreaker};
use telltale::stack::ServerStack;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

mod support;
use support::serve;

const IDLE: Duration = Duration::from_millis(500);

fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("first install")
    })
}

/// Polls `check` every 20 ms for at most `limit`.
async fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_body_ended_by_the_idle_timeout_is_a_body_timeout_everywhere() {
    let recorder = support::recorder("body-timeout");
    let prometheus = prometheus();
    let bulkhead = Bulkhead::builder("server")
        .max_concurrent(4)
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder("server")
        .minimum_calls(1)
        .build()
        .unwrap();
    let stack = ServerStack::new()
        .bulkhead(bulkhead.clone())
        .breaker(breaker.clone())
        .body_idle_timeout(Some(IDLE));
    // /large streams 640 MiB in 64 KiB chunks: far more than the socket
    // buffers hold, so a client that never reads stalls it.
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let app = Router::new()
        .route(
            "/large",
            get(move || {
                let chunk = chunk.clone();
                async move {
                    let chunks = (0..10_000).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
                    Body::from_stream(futures_util::stream::iter(chunks))
                }
            }),
        )
        .layer(stack.layer());
    let addr = serve(app).await;

    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /large HTTP/1.1\r\nhost: test\r\nx-correlation-id: stalled-reader\r\n\r\n")
        .await
        .unwrap();

    // The span ends when the timeout ends the body, with the reader still
    // connected.
    wait_for(Duration::from_secs(30), "the span", || {
        !recorder.by_correlation_id("stalled-reader").is_empty()
    })
    .await;
    let spans = recorder.by_correlation_id("stalled-reader");
    let span = spans
        .iter()
        .find(|s| s.attribute("http.route").is_some())
        .expect("the request span");
    assert_eq!(
        span.attribute("error.type")
            .map(|v| v.as_str().into_owned()),
        Some("body_timeout".to_owned()),
        "{:?}",
        span.attributes()
    );
    assert!(
        matches!(span.status(), Status::Error { .. }),
        "{:?}",
        span.status()
    );
    assert_eq!(
        span.attribute("http.response.status_code")
            .map(|v| v.as_str().into_owned()),
        Some("200".to_owned())
    );
    assert!(
        span.data()
            .events
            .iter()
            .any(|e| e.name.contains("response body reader idle")),
        "the WARN event is on the span"
    );

    // The RED histogram counts it as an error, and the breaker ignores it.
    let red = r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/large",http_response_status_code="200",error_type="body_timeout",url_scheme="http"} 1"#;
    let ignored = r#"telltale_circuitbreaker_calls_total{name="server",kind="ignored"} 1"#;
    wait_for(Duration::from_secs(10), "the metrics", || {
        let text = prometheus.render();
        text.contains(red) && text.contains(ignored)
    })
    .await;
    let text = prometheus.render();
    assert!(
        !text.contains(r#"telltale_circuitbreaker_calls_total{name="server",kind="failed"} 1"#),
        "{text}"
    );
    assert_eq!(bulkhead.available(), 4);
    drop(stalled);
}
