//! Runs the demo binary in its short mode and checks the report's facts (not
//! its timings): the breaker opened and closed again, every request is
//! accounted for, the slowest trace spans all four services under one
//! correlation ID, and injected faults were tagged.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs the demo with `args` and `env`, killing it after `limit`.
fn run(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "TELLTALE_CHAOS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "TELLTALE_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the demo binary starts");
    // Drain the pipes while waiting, so a chatty child never blocks.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the demo did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&err_reader.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

#[test]
fn short_demo_report_proves_the_story() {
    let path =
        std::env::temp_dir().join(format!("telltale-demo-report-{}.json", std::process::id()));
    let path_str = path.to_str().expect("UTF-8 temp path");
    let started = Instant::now();
    let out = run(
        &["--short", "--report-json", path_str],
        &[],
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!("short demo took {:?}", started.elapsed());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("report written"))
            .expect("valid JSON");
    let _ = std::fs::remove_file(&path);
    let context = format!("report:\n{report:#}\nstdout:\n{stdout}");

    // Every request accounted for.
    let load = &report["load"];
    let n = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
    assert!(n(&load["sent"]) > 50, "{context}");
    assert_eq!(
        n(&load["sent"]),
        n(&load["succeeded"]) + n(&load["failed"]) + n(&load["rejected"]),
        "{context}"
    );
    assert_eq!(load["accounted"], true, "{context}");
    // Each service saw every request that reached it (the external API
    // fewer: the breaker and bulkhead shed load in front of it).
    let checkout = n(&report["services"]["checkout"]["requests"]);
    assert_eq!(checkout, n(&load["sent"]), "{context}");
    assert!(
        n(&report["services"]["external-fraud-api"]["requests"]) < checkout,
        "{context}"
    );

    // The breaker opened and closed again.
    let breaker = &report["breaker"];
    assert_eq!(breaker["opened"], true, "{context}");
    assert_eq!(breaker["closed_again"], true, "{context}");
    assert_eq!(breaker["final_state"], "closed", "{context}");
    let transitions = breaker["transitions"].as_array().expect("transitions");
    assert!(
        transitions
            .iter()
            .any(|t| t["from"] == "half_open" && t["to"] == "closed"),
        "{context}"
    );
    assert!(n(&load["rejected"]) > 0, "{context}");

    // A trace spanning all four services shares one correlation ID.
    let trace = &report["slowest_trace"];
    let services: Vec<&str> = trace["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for s in [
        "checkout",
        "payment",
        "fraud-detection",
        "external-fraud-api",
    ] {
        assert!(
            services.contains(&s),
            "{s} missing from the slowest trace; {context}"
        );
    }
    assert_eq!(
        trace["correlation_ids"].as_array().map(Vec::len),
        Some(1),
        "{context}"
    );
    assert_eq!(
        trace["trace_ids"].as_array().map(Vec::len),
        Some(1),
        "{context}"
    );
    assert!(
        trace["correlation_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("order-")),
        "{context}"
    );

    // Injected faults were tagged, and none went untagged.
    let chaos = &report["chaos"];
    assert!(n(&chaos["tagged_spans"]) > 0, "{context}");
    assert!(
        n(&chaos["tagged_spans_by_service"]["external-fraud-api"]) > 0,
        "{context}"
    );
    assert_eq!(n(&chaos["untagged_error_responses"]), 0, "{context}");
    // The default incident injects 503s (most of them behind a delay that
    // the 250 ms timeout cuts first, so few arrive): counted by the status
    // the spans recorded, and nothing else.
    let statuses = chaos["injected_statuses"].as_object().expect("statuses");
    assert!(statuses.keys().all(|k| k == "503"), "{context}");
    assert_eq!(
        n(&chaos["injected_error_responses"]),
        statuses.values().map(n).sum::<u64>(),
        "{context}"
    );

    // Where the cascade started: the external API, first seen failing by
    // fraud-detection; the failure then reached each caller in call order.
    let cascade = &report["cascade"];
    assert_eq!(cascade["origin"], "external-fraud-api", "{context}");
    assert_eq!(
        cascade["first_failed_call"]["from"], "fraud-detection",
        "{context}"
    );
    let first: Vec<&str> = cascade["first_failure_by_service"]
        .as_array()
        .expect("first failures")
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert!(first.contains(&"checkout"), "{context}");
    assert!(
        stdout.contains("Cascade: started at external-fraud-api"),
        "{stdout}"
    );

    // The slowest trace: where the time went in call order (checkout's own
    // time first), CLIENT spans labelled with what they called.
    let parts: Vec<&str> = trace["time_in_call_order"]
        .as_array()
        .expect("time in call order")
        .iter()
        .filter_map(|p| p["part"].as_str())
        .collect();
    assert_eq!(parts.first(), Some(&"checkout"), "{context}");
    let spans = trace["spans"].as_array().expect("spans");
    let checkout_call = spans
        .iter()
        .find(|s| s["kind"] == "client" && s["service"] == "checkout")
        .expect("checkout's CLIENT span");
    assert_eq!(checkout_call["name"], "POST", "{context}");
    assert_eq!(checkout_call["target"], "payment /pay", "{context}");
    assert!(stdout.contains("checkout POST → payment /pay"), "{stdout}");
    assert!(
        spans
            .iter()
            .filter(|s| s["kind"] == "client")
            .all(|s| s["target"].is_string()),
        "{context}"
    );

    // The dependency map, from CLIENT spans, in call order.
    let deps = report["dependencies"].as_array().expect("dependencies");
    let edges: Vec<(&str, &str, &str)> = deps
        .iter()
        .map(|d| {
            (
                d["from"].as_str().unwrap_or(""),
                d["to"].as_str().unwrap_or(""),
                d["protocol"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("checkout", "payment", "http"),
            ("payment", "fraud-detection", "grpc"),
            ("fraud-detection", "external-fraud-api", "http"),
        ],
        "{context}"
    );

    // The human report has the same facts.
    assert!(stdout.contains("every request accounted for"), "{stdout}");
    assert!(stdout.contains("half_open → closed"), "{stdout}");
}

#[test]
fn injected_statuses_are_counted_whatever_the_status() {
    let path = std::env::temp_dir().join(format!("telltale-demo-500-{}.json", std::process::id()));
    let path_str = path.to_str().expect("UTF-8 temp path");
    let out = run(
        &["--short", "--report-json", path_str],
        &[("TELLTALE_CHAOS", "in: 50% status(500)")],
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}
{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("report written"))
            .expect("valid JSON");
    let _ = std::fs::remove_file(&path);
    let chaos = &report["chaos"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    assert!(n(&chaos["injected_statuses"]["500"]) > 0, "{report:#}");
    assert!(
        chaos["injected_statuses"].get("503").is_none(),
        "{report:#}"
    );
    assert_eq!(n(&chaos["untagged_error_responses"]), 0, "{report:#}");
    assert!(
        n(&chaos["failed_checkouts"]["caused_by_injected_faults"]) > 0,
        "{report:#}"
    );
    assert_eq!(
        report["cascade"]["origin"], "external-fraud-api",
        "{report:#}"
    );
    assert!(
        stdout.contains("injected error responses at external-fraud-api: "),
        "{stdout}"
    );
    assert!(stdout.contains("(500: "), "{stdout}");
}

#[test]
fn bad_chaos_rules_fail_before_anything_starts() {
    let out = run(
        &["--short"],
        &[("TELLTALE_CHAOS", "in GET /x: 30% delay(200ms..80)")],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TELLTALE_CHAOS"), "{stderr}");
    assert!(stderr.contains("expected a duration unit"), "{stderr}");
}

#[test]
fn a_child_that_cannot_start_is_reported_with_its_stderr() {
    let out = run(
        &["--short"],
        &[("OTEL_TRACES_SAMPLER", "sometimes")],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("external-fraud-api failed to start"),
        "{stderr}"
    );
    assert!(stderr.contains("OTEL_TRACES_SAMPLER"), "{stderr}");
}
