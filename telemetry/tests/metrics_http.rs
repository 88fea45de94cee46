//! RED metrics on a real axum service driven by a real HTTP client, read back from
//! the rendered Prometheus exposition and from the `/metrics` endpoints.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::StatusCode;
use metrics_exporter_prometheus::PrometheusHandle;
use telltale_telemetry::metrics::{Naming, RedConfig, metrics_router, serve_metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{MAX_WAIT, get as fetch, samples, value};

/// telltale's server layer (spans off: no subscriber) feeding a local Prometheus
/// recorder built with `config`, plus the `/metrics` route.
fn app(config: RedConfig) -> (Router, PrometheusHandle) {
    let (config, handle) = support::local_prometheus(config);
    let router = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/hang", get(std::future::pending::<&'static str>))
        .route(
            "/stream",
            get(|| async { Body::new(OneThenPending(false)) }),
        )
        // An explicit fallback, so that unmatched requests pass through the layer.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(support::server_layer(config))
        .merge(metrics_router(handle.clone()));
    (router, handle)
}

/// A body that sends one chunk and then never ends: the client reads the head
/// and the chunk, then goes away.
struct OneThenPending(bool);

impl http_body::Body for OneThenPending {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.0 {
            std::task::Poll::Pending
        } else {
            self.0 = true;
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
                b"first chunk\n",
            )))))
        }
    }
}

/// Polls the exposition until `done` accepts it (at most [`MAX_WAIT`]).
async fn wait_render(handle: &PrometheusHandle, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + MAX_WAIT;
    loop {
        let text = handle.render();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn active(text: &str) -> f64 {
    value(
        text,
        "http_server_active_requests",
        &[r#"http_request_method="GET""#, r#"url_scheme="http""#],
    )
    .unwrap_or(0.0)
}

/// The series of an exposition, without their values.
fn series_names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_are_labelled_by_route_template_and_exposed_on_metrics() {
    let (app, _) = app(RedConfig::default());
    let addr = support::serve(app).await;
    let client = support::client();
    for i in 0..20 {
        let (status, _) = fetch(&client, addr, &format!("/items/{i}?token=secret{i}")).await;
        assert_eq!(status, StatusCode::OK);
    }
    for _ in 0..5 {
        assert_eq!(
            fetch(&client, addr, "/fail").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    for i in 0..3 {
        assert_eq!(
            fetch(&client, addr, &format!("/no/such/{i}")).await.0,
            StatusCode::NOT_FOUND
        );
    }

    let req = http::Request::get(format!("http://{addr}/metrics"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = {
        use http_body_util::BodyExt;
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    };

    let count = "http_server_request_duration_seconds_count";
    assert_eq!(
        samples(&text, count),
        [
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",url_scheme="http"} 3"#,
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/fail",http_response_status_code="500",error_type="500",url_scheme="http"} 5"#,
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/items/{id}",http_response_status_code="200",url_scheme="http"} 20"#,
        ],
        "{text}"
    );
    assert!(
        !text.contains("/items/1"),
        "raw paths must never be labels:\n{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.contains("/no/such"), "{text}");
    // The bucket series are cumulative and end with +Inf = count.
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_bucket",
            &[r#"http_route="/items/{id}""#, r#"le="+Inf""#]
        ),
        Some(20.0)
    );
    assert_eq!(active(&text), 0.0);
    let (ok, problems) = support::promtool_check_metrics(&text);
    assert!(
        ok && problems.trim().is_empty(),
        "promtool: {problems}\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_distinct_paths_add_no_series() {
    let (app, handle) = app(RedConfig::default());
    let addr = support::serve(app).await;
    let client = support::client();
    // Warm up: one matched and one unmatched request create their series.
    assert_eq!(fetch(&client, addr, "/items/warm").await.0, StatusCode::OK);
    assert_eq!(
        fetch(&client, addr, "/nowhere").await.0,
        StatusCode::NOT_FOUND
    );
    let before = series_names(&handle.render());

    let total: u64 = 100_000;
    let tasks: u64 = 32;
    let mut joins = Vec::new();
    for t in 0..tasks {
        let client = client.clone();
        joins.push(tokio::spawn(async move {
            // xorshift: distinct pseudo-random paths without an extra crate.
            let mut state = 0x2545_F491_4F6C_DD1D_u64 ^ (t + 1).wrapping_mul(0x9E37_79B9);
            for i in 0..total / tasks {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let path = if i % 2 == 0 {
                    format!("/items/{state:016x}")
                } else {
                    format!("/random/{state:016x}/{i}")
                };
                let (status, _) = fetch(&client, addr, &path).await;
                assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND);
            }
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    let text = handle.render();
    assert_eq!(series_names(&text), before, "no series may appear:\n{text}");
    let count = "http_server_request_duration_seconds_count";
    let matched = value(&text, count, &[r#"http_route="/items/{id}""#]).unwrap();
    let unmatched = value(&text, count, &[r#"http_response_status_code="404""#]).unwrap();
    assert_eq!(matched + unmatched, (total + 2) as f64);
    assert!(
        !text.contains(telltale_telemetry::metrics::OVERFLOW_METRIC),
        "templates never overflow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_gauge_returns_to_zero_after_client_disconnects() {
    let (app, handle) = app(RedConfig::default());
    let addr = support::serve(app).await;

    // Requests whose handler never answers: the client closes the connection.
    let mut hanging = Vec::new();
    for _ in 0..10 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /hang HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        hanging.push(stream);
    }
    wait_render(&handle, "10 active requests", |t| active(t) == 10.0).await;
    drop(hanging);
    // The layer settles the dropped futures as cancelled, with no status.
    let text = wait_render(&handle, "the gauge back to 0 after disconnects", |t| {
        active(t) == 0.0
            && value(
                t,
                "http_server_request_duration_seconds_count",
                &[r#"http_route="/hang""#, r#"error_type="cancelled""#],
            ) == Some(10.0)
    })
    .await;
    assert_eq!(
        samples(&text, "http_server_request_duration_seconds_count"),
        [
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/hang",error_type="cancelled",url_scheme="http"} 10"#
        ],
    );

    // Responses whose body never ends: the client reads the head and the first
    // chunk, then closes. The body is dropped: recorded as cancelled.
    let mut streaming = Vec::new();
    for _ in 0..5 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("first chunk") {
            let n = tokio::time::timeout(MAX_WAIT, stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "server closed early");
            got.extend_from_slice(&buf[..n]);
        }
        streaming.push(stream);
    }
    let text = handle.render();
    assert_eq!(active(&text), 5.0, "{text}");
    drop(streaming);
    let text = wait_render(&handle, "cancelled streams recorded", |t| {
        active(t) == 0.0
            && value(
                t,
                "http_server_request_duration_seconds_count",
                &[r#"http_route="/stream""#, r#"error_type="cancelled""#],
            ) == Some(5.0)
    })
    .await;
    assert_eq!(
        samples(&text, "http_server_request_duration_seconds_count"),
        [
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/hang",error_type="cancelled",url_scheme="http"} 10"#,
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/stream",http_response_status_code="200",error_type="cancelled",url_scheme="http"} 5"#,
        ],
        "a body dropped after the head keeps the status it sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_listener_serves_until_dropped() {
    let (app, handle) = app(RedConfig::builder()
        .naming(Naming::Classic)
        .build()
        .unwrap());
    let app_addr = support::serve(app).await;
    let client = support::client();
    for _ in 0..3 {
        fetch(&client, app_addr, "/items/1").await;
    }
    fetch(&client, app_addr, "/fail").await;

    let listener = serve_metrics("127.0.0.1:0".parse().unwrap(), handle)
        .await
        .unwrap();
    let addr = listener.local_addr();
    let (status, text) = fetch(&client, addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        samples(&text, "http_requests_total"),
        [
            r#"http_requests_total{method="GET",endpoint="/fail",code="500"} 1"#,
            r#"http_requests_total{method="GET",endpoint="/items/{id}",code="200"} 3"#,
        ],
        "{text}"
    );
    assert!(
        text.contains("# TYPE http_request_duration_seconds histogram"),
        "{text}"
    );
    let (ok, problems) = support::promtool_check_metrics(&text);
    assert!(
        ok && problems.trim().is_empty(),
        "promtool: {problems}\n{text}"
    );

    drop(listener);
    let deadline = Instant::now() + MAX_WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "listener still accepting after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
