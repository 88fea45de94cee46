//! Exemplars, from a latency graph to the trace: a real Prometheus 2.42
//! (Debian's package, `--enable-feature=exemplar-storage`) scrapes a
//! service under traffic with a slow route; `/api/v1/query_exemplars` for
//! the duration histogram's buckets returns trace IDs that the flight
//! recorder holds, and those of the slow route's upper buckets belong to
//! slow requests. The `/metrics` route serves OpenMetrics only to a scraper
//! that asks for it, and unsampled requests never become exemplars.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use opentelemetry::trace::TraceId;
use telltale_telemetry::metrics::{RedConfig, metrics_router};
use telltale_telemetry::{FlightRecorder, LogFormat, Telemetry};
use tokio::net::TcpListener;
use tracing::instrument::WithSubscriber;

use support::{MAX_WAIT, Prometheus};

const SLOW: Duration = Duration::from_millis(300);

async fn slow() -> &'static str {
    tokio::time::sleep(SLOW).await;
    "slow"
}

/// Serves `app` on 127.0.0.1:0, every connection traced by `dispatch`.
async fn serve(app: Router, dispatch: tracing::Dispatch) -> SocketAddr {
    telltale_testkit::init();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(
                async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                .with_subscriber(dispatch.clone()),
            );
        }
    });
    addr
}

/// A traced service with `/fast`, `/slow` and `/quiet`, and its flight recorder.
async fn service() -> (SocketAddr, FlightRecorder, Telemetry) {
    let telemetry = Telemetry::builder()
        .log_format(LogFormat::None)
        .flight_recorder_capacity(8192)
        .build()
        .unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    let (config, handle) = support::local_prometheus(RedConfig::default());
    let app = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route("/slow", get(slow))
        .route("/quiet", get(|| async { "quiet" }))
        .layer(support::server_layer(config))
        .merge(metrics_router(handle));
    let addr = serve(app, telemetry.dispatch().clone()).await;
    (addr, recorder, telemetry)
}

async fn fetch(
    client: &support::HttpClient,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(
            req.body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// One exemplar as `query_exemplars` returns it.
#[derive(Debug)]
struct Found {
    route: String,
    le: f64,
    trace_id: String,
    span_id: String,
    value: f64,
}

async fn query_exemplars(prom: &Prometheus, selector: &str) -> Vec<Found> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let path = format!(
        "/api/v1/query_exemplars?query={}&start={}&end={}",
        support::encode(selector),
        now - 600,
        now + 60
    );
    let data = prom.api(&path).await.unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for series in data.as_array().cloned().unwrap_or_default() {
        let labels = &series["seriesLabels"];
        let le = labels["le"].as_str().unwrap_or("NaN");
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        for e in series["exemplars"].as_array().cloned().unwrap_or_default() {
            out.push(Found {
                route: labels["http_route"].as_str().unwrap_or("").to_owned(),
                le,
                trace_id: e["labels"]["trace_id"].as_str().unwrap().to_owned(),
                span_id: e["labels"]["span_id"].as_str().unwrap().to_owned(),
                value: e["value"].as_str().unwrap().parse().unwrap(),
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_returns_exemplars_of_slow_requests() {
    let (addr, recorder, _telemetry) = service().await;
    let prom = Prometheus::start_with_flags(&[addr], &["--enable-feature=exemplar-storage"]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for path in ["/fast", "/slow"] {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let client = support::client();
            while !stop.load(Ordering::Relaxed) {
                let (status, _, _) = fetch(&client, addr, path, &[]).await;
                assert_eq!(status, StatusCode::OK);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // Bounded polling: until Prometheus holds exemplars of both routes.
    let deadline = Instant::now() + MAX_WAIT;
    let found = loop {
        let found = query_exemplars(&prom, "http_server_request_duration_seconds_bucket").await;
        let has = |route: &str| found.iter().any(|f| f.route == route);
        if has("/slow") && has("/fast") {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no exemplars of both routes within {MAX_WAIT:?}: {found:?}\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    // Prometheus parsed the OpenMetrics exposition without complaint.
    let targets = prom.api("/api/v1/targets").await.unwrap();
    let target = &targets["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");

    for f in &found {
        // The exemplar sits in the bucket its value falls in.
        assert!(f.value <= f.le, "{f:?}");
        // Its trace is in the flight recorder, and its span is the request's.
        let id = TraceId::from_hex(&f.trace_id).unwrap();
        let spans = recorder.trace(id);
        let span = spans
            .iter()
            .find(|s| s.span_id().to_string() == f.span_id)
            .unwrap_or_else(|| panic!("{f:?}: span not in the flight recorder: {spans:?}"));
        let route = span.attribute("http.route").map(|v| v.to_string());
        assert_eq!(route.as_deref(), Some(f.route.as_str()), "{f:?}");
        // The exemplar's value is the request's duration.
        let took = span.duration().as_secs_f64();
        assert!((took - f.value).abs() < 0.1, "{f:?}: span took {took}");
        if f.route == "/slow" {
            assert!(f.value >= SLOW.as_secs_f64(), "{f:?}");
            assert!(f.le > 0.25, "{f:?}: a slow request above the 0.25 s bucket");
        }
    }

    // The p99 bucket of the slow route: the lowest bucket holding 99% of its
    // requests; its exemplar is a slow request.
    let p99 = prom
        .wait_for(
            r#"histogram_quantile(0.99, sum by (le) (http_server_request_duration_seconds_bucket{http_route="/slow"}))"#,
            |r| r.len() == 1 && r[0].1.is_finite(),
        )
        .await[0]
        .1;
    assert!(p99 > SLOW.as_secs_f64(), "p99 {p99}");
    // Its exemplars (polled: Prometheus may not have scraped the last
    // exposition yet) are slow requests of the flight recorder.
    let deadline = Instant::now() + MAX_WAIT;
    let slow = loop {
        let found = query_exemplars(&prom, "http_server_request_duration_seconds_bucket").await;
        let slow: Vec<Found> = found
            .into_iter()
            .filter(|f| f.route == "/slow" && f.le >= p99)
            .collect();
        if !slow.is_empty() {
            break slow;
        }
        assert!(
            Instant::now() < deadline,
            "no exemplar at or above p99 {p99}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for f in slow {
        let spans = recorder.trace(TraceId::from_hex(&f.trace_id).unwrap());
        assert!(spans.iter().any(|s| s.duration() >= SLOW), "{f:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_only_when_asked_and_only_sampled_traces() {
    let (addr, _recorder, _telemetry) = service().await;
    let client = support::client();
    // A sampled request, and one whose caller decided not to sample.
    let (status, _, _) = fetch(&client, addr, "/fast", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let (status, _, _) = fetch(&client, addr, "/quiet", &[("traceparent", unsampled)]).await;
    assert_eq!(status, StatusCode::OK);

    // The text format, unchanged, for a scraper that does not ask.
    let (_, headers, text) = fetch(&client, addr, "/metrics", &[]).await;
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(!text.contains("# EOF"), "{text}");
    assert!(!text.contains("trace_id"), "{text}");
    assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"));
    // promtool (2.42) lints the text format only; the OpenMetrics one is
    // checked by a real Prometheus's parser (the scrape test above).
    let (clean, lint) = support::promtool_check_metrics(&text);
    assert!(clean, "{lint}");

    // OpenMetrics for one that does.
    let (_, headers, om) =
        fetch(&client, addr, "/metrics", &[("accept", OPENMETRICS_ACCEPT)]).await;
    assert_eq!(
        headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(!om.contains("\n\n"), "{om}");
    let bucket = |route: &str| -> Vec<String> {
        om.lines()
            .filter(|l| {
                l.starts_with("http_server_request_duration_seconds_bucket{")
                    && l.contains(&format!("http_route=\"{route}\""))
            })
            .map(str::to_owned)
            .collect()
    };
    let fast: Vec<String> = bucket("/fast")
        .into_iter()
        .filter(|l| l.contains(" # {trace_id=\""))
        .collect();
    assert_eq!(fast.len(), 1, "{om}");
    assert!(fast[0].contains("span_id=\""), "{}", fast[0]);
    let quiet = bucket("/quiet");
    assert!(!quiet.is_empty(), "{om}");
    assert!(quiet.iter().all(|l| !l.contains('#')), "{quiet:?}");
    assert!(!om.contains("0af7651916cd43dd8448eb211c80319c"), "{om}");

    // The same series and values in both formats.
    let values = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter(|l| !l.starts_with("http_server_active_requests"))
            .map(|l| l.split(" # ").next().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    // Scraping changed nothing but the active-requests gauge.
    let (_, _, text_after) = fetch(&client, addr, "/metrics", &[]).await;
    assert_eq!(values(&text_after), values(&om));
}
