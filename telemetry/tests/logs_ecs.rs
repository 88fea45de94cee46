//! ECS log lines that Elasticsearch accepts, and the OpenTelemetry JSON
//! profile's promised keys: every line real servers (telltale's server and
//! client layers over real HTTP on 127.0.0.1:0) emit is checked against the
//! ECS field definitions (`tests/data/ecs_fields.tsv`, from elastic/ecs
//! `generated/ecs/ecs_flat.yml`) or the profile's schema; `OTEL_TRACES_EXPORTER=console`
//! is checked on the real standard output of a child process.

#[path = "support/log_schema.rs"]
mod log_schema;
mod support;

use std::net::SocketAddr;
use std::process::Command;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::any;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use log_schema::{EcsSchema, check_otel_line};
use serde_json::Value;
use support::otel::Captured;
use telltale_telemetry::layer::client::ClientTelemetryLayer;
use telltale_telemetry::layer::server::{RequestLog, ServerTelemetryLayer};
use telltale_telemetry::{LogFormat, Profile, StdoutExporter, TRUNCATION_MARKER, Telemetry};
use tower::{ServiceBuilder, ServiceExt};

type Hyper = HyperClient<hyper_util::client::legacy::connect::HttpConnector, Body>;

fn hyper_client() -> Hyper {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// The server layer with its request log line on (as the presets have it).
fn request_logged() -> ServerTelemetryLayer {
    ServerTelemetryLayer::builder()
        .request_log(RequestLog::On)
        .build()
        .unwrap()
}

/// An upstream service logging every kind of value, behind a front service
/// that calls it through the client layer and logs (as the circuit breaker
/// does) from inside the outbound call.
async fn services() -> SocketAddr {
    let upstream = Router::new()
        .route(
            "/items/{id}",
            any(|| async {
                tracing::info!(
                    user = "ada",
                    error = %"disk full",
                    ratio = 0.25,
                    whole = 2.0,
                    count = 3u64,
                    ok = true,
                    big = %"y".repeat(5000),
                    evil = "\x1b[31mred\u{9b}",
                    "upstream handled"
                );
                tracing::warn!(
                    target: "telltale_chaos",
                    error = %"x-chaos-status: 1000 is not a status",
                    "chaos headers ignored: malformed"
                );
                "item"
            }),
        )
        .layer(request_logged());
    let upstream = serve(upstream).await;
    let front = Router::new()
        .route(
            "/orders/{id}",
            any(move |req: Request| async move {
                let client = ServiceBuilder::new()
                    .layer(ClientTelemetryLayer::new())
                    .service_fn(|req: http::Request<Body>| {
                        tracing::warn!(
                            target: "telltale::breaker",
                            breaker = "upstream",
                            from = "closed",
                            to = "open",
                            failure_rate = 1.0,
                            "circuit breaker opened"
                        );
                        hyper_client().request(req)
                    });
                let mut call = http::Request::builder()
                    .method(req.method().clone())
                    .uri(format!("http://{upstream}/items/1?token=secret"));
                if let Some(ua) = req.headers().get(http::header::USER_AGENT) {
                    call = call.header(http::header::USER_AGENT, ua.clone());
                }
                let res = client
                    .oneshot(call.body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                res.into_body().collect().await.unwrap();
                tracing::info!(status, "front done");
                "order"
            }),
        )
        .layer(request_logged());
    serve(front).await
}

/// Runs GET and PURGE (an unknown method: `_OTHER` in OpenTelemetry) through
/// the services, with a user agent longer than ECS indexes; returns the log
/// text.
async fn run(format: LogFormat) -> String {
    let logs = Captured::default();
    let telemetry = Telemetry::builder()
        .service_name("ecs-svc")
        .log_format(format)
        .writer(logs.clone())
        .filter("debug")
        .build()
        .unwrap();
    let _default = telltale_testkit::set_default(telemetry.dispatch().clone());
    let front = services().await;
    let client = hyper_client();
    for method in ["GET", "PURGE"] {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("http://{front}/orders/7"))
            .header(http::header::USER_AGENT, "u".repeat(1500))
            .body(Body::empty())
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
    }
    // The request log lines are written when the servers see their response
    // bodies end, which can be just after the client read them: wait
    // (bounded) for the four (front and upstream, GET and PURGE).
    for _ in 0..500 {
        if logs.text().matches("\"request finished\"").count() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    logs.text()
}

fn line_with<'a>(lines: &'a [Value], message: &str, nth: usize) -> &'a Value {
    lines
        .iter()
        .filter(|l| l["message"] == message)
        .nth(nth)
        .unwrap_or_else(|| panic!("no line {nth} with message {message:?} in {lines:#?}"))
}

#[tokio::test(flavor = "current_thread")]
async fn every_ecs_line_of_real_services_matches_the_ecs_field_definitions() {
    let text = run(LogFormat::Json(Profile::ElasticCommonSchema)).await;
    let schema = EcsSchema::load();
    let errors: Vec<String> = text
        .lines()
        .filter_map(|l| schema.check_line(l).err())
        .collect();
    assert!(
        errors.is_empty(),
        "{} rejected lines:\n{}",
        errors.len(),
        errors.join("\n")
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 8, "{text}");

    // The breaker's line inside the outbound call: only the call's request
    // fields, none of the inbound request's.
    let opened = line_with(&lines, "circuit breaker opened", 0);
    assert_eq!(opened["http.request.method"], "GET");
    assert!(
        opened["url.full"]
            .as_str()
            .unwrap()
            .ends_with("/items/1?token=REDACTED")
            || opened["url.full"].as_str().unwrap().contains("/items/1")
    );
    assert!(opened.get("url.path").is_none(), "{opened}");
    assert!(opened.get("telltale.http.route").is_none(), "{opened}");
    assert!(opened.get("client.address").is_none(), "{opened}");
    assert!(opened.get("user_agent.original").is_none(), "{opened}");
    assert_eq!(opened["log.logger"], "telltale::breaker");
    assert_eq!(opened["telltale.breaker"], "upstream");
    // Identity fields stay: the client span's own IDs, the inbound request's
    // span as the transaction.
    assert!(opened["trace.id"].is_string() && opened["span.id"].is_string());
    assert_ne!(opened["transaction.id"], opened["span.id"]);
    // Floats stay floats.
    let raw = text
        .lines()
        .find(|l| l.contains("circuit breaker opened"))
        .unwrap();
    assert!(raw.contains(r#""telltale.failure_rate":1.0"#), "{raw}");

    // The upstream's line: ECS objects, the real method, capped keywords.
    let handled = line_with(&lines, "upstream handled", 0);
    assert_eq!(handled["error.message"], "disk full");
    assert_eq!(handled["user.name"], "ada");
    assert_eq!(handled["http.request.method"], "GET");
    assert_eq!(handled["http.version"], "1.1");
    assert_eq!(handled["client.ip"], "127.0.0.1");
    assert_eq!(handled["url.path"], "/items/1");
    assert_eq!(handled["telltale.http.route"], "/items/{id}");
    assert_eq!(handled["telltale.ratio"], 0.25);
    assert_eq!(handled["telltale.count"], 3);
    assert_eq!(handled["telltale.ok"], true);
    assert_eq!(handled["telltale.evil"], "\x1b[31mred\u{9b}");
    for key in ["telltale.big", "user_agent.original"] {
        let value = handled[key].as_str().unwrap();
        assert_eq!(value.chars().count(), 1024, "{key}");
        assert!(value.ends_with(TRUNCATION_MARKER), "{key}");
    }
    let raw = text
        .lines()
        .find(|l| l.contains("upstream handled"))
        .unwrap();
    assert!(raw.contains(r#""telltale.whole":2.0"#), "{raw}");
    assert!(!text.contains(['\x1b', '\u{9b}', '\u{7f}']));

    let purged = line_with(&lines, "upstream handled", 1);
    assert_eq!(purged["http.request.method"], "PURGE");
    let opened = line_with(&lines, "circuit breaker opened", 1);
    assert_eq!(opened["http.request.method"], "PURGE");

    let chaos = line_with(&lines, "chaos headers ignored: malformed", 0);
    assert_eq!(
        chaos["error.message"],
        "x-chaos-status: 1000 is not a status"
    );
    assert!(chaos.get("error").is_none());

    let done = line_with(&lines, "front done", 0);
    assert_eq!(done["url.path"], "/orders/7");
    assert_eq!(done["telltale.status"], 200);

    // The request log line (already checked against the ECS definitions
    // above): the request's fields under their ECS names, the duration as
    // ECS `event.duration` nanoseconds.
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request finished")
        .collect();
    assert_eq!(finished.len(), 4, "{text}");
    let front = finished
        .iter()
        .find(|l| l["telltale.http.route"] == "/orders/{id}" && l["http.request.method"] == "PURGE")
        .expect("the front's PURGE line");
    assert_eq!(front["log.logger"], "telltale::request");
    assert_eq!(front["log.level"], "info");
    assert_eq!(front["http.response.status_code"], 200);
    assert_eq!(front["url.path"], "/orders/7");
    assert!(front["event.duration"].as_u64().is_some(), "{front}");
    assert!(front["trace.id"].is_string() && front["span.id"].is_string());
    assert!(front.get("telltale.duration_ms").is_none(), "{front}");
    assert!(front.get("error.type").is_none(), "{front}");
}

#[tokio::test(flavor = "current_thread")]
async fn every_otel_line_of_real_services_matches_the_profile_schema() {
    let text = run(LogFormat::Json(Profile::OpenTelemetry)).await;
    let errors: Vec<String> = text
        .lines()
        .filter_map(|l| check_otel_line(l).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let opened = line_with(&lines, "circuit breaker opened", 0);
    assert!(opened.get("url.path").is_none(), "{opened}");
    assert!(opened.get("http.route").is_none(), "{opened}");
    assert_eq!(opened["http.request.method"], "GET");
    let handled = line_with(&lines, "upstream handled", 1);
    // The OpenTelemetry profile keeps OpenTelemetry's names.
    assert_eq!(handled["http.request.method"], "_OTHER");
    assert_eq!(handled["http.request.method_original"], "PURGE");
    assert_eq!(handled["network.protocol.version"], "1.1");
    let raw = text
        .lines()
        .find(|l| l.contains("circuit breaker opened"))
        .unwrap();
    assert!(raw.contains(r#""failure_rate":1.0"#), "{raw}");
    // The request log line under OpenTelemetry names.
    let finished = lines
        .iter()
        .find(|l| l["message"] == "request finished" && l["http.route"] == "/items/{id}")
        .expect("the upstream's request line");
    assert_eq!(finished["target"], "telltale::request");
    assert_eq!(finished["http.response.status_code"], 200);
    assert!(finished["duration_ms"].is_f64(), "{finished}");
    assert!(finished["trace_id"].is_string(), "{finished}");
}

const CHILD: &str = "TELLTALE_TEST_CONSOLE_CHILD";

/// The child: `Telemetry::from_env()` with `OTEL_TRACES_EXPORTER=console`,
/// real requests, then a flush; everything goes to the real stdout.
fn console_child() {
    let telemetry = Telemetry::from_env().unwrap();
    let (dispatch, guard) = telemetry.into_parts();
    let _default = telltale_testkit::set_default(dispatch);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let front = services().await;
        let req = http::Request::get(format!("http://{front}/orders/7"))
            .header(http::header::USER_AGENT, "curl/8")
            .body(Body::empty())
            .unwrap();
        let res = hyper_client().request(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    });
    guard.shutdown().unwrap();
}

/// Runs the child with `format`; returns its stdout's JSON lines.
fn console_run(format: &str) -> Vec<String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "console_spans_share_stdout_in_the_log_format",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("OTEL_") || key.starts_with("TELLTALE_") || key == "RUST_LOG" {
            cmd.env_remove(&*key);
        }
    }
    cmd.env(CHILD, "1")
        .env("OTEL_TRACES_EXPORTER", "console")
        .env("OTEL_SERVICE_NAME", "console-child")
        .env("TELLTALE_LOG_FORMAT", format);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(['\x1b', '\x7f', '\u{9b}']), "{stdout:?}");
    let mut json = Vec::new();
    for line in stdout.lines() {
        // The test harness's own lines (`running 1 test`, `test … ok`; with
        // one thread it prints `test name ... ` before the test's output).
        match line.find('{') {
            Some(at) => {
                assert!(at == 0 || line.starts_with("test "), "{line:?}");
                json.push(line[at..].to_owned());
            }
            None => assert!(
                line.is_empty()
                    || line.starts_with("running ")
                    || line.starts_with("test ")
                    || line.starts_with("ok"),
                "not a log line: {line:?}"
            ),
        }
    }
    json
}

#[test]
fn console_spans_share_stdout_in_the_log_format() {
    if std::env::var_os(CHILD).is_some() {
        console_child();
        return;
    }
    let schema = EcsSchema::load();
    let lines = console_run("ecs");
    let errors: Vec<String> = lines
        .iter()
        .filter_map(|l| schema.check_line(l).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let values: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spans: Vec<&Value> = values
        .iter()
        .filter(|v| v["log.logger"] == "telltale::span")
        .collect();
    assert_eq!(spans.len(), 3, "{lines:#?}");
    assert!(values.len() > spans.len(), "log lines too: {lines:#?}");
    for span in &spans {
        assert_eq!(span["service.name"], "console-child");
        assert!(span["event.duration"].as_i64().is_some_and(|d| d >= 0));
        assert_eq!(span["event.outcome"], "unknown");
        assert!(span["trace.id"].is_string() && span["span.id"].is_string());
        assert!(span.get("http.request.method").is_some(), "{span}");
    }
    let server = spans
        .iter()
        .find(|s| s["url.path"] == "/orders/7")
        .expect("the front's server span");
    assert_eq!(server["user_agent.original"], "curl/8");
    assert_eq!(server["telltale.span.kind"], "server");

    let lines = console_run("json");
    let errors: Vec<String> = lines
        .iter()
        .filter_map(|l| check_otel_line(l).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let values: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spans: Vec<&Value> = values
        .iter()
        .filter(|v| v["target"] == "telltale::span")
        .collect();
    assert_eq!(spans.len(), 3, "{lines:#?}");
    assert!(
        spans
            .iter()
            .all(|s| s["duration_ms"].is_f64() && s["level"] == "INFO")
    );
}
/// One span through the exporter in every format, with a float, an error
/// status and control characters.
fn export_one_span(format: LogFormat) -> String {
    use opentelemetry::trace::{Span as _, Status, Tracer as _, TracerProvider as _};
    use opentelemetry::{KeyValue, Value as OtelValue};
    let out = Captured::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name("span-svc")
                .build(),
        )
        .with_simple_exporter(StdoutExporter::new(format).max_len(64).writer(out.clone()))
        .build();
    let tracer = provider.tracer("test");
    let mut span = tracer
        .span_builder("GET /x")
        .with_kind(opentelemetry::trace::SpanKind::Server)
        .start(&tracer);
    span.set_attributes([
        KeyValue::new("http.request.method", "_OTHER"),
        KeyValue::new("http.request.method_original", "PURGE"),
        KeyValue::new("http.response.status_code", 503),
        KeyValue::new("network.protocol.version", "2"),
        KeyValue::new("ratio", 1.0),
        KeyValue::new("evil", "\x1b[2J\u{9b}"),
        KeyValue::new("correlation_id", "corr-9"),
        KeyValue::new(
            "tags",
            OtelValue::Array(vec![opentelemetry::StringValue::from("a"), "b".into()].into()),
        ),
    ]);
    span.set_status(Status::error("upstream \x1b[31mfailed"));
    span.end();
    provider.shutdown().unwrap();
    let text = out.text();
    assert!(!text.contains(['\x1b', '\u{9b}']), "{text:?}");
    assert_eq!(text.lines().count(), 1, "{text}");
    text
}

#[test]
fn the_console_exporter_writes_each_format() {
    let ecs = export_one_span(LogFormat::Json(Profile::ElasticCommonSchema));
    EcsSchema::load().check_line(ecs.trim()).unwrap();
    let line: Value = serde_json::from_str(&ecs).unwrap();
    assert_eq!(line["log.level"], "error");
    assert_eq!(line["message"], "GET /x");
    assert_eq!(line["service.name"], "span-svc");
    assert_eq!(line["http.request.method"], "PURGE");
    assert_eq!(line["http.response.status_code"], 503);
    assert_eq!(line["http.version"], "2");
    assert_eq!(line["http.request.id"], "corr-9");
    assert_eq!(line["event.outcome"], "failure");
    assert_eq!(line["error.message"], "upstream \x1b[31mfailed");
    assert_eq!(line["telltale.span.kind"], "server");
    assert!(ecs.contains(r#""telltale.ratio":1.0"#), "{ecs}");

    let otel = export_one_span(LogFormat::Json(Profile::OpenTelemetry));
    check_otel_line(otel.trim()).unwrap();
    let line: Value = serde_json::from_str(&otel).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["target"], "telltale::span");
    assert_eq!(line["status"], "error");
    assert_eq!(line["status_message"], "upstream \x1b[31mfailed");
    assert_eq!(line["correlation_id"], "corr-9");
    assert_eq!(line["http.request.method"], "_OTHER");
    assert!(otel.contains(r#""ratio":1.0"#), "{otel}");

    let pretty = export_one_span(LogFormat::Pretty);
    assert!(pretty.contains("ERROR telltale::span: GET /x"), "{pretty}");
    assert!(
        pretty.contains("ratio=1.0") && pretty.contains("status=\"error\""),
        "{pretty}"
    );
    assert!(
        log_schema::is_rfc3339(pretty.split(' ').next().unwrap()),
        "{pretty}"
    );

    // Without log lines, spans still come out as OpenTelemetry JSON.
    check_otel_line(export_one_span(LogFormat::None).trim()).unwrap();
}

#[test]
fn the_validators_reject_what_elasticsearch_rejects() {
    let ecs = EcsSchema::load();
    let base = r#""@timestamp":"2026-01-02T03:04:05.678901Z","log.level":"info","message":"m","ecs.version":"8.11.0""#;
    let line = |extra: &str| format!("{{{base}{extra}}}");
    assert!(ecs.check_line(&line("")).is_ok());
    assert!(
        ecs.check_line(&line(r#","telltale.http.route":"/x","telltale.rows":3"#))
            .is_ok()
    );
    for bad in [
        r#","network.protocol.version":"1.1""#,
        r#","error":"boom""#,
        r#","user":"ada""#,
        r#","http.route":"/x""#,
        r#","http.request.method_original":"PURGE""#,
        r#","http.response.status_code":"200""#,
        r#","client.ip":"not-an-ip""#,
        r#","telltale.a":1,"telltale.a.b":2"#,
        r#","labels.a.b":"x""#,
    ] {
        assert!(ecs.check_line(&line(bad)).is_err(), "accepted {bad}");
    }
    let long = format!(r#","user_agent.original":"{}""#, "x".repeat(1025));
    assert!(ecs.check_line(&line(&long)).is_err());
    let long = format!(r#","telltale.big":"{}""#, "x".repeat(1025));
    assert!(ecs.check_line(&line(&long)).is_err());

    let otel = r#"{"timestamp":"2026-01-02T03:04:05.678901Z","level":"INFO","severity_text":"INFO","severity_number":9,"message":"m","target":"t""#;
    assert!(check_otel_line(&format!("{otel}}}")).is_ok());
    assert!(check_otel_line(&format!(r#"{otel},"x":{{"a":1}}}}"#)).is_err());
    assert!(check_otel_line(&format!(r#"{otel},"trace_id":"00"}}"#)).is_err());
    assert!(
        check_otel_line(
            &otel
                .replace(":9,", ":13,")
                .to_string()
                .replace("\"t\"", "\"t\"}")
        )
        .is_err()
    );
}
