//! Properties under real concurrency (multi-threaded runtime, many tasks).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use telltale_resilience::{CircuitBreaker, SlidingWindow, State, Verdict};
use tokio::sync::Barrier;

/// Many tasks race the open → half-open transition and the probe admission:
/// never more than the permitted probes get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_n_probes_under_heavy_concurrency() {
    const TASKS: usize = 32;
    for probes in [1u32, 3, 7] {
        for _round in 0..20 {
            let b = CircuitBreaker::builder("race")
                .sliding_window(SlidingWindow::Count(4))
                .minimum_calls(1)
                .wait_in_open(Duration::ZERO)
                .permitted_probes(probes)
                .probe_deadline(Duration::from_secs(3600))
                .build()
                .unwrap();
            b.try_acquire().unwrap().record(Verdict::Failure);
            assert_eq!(b.state(), State::Open);
            let admitted = Arc::new(AtomicUsize::new(0));
            let barrier = Arc::new(Barrier::new(TASKS));
            let mut tasks = Vec::new();
            for _ in 0..TASKS {
                let (b, admitted, barrier) = (b.clone(), admitted.clone(), barrier.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let mut held = Vec::new();
                    for _ in 0..200 {
                        if let Ok(p) = b.try_acquire() {
                            assert!(p.is_probe());
                            admitted.fetch_add(1, Ordering::SeqCst);
                            held.push(p);
                        }
                        tokio::task::yield_now().await;
                    }
                    held
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            assert_eq!(admitted.load(Ordering::SeqCst), probes as usize);
            assert_eq!(b.state(), State::HalfOpen);
            for p in all {
                p.record(Verdict::Success);
            }
            assert_eq!(b.state(), State::Closed);
        }
    }
}

/// Calls admitted while closed finish concurrently with the transitions they
/// cause: exactly one transition leaves each generation, and results of
/// earlier generations never close a half-open breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_results_make_one_transition_per_generation() {
    let b = CircuitBreaker::builder("flap")
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(5)
        .wait_in_open(Duration::ZERO)
        .permitted_probes(2)
        .event_capacity(1 << 17) // more than calls + transitions: never lags
        .build()
        .unwrap();
    let mut events = b.subscribe();
    let collector = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let e = match events.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                Err(e) => panic!("{e}"),
            };
            if let telltale_resilience::BreakerEvent::StateTransition {
                from,
                to,
                generation,
                ..
            } = e
            {
                seen.push((generation, from, to));
            }
        }
        seen
    });
    let mut tasks = Vec::new();
    for t in 0..16 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..2_000 {
                if let Ok(p) = b.try_acquire() {
                    if (i + t) % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                    p.record(if i % 2 == 0 {
                        Verdict::Failure
                    } else {
                        Verdict::Success
                    });
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(b);
    let seen = collector.await.unwrap();
    assert!(seen.len() > 10, "{seen:?}");
    // One transition per generation, and they chain: each starts where the
    // previous one ended.
    let mut seen = seen;
    seen.sort_by_key(|e| e.0);
    for w in seen.windows(2) {
        assert_eq!(w[0].0 + 1, w[1].0, "{seen:?}");
        assert_eq!(w[0].2, w[1].1, "{seen:?}");
    }
}
