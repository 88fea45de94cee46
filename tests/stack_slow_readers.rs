//! Issue 14, item 6, on a real server: 16 raw TCP clients request a large
//! streamed body and never read it, holding every slot of a 16-slot
//! bulkhead. `ServerStack`'s body idle timeout ends their bodies: the slots
//! come back, new requests are admitted again, the metric counts the 16
//! timeouts and each request's span records the event.
//!
//! This test binary installs telemetry and a Prometheus recorder globally
//! (its own process).

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use telltale::resilience::Bulkhead;
use telltale::stack::ServerStack;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

mod support;
use support::serve;

const SLOTS: usize = 16;
const IDLE: Duration = Duration::from_secs(2);

fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("first install")
    })
}

/// Polls `check` every 20 ms for at most `limit`.
async fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn stalled_readers_lose_their_slots_after_the_idle_timeout() {
    let recorder = support::recorder("slow-readers");
    let prometheus = prometheus();
    let bulkhead = Bulkhead::builder("server")
        .max_concurrent(SLOTS)
        .build()
        .unwrap();
    let stack = ServerStack::new()
        .bulkhead(bulkhead.clone())
        .body_idle_timeout(Some(IDLE));
    // /large streams 640 MiB in 64 KiB chunks: far more than the socket
    // buffers hold, so a client that never reads stalls it.
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let app = Router::new()
        .route(
            "/large",
            get(move || {
                let chunk = chunk.clone();
                async move {
                    let chunks = (0..10_000).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
                    Body::from_stream(futures_util::stream::iter(chunks))
                }
            }),
        )
        .route("/small", get(|| async { "small" }))
        .layer(stack.layer());
    let addr = serve(app).await;

    // 16 clients that ask for the large body and never read a byte.
    let mut stalled = Vec::new();
    for i in 0..SLOTS {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /large HTTP/1.1\r\nhost: test\r\nx-correlation-id: slow-reader-{i}\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        stalled.push(tcp);
    }
    wait_for(Duration::from_secs(10), "the slots to fill", || {
        bulkhead.available() == 0
    })
    .await;
    let full_at = Instant::now();

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let small = || async {
        let res = client
            .get(format!("http://{addr}/small").parse().unwrap())
            .await
            .unwrap();
        let status = res.status();
        res.into_body().collect().await.unwrap();
        status
    };
    // While they hold the slots, new requests are shed (unless the machine was
    // so slow that the bound already passed).
    let status = small().await;
    assert!(
        status == 503 || full_at.elapsed() >= IDLE,
        "full bulkhead answers 503, got {status}"
    );

    // After the bound: every slot is back and requests are admitted again,
    // with the 16 readers still connected.
    wait_for(Duration::from_secs(30), "the slots to come back", || {
        bulkhead.available() == SLOTS
    })
    .await;
    assert!(full_at.elapsed() >= IDLE - Duration::from_millis(100));
    assert_eq!(small().await, 200);
    assert_eq!(bulkhead.available(), SLOTS);

    // The metric counts the 16 timeouts.
    let line = "telltale_bulkhead_body_timeouts_total{name=\"server\"} 16";
    wait_for(Duration::from_secs(10), "the timeout counter", || {
        prometheus.render().contains(line)
    })
    .await;

    // Each request's span records the timeout (it ends when the client goes).
    drop(stalled);
    for i in 0..SLOTS {
        let id = format!("slow-reader-{i}");
        wait_for(Duration::from_secs(10), "the span", || {
            recorder.by_correlation_id(&id).iter().any(|span| {
                span.data()
                    .events
                    .iter()
                    .any(|e| e.name.contains("response body reader idle"))
            })
        })
        .await;
    }
}
