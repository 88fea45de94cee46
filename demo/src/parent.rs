//! The parent process: starts the four services, drives the load and the
//! incident, collects what the services recorded and prints the report.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinSet;

use crate::report::{self, Collected, LoadSummary, Phase, ServiceData};
use crate::service::REJECTED_BY;
use crate::{BoxError, READY, Role, Settings};

/// Chaos of the steady phase: a little jitter now and then.
pub(crate) const STEADY_RULES: &str = "in GET /v1/score/*: 10% delay(10ms..40ms)";
/// Chaos of the incident (unless `TELLTALE_CHAOS` says otherwise): latency
/// jumps from tens of milliseconds to seconds, and some calls fail.
pub(crate) const INCIDENT_RULES: &str =
    "in GET /v1/score/*: 70% delay(1s..3s); 20% status(503, body=\"upstream overloaded\")";

/// Requests the load generator waits for before counting them as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

type AdminClient = Client<HttpConnector, Full<Bytes>>;

struct Proc {
    role: Role,
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    admin: u16,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// The child processes; killed and reaped by [`Fleet::shutdown`], and killed
/// on drop in any case (`kill_on_drop`).
#[derive(Default)]
struct Fleet {
    procs: Vec<Proc>,
}

impl Fleet {
    fn get(&self, role: Role) -> &Proc {
        self.procs
            .iter()
            .find(|p| p.role == role)
            .expect("every role is started before use")
    }

    /// Dead children, with their stderr.
    fn check_alive(&mut self) -> Result<(), BoxError> {
        for p in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(format!(
                    "{} exited unexpectedly ({status}){}",
                    p.role.name(),
                    stderr_tail(&p.stderr)
                )
                .into());
            }
        }
        Ok(())
    }

    /// Asks every child to exit (closes its stdin: it flushes its exporters
    /// and exits), kills those still running after a bound, and reaps all.
    async fn shutdown(&mut self, failed: bool) {
        for p in &mut self.procs {
            p.stdin.take();
        }
        for p in &mut self.procs {
            let status = match tokio::time::timeout(Duration::from_secs(8), p.child.wait()).await {
                Ok(Ok(status)) => Some(status),
                _ => {
                    let _ = p.child.kill().await;
                    None
                }
            };
            let bad = status.is_none_or(|s| !s.success());
            if failed || bad {
                let tail = stderr_tail(&p.stderr);
                if !tail.is_empty() || bad {
                    let how = status.map_or("killed".to_owned(), |s| s.to_string());
                    eprintln!("{} ({how}){tail}", p.role.name());
                }
            }
        }
        self.procs.clear();
    }
}

fn stderr_tail(lines: &Mutex<VecDeque<String>>) -> String {
    let lines = lines.lock().expect("not poisoned");
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("; its stderr ends with:");
    for l in lines.iter() {
        out.push_str("\n    ");
        out.push_str(l);
    }
    out
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts one service and waits for its `READY` line.
async fn start(
    role: Role,
    upstream: Option<String>,
    settings: &Settings,
) -> Result<Proc, BoxError> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the demo binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--role").arg(role.name());
    if let Some(up) = &upstream {
        cmd.arg("--upstream").arg(up);
    }
    // TELLTALE_LOG_FORMAT alone: the services use it as is.
    if settings.logs_flag || !settings.json_logs {
        cmd.arg("--logs")
            .arg(if settings.json_logs { "json" } else { "none" });
    }
    cmd.env("OTEL_SERVICE_NAME", role.name());
    if std::env::var_os("TELLTALE_SHUTDOWN_TIMEOUT").is_none() {
        cmd.env("TELLTALE_SHUTDOWN_TIMEOUT", "3s");
    }
    if role == Role::ExternalFraudApi {
        // The steady rules arm chaos; the incident replaces them at run time.
        cmd.env("TELLTALE_CHAOS", STEADY_RULES);
        if std::env::var_os("TELLTALE_ENV").is_none() {
            cmd.env("TELLTALE_ENV", "dev");
        }
        if std::env::var_os("TELLTALE_CHAOS_SEED").is_none() {
            cmd.env("TELLTALE_CHAOS_SEED", "42");
        }
    } else {
        // Chaos only where the story puts it.
        cmd.env_remove("TELLTALE_CHAOS");
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", role.name()))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");

    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let t = tail.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut t = t.lock().expect("not poisoned");
            if t.len() == 40 {
                t.pop_front();
            }
            t.push_back(line);
        }
    });

    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix(READY) {
                return Some(rest.trim().to_owned());
            }
            if settings.json_logs {
                println!("{line}");
            }
        }
        None
    })
    .await;
    let ready = match ready {
        Ok(Some(r)) => r,
        Ok(None) => {
            let status = child.wait().await.ok();
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(format!(
                "{} failed to start ({}){}",
                role.name(),
                status.map_or("unknown status".into(), |s| s.to_string()),
                stderr_tail(&tail)
            )
            .into());
        }
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!(
                "{} did not report its port within 30 s{}",
                role.name(),
                stderr_tail(&tail)
            )
            .into());
        }
    };
    let v: Value = serde_json::from_str(&ready)?;
    let port = v["port"].as_u64().ok_or("READY without a port")? as u16;
    let admin = v["admin"].as_u64().ok_or("READY without an admin port")? as u16;
    let json_logs = settings.json_logs;
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if json_logs {
                println!("{line}");
            }
        }
    });
    Ok(Proc {
        role,
        child,
        stdin,
        port,
        admin,
        stderr: tail,
    })
}

async fn fetch(
    client: &AdminClient,
    method: http::Method,
    url: &str,
    body: &str,
) -> Result<(u16, String), BoxError> {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_owned())))?;
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer within 10 s"))??;
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

async fn get_json(client: &AdminClient, url: &str) -> Result<Value, BoxError> {
    let (status, text) = fetch(client, http::Method::GET, url, "").await?;
    if status != 200 {
        return Err(format!("{url}: {status} {text}").into());
    }
    Ok(serde_json::from_str(&text)?)
}

/// A service's breaker and bulkhead as the report reads them
/// (`breaker_state`, `breaker_transitions`, `breaker_rejections`,
/// `bulkhead_rejections`, `spans_recorded`), from its debug surface's
/// `/api/overview`; in the demo only fraud-detection has either.
fn events_of(overview: &Value) -> Value {
    let breaker = &overview["breakers"][0];
    let rejected: u64 = overview["bulkheads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["rejected"].as_u64())
        .sum();
    json!({
        "breaker_state": breaker["state"].as_str().unwrap_or(""),
        "breaker_transitions": breaker["transitions"].as_array().cloned().unwrap_or_default(),
        "breaker_rejections": breaker["rejected"].as_u64().unwrap_or(0),
        "bulkhead_rejections": rejected,
        "spans_recorded": overview["traces"]["flight_recorder"]["recorded"],
    })
}

/// Entry point of the parent.
pub(crate) async fn run(settings: &Settings) -> Result<(), BoxError> {
    let mut fleet = Fleet::default();
    let result = tokio::select! {
        r = scenario(settings, &mut fleet) => r,
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => Err("interrupted (Ctrl-C): stopping the services".into()),
            Err(e) => Err(format!("cannot listen for Ctrl-C: {e}").into()),
        },
    };
    fleet.shutdown(result.is_err()).await;
    result
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
}

async fn scenario(settings: &Settings, fleet: &mut Fleet) -> Result<(), BoxError> {
    let incident_rules =
        std::env::var("TELLTALE_CHAOS").unwrap_or_else(|_| INCIDENT_RULES.to_owned());
    // Fail on bad rules before starting anything.
    incident_rules
        .parse::<telltale::chaos::RuleSet>()
        .map_err(|e| format!("TELLTALE_CHAOS: {e}"))?;

    println!(
        "telltale demo: starting checkout → payment → fraud-detection (gRPC) → external-fraud-api"
    );
    let mut upstream = None;
    for role in Role::ALL.into_iter().rev() {
        let p = start(role, upstream.take(), settings).await?;
        println!(
            "  {:<19} http://127.0.0.1:{:<5}  debug page http://127.0.0.1:{}/ (and /metrics)",
            role.name(),
            p.port,
            p.admin
        );
        upstream = Some(format!("http://127.0.0.1:{}", p.port));
        fleet.procs.push(p);
    }

    let admin: AdminClient =
        Client::builder(TokioExecutor::new()).build(crate::service::nodelay_connector());
    let (steady, incident, recovery_min, recovery_max, rate) = if settings.short {
        (2_000, 3_500, 2_000, 12_000, 30u64)
    } else {
        (4_000, 6_000, 4_000, 15_000, 40u64)
    };
    let phases = [
        ("steady", steady, STEADY_RULES.to_owned()),
        ("incident", incident, incident_rules),
        ("recovery", recovery_min, STEADY_RULES.to_owned()),
    ];
    let planned = rate * (steady + incident + recovery_min) / 1000;
    let bar = ProgressBar::new(planned);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>3} [{bar:40}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let say = |bar: &ProgressBar, line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };

    let checkout = format!(
        "http://127.0.0.1:{}/checkout",
        fleet.get(Role::Checkout).port
    );
    let external_admin = format!(
        "http://127.0.0.1:{}",
        fleet.get(Role::ExternalFraudApi).admin
    );
    let fraud_admin = format!("http://127.0.0.1:{}", fleet.get(Role::FraudDetection).admin);
    let client: AdminClient =
        Client::builder(TokioExecutor::new()).build(crate::service::nodelay_connector());
    let counters = Arc::new(Counters::default());
    let records: Arc<Mutex<Vec<Value>>> = Arc::default();
    let mut tasks = JoinSet::new();

    // Watches the breaker: the recovery phase ends once it closed again.
    let recovered = Arc::new(AtomicBool::new(false));
    let watch = {
        let admin = admin.clone();
        let recovered = recovered.clone();
        let url = format!("{fraud_admin}/api/breakers");
        tokio::spawn(async move {
            loop {
                if let Ok(v) = get_json(&admin, &url).await {
                    let b = &v[0];
                    let t = b["transitions"].as_array().cloned().unwrap_or_default();
                    let opened = t.iter().position(|e| e["to"] == "open");
                    let closed = opened.is_some_and(|i| t[i..].iter().any(|e| e["to"] == "closed"));
                    if closed && b["state"] == "closed" {
                        recovered.store(true, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let start_ms = unix_ms();
    let started = Instant::now();
    let mut phase_log: Vec<Phase> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    for (i, (name, min_ms, rules)) in phases.iter().enumerate() {
        let (status, text) = fetch(
            &client,
            http::Method::POST,
            &format!("{external_admin}/control/chaos"),
            rules,
        )
        .await?;
        if status != 200 {
            return Err(format!("external-fraud-api refused the {name} rules: {text}").into());
        }
        let at = started.elapsed();
        say(
            &bar,
            format!(
                "  [{:>5.1}s] phase {name}: chaos on external-fraud-api = {rules}",
                at.as_secs_f64()
            ),
        );
        phase_log.push(Phase {
            name: (*name).to_owned(),
            start_ms: at.as_millis() as u64,
            rules: rules.clone(),
        });
        let phase_start = Instant::now();
        let min = Duration::from_millis(*min_ms);
        let last = i == phases.len() - 1;
        loop {
            let elapsed = phase_start.elapsed();
            if elapsed >= min {
                if !last || recovered.load(Ordering::Relaxed) {
                    break;
                }
                if elapsed >= Duration::from_millis(recovery_max) {
                    say(&bar, "  the breaker did not close again in time".to_owned());
                    break;
                }
                bar.inc_length(1);
            }
            ticker.tick().await;
            fleet.check_alive()?;
            n += 1;
            let id = format!("order-{n:05}");
            let url = checkout.clone();
            let client = client.clone();
            let counters = counters.clone();
            let records = records.clone();
            let bar = bar.clone();
            let phase = i;
            counters.sent.fetch_add(1, Ordering::Relaxed);
            tasks.spawn(async move {
                let t0 = Instant::now();
                let outcome = send(&client, &url, &id).await;
                let c = &counters;
                match outcome {
                    "succeeded" => c.succeeded.fetch_add(1, Ordering::Relaxed),
                    "rejected" => c.rejected.fetch_add(1, Ordering::Relaxed),
                    _ => c.failed.fetch_add(1, Ordering::Relaxed),
                };
                records.lock().expect("not poisoned").push(json!({
                    "correlation_id": id, "phase": phase, "outcome": outcome,
                    "latency_ms": t0.elapsed().as_secs_f64() * 1000.0,
                }));
                bar.set_message(format!(
                    "ok {} failed {} rejected {}",
                    c.succeeded.load(Ordering::Relaxed),
                    c.failed.load(Ordering::Relaxed),
                    c.rejected.load(Ordering::Relaxed)
                ));
                bar.inc(1);
            });
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
    let load_ms = started.elapsed().as_millis() as u64;
    watch.abort();
    bar.finish_and_clear();
    say(
        &bar,
        format!(
            "  [{:>5.1}s] load done; collecting the flight recorders",
            load_ms as f64 / 1000.0
        ),
    );
    // Spans end when response bodies end: let the last ones settle.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut services = Vec::new();
    for p in &fleet.procs {
        let base = format!("http://127.0.0.1:{}", p.admin);
        // The debug surface's JSON: every span of the flight recorder, and
        // the breaker and bulkhead (fraud-detection's) in the report's shape.
        let spans = get_json(&admin, &format!("{base}/api/spans")).await?;
        let overview = get_json(&admin, &format!("{base}/api/overview")).await?;
        let events = events_of(&overview);
        let (_, metrics) = fetch(&admin, http::Method::GET, &format!("{base}/metrics"), "").await?;
        services.push(ServiceData {
            role: p.role,
            port: p.port,
            spans: spans.as_array().cloned().unwrap_or_default(),
            events,
            metrics,
        });
    }
    let load = LoadSummary {
        start_unix_ms: start_ms,
        duration_ms: load_ms,
        sent: counters.sent.load(Ordering::Relaxed),
        succeeded: counters.succeeded.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        rejected: counters.rejected.load(Ordering::Relaxed),
        phases: phase_log,
        records: records.lock().expect("not poisoned").clone(),
    };
    let mut collected = Collected {
        services,
        load,
        slowest: Vec::new(),
    };

    // The slowest trace through all four services, looked up in every
    // service's flight recorder by its correlation ID.
    if let Some(id) = report::slowest_correlation_id(&collected) {
        for p in &fleet.procs {
            let url = format!("http://127.0.0.1:{}/api/trace?q={id}", p.admin);
            if let Value::Array(spans) = get_json(&admin, &url).await?["spans"].take() {
                collected.slowest.extend(spans);
            }
        }
    }

    let report = report::build(&collected);
    println!("{}", report::render(&report));
    if let Some(path) = &settings.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("report facts written to {}", path.display());
    }
    Ok(())
}

/// Sends one checkout and classifies it.
async fn send(client: &AdminClient, url: &str, id: &str) -> &'static str {
    let body = format!(r#"{{"order_id":"{id}","amount_cents":4200}}"#);
    let req = http::Request::post(url)
        .header("x-correlation-id", id)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid request");
    let res = match tokio::time::timeout(REQUEST_TIMEOUT, async {
        let res = client.request(req).await?;
        let status = res.status();
        let rejected = res.headers().contains_key(REJECTED_BY);
        res.into_body().collect().await?;
        Ok::<_, BoxError>((status, rejected))
    })
    .await
    {
        Ok(Ok(r)) => r,
        _ => return "failed",
    };
    match res {
        (s, _) if s.is_success() => "succeeded",
        (s, true) if s == http::StatusCode::SERVICE_UNAVAILABLE => "rejected",
        _ => "failed",
    }
}
