//! The demo's log lines with `TELLTALE_LOG_FORMAT=ecs` (every service's
//! lines, forwarded to the demo's stdout) against the ECS field definitions
//! telltale-telemetry's tests use (`telemetry/tests/data/ecs_fields.tsv`,
//! from elastic/ecs `generated/ecs/ecs_flat.yml`), and with
//! `TELLTALE_LOG_FORMAT=json` against the OpenTelemetry profile's schema.

#[path = "../../telemetry/tests/support/log_schema.rs"]
mod log_schema;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use log_schema::{EcsSchema, check_otel_line};

/// Runs the short demo with `TELLTALE_LOG_FORMAT=format` and returns the log
/// lines of its stdout (the lines that are JSON objects; the rest is the
/// demo's own report).
fn demo_log_lines(format: &str) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    cmd.arg("--short")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("OTEL_") || key.starts_with("TELLTALE_") || key == "RUST_LOG" {
            cmd.env_remove(&*key);
        }
    }
    cmd.env("TELLTALE_LOG_FORMAT", format);
    let started = Instant::now();
    let out = cmd.output().expect("the demo runs");
    assert!(
        out.status.success(),
        "demo failed after {:?}:\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    String::from_utf8(out.stdout)
        .expect("UTF-8 stdout")
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_demo_line_is_an_ecs_document_and_an_otel_profile_line() {
    let schema = EcsSchema::load();
    let lines = demo_log_lines("ecs");
    assert!(lines.len() > 100, "{} lines", lines.len());
    let errors: Vec<String> = lines
        .iter()
        .filter_map(|l| schema.check_line(l).err())
        .collect();
    assert!(
        errors.is_empty(),
        "{} of {} lines rejected:\n{}",
        errors.len(),
        lines.len(),
        errors.join("\n")
    );
    // The breaker's transitions are among them.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"log.logger\":\"telltale::breaker\"")),
        "no breaker line"
    );

    let lines = demo_log_lines("json");
    assert!(lines.len() > 100, "{} lines", lines.len());
    let errors: Vec<String> = lines
        .iter()
        .filter_map(|l| check_otel_line(l).err())
        .collect();
    assert!(
        errors.is_empty(),
        "{} of {} lines off the schema:\n{}",
        errors.len(),
        lines.len(),
        errors.join("\n")
    );
}
