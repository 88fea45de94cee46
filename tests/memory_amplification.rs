//! Issue 14, item 2, on a real server: 3,000 requests with a 60 KB path and
//! a 200 KB `User-Agent` over real HTTP/1.1 on 127.0.0.1, to an axum service
//! behind `ServerStack` with the telemetry pipeline `telemetry::init()`
//! builds from an environment that sets nothing but the log format (the
//! flight recorder of 2048 spans), and again with a stalled OTLP collector
//! (a listener that accepts and never answers). Before the attribute caps and
//! byte budgets, the recorder kept 2048 untruncated spans (about 530 MB) and
//! the export queue as much; with the defaults, the process's RSS grows by
//! less than 64 MiB in both cases.
//!
//! hyper's defaults accept the attack over HTTP/1.1: a request head may be
//! up to about 408 KiB (`max_buf_size`) and a path up to 65,534 bytes
//! (`http::Uri`), so every request must reach telltale and be answered `200`.
//!
//! Deterministic on a loaded machine: the server and 8 client tasks share
//! the test's current-thread runtime (the pipeline is that thread's
//! dispatcher), the scenarios run one at a time, and nothing is timed.

use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::header::USER_AGENT;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use telltale::core::config::Env;
use telltale::stack::ServerStack;
use telltale::telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::time::Instant;

const REQUESTS: usize = 3_000;
const CLIENTS: usize = 8;
const PATH_LEN: usize = 60 * 1024;
const AGENT_LEN: usize = 200 * 1024;
const MAX_GROWTH: u64 = 64 << 20;

/// One scenario at a time: they share the process's RSS.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The resident set size of this process, from `/proc/self/status`.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Polls `check` every 20 ms for at most `limit`.
async fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves an app answering `ok` to every path, behind `ServerStack`'s
/// defaults, on a free 127.0.0.1 port (axum's `serve`: hyper's defaults).
async fn server() -> std::net::SocketAddr {
    let app = Router::new()
        .fallback(|| async { "ok" })
        .layer(ServerStack::new().layer());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `n` GETs from each of `CLIENTS` tasks, with the hostile path and
/// `User-Agent` when `hostile`; every answer must be `200`.
async fn send(addr: std::net::SocketAddr, n: usize, hostile: bool) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let (path, agent) = if hostile {
        (
            format!("/{}", "p".repeat(PATH_LEN - 1)),
            "u".repeat(AGENT_LEN),
        )
    } else {
        ("/ok".to_owned(), "curl/8.5.0".to_owned())
    };
    let url: http::Uri = format!("http://{addr}{path}").parse().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, url, agent) = (client.clone(), url.clone(), agent.clone());
        tasks.spawn(async move {
            for _ in 0..n {
                let req = http::Request::get(url.clone())
                    .header(USER_AGENT, agent.as_str())
                    .body(Empty::new())
                    .unwrap();
                let res = client.request(req).await.expect("the server answers");
                assert_eq!(res.status(), 200, "the request reached the service");
                res.into_body().collect().await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Runs the attack against a server traced by `telemetry`, waiting (bounded)
/// for `settled` before measuring; returns the RSS growth in bytes.
async fn attack(telemetry: &Telemetry, settled: impl Fn() -> bool) -> u64 {
    let _dispatch = tracing::dispatcher::set_default(telemetry.dispatch());
    let addr = server().await;
    // Warm up (connections, buffers, the runtime) before the baseline.
    send(addr, 8, false).await;
    let before = rss();
    send(addr, REQUESTS / CLIENTS, true).await;
    wait_for(Duration::from_secs(30), "the spans to settle", settled).await;
    let after = rss();
    after.saturating_sub(before)
}

#[tokio::test]
async fn the_flight_recorder_stays_bounded_under_hostile_requests() {
    let _serial = SERIAL.lock().await;
    let telemetry =
        Telemetry::from_env_source(&Env::from_pairs([("TELLTALE_LOG_FORMAT", "none")])).unwrap();
    let recorder = telemetry.flight_recorder().expect("on by default").clone();
    let total = (8 + REQUESTS / CLIENTS) as u64 * CLIENTS as u64;
    let growth = attack(&telemetry, || recorder.recorded() >= total).await;
    eprintln!(
        "flight recorder: RSS growth {:.1} MiB, {} spans kept, {:.1} MiB by estimate",
        growth as f64 / (1 << 20) as f64,
        recorder.len(),
        recorder.bytes() as f64 / (1 << 20) as f64,
    );
    // The attack reached telltale: the kept spans carry the capped values.
    let span = &recorder.recent(1)[0];
    let path = span.attribute("url.path").unwrap().as_str();
    assert_eq!(
        path.len(),
        telltale::telemetry::layer::DEFAULT_MAX_ATTRIBUTE_LEN
    );
    let agent = span.attribute("user_agent.original").unwrap().as_str();
    assert_eq!(
        agent.len(),
        telltale::telemetry::layer::DEFAULT_MAX_ATTRIBUTE_LEN
    );
    assert_eq!(recorder.len(), 2048);
    assert!(recorder.bytes() <= recorder.max_bytes());
    assert!(
        growth < MAX_GROWTH,
        "RSS grew by {growth} bytes (limit {MAX_GROWTH})"
    );
}

#[tokio::test]
async fn a_stalled_collector_does_not_make_the_queue_grow() {
    let _serial = SERIAL.lock().await;
    // A collector that accepts connections and never answers.
    let collector = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let stalled = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = collector.accept().await {
            held.push(stream);
        }
    });
    let telemetry = Telemetry::from_env_source(&Env::from_pairs([
        ("TELLTALE_LOG_FORMAT", "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("TELLTALE_SHUTDOWN_TIMEOUT", "100ms"),
    ]))
    .unwrap();
    assert!(
        telemetry.flight_recorder().is_none(),
        "off with an exporter"
    );
    let stats = telemetry.guard().export_stats()[0].clone();
    let total = (8 + REQUESTS / CLIENTS) as u64 * CLIENTS as u64;
    let growth = attack(&telemetry, || {
        // Every span is queued, dropped, or in the batch being exported.
        stats.queued() + stats.dropped() + stats.exported() + 512 >= total
    })
    .await;
    eprintln!(
        "stalled collector: RSS growth {:.1} MiB, {} spans queued ({:.1} MiB by estimate), {} dropped",
        growth as f64 / (1 << 20) as f64,
        stats.queued(),
        stats.queued_bytes() as f64 / (1 << 20) as f64,
        stats.dropped(),
    );
    // Nothing was exported: what was not dropped waits within the budget.
    assert_eq!(stats.exported(), 0, "{stats:?}");
    assert!(stats.queued_bytes() <= stats.max_queue_bytes() as u64);
    assert!(
        growth < MAX_GROWTH,
        "RSS grew by {growth} bytes (limit {MAX_GROWTH})"
    );
    stalled.abort();
}
