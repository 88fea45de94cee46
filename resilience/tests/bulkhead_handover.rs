//! The bulkhead's waiting path: a released slot goes to the oldest waiter
//! (newcomers queue behind it), a waiter that goes away after being handed a
//! slot passes it on exactly once, the wait histogram runs from the call's
//! arrival to its resumption, and no wake-up is lost under contention.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use telltale_resilience::{Bulkhead, BulkheadPermit};

async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

fn bulkhead(max: usize) -> Bulkhead {
    Bulkhead::builder("handover")
        .max_concurrent(max)
        .max_wait(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn slots_go_to_waiters_in_arrival_order_and_newcomers_queue_behind() {
    let b = bulkhead(1);
    let held = b.try_acquire().unwrap();
    let mut waiters: Vec<_> = (0..5).map(|_| Box::pin(b.acquire())).collect();
    for w in &mut waiters {
        assert!(poll_once(w.as_mut()).await.is_pending());
    }
    assert_eq!(b.waiting(), 5);
    let mut permit: Option<BulkheadPermit> = Some(held);
    for i in 0..5 {
        drop(permit.take());
        // The slot was handed to waiter `i`, not freed: a newcomer cannot
        // take it, and the waiters behind are still waiting.
        assert_eq!(b.available(), 0);
        assert!(b.try_acquire().is_err(), "a newcomer overtook waiter {i}");
        for later in &mut waiters[i + 1..] {
            assert!(poll_once(later.as_mut()).await.is_pending());
        }
        match poll_once(waiters[i].as_mut()).await {
            Poll::Ready(Ok(p)) => permit = Some(p),
            other => panic!("waiter {i}: {other:?}"),
        }
        assert_eq!(b.waiting(), 4 - i);
    }
    drop(permit);
    assert_eq!(b.available(), 1);
    assert_eq!(b.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gone_after_the_hand_over_passes_the_slot_on_once() {
    let b = bulkhead(1);
    let held = b.try_acquire().unwrap();
    let mut w1 = Box::pin(b.acquire());
    let mut w2 = Box::pin(b.acquire());
    let mut w3 = Box::pin(b.acquire());
    for w in [&mut w1, &mut w2, &mut w3] {
        assert!(poll_once(w.as_mut()).await.is_pending());
    }
    drop(held); // handed to w1
    drop(w1); // gone before it resumed: the slot goes to w2
    assert_eq!(b.available(), 0);
    assert_eq!(b.waiting(), 1);
    drop(w3); // gone while waiting: nothing to give back
    assert_eq!(b.available(), 0);
    assert_eq!(b.waiting(), 0);
    let Poll::Ready(Ok(p2)) = poll_once(w2.as_mut()).await else {
        panic!("w2 was not handed the slot")
    };
    drop(p2);
    // One slot, released once.
    assert_eq!(b.available(), 1);
    let only = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    drop(only);
    assert_eq!(b.available(), 1);
}

/// The waits recorded (calls admitted at once record 0 and are left out).
fn waits(recorder: &DebuggingRecorder) -> Vec<f64> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == "telltale_bulkhead_wait_duration_seconds")
        .flat_map(|(.., v)| match v {
            DebugValue::Histogram(v) => v.into_iter().map(|x| x.into_inner()).collect::<Vec<f64>>(),
            other => panic!("{other:?}"),
        })
        .filter(|&v| v > 0.0)
        .collect()
}

/// The recorded wait runs from the call's arrival to its resumption with the
/// slot, however long the slot was handed over before, and whoever arrived
/// in between. The wait histogram's clock is `quanta`'s: mocked here, moved
/// with tokio's paused clock.
#[test]
fn the_recorded_wait_runs_from_arrival_to_resumption() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let (clock, mock) = quanta::Clock::mock();
    let advance = |d: Duration| {
        mock.increment(d);
        tokio::time::advance(d)
    };
    let recorder = DebuggingRecorder::new();
    let b = metrics::with_local_recorder(&recorder, || bulkhead(1));
    let ms = Duration::from_millis;
    quanta::with_clock(&clock, || {
        rt.block_on(async {
            // Handed the slot at 30 ms, resumed at 35 ms.
            let held = b.try_acquire().unwrap();
            let mut w1 = pin!(b.acquire());
            assert!(poll_once(w1.as_mut()).await.is_pending());
            advance(ms(30)).await;
            drop(held);
            advance(ms(5)).await;
            let Poll::Ready(Ok(p1)) = poll_once(w1.as_mut()).await else {
                panic!()
            };

            // Handed the slot at 20 ms; another call arrives; resumed at
            // 25 ms.
            let mut w2 = pin!(b.acquire());
            assert!(poll_once(w2.as_mut()).await.is_pending());
            advance(ms(20)).await;
            drop(p1);
            let mut w3 = pin!(b.acquire());
            assert!(poll_once(w3.as_mut()).await.is_pending());
            advance(ms(5)).await;
            let Poll::Ready(Ok(p2)) = poll_once(w2.as_mut()).await else {
                panic!()
            };
            // w3: handed the slot 5 ms after its arrival, resumed 3 ms later.
            drop(p2);
            advance(ms(3)).await;
            let Poll::Ready(Ok(p3)) = poll_once(w3.as_mut()).await else {
                panic!()
            };
            drop(p3);
        })
    });

    let got = waits(&recorder);
    let want = [0.035, 0.025, 0.008];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-9, "{got:?} != {want:?}");
    }
}

/// Many tasks on several threads through two slots, every call waiting: a lost
/// wake-up would leave a task waiting for ever (here: until the test's bound),
/// a slot released twice would show as more than two calls at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_wake_up_is_lost_under_contention() {
    let b = Bulkhead::builder("contended")
        .max_concurrent(2)
        .max_wait(Duration::from_secs(120))
        .build()
        .unwrap();
    let inside = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (b, inside) = (b.clone(), inside.clone());
            tokio::spawn(async move {
                for _ in 0..500 {
                    let inside = inside.clone();
                    b.call(async move {
                        let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} calls inside two slots");
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        Ok::<_, Infallible>(())
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(100), all)
        .await
        .expect("a waiter was never woken");
    assert_eq!(b.available(), 2);
    assert_eq!(b.waiting(), 0);
    assert_eq!(b.rejected(), 0);
}
