//! The debug surface over real HTTP on 127.0.0.1:0: what it shows, that
//! nothing from a request renders raw, and that only the token mutates.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use telltale_chaos::{Injector, Status as ChaosStatus};
use telltale_debug::{DebugError, DebugSurface};
use telltale_resilience::{Bulkhead, CircuitBreaker};
use telltale_telemetry::FlightRecorder;

const TOKEN: &str = "test-token-0123456789";
const HOSTILE: &str = "<script>alert(\"x\")</script>'\u{7}\u{1b}[31m";

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A recorder holding a trace with hostile names and attributes: a SERVER
/// span with a hostile correlation ID and a CLIENT child to a hostile host.
fn hostile_recorder() -> (FlightRecorder, String) {
    let recorder = FlightRecorder::new(100);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(recorder.clone())
        .with_resource(
            Resource::builder_empty()
                .with_service_name(format!("svc{HOSTILE}"))
                .build(),
        )
        .build();
    let tracer = provider.tracer("t");
    let t0 = SystemTime::now();
    let root = tracer
        .span_builder(format!("GET /x/{HOSTILE}"))
        .with_kind(SpanKind::Server)
        .with_start_time(t0)
        .with_attributes([KeyValue::new("correlation_id", HOSTILE)])
        .start(&tracer);
    let trace_id = root.span_context().trace_id();
    let cx = opentelemetry::Context::current_with_span(root);
    let mut child = tracer
        .span_builder("POST")
        .with_kind(SpanKind::Client)
        .with_start_time(t0 + Duration::from_millis(2))
        .with_attributes([
            KeyValue::new(
                "server.address",
                format!("\"><svg onload=alert(1)>{HOSTILE}"),
            ),
            KeyValue::new("server.port", 443),
        ])
        .start_with_context(&tracer, &cx);
    child.set_status(Status::error(HOSTILE));
    child.end_with_timestamp(t0 + Duration::from_millis(9));
    cx.span().end_with_timestamp(t0 + Duration::from_millis(10));
    (recorder, trace_id.to_string())
}

fn assert_nothing_raw(page: &str) {
    for raw in [
        "<script",
        "<svg onload",
        "\"><svg",
        "alert(\"x\")",
        "\u{7}",
        "\u{1b}",
        "<img",
    ] {
        assert!(!page.contains(raw), "{raw:?} rendered raw");
    }
    // The page has no script at all.
    assert!(!page.to_ascii_lowercase().contains("<script"));
}

#[tokio::test]
async fn hostile_ids_paths_and_names_never_render_raw() {
    let (recorder, trace_id) = hostile_recorder();
    let breaker = CircuitBreaker::builder(format!("<img src=x onerror=alert(1)>{HOSTILE}"))
        .build()
        .unwrap();
    breaker.force_open();
    telltale_debug::register_breaker(&breaker);
    let surface = DebugSurface::new()
        .addr_to("127.0.0.1:0".parse().unwrap())
        .flight_recorder(&recorder);

    // Rendered directly: lookup by the hostile correlation ID, by trace ID, and none.
    for q in [
        Some(HOSTILE),
        Some(trace_id.as_str()),
        None,
        Some("\"><script>"),
    ] {
        let page = surface.render_page(q);
        assert_nothing_raw(&page);
    }
    let page = surface.render_page(Some(HOSTILE));
    assert!(
        page.contains("id=\"waterfall\""),
        "the hostile correlation ID finds its trace"
    );
    assert!(
        page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;\\u{7}\\u{1b}[31m")
    );
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(
        page.contains("id=\"depmap\""),
        "the CLIENT span draws the dependency map"
    );

    // Over HTTP: hostile query strings and paths.
    let server = surface.serve().await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let c = client();
    for path in [
        "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/?q=%22%3E%3Cimg%20src%3Dx%3E%07",
        &format!("/?q={trace_id}"),
        "/?q=%E2%80%AE%00",
    ] {
        let (status, headers, body) = send(&c, "GET", &format!("{base}{path}"), &[], "").await;
        assert_eq!(status, 200, "{path}");
        assert_nothing_raw(&body);
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    // A hostile path is a 404 that echoes nothing.
    let (status, _, body) = send(&c, "GET", &format!("{base}/%3Cscript%3E"), &[], "").await;
    assert_eq!(status, 404);
    assert_nothing_raw(&body);
    // JSON stays JSON, with the values intact.
    let q: String = HOSTILE.bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, headers, body) =
        send(&c, "GET", &format!("{base}/api/trace?q={q}"), &[], "").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["query"], HOSTILE);
    assert_eq!(v["spans"].as_array().unwrap().len(), 2);
    let (_, _, body) = send(&c, "GET", &format!("{base}/api/breakers"), &[], "").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let b = v
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"].as_str().unwrap().contains("onerror"))
        .unwrap();
    assert_eq!(b["state"], "forced_open");
    assert_eq!(b["transitions"][0]["to"], "forced_open");
    assert_eq!(b["transitions"][0]["reason"], "manual");
}

#[tokio::test]
async fn read_only_without_a_token_and_only_the_token_mutates() {
    let injector = Injector::builder()
        .rules("in GET /a: 10% delay(1ms)".parse().unwrap())
        .build()
        .unwrap();
    let label = "tokens (inbound)";
    telltale_debug::register_injector(&injector, label);
    let bulkhead = Bulkhead::builder("tokens")
        .max_concurrent(3)
        .build()
        .unwrap();
    telltale_debug::register_bulkhead(&bulkhead);
    let _held = bulkhead.try_acquire().unwrap();

    // Read-only: no token configured, POST is refused and nothing changes.
    let ro = DebugSurface::new()
        .addr_to("127.0.0.1:0".parse().unwrap())
        .serve()
        .await
        .unwrap();
    let c = client();
    let url = format!("http://{}/api/chaos/kill", ro.local_addr());
    let (status, _, body) = send(
        &c,
        "POST",
        &url,
        &[("authorization", &format!("Bearer {TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("TELLTALE_DEBUG_TOKEN"));
    let (_, _, page) = send(&c, "GET", &format!("http://{}/", ro.local_addr()), &[], "").await;
    assert!(
        !page.contains("name=\"token\""),
        "no buttons when read-only"
    );
    assert!(
        page.contains("data-name=\"tokens\"") && page.contains(">1 / 3<"),
        "bulkhead in use / limit"
    );
    assert_eq!(injector.status(), ChaosStatus::Armed);
    // GET on a mutating path is not a way around it.
    let (status, _, _) = send(&c, "GET", &url, &[], "").await;
    assert_eq!(status, 405);

    let rw = DebugSurface::new()
        .addr_to("127.0.0.1:0".parse().unwrap())
        .token(TOKEN)
        .unwrap()
        .serve()
        .await
        .unwrap();
    let base = format!("http://{}", rw.local_addr());
    let target = format!(
        "target={}",
        label
            .replace(' ', "+")
            .replace('(', "%28")
            .replace(')', "%29")
    );
    for (headers, body) in [
        (vec![], target.clone()),
        (
            vec![("authorization", "Bearer wrong-token-0123456789")],
            target.clone(),
        ),
        (
            vec![("content-type", "application/x-www-form-urlencoded")],
            format!("{target}&token=test-token-012345678"),
        ),
        (
            vec![("content-type", "application/x-www-form-urlencoded")],
            format!("{target}&token={TOKEN}x"),
        ),
    ] {
        let (status, _, _) = send(
            &c,
            "POST",
            &format!("{base}/api/chaos/pause"),
            &headers,
            &body,
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(injector.status(), ChaosStatus::Armed);
    }
    // The page's form: token and target as form fields, then back to the page.
    let (status, headers, _) = send(
        &c,
        "POST",
        &format!("{base}/api/chaos/pause"),
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("{target}&token={TOKEN}"),
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/#chaos");
    assert_eq!(injector.status(), ChaosStatus::Paused);
    let (status, _, body) = send(
        &c,
        "POST",
        &format!("{base}/api/chaos/resume"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        &target,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(injector.status(), ChaosStatus::Armed);
    let (status, _, _) = send(
        &c,
        "POST",
        &format!("{base}/api/chaos/explode"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(status, 404);
    let (_, _, page) = send(&c, "GET", &format!("{base}/"), &[], "").await;
    assert!(page.contains("name=\"token\"") && page.contains("id=\"chaos-kill\""));
    let (_, _, json) = send(&c, "GET", &format!("{base}/api/chaos"), &[], "").await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == label)
        .unwrap();
    assert_eq!(mine["status"], "armed");
    assert_eq!(mine["rules"][0]["rule"], "10% delay(1ms)");
}

#[tokio::test]
async fn loopback_unless_allowed_and_nested_links_follow_the_mount() {
    let err = DebugSurface::new()
        .addr_to("0.0.0.0:0".parse().unwrap())
        .serve()
        .await
        .unwrap_err();
    assert!(matches!(err, DebugError::NotLoopback { .. }), "{err}");
    assert!(matches!(
        DebugSurface::new().token("short"),
        Err(DebugError::InvalidToken)
    ));

    let app: axum::Router = axum::Router::new().nest("/debug", DebugSurface::new().router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let (status, _, page) = send(&client(), "GET", &format!("http://{addr}/debug"), &[], "").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("action=\"/debug\"") && page.contains("href=\"/debug/api/overview\""),
        "links under the mount"
    );
    let (status, _, json) = send(
        &client(),
        "GET",
        &format!("http://{addr}/debug/api/overview"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["writable"], false);
    assert_eq!(v["red"]["recorder"], false);
    task.abort();
}
