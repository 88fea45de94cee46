//! What this crate's integration tests share: telemetry installed once per
//! test binary (a flight recorder to read spans back), axum servers on
//! 127.0.0.1:0 behind telltale's server layers, and reqwest clients with the
//! middleware.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use telltale_correlation::CorrelationLayer;
use telltale_reqwest::ReqwestStack;
use telltale_telemetry::layer::ServerTelemetryLayer;
use telltale_telemetry::{FlightRecorder, LogFormat, RecordedSpan, Telemetry};
use tokio::net::TcpListener;

/// The flight recorder of the telemetry this test binary installs globally
/// on first use (each test binary is its own process).
pub fn recorder() -> &'static FlightRecorder {
    static RECORDER: OnceLock<FlightRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let telemetry = Telemetry::builder()
            .service_name("telltale-reqwest-test")
            .log_format(LogFormat::None)
            .flight_recorder_capacity(10_000)
            .build()
            .expect("telemetry builds");
        let recorder = telemetry.flight_recorder().expect("on").clone();
        std::mem::forget(telemetry.install().expect("first install"));
        recorder
    })
}

/// Serves `app` behind the server span and correlation layers on a free
/// 127.0.0.1 port until the test's runtime ends.
pub async fn serve(app: Router) -> SocketAddr {
    let app = app
        .layer(CorrelationLayer::new())
        .layer(ServerTelemetryLayer::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A reqwest client with `stack` as its middleware.
pub fn client(stack: ReqwestStack) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(stack)
        .build()
}

/// The most recent recorded span for which `pick` holds (bounded wait: spans
/// end with their response bodies, on the server's task).
pub async fn wait_span(pick: impl Fn(&RecordedSpan) -> bool) -> Arc<RecordedSpan> {
    for _ in 0..500 {
        if let Some(span) = recorder().recent(1000).into_iter().find(|s| pick(s)) {
            return span;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no such span recorded");
}

/// A recorded span's attribute as text.
pub fn attr(span: &RecordedSpan, key: &str) -> Option<String> {
    span.attribute(key).map(ToString::to_string)
}
