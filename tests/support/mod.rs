//! What the root integration tests share: telemetry installed once per test
//! binary (with a flight recorder to read spans back), and serving a router
//! on a free 127.0.0.1 port.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use telltale::telemetry::{FlightRecorder, LogFormat, Telemetry};
use tokio::net::TcpListener;

/// The flight recorder of the telemetry this test binary installs globally
/// on first use (each test binary is its own process), as `service_name`.
pub fn recorder(service_name: &'static str) -> &'static FlightRecorder {
    static RECORDER: OnceLock<FlightRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let telemetry = Telemetry::builder()
            .service_name(service_name)
            .log_format(LogFormat::None)
            .flight_recorder_capacity(10_000)
            .build()
            .expect("telemetry builds");
        let recorder = telemetry.flight_recorder().expect("on").clone();
        std::mem::forget(telemetry.install().expect("first install"));
        recorder
    })
}

/// Serves `app` on a free 127.0.0.1 port until the test's runtime ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
