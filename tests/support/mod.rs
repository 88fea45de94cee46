//! What the root integration tests share: telemetry installed once per test
//! binary (with a flight recorder to read spans back), serving a router
//! on a free 127.0.0.1 port, and the pieces of a full-stack service under
//! traffic (request layers by naming scheme, span export, a gRPC health
//! server and its callers).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use telltale::telemetry::layer::{ClientTelemetryLayer, ServerTelemetryLayer};
use telltale::telemetry::metrics::{Naming, RedConfig};
use telltale::telemetry::{FlightRecorder, LogFormat, Protocol, Telemetry, TelemetryBuilder};
use telltale::{ClientStack, ServerStack};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

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

/// `chromium --headless` (Debian's, installed by `scripts/install-test-deps`)
/// with `args`, bounded in time; its stdout.
pub async fn chromium(args: &[String]) -> String {
    // A profile of its own per run: two Chromiums never share one.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile =
        std::env::temp_dir().join(format!("telltale-chromium-{}-{run}", std::process::id()));
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium runs (scripts/install-test-deps installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of `url` after Chromium loaded it.
pub async fn dump_dom(url: &str) -> String {
    chromium(&["--dump-dom".to_owned(), url.to_owned()]).await
}

/// RED settings with `naming`, the defaults otherwise.
pub fn red(naming: Naming) -> RedConfig {
    RedConfig::builder().naming(naming).build().unwrap()
}

/// The server request layer with [`red`]`(naming)`.
pub fn server_telemetry(naming: Naming) -> ServerTelemetryLayer {
    ServerTelemetryLayer::builder()
        .red_config(red(naming))
        .build()
        .unwrap()
}

/// The client request layer with [`red`]`(naming)`.
pub fn client_telemetry(naming: Naming) -> ClientTelemetryLayer {
    ClientTelemetryLayer::builder()
        .red_config(red(naming))
        .build()
        .unwrap()
}

/// A pipeline without log lines that exports spans over OTLP/HTTP to
/// `http://{receiver}/v1/traces` every 100 ms, as `service_name`; built and
/// installed by the caller.
pub fn exporting_to(service_name: &str, receiver: SocketAddr) -> TelemetryBuilder {
    Telemetry::builder()
        .service_name(service_name)
        .log_format(LogFormat::None)
        .otlp(
            format!("http://{receiver}/v1/traces"),
            Protocol::HttpProtobuf,
        )
        .export_delay(Duration::from_millis(100))
}

/// A tonic health server behind `stack`, on a free 127.0.0.1 port until the
/// test's runtime ends; its address.
pub async fn grpc_health_server(stack: ServerStack) -> SocketAddr {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(stack.layer())
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

/// Connects to the gRPC server at `target` and calls `Health/Check` through
/// `stack` every 5 ms until the test's runtime ends (answers and errors
/// alike are dropped).
pub async fn call_grpc_health_forever(target: SocketAddr, stack: ClientStack) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(
        ServiceBuilder::new().layer(stack.layer()).service(channel),
    );
    tokio::spawn(async move {
        loop {
            let _ = client
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}
