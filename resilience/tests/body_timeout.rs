//! Issue 14, item 6, in process under paused time: a body whose reader
//! stalls loses its bulkhead slot after the idle timeout and then ends with
//! `BodyTimeout`; a reader that keeps reading, or a body waiting for its own
//! producer, keeps it. Issue 16: one reaper task per layer, not one per
//! response, which ends with its last body and survives its runtime; the
//! layers around learn of a timeout although nothing is made for them
//! before a body streams.
#![cfg(not(loom))]

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use telltale_core::{BodyEnd, BodyTimeoutSignal, BoxError, CompletionBody, FailurePolicy, OnEnd};
use telltale_resilience::body_timeout::{BodyTimeout, BodyTimeoutLayer};
use telltale_resilience::{Bulkhead, CircuitBreaker};
use tower::{Service, ServiceBuilder, ServiceExt};

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

/// A service behind `layer` whose responses are `streamed(n, gap)` bodies,
/// each holding a slot of `bulkhead` until it ends.
fn bounded(
    layer: BodyTimeoutLayer,
    bulkhead: &Bulkhead,
    n: usize,
    gap: Duration,
) -> impl Service<
    http::Request<()>,
    Response = http::Response<impl Body<Data = Bytes, Error = BoxError> + Unpin + Send + 'static>,
    Error = telltale_resilience::Error,
    Future: Send,
> + Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .layer(layer)
        .layer(bulkhead.layer())
        .service_fn(move |_req: http::Request<()>| async move {
            Ok::<_, Infallible>(http::Response::new(streamed(n, gap)))
        })
}

/// The body of `svc`'s response, once it handed out its first frame (from
/// there on its reader may stall).
async fn first_frame<S, B>(svc: S) -> B
where
    S: Service<http::Request<()>, Response = http::Response<B>>,
    S::Error: Debug,
    B: Body + Unpin,
    B::Error: Debug,
{
    let mut body = svc
        .oneshot(http::Request::new(()))
        .await
        .unwrap()
        .into_body();
    assert!(body.frame().await.unwrap().is_ok());
    body
}

#[tokio::test(start_paused = true)]
async fn stalled_reader_releases_the_slot_and_the_body_errors() {
    let bulkhead = Bulkhead::builder("t").max_concurrent(1).build().unwrap();
    let layer = BodyTimeoutLayer::new("t", Some(IDLE));
    let mut body = first_frame(bounded(layer, &bulkhead, 100, Duration::ZERO)).await;
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
    let layer = BodyTimeoutLayer::new("t", Some(IDLE));
    let svc = bounded(layer.clone(), &bulkhead, 3, Duration::from_secs(60));
    let res = svc.oneshot(http::Request::new(())).await.unwrap();
    let collected = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&collected[..], b"chunkchunkchunk");
    assert_eq!(bulkhead.available(), 1);

    // A reader that reads a chunk every 20 s keeps its slot for minutes.
    let mut body = first_frame(bounded(layer, &bulkhead, 10, Duration::ZERO)).await;
    for read in 1..=10 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(bulkhead.available(), 0);
        if read < 10 {
            assert!(body.frame().await.unwrap().is_ok());
        }
    }
    assert!(body.frame().await.is_none());
    assert_eq!(bulkhead.available(), 1);

    // No bound: the stalled reader keeps the slot.
    let unbounded = BodyTimeoutLayer::new("t", None);
    let body = first_frame(bounded(unbounded, &bulkhead, 10, Duration::ZERO)).await;
    tokio::time::sleep(IDLE * 10).await;
    assert_eq!(bulkhead.available(), 0);
    drop(body);
    assert_eq!(bulkhead.available(), 1);
}

/// Spawned tasks alive on the current runtime (the test's own future is not
/// one).
fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Yields until no spawned task is alive (at most 100 times).
async fn until_no_task() -> usize {
    for _ in 0..100 {
        if tasks() == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    tasks()
}

/// Issue 16: no task per response. Single-frame responses start nothing;
/// twenty stalled streamed bodies share one reaper, which ends each at its
/// own deadline, in order, and ends itself when none is left.
#[tokio::test(start_paused = true)]
async fn one_reaper_per_layer_ends_each_stalled_body_at_its_deadline() {
    let bulkhead = Bulkhead::builder("t").max_concurrent(100).build().unwrap();
    let layer = BodyTimeoutLayer::new("t", Some(IDLE));
    let mut single = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(bulkhead.layer())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                Bytes::from_static(b"hello"),
            )))
        });
    for _ in 0..50 {
        let res = (&mut single).oneshot(http::Request::new(())).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
    }
    assert_eq!(tasks(), 0, "no task for responses that end with a frame");

    let mut streaming = bounded(layer, &bulkhead, 10, Duration::ZERO);
    // Body i hands out its first frame at i seconds, then its reader stalls.
    let mut bodies = Vec::new();
    for _ in 0..20 {
        bodies.push(first_frame(&mut streaming).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(tasks(), 1, "one reaper for all the bodies");
    assert_eq!(bulkhead.available(), 80);
    // At 29.5 s, none has been idle for 30 s; then body i goes at i + 30 s.
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    assert_eq!(bulkhead.available(), 80);
    for released in 1..=20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(bulkhead.available(), 80 + released);
    }
    for mut body in bodies {
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.downcast_ref::<BodyTimeout>().is_some(), "{err}");
        assert!(body.frame().await.is_none());
    }
    assert_eq!(until_no_task().await, 0, "the reaper ends with its queue");
}

/// The reaper keeps neither the layer nor itself alive: once the bodies are
/// gone (read or dropped) it ends within one timeout, and a later body
/// starts a new one.
#[tokio::test(start_paused = true)]
async fn the_reaper_ends_when_its_bodies_are_gone() {
    let bulkhead = Bulkhead::builder("t").max_concurrent(4).build().unwrap();
    let layer = BodyTimeoutLayer::new("t", Some(IDLE));
    let svc = bounded(layer, &bulkhead, 10, Duration::ZERO);
    for round in 0..2 {
        let body = first_frame(svc.clone()).await;
        assert_eq!(tasks(), 1, "round {round}");
        drop(body);
        assert_eq!(bulkhead.available(), 4);
        tokio::time::sleep(IDLE).await;
        assert_eq!(until_no_task().await, 0, "round {round}");
    }
    // A body read to its end is gone for the reaper as well.
    let body = svc
        .oneshot(http::Request::new(()))
        .await
        .unwrap()
        .into_body();
    assert_eq!(body.collect().await.unwrap().to_bytes().len(), 50);
    tokio::time::sleep(IDLE).await;
    assert_eq!(until_no_task().await, 0);
}

/// A reaper dropped with its runtime (shut down while it slept) is replaced
/// on the runtime of the next body: the same layer keeps bounding readers.
#[test]
fn a_reaper_lost_with_its_runtime_is_started_again() {
    let paused_runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let bulkhead = Bulkhead::builder("t").max_concurrent(1).build().unwrap();
    let layer = BodyTimeoutLayer::new("t", Some(IDLE));
    let svc = bounded(layer, &bulkhead, 10, Duration::ZERO);
    let first = paused_runtime();
    first.block_on(async {
        let body = first_frame(svc.clone()).await;
        assert_eq!(tasks(), 1);
        drop(body);
    });
    drop(first);
    paused_runtime().block_on(async {
        let mut body = first_frame(svc).await;
        assert_eq!(tasks(), 1, "a new reaper");
        tokio::time::sleep(IDLE + Duration::from_millis(1)).await;
        assert_eq!(bulkhead.available(), 1);
        assert!(body.frame().await.unwrap().is_err());
    });
}

/// On a multi-thread runtime, with bodies stalled from several tasks, every
/// slot comes back (real time, a short timeout, bounded polling; the timing
/// of readers that keep reading is tested under paused time above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_ended_on_a_multi_thread_runtime() {
    const SHORT: Duration = Duration::from_millis(100);
    let bulkhead = Bulkhead::builder("t").max_concurrent(8).build().unwrap();
    let layer = BodyTimeoutLayer::new("t", Some(SHORT));
    let svc = bounded(layer, &bulkhead, 1_000, Duration::ZERO);
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(tokio::spawn(first_frame(svc.clone())));
    }
    let mut bodies = Vec::new();
    for task in stalled {
        bodies.push(task.await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while bulkhead.available() < 8 {
        assert!(tokio::time::Instant::now() < deadline, "slots not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for mut body in bodies {
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.downcast_ref::<BodyTimeout>().is_some(), "{err}");
        assert!(body.frame().await.is_none());
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// The end of the body outside the layer, as telltale's telemetry layer
/// sees it: it listens for the layer's signal while it polls the body.
struct Outside(Log);

impl OnEnd for Outside {
    fn on_end(self, end: BodyEnd<'_>) {
        self.0.lock().unwrap().push(format!("end {end:?}"));
    }

    fn listens_for_timeout(&self) -> bool {
        true
    }

    fn on_timeout_watch(self, signal: BodyTimeoutSignal) -> Self {
        self.0.lock().unwrap().push("watched".to_owned());
        let log = self.0.clone();
        signal.on_fire(move || log.lock().unwrap().push("fired".to_owned()));
        self
    }
}

fn seen(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn the_layers_around_learn_of_the_timeout_without_another_poll() {
    // Body timeouts count as failures here, so that the breaker's window
    // shows how it saw the end (a caller going away counts as nothing).
    let breaker = CircuitBreaker::builder("t")
        .failure_policy(FailurePolicy::default().body_timeouts(true))
        .build()
        .unwrap();
    let layered = |log: Log, n: usize| {
        ServiceBuilder::new()
            .map_response(move |res: http::Response<_>| {
                res.map(|body| CompletionBody::new(body, Outside(log.clone())))
            })
            .layer(BodyTimeoutLayer::new("t", Some(IDLE)))
            .layer(breaker.layer())
            .service_fn(move |_req: http::Request<()>| async move {
                // `n == 1`: a body that knows it ends with its frame.
                let body = match n {
                    1 => Either::Left(Full::new(Bytes::from_static(b"chunk"))),
                    _ => Either::Right(streamed(n, Duration::ZERO)),
                };
                Ok::<_, Infallible>(http::Response::new(body))
            })
    };

    // A body that ends with its first frame: nobody is told anything.
    let log = Log::default();
    let res = layered(log.clone(), 1)
        .oneshot(http::Request::new(()))
        .await
        .unwrap();
    assert!(res.extensions().get::<BodyTimeoutSignal>().is_none());
    let collected = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&collected[..], b"chunk");
    assert_eq!(seen(&log), ["end Complete { trailers: None }"]);
    assert_eq!(breaker.snapshot().failed, 0);

    // A streamed body: the layer outside is handed the signal with the first
    // frame, before the reader can stall.
    let log = Log::default();
    let mut body = first_frame(layered(log.clone(), 100)).await;
    assert_eq!(seen(&log), ["watched"]);
    let calls = breaker.snapshot().calls;
    // The reader stalls: at the bound the layer outside is told at once,
    // and the breaker inside records a body timeout (a failure under this
    // policy), not a caller that went away; nobody polled the body.
    tokio::time::sleep(IDLE + Duration::from_millis(1)).await;
    assert_eq!(seen(&log), ["watched", "fired"]);
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.calls, snapshot.failed), (calls + 1, 1));
    // Polled again: the error, then the end, seen once outside.
    let err = body.frame().await.unwrap().unwrap_err();
    assert!(err.downcast_ref::<BodyTimeout>().is_some());
    drop(body);
    assert_eq!(seen(&log), ["watched", "fired", "end Error"]);

    // A reader that goes away is no body timeout for the breaker.
    let log = Log::default();
    let body = first_frame(layered(log.clone(), 100)).await;
    drop(body);
    assert_eq!(seen(&log), ["watched", "end Dropped"]);
    assert_eq!(breaker.snapshot().failed, 1);
}
