//! The request log line of the presets (issue 15 item 2) and the defaults a
//! user expects (item 3): one line per finished request from a real axum
//! server behind `ServerStack`, written by the real log pipeline and read
//! back as JSON in both profiles; `x-request-id` accepted; unmatched routes
//! counted, correlated and logged without a route.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use telltale::core::config::Env;
use telltale::stack::ServerStack;
use telltale::telemetry::layer::{RequestLog, ServerTelemetryLayer};
use telltale::telemetry::metrics::{RedConfig, prometheus_builder};
use telltale::telemetry::{FlightRecorder, LogFormat, Profile, Telemetry};
use tower::ServiceBuilder;

mod support;
use support::serve;

/// Log lines written to memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The request log lines so far.
    fn request_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .filter(|l| {
                l["target"] == "telltale::request" || l["log.logger"] == "telltale::request"
            })
            .collect()
    }

    /// Waits (bounded) for the request line whose correlation ID is `id`:
    /// the line is written when the response body has ended on the server,
    /// which may be just after the client read it.
    async fn line_of(&self, id: &str) -> Value {
        for _ in 0..500 {
            if let Some(line) = self
                .request_lines()
                .into_iter()
                .find(|l| l["correlation_id"] == id || l["http.request.id"] == id)
            {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no request line for {id}:\n{}", self.text());
    }
}

/// A pipeline writing `profile` lines to memory, as this thread's default.
fn pipeline(profile: Profile) -> (Captured, tracing::dispatcher::DefaultGuard) {
    let (logs, guard, _) = pipeline_with_recorder(profile);
    (logs, guard)
}

/// [`pipeline`], with its flight recorder.
fn pipeline_with_recorder(
    profile: Profile,
) -> (Captured, tracing::dispatcher::DefaultGuard, FlightRecorder) {
    let logs = Captured::default();
    let telemetry = Telemetry::builder()
        .service_name("request-log-test")
        .log_format(LogFormat::Json(profile))
        .writer(logs.clone())
        .build()
        .unwrap();
    let recorder = telemetry.flight_recorder().expect("on").clone();
    let guard = telltale_testkit::set_default(telemetry.dispatch().clone());
    std::mem::forget(telemetry);
    (logs, guard, recorder)
}

/// `/orders/{id}` (200), `/fail` (500), `/slow` (never answers: the 100 ms
/// timeout inside the stack turns it into a 504), behind `stack`.
async fn app(stack: ServerStack) -> SocketAddr {
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/slow",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        )
        .layer(ServiceBuilder::new().layer(stack.layer()).layer(
            tower::timeout::TimeoutLayer::new(Duration::from_millis(100)),
        ));
    serve(app).await
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends GET `path` with `headers`; returns the status and the response
/// headers (the body read to its end).
async fn get_path(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap) {
    let mut req = http::Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client()
        .request(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let (parts, body) = res.into_parts();
    body.collect().await.unwrap();
    (status, parts.headers)
}

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "current_thread")]
async fn one_line_per_request_with_every_field_by_outcome() {
    let (logs, _default, recorder) = pipeline_with_recorder(Profile::OpenTelemetry);
    let addr = app(ServerStack::new()).await;

    // 200 on a matched route.
    let (status, _) = get_path(addr, "/orders/7", &[("x-correlation-id", "ok-200")]).await;
    assert_eq!(status, 200);
    let line = logs.line_of("ok-200").await;
    assert_eq!(line["message"], "request finished");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["http.request.method"], "GET");
    assert_eq!(line["http.route"], "/orders/{id}");
    assert_eq!(line["http.response.status_code"], 200);
    assert!(
        line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{line}"
    );
    assert!(is_hex(&line["trace_id"], 32), "{line}");
    assert!(is_hex(&line["span_id"], 16), "{line}");
    assert!(line.get("error.type").is_none(), "{line}");
    assert_eq!(line["service.name"], "request-log-test");
    // The line is not copied into the span as an event: the span has it all.
    let span = recorder
        .by_correlation_id("ok-200")
        .into_iter()
        .next()
        .expect("the request's span")
        .to_json();
    assert_eq!(span["trace_id"], line["trace_id"]);
    assert!(
        !span["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "request finished"),
        "{span}"
    );

    // 404 from an unmatched route: correlated, logged without a route.
    let (status, headers) =
        get_path(addr, "/no/such/path", &[("x-correlation-id", "miss-404")]).await;
    assert_eq!(status, 404);
    assert_eq!(headers["x-correlation-id"], "miss-404");
    let line = logs.line_of("miss-404").await;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["http.response.status_code"], 404);
    assert!(line.get("http.route").is_none(), "{line}");
    assert!(line.get("error.type").is_none(), "{line}");
    assert!(is_hex(&line["trace_id"], 32), "{line}");

    // 500 from the handler: ERROR with error.type.
    let (status, _) = get_path(addr, "/fail", &[("x-correlation-id", "boom-500")]).await;
    assert_eq!(status, 500);
    let line = logs.line_of("boom-500").await;
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["http.route"], "/fail");
    assert_eq!(line["http.response.status_code"], 500);
    assert_eq!(line["error.type"], "500");

    // A timeout inside the stack, answered 504 by the stack: ERROR, with the
    // error.type the span and the metrics have for that response.
    let (status, _) = get_path(addr, "/slow", &[("x-correlation-id", "late-504")]).await;
    assert_eq!(status, 504);
    let line = logs.line_of("late-504").await;
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["http.route"], "/slow");
    assert_eq!(line["http.response.status_code"], 504);
    assert_eq!(line["error.type"], "504");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|d| d >= 100.0),
        "{line}"
    );

    // An unsampled request (the caller's traceparent says not sampled): the
    // line still carries the trace ID it continued.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = format!("00-{trace}-00f067aa0ba902b7-00");
    let (status, _) = get_path(
        addr,
        "/orders/8",
        &[
            ("x-correlation-id", "unsampled-1"),
            ("traceparent", &parent),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let line = logs.line_of("unsampled-1").await;
    assert_eq!(line["trace_id"], trace, "{line}");

    // Health checks get no line (as they get no span).
    let (status, _) = get_path(addr, "/healthz", &[("x-correlation-id", "probe-1")]).await;
    assert_eq!(status, 404);

    // Exactly one line per request.
    for id in ["ok-200", "miss-404", "boom-500", "late-504", "unsampled-1"] {
        let n = logs
            .request_lines()
            .iter()
            .filter(|l| l["correlation_id"] == id)
            .count();
        assert_eq!(n, 1, "{id}:\n{}", logs.text());
    }
    let probes = logs
        .request_lines()
        .iter()
        .filter(|l| l["url.path"] == "/healthz")
        .count();
    assert_eq!(probes, 0, "{}", logs.text());
}

#[tokio::test(flavor = "current_thread")]
async fn the_ecs_profile_maps_every_field() {
    let (logs, _default) = pipeline(Profile::ElasticCommonSchema);
    let addr = app(ServerStack::new()).await;
    let (status, _) = get_path(addr, "/fail", &[("x-correlation-id", "ecs-500")]).await;
    assert_eq!(status, 500);
    let line = logs.line_of("ecs-500").await;
    assert_eq!(line["log.level"], "error");
    assert_eq!(line["log.logger"], "telltale::request");
    assert_eq!(line["message"], "request finished");
    assert_eq!(line["http.request.method"], "GET");
    assert_eq!(line["telltale.http.route"], "/fail");
    assert_eq!(line["http.response.status_code"], 500);
    assert_eq!(line["error.type"], "500");
    assert_eq!(line["http.request.id"], "ecs-500");
    assert!(is_hex(&line["trace.id"], 32), "{line}");
    // ECS event.duration: an integer of nanoseconds.
    assert!(line["event.duration"].as_u64().is_some(), "{line}");
    for key in [
        "duration_ms",
        "telltale.duration_ms",
        "correlation_id",
        "trace_id",
    ] {
        assert!(line.get(key).is_none(), "{key} in {line}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn off_errors_and_the_success_sample() {
    let (logs, _default) = pipeline(Profile::OpenTelemetry);
    let env = Env::from_pairs([("TELLTALE_REQUEST_LOG", "off")]);
    let off = app(ServerStack::from_env_source(&env).unwrap()).await;
    get_path(off, "/orders/1", &[("x-correlation-id", "off-1")]).await;
    get_path(off, "/fail", &[("x-correlation-id", "off-2")]).await;

    let env = Env::from_pairs([("TELLTALE_REQUEST_LOG", "errors")]);
    let errors = app(ServerStack::from_env_source(&env).unwrap()).await;
    get_path(errors, "/orders/1", &[("x-correlation-id", "errors-ok")]).await;
    get_path(errors, "/fail", &[("x-correlation-id", "errors-500")]).await;
    logs.line_of("errors-500").await;

    let env = Env::from_pairs([("TELLTALE_REQUEST_LOG_SUCCESS_SAMPLE", "25%")]);
    let sampled = app(ServerStack::from_env_source(&env).unwrap()).await;
    for i in 0..8 {
        get_path(
            sampled,
            "/orders/1",
            &[("x-correlation-id", &format!("s-{i}"))],
        )
        .await;
    }
    get_path(sampled, "/fail", &[("x-correlation-id", "s-fail")]).await;
    logs.line_of("s-fail").await;

    let ids: Vec<String> = logs
        .request_lines()
        .iter()
        .filter_map(|l| l["correlation_id"].as_str().map(str::to_owned))
        .collect();
    assert!(!ids.iter().any(|id| id.starts_with("off-")), "{ids:?}");
    assert!(!ids.contains(&"errors-ok".to_owned()), "{ids:?}");
    // 25% of 8 successes: exactly 2 (every failure is logged).
    let successes = ids
        .iter()
        .filter(|id| id.starts_with("s-") && *id != "s-fail");
    assert_eq!(successes.count(), 2, "{ids:?}");

    // Invalid values name the variable and what is allowed.
    for (var, value, allowed) in [
        ("TELLTALE_REQUEST_LOG", "sometimes", "on, errors or off"),
        (
            "TELLTALE_REQUEST_LOG_SUCCESS_SAMPLE",
            "150%",
            "at most 100%",
        ),
    ] {
        let err = ServerStack::from_env_source(&Env::from_pairs([(var, value)])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(var) && text.contains(value) && text.contains(allowed),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn hostile_values_are_never_logged_raw() {
    let (logs, _default) = pipeline(Profile::OpenTelemetry);
    let addr = app(ServerStack::new()).await;
    // An ID that would close the JSON object if written raw: rejected by the
    // correlation rule (a fresh ID is generated), never written.
    let hostile_id = r#"x","level":"ERROR","evil":"1"#;
    let (status, headers) = get_path(
        addr,
        "/%1b%5b31m/%22%7d%0a",
        &[
            ("x-correlation-id", hostile_id),
            ("x-request-id", "also bad!"),
        ],
    )
    .await;
    assert_eq!(status, 404);
    let generated = headers["x-correlation-id"].to_str().unwrap().to_owned();
    assert_ne!(generated, hostile_id);
    let line = logs.line_of(&generated).await;
    assert!(line.get("http.route").is_none(), "{line}");
    assert!(line.get("evil").is_none(), "{line}");
    let text = logs.text();
    assert!(!text.contains("\"evil\""), "{text}");
    assert!(!text.contains("also bad!"), "{text}");
    assert!(!text.contains('\x1b'), "{text}");
    // Every line is still one JSON object.
    for l in text.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn x_request_id_is_read_and_echoed_by_default() {
    let (logs, _default) = pipeline(Profile::OpenTelemetry);
    let addr = app(ServerStack::new()).await;
    let (_, headers) = get_path(addr, "/orders/1", &[("x-request-id", "lb-123")]).await;
    assert_eq!(headers["x-correlation-id"], "lb-123");
    assert_eq!(headers["x-request-id"], "lb-123");
    assert_eq!(logs.line_of("lb-123").await["http.route"], "/orders/{id}");

    // Both sent: x-correlation-id wins; only it is echoed.
    let (_, headers) = get_path(
        addr,
        "/orders/1",
        &[("x-request-id", "lb-124"), ("x-correlation-id", "ours-124")],
    )
    .await;
    assert_eq!(headers["x-correlation-id"], "ours-124");
    assert!(headers.get("x-request-id").is_none());
    logs.line_of("ours-124").await;

    // TELLTALE_CORRELATION_ALIASES=none turns the alias off.
    let env = Env::from_pairs([("TELLTALE_CORRELATION_ALIASES", "none")]);
    let strict = app(ServerStack::from_env_source(&env).unwrap()).await;
    let (_, headers) = get_path(strict, "/orders/1", &[("x-request-id", "lb-125")]).await;
    assert_ne!(headers["x-correlation-id"], "lb-125");
    assert!(headers.get("x-request-id").is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn unmatched_routes_are_counted_with_a_bounded_label() {
    let (_logs, _default) = pipeline(Profile::OpenTelemetry);
    let config = RedConfig::default();
    let recorder = prometheus_builder(&config).build_recorder();
    let handle = recorder.handle();
    let layer = ServerTelemetryLayer::builder()
        .request_log(RequestLog::On)
        .red_config(config.with_recorder(Arc::new(recorder)))
        .build()
        .unwrap();
    let addr = app(ServerStack::new().telemetry(layer)).await;
    for i in 0..5 {
        let (status, headers) = get_path(addr, &format!("/random/{i}/path"), &[]).await;
        assert_eq!(status, 404);
        // Correlated: an ID was generated and echoed.
        assert!(headers.contains_key("x-correlation-id"));
    }
    let counts = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.starts_with("http_server_request_duration_seconds_count")
                    && l.contains("http_response_status_code=\"404\"")
            })
            .map(str::to_owned)
            .collect()
    };
    // Bounded wait: each request is counted when its body has ended.
    let mut text = String::new();
    for _ in 0..500 {
        text = handle.render();
        if counts(&text).iter().any(|l| l.ends_with(" 5")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let count = counts(&text);
    // One series for every unmatched path, without a route label and
    // without any raw path.
    assert_eq!(count.len(), 1, "{text}");
    assert!(count[0].ends_with(" 5"), "{text}");
    assert!(!count[0].contains("http_route"), "{text}");
    assert!(!text.contains("/random/"), "{text}");
}
