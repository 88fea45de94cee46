//! Issue 16: what `BodyTimeoutLayer` allocates per response, counted with a
//! global counting allocator after warm-up, and compared with the same
//! service without the layer in the same run.
//!
//! - No timeout: the box of the body.
//! - A timeout and a body that ends with its first frame (most responses):
//!   the same box, nothing else. No signal (it is made when a body streams),
//!   nothing in the request's or the response's extensions, no task, no
//!   timer, no queue entry.
//! - A streamed body: two allocations more, the state the body shares with
//!   the layer's reaper and the `BodyTimeoutSignal` (its `Arc`), offered to
//!   the layers outside. Its queue entry allocates nothing once the queue is
//!   warm, even with every body gone before its deadline (the queue drops
//!   their entries when it is full instead of growing).
//! - With a layer outside that listens for the signal, as telltale's
//!   telemetry layer does (a `CompletionBody` whose `OnEnd` listens): nothing
//!   more for a single frame; for a streamed body, only what that layer
//!   registers on the signal it is offered (here its listener's box and the
//!   signal's list of listeners).
#![cfg(not(loom))]

use std::alloc::System;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_core::{BodyEnd, BodyTimeoutSignal, CompletionBody, OnEnd};
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

/// Signals offered to [`Listener`]s so far.
static HEARD: AtomicUsize = AtomicUsize::new(0);

/// The end of a body outside the layer that listens for its signal, as
/// telltale's telemetry layer does, and registers a listener on it.
struct Listener;

impl OnEnd for Listener {
    fn on_end(self, _end: BodyEnd<'_>) {}

    fn listens_for_timeout(&self) -> bool {
        true
    }

    fn on_timeout_watch(self, signal: BodyTimeoutSignal) -> Self {
        HEARD.fetch_add(1, Ordering::Relaxed);
        let id = HEARD.load(Ordering::Relaxed);
        signal.on_fire(move || {
            std::hint::black_box(id);
        });
        self
    }
}

/// The response of `res` with its body wrapped in a listening
/// `CompletionBody`.
fn listened<B: http_body::Body>(
    res: http::Response<B>,
) -> http::Response<CompletionBody<B, Listener>> {
    res.map(|body| CompletionBody::new(body, Listener))
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
    telltale_testkit::alloc::steady_allocations(|| {
        let stats = round();
        (stats.allocations, stats.reallocations, stats)
    })
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
    let listened_on = per_round(
        &rt,
        ServiceBuilder::new()
            .map_response(listened)
            .layer(BodyTimeoutLayer::new("alloc", Some(IDLE)))
            .service(full_svc()),
    );
    let heard_before = HEARD.load(Ordering::Relaxed);
    let listened_streamed_on = per_round(
        &rt,
        ServiceBuilder::new()
            .map_response(listened)
            .layer(BodyTimeoutLayer::new("alloc", Some(IDLE)))
            .service(streamed_svc()),
    );
    let heard = HEARD.load(Ordering::Relaxed) - heard_before;
    let figures = format!(
        "added per response: no timeout {}, single frame {}, streamed {}, \
         single frame listened {}, streamed listened {}",
        added(bare, off),
        added(bare, on),
        added(streamed_bare, streamed_on),
        added(bare, listened_on),
        added(streamed_bare, listened_streamed_on),
    );
    // The box of the body.
    assert_eq!(off, bare + ROUND, "{figures}");
    // The box only: the signal waits for a body that streams.
    assert_eq!(on, bare + ROUND, "{figures}");
    // Two more: the state shared with the reaper and the signal. No task, no
    // timer, and no allocation for the queue entry.
    assert_eq!(streamed_on, streamed_bare + 3 * ROUND, "{figures}");
    // A listener outside costs a single-frame response nothing: it hears of
    // no signal.
    assert_eq!(listened_on, on, "{figures}");
    // A streamed one is offered its signal, once per response (five rounds),
    // and pays for what it registers: the listener's box and the list.
    assert_eq!(heard, 5 * ROUND, "{figures}");
    assert_eq!(listened_streamed_on, streamed_on + 2 * ROUND, "{figures}");
}

// Allocations are counted process-wide, so this binary runs without libtest's
// harness (`harness = false` in Cargo.toml), as `alloc.rs` does.
fn main() {
    telltale_testkit::alloc::run_tests(&[("allocations_per_response", allocations_per_response)]);
}
