//! The README's quick start works pasted: `examples/quickstart.rs` is the
//! README's block byte for byte, and the built example, run as a user would
//! (`ADDR` and `TELLTALE_DEBUG_ADDR` on free ports), says where to look and
//! shows a request on its debug page (over HTTP and in headless Chromium),
//! in its request log line and in `/metrics`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first ```` ```rust ```` block after the `## Quick start` heading.
fn readme_quickstart() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme
        .find("## Quick start")
        .expect("a Quick start section")..];
    let start = section.find("```rust").expect("a rust block");
    let code = &section[start..];
    let code = &code[code.find('\n').unwrap() + 1..];
    code[..code.find("\n```").expect("the block ends") + 1].to_owned()
}

#[test]
fn the_example_is_the_readme_block_byte_for_byte() {
    let example = std::fs::read_to_string(root().join("examples/quickstart.rs")).unwrap();
    assert_eq!(
        readme_quickstart(),
        example,
        "examples/quickstart.rs and the README's quick start differ: copy one onto the other"
    );
}

#[test]
fn the_readme_names_the_dependencies_the_code_uses() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## Quick start").unwrap()..];
    let toml = &section[section.find("```toml").expect("Cargo.toml lines")..];
    let toml = &toml[..toml[3..].find("```").unwrap()];
    assert!(toml.contains("[dependencies]"));
    assert!(
        toml.contains("axum = \"0.8\""),
        "the axum the crate builds with"
    );
    assert!(toml.contains("telltale = "));
    // #[tokio::main] needs macros + rt-multi-thread; TcpListener needs net.
    for feature in ["\"macros\"", "\"rt-multi-thread\"", "\"net\""] {
        assert!(toml.contains(feature), "tokio feature {feature}");
    }
    let code = readme_quickstart();
    for used in ["axum::", "telltale::", "tokio::"] {
        assert!(code.contains(used));
    }
}

/// Kills the example when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example_binary() -> PathBuf {
    // The features this test was built with (`--all-features` in
    // scripts/test), so the example reuses the same build of the crate.
    let mut features = vec!["full"];
    if cfg!(feature = "reqwest") {
        features.push("reqwest");
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--example", "quickstart", "--quiet", "--features"])
        .arg(features.join(","))
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the quick start builds");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("debug/examples/quickstart")
}

fn start(binary: &Path) -> (Running, mpsc::Receiver<String>) {
    let mut child = Command::new(binary)
        .env("ADDR", "127.0.0.1:0")
        .env("TELLTALE_DEBUG_ADDR", "127.0.0.1:0")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("TELLTALE_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the example starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Running(child), rx)
}

/// Lines until `done` says enough, within `limit`.
fn read_until(
    rx: &mpsc::Receiver<String>,
    lines: &mut Vec<String>,
    limit: Duration,
    done: impl Fn(&[String]) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while !done(lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => return false,
        }
    }
    true
}

fn after<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| l.strip_prefix(prefix))
}

async fn get(url: &str, correlation: Option<&str>) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(url);
    if let Some(id) = correlation {
        req = req.header("x-correlation-id", id);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_shows_a_request_on_its_debug_page_its_log_and_metrics() {
    let binary = tokio::task::spawn_blocking(example_binary).await.unwrap();
    let (_running, rx) = start(&binary);
    let mut lines = Vec::new();
    let told = read_until(&rx, &mut lines, Duration::from_secs(60), |l| {
        after(l, "debug page ").is_some()
    });
    assert!(
        told,
        "the service says where to look; stdout:\n{}",
        lines.join("\n")
    );
    let serving = after(&lines, "serving ")
        .expect("the service URL")
        .to_owned();
    let metrics_url = after(&lines, "metrics ")
        .expect("the /metrics URL")
        .to_owned();
    let page = after(&lines, "debug page ").unwrap().to_owned();
    assert!(
        serving.ends_with("/orders/42")
            && metrics_url.ends_with("/metrics")
            && page.starts_with("http://127.0.0.1:")
    );

    let (status, body) = get(&serving, Some("readme-order-42")).await;
    assert_eq!((status, body.as_str()), (200, "order"));

    // The debug page: the trace, found by its correlation ID (bounded wait:
    // the span ends with the response body).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page_html) = get(&format!("{page}?q=readme-order-42"), None).await;
        if page_html.contains("data-correlation-id=\"readme-order-42\"") {
            assert!(page_html.contains("GET /orders/{id}"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request never showed on the debug page:\n{page_html}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The same page in a browser: the request's trace, and its route's RED row.
    let dom = support::dump_dom(&format!("{page}?q=readme-order-42")).await;
    assert!(
        dom.contains("data-correlation-id=\"readme-order-42\""),
        "{dom}"
    );
    assert!(dom.contains("data-route=\"GET /orders/{id}\""), "{dom}");
    let (_, red) = get(&format!("{page}api/red"), None).await;
    let red: serde_json::Value = serde_json::from_str(&red).unwrap();
    let route = red["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "GET /orders/{id}")
        .expect("RED for the route");
    assert_eq!(route["total_requests"], 1.0);

    // /metrics.
    let (status, text) = get(&metrics_url, None).await;
    assert_eq!(status, 200);
    assert!(
        text.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_count{")
                && l.contains("http_route=\"/orders/{id}\"")
                && l.ends_with(" 1")
        ),
        "{text}"
    );

    // The request log line (JSON, the default format).
    let logged = read_until(&rx, &mut lines, Duration::from_secs(10), |l| {
        l.iter()
            .any(|l| l.contains("\"readme-order-42\"") && l.contains("request finished"))
    });
    assert!(
        logged,
        "one log line for the request; stdout:\n{}",
        lines.join("\n")
    );
    let line = lines
        .iter()
        .find(|l| l.contains("\"readme-order-42\"") && l.contains("request finished"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["http.route"], "/orders/{id}");
    assert_eq!(v["http.response.status_code"], 200);
}
