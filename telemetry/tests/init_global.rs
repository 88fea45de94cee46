//! `init()` and global installation. One global install per process: the
//! in-process test uses `from_env_source(...).install()`, and `init()` itself
//! (which reads the real process environment) runs in child processes of
//! this test binary, started with `Command::env`.

use std::collections::HashMap;
use std::process::Command;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use telltale_core::config::Env;
use telltale_telemetry::{InitError, Telemetry};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const CHILD: &str = "TELLTALE_TEST_CHILD";

#[test]
fn init_installs_subscriber_tracer_provider_and_propagators() {
    let guard = Telemetry::from_env_source(&Env::from_pairs([
        ("OTEL_SERVICE_NAME", "global-svc"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci"),
        ("TELLTALE_LOG_FORMAT", "none"),
        ("TELLTALE_FLIGHT_RECORDER_CAPACITY", "16"),
    ]))
    .unwrap()
    .install()
    .unwrap();
    let recorder = guard.flight_recorder().unwrap().clone();

    let span = tracing::info_span!("global-span", correlation_id = "g-1");
    let mut headers = HashMap::new();
    span.in_scope(|| {
        let cx = tracing::Span::current().context();
        let cx = cx.with_baggage([opentelemetry::KeyValue::new("tenant", "t1")]);
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
    });
    let trace_id = span.context().span().span_context().trace_id();
    drop(span);

    // Both W3C propagators are installed.
    assert!(
        headers["traceparent"].contains(&trace_id.to_string()),
        "{headers:?}"
    );
    assert_eq!(headers["baggage"], "tenant=t1");
    let extracted = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&headers);
    assert_eq!(extracted.span().span_context().trace_id(), trace_id);

    let spans = recorder.trace(trace_id);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].service_name(), Some("global-svc"));
    assert_eq!(recorder.by_correlation_id("g-1").len(), 1);

    // The global tracer provider is ours too.
    use opentelemetry::trace::{Tracer, TracerProvider};
    let id = opentelemetry::global::tracer_provider()
        .tracer("direct")
        .in_span("direct-span", |cx| cx.span().span_context().trace_id());
    assert_eq!(recorder.trace(id)[0].name(), "direct-span");

    // A second install is refused.
    let again = Telemetry::builder().build().unwrap().install();
    assert!(matches!(again, Err(InitError::AlreadyInstalled)));
    guard.shutdown().unwrap();
}

/// Runs in a child process only: `init()` from the real environment.
#[test]
fn child_init() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    match telltale_telemetry::init() {
        Ok(guard) => {
            tracing::info_span!("child-span", correlation_id = "c-1").in_scope(|| {
                tracing::info!(answer = 42, "from the child");
            });
            guard.shutdown().unwrap();
        }
        Err(e) => println!("INIT ERROR: {e}"),
    }
}

fn run_child(env: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_init", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    for (k, v) in env {
        command.env(k, v);
    }
    // Variables of the parent that would change the outcome.
    for name in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SDK_DISABLED",
        "RUST_LOG",
    ] {
        if !env.iter().any(|(k, _)| *k == name) {
            command.env_remove(name);
        }
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn init_reads_the_process_environment() {
    let stdout = run_child(&[
        ("OTEL_SERVICE_NAME", "child-svc"),
        ("TELLTALE_LOG_FORMAT", "json"),
        ("OTEL_TRACES_EXPORTER", "console"),
    ]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let log = lines
        .iter()
        .find(|l| l["message"] == "from the child")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(log["service.name"], "child-svc");
    assert_eq!(log["answer"], 42);
    assert_eq!(log["correlation_id"], "c-1");
    // The stdout exporter wrote the span, in the log lines' format, with the
    // same trace ID.
    let span = lines
        .iter()
        .find(|l| l["message"] == "child-span" && l["target"] == "telltale::span")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(span["trace_id"], log["trace_id"]);
    assert_eq!(span["service.name"], "child-svc");
    assert_eq!(span["correlation_id"], "c-1");
}

#[test]
fn init_fails_on_an_invalid_variable_naming_it() {
    let stdout = run_child(&[("OTEL_TRACES_SAMPLER", "sometimes")]);
    assert!(
        stdout.contains(
            "INIT ERROR: telemetry configuration: invalid OTEL_TRACES_SAMPLER=\"sometimes\" at position 1"
        ),
        "{stdout}"
    );
    let stdout = run_child(&[("TELLTALE_EXPORT_QUEUE_SIZE", "12x")]);
    assert!(
        stdout.contains("invalid TELLTALE_EXPORT_QUEUE_SIZE=\"12x\" at position 3"),
        "{stdout}"
    );
}
