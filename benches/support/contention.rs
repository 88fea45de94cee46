//! The contention report's measurement, shared by `benches/breaker.rs` and
//! `benches/bulkhead.rs`:
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

/// Like [`run_service`] for a closure returning one call's future.
pub(crate) fn run_call<F, Fut>(
    rt: &tokio::runtime::Runtime,
    tasks: usize,
    calls: usize,
    call: F,
) -> Sample
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    rt.block_on(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let call = call.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(calls);
                    for _ in 0..calls {
                        let t = Instant::now();
                        call().await;
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
        sample(all, start.elapsed())
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs every subject `rounds` times, interleaved (after one shorter warm-up
/// pass), and prints each subject's median throughput and p50/p99 under
/// `heading`, then the telltale subject (index 1; index 0 is the bare service)
/// against each peer after it. `run(subject, calls)` measures one run.
pub(crate) fn print_report(
    heading: &str,
    names: &[&str],
    rounds: usize,
    calls: usize,
    mut run: impl FnMut(usize, usize) -> Sample,
) {
    if !super::measuring() {
        // As a test: every subject once, one call per task, nothing printed.
        for i in 0..names.len() {
            run(i, 1);
        }
        return;
    }
    for i in 0..names.len() {
        run(i, calls / 4); // warm-up
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        for (i, runs) in samples.iter_mut().enumerate() {
            runs.push(run(i, calls));
        }
    }
    let med: Vec<Sample> = samples
        .iter()
        .map(|s| Sample {
            calls_per_s: median(s.iter().map(|x| x.calls_per_s).collect()),
            p50_ns: median(s.iter().map(|x| x.p50_ns).collect()),
            p99_ns: median(s.iter().map(|x| x.p99_ns).collect()),
        })
        .collect();
    println!("\n{heading}");
    println!(
        "  {:<26} {:>12} {:>10} {:>10}",
        "subject", "calls/s", "p50 ns", "p99 ns"
    );
    for (name, m) in names.iter().zip(&med) {
        println!(
            "  {name:<26} {:>12.0} {:>10.0} {:>10.0}",
            m.calls_per_s, m.p50_ns, m.p99_ns
        );
    }
    let tt = med[1];
    for (name, m) in names.iter().zip(&med).skip(2) {
        println!(
            "  telltale_layer vs {name}: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
            tt.calls_per_s / m.calls_per_s,
            tt.p50_ns / m.p50_ns,
            tt.p99_ns / m.p99_ns
        );
    }
}
