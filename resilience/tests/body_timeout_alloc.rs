//! Issue 16: what `BodyTimeoutLayer` allocates per response, counted with a
//! global counting allocator after warm-up, and compared with the same
//! service without the layer in the same run.
//!
//! - No timeout: the box of the body.
//! - A timeout and a body that ends with its first frame (most responses):
//!   the same box, plus the `BodyTimeoutSignal` (its `Arc`) and its place in
//!   the request's and the response's extensions. No task, no timer, no
//!   queue entry.
//! - A streamed body: one allocation more, the state the body shares with
//!   the layer's reaper. Its queue entry allocates nothing once the queue is
//!   warm, even with every body gone before its deadline (the queue drops
//!   their entries when it is full instead of growing).
#![cfg(not(loom))]

use std::alloc::System;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_resilience::body_timeout::BodyTimeoutLayer;
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Chunk = Result<Frame<Bytes>, Infallible>;

const IDLE: Duration = Duration::from_secs(30);

fn full() -> Full<Bytes> {
    Full::new(Bytes::from_static(b"Hello, World!"))
}

/// Three frames, no allocation of its own.
fn streamed() -> StreamBody<futures_util::stream::Iter<std::array::IntoIter<Chunk, 3>>> {
    let chunk = || Ok(Frame::data(Bytes::from_static(b"chunk")));
    StreamBody::new(futures_util::stream::iter([chunk(), chunk(), chunk()]))
}

/// One request through `svc`, its body read to the end and dropped.
async fn once<S, B>(svc: &mut S)
where
    S: Service<http::Request<()>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap();
    std::hint::black_box(body);
}

const ROUND: usize = 5_000;

/// The fewest allocations of three rounds of `ROUND` requests, after a
/// warm-up of two rounds, each round in one `block_on` (the runtime's tasks,
/// the reaper among them, run between requests: `yield_now`).
fn per_round<S, B>(rt: &Runtime, mut svc: S) -> usize
where
    S: Service<http::Request<()>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut round = || {
        rt.block_on(async {
            let region = Region::new(GLOBAL);
            for _ in 0..ROUND {
                once(&mut svc).await;
                tokio::task::yield_now().await;
            }
            region.change()
        })
    };
    round();
    round();
    let rounds = [round(), round(), round()];
    for stats in &rounds {
        assert_eq!(stats.reallocations, 0, "{rounds:?}");
    }
    rounds
        .iter()
        .map(|s| s.allocations)
        .min()
        .unwrap_or_default()
}

/// Allocations per response that the layer adds to `bare` (for messages).
fn added(bare: usize, layered: usize) -> f64 {
    (layered as f64 - bare as f64) / ROUND as f64
}

fn allocations_per_response() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let full_svc = || {
        tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(full()))
        })
    };
    let streamed_svc = || {
        tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(streamed()))
        })
    };
    let bare = per_round(&rt, full_svc());
    let off = per_round(
        &rt,
        ServiceBuilder::new()
            .layer(BodyTimeoutLayer::new("alloc", None))
            .service(full_svc()),
    );
    let on = per_round(
        &rt,
        ServiceBuilder::new()
            .layer(BodyTimeoutLayer::new("alloc", Some(IDLE)))
            .service(full_svc()),
    );
    let streamed_bare = per_round(&rt, streamed_svc());
    let streamed_on = per_round(
        &rt,
        ServiceBuilder::new()
            .layer(BodyTimeoutLayer::new("alloc", Some(IDLE)))
            .service(streamed_svc()),
    );
    let figures = format!(
        "added per response: no timeout {}, single frame {}, streamed {}",
        added(bare, off),
        added(bare, on),
        added(streamed_bare, streamed_on)
    );
    // The box of the body.
    assert_eq!(off, bare + ROUND, "{figures}");
    // The box, the signal's `Arc`, and for each of the request's and the
    // response's extensions (empty here) its map, the map's table and the
    // signal's box: 1 + 1 + 3 + 3.
    assert_eq!(on, bare + 8 * ROUND, "{figures}");
    // One more: the state shared with the reaper. No task, no timer, and no
    // allocation for the queue entry.
    assert_eq!(streamed_on, streamed_bare + 9 * ROUND, "{figures}");
}

// Allocations are counted process-wide, so this binary runs without libtest's
// harness (`harness = false` in Cargo.toml), as `alloc.rs` does.
fn main() {
    run_one("allocations_per_response", allocations_per_response);
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

fn run_one(name: &str, test: impl FnOnce()) {
    print!("test {name} ... ");
    test();
    println!("ok");
}
