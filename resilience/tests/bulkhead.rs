//! Bulkhead: limits, waits, permits held until the body ends, no leaks under
//! cancellation.

mod support;

use support::call;

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rand::Rng;
use telltale_resilience::{Bulkhead, Error};
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn rejects_at_once_or_after_the_max_wait() {
    let b = Bulkhead::builder("b").max_concurrent(2).build().unwrap();
    let p1 = b.try_acquire().unwrap();
    let _p2 = b.try_acquire().unwrap();
    assert_eq!(b.available(), 0);
    let Err(Error::Full(full)) = b.call(async { Ok::<_, Infallible>(()) }).await else {
        panic!()
    };
    assert_eq!(full.max_concurrent, 2);
    assert_eq!(full.waited, Duration::ZERO);
    drop(p1);
    assert!(b.call(async { Ok::<_, Infallible>(()) }).await.is_ok());

    let b = Bulkhead::builder("w")
        .max_concurrent(1)
        .max_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let held = b.try_acquire().unwrap();
    let start = tokio::time::Instant::now();
    let Err(Error::Full(full)) = b.call(async { Ok::<_, Infallible>(()) }).await else {
        panic!()
    };
    assert_eq!(full.waited, Duration::from_millis(100));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    // A slot freed during the wait is taken.
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { b2.call(async { Ok::<_, Infallible>(7) }).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), 7);
    assert_eq!(b.available(), 1);
}

async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

type Chunks = futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>;

fn body(n: usize) -> StreamBody<Chunks> {
    let frames: Vec<_> = (0..n)
        .map(|_| Ok(Frame::data(Bytes::from_static(b"x"))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

#[tokio::test]
async fn permits_are_held_until_the_body_ends() {
    let b = Bulkhead::builder("body").max_concurrent(2).build().unwrap();
    let mut svc =
        ServiceBuilder::new()
            .layer(b.layer())
            .service_fn(|_req: http::Request<()>| async {
                Ok::<_, Infallible>(http::Response::new(body(3)))
            });
    let res = call(&mut svc, http::Request::new(())).await.unwrap();
    assert_eq!(
        b.available(),
        1,
        "the response head does not release the slot"
    );
    let mut res_body = res.into_body();
    res_body.frame().await.unwrap().unwrap();
    assert_eq!(b.available(), 1);
    while res_body.frame().await.is_some() {}
    assert_eq!(b.available(), 2, "released at end of stream");

    let res = call(&mut svc, http::Request::new(())).await.unwrap();
    let res2 = call(&mut svc, http::Request::new(())).await.unwrap();
    let err = call(&mut svc, http::Request::new(())).await.unwrap_err();
    assert!(matches!(err, Error::Full(_)));
    drop(res);
    assert_eq!(b.available(), 1, "released when the body is dropped");
    drop(res2);
    assert_eq!(b.available(), 2);
}

#[tokio::test(start_paused = true)]
async fn layer_waits_for_a_slot_then_calls() {
    let b = Bulkhead::builder("wait")
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut svc =
        ServiceBuilder::new()
            .layer(b.layer())
            .service_fn(|_req: http::Request<()>| async {
                Ok::<_, Infallible>(http::Response::new(body(1)))
            });
    let first = call(&mut svc, http::Request::new(())).await.unwrap();
    let second = svc.ready().await.unwrap().call(http::Request::new(()));
    let release = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(first);
    };
    let (second, ()) = tokio::join!(second, release);
    let second = second.unwrap();
    assert_eq!(b.available(), 0);
    second.into_body().collect().await.unwrap();
    assert_eq!(b.available(), 1);
}

/// 100,000 calls, each cancelled after a random number of polls (while
/// waiting for a slot, while running, or while its response body streams):
/// every slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_permit_leaked_under_100_000_cancelled_calls() {
    const TASKS: usize = 8;
    const CALLS: usize = 100_000 / TASKS;
    let b = Bulkhead::builder("leak")
        .max_concurrent(4)
        .max_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    let svc =
        ServiceBuilder::new()
            .layer(b.layer())
            .service_fn(|req: http::Request<usize>| async move {
                for _ in 0..req.into_body() {
                    tokio::task::yield_now().await;
                }
                Ok::<_, Infallible>(http::Response::new(body(3)))
            });
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (b, mut svc) = (b.clone(), svc.clone());
        tasks.push(tokio::spawn(async move {
            let mut completed = 0usize;
            for i in 0..CALLS {
                let (polls, work, body_frames) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(0..6),
                        rng.random_range(0..4),
                        rng.random_range(0..4),
                    )
                };
                if i % 2 == 0 {
                    let mut call = pin!(b.call(async move {
                        for _ in 0..work {
                            tokio::task::yield_now().await;
                        }
                        Ok::<_, Infallible>(())
                    }));
                    for _ in 0..polls {
                        if let Poll::Ready(r) = poll_once(call.as_mut()).await {
                            completed += usize::from(r.is_ok());
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                } else {
                    let svc = svc.ready().await.unwrap();
                    let mut call = pin!(svc.call(http::Request::new(work)));
                    for _ in 0..polls {
                        if let Poll::Ready(r) = poll_once(call.as_mut()).await {
                            if let Ok(res) = r {
                                completed += 1;
                                let mut body = res.into_body();
                                for _ in 0..body_frames {
                                    if body.frame().await.is_none() {
                                        break;
                                    }
                                }
                            }
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                }
                assert!(b.available() <= 4);
            }
            completed
        }));
    }
    let mut completed = 0;
    for t in tasks {
        completed += t.await.unwrap();
    }
    assert!(completed > 0);
    assert_eq!(b.available(), 4, "every slot came back");
    let all: Vec<_> = (0..4).map(|_| b.try_acquire().unwrap()).collect();
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn full_bulkhead_maps_to_429_when_asked() {
    use telltale_resilience::reject::RejectionResponseLayer;
    let b = Bulkhead::builder("api").max_concurrent(1).build().unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(RejectionResponseLayer::new().bulkhead_status(http::StatusCode::TOO_MANY_REQUESTS))
        .layer(b.layer())
        .service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(Bytes::new())))
        });
    let _held = b.try_acquire().unwrap();
    let res = call(&mut svc, http::Request::new(())).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
}

/// Many calls queue at once, more than the reaper expires in one batch: the
/// max wait is never cut short, every one is rejected within a few
/// milliseconds of it, and nothing stays queued.
#[tokio::test(start_paused = true)]
async fn frequent_waits_keep_the_max_wait() {
    let b = Bulkhead::builder("burst")
        .max_concurrent(1)
        .max_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    let held = b.try_acquire().unwrap();
    let start = tokio::time::Instant::now();
    let waiters: Vec<_> = (0..64)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move {
                let r = b.call(async { Ok::<_, Infallible>(()) }).await;
                (r, start.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (r, elapsed) = w.await.unwrap();
        let Err(Error::Full(full)) = r else {
            panic!("admitted while the only slot was held")
        };
        assert!(full.waited >= Duration::from_millis(50), "{full:?}");
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(53), "{elapsed:?}");
    }
    assert_eq!(b.waiting(), 0);
    assert_eq!(b.rejected(), 64);
    drop(held);
    assert_eq!(b.available(), 1);

    // The same burst with the slot freed midway: those still queued are
    // served in arrival order, one at a time.
    let held = b.try_acquire().unwrap();
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let waiters: Vec<_> = (0..16)
        .map(|i| {
            let (b, order) = (b.clone(), order.clone());
            tokio::spawn(async move {
                b.call(async move {
                    order.lock().unwrap().push(i);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok::<_, Infallible>(())
                })
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(b.waiting(), 16);
    drop(held);
    let mut admitted = 0;
    for w in waiters {
        admitted += usize::from(w.await.unwrap().is_ok());
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), admitted);
    assert_eq!(admitted, 16);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert_eq!(b.available(), 1);
}

/// The bulkhead's timer runs on the runtime of the first call that waited:
/// after that runtime shuts down, a wait in another runtime still ends at
/// the max wait.
#[test]
fn max_wait_survives_a_runtime_shutdown() {
    let b = Bulkhead::builder("rt")
        .max_concurrent(1)
        .max_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    let held = b.try_acquire().unwrap();
    let paused = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    };
    for _ in 0..2 {
        let call = b.call(async { Ok::<_, Infallible>(()) });
        // Bounded: a wait nobody expires fails here instead of hanging.
        let r =
            paused().block_on(async { tokio::time::timeout(Duration::from_secs(5), call).await });
        let Ok(Err(Error::Full(full))) = r else {
            panic!("{r:?}")
        };
        assert_eq!(full.waited, Duration::from_millis(20));
    }
    drop(held);
    assert_eq!(b.waiting(), 0);
    assert_eq!(b.available(), 1);
}

/// Outside a tokio runtime the max wait cannot be timed: a call that finds
/// the bulkhead full is rejected at once (no panic, no endless wait).
#[test]
fn a_full_bulkhead_outside_a_runtime_rejects_at_once() {
    let b = Bulkhead::builder("no-rt")
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let held = b.try_acquire().unwrap();
    let mut call = pin!(b.call(async { Ok::<_, Infallible>(()) }));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let Poll::Ready(Err(Error::Full(full))) = call.as_mut().poll(&mut cx) else {
        panic!("not rejected at once")
    };
    assert_eq!(full.waited, Duration::ZERO);
    assert_eq!(b.waiting(), 0);
    drop(held);
    assert_eq!(b.available(), 1);
}

/// A runtime without timers cannot time the max wait either: a waiting call
/// is rejected rather than left waiting for ever.
#[test]
fn a_runtime_without_timers_rejects_instead_of_waiting_for_ever() {
    let b = Bulkhead::builder("no-timers")
        .max_concurrent(1)
        .max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let held = b.try_acquire().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let r = rt.block_on(b.call(async { Ok::<_, Infallible>(()) }));
    assert!(matches!(r, Err(Error::Full(_))), "{r:?}");
    // Later waits are rejected at once.
    let r = rt.block_on(b.call(async { Ok::<_, Infallible>(()) }));
    assert!(matches!(r, Err(Error::Full(_))), "{r:?}");
    drop(held);
    assert!(
        rt.block_on(b.call(async { Ok::<_, Infallible>(()) }))
            .is_ok()
    );
    assert_eq!(b.waiting(), 0);
}
