//! Collector outages: requests never wait for export, the queue stays
//! bounded, drops are counted (also as a `metrics` counter), export resumes
//! when the collector is back, and shutdown with a dead collector is bounded.
//!
//! This binary installs one global `metrics` recorder.

mod support;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get as route_get;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::otel::{
    client, get, grpc_receiver_on, http_receiver_on, rebind, serve, stalled_collector,
};
use telltale_telemetry::{LogFormat, Protocol, SPANS_DROPPED_TOTAL, Telemetry};

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::set_global_recorder(recorder).unwrap();
        snapshotter
    })
}

/// Drops counted by the `metrics` counter for `reason`, since the start.
/// The debugging recorder drains counters on every snapshot and the tests of
/// this binary snapshot concurrently, so every snapshot is added up here
/// (one test's snapshot must not take away another's counts).
fn dropped_metric(reason: &str) -> u64 {
    static TOTALS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let mut totals = TOTALS.lock().unwrap();
    for (key, .., value) in snapshotter().snapshot().into_vec() {
        let key = key.key();
        if key.name() != SPANS_DROPPED_TOTAL {
            continue;
        }
        let (Some(label), DebugValue::Counter(n)) =
            (key.labels().find(|l| l.key() == "reason"), value)
        else {
            continue;
        };
        *totals.entry(label.value().to_owned()).or_default() += n;
    }
    totals.get(reason).copied().unwrap_or(0)
}

fn pipeline(endpoint: &str, protocol: Protocol, export_timeout: Duration) -> Telemetry {
    Telemetry::builder()
        .service_name("outage")
        .otlp(endpoint, protocol)
        .otlp_timeout(export_timeout)
        .export_queue_size(16)
        .export_batch_size(4)
        .export_delay(Duration::from_millis(5))
        .shutdown_timeout(Duration::from_millis(500))
        .log_format(LogFormat::None)
        .build()
        .unwrap()
}

fn app() -> Router {
    Router::new().route(
        "/ok",
        route_get(|| async {
            // A few child spans per request, to fill the queue quickly.
            for _ in 0..3 {
                tracing::info_span!("work").in_scope(|| {});
            }
            "ok"
        }),
    )
}

/// Waits (bounded) until `done` holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + support::otel::MAX_WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `n` requests; returns the slowest latency.
async fn requests(url: &str, n: usize, check: impl Fn()) -> Duration {
    let http = client();
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let started = Instant::now();
        let (status, _) = get(&http, url, &[]).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200);
        check();
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_grpc_collector_costs_requests_nothing_and_export_resumes() {
    snapshotter();
    let (collector, stall) = stalled_collector().await;
    // A stalled export takes its whole timeout; requests must not.
    let export_timeout = Duration::from_secs(2);
    let (dispatch, guard) = pipeline(
        &format!("http://{collector}"),
        Protocol::Grpc,
        export_timeout,
    )
    .into_parts();
    let stats = guard.export_stats()[0].clone();
    let addr = serve(app(), dispatch).await;
    let url = format!("http://{addr}/ok");

    let slowest = requests(&url, 200, || {
        assert!(
            stats.queued() <= stats.capacity() as u64,
            "queue over its bound"
        );
    })
    .await;
    assert!(
        slowest < export_timeout / 2,
        "a request took {slowest:?} while the collector stalled"
    );
    // 200 requests x 4 spans, at most 16 queued + 4 in flight.
    assert!(stats.dropped_queue_full() >= 800 - 16 - 4 - 4, "{stats:?}");
    // The exporter counts a drop in its stats, then in the metric.
    wait_until("the metric to count every queue_full drop", || {
        dropped_metric("queue_full") >= stats.dropped_queue_full()
    })
    .await;
    assert_eq!(stats.exported(), 0);

    // The collector comes back on the same address.
    stall.abort();
    let _ = stall.await;
    let (sink, _server) = grpc_receiver_on(rebind(collector).await);
    let resumed = sink.wait_for(|spans| {
        // Keep traffic flowing until new spans arrive.
        spans.iter().any(|s| s.name == "GET /ok")
    });
    let traffic = async {
        loop {
            requests(&url, 5, || {}).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        spans = resumed => assert!(spans.iter().all(|s| s.service == "outage")),
        () = traffic => unreachable!(),
    }
    wait_until("a successful export", || stats.exported() > 0).await;
    let started = Instant::now();
    drop(guard);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_http_collector_counts_failed_exports_and_export_resumes() {
    snapshotter();
    // A port with nothing listening.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = format!("http://{collector}/v1/traces");
    let (dispatch, guard) =
        pipeline(&endpoint, Protocol::HttpProtobuf, Duration::from_secs(2)).into_parts();
    let stats = guard.export_stats()[0].clone();
    let addr = serve(app(), dispatch).await;
    let url = format!("http://{addr}/ok");

    let slowest = requests(&url, 50, || {
        assert!(stats.queued() <= stats.capacity() as u64);
    })
    .await;
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    // The exporter retries a refused connection a few times (about 1 s).
    wait_until("a failed export", || stats.dropped_export_failed() > 0).await;
    assert!(stats.failed_exports() > 0);
    wait_until("the metric to count every export_failed drop", || {
        dropped_metric("export_failed") >= stats.dropped_export_failed()
    })
    .await;

    let sink = http_receiver_on(rebind(collector).await);
    requests(&url, 3, || {}).await;
    let spans = sink
        .wait_for(|spans| spans.iter().filter(|s| s.name == "GET /ok").count() >= 3)
        .await;
    assert!(spans.iter().all(|s| s.service == "outage"));
    wait_until("successful exports", || stats.exported() > 0).await;
    guard.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_drop_with_a_stalled_collector_finishes_within_its_bound() {
    let (collector, _stall) = stalled_collector().await;
    // An export could wait a minute; shutdown must not.
    let (dispatch, guard) = pipeline(
        &format!("http://{collector}"),
        Protocol::Grpc,
        Duration::from_secs(60),
    )
    .into_parts();
    let stats = guard.export_stats()[0].clone();
    telltale_testkit::with_default(&dispatch, || {
        for _ in 0..10 {
            tracing::info_span!("queued").in_scope(|| {});
        }
    });
    let started = Instant::now();
    drop(guard);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "it did try: {took:?}");
    assert!(took < Duration::from_millis(1500), "bounded: {took:?}");
    assert_eq!(stats.exported(), 0);
}
