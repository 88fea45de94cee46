//! The W3C trace-context conformance suite (`test/test.py` of
//! w3c/trace-context, vendored unchanged in `tests/w3c-trace-context/test/`)
//! against a test service built on telltale, as the suite's README describes
//! it: the service receives a POST whose body is a JSON array of
//! `{"url", "arguments"}` and, for each element, POSTs `arguments` to `url`.
//!
//! The service is what a user builds: an axum router behind `ServerStack`,
//! calling out through hyper's client behind `ClientStack`, with telemetry
//! installed as `init()` does (telltale's W3C Trace Context Level 2
//! propagator and W3C Baggage). It runs in this process on 127.0.0.1:0; the
//! harness (Debian's `/usr/bin/python3` with `python3-aiohttp`, installed by
//! `scripts/install-test-deps`) listens on a free port of its own.
//!
//! This test binary installs telemetry globally once (its own process).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use telltale::stack::{ClientStack, ClientStackService, ServerStack};
use tokio::process::Command;
use tower::{Layer, ServiceExt};

mod support;

/// The Python that has Debian's `python3-aiohttp` (a pyenv or venv `python3`
/// earlier in `PATH` would not).
const PYTHON: &str = "/usr/bin/python3";

/// The longest one run of the suite may take: 40 cases of at most a few
/// requests each, under a second on an idle machine.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// The cases of the vendored suite that check Level 1's `tenant@system` key
/// grammar, each with a key it refuses that Level 2 allows. Trace Context
/// Level 2 made `@` an ordinary key character (`key = ( lcalpha / DIGIT )
/// 0*255 ( keychar )`): `foo@`, `foo@@bar`, 242 characters before `@` and 15
/// after it are keys, and telltale sends them on. Upstream corrected these
/// two cases after the vendored commit (w3c/trace-context issue 583, pull
/// request 584); here they fail in the harness's own Level 1 parser on
/// exactly that key, which is asserted, and every other case must pass.
fn level1_key_grammar_cases() -> [(&'static str, String); 2] {
    [
        (
            "test_tracestate_key_illegal_vendor_format",
            "illegal key-value format 'foo@=1'".to_owned(),
        ),
        (
            "test_tracestate_key_length_limit",
            format!("illegal key-value format '{}@v=1'", "t".repeat(242)),
        ),
    ]
}

type Outbound = ClientStackService<Client<HttpConnector, Full<Bytes>>>;

/// `POST /test`: for each `{"url", "arguments"}` of the body, a POST of
/// `arguments` (JSON) to `url` through `ClientStack`, one after the other.
async fn test_endpoint(State(client): State<Outbound>, body: Bytes) -> &'static str {
    let Ok(serde_json::Value::Array(actions)) = serde_json::from_slice(&body) else {
        return "null";
    };
    for action in actions {
        let Some(url) = action.get("url").and_then(|u| u.as_str()) else {
            continue;
        };
        let arguments = action
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| serde_json::json!([]));
        let Ok(req) = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(arguments.to_string())))
        else {
            continue;
        };
        if let Ok(res) = client.clone().oneshot(req).await {
            let _ = res.into_body().collect().await;
        }
    }
    "null"
}

/// The test service on a free 127.0.0.1 port.
async fn start_service() -> SocketAddr {
    support::recorder("w3c-suite");
    let outbound = ClientStack::new()
        .layer()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let app = Router::new()
        .route("/test", post(test_endpoint))
        .with_state(outbound)
        .layer(ServerStack::new().layer());
    support::serve(app).await
}

/// How each case of one run ended, from unittest's verbose report.
#[derive(Debug)]
struct Run {
    /// `(case, outcome)`: outcome is `ok`, `FAIL`, `ERROR` or `skipped ...`.
    cases: Vec<(String, String)>,
    exit_ok: bool,
    report: String,
}

impl Run {
    fn outcome(&self, case: &str) -> Option<&str> {
        self.cases
            .iter()
            .find(|(c, _)| c == case)
            .map(|(_, o)| o.as_str())
    }

    fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.cases.iter().filter(|(_, o)| pred(o)).count()
    }

    /// The traceback unittest printed for `case`.
    fn traceback(&self, case: &str) -> &str {
        let start = self
            .report
            .find(&format!(": {case} ("))
            .unwrap_or(self.report.len());
        let rest = &self.report[start..];
        let end = rest[1..].find("\n=====").map_or(rest.len(), |i| i + 1);
        &rest[..end]
    }
}

/// unittest's verbosity-2 lines: `test_x (__main__.Class.test_x)`, an
/// optional docstring line, then `... ok` (or `FAIL`, `ERROR`, `skipped`).
fn parse_report(report: &str) -> Vec<(String, String)> {
    let mut cases = Vec::new();
    let mut current: Option<String> = None;
    for line in report.lines() {
        if line.starts_with("test_") && line.contains(" (__main__.") {
            current = line.split(' ').next().map(str::to_owned);
        }
        if let Some(i) = line.rfind(" ... ") {
            if let Some(case) = current.take() {
                cases.push((case, line[i + 5..].trim().to_owned()));
            }
        }
    }
    cases
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs the suite at `strict_level` against the service at `service`.
async fn run_suite(service: SocketAddr, strict_level: u8) -> Run {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/w3c-trace-context/test");
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run scripts/install-test-deps"
    );
    // The harness binds its own port; a port taken between our probe and
    // its bind is retried.
    for _ in 0..3 {
        let child = Command::new(PYTHON)
            .arg("test.py")
            .arg(format!("http://{service}/test"))
            .current_dir(&suite)
            .env("STRICT_LEVEL", strict_level.to_string())
            .env("HARNESS_HOST", "127.0.0.1")
            .env("HARNESS_PORT", free_port().to_string())
            .env("HARNESS_TIMEOUT", "10")
            .env_remove("HARNESS_DEBUG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the suite starts (run scripts/install-test-deps)");
        let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
            .await
            .expect("the suite finishes in time")
            .expect("the suite's output");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !report.contains("No module named"),
            "{PYTHON} lacks a module the suite needs (run scripts/install-test-deps):\n{report}"
        );
        if report.to_lowercase().contains("address already in use") {
            continue;
        }
        // Shown with --nocapture (and by libtest when a test fails).
        eprintln!("STRICT_LEVEL={strict_level}:\n{report}");
        return Run {
            cases: parse_report(&report),
            exit_ok: out.status.success(),
            report,
        };
    }
    panic!("the harness found no free port in 3 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_of_the_w3c_suite_passes_at_level_1() {
    let service = start_service().await;
    let run = run_suite(service, 1).await;
    assert_eq!(run.cases.len(), 40, "{}", run.report);
    assert_eq!(run.count(|o| o == "ok"), 34, "{}", run.report);
    assert_eq!(run.count(|o| o.starts_with("skipped")), 6, "{}", run.report);
    assert!(run.exit_ok, "{}", run.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_of_the_w3c_suite_passes_at_strict_level_2_except_level_1_key_grammar() {
    let service = start_service().await;
    let run = run_suite(service, 2).await;
    assert_eq!(run.cases.len(), 40, "{}", run.report);
    let level1 = level1_key_grammar_cases();
    for (case, outcome) in &run.cases {
        if level1.iter().any(|(c, _)| c == case) {
            continue;
        }
        assert_eq!(outcome, "ok", "{case}:\n{}", run.report);
    }
    for (case, refused) in &level1 {
        assert_eq!(run.outcome(case), Some("ERROR"), "{case}:\n{}", run.report);
        let traceback = run.traceback(case);
        assert!(
            traceback.contains(refused),
            "{case} must fail only on a key Level 2 allows ({refused}):\n{traceback}"
        );
    }
    assert_eq!(run.count(|o| o == "ok"), 38, "{}", run.report);
}
