//! One process with every telltale component on — `ServerStack`s (HTTP and
//! gRPC, both naming schemes) with a breaker, a bulkhead and armed chaos,
//! `ClientStack`s (HTTP through keyed breaker and bulkhead registries, gRPC
//! over tonic channels), correlation, and span export over OTLP — behind the
//! README's `install_prometheus(&Default::default())`, scraped by a real
//! Prometheus (Debian's package, `scripts/install-test-deps`):
//!
//! - `promtool check metrics` finds no problem in `/metrics` (every family
//!   has HELP text);
//! - every duration family is a histogram (no summary), and
//!   `histogram_quantile` answers for each;
//! - the breaker exports only transitions that can happen;
//! - every PromQL query of `docs/promql.md` returns data (read from the
//!   Markdown, so the cookbook cannot drift);
//! - the same holds with `TELLTALE_METRICS_PREFIX=myapp_` (the test runs
//!   itself again in a child process with the variable set): every family
//!   is `myapp_…`, never `myapp__…`.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use support::{
    call_grpc_health_forever, client_telemetry, exporting_to, grpc_health_server, server_telemetry,
};
use telltale::chaos::{Injector, parse_rules};
use telltale::resilience::keyed::{self, KeyedBreakerLayer, KeyedBulkheadLayer, Registry};
use telltale::resilience::{Bulkhead, CircuitBreaker};
use telltale::telemetry::metrics::{Naming, install_prometheus, metrics_router};
use telltale::{ClientStack, ServerStack};
use telltale_testkit::prometheus::{MAX_WAIT, Prometheus, promtool_check_metrics, serve};
use tower::{Service, ServiceBuilder, ServiceExt};

/// The duration families telltale records, as base names.
const DURATION_FAMILIES: [&str; 8] = [
    "http_server_request_duration_seconds",
    "http_client_request_duration_seconds",
    "rpc_server_call_duration_seconds",
    "rpc_client_call_duration_seconds",
    "http_request_duration_seconds",
    "grpc_server_handling_seconds",
    "grpc_client_handling_seconds",
    "telltale_bulkhead_wait_duration_seconds",
];

/// The real-error HTTP backend: every fifth id fails with a 500, ids take
/// `id % 7` ms.
async fn work(Path(id): Path<u64>) -> StatusCode {
    tokio::time::sleep(Duration::from_millis(id % 7)).await;
    if id % 5 == 0 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

fn server_stack(naming: Naming, name: &str, chaos: &Injector) -> ServerStack {
    ServerStack::new()
        .telemetry(server_telemetry(naming))
        .breaker(CircuitBreaker::builder(name.to_owned()).build().unwrap())
        .bulkhead(
            Bulkhead::builder(name.to_owned())
                .max_concurrent(4)
                .max_wait(Duration::from_millis(5))
                .build()
                .unwrap(),
        )
        .chaos(chaos)
}

fn client_stack(naming: Naming, name: &str) -> ClientStack {
    ClientStack::new()
        .telemetry(client_telemetry(naming))
        .breaker(CircuitBreaker::builder(name.to_owned()).build().unwrap())
}

/// An OTLP/HTTP receiver that accepts every export (an empty
/// `ExportTraceServiceResponse`), so the exporter counters move.
async fn otlp_receiver() -> SocketAddr {
    let app = Router::new().route(
        "/v1/traces",
        post(|| async { ([("content-type", "application/x-protobuf")], Bytes::new()) }),
    );
    serve(app).await
}

/// Starts every component and a driver that keeps calling them until the
/// process ends; returns the address of `/metrics`.
async fn start_everything() -> SocketAddr {
    // The README's quick start: the recorder first, then the components.
    let handle = install_prometheus(&Default::default()).unwrap();
    let receiver = otlp_receiver().await;
    let telemetry = exporting_to("exposition", receiver).build().unwrap();
    std::mem::forget(telemetry.install().unwrap());

    // Armed chaos: `status` faults on the OpenTelemetry-named services,
    // `abort` (a 500 through the stack) on the classic ones, so that each
    // scheme's injected errors can be told apart in one process.
    let injector = |rules: &str| {
        Injector::builder()
            .rules(parse_rules(rules).unwrap())
            .seed(42)
            .build()
            .unwrap()
    };
    let chaos = injector("in GET /work/*: 10% status(503)");
    let chaos_classic = injector("in GET /work/*: 10% abort");
    let router = || Router::new().route("/work/{id}", get(work));
    let http_otel =
        serve(router().layer(server_stack(Naming::OpenTelemetry, "work", &chaos).layer())).await;
    let http_classic = serve(
        router().layer(server_stack(Naming::Classic, "work-classic", &chaos_classic).layer()),
    )
    .await;
    let grpc_otel = grpc_health_server(server_stack(Naming::OpenTelemetry, "health", &chaos)).await;
    let grpc_classic = grpc_health_server(server_stack(
        Naming::Classic,
        "health-classic",
        &chaos_classic,
    ))
    .await;
    let metrics = serve(metrics_router(handle)).await;

    // HTTP clients: ClientStack → keyed breaker → keyed bulkhead → hyper.
    let idle = Duration::from_secs(600);
    let breakers = Registry::breakers(CircuitBreaker::builder("upstream"), 16, idle).unwrap();
    let bulkheads = Registry::bulkheads(
        Bulkhead::builder("upstream")
            .max_concurrent(2)
            .max_wait(Duration::from_millis(2)),
        16,
        idle,
    )
    .unwrap();
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let http_client = |naming: Naming, name: &str| {
        ServiceBuilder::new()
            .layer(client_stack(naming, name).layer())
            .layer(KeyedBreakerLayer::new(breakers.clone(), keyed::Host))
            .layer(KeyedBulkheadLayer::new(bulkheads.clone(), keyed::Host))
            .service(hyper.clone())
    };
    for (naming, target, name) in [
        (Naming::OpenTelemetry, http_otel, "work-client"),
        (Naming::Classic, http_classic, "work-classic-client"),
    ] {
        let client = http_client(naming, name);
        for worker in 0..3u64 {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut id = worker;
                loop {
                    id += 3;
                    let req = Request::get(format!("http://{target}/work/{id}"))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    if let Ok(res) = client.ready().await.unwrap().call(req).await {
                        let _ = res.into_body().collect().await;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        }
    }

    // gRPC clients: ClientStack over a tonic channel.
    for (naming, target, name) in [
        (Naming::OpenTelemetry, grpc_otel, "health-client"),
        (Naming::Classic, grpc_classic, "health-classic-client"),
    ] {
        call_grpc_health_forever(target, client_stack(naming, name)).await;
    }
    metrics
}

/// The text of `/metrics`, once every duration family has samples.
async fn exposition(metrics: SocketAddr, prefix: &str) -> String {
    let client = telltale_testkit::prometheus::client();
    let deadline = std::time::Instant::now() + MAX_WAIT;
    loop {
        let (status, text) = telltale_testkit::prometheus::get(&client, metrics, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        let missing: Vec<_> = DURATION_FAMILIES
            .iter()
            .filter(|f| !text.contains(&format!("{prefix}{f}_count")))
            .collect();
        let exported = text.contains(&format!("{prefix}telltale_telemetry_spans_exported_total"));
        if missing.is_empty() && exported {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing after {MAX_WAIT:?}: {missing:?} (spans exported: {exported})\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(name, type)` of every family in an exposition.
fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, ty) = l.split_once(' ').unwrap();
            (name.to_owned(), ty.to_owned())
        })
        .collect()
}

/// The PromQL queries of `docs/promql.md`: every fenced `promql` block, one
/// query per block.
fn cookbook() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/promql.md"))
        .expect("docs/promql.md");
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```promql") => block = Some(String::new()),
            (Some(b), "```") => {
                out.push(b.trim().to_owned());
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(block.is_none(), "unterminated promql block");
    out
}

/// The test proper, in this process, with whatever prefix the process
/// environment sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_is_described_bucketed_and_answers_promql() {
    let prefix = match telltale::core::metric_name::check_process_prefix().unwrap() {
        Some(p) => format!("{}_", p.trim_end_matches('_')),
        None => String::new(),
    };
    let metrics = start_everything().await;
    let text = exposition(metrics, &prefix).await;

    // promtool: HELP text for every family, valid exposition.
    let (ok, out) = promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics failed:\n{out}\n{text}");
    for (name, _) in families(&text) {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP\n{text}"
        );
    }

    // Every family is telltale's and carries the prefix, exactly once.
    let families = families(&text);
    for (name, ty) in &families {
        assert!(
            name.starts_with(&prefix),
            "{name} lacks the prefix {prefix:?}"
        );
        assert!(!name.contains("__"), "{name}");
        assert_ne!(ty, "summary", "{name} is a summary\n{text}");
    }
    let histograms: BTreeSet<String> = families
        .iter()
        .filter(|(_, ty)| ty == "histogram")
        .map(|(n, _)| n.clone())
        .collect();
    let expected: BTreeSet<String> = DURATION_FAMILIES
        .iter()
        .map(|f| format!("{prefix}{f}"))
        .collect();
    assert_eq!(histograms, expected);
    // The bulkhead wait has its documented buckets, `le="0"` first.
    assert!(
        text.contains(&format!(
            "{prefix}telltale_bulkhead_wait_duration_seconds_bucket{{name=\"work\",le=\"0\"}}"
        )),
        "{text}"
    );

    // Only transitions that can happen: the four automatic edges of a
    // breaker that has not been moved by hand, never a self-loop.
    let transitions: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "{prefix}telltale_circuitbreaker_transitions_total{{name=\"work\","
            ))
        })
        .collect();
    assert_eq!(transitions.len(), 4, "{transitions:#?}");
    for edge in [
        r#"from="closed",to="open""#,
        r#"from="open",to="half_open""#,
        r#"from="half_open",to="closed""#,
        r#"from="half_open",to="open""#,
    ] {
        assert!(
            transitions.iter().any(|l| l.contains(edge)),
            "{edge}: {transitions:#?}"
        );
    }

    // The real Prometheus: histogram_quantile answers for every family.
    let prom = Prometheus::start(&[metrics]).await;
    for family in &expected {
        let q = format!("histogram_quantile(0.99, sum by (le) (rate({family}_bucket[1m])))");
        prom.wait_for(&q, |r| r.len() == 1 && r[0].1.is_finite())
            .await;
    }

    // The cookbook, with the default names.
    if prefix.is_empty() {
        let queries = cookbook();
        assert!(queries.len() >= 10, "{queries:#?}");
        for q in &queries {
            match prom.try_query(q).await {
                Ok(_) => {}
                Err(e) => panic!("docs/promql.md: Prometheus refuses {q}: {e}"),
            }
            prom.wait_for(q, |r| !r.is_empty()).await;
        }
    }
}

/// Runs [`every_family_is_described_bucketed_and_answers_promql`] again in a
/// child process with `TELLTALE_METRICS_PREFIX=myapp_` (the prefix is read
/// once per process).
#[test]
fn prefix_from_env_applies_to_every_family() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "every_family_is_described_bucketed_and_answers_promql",
            "--nocapture",
        ])
        .env("TELLTALE_METRICS_PREFIX", "myapp_")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
}
