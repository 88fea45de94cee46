//! `ReqwestStack` in a reqwest-middleware client against real axum servers
//! on 127.0.0.1:0 (behind telltale's server span and correlation layers):
//! one trace across the hop, the correlation ID out, the per-host breaker
//! opening on 5xx and then refusing without calling, the timeout, reqwest's
//! own errors and extensions passing through untouched.
//!
//! This test binary installs telemetry globally once (its own process).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use http::Extensions;
use opentelemetry::trace::SpanKind;
use reqwest_middleware::{ClientBuilder, Middleware, Next};
use telltale_correlation::{CorrelationId, scope};
use telltale_reqwest::ReqwestStack;
use telltale_resilience::keyed::Registry;
use telltale_resilience::{Bulkhead, CircuitBreaker, Rejection, SlidingWindow, State};

mod support;
use support::{attr, client, recorder, serve, wait_span};

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn one_trace_across_the_hop_and_the_correlation_id_arrives() {
    recorder();
    let app = Router::new().route(
        "/orders/{id}",
        get(|headers: HeaderMap| async move {
            format!(
                "{}|{}",
                header(&headers, "x-correlation-id"),
                header(&headers, "traceparent")
            )
        }),
    );
    let addr = serve(app).await;
    let client = client(ReqwestStack::new());
    let url = format!("http://{addr}/orders/42?token=secret");
    let id: CorrelationId = "reqwest-hop-1".parse().unwrap();
    let res = scope(id, client.get(&url).send()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.url().as_str(), url);
    // The layers' body wrappers keep the size hint: Content-Length is known.
    let length = res.content_length();
    let body = res.text().await.unwrap();
    assert_eq!(length, Some(body.len() as u64));
    let (cid, traceparent) = body.split_once('|').unwrap();
    assert_eq!(cid, "reqwest-hop-1");
    // W3C Trace Context: version-traceid-parentid-flags, sampled.
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!((parts[0], parts[3]), ("00", "01"), "{traceparent}");

    let client_span =
        wait_span(|s| *s.kind() == SpanKind::Client && s.span_id().to_string() == parts[2]).await;
    assert_eq!(client_span.trace_id().to_string(), parts[1]);
    assert_eq!(client_span.name(), "GET");
    assert_eq!(
        attr(&client_span, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr(&client_span, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(&client_span, "server.port"),
        Some(addr.port().to_string())
    );
    assert_eq!(
        attr(&client_span, "url.full"),
        Some(format!("http://{addr}/orders/42?token=REDACTED"))
    );
    assert_eq!(
        attr(&client_span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&client_span, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        attr(&client_span, "correlation_id").as_deref(),
        None,
        "the CLIENT span is not where the ID is recorded"
    );

    // The server span continues the trace: its parent is the CLIENT span.
    let server_span =
        wait_span(|s| *s.kind() == SpanKind::Server && s.trace_id() == client_span.trace_id())
            .await;
    assert_eq!(server_span.parent_span_id(), Some(client_span.span_id()));
    assert_eq!(
        attr(&server_span, "http.route").as_deref(),
        Some("/orders/{id}")
    );
}

/// A server whose every answer is `status`, counting the calls that reach it.
async fn counting_server(status: StatusCode) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/pay",
        get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                status
            }
        }),
    );
    (serve(app).await, hits)
}

fn breakers(name: &str) -> Arc<Registry<CircuitBreaker>> {
    Registry::breakers(
        CircuitBreaker::builder(name)
            .sliding_window(SlidingWindow::Count(4))
            .minimum_calls(2)
            .failure_rate_threshold(0.5)
            .wait_in_open(Duration::from_secs(600)),
        10,
        Duration::from_secs(600),
    )
    .unwrap()
}

#[tokio::test]
async fn the_hosts_breaker_opens_on_5xx_then_refuses_without_calling() {
    recorder();
    let (addr, hits) = counting_server(StatusCode::INTERNAL_SERVER_ERROR).await;
    let registry = breakers("reqwest-5xx");
    let client = client(ReqwestStack::new().breakers(registry.clone()));
    let url = format!("http://{addr}/pay");
    for _ in 0..2 {
        // A 5xx is a response, not an error, for the caller...
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 500);
    }
    // ...and a failure for the breaker of that host.
    let breaker = registry.get(Some("127.0.0.1"));
    assert_eq!(breaker.name(), "reqwest-5xx/127.0.0.1");
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let err = client.get(&url).send().await.unwrap_err();
    assert!(err.is_middleware(), "{err:?}");
    match telltale_reqwest::rejection(&err) {
        Some(Rejection::Open(open)) => {
            assert_eq!(&*open.name, "reqwest-5xx/127.0.0.1");
            assert!(open.retry_after.is_some());
        }
        other => panic!("expected an open circuit, got {other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the refused call was sent");
    // The refused call is a failed CLIENT span with `error.type` circuit_open.
    let span = wait_span(|s| {
        *s.kind() == SpanKind::Client
            && attr(s, "error.type").as_deref() == Some("circuit_open")
            && attr(s, "server.port") == Some(addr.port().to_string())
    })
    .await;
    assert_eq!(attr(&span, "http.response.status_code"), None);

    // Another host has a breaker of its own, still closed.
    assert_eq!(registry.get(Some("localhost")).state(), State::Closed);
    let other = format!("http://localhost:{}/pay", addr.port());
    assert_eq!(client.get(&other).send().await.unwrap().status(), 500);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_timeout_fails_the_call_and_counts_against_the_breaker() {
    recorder();
    let app = Router::new().route("/hang", get(std::future::pending::<&'static str>));
    let addr = serve(app).await;
    let registry = breakers("reqwest-timeout");
    let client = client(
        ReqwestStack::new()
            .timeout(Duration::from_millis(50))
            .breakers(registry.clone()),
    );
    let url = format!("http://{addr}/hang");
    for _ in 0..2 {
        let err = client.get(&url).send().await.unwrap_err();
        assert!(telltale_reqwest::is_timeout(&err), "{err:?}");
        assert!(telltale_reqwest::rejection(&err).is_none());
    }
    assert_eq!(registry.get(Some("127.0.0.1")).state(), State::Open);
    let span = wait_span(|s| {
        *s.kind() == SpanKind::Client
            && attr(s, "error.type").as_deref() == Some("timeout")
            && attr(s, "server.port") == Some(addr.port().to_string())
    })
    .await;
    assert_eq!(attr(&span, "url.full"), Some(url));
}

#[tokio::test]
async fn reqwest_errors_and_per_request_settings_pass_through_unchanged() {
    recorder();
    // A port held by a socket that does not listen: connections are refused
    // (and no other test can take the port meanwhile).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = socket.local_addr().unwrap();
    let client = client(ReqwestStack::new());
    let err = client
        .get(format!("http://{closed}/"))
        .send()
        .await
        .unwrap_err();
    match &err {
        reqwest_middleware::Error::Reqwest(e) => assert!(e.is_connect(), "{e:?}"),
        other => panic!("expected reqwest's own error, got {other:?}"),
    }
    drop(socket);

    // reqwest's per-request timeout survives the trip through the layers.
    let app = Router::new().route("/hang", get(std::future::pending::<&'static str>));
    let addr = serve(app).await;
    let err = client
        .get(format!("http://{addr}/hang"))
        .timeout(Duration::from_millis(50))
        .send()
        .await
        .unwrap_err();
    match &err {
        reqwest_middleware::Error::Reqwest(e) => assert!(e.is_timeout(), "{e:?}"),
        other => panic!("expected reqwest's own timeout, got {other:?}"),
    }
    assert!(telltale_reqwest::is_timeout(&err));
}

#[derive(Clone, Debug, PartialEq)]
struct Outer(&'static str);

#[derive(Clone, Debug, PartialEq)]
struct Inner(String);

/// Runs after `ReqwestStack`: reads what the outer middleware put in the
/// extensions, sees the headers the stack added, and leaves something back.
struct InnerMiddleware;

#[async_trait::async_trait]
impl Middleware for InnerMiddleware {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let outer = extensions.get::<Outer>().map_or("missing", |o| o.0);
        let traceparent = req.headers().contains_key("traceparent");
        extensions.insert(Inner(format!("{outer}/{traceparent}")));
        next.run(req, extensions).await
    }
}

/// What `OuterMiddleware` finds in the extensions after the call.
type Seen = Arc<std::sync::Mutex<Option<(Option<Outer>, Option<Inner>)>>>;

/// Runs before `ReqwestStack`: puts `Outer` in, reads both back.
struct OuterMiddleware(Seen);

#[async_trait::async_trait]
impl Middleware for OuterMiddleware {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        extensions.insert(Outer("outer"));
        let res = next.run(req, extensions).await;
        *self.0.lock().unwrap() = Some((
            extensions.get::<Outer>().cloned(),
            extensions.get::<Inner>().cloned(),
        ));
        res
    }
}

#[tokio::test]
async fn middleware_around_it_keeps_its_extensions_both_ways() {
    recorder();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/hang", get(std::future::pending::<&'static str>));
    let addr = serve(app).await;
    let seen: Seen = Arc::default();
    let chain = |stack: ReqwestStack| {
        ClientBuilder::new(reqwest::Client::new())
            .with(OuterMiddleware(seen.clone()))
            .with(stack)
            .with(InnerMiddleware)
            .build()
    };
    let client = chain(ReqwestStack::new());
    let res = client.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "ok");
    assert_eq!(
        seen.lock().unwrap().clone(),
        Some((Some(Outer("outer")), Some(Inner("outer/true".to_owned()))))
    );

    // The timeout drops the rest of the chain: what the caller put in stays.
    let client = chain(ReqwestStack::new().timeout(Duration::from_millis(50)));
    let err = client
        .get(format!("http://{addr}/hang"))
        .send()
        .await
        .unwrap_err();
    assert!(telltale_reqwest::is_timeout(&err), "{err:?}");
    assert_eq!(
        seen.lock().unwrap().clone(),
        Some((Some(Outer("outer")), None))
    );
}

#[tokio::test]
async fn the_hosts_bulkhead_refuses_a_call_beyond_its_slots_without_sending_it() {
    recorder();
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::channel::<()>(4);
    let release = Arc::new(tokio::sync::Notify::new());
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/slow",
        get({
            let release = release.clone();
            let hits = hits.clone();
            move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let _ = arrived_tx.send(()).await;
                release.notified().await;
                "done"
            }
        }),
    );
    let addr = serve(app).await;
    let registry = Registry::bulkheads(
        Bulkhead::builder("reqwest-bulkhead")
            .max_concurrent(1)
            .max_wait(Duration::ZERO),
        10,
        Duration::from_secs(600),
    )
    .unwrap();
    let client = client(ReqwestStack::new().bulkheads(registry.clone()));
    let url = format!("http://{addr}/slow");
    let first = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move { client.get(&url).send().await.unwrap().text().await.unwrap() }
    });
    // The first call holds the host's only slot while the server holds it.
    tokio::time::timeout(Duration::from_secs(30), arrived.recv())
        .await
        .expect("the first call arrives")
        .unwrap();
    let err = client.get(&url).send().await.unwrap_err();
    match telltale_reqwest::rejection(&err) {
        Some(Rejection::Full(full)) => {
            assert_eq!(&*full.name, "reqwest-bulkhead/127.0.0.1");
            assert_eq!(full.max_concurrent, 1);
        }
        other => panic!("expected a full bulkhead, got {other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the refused call was sent");
    release.notify_one();
    assert_eq!(first.await.unwrap(), "done");
    // The slot is free again once the first body has been read.
    assert_eq!(registry.get(Some("127.0.0.1")).available(), 1);
}
