//! The OpenTelemetry SDK variables of export, read as the specification
//! says and checked against what a real receiver sees: `OTEL_BSP_*` and
//! `OTEL_BLRP_*` (with telltale's `TELLTALE_EXPORT_*` winning),
//! `OTEL_SDK_DISABLED`, `OTEL_LOG_LEVEL`, and start-up errors naming the
//! variable.

mod support;

use support::export::{from_env, until};
use support::otel::{grpc_receiver, http_receiver, stalled_collector};
#[cfg(feature = "tls")]
use support::tls::Pki;

#[tokio::test]
async fn bsp_batch_size_sets_spans_per_request() {
    let (sink, endpoint) = http_receiver().await;
    let pipeline = from_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "3"),
        ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
    ])
    .unwrap();
    for i in 0..9 {
        pipeline.span(&format!("s{i}"));
    }
    // A full batch goes at once; the schedule delay (1 h) never fires.
    sink.wait_for(|spans| spans.len() == 9).await;
    assert_eq!(sink.spans_per_request(), [3, 3, 3]);
}

#[tokio::test]
async fn telltale_batch_size_wins_over_bsp() {
    let (sink, endpoint) = http_receiver().await;
    let pipeline = from_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
        ("TELLTALE_EXPORT_BATCH_SIZE", "2"),
        ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
    ])
    .unwrap();
    for i in 0..4 {
        pipeline.span(&format!("s{i}"));
    }
    sink.wait_for(|spans| spans.len() == 4).await;
    assert_eq!(sink.spans_per_request(), [2, 2]);
}

#[tokio::test]
async fn bsp_schedule_delay_decides_when_a_partial_batch_goes() {
    let (quick, quick_endpoint) = http_receiver().await;
    let (slow, slow_endpoint) = http_receiver().await;
    let quick_pipeline = from_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &quick_endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
    ])
    .unwrap();
    let slow_pipeline = from_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &slow_endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
    ])
    .unwrap();
    slow_pipeline.span("waits");
    quick_pipeline.span("goes");
    quick.wait_for(|spans| spans.len() == 1).await;
    // Emitted first, still waiting for its delay (or a flush).
    assert!(slow.spans().is_empty());
}

#[tokio::test]
async fn bsp_queue_size_bounds_the_queue_and_counts_drops() {
    let (addr, _stalled) = stalled_collector().await;
    let endpoint = format!("http://{addr}/v1/traces");
    let pipeline = from_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "30000"),
    ])
    .unwrap();
    let stats = pipeline.stats("otlp");
    assert_eq!(stats.capacity(), 4);
    for i in 0..20 {
        pipeline.span(&format!("s{i}"));
    }
    // At most 4 queued and 2 in the stalled export.
    assert!(stats.dropped_queue_full() >= 20 - 4 - 2, "{stats:?}");
}

#[tokio::test]
async fn bsp_export_timeout_bounds_an_export() {
    let (addr, _stalled) = stalled_collector().await;
    let endpoint = format!("http://{addr}");
    let pipeline = from_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "250"),
    ])
    .unwrap();
    pipeline.span("stuck");
    until("the failure line", || {
        !pipeline.export_lines_at("WARN").is_empty()
    })
    .await;
    let line = &pipeline.export_lines_at("WARN")[0];
    assert!(line.contains("no answer within 250ms"), "{line}");
}

#[tokio::test]
async fn blrp_batch_size_sets_log_records_per_request() {
    let (sink, endpoint) = grpc_receiver().await;
    let pipeline = from_env(&[
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "2"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "3600000"),
        // Spans' batches are not log batches.
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "7"),
    ])
    .unwrap();
    for i in 0..6 {
        pipeline.event(&format!("event {i}"));
    }
    sink.wait_for_logs(|logs| logs.len() == 6).await;
    assert_eq!(sink.logs_per_request(), [2, 2, 2]);
}

#[tokio::test]
async fn sdk_disabled_only_by_true() {
    for (value, disabled, warned) in [
        ("true", true, false),
        ("TRUE", true, false),
        ("false", false, false),
        ("1", false, true),
        ("yes", false, true),
        ("maybe", false, true),
    ] {
        let pipeline = from_env(&[("OTEL_SDK_DISABLED", value)]).unwrap();
        assert_eq!(
            pipeline.telemetry.guard().tracer_provider().is_none(),
            disabled,
            "OTEL_SDK_DISABLED={value}"
        );
        let warnings: Vec<_> = pipeline
            .lines
            .json_lines()
            .into_iter()
            .filter(|l| {
                l["level"] == "WARN" && l["message"].as_str().unwrap().contains("OTEL_SDK_DISABLED")
            })
            .collect();
        assert_eq!(warnings.len(), usize::from(warned), "{value}: {warnings:?}");
        if warned {
            let message = warnings[0]["message"].as_str().unwrap();
            assert!(
                message.contains(value) && message.contains("read as false"),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn otel_log_level_routes_the_sdk_logs_from_the_export_thread() {
    let (sink, endpoint) = http_receiver().await;
    let debug = from_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_LOG_LEVEL", "debug"),
    ])
    .unwrap();
    debug.span("traced");
    sink.wait_for(|spans| spans.len() == 1).await;
    until("the SDK's debug lines", || {
        debug.lines.json_lines().iter().any(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("opentelemetry"))
                && l["level"] == "DEBUG"
        })
    })
    .await;

    let (sink, endpoint) = http_receiver().await;
    let quiet = from_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("RUST_LOG", "debug"),
        ("OTEL_LOG_LEVEL", "error"),
    ])
    .unwrap();
    quiet.span("traced");
    sink.wait_for(|spans| spans.len() == 1).await;
    assert!(
        !quiet.lines.json_lines().iter().any(|l| l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("opentelemetry"))),
        "{}",
        quiet.lines.text()
    );
}

/// The error `pairs` give at start-up, as text.
fn start_up_error(pairs: &[(&str, &str)]) -> String {
    match from_env(pairs) {
        Ok(_) => panic!("{pairs:?} started"),
        Err(e) => e.to_string(),
    }
}

#[cfg(feature = "tls")]
#[test]
fn bad_values_are_start_up_errors_naming_the_variable() {
    let pki = Pki::generate();
    let missing = pki.file("missing.pem");
    let not_pem = pki.dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let not_pem = not_pem.to_string_lossy().into_owned();
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318");
    for (pairs, variable, says) in [
        (
            vec![("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "from 1 to 1048576",
        ),
        (
            vec![("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999")],
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "from 1 to 1048576",
        ),
        (
            vec![
                ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "11"),
            ],
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "at most the export queue size (10)",
        ),
        (
            vec![("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "4096")],
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
            "at most the export queue size (2048)",
        ),
        (
            vec![("OTEL_BSP_SCHEDULE_DELAY", "soon")],
            "OTEL_BSP_SCHEDULE_DELAY",
            "a digit",
        ),
        (
            vec![("OTEL_BSP_EXPORT_TIMEOUT", "3600001")],
            "OTEL_BSP_EXPORT_TIMEOUT",
            "milliseconds from 0 (no limit) to 3600000",
        ),
        (
            vec![("OTEL_BLRP_SCHEDULE_DELAY", "99999999999")],
            "OTEL_BLRP_SCHEDULE_DELAY",
            "milliseconds from 0 to 3600000",
        ),
        (
            vec![("TELLTALE_EXPORT_DELAY", "2h")],
            "TELLTALE_EXPORT_DELAY",
            "at most 1h",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")],
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "gzip or none",
        ),
        (
            vec![endpoint, ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd")],
            "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
            "gzip or none",
        ),
        (
            vec![endpoint, ("OTEL_EXPORTER_OTLP_CERTIFICATE", &missing)],
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "a readable file",
        ),
        (
            vec![
                endpoint,
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &not_pem),
            ],
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "no CERTIFICATE block",
        ),
        (
            vec![
                endpoint,
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    &pki.file("client.pem"),
                ),
            ],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "mutual TLS needs both",
        ),
        (
            vec![
                endpoint,
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    &pki.file("client.pem"),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.file("ca.pem")),
            ],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "a private key",
        ),
        (
            vec![("OTEL_LOG_LEVEL", "loud")],
            "OTEL_LOG_LEVEL",
            "none, error, warn, info, debug or trace",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_TIMEOUT", "99999999999")],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "milliseconds from 0 (no limit) to 3600000",
        ),
    ] {
        let error = start_up_error(&pairs);
        assert!(
            error.contains(&format!("invalid {variable}=")),
            "{pairs:?}: {error}"
        );
        assert!(error.contains(says), "{pairs:?}: {error}");
    }
}

/// An `https` endpoint needs the `tls` feature (without it, it is a start-up
/// error that says so).
#[cfg(feature = "tls")]
#[test]
fn insecure_applies_to_grpc_endpoints_without_a_scheme() {
    for (insecure, scheme) in [("true", "http"), ("false", "https"), ("", "https")] {
        let env = telltale_core::config::Env::from_pairs([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_INSECURE", insecure),
        ]);
        let builder = telltale_telemetry::Telemetry::builder().env(&env).unwrap();
        let debug = format!("{builder:?}");
        assert!(
            debug.contains(&format!("endpoint: \"{scheme}://127.0.0.1:4317\"")),
            "{debug}"
        );
    }
    // HTTP endpoints keep needing a scheme.
    let error = start_up_error(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert!(
        error.contains("invalid OTEL_EXPORTER_OTLP_ENDPOINT="),
        "{error}"
    );
}
