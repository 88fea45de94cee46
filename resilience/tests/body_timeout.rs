//! Issue 14, item 6, in process under paused time: a body whose reader
//! stalls loses its bulkhead slot after the idle timeout and then ends with
//! `BodyTimeout`; a reader that keeps reading, or a body waiting for its own
//! producer, keeps it.
#![cfg(not(loom))]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use telltale_resilience::Bulkhead;
use telltale_resilience::body_timeout::{BodyTimeout, BodyTimeoutLayer};
use tower::{ServiceBuilder, ServiceExt};

type Chunk = Result<Frame<Bytes>, Infallible>;

/// A streamed body: `n` chunks, each after `gap`.
fn streamed(n: usize, gap: Duration) -> StreamBody<impl futures_util::Stream<Item = Chunk>> {
    StreamBody::new(futures_util::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        Some((Ok(Frame::data(Bytes::from_static(b"chunk"))), i + 1))
    }))
}

const IDLE: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn stalled_reader_releases_the_slot_and_the_body_errors() {
    let bulkhead = Bulkhead::builder("t").max_concurrent(1).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(BodyTimeoutLayer::new("t", Some(IDLE)))
        .layer(bulkhead.layer())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(streamed(100, Duration::ZERO)))
        });
    let res = svc.oneshot(http::Request::new(())).await.unwrap();
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().is_ok());
    assert_eq!(bulkhead.available(), 0);
    // The reader stalls: just before the bound the slot is still held...
    tokio::time::sleep(IDLE - Duration::from_millis(1)).await;
    assert_eq!(bulkhead.available(), 0);
    // ...and at the bound it is released, without the body being polled.
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(bulkhead.available(), 1);
    let err = body.frame().await.unwrap().unwrap_err();
    let timeout = err.downcast_ref::<BodyTimeout>().expect("a BodyTimeout");
    assert_eq!(timeout.idle, IDLE);
    assert!(body.frame().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn readers_that_read_and_slow_producers_keep_the_slot() {
    let bulkhead = Bulkhead::builder("t").max_concurrent(1).build().unwrap();
    // A slow producer: one chunk a minute (longer than the idle timeout).
    let svc = ServiceBuilder::new()
        .layer(BodyTimeoutLayer::new("t", Some(IDLE)))
        .layer(bulkhead.layer())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(streamed(3, Duration::from_secs(60))))
        });
    let res = svc.oneshot(http::Request::new(())).await.unwrap();
    let collected = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&collected[..], b"chunkchunkchunk");
    assert_eq!(bulkhead.available(), 1);

    // A reader that reads a chunk every 20 s keeps its slot for minutes.
    let svc = ServiceBuilder::new()
        .layer(BodyTimeoutLayer::new("t", Some(IDLE)))
        .layer(bulkhead.layer())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(streamed(10, Duration::ZERO)))
        });
    let mut body = svc
        .oneshot(http::Request::new(()))
        .await
        .unwrap()
        .into_body();
    for _ in 0..10 {
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(bulkhead.available(), 0);
    }
    assert!(body.frame().await.is_none());
    assert_eq!(bulkhead.available(), 1);

    // No bound: the stalled reader keeps the slot.
    let svc = ServiceBuilder::new()
        .layer(BodyTimeoutLayer::new("t", None))
        .layer(bulkhead.layer())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(streamed(10, Duration::ZERO)))
        });
    let mut body = svc
        .oneshot(http::Request::new(()))
        .await
        .unwrap()
        .into_body();
    assert!(body.frame().await.unwrap().is_ok());
    tokio::time::sleep(IDLE * 10).await;
    assert_eq!(bulkhead.available(), 0);
    drop(body);
    assert_eq!(bulkhead.available(), 1);
}
