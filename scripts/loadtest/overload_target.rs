//! The overload test's server (`scripts/loadtest/overload`): a 20 ms handler
//! on `GET /work` behind a 32-slot bulkhead, alone or inside the full
//! `ServerStack` with a circuit breaker in front of the bulkhead. Loaded far
//! beyond its capacity (about 1,600 requests/s per 32 slots), it shows whether
//! the breaker mistakes load shedding for a broken dependency (issue 14). It
//! is an example target of the root package (see `[[example]]` in
//! `Cargo.toml`), kept here with the script.
//!
//! ```text
//! cargo run --release --example overload_target -- --mode stack --addr 127.0.0.1:0
//! ```
//!
//! No tracing subscriber or metrics recorder is installed: spans and metrics
//! take their no-op paths, so the comparison is about the guards.
//!
//! Prints `listening on http://ADDR` once bound and, when it stops, the
//! breaker's transitions (`breaker transitions: N`, `breaker state: S`).
//! Options: `--mode bulkhead|stack|stack-counting` (`stack-counting`: the
//! breaker counts rejections, the old behaviour, for comparison), `--slots N`
//! (default 32), `--addr` (loopback only), `--threads N`, `--exit-after
//! SECONDS`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use telltale::resilience::reject::RejectionResponseLayer;
use telltale::resilience::{BreakerEvent, Bulkhead, CircuitBreaker};
use telltale::stack::ServerStack;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bulkhead,
    Stack,
    StackCounting,
}

struct Args {
    mode: Mode,
    slots: usize,
    addr: SocketAddr,
    threads: Option<usize>,
    exit_after: Option<Duration>,
}

const USAGE: &str = "usage: overload_target [--mode bulkhead|stack|stack-counting] [--slots N] \
                     [--addr 127.0.0.1:PORT] [--threads N] [--exit-after SECONDS]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: Mode::Stack,
        slots: 32,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads: None,
        exit_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let positive = |flag: &str, n: String| {
            n.parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n <= 1_000_000)
                .ok_or_else(|| format!("{flag} `{n}`: a number from 1 to 1000000"))
        };
        match flag.as_str() {
            "--mode" => {
                args.mode = match value()?.as_str() {
                    "bulkhead" => Mode::Bulkhead,
                    "stack" => Mode::Stack,
                    "stack-counting" => Mode::StackCounting,
                    other => return Err(format!("unknown mode `{other}`\n{USAGE}")),
                }
            }
            "--slots" => args.slots = positive("--slots", value()?)?,
            "--threads" => args.threads = Some(positive("--threads", value()?)?),
            "--addr" => {
                let addr = value()?;
                args.addr = addr.parse().map_err(|e| format!("--addr `{addr}`: {e}"))?;
                if !args.addr.ip().is_loopback() {
                    return Err(format!("--addr `{addr}`: loopback addresses only"));
                }
            }
            "--exit-after" => {
                let secs = value()?;
                args.exit_after = Some(Duration::from_secs(
                    secs.parse()
                        .map_err(|e| format!("--exit-after `{secs}`: {e}"))?,
                ));
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(args)
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let bulkhead = Bulkhead::builder("server")
        .max_concurrent(args.slots)
        .build()?;
    // The breaker's defaults (last 100 calls, opens at 50% failures), as a
    // service wired from the README gets them.
    let breaker = CircuitBreaker::builder("server")
        .count_rejections(args.mode == Mode::StackCounting)
        .build()?;
    let transitions = Arc::new(AtomicU64::new(0));
    let mut events = breaker.subscribe();
    let counted = transitions.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(BreakerEvent::StateTransition { .. }) => {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let router = Router::new().route(
        "/work",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            "done"
        }),
    );
    let router = match args.mode {
        Mode::Bulkhead => router.layer(
            tower::ServiceBuilder::new()
                .layer(RejectionResponseLayer::new().answer_all())
                .layer(bulkhead.layer()),
        ),
        Mode::Stack | Mode::StackCounting => router.layer(
            ServerStack::new()
                .breaker(breaker.clone())
                .bulkhead(bulkhead)
                .layer(),
        ),
    };
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let stop = async move {
        match args.exit_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await?;
    println!(
        "breaker transitions: {}",
        transitions.load(Ordering::Relaxed)
    );
    println!("breaker state: {}", breaker.state().as_str());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("overload_target: {e}");
            ExitCode::FAILURE
        }
    }
}
