//! The shipped Grafana dashboard and recording rules against a real
//! Prometheus (Debian's package, `scripts/install-test-deps`) scraping a
//! full-stack service under traffic:
//!
//! - Prometheus runs `deploy/prometheus/prometheus.yml` itself: its rules, and
//!   its Kubernetes pod job, fed by file discovery with the labels the
//!   Kubernetes discovery would give (Debian's Prometheus has no Kubernetes
//!   discovery): only the pod annotated `prometheus.io/scrape: "true"` is
//!   scraped, on its annotated port, with `job`, `namespace`, `pod` and `env`;
//! - every rule evaluates without error, and every recording rule (each
//!   naming scheme, each protocol) records data;
//! - every query of every panel of `deploy/grafana/telltale.json`, run as
//!   Grafana runs it (a range query, `$job` = All), returns series with a
//!   non-zero sample: the traffic opens and closes a breaker, fills a
//!   bulkhead, fires chaos (HTTP and gRPC), fails span exports, overflows a
//!   label cap and sends invalid correlation IDs;
//! - the alerts without a `for` fire over these real metrics (error budget
//!   burn for both namings and protocols, breaker flapping, label cap), and
//!   the chaos alert stays silent for a target in `env="dev"`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use support::{
    call_grpc_health_forever, client_telemetry, exporting_to, grpc_health_server, server_telemetry,
};
use telltale::chaos::{Injector, parse_rules};
use telltale::resilience::{Bulkhead, CircuitBreaker, SlidingWindow};
use telltale::telemetry::Protocol;
use telltale::telemetry::layer::ServerTelemetryLayer;
use telltale::telemetry::metrics::{Naming, RedConfig, install_prometheus, metrics_router};
use telltale::{ClientStack, ServerStack};
use telltale_testkit::prometheus::{HttpClient, client, encode, get as http_get, serve};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Upper bound for every wait of this test (the rules need a few
/// evaluations, some panels an event).
const MAX_WAIT: Duration = Duration::from_secs(90);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Seconds since the test's services started: the failing handler fails in
/// the first of every three seconds, so the breaker opens, probes and
/// closes again and again.
fn failing_now(start: Instant) -> bool {
    start.elapsed().as_secs() % 3 == 0
}

fn injector(rules: &str) -> Injector {
    Injector::builder()
        .rules(parse_rules(rules).unwrap())
        .seed(7)
        .build()
        .unwrap()
}

/// The HTTP server stack: a breaker quick to open and to probe, a
/// two-slot bulkhead, chaos.
fn http_stack(naming: Naming, name: &str, chaos: &Injector) -> ServerStack {
    ServerStack::new()
        .telemetry(server_telemetry(naming))
        .breaker(
            CircuitBreaker::builder(name.to_owned())
                .sliding_window(SlidingWindow::Count(10))
                .minimum_calls(5)
                .failure_rate_threshold(0.5)
                .wait_in_open(Duration::from_millis(300))
                .permitted_probes(2)
                .build()
                .unwrap(),
        )
        .bulkhead(
            Bulkhead::builder(name.to_owned())
                .max_concurrent(2)
                .max_wait(Duration::from_millis(3))
                .build()
                .unwrap(),
        )
        .chaos(chaos)
}

async fn grpc_server(naming: Naming, chaos: &Injector) -> SocketAddr {
    grpc_health_server(
        ServerStack::new()
            .telemetry(server_telemetry(naming))
            .chaos(chaos),
    )
    .await
}

/// An OTLP/HTTP receiver of spans and log records that refuses every third
/// export (400: not retried), so both are exported and dropped.
async fn flaky_otlp_receiver() -> SocketAddr {
    let calls = Arc::new(AtomicU64::new(0));
    let answer = move || {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        async move {
            let status = if n % 3 == 2 {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (
                status,
                [("content-type", "application/x-protobuf")],
                Bytes::new(),
            )
        }
    };
    let app = Router::new()
        .route("/v1/traces", post(answer.clone()))
        .route("/v1/logs", post(answer));
    serve(app).await
}

/// Starts every component and the traffic; returns the address of `/metrics`.
async fn start_everything() -> SocketAddr {
    let handle = install_prometheus(&Default::default()).unwrap();
    let receiver = flaky_otlp_receiver().await;
    let telemetry = exporting_to("deploy-dashboard", receiver)
        .otlp_logs(format!("http://{receiver}/v1/logs"), Protocol::HttpProtobuf)
        .export_queue_size(8)
        .export_batch_size(8)
        .build()
        .unwrap();
    std::mem::forget(telemetry.install().unwrap());

    let start = Instant::now();
    let work = move |UrlPath(id): UrlPath<u64>| async move {
        tokio::time::sleep(Duration::from_millis(id % 4)).await;
        if failing_now(start) || id % 10 == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    };
    let router = || Router::new().route("/work/{id}", get(work));
    let http_otel = serve(
        router().layer(
            http_stack(
                Naming::OpenTelemetry,
                "work",
                &injector("in GET /work/*: 10% status(503)"),
            )
            .layer(),
        ),
    )
    .await;
    let http_classic = serve(
        router().layer(
            http_stack(
                Naming::Classic,
                "work-classic",
                &injector("in GET /work/*: 10% abort"),
            )
            .layer(),
        ),
    )
    .await;
    // A server whose RED metrics hold two label sets: the third overflows.
    let capped = serve(
        Router::new()
            .route("/a", get(|| async { "a" }))
            .route("/b", get(|| async { "b" }))
            .route("/c", get(|| async { "c" }))
            .layer(
                ServerStack::new()
                    .telemetry(
                        ServerTelemetryLayer::builder()
                            .red_config(RedConfig::builder().max_label_sets(2).build().unwrap())
                            .build()
                            .unwrap(),
                    )
                    .layer(),
            ),
    )
    .await;
    let grpc_chaos = || injector("in POST /grpc.health.v1.Health/*: 30% grpc(UNAVAILABLE)");
    let grpc_otel = grpc_server(Naming::OpenTelemetry, &grpc_chaos()).await;
    let grpc_classic = grpc_server(Naming::Classic, &grpc_chaos()).await;
    let metrics = serve(metrics_router(handle)).await;

    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    for (naming, target) in [
        (Naming::OpenTelemetry, http_otel),
        (Naming::Classic, http_classic),
    ] {
        let client = ServiceBuilder::new()
            .layer(
                ClientStack::new()
                    .telemetry(client_telemetry(naming))
                    .layer(),
            )
            .service(hyper.clone());
        // Six callers on a two-slot bulkhead: it fills and rejects.
        for worker in 0..6u64 {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut id = worker;
                loop {
                    id += 6;
                    let mut req = Request::get(format!("http://{target}/work/{id}"));
                    if id % 4 == 0 {
                        // Refused by the correlation layer's validation rule.
                        req = req.header("x-correlation-id", "not valid!");
                    }
                    let req = req.body(Full::new(Bytes::new())).unwrap();
                    if let Ok(res) = client.ready().await.unwrap().call(req).await {
                        let _ = res.into_body().collect().await;
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            });
        }
    }
    tokio::spawn(async move {
        let client = client();
        loop {
            for path in ["/a", "/b", "/c"] {
                let _ = http_get(&client, capped, path).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    for (naming, target) in [
        (Naming::OpenTelemetry, grpc_otel),
        (Naming::Classic, grpc_classic),
    ] {
        call_grpc_health_forever(
            target,
            ClientStack::new().telemetry(client_telemetry(naming)),
        )
        .await;
    }
    metrics
}

/// A Prometheus running `deploy/prometheus/prometheus.yml` (scrape and
/// evaluation every second, file discovery in place of Kubernetes
/// discovery). Killed on drop.
struct Prometheus {
    server: telltale_testkit::prometheus::Prometheus,
    client: HttpClient,
}

/// The shipped configuration, made to run here: file discovery of
/// `targets` instead of Kubernetes discovery, absolute rule paths, 1 s
/// intervals, and without Alertmanager, the example static job and remote
/// write.
fn config_for_test(targets: &Path) -> String {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap();
    let replace = |text: &str, from: &str, to: &str| {
        assert_eq!(text.matches(from).count(), 1, "{from:?} in prometheus.yml");
        text.replace(from, to)
    };
    let rules = root().join("deploy/prometheus/rules");
    let mut text = replace(
        &text,
        "    kubernetes_sd_configs:\n      - role: pod\n",
        &format!(
            "    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
            targets.display()
        ),
    );
    text = replace(&text, "  scrape_interval: 15s\n", "  scrape_interval: 1s\n");
    text = replace(
        &text,
        "  evaluation_interval: 15s\n",
        "  evaluation_interval: 1s\n",
    );
    text = text.replace("  - rules/", &format!("  - {}/", rules.display()));
    // No Alertmanager here: the firing alerts are read from Prometheus.
    text = replace(
        &text,
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['alertmanager:9093']\n",
        "",
    );
    let cut = text
        .find("\n  # Outside Kubernetes")
        .expect("the static job follows the pod job");
    text.truncate(cut + 1);
    text
}

impl Prometheus {
    async fn start(metrics: SocketAddr) -> Prometheus {
        let server = telltale_testkit::prometheus::Prometheus::start_configured(
            &[],
            MAX_WAIT,
            |dir| {
                // Three pods as Kubernetes discovery would describe them: one
                // annotated for scraping (its container port is not the metrics
                // port: the annotation is), one not annotated, one finished.
                let pod = |name: &str, annotated: bool, phase: &str| {
                    let mut labels = serde_json::json!({
                        "__meta_kubernetes_namespace": "shop",
                        "__meta_kubernetes_pod_name": name,
                        "__meta_kubernetes_pod_phase": phase,
                        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "checkout",
                        "__meta_kubernetes_pod_annotation_telltale_io_env": "dev",
                        "__meta_kubernetes_pod_annotation_prometheus_io_port": metrics.port().to_string(),
                        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
                    });
                    if annotated {
                        labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] =
                            "true".into();
                    }
                    serde_json::json!({ "targets": ["127.0.0.1:1"], "labels": labels })
                };
                let targets = serde_json::json!([
                    pod("checkout-0", true, "Running"),
                    pod("checkout-1", false, "Running"),
                    pod("checkout-migrate", true, "Succeeded"),
                ]);
                let targets_file = dir.join("pods.json");
                std::fs::write(&targets_file, targets.to_string()).unwrap();
                let config = dir.join("prometheus.yml");
                std::fs::write(&config, config_for_test(&targets_file)).unwrap();
                config
            },
        )
        .await;
        Prometheus {
            server,
            client: client(),
        }
    }

    fn log(&self) -> String {
        self.server.log()
    }

    async fn api(&self, path_and_query: &str) -> Value {
        let (status, body) = http_get(&self.client, self.server.addr, path_and_query).await;
        assert_eq!(status, StatusCode::OK, "{path_and_query}: {body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "success", "{path_and_query}: {body}");
        json["data"].clone()
    }

    /// An instant query: `(labels, value)` pairs.
    async fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let data = self
            .api(&format!("/api/v1/query?query={}", encode(promql)))
            .await;
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = serde_json::from_value(r["metric"].clone()).unwrap();
                (labels, r["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    }

    /// A range query from `start` to now, step 1 s, as Grafana runs a
    /// panel: every value of every series.
    async fn query_range(&self, promql: &str, start: f64) -> Vec<f64> {
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let data = self
            .api(&format!(
                "/api/v1/query_range?query={}&start={start}&end={end}&step=1",
                encode(promql)
            ))
            .await;
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["values"].as_array().unwrap().iter())
            .map(|v| v[1].as_str().unwrap().parse::<f64>().unwrap())
            .collect()
    }
}

/// Runs `$check` (an expression giving `Result<(), String>`, awaited
/// inside) until it is `Ok`, at most until `$deadline`.
macro_rules! eventually {
    ($deadline:expr, $what:expr, $prom:expr, $check:expr) => {
        loop {
            match $check {
                Ok(()) => break,
                Err(last) => assert!(
                    Instant::now() < $deadline,
                    "{}: not within {MAX_WAIT:?}; last: {last}\n{}",
                    $what,
                    $prom.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
}

/// Every query of the dashboard, with its panel's title, as Grafana sends
/// it with `$job` = All.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/telltale.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let job = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "job")
        .expect("a job variable");
    let all = job["allValue"].as_str().unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        let title = panel["title"].as_str().unwrap().to_owned();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$job", all)
                .replace("$__rate_interval", "1m");
            assert!(!expr.contains('$'), "{title}: unknown variable in {expr}");
            out.push((title.clone(), expr));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_panels_and_recording_rules_return_data() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{queries:#?}");
    let metrics = start_everything().await;
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let prom = Prometheus::start(metrics).await;
    let deadline = Instant::now() + MAX_WAIT;

    // The pod job: one target (the annotated, running pod), on the
    // annotated port, with the labels the alerts and panels group by.
    eventually!(deadline, "the annotated pod is scraped", prom, {
        let up = prom.query("up").await;
        match up.as_slice() {
            [(labels, 1.0)] => {
                let expected: BTreeMap<String, String> = [
                    ("__name__", "up".to_owned()),
                    ("env", "dev".to_owned()),
                    ("instance", metrics.to_string()),
                    ("job", "checkout".to_owned()),
                    ("namespace", "shop".to_owned()),
                    ("pod", "checkout-0".to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                if *labels == expected {
                    Ok(())
                } else {
                    Err(format!("{labels:?}"))
                }
            }
            _ => Err(format!("{up:?}")),
        }
    });

    // Every rule loaded, evaluated, healthy.
    let mut recorded: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    eventually!(deadline, "every rule evaluates", prom, {
        let data = prom.api("/api/v1/rules").await;
        let mut problems = Vec::new();
        let mut count = 0;
        recorded.clear();
        for group in data["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                count += 1;
                if rule["health"] != "ok" {
                    problems.push(format!(
                        "{}: {} {}",
                        rule["name"], rule["health"], rule["lastError"]
                    ));
                }
                if rule["type"] == "recording" {
                    let labels = serde_json::from_value(rule["labels"].clone()).unwrap_or_default();
                    recorded.push((rule["name"].as_str().unwrap().to_owned(), labels));
                }
            }
        }
        if count < 80 {
            problems.push(format!("{count} rules loaded"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    });

    // Every recording rule records data, for each naming and protocol.
    for (name, labels) in &recorded {
        let matchers: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let q = format!("{name}{{{}}}", matchers.join(","));
        eventually!(deadline, q, prom, {
            let r = prom.query(&q).await;
            if r.iter().any(|(_, v)| v.is_finite()) {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        });
    }

    // Both namings' HTTP clients write `http_client_request_duration_seconds`
    // in this process: each scheme's rules read only their own series, so
    // every dependency has its `server` and is counted once per naming. The
    // gRPC clients (tonic channels: the layer sees no address) are named by
    // their service.
    for name in [
        "telltale:client_requests:rate5m",
        "telltale:client_request_duration_seconds_bucket:rate5m",
    ] {
        let unnamed = prom.query(&format!("{name}{{server=\"\"}}")).await;
        assert!(unnamed.is_empty(), "{name}: {unnamed:?}");
    }
    let http_clients = prom
        .query(r#"count by (naming, server) (telltale:client_requests:rate5m{protocol="http"})"#)
        .await;
    assert_eq!(http_clients.len(), 2, "{http_clients:?}");
    let grpc_clients = prom
        .query(r#"count by (naming, server) (telltale:client_requests:rate5m{protocol="grpc"})"#)
        .await;
    assert_eq!(grpc_clients.len(), 2, "{grpc_clients:?}");
    for (labels, _) in &grpc_clients {
        assert_eq!(
            labels["server"], "grpc.health.v1.Health",
            "{grpc_clients:?}"
        );
    }

    // Every panel query returns series with a non-zero sample.
    for (title, expr) in &queries {
        eventually!(deadline, format!("panel {title:?}: {expr}"), prom, {
            let values = prom.query_range(expr, start).await;
            if values.iter().any(|v| *v != 0.0 && v.is_finite()) {
                Ok(())
            } else {
                Err(format!("{} samples, none non-zero", values.len()))
            }
        });
    }

    // The alerts without a `for` fire over the real metrics: the error
    // budget burns on every route of both namings and protocols, the
    // breakers flap, the capped server overflows.
    let expected = [
        ("TelltaleErrorBudgetBurnFast", "opentelemetry/http"),
        ("TelltaleErrorBudgetBurnFast", "opentelemetry/grpc"),
        ("TelltaleErrorBudgetBurnFast", "classic/http"),
        ("TelltaleErrorBudgetBurnFast", "classic/grpc"),
        ("TelltaleCircuitBreakerFlapping", "work"),
        ("TelltaleCircuitBreakerFlapping", "work-classic"),
        (
            "TelltaleMetricLabelCapReached",
            "http_server_request_duration_seconds",
        ),
    ];
    eventually!(deadline, "alerts fire", prom, {
        let firing: Vec<(String, String)> = prom
            .query(r#"ALERTS{alertstate="firing"}"#)
            .await
            .into_iter()
            .map(|(l, _)| {
                let get = |k: &str| l.get(k).cloned().unwrap_or_default();
                let what = match get("alertname").as_str() {
                    "TelltaleErrorBudgetBurnFast" => {
                        format!("{}/{}", get("naming"), get("protocol"))
                    }
                    "TelltaleCircuitBreakerFlapping" => get("name"),
                    _ => get("metric"),
                };
                (get("alertname"), what)
            })
            .collect();
        let missing: Vec<_> = expected
            .iter()
            .filter(|(a, w)| !firing.iter().any(|(fa, fw)| fa == a && fw == w))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("missing {missing:?}; firing {firing:?}"))
        }
    });

    // Chaos is armed on a target whose `env` (from the pod annotation) is
    // `dev`: the chaos alert has evaluated over it and stays silent.
    assert!(
        !prom
            .query("telltale_chaos_faults_injected_total")
            .await
            .is_empty()
    );
    let chaos_alert = prom
        .query(r#"ALERTS{alertname="TelltaleChaosArmedOutsideAllowedEnvironment"}"#)
        .await;
    assert!(chaos_alert.is_empty(), "{chaos_alert:?}");
}
