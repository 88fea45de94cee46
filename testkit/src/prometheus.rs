//! A real Prometheus for tests (feature `prometheus`): a Prometheus server
//! run as a child process on loopback scraping the test's services
//! ([`Prometheus`]), `promtool check metrics` ([`promtool_check_metrics`]),
//! a real HTTP client, and exposition helpers. Both binaries come from
//! Debian's `prometheus` package (`scripts/install-test-deps`).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Upper bound for every wait in these tests.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// A real HTTP/1 client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client with a small connection pool.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GETs `http://{addr}{path_and_query}` and returns the status and the body text.
pub async fn get(
    client: &HttpClient,
    addr: SocketAddr,
    path_and_query: &str,
) -> (StatusCode, String) {
    let req = Request::get(format!("http://{addr}{path_and_query}"))
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let res = client.request(req).await.expect("request sent");
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("body read")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Serves `app` on 127.0.0.1:0 in the background; returns the bound address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server");
    });
    addr
}

/// Sample lines of `name` in a text exposition (exact metric name, any labels), sorted.
pub fn samples(text: &str, name: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

/// The value of the one sample of `name` whose labels contain all of `labels`
/// (`key="value"` fragments), or `None`.
pub fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let matching: Vec<f64> = samples(text, name)
        .iter()
        .filter(|l| labels.iter().all(|frag| l.contains(frag)))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {labels:?} matches several samples: {matching:?}"
    );
    matching.first().copied()
}

/// Percent-encodes a query-string value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Finds `name` in the directories of `path` (a `PATH`-style list), or explains
/// how to install it.
pub fn find_binary_in(name: &str, path: &std::ffi::OsStr) -> Result<PathBuf, String> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "`{name}` was not found on PATH. These tests run a real Prometheus: \
                 run scripts/install-test-deps (as root, or with sudo) to install Debian's \
                 `prometheus` package, which provides `prometheus` and `promtool`."
            )
        })
}

fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_binary_in(name, &path).unwrap_or_else(|message| panic!("{message}"))
}

/// Runs `promtool check metrics` on an exposition; returns its combined output
/// and whether it exited successfully.
pub fn promtool_check_metrics(exposition: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(binary("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A Prometheus server run as a child process with a temporary configuration and
/// storage directory, scraping `targets` every second. Killed on drop.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// The address of its HTTP API.
    pub addr: SocketAddr,
    client: HttpClient,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job `telltale`, path `/metrics`) and
    /// waits until it is ready.
    pub async fn start(targets: &[SocketAddr]) -> Prometheus {
        Self::start_with_flags(targets, &[]).await
    }

    /// [`start`](Self::start) with extra command-line flags, such as
    /// `--enable-feature=exemplar-storage`.
    pub async fn start_with_flags(targets: &[SocketAddr], flags: &[&str]) -> Prometheus {
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: telltale\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    \
             metrics_path: /metrics\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        Self::start_configured(flags, MAX_WAIT, |dir| {
            let path = dir.join("prometheus.yml");
            std::fs::write(&path, config).expect("write config");
            path
        })
        .await
    }

    /// Starts Prometheus with a configuration of the caller's: `configure`
    /// is given the server's temporary directory (removed on drop; its
    /// storage is `data/` there) and returns the configuration file it wrote,
    /// with any file that refers to. Waits at most `ready_within` until the
    /// server is ready.
    pub async fn start_configured(
        flags: &[&str],
        ready_within: Duration,
        configure: impl FnOnce(&Path) -> PathBuf,
    ) -> Prometheus {
        let bin = binary("prometheus");
        let dir = std::env::temp_dir().join(format!(
            "telltale-prometheus-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let config = configure(&dir);
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .args(flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut prom = Prometheus {
            child,
            dir,
            addr,
            client: client(),
        };
        prom.wait_ready(ready_within).await;
        prom
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("prometheus exited early with {status}:\n{}", self.log());
            }
            let req = Request::get(format!("http://{}/-/ready", self.addr))
                .body(Full::new(Bytes::new()))
                .unwrap();
            if let Ok(Ok(res)) =
                tokio::time::timeout(Duration::from_secs(2), self.client.request(req)).await
            {
                if res.status() == StatusCode::OK {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs an instant PromQL query; returns `data.result` as (labels, value) pairs.
    /// Panics when Prometheus refuses the query.
    pub async fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.try_query(promql)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Runs an instant PromQL query whose result is an instant vector;
    /// returns `data.result` as (labels, value) pairs, or Prometheus's
    /// answer when it refuses the query (a parse error, a wrong type).
    pub async fn try_query(
        &self,
        promql: &str,
    ) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
        let (status, body) = get(
            &self.client,
            self.addr,
            &format!("/api/v1/query?query={}", encode(promql)),
        )
        .await;
        if status != StatusCode::OK {
            return Err(format!("query `{promql}`: HTTP {status}: {body}"));
        }
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("query `{promql}`: {e}: {body}"))?;
        if json["status"] != "success" || json["data"]["resultType"] != "vector" {
            return Err(format!("query `{promql}`: {body}"));
        }
        Ok(json["data"]["result"]
            .as_array()
            .expect("vector result")
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                let v = r["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                (labels, v)
            })
            .collect())
    }

    /// Runs a GET against the server's HTTP API (`/api/v1/...`) and returns
    /// the JSON answer's `data`, or the answer when it is not a success.
    pub async fn api(&self, path_and_query: &str) -> Result<serde_json::Value, String> {
        let (status, body) = get(&self.client, self.addr, path_and_query).await;
        if status != StatusCode::OK {
            return Err(format!("{path_and_query}: HTTP {status}: {body}"));
        }
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{path_and_query}: {e}: {body}"))?;
        if json["status"] != "success" {
            return Err(format!("{path_and_query}: {body}"));
        }
        Ok(json["data"].clone())
    }

    /// Polls `promql` until `done` accepts the result (at most [`MAX_WAIT`]);
    /// returns the accepted result, or panics with the last one.
    pub async fn wait_for(
        &self,
        promql: &str,
        done: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
    ) -> Vec<(BTreeMap<String, String>, f64)> {
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let result = self.query(promql).await;
            if done(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "`{promql}` did not reach the expected answer within {MAX_WAIT:?}; last: {result:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Turns a query result into `label value -> sample value`, keyed by `label`.
pub fn by_label(result: &[(BTreeMap<String, String>, f64)], label: &str) -> BTreeMap<String, f64> {
    result
        .iter()
        .map(|(labels, v)| (labels.get(label).cloned().unwrap_or_default(), *v))
        .collect()
}
