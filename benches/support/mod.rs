//! What the root benches share: the counting allocator, driving ready
//! futures and services by hand, the measuring/test switch, and (in
//! submodules) the contention measurement and the full server stacks.
//!
//! Every bench declares `mod support;` and uses the part it needs.
//!
//! Under `cargo bench` (criterion's `--bench` argument) the reports measure
//! at full size and print their tables. Under `cargo test --all-targets` the
//! benches run as tests: every routine runs once, [`measuring`] is false, and
//! the reports print nothing (no debug-build figures that look like results).

#![allow(dead_code, unreachable_pub, unused_imports)]

pub(crate) mod contention;
pub(crate) mod stacks;

use std::alloc::System;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};

/// Counts every allocation of the bench binary.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Whether this run measures (`cargo bench`) rather than tests
/// (`cargo test --all-targets`, which runs each bench once).
pub(crate) fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `full` when [`measuring`], else `1`: the size of a report's loop.
pub(crate) fn size(full: usize) -> usize {
    if measuring() { full } else { 1 }
}

/// `println!` when [`measuring`]; silent when the bench runs as a test.
macro_rules! report {
    ($($arg:tt)*) => {
        if $crate::support::measuring() {
            println!($($arg)*);
        }
    };
}
pub(crate) use report;

/// A region counting the allocations from now on (`region.change()`).
pub(crate) fn region() -> Region<'static, System> {
    Region::new(GLOBAL)
}

/// The allocations (and reallocations, counted apart) and bytes of running
/// `f`.
pub(crate) fn allocations_of<T>(f: impl FnOnce() -> T) -> (T, Stats) {
    let region = region();
    let out = f();
    (out, region.change())
}

/// Polls a future that completes without waiting.
pub(crate) fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Asserts that `svc` is ready at once.
pub(crate) fn ready<S: tower::Service<R>, R>(svc: &mut S) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
}

/// A named benchmark subject: one call per invocation.
pub(crate) type Subject = (&'static str, Box<dyn FnMut()>);

/// Prints each subject's heap allocations and bytes per call, after 10k
/// warm-up calls, over 10k calls (names padded to `width`).
pub(crate) fn report_allocations_per_call(subjects: Vec<Subject>, width: usize) {
    let n = size(10_000);
    report!("\nheap allocations per call (after 10k warm-up calls, 10k measured):");
    for (name, mut f) in subjects {
        for _ in 0..n {
            f();
        }
        let ((), stats) = allocations_of(|| {
            for _ in 0..n {
                f();
            }
        });
        report!(
            "  {name:<width$} {:>6.2} allocs/call {:>8.1} bytes/call",
            stats.allocations as f64 / n as f64,
            stats.bytes_allocated as f64 / n as f64
        );
    }
    report!();
}

/// A subject that sends one `Request<()>` through `svc` per invocation
/// (readiness asserted, the response future polled to completion).
pub(crate) fn service_subject<S>(name: &'static str, mut svc: S) -> Subject
where
    S: tower::Service<http::Request<()>> + 'static,
{
    (
        name,
        Box::new(move || {
            ready(&mut svc);
            drop(std::hint::black_box(now(svc.call(http::Request::new(())))));
        }),
    )
}

/// A multi-threaded tokio runtime with `workers` worker threads.
pub(crate) fn multi_thread_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
