//! The server layer on a real axum server: echo, generation, rejection,
//! require, aliases, trust, and the ID inside spawned and streaming code.

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use support::{assert_uuid_v7, get as http_get, get_at, http_client, raw_get, serve};
use telltale_correlation::{CorrelationId, current, in_current};
use telltale_correlation::{CorrelationLayer, CorrelationLayerBuilder};

/// Reports what the handler sees: `current()|extension|header|current() in a spawned task`.
async fn inspect(Extension(id): Extension<CorrelationId>, headers: HeaderMap) -> String {
    let now = current().map(|c| c.to_string()).unwrap_or_default();
    let spawned = tokio::spawn(in_current(async {
        tokio::task::yield_now().await;
        current()
    }))
    .await
    .unwrap()
    .map(|c| c.to_string())
    .unwrap_or_default();
    let header = headers
        .get("x-correlation-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    format!("{now}|{id}|{header}|{spawned}")
}

/// A body that reads `current()` when polled, after the handler has returned.
struct CurrentAtPoll(bool);

impl http_body::Body for CurrentAtPoll {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.0 {
            return Poll::Ready(None);
        }
        self.0 = true;
        let text = current()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".into());
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(text)))))
    }
}

fn app(layer: CorrelationLayer) -> Router {
    Router::new()
        .route("/", get(inspect))
        .route(
            "/stream",
            get(|| async { axum::body::Body::new(CurrentAtPoll(false)) }),
        )
        .route(
            "/own-header",
            get(|| async { ([("x-correlation-id", "set-by-handler")], "ok") }),
        )
        .layer(layer)
}

async fn start(builder: CorrelationLayerBuilder) -> std::net::SocketAddr {
    serve(app(builder.build().unwrap())).await
}

fn parts(body: &str) -> [&str; 4] {
    let v: Vec<&str> = body.split('|').collect();
    [v[0], v[1], v[2], v[3]]
}

#[tokio::test]
async fn valid_incoming_id_is_used_everywhere_and_echoed() {
    let addr = start(CorrelationLayer::builder()).await;
    let (res, body) = get_at(addr, "/", &[("x-correlation-id", "order-42:a.b_c")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-correlation-id"], "order-42:a.b_c");
    assert_eq!(parts(&body), ["order-42:a.b_c"; 4]);
}

#[tokio::test]
async fn absent_id_is_generated_as_uuid_v7() {
    let addr = start(CorrelationLayer::builder()).await;
    let (res, body) = get_at(addr, "/", &[]).await;
    let echoed = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_uuid_v7(&echoed);
    assert_eq!(parts(&body), [echoed.as_str(); 4]);
    let (res2, _) = get_at(addr, "/", &[]).await;
    assert_ne!(res2.headers()["x-correlation-id"], echoed.as_str());
}

#[tokio::test]
async fn rejected_values_are_replaced_and_never_echoed() {
    let addr = start(CorrelationLayer::builder()).await;
    let oversized = format!("x-correlation-id: {}", "a".repeat(129));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized", oversized.into_bytes()),
        (
            "control character (tab)",
            b"x-correlation-id: ab\tcd".to_vec(),
        ),
        ("space", b"x-correlation-id: ab cd".to_vec()),
        (
            "percent-encoded CRLF injection",
            b"x-correlation-id: abc%0d%0aSet-Cookie:%20x=1".to_vec(),
        ),
        (
            "header injection characters",
            b"x-correlation-id: abc;Set-Cookie=x,y".to_vec(),
        ),
        (
            "obs-text UTF-8",
            b"x-correlation-id: caf\xc3\xa9-id".to_vec(),
        ),
        ("obs-text high byte", b"x-correlation-id: \xff\xfe".to_vec()),
        ("empty", b"x-correlation-id:".to_vec()),
        (
            "quotes and angle brackets",
            b"x-correlation-id: \"<script>\"".to_vec(),
        ),
    ];
    for (what, line) in cases {
        let res = raw_get(addr, "/", &line).await;
        assert_eq!(res.status, 200, "{what}");
        let echoed = res.headers["x-correlation-id"].to_str().unwrap().to_owned();
        assert_uuid_v7(&echoed);
        let body = String::from_utf8(res.body.clone()).unwrap();
        assert!(
            body.contains(&format!("{echoed}|{echoed}|{echoed}|{echoed}")),
            "{what}: {body}"
        );
        let value = &line[b"x-correlation-id:".len()..];
        let value = value.trim_ascii();
        if !value.is_empty() {
            assert!(
                !res.raw.windows(value.len()).any(|w| w == value),
                "{what}: the rejected value came back"
            );
        }
    }
}

#[tokio::test]
async fn raw_crlf_never_reaches_the_handler() {
    // A bare CR, or CRLF followed by whitespace (obs-fold), cannot be part of a
    // header value: hyper answers 400 itself and the value never reaches the
    // layer. CRLF followed by text starts a new header line, so the ID is "abc".
    let addr = start(CorrelationLayer::builder()).await;
    for line in [
        &b"x-correlation-id: abc\rdef"[..],
        b"x-correlation-id: abc\r\n def",
    ] {
        let res = raw_get(addr, "/", line).await;
        assert_eq!(res.status, 400, "{:?}", String::from_utf8_lossy(line));
        assert!(!res.raw.windows(3).any(|w| w == b"def"));
    }
    let res = raw_get(addr, "/", b"x-correlation-id: abc\r\nx-injected: 1").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.headers["x-correlation-id"], "abc");
    assert!(res.headers.get("x-injected").is_none());
}

#[tokio::test]
async fn rejections_are_logged_by_length_and_reason_only() {
    // This thread's events, and #[tokio::test] runs the server on this thread.
    let capture = telltale_testkit::Capture::start();
    let addr = start(CorrelationLayer::builder()).await;
    let res = raw_get(addr, "/", b"x-correlation-id: SECRET-TOKEN-abc def").await;
    assert_eq!(res.status, 200);
    let logs = capture.text();
    assert!(logs.contains("incoming correlation ID rejected"), "{logs}");
    assert!(logs.contains("len=20"), "{logs}");
    assert!(logs.contains("reason=\"invalid_character\""), "{logs}");
    assert!(!logs.contains("SECRET"), "{logs}");
}

#[tokio::test]
async fn require_header_answers_400_naming_the_header() {
    let addr = start(
        CorrelationLayer::builder()
            .require_header(true)
            .alias("x-request-id"),
    )
    .await;
    let res = raw_get(addr, "/", b"").await;
    assert_eq!(res.status, 400);
    assert_eq!(res.headers["content-type"], "text/plain; charset=utf-8");
    assert!(res.headers.get("x-correlation-id").is_none());
    assert_eq!(
        res.body,
        b"missing required header x-correlation-id (or x-request-id)\n"
    );

    let long = format!("x-request-id: {}", "z".repeat(300));
    let res = raw_get(addr, "/", long.as_bytes()).await;
    assert_eq!(res.status, 400);
    assert_eq!(
        String::from_utf8(res.body).unwrap(),
        "invalid x-request-id header: longer than 128 bytes\n"
    );
    assert!(!res.raw.windows(10).any(|w| w == b"zzzzzzzzzz"));

    let res = raw_get(addr, "/", b"x-correlation-id: a<b").await;
    assert_eq!(res.status, 400);
    assert_eq!(
        String::from_utf8(res.body).unwrap(),
        "invalid x-correlation-id header: disallowed character at position 2\n"
    );

    let (res, body) = get_at(addr, "/", &[("x-request-id", "ok-1")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(parts(&body), ["ok-1"; 4]);
}

#[tokio::test]
async fn aliases_are_read_in_order_after_the_primary_header() {
    let addr = start(
        CorrelationLayer::builder()
            .header("X-Correlation-ID")
            .aliases(["x-request-id", "x-amzn-trace-id"]),
    )
    .await;
    let client = http_client();
    let url = format!("http://{addr}/");

    let (res, body) = http_get(&client, url.clone(), &[("x-request-id", "from-alias")]).await;
    assert_eq!(res.headers()["x-correlation-id"], "from-alias");
    // The handler also sees it in the primary header.
    assert_eq!(parts(&body), ["from-alias"; 4]);

    let (res, _) = http_get(&client, url.clone(), &[("x-amzn-trace-id", "second-alias")]).await;
    assert_eq!(res.headers()["x-correlation-id"], "second-alias");

    let (res, _) = http_get(
        &client,
        url.clone(),
        &[("x-request-id", "alias"), ("x-correlation-id", "primary")],
    )
    .await;
    assert_eq!(res.headers()["x-correlation-id"], "primary");

    // The first present header decides; a bad value there is not skipped.
    let (res, _) = http_get(
        &client,
        url,
        &[("x-request-id", "fine"), ("x-correlation-id", "not fine")],
    )
    .await;
    assert_uuid_v7(res.headers()["x-correlation-id"].to_str().unwrap());
}

#[tokio::test]
async fn untrusted_incoming_ids_are_replaced() {
    let addr = start(CorrelationLayer::builder().trust_incoming(false)).await;
    let (res, body) = get_at(addr, "/", &[("x-correlation-id", "spoofed")]).await;
    let echoed = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_uuid_v7(&echoed);
    assert_eq!(parts(&body), [echoed.as_str(); 4]);
}

#[tokio::test]
async fn echo_can_be_turned_off_and_never_overrides_the_handler() {
    let addr = start(CorrelationLayer::builder().echo(false)).await;
    let (res, body) = get_at(addr, "/", &[("x-correlation-id", "quiet")]).await;
    assert!(res.headers().get("x-correlation-id").is_none());
    assert_eq!(parts(&body), ["quiet"; 4]);

    let addr = start(CorrelationLayer::builder()).await;
    let (res, _) = get_at(addr, "/own-header", &[("x-correlation-id", "incoming")]).await;
    let values: Vec<_> = res.headers().get_all("x-correlation-id").iter().collect();
    assert_eq!(values, ["set-by-handler"]);
}

#[tokio::test]
async fn streaming_bodies_see_the_id_when_polled() {
    let addr = start(CorrelationLayer::builder()).await;
    let (_, body) = get_at(addr, "/stream", &[("x-correlation-id", "streamed")]).await;
    assert_eq!(body, "streamed");
}

#[tokio::test]
async fn custom_rule_replaces_the_default() {
    let hex_only = |v: &[u8]| {
        if v.len() == 32 && v.iter().all(u8::is_ascii_hexdigit) {
            Ok(())
        } else {
            Err(telltale_correlation::InvalidCorrelationId::Other(
                "not_hex32",
            ))
        }
    };
    let addr = start(CorrelationLayer::builder().rule(hex_only)).await;
    let hex = "0123456789abcdef0123456789abcdef";
    let (res, _) = get_at(addr, "/", &[("x-correlation-id", hex)]).await;
    assert_eq!(res.headers()["x-correlation-id"], hex);
    let (res, _) = get_at(addr, "/", &[("x-correlation-id", "order-42")]).await;
    assert_uuid_v7(res.headers()["x-correlation-id"].to_str().unwrap());
}

#[tokio::test]
async fn id_is_recorded_on_the_current_span() {
    // This thread's span recordings, and #[tokio::test] runs the server on
    // this thread.
    let capture = telltale_testkit::Capture::start();

    // An outer layer opens the request span that declares the field, as
    // telltale-telemetry's request layer does.
    let app = app(CorrelationLayer::new()).layer(tower_http_like_span());
    let addr = serve(app).await;
    get_at(addr, "/", &[("x-correlation-id", "on-span")]).await;
    let recorded: Vec<String> = capture
        .records()
        .into_iter()
        .filter(|r| r.field == "correlation_id")
        .map(|r| r.value)
        .collect();
    assert_eq!(recorded, ["on-span"]);
}

/// A minimal outer layer entering a span with an empty `correlation_id` field
/// around the inner `call` and its future.
fn tower_http_like_span() -> tower::layer::LayerFn<fn(axum::routing::Route) -> SpanService> {
    tower::layer::layer_fn(SpanService as fn(_) -> _)
}

#[derive(Clone)]
struct SpanService(axum::routing::Route);

impl tower::Service<axum::extract::Request> for SpanService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = tracing::instrument::Instrumented<
        <axum::routing::Route as tower::Service<axum::extract::Request>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<axum::extract::Request>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let span = tracing::info_span!("request", correlation_id = tracing::field::Empty);
        let fut = span.in_scope(|| self.0.call(req));
        // axum's Route calls the inner service when first polled.
        tracing::Instrument::instrument(fut, span)
    }
}

#[tokio::test]
async fn other_control_bytes_never_reach_the_handler() {
    // hyper refuses control bytes other than HTAB itself (400), before the
    // layer; HTAB is covered by `rejected_values_are_replaced_and_never_echoed`.
    let addr = start(CorrelationLayer::builder()).await;
    for byte in [0x00u8, 0x01, 0x0b, 0x1b, 0x7f] {
        let mut line = b"x-correlation-id: ab".to_vec();
        line.push(byte);
        line.extend_from_slice(b"cd");
        let res = raw_get(addr, "/", &line).await;
        assert_eq!(res.status, 400, "byte {byte:#x}");
        assert!(
            !res.raw.windows(5).any(|w| w == &line[18..]),
            "byte {byte:#x}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_see_each_others_ids() {
    let addr = start(CorrelationLayer::builder()).await;
    let client = http_client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let client = client.clone();
        tasks.spawn(async move {
            let id = format!("req-{i}");
            let (res, body) = http_get(
                &client,
                format!("http://{addr}/"),
                &[("x-correlation-id", &id)],
            )
            .await;
            assert_eq!(res.headers()["x-correlation-id"], id.as_str());
            assert_eq!(parts(&body), [id.as_str(); 4]);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}
