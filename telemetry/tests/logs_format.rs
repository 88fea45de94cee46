//! Log lines: golden files per profile (timestamps and IDs normalized), and
//! every line parsed with serde_json and checked against the exported spans.

mod support;

use std::path::PathBuf;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use support::otel::Captured;
use telltale_core::correlation::{self, CorrelationId};
use telltale_telemetry::{FlightRecorder, LogFormat, Profile, TRUNCATION_MARKER, Telemetry};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const MAX_FIELD_LEN: usize = 24;

/// Builds a pipeline (flight recorder, no exporter), runs the scenario in it
/// and returns the raw log text and the recorder.
fn run(format: LogFormat) -> (String, FlightRecorder) {
    let logs = Captured::default();
    let telemetry = Telemetry::builder()
        .service_name("golden-svc")
        .log_format(format)
        .max_field_len(MAX_FIELD_LEN)
        .writer(logs.clone())
        .filter("debug")
        .trace_filter("debug")
        .build()
        .unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    telltale_testkit::with_default(telemetry.dispatch(), scenario);
    (logs.text(), recorder)
}

fn scenario() {
    {
        let outer = tracing::info_span!(
            "request",
            otel.kind = "server",
            http.route = "/orders/{id}",
            correlation_id = "corr-42",
            user = "ada"
        );
        let _outer = outer.enter();
        tracing::info!(step = 1, "request started");
        let inner = tracing::debug_span!("db", db.system = "postgresql", user = "bob");
        let _inner = inner.enter();
        tracing::debug!(rows = 3, ok = true, ratio = 0.5, "loaded order");
        tracing::warn!(
            evil = "\x1b[31mred\x1b[0m\u{7f}\u{9b}",
            "ansi \x1b[2J msg\nnext"
        );
        tracing::error!(big = %"x".repeat(100), "long field");
    }
    let id: CorrelationId = "from-task-local".parse().unwrap();
    correlation::sync_scope(id, || tracing::info!("outside any span"));
}

fn ids(recorder: &FlightRecorder) -> Vec<(String, &'static str)> {
    let spans = recorder.recent(10);
    let request = spans.iter().find(|s| s.name() == "request").unwrap();
    let db = spans.iter().find(|s| s.name() == "db").unwrap();
    vec![
        (request.trace_id().to_string(), "<trace-id>"),
        (request.span_id().to_string(), "<request-span-id>"),
        (db.span_id().to_string(), "<db-span-id>"),
    ]
}

fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("TELLTALE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with TELLTALE_UPDATE_GOLDEN=1)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "golden file {name} differs");
}

#[test]
fn golden_opentelemetry_profile() {
    let (text, recorder) = run(LogFormat::Json(Profile::OpenTelemetry));
    check_golden(
        "otel.jsonl",
        &support::otel::normalize_lines(&text, &ids(&recorder)),
    );
}

#[test]
fn golden_elastic_common_schema_profile() {
    let (text, recorder) = run(LogFormat::Json(Profile::ElasticCommonSchema));
    check_golden(
        "ecs.jsonl",
        &support::otel::normalize_lines(&text, &ids(&recorder)),
    );
}

#[test]
fn golden_pretty_format() {
    let (text, recorder) = run(LogFormat::Pretty);
    check_golden(
        "pretty.txt",
        &support::otel::normalize_lines(&text, &ids(&recorder)),
    );
}

#[test]
fn every_line_is_json_and_ids_match_the_exported_spans() {
    let (text, recorder) = run(LogFormat::Json(Profile::OpenTelemetry));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    let spans = recorder.recent(10);
    let request = spans.iter().find(|s| s.name() == "request").unwrap();
    let db = spans.iter().find(|s| s.name() == "db").unwrap();
    assert_eq!(db.parent_span_id(), Some(request.span_id()));

    let started = &lines[0];
    assert_eq!(started["trace_id"], request.trace_id().to_string());
    assert_eq!(started["span_id"], request.span_id().to_string());
    for line in &lines[1..4] {
        assert_eq!(line["trace_id"], db.trace_id().to_string());
        assert_eq!(line["span_id"], db.span_id().to_string());
        assert_eq!(line["correlation_id"], "corr-42");
        assert_eq!(line["service.name"], "golden-svc");
        // Inner span fields win over outer ones; no nested span objects.
        assert_eq!(line["user"], "bob");
        assert_eq!(line["http.route"], "/orders/{id}");
        assert_eq!(line["db.system"], "postgresql");
        assert!(line.get("span").is_none() && line.get("spans").is_none());
        assert!(line.get("otel.kind").is_none());
    }
    assert_eq!(lines[1]["rows"], 3);
    assert_eq!(lines[1]["ok"], true);
    assert_eq!(lines[1]["severity_number"], 5);
    // Control characters survive as escapes only.
    assert_eq!(lines[2]["message"], "ansi \x1b[2J msg\nnext");
    assert_eq!(lines[2]["evil"], "\x1b[31mred\x1b[0m\u{7f}\u{9b}");
    assert!(
        !text.contains(['\x1b', '\u{7f}', '\u{9b}']),
        "raw control characters in {text:?}"
    );
    assert_eq!(lines[2]["level"], "WARN");
    // Oversized values are cut with a marker.
    assert_eq!(
        lines[3]["big"],
        format!("{}{TRUNCATION_MARKER}", "x".repeat(MAX_FIELD_LEN))
    );
    // Outside any span: no IDs, the correlation ID from the task-local.
    assert!(lines[4].get("trace_id").is_none());
    assert_eq!(lines[4]["correlation_id"], "from-task-local");
    // The span carries the correlation ID as an attribute, for the recorder.
    assert_eq!(recorder.by_correlation_id("corr-42").len(), 2);
}

#[test]
fn trace_id_follows_an_incoming_traceparent() {
    let logs = Captured::default();
    let telemetry = Telemetry::builder()
        .log_format(LogFormat::Json(Profile::OpenTelemetry))
        .writer(logs.clone())
        .build()
        .unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    let remote_trace = "0af7651916cd43dd8448eb211c80319c";
    let remote_parent = "b7ad6b7169203331";
    let headers = std::collections::HashMap::from([(
        "traceparent".to_owned(),
        format!("00-{remote_trace}-{remote_parent}-01"),
    )]);
    let parent = TraceContextPropagator::new().extract(&headers);
    telltale_testkit::with_default(telemetry.dispatch(), || {
        let span = tracing::info_span!("incoming");
        span.set_parent(parent).unwrap();
        span.in_scope(|| tracing::info!("inside the remote trace"));
    });
    let line: serde_json::Value = serde_json::from_str(logs.text().trim()).unwrap();
    let exported = &recorder.recent(1)[0];
    assert_eq!(exported.trace_id().to_string(), remote_trace);
    assert_eq!(
        exported.parent_span_id().unwrap().to_string(),
        remote_parent
    );
    assert_eq!(line["trace_id"], remote_trace);
    assert_eq!(line["span_id"], exported.span_id().to_string());
}

#[test]
fn disabled_sdk_still_logs_without_ids() {
    let logs = Captured::default();
    let telemetry = Telemetry::builder()
        .sdk_disabled(true)
        .log_format(LogFormat::Json(Profile::ElasticCommonSchema))
        .writer(logs.clone())
        .build()
        .unwrap();
    assert!(telemetry.flight_recorder().is_none());
    telltale_testkit::with_default(telemetry.dispatch(), || {
        tracing::info_span!("s", k = "v").in_scope(|| tracing::info!("hello"));
    });
    let line: serde_json::Value = serde_json::from_str(logs.text().trim()).unwrap();
    assert_eq!(line["message"], "hello");
    assert_eq!(line["telltale.k"], "v");
    assert!(line.get("trace.id").is_none());
}

#[test]
fn pretty_colors_only_the_level_and_escapes_everything_else() {
    let logs = Captured::default();
    let telemetry = Telemetry::builder()
        .log_format(LogFormat::Pretty)
        .ansi(true)
        .writer(logs.clone())
        .build()
        .unwrap();
    telltale_testkit::with_default(telemetry.dispatch(), || {
        tracing::info!(evil = "\x1b[31m", "hi \x1b[2J");
    });
    let text = logs.text();
    assert!(text.contains("\x1b[32m INFO\x1b[0m "), "{text:?}");
    assert_eq!(text.matches('\x1b').count(), 2, "{text:?}");
    assert!(
        text.contains(r#"hi \u001b[2J evil="\u001b[31m""#),
        "{text:?}"
    );
}
