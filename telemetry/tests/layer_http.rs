//! Server and client request layers over real axum servers and a real hyper
//! client: span names, kinds, attributes, status, trace context, filters,
//! completion at body end, client disconnects, and the metrics they agree with.

mod support;

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use support::harness::{Harness, attr, attr_i64, attr_str};
use telltale_telemetry::layer::client::ClientTelemetryLayer;
use telltale_telemetry::layer::server::ServerTelemetryLayer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tower::{ServiceBuilder, ServiceExt};

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

type Hyper = HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn hyper_client() -> Hyper {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

async fn send(client: &Hyper, req: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    let res = client.request(req).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

fn get_req(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .header("user-agent", "telltale-test/1")
        .body(Full::default())
        .unwrap()
}

fn app(layer: ServerTelemetryLayer) -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
        )
        .route("/webhook", get(|| async { "hook" }))
        .route("/healthz", get(|| async { "ok" }))
        .layer(layer)
}

#[tokio::test]
async fn ok_request_span_attributes_and_metrics_agree() {
    let h = Harness::new();
    let addr = serve(app(h.server().build().unwrap())).await;
    let (status, body) = send(&hyper_client(), get_req(addr, "/users/42?q=1")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"user"[..]));

    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.status, Status::Unset);
    assert_eq!(
        attr_str(&span, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(attr_str(&span, "url.path").as_deref(), Some("/users/42"));
    assert_eq!(attr_str(&span, "url.query").as_deref(), Some("q=1"));
    assert_eq!(attr_str(&span, "url.scheme").as_deref(), Some("http"));
    assert_eq!(
        attr_str(&span, "http.route").as_deref(),
        Some("/users/{id}")
    );
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(200));
    assert_eq!(
        attr_str(&span, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        attr_str(&span, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(attr_i64(&span, "server.port"), Some(i64::from(addr.port())));
    assert_eq!(
        attr_str(&span, "client.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr_str(&span, "user_agent.original").as_deref(),
        Some("telltale-test/1")
    );
    assert!(attr(&span, "error.type").is_none());
    assert!(attr(&span, "http.request.method_original").is_none());

    let text = h
        .wait_metric(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/users/{id}",http_response_status_code="200",url_scheme="http"} 1"#)
        .await;
    assert!(
        text.contains(
            r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn not_found_without_route_is_named_by_method_and_not_an_error() {
    let h = Harness::new();
    let addr = serve(app(h.server().build().unwrap())).await;
    let client = hyper_client();
    assert_eq!(send(&client, get_req(addr, "/no/such/path")).await.0, 404);
    assert_eq!(send(&client, get_req(addr, "/missing")).await.0, 404);

    let spans = h.wait_spans(SpanKind::Server, 2).await;
    let unrouted = spans
        .iter()
        .find(|s| s.name == "GET")
        .expect("span named GET");
    assert!(attr(unrouted, "http.route").is_none());
    assert_eq!(attr_i64(unrouted, "http.response.status_code"), Some(404));
    assert_eq!(unrouted.status, Status::Unset);
    assert!(attr(unrouted, "error.type").is_none());
    let routed = spans.iter().find(|s| s.name == "GET /missing").unwrap();
    assert_eq!(routed.status, Status::Unset);

    let text = h
        .wait_metric(r#"http_route="/missing",http_response_status_code="404""#)
        .await;
    // The unmatched request has no route label, and its raw path is nowhere.
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(
        text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",url_scheme="http"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn server_error_sets_error_type_and_status_in_span_and_metrics() {
    let h = Harness::new();
    let addr = serve(app(h.server().build().unwrap())).await;
    assert_eq!(send(&hyper_client(), get_req(addr, "/boom")).await.0, 500);

    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(span.name, "GET /boom");
    assert!(matches!(span.status, Status::Error { .. }));
    assert_eq!(attr_str(&span, "error.type").as_deref(), Some("500"));
    h.wait_metric(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/boom",http_response_status_code="500",error_type="500",url_scheme="http"} 1"#).await;
}

#[tokio::test]
async fn unknown_method_is_other_and_named_http() {
    let h = Harness::new();
    let addr = serve(app(h.server().build().unwrap())).await;
    let req = Request::builder()
        .method(Method::from_bytes(b"PURGE").unwrap())
        .uri(format!("http://{addr}/users/1"))
        .body(Full::default())
        .unwrap();
    let (status, _) = send(&hyper_client(), req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(span.name, "HTTP");
    assert_eq!(
        attr_str(&span, "http.request.method").as_deref(),
        Some("_OTHER")
    );
    assert_eq!(
        attr_str(&span, "http.request.method_original").as_deref(),
        Some("PURGE")
    );
    h.wait_metric(r#"http_request_method="_OTHER""#).await;
}

#[tokio::test]
async fn sensitive_query_values_are_redacted() {
    let h = Harness::new();
    let layer = h
        .server()
        .redact_query_key("tenant_secret")
        .build()
        .unwrap();
    let addr = serve(app(layer)).await;
    send(
        &hyper_client(),
        get_req(
            addr,
            "/users/1?page=2&token=abc&Password=hunter2&tenant_secret=x",
        ),
    )
    .await;
    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(
        attr_str(&span, "url.query").as_deref(),
        Some("page=2&token=REDACTED&Password=REDACTED&tenant_secret=REDACTED")
    );
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

fn with_traceparent(mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    req.headers_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT_ID}-01").parse().unwrap(),
    );
    req
}

#[tokio::test]
async fn incoming_traceparent_is_continued() {
    let h = Harness::new();
    let addr = serve(app(h.server().build().unwrap())).await;
    send(&hyper_client(), with_traceparent(get_req(addr, "/users/7"))).await;
    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(span.span_context.trace_id().to_string(), TRACE_ID);
    assert_eq!(span.parent_span_id.to_string(), PARENT_ID);
    assert!(span.parent_span_is_remote);
}

#[tokio::test]
async fn public_endpoint_starts_a_new_trace_linked_to_the_caller() {
    let h = Harness::new();
    let layer = h.server().public_route("/webhook").build().unwrap();
    let addr = serve(app(layer)).await;
    let client = hyper_client();
    send(&client, with_traceparent(get_req(addr, "/webhook"))).await;
    send(&client, with_traceparent(get_req(addr, "/users/1"))).await;
    let spans = h.wait_spans(SpanKind::Server, 2).await;

    let public = spans.iter().find(|s| s.name == "GET /webhook").unwrap();
    assert_ne!(public.span_context.trace_id().to_string(), TRACE_ID);
    assert_eq!(public.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_eq!(public.links.links.len(), 1);
    let link = &public.links.links[0].span_context;
    assert_eq!(link.trace_id().to_string(), TRACE_ID);
    assert_eq!(link.span_id().to_string(), PARENT_ID);

    let private = spans.iter().find(|s| s.name == "GET /users/{id}").unwrap();
    assert_eq!(private.span_context.trace_id().to_string(), TRACE_ID);
}

#[tokio::test]
async fn client_span_injects_traceparent_seen_by_the_server() {
    let h = Harness::new();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Option<String>>();
    let app = Router::new()
        .route(
            "/echo",
            get(move |headers: http::HeaderMap| {
                let seen_tx = seen_tx.clone();
                async move {
                    let tp = headers
                        .get("traceparent")
                        .map(|v| v.to_str().unwrap().to_owned());
                    seen_tx.send(tp).unwrap();
                    (StatusCode::NOT_FOUND, "nope")
                }
            }),
        )
        .layer(h.server().build().unwrap());
    let addr = serve(app).await;
    let client = ServiceBuilder::new()
        .layer(
            ClientTelemetryLayer::builder()
                .red_config(h.config.clone())
                .build()
                .unwrap(),
        )
        .service(hyper_client());
    let uri = format!("http://{addr}/echo?access_token=abc&x=1");
    let res = client
        .oneshot(Request::get(uri).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    res.into_body().collect().await.unwrap();

    let traceparent = seen_rx.recv().await.unwrap().expect("traceparent injected");
    let client_span = h.wait_spans(SpanKind::Client, 1).await.remove(0);
    let server_span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    let cx = &client_span.span_context;
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", cx.trace_id(), cx.span_id())
    );
    assert_eq!(server_span.span_context.trace_id(), cx.trace_id());
    assert_eq!(server_span.parent_span_id, cx.span_id());

    assert_eq!(client_span.name, "GET");
    // 4xx is an error on the client side only.
    assert!(matches!(client_span.status, Status::Error { .. }));
    assert_eq!(attr_str(&client_span, "error.type").as_deref(), Some("404"));
    assert_eq!(server_span.status, Status::Unset);
    assert_eq!(
        attr_str(&client_span, "url.full"),
        Some(format!("http://{addr}/echo?access_token=REDACTED&x=1"))
    );
    assert_eq!(
        attr_str(&client_span, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr_i64(&client_span, "server.port"),
        Some(i64::from(addr.port()))
    );
    assert_eq!(
        attr_i64(&client_span, "http.response.status_code"),
        Some(404)
    );
    assert_eq!(
        attr_str(&client_span, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    h.wait_metric(&format!(
        r#"http_client_request_duration_seconds_count{{http_request_method="GET",server_address="127.0.0.1",server_port="{}",http_response_status_code="404",error_type="404"}} 1"#,
        addr.port()
    ))
    .await;
}

#[tokio::test]
async fn client_propagates_w3c_even_without_spans_or_propagator() {
    telltale_testkit::init();
    // No subscriber, no global propagator: the current context (here a remote
    // parent made current by hand) is still propagated as W3C.
    let (tx, rx) = oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let svc = ServiceBuilder::new()
        .layer(
            ClientTelemetryLayer::builder()
                .tracing(false)
                .metrics(false)
                .build()
                .unwrap(),
        )
        .service_fn(move |req: Request<Full<Bytes>>| {
            let tp = req.headers().get("traceparent").cloned();
            if let Some(tx) = tx.lock().unwrap().take() {
                tx.send(tp).unwrap();
            }
            async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
            }
        });
    let sc = opentelemetry::trace::SpanContext::new(
        TRACE_ID.parse::<u128>().map_or_else(
            |_| opentelemetry::trace::TraceId::from_hex(TRACE_ID).unwrap(),
            opentelemetry::trace::TraceId::from,
        ),
        opentelemetry::trace::SpanId::from_hex(PARENT_ID).unwrap(),
        opentelemetry::trace::TraceFlags::SAMPLED,
        true,
        Default::default(),
    );
    let _attached = opentelemetry::Context::new()
        .with_remote_span_context(sc)
        .attach();
    svc.oneshot(
        Request::get("http://x.test/")
            .body(Full::default())
            .unwrap(),
    )
    .await
    .unwrap();
    let tp = rx.await.unwrap().expect("traceparent");
    assert_eq!(tp, format!("00-{TRACE_ID}-{PARENT_ID}-01"));
}

#[tokio::test]
async fn health_checks_are_counted_but_not_traced() {
    let h = Harness::new();
    let addr = serve(app(h.server().skip_tracing("/webhook").build().unwrap())).await;
    let client = hyper_client();
    send(&client, get_req(addr, "/healthz")).await;
    send(&client, get_req(addr, "/webhook")).await;
    send(&client, get_req(addr, "/users/1")).await;
    h.wait_metric(r#"http_route="/users/{id}""#).await;
    let text = h.wait_metric(r#"http_route="/healthz""#).await;
    assert!(text.contains(r#"http_route="/webhook""#), "{text}");
    let spans = h.wait_spans(SpanKind::Server, 1).await;
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["GET /users/{id}"]);
}

/// A body fed chunk by chunk through a channel; ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
    }
}

fn streaming_app(
    layer: ServerTelemetryLayer,
) -> (Router, mpsc::UnboundedReceiver<mpsc::Sender<Bytes>>) {
    let (senders_tx, senders_rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/stream",
            get(move || {
                let senders_tx = senders_tx.clone();
                async move {
                    let (tx, rx) = mpsc::channel(4);
                    tx.send(Bytes::from_static(b"first")).await.unwrap();
                    senders_tx.send(tx).unwrap();
                    Body::new(ChannelBody(rx))
                }
            }),
        )
        .layer(layer);
    (app, senders_rx)
}

#[tokio::test]
async fn span_and_duration_end_with_the_body_not_the_headers() {
    let h = Harness::new();
    let (app, mut senders) = streaming_app(h.server().build().unwrap());
    let addr = serve(app).await;
    let res = hyper_client()
        .request(get_req(addr, "/stream"))
        .await
        .unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first");
    let tx = senders.recv().await.unwrap();
    // Headers and a chunk are out, the body is not over: no span yet, request active.
    assert!(h.spans().is_empty());
    h.wait_metric(r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 1"#)
        .await;
    let before_last = SystemTime::now();
    tx.send(Bytes::from_static(b"last")).await.unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"last");

    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert!(
        span.end_time >= before_last,
        "span ended before the last chunk"
    );
    assert_eq!(span.status, Status::Unset);
    h.wait_metric(r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#)
        .await;
    h.wait_metric(r#"http_route="/stream",http_response_status_code="200",url_scheme="http"} 1"#)
        .await;
}

#[tokio::test]
async fn client_disconnect_mid_body_sets_error_type_and_settles_the_gauge() {
    let h = Harness::new();
    let (app, mut senders) = streaming_app(h.server().build().unwrap());
    let addr = serve(app).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let mut read = 0;
    while !String::from_utf8_lossy(&buf[..read]).contains("first") {
        let n = stream.read(&mut buf[read..]).await.unwrap();
        assert!(n > 0, "server closed early");
        read += n;
    }
    let _tx = senders.recv().await.unwrap(); // keep the body pending
    h.wait_metric(r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 1"#)
        .await;
    drop(stream);

    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(attr_str(&span, "error.type").as_deref(), Some("cancelled"));
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(200));
    assert!(matches!(span.status, Status::Error { .. }));
    let text = h
        .wait_metric(
            r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#,
        )
        .await;
    assert!(
        text.contains(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/stream",http_response_status_code="200",error_type="cancelled",url_scheme="http"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn trusted_proxy_forwarded_for_is_honoured_only_from_trusted_peers() {
    let h = Harness::new();
    let trusting = serve(app(h
        .server()
        .trusted_proxies(["127.0.0.0/8"])
        .build()
        .unwrap()))
    .await;
    let mut req = get_req(trusting, "/users/1");
    req.headers_mut()
        .insert("x-forwarded-for", "203.0.113.5, 127.0.0.9".parse().unwrap());
    send(&hyper_client(), req).await;
    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(
        attr_str(&span, "client.address").as_deref(),
        Some("203.0.113.5")
    );

    h.exporter.reset();
    let untrusting = serve(app(h.server().build().unwrap())).await;
    let mut req = get_req(untrusting, "/users/1");
    req.headers_mut()
        .insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
    send(&hyper_client(), req).await;
    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(
        attr_str(&span, "client.address").as_deref(),
        Some("127.0.0.1")
    );
}

#[tokio::test]
async fn captured_headers_and_correlation_id() {
    let h = Harness::new();
    let layer = h
        .server()
        .capture_request_headers(["X-Tenant"])
        .capture_response_headers(["content-type"])
        .build()
        .unwrap();
    let app = app(layer).layer(axum::middleware::from_fn(
        |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            req.extensions_mut()
                .insert("req-123".parse::<telltale_core::CorrelationId>().unwrap());
            next.run(req).await
        },
    ));
    let addr = serve(app).await;
    let mut req = get_req(addr, "/users/1");
    req.headers_mut()
        .insert("x-tenant", "acme".parse().unwrap());
    req.headers_mut()
        .insert("authorization", "Bearer x".parse().unwrap());
    send(&hyper_client(), req).await;
    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    match attr(&span, "http.request.header.x-tenant") {
        Some(Value::Array(opentelemetry::Array::String(values))) => {
            assert_eq!(
                values.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                ["acme"]
            );
        }
        other => panic!("x-tenant captured as {other:?}"),
    }
    assert!(
        attr(&span, "http.request.header.x-tenant")
            .unwrap()
            .to_string()
            .contains("acme")
    );
    assert!(attr(&span, "http.request.header.authorization").is_none());
    assert!(
        attr(&span, "http.response.header.content-type")
            .unwrap()
            .to_string()
            .contains("text/plain")
    );
    assert_eq!(
        attr_str(&span, "correlation_id").as_deref(),
        Some("req-123")
    );
}

/// The values of a captured header as the span holds them (a string array,
/// as the semantic conventions define `http.request.header.<key>`).
fn header_values(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Vec<String> {
    match attr(span, key) {
        Some(Value::Array(opentelemetry::Array::String(values))) => {
            values.iter().map(|v| v.as_str().to_owned()).collect()
        }
        other => panic!("{key} captured as {other:?}"),
    }
}

/// A header sent more than once is one attribute holding every value in the
/// order received, on the server and the client, for request and response
/// headers; names are matched case-insensitively and a header that is absent
/// gets no attribute.
#[tokio::test]
async fn captured_headers_keep_every_value_in_order_on_both_sides() {
    let h = Harness::new();
    let server = h
        .server()
        .capture_request_headers(["X-Tenant", "x-absent"])
        .capture_response_headers(["x-served-by"])
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/multi",
            get(|| async {
                let mut res = http::Response::new(Body::from("ok"));
                for v in ["a", "b"] {
                    res.headers_mut().append("x-served-by", v.parse().unwrap());
                }
                res
            }),
        )
        .layer(server);
    let addr = serve(app).await;
    let client = ServiceBuilder::new()
        .layer(
            ClientTelemetryLayer::builder()
                .red_config(h.config.clone())
                .capture_request_headers(["x-tenant"])
                .capture_response_headers(["X-Served-By"])
                .build()
                .unwrap(),
        )
        .service(hyper_client());
    let mut req = Request::get(format!("http://{addr}/multi"))
        .body(Full::default())
        .unwrap();
    for v in ["acme", "beta", "gamma"] {
        req.headers_mut().append("x-tenant", v.parse().unwrap());
    }
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();

    let server_span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    let client_span = h.wait_spans(SpanKind::Client, 1).await.remove(0);
    for span in [&server_span, &client_span] {
        assert_eq!(
            header_values(span, "http.request.header.x-tenant"),
            ["acme", "beta", "gamma"]
        );
        assert_eq!(
            header_values(span, "http.response.header.x-served-by"),
            ["a", "b"]
        );
    }
    assert!(attr(&server_span, "http.request.header.x-absent").is_none());
}

#[test]
fn from_env_reads_variables_and_rejects_bad_values() {
    telltale_testkit::init();
    use telltale_core::config::Env;
    let env = Env::from_pairs([
        ("TELLTALE_HTTP_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
        ("TELLTALE_HTTP_SERVER_CAPTURE_REQUEST_HEADERS", "x-tenant"),
        ("TELLTALE_HTTP_SERVER_PUBLIC_ENDPOINT", "true"),
    ]);
    let layer = ServerTelemetryLayer::from_env_source(&env).unwrap();
    let debug = format!("{layer:?}");
    assert!(debug.contains("public_endpoint: true"), "{debug}");
    let bad = Env::from_pairs([("TELLTALE_HTTP_TRUSTED_PROXIES", "10.0.0.0/99")]);
    let err = ServerTelemetryLayer::from_env_source(&bad).unwrap_err();
    assert!(err.to_string().contains("10.0.0.0/99"), "{err}");
    let bad = Env::from_pairs([("TELLTALE_HTTP_SERVER_PUBLIC_ENDPOINT", "maybe")]);
    assert!(ServerTelemetryLayer::from_env_source(&bad).is_err());
    assert!(
        ServerTelemetryLayer::builder()
            .capture_request_headers(["bad header"])
            .build()
            .is_err()
    );
    let client = ClientTelemetryLayer::from_env_source(&Env::from_pairs([(
        "TELLTALE_HTTP_CLIENT_PROPAGATE",
        "off",
    )]))
    .unwrap();
    assert!(format!("{client:?}").contains("propagate: false"));
}

#[tokio::test]
async fn inner_timeout_is_classified_as_timeout() {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    tokio::time::pause();
    let h = Harness::new();
    let service = ServiceBuilder::new()
        .layer(h.server().build().unwrap())
        .timeout(Duration::from_secs(5))
        .service_fn(|_req: Request<hyper::body::Incoming>| async {
            std::future::pending::<Result<http::Response<Full<Bytes>>, std::convert::Infallible>>()
                .await
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    // The server fails the request (hyper closes the connection).
    assert!(
        hyper_client()
            .request(get_req(addr, "/slow"))
            .await
            .is_err()
    );

    let span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(span.name, "GET");
    assert_eq!(attr_str(&span, "error.type").as_deref(), Some("timeout"));
    assert_eq!(span.status, Status::error("request timed out"));
    assert!(attr(&span, "http.response.status_code").is_none());
    let text = h
        .wait_metric(r#"http_server_request_duration_seconds_count{http_request_method="GET",error_type="timeout",url_scheme="http"} 1"#)
        .await;
    assert!(
        text.contains(
            r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn client_timeout_is_an_error_and_the_abandoned_server_request_is_cancelled() {
    tokio::time::pause();
    let h = Harness::new();
    let app = Router::new()
        .route("/hang", get(std::future::pending::<&'static str>))
        .layer(h.server().build().unwrap());
    let addr = serve(app).await;
    let client = ServiceBuilder::new()
        .layer(
            ClientTelemetryLayer::builder()
                .red_config(h.config.clone())
                .build()
                .unwrap(),
        )
        .timeout(Duration::from_secs(5))
        .service(hyper_client());
    let err = client.oneshot(get_req(addr, "/hang")).await.unwrap_err();
    assert!(telltale_core::is_timeout(&*err), "{err}");

    let client_span = h.wait_spans(SpanKind::Client, 1).await.remove(0);
    assert_eq!(
        attr_str(&client_span, "error.type").as_deref(),
        Some("timeout")
    );
    assert!(matches!(client_span.status, Status::Error { .. }));

    // The client went away: the server's future is dropped, the request is
    // cancelled, and the active gauge is back to 0.
    let server_span = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(server_span.name, "GET /hang");
    assert_eq!(
        attr_str(&server_span, "error.type").as_deref(),
        Some("cancelled")
    );
    assert!(attr(&server_span, "http.response.status_code").is_none());
    let text = h
        .wait_metric(r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/hang",error_type="cancelled",url_scheme="http"} 1"#)
        .await;
    assert!(
        text.contains(
            r#"http_server_active_requests{http_request_method="GET",url_scheme="http"} 0"#
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"http_client_active_requests{{http_request_method="GET",server_address="127.0.0.1",server_port="{}"}} 0"#,
            addr.port()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn correlation_layer_fills_correlation_id_inside_or_outside() {
    use telltale_core::CorrelationId;
    use tower::util::MapRequestLayer;

    // What a correlation layer does, with telltale-core's types: outside, it
    // puts the ID in the request extensions; inside, it records it on the
    // current span (ours).
    fn id_of<B>(req: &http::Request<B>) -> CorrelationId {
        CorrelationId::from_header_value(req.headers()["x-correlation-id"].clone()).unwrap()
    }
    let extension = MapRequestLayer::new(|mut req: http::Request<axum::body::Body>| {
        let id = id_of(&req);
        req.extensions_mut().insert(id);
        req
    });
    let record = MapRequestLayer::new(|req: http::Request<axum::body::Body>| {
        tracing::Span::current().record("correlation_id", id_of(&req).as_str());
        req
    });

    let h = Harness::new();
    let handler = || async { "ok" };
    let outside = Router::new()
        .route("/outside", get(handler))
        .layer(h.server().build().unwrap())
        .layer(extension);
    let inside = Router::new()
        .route("/inside", get(handler))
        .layer(record)
        .layer(h.server().build().unwrap());
    let client = hyper_client();
    for (app, path, id) in [(outside, "/outside", "out-1"), (inside, "/inside", "in-1")] {
        let addr = serve(app).await;
        let mut req = get_req(addr, path);
        req.headers_mut()
            .insert("x-correlation-id", id.parse().unwrap());
        send(&client, req).await;
    }
    let spans = h.wait_spans(SpanKind::Server, 2).await;
    for (name, id) in [("GET /outside", "out-1"), ("GET /inside", "in-1")] {
        let span = spans.iter().find(|s| s.name == name).unwrap();
        assert_eq!(
            attr_str(span, "correlation_id").as_deref(),
            Some(id),
            "{name}"
        );
    }
}
