//! A real Prometheus (Debian's `prometheus` package, installed by
//! scripts/install-test-deps) scrapes two running axum services, one per naming
//! scheme, while a real HTTP client drives them; PromQL answers (`rate`,
//! `histogram_quantile(0.99, …)` by route, 5xx error rate by route, totals) must
//! match what was sent, and `promtool check metrics` must find no problem in the
//! exposition.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use http::StatusCode;
use metrics_exporter_prometheus::PrometheusHandle;
use telltale_telemetry::metrics::{Naming, RedConfig, metrics_router};

use support::{Prometheus, by_label, get as fetch};

/// Every fourth `/mixed/{id}` request fails with a 500.
async fn mixed(Path(id): Path<u64>) -> StatusCode {
    if id % 4 == 0 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// A service that takes 300 ms: its p99 must land above the 0.25 bucket.
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(300)).await;
    "slow"
}

async fn service(naming: Naming) -> (SocketAddr, PrometheusHandle) {
    let (config, handle) =
        support::local_prometheus(RedConfig::builder().naming(naming).build().unwrap());
    let app = Router::new()
        .route("/mixed/{id}", get(mixed))
        .route("/slow", get(slow))
        .layer(support::server_layer(config))
        .merge(metrics_router(handle.clone()));
    (support::serve(app).await, handle)
}

#[derive(Default)]
struct Sent {
    mixed_ok: AtomicU64,
    mixed_err: AtomicU64,
    slow: AtomicU64,
}

/// Drives `/mixed/{id}` every 5 ms and `/slow` from 4 sequential workers on
/// every target until `stop`.
fn drive(
    targets: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    sent: Arc<Sent>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = support::client();
    let mut tasks = Vec::new();
    {
        let (client, stop, sent, targets) =
            (client.clone(), stop.clone(), sent.clone(), targets.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut id = 1u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for &t in &targets {
                    let (status, _) = fetch(&client, t, &format!("/mixed/{id}")).await;
                    assert_eq!(status == StatusCode::INTERNAL_SERVER_ERROR, id % 4 == 0);
                }
                if id % 4 == 0 {
                    sent.mixed_err.fetch_add(1, Ordering::Relaxed);
                } else {
                    sent.mixed_ok.fetch_add(1, Ordering::Relaxed);
                }
                id += 1;
            }
        }));
    }
    for _ in 0..4 {
        let (client, stop, sent, targets) =
            (client.clone(), stop.clone(), sent.clone(), targets.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let calls = targets.iter().map(|&t| {
                    let client = client.clone();
                    async move { fetch(&client, t, "/slow").await }
                });
                for (status, _) in futures_join(calls).await {
                    assert_eq!(status, StatusCode::OK);
                }
                sent.slow.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tasks
}

/// Awaits futures concurrently on spawned tasks (no extra crate).
async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn approx(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scrapes_red_metrics_and_promql_matches_what_was_sent() {
    let (otel_addr, otel_handle) = service(Naming::OpenTelemetry).await;
    let (classic_addr, classic_handle) = service(Naming::Classic).await;
    let prom = Prometheus::start(&[otel_addr, classic_addr]).await;
    prom.wait_for(r#"sum(up{job="telltale"})"#, |r| {
        r.first().is_some_and(|(_, v)| *v == 2.0)
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Sent::default());
    let tasks = drive(vec![otel_addr, classic_addr], stop.clone(), sent.clone());
    // The client's own counts every 100 ms, to compare with Prometheus' rates
    // over the same window.
    let history = Arc::new(std::sync::Mutex::new(Vec::<(Instant, u64, u64)>::new()));
    let sampler = {
        let (history, sent, stop) = (history.clone(), sent.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let mixed =
                    sent.mixed_ok.load(Ordering::Relaxed) + sent.mixed_err.load(Ordering::Relaxed);
                let slow = sent.slow.load(Ordering::Relaxed);
                history.lock().unwrap().push((Instant::now(), mixed, slow));
            }
        })
    };

    // Let Prometheus collect at least 6 scrapes with traffic in them.
    prom.wait_for(
        r#"count_over_time(http_server_request_duration_seconds_count{http_route="/slow"}[1m])"#,
        |r| r.first().is_some_and(|(_, v)| *v >= 6.0),
    )
    .await;
    prom.wait_for(
        r#"count_over_time(http_requests_total{endpoint="/slow"}[1m])"#,
        |r| r.first().is_some_and(|(_, v)| *v >= 6.0),
    )
    .await;

    // Rate by route, against what the client sent per second over the last 5 s.
    let (mixed_rate, slow_rate) = {
        let history = history.lock().unwrap();
        let &(end, mixed_end, slow_end) = history.last().unwrap();
        let &(begin, mixed_begin, slow_begin) = history
            .iter()
            .rev()
            .find(|(t, _, _)| end.duration_since(*t) >= Duration::from_secs(5))
            .unwrap_or(&history[0]);
        let dt = end.duration_since(begin).as_secs_f64();
        (
            (mixed_end - mixed_begin) as f64 / dt,
            (slow_end - slow_begin) as f64 / dt,
        )
    };
    for (promql, label) in [
        (
            "sum by (http_route) (rate(http_server_request_duration_seconds_count[5s]))",
            "http_route",
        ),
        (
            "sum by (endpoint) (rate(http_requests_total[5s]))",
            "endpoint",
        ),
    ] {
        let rates = by_label(&prom.query(promql).await, label);
        assert_eq!(rates.len(), 2, "{promql}: {rates:?} (only route templates)");
        eprintln!(
            "{promql}: {rates:?}; sent /mixed/{{id}} {mixed_rate:.1}/s, /slow {slow_rate:.1}/s"
        );
        let mixed = rates["/mixed/{id}"];
        let slow = rates["/slow"];
        assert!(
            approx(mixed, mixed_rate, 0.3),
            "{promql}: /mixed/{{id}} {mixed}/s, sent {mixed_rate}/s"
        );
        assert!(
            approx(slow, slow_rate, 0.3),
            "{promql}: /slow {slow}/s, sent {slow_rate}/s"
        );
    }

    // 5xx error rate by route: a quarter of /mixed/{id}, nothing on /slow.
    for (promql, label) in [
        (
            r#"sum by (http_route) (rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[5s])) / sum by (http_route) (rate(http_server_request_duration_seconds_count[5s]))"#,
            "http_route",
        ),
        (
            r#"sum by (endpoint) (rate(http_requests_total{code=~"5.."}[5s])) / sum by (endpoint) (rate(http_requests_total[5s]))"#,
            "endpoint",
        ),
    ] {
        let ratio = by_label(&prom.query(promql).await, label);
        eprintln!("{promql}: {ratio:?}");
        assert_eq!(
            ratio.keys().collect::<Vec<_>>(),
            ["/mixed/{id}"],
            "{promql}: {ratio:?}"
        );
        assert!(
            approx(ratio["/mixed/{id}"], 0.25, 0.2),
            "{promql}: {ratio:?}"
        );
    }

    // p99 by route from the histogram buckets: /slow (300 ms) above 0.25, the
    // instant /mixed/{id} below it.
    for (promql, label) in [
        (
            "histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket[5s])))",
            "http_route",
        ),
        (
            "histogram_quantile(0.99, sum by (le, endpoint) (rate(http_request_duration_seconds_bucket[5s])))",
            "endpoint",
        ),
    ] {
        let p99 = by_label(&prom.query(promql).await, label);
        eprintln!("{promql}: {p99:?}");
        // A 300 ms handler can never be faster than its sleep; how much later
        // it ends depends on the machine's load, so the upper side is relative:
        // the instant route stays below it.
        assert!(p99["/slow"] > 0.25, "{promql}: {p99:?}");
        assert!(p99["/mixed/{id}"] < p99["/slow"], "{promql}: {p99:?}");
    }

    // Stop, then the stored totals must equal what was sent, exactly.
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    sampler.await.unwrap();
    let ok = sent.mixed_ok.load(Ordering::Relaxed) as f64;
    let err = sent.mixed_err.load(Ordering::Relaxed) as f64;
    let slow = sent.slow.load(Ordering::Relaxed) as f64;
    let expected: BTreeMap<String, f64> = [
        ("/mixed/{id} 200".to_owned(), ok),
        ("/mixed/{id} 500".to_owned(), err),
        ("/slow 200".to_owned(), slow),
    ]
    .into();
    let keyed =
        |r: &[(BTreeMap<String, String>, f64)], route: &str, code: &str| -> BTreeMap<String, f64> {
            r.iter()
                .map(|(l, v)| (format!("{} {}", l[route], l[code]), *v))
                .collect()
        };
    prom.wait_for(
        "sum by (http_route, http_response_status_code) (http_server_request_duration_seconds_count)",
        |r| keyed(r, "http_route", "http_response_status_code") == expected,
    )
    .await;
    prom.wait_for("sum by (endpoint, code) (http_requests_total)", |r| {
        keyed(r, "endpoint", "code") == expected
    })
    .await;
    prom.wait_for(
        "sum(http_server_active_requests) + sum(http_requests_in_flight)",
        |r| r.first().is_some_and(|(_, v)| *v == 0.0),
    )
    .await;

    // Prometheus saw real histograms, not summaries.
    let (status, body) = fetch(&support::client(), prom.addr, "/api/v1/metadata").await;
    assert_eq!(status, StatusCode::OK);
    let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
    for name in [
        "http_server_request_duration_seconds",
        "http_request_duration_seconds",
    ] {
        assert_eq!(meta["data"][name][0]["type"], "histogram", "{name}: {body}");
    }
    // Prometheus scrapes OpenMetrics (it asks for it): a counter's family
    // name has no `_total` there, its series keep it.
    assert_eq!(
        meta["data"]["http_requests"][0]["type"], "counter",
        "{body}"
    );
    assert_eq!(
        meta["data"]["http_server_active_requests"][0]["type"], "gauge",
        "{body}"
    );

    // promtool finds nothing to complain about in either exposition.
    for handle in [&otel_handle, &classic_handle] {
        let text = handle.render();
        let (ok, problems) = support::promtool_check_metrics(&text);
        assert!(
            ok && problems.trim().is_empty(),
            "promtool: {problems}\n{text}"
        );
    }
}

/// Without Prometheus installed the test above fails (it is never skipped), and
/// the failure says how to install it.
#[test]
fn missing_prometheus_fails_with_the_install_hint() {
    let message =
        support::find_binary_in("prometheus", std::ffi::OsStr::new("/nonexistent")).unwrap_err();
    assert!(message.contains("scripts/install-test-deps"), "{message}");

    // The real test, run in a child process with an empty PATH, fails loudly.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "prometheus_scrapes_red_metrics_and_promql_matches_what_was_sent",
            "--nocapture",
        ])
        .env("PATH", "")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "must fail without prometheus:\n{text}"
    );
    assert!(text.contains("scripts/install-test-deps"), "{text}");
    assert!(text.contains("1 failed"), "{text}");
}
