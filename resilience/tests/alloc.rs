//! The closed breaker and an uncontended bulkhead allocate nothing per call,
//! and neither does a full bulkhead's wait (counted with a global counting
//! allocator, after warm-up).

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use telltale_resilience::{Bulkhead, CircuitBreaker, SlidingWindow, Verdict};
use tower::{Service, ServiceBuilder};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn closed_breaker_and_free_bulkhead_allocate_nothing() {
    let breaker = CircuitBreaker::builder("alloc")
        .sliding_window(SlidingWindow::Count(100))
        .build()
        .unwrap();
    let bulkhead = Bulkhead::builder("alloc")
        .max_concurrent(8)
        .build()
        .unwrap();
    let mut layered = ServiceBuilder::new()
        .layer(breaker.layer())
        .layer(bulkhead.layer())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(
                http_body_util::Empty::<bytes::Bytes>::new(),
            ))
        });
    let mut once = || {
        breaker.try_acquire().unwrap().record(Verdict::Success);
        run(breaker.call(async { Ok::<_, Infallible>(1) })).unwrap();
        run(bulkhead.call(async { Ok::<_, Infallible>(1) })).unwrap();
        let res = run(layered.call(http::Request::new(()))).unwrap();
        drop(res); // the body ends: both results settle
    };
    for _ in 0..1_000 {
        once();
    }
    // Three measured rounds of 10,000 calls. A per-call allocation would show
    // 10,000+ in every round; the harness's own one-off allocations (another
    // thread) may land in one round, so the quietest round must be exactly 0.
    let rounds: Vec<_> = (0..3)
        .map(|_| {
            let region = Region::new(GLOBAL);
            for _ in 0..10_000 {
                once();
            }
            region.change()
        })
        .collect();
    for stats in &rounds {
        assert!(stats.allocations < 16, "{rounds:?}");
        assert_eq!(stats.reallocations, 0, "{rounds:?}");
    }
    assert_eq!(
        rounds.iter().map(|s| s.allocations).min(),
        Some(0),
        "{rounds:?}"
    );
    assert_eq!(breaker.snapshot().calls, 100);
    assert_eq!(bulkhead.available(), 8);
}

/// A call that finds the bulkhead full allocates nothing for its wait: it is
/// an entry in the bulkhead's queue (a slab and a ring of keys whose storage
/// is reused once grown), and the max wait is timed by the bulkhead's one
/// timer, not one per wait.
fn full_bulkhead_allocates_nothing_per_wait() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let bulkhead = Bulkhead::builder("alloc-wait")
        .max_concurrent(1)
        .max_wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut layered =
        ServiceBuilder::new()
            .layer(bulkhead.layer())
            .service_fn(|_req: http::Request<()>| async {
                Ok::<_, Infallible>(http::Response::new(
                    http_body_util::Empty::<bytes::Bytes>::new(),
                ))
            });
    let mut cx = Context::from_waker(Waker::noop());
    // Two waits: one through `Bulkhead::call`, one through the tower layer.
    let mut twice = || {
        let held = bulkhead.try_acquire().unwrap();
        let mut call = pin!(bulkhead.call(async { Ok::<_, Infallible>(1) }));
        assert!(call.as_mut().poll(&mut cx).is_pending());
        let mut layered_call = pin!(layered.call(http::Request::new(())));
        assert!(layered_call.as_mut().poll(&mut cx).is_pending());
        assert_eq!(bulkhead.waiting(), 2);
        drop(held);
        // First in, first served: the call gets the slot, then the request.
        assert!(matches!(call.as_mut().poll(&mut cx), Poll::Ready(Ok(1))));
        let Poll::Ready(Ok(response)) = layered_call.as_mut().poll(&mut cx) else {
            panic!("the layered call did not get the slot");
        };
        assert_eq!(bulkhead.available(), 0);
        drop(response); // the body ends: the slot is free again
        assert_eq!(bulkhead.available(), 1);
    };
    for _ in 0..1_000 {
        twice();
    }
    const ROUND: u64 = 5_000;
    let rounds: Vec<_> = (0..3)
        .map(|_| {
            let region = Region::new(GLOBAL);
            for _ in 0..ROUND {
                twice();
            }
            region.change()
        })
        .collect();
    // 10,000 waits per round: one allocation per wait would show 10,000;
    // the quietest round must be exactly 0 (see the test above).
    for stats in &rounds {
        assert!(stats.allocations < 16, "{rounds:?}");
        assert_eq!(stats.reallocations, 0, "{rounds:?}");
    }
    assert_eq!(
        rounds.iter().map(|s| s.allocations).min(),
        Some(0),
        "no allocation per wait: {rounds:?}"
    );
    assert_eq!(bulkhead.waiting(), 0);
    assert_eq!(bulkhead.rejected(), 0);
}

// Allocations are counted process-wide, so this binary runs without libtest's
// harness (`harness = false` in Cargo.toml): its tests run one after another on
// the main thread, and no harness thread can allocate inside a measured region.
fn main() {
    telltale_testkit::alloc::run_tests(&[
        (
            "closed_breaker_and_free_bulkhead_allocate_nothing",
            closed_breaker_and_free_bulkhead_allocate_nothing,
        ),
        (
            "full_bulkhead_allocates_nothing_per_wait",
            full_bulkhead_allocates_nothing_per_wait,
        ),
    ]);
}
