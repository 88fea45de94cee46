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
