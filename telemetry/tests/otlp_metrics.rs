//! OTLP metrics (`OTEL_METRICS_EXPORTER=otlp`) against a real OTLP receiver
//! (gRPC and HTTP/protobuf, decoded with opentelemetry-proto): after the
//! same traffic, what arrives equals what `/metrics` shows (counts, bucket
//! counts, sums, the same buckets), under the semantic conventions' names
//! and attributes; a dead collector costs the request path nothing, is
//! logged once, counted, and export resumes when it comes back; the
//! variables are validated with errors that name them.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use telltale_telemetry::metrics::{FanoutRecorder, RedConfig, prometheus_builder};

use support::export::{from_env, until};
use support::otlp_metrics::{Point, metrics_receiver, prometheus_histograms};

/// The attribute of each `/metrics` label of the OpenTelemetry naming, as
/// the semantic conventions name it (`i:` marks an integer attribute).
fn semconv_attributes(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| match k.as_str() {
            "http_request_method" => ("http.request.method".to_owned(), v.clone()),
            "http_route" => ("http.route".to_owned(), v.clone()),
            "http_response_status_code" => {
                ("http.response.status_code".to_owned(), format!("i:{v}"))
            }
            "url_scheme" => ("url.scheme".to_owned(), v.clone()),
            "error_type" => ("error.type".to_owned(), v.clone()),
            other => panic!("unexpected label {other}"),
        })
        .collect()
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(30)).await;
    "slow"
}

async fn same_values_as_the_exposition(
    vars: &[(&str, &str)],
    receiver: support::otlp_metrics::MetricsSink,
    red: RedConfig,
) {
    let pipeline = from_env(vars).unwrap();
    let otlp = pipeline
        .telemetry
        .guard()
        .otlp_metrics()
        .expect("OTLP metrics on");
    let prometheus = prometheus_builder(&red).build_recorder();
    let handle = prometheus.handle();
    let both = FanoutRecorder::new(vec![
        Arc::new(prometheus),
        Arc::new(otlp.recorder().clone()),
    ]);
    let config = red.with_recorder(Arc::new(both));
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/users/{id}", get(|| async { "user" }))
        .route("/slow", get(slow))
        .layer(support::server_layer(config));
    let addr: SocketAddr = support::serve(app).await;
    let client = support::client();
    for (path, n, status) in [
        ("/ok", 20, 200),
        ("/fail", 7, 500),
        ("/users/1", 3, 200),
        ("/users/2", 2, 200),
        ("/slow", 4, 200),
    ] {
        for _ in 0..n {
            let (s, _) = support::get(&client, addr, path).await;
            assert_eq!(s.as_u16(), status, "{path}");
        }
    }

    let text = handle.render();
    let expected = prometheus_histograms(&text, "http_server_request_duration_seconds");
    assert_eq!(expected.len(), 4, "{text}");
    let total: u64 = expected.values().map(|(_, _, count)| count).sum();
    assert_eq!(total, 36);
    assert!(otlp.force_flush(), "flush");
    let latest = receiver
        .wait_for("every request in the OTLP histogram", |latest| {
            let got: u64 = latest
                .iter()
                .filter(|((name, _), _)| name == "http.server.request.duration")
                .map(|(_, p)| match p {
                    Point::Histogram { count, .. } => *count,
                    _ => 0,
                })
                .sum();
            got == total
        })
        .await;

    for (labels, (buckets, sum, count)) in &expected {
        let id = (
            "http.server.request.duration".to_owned(),
            semconv_attributes(labels),
        );
        let Some(Point::Histogram {
            count: got_count,
            sum: got_sum,
            bounds,
            counts,
        }) = latest.get(&id)
        else {
            panic!("no OTLP series {id:?}: {latest:#?}");
        };
        assert_eq!(got_count, count, "{id:?}");
        assert!((got_sum - sum).abs() < 1e-9, "{id:?}: {got_sum} vs {sum}");
        // The same buckets, and the same counts once made cumulative.
        let prom_bounds: Vec<f64> = buckets
            .iter()
            .map(|(le, _)| *le)
            .filter(|le| le.is_finite())
            .collect();
        assert_eq!(bounds, &prom_bounds, "{id:?}");
        let mut cumulative = 0;
        for (i, (le, prom)) in buckets.iter().enumerate() {
            cumulative += counts[i];
            assert_eq!(cumulative, *prom, "{id:?} le={le}");
        }
        assert_eq!(counts.len(), buckets.len(), "{id:?}");
    }

    // The active-requests gauge: an up-down counter, as the conventions
    // type it, back at zero as `/metrics` shows.
    let active = latest
        .get(&(
            "http.server.active_requests".to_owned(),
            BTreeMap::from([
                ("http.request.method".to_owned(), "GET".to_owned()),
                ("url.scheme".to_owned(), "http".to_owned()),
            ]),
        ))
        .unwrap_or_else(|| panic!("{latest:#?}"));
    assert_eq!(
        active,
        &Point::Number {
            value: 0.0,
            monotonic: Some(false)
        }
    );
    assert!(
        text.contains(
            r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#
        )
    );
    let units = receiver.units();
    assert_eq!(units["http.server.request.duration"], "s");
    assert_eq!(units["http.server.active_requests"], "{request}");
    assert!(receiver.services().iter().all(|s| s == "export"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_equals_the_exposition() {
    let (sink, endpoint) = metrics_receiver("grpc").await;
    same_values_as_the_exposition(
        &[
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
        sink,
        RedConfig::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_export_from_the_general_endpoint_equals_the_exposition() {
    let (sink, endpoint) = metrics_receiver("http/protobuf").await;
    let base = endpoint.trim_end_matches("/v1/metrics").to_owned();
    same_values_as_the_exposition(
        &[
            // Prometheus and OTLP together; the general endpoint gets
            // `/v1/metrics` appended, as the specification says.
            ("OTEL_METRICS_EXPORTER", "prometheus,otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &base),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
        sink,
        RedConfig::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_buckets_are_pushed_too() {
    let (sink, endpoint) = metrics_receiver("grpc").await;
    let red = RedConfig::builder()
        .buckets(&[0.001, 0.02, 0.5, 3.0])
        .prefix("shop")
        .build()
        .unwrap();
    let vars = [
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
    ];
    let pipeline = from_env(&vars).unwrap();
    let otlp = pipeline.telemetry.guard().otlp_metrics().unwrap();
    let prometheus = prometheus_builder(&red).build_recorder();
    let handle = prometheus.handle();
    let both = FanoutRecorder::new(vec![
        Arc::new(prometheus),
        Arc::new(otlp.recorder().clone()),
    ]);
    let metrics = telltale_telemetry::metrics::RedMetrics::new(
        telltale_telemetry::metrics::Kind::HttpServer,
        &red.with_recorder(Arc::new(both)),
    );
    let request = metrics.start(
        &http::Method::GET,
        telltale_telemetry::metrics::Scheme::Http,
    );
    request.finish_with(
        Duration::from_millis(10),
        Some("/a"),
        Some(StatusCode::OK),
        None,
        None,
    );
    let text = handle.render();
    assert!(text.contains(r#"shop_http_server_request_duration_seconds_bucket{http_request_method="GET",http_route="/a",http_response_status_code="200",url_scheme="http",le="0.02"} 1"#), "{text}");
    assert!(otlp.force_flush());
    let latest = sink
        .wait_for("the prefixed histogram", |l| {
            l.keys()
                .any(|(n, _)| n == "shop.http.server.request.duration")
        })
        .await;
    let (_, point) = latest
        .iter()
        .find(|((n, _), _)| n == "shop.http.server.request.duration")
        .unwrap();
    match point {
        Point::Histogram { bounds, counts, .. } => {
            assert_eq!(bounds, &[0.001, 0.02, 0.5, 3.0]);
            assert_eq!(counts, &[0, 1, 0, 0, 0]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_collector_is_bounded_logged_once_counted_and_recovers() {
    // A port with nobody listening, then a receiver on it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = format!("http://{addr}/v1/metrics");
    let pipeline = from_env(&[
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint),
        ("OTEL_METRIC_EXPORT_INTERVAL", "50"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "500"),
    ])
    .unwrap();
    let otlp = pipeline.telemetry.guard().otlp_metrics().unwrap();
    let recorder = otlp.recorder().clone();
    // The request path records while the collector is down: nothing waits
    // for it (these calls return whatever the exporter is doing).
    metrics::with_local_recorder(&recorder, || {
        let jobs = metrics::counter!("jobs_total", "queue" => "mail");
        let took = metrics::histogram!("job_duration_seconds");
        for i in 0..10_000 {
            jobs.increment(1);
            took.record(f64::from(i % 10) / 100.0);
        }
    });
    let stats = otlp.stats().clone();
    until("three failed exports", || stats.failed() >= 3).await;
    assert_eq!(stats.exported(), 0);
    // Logged once while it keeps failing (one line per minute at most).
    let warns = pipeline.export_lines_at("WARN");
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].contains(&endpoint), "{}", warns[0]);
    assert!(warns[0].contains("failed"), "{}", warns[0]);
    let line = pipeline
        .export_lines()
        .into_iter()
        .find(|l| l["level"] == "WARN")
        .unwrap();
    assert_eq!(line["exporter"], "otlp_metrics", "{line}");

    // The collector comes back: the cumulative values arrive whole.
    let sink = support::otlp_metrics::http_metrics_receiver_on(support::otel::rebind(addr).await);
    sink.wait_for("the counter's total", |latest| {
        latest.get(&(
            "jobs".to_owned(),
            BTreeMap::from([("queue".to_owned(), "mail".to_owned())]),
        )) == Some(&Point::Number {
            value: 10_000.0,
            monotonic: Some(true),
        })
    })
    .await;
    let latest = sink.latest();
    match latest.get(&("job_duration".to_owned(), BTreeMap::new())) {
        Some(Point::Histogram { count, .. }) => assert_eq!(*count, 10_000),
        other => panic!("{other:?}"),
    }
    until("an export counted", || stats.exported() >= 1).await;
    until("the recovery line", || {
        pipeline
            .export_lines_at("INFO")
            .iter()
            .any(|l| l.contains("recovered"))
    })
    .await;
}

#[test]
fn variables_are_validated_and_name_themselves() {
    for (vars, needle) in [
        (
            vec![("OTEL_METRICS_EXPORTER", "console")],
            "OTEL_METRICS_EXPORTER",
        ),
        (
            vec![("OTEL_METRICS_EXPORTER", "otlp,statsd")],
            "otlp, prometheus or none",
        ),
        (
            vec![("OTEL_METRIC_EXPORT_INTERVAL", "0")],
            "OTEL_METRIC_EXPORT_INTERVAL",
        ),
        (
            vec![("OTEL_METRIC_EXPORT_INTERVAL", "1s")],
            "OTEL_METRIC_EXPORT_INTERVAL",
        ),
        (
            vec![("OTEL_METRIC_EXPORT_TIMEOUT", "3600001")],
            "OTEL_METRIC_EXPORT_TIMEOUT",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")],
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "localhost:4318")],
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=b\u{1}")],
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd")],
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-1")],
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        ),
    ] {
        let Err(err) = from_env(&vars) else {
            panic!("{vars:?} accepted");
        };
        let err = err.to_string();
        assert!(err.contains(needle), "{vars:?}: {err}");
        let value = vars[0].1;
        assert!(
            err.contains(value) || value.contains('\u{1}'),
            "{vars:?}: {err}"
        );
    }
}

#[tokio::test]
async fn which_variables_turn_otlp_metrics_on() {
    let on = |vars: &[(&str, &str)]| {
        from_env(vars)
            .unwrap()
            .telemetry
            .guard()
            .otlp_metrics()
            .is_some()
    };
    assert!(!on(&[]));
    // An endpoint for traces alone does not push metrics.
    assert!(!on(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://127.0.0.1:4318"
    )]));
    assert!(on(&[(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "http://127.0.0.1:4318/v1/metrics"
    )]));
    assert!(on(&[("OTEL_METRICS_EXPORTER", "otlp")]));
    assert!(!on(&[("OTEL_METRICS_EXPORTER", "prometheus")]));
    assert!(!on(&[
        ("OTEL_METRICS_EXPORTER", "none"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://127.0.0.1:4318/v1/metrics"
        ),
    ]));
    assert!(!on(&[
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_METRICS_EXPORTER", "otlp"),
    ]));
}
