//! The contention report's measurement, shared by `benches/breaker.rs` and
//! `benches/bulkhead.rs` (included with `#[path]`, as `benches/stacks` is):
//! every call timed around `ready().await` + `call().await` in many tasks on a
//! multi-threaded runtime; throughput and p50/p99 from the sorted latencies.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tower::{Service, ServiceExt};

type Req = http::Request<()>;

/// One contention measurement: throughput and latency percentiles.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) calls_per_s: f64,
    pub(crate) p50_ns: f64,
    pub(crate) p99_ns: f64,
}

/// Runs `calls` calls in each of `tasks` tasks (each with its own clone of
/// `svc`), timing every `ready().await` + `call().await`.
pub(crate) fn run_service<S>(
    rt: &tokio::runtime::Runtime,
    tasks: usize,
    calls: usize,
    svc: S,
) -> Sample
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: std::fmt::Debug + Send,
{
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let mut svc = svc.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(calls);
                    for _ in 0..calls {
                        let t = Instant::now();
                        let res = svc
                            .ready()
                            .await
                            .unwrap()
                            .call(http::Request::new(()))
                            .await;
                        drop(black_box(res.unwrap()));
                        lat.push(t.elapsed().as_nanos() as u64);
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::with_capacity(tasks * calls);
        for h in handles {
            all.extend(h.await.unwrap());
        }
        let elapsed = start.elapsed();
        sample(all, elapsed)
    })
}

pub(crate) fn sample(mut lat: Vec<u64>, elapsed: Duration) -> Sample {
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] as f64;
    Sample {
        calls_per_s: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ns: pct(0.50),
        p99_ns: pct(0.99),
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
