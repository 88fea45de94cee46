//! `ReqwestStack::from_env_source` against a real axum server on
//! 127.0.0.1:0: `TELLTALE_CHAOS` `out` rules act on the reqwest call, and the
//! RED, breaker and chaos metrics after known traffic are exact (the
//! Prometheus exposition rendered and compared).
//!
//! This test binary installs a Prometheus recorder globally once (the
//! breaker's and chaos' metrics go to the global recorder); each test's RED
//! metrics go to a registry of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use telltale_core::config::Env;
use telltale_reqwest::ReqwestStack;
use telltale_telemetry::layer::ClientTelemetryLayer;
use telltale_telemetry::metrics::{RedConfig, prometheus_builder};

mod support;
use support::{client, recorder, serve};

fn global() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("first install")
    })
}

/// A client telemetry layer recording into a Prometheus registry of its own.
fn red() -> (ClientTelemetryLayer, PrometheusHandle) {
    let config = RedConfig::default();
    let recorder = prometheus_builder(&config).build_recorder();
    let handle = recorder.handle();
    let layer = ClientTelemetryLayer::builder()
        .red_config(config.with_recorder(Arc::new(recorder)))
        .build()
        .unwrap();
    (layer, handle)
}

/// Sample lines of `name` (exact family name), sorted, without the ones of
/// other tests' servers.
fn samples(text: &str, name: &str, port: u16) -> Vec<String> {
    let port = format!("server_port=\"{port}\"");
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(&port))
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

async fn hits_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/ok",
            get({
                let counter = counter.clone();
                move || async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        )
        .route(
            "/fail",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                StatusCode::BAD_GATEWAY
            }),
        );
    (serve(app).await, hits)
}

#[tokio::test]
async fn chaos_rules_from_the_environment_act_on_the_reqwest_call() {
    recorder();
    global();
    let (addr, hits) = hits_server().await;
    let env = Env::from_pairs([
        (
            "TELLTALE_CHAOS",
            "out GET /ok: 1* status(503, retry-after=2s, body=\"injected\") | out GET /fail: 1* abort",
        ),
        ("TELLTALE_ENV", "staging"),
    ]);
    let stack = ReqwestStack::from_env_source(&env, "chaos-env").unwrap();
    assert_eq!(stack.injector().status(), telltale_chaos::Status::Armed);
    let client = client(stack);

    let first = client
        .get(format!("http://{addr}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 503);
    assert_eq!(first.headers()["retry-after"], "2");
    assert_eq!(first.headers()["x-telltale-chaos"], "1.1");
    assert_eq!(first.url().as_str(), format!("http://{addr}/ok"));
    assert_eq!(first.text().await.unwrap(), "injected");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "an injected answer never leaves"
    );

    // The count limit (1*) is used up: the next call reaches the server.
    let second = client
        .get(format!("http://{addr}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // `abort` fails the call as a connection error would, without sending it.
    let err = client
        .get(format!("http://{addr}/fail"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_middleware(), "{err:?}");
    let reqwest_middleware::Error::Middleware(e) = &err else {
        unreachable!()
    };
    let fault = e
        .chain()
        .find_map(|e| e.downcast_ref::<telltale_chaos::layer::InjectedFault>())
        .expect("the injected fault is in the chain");
    assert_eq!(fault.kind(), std::io::ErrorKind::ConnectionAborted);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        client
            .get(format!("http://{addr}/fail"))
            .send()
            .await
            .unwrap()
            .status(),
        502
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let text = global().render();
    let injected: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("telltale_chaos_faults_injected_total{"))
        .collect();
    let total: f64 = injected
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // The only faults this test binary injects: the 503 and the abort.
    assert_eq!(total, 2.0, "{injected:?}");
}

#[tokio::test]
async fn red_and_breaker_metrics_after_known_traffic_are_exact() {
    recorder();
    global();
    let (addr, _hits) = hits_server().await;
    let env = Env::from_pairs([
        ("TELLTALE_BREAKER_WINDOW", "100"),
        ("TELLTALE_BREAKER_MINIMUM_CALLS", "100"),
    ]);
    let (telemetry, red) = red();
    let stack = ReqwestStack::from_env_source(&env, "exact")
        .unwrap()
        .telemetry(telemetry);
    let client = client(stack);
    for _ in 0..3 {
        let res = client
            .get(format!("http://{addr}/ok"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.text().await.unwrap(), "ok");
    }
    for _ in 0..2 {
        let res = client
            .get(format!("http://{addr}/fail"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 502);
        res.bytes().await.unwrap();
    }
    let port = addr.port();
    let labels = |status: u16, error: &str| {
        format!(
            "http_request_method=\"GET\",server_address=\"127.0.0.1\",server_port=\"{port}\",http_response_status_code=\"{status}\"{error}"
        )
    };
    // Bounded wait: each record settles when its body has been read.
    let mut counts = Vec::new();
    for _ in 0..500 {
        counts = samples(
            &red.render(),
            "http_client_request_duration_seconds_count",
            port,
        );
        if counts.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        counts,
        vec![
            format!(
                "http_client_request_duration_seconds_count{{{}}} 3",
                labels(200, "")
            ),
            format!(
                "http_client_request_duration_seconds_count{{{}}} 2",
                labels(502, ",error_type=\"502\"")
            ),
        ]
    );

    // The host's breaker counted the same calls (5xx are failures).
    let text = global().render();
    let mut calls: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("telltale_circuitbreaker_calls_total{name=\"exact/127.0.0.1\","))
        .collect();
    calls.sort_unstable();
    let kind = |kind: &str, n: u32| {
        format!(
            "telltale_circuitbreaker_calls_total{{name=\"exact/127.0.0.1\",kind=\"{kind}\"}} {n}"
        )
    };
    assert_eq!(
        calls,
        [
            kind("failed", 2),
            kind("ignored", 0),
            kind("late", 0),
            kind("not_permitted", 0),
            kind("slow", 0),
            kind("successful", 3),
        ]
    );
}
