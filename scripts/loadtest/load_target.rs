//! The loopback load test's server: an axum hello-world on `GET /hello`,
//! served bare, with the full telltale stack or with the full peer stack (the
//! stacks of `benches/full_stack.rs`, shared through
//! `benches/support/stacks.rs`). `scripts/loadtest/run` starts it and loads it
//! with `wrk`. It is an example target of the root package (see `[[example]]`
//! in `Cargo.toml`), kept here with the script rather than among the user
//! examples.
//!
//! ```text
//! cargo run --release --example load_target -- --stack telltale --addr 127.0.0.1:0
//! ```
//!
//! Prints `listening on http://ADDR` once bound. Options: `--stack
//! bare|telltale|peers` (default `bare`), `--addr` (default `127.0.0.1:0`;
//! loopback only), `--threads N` (tokio worker threads, default: the CPUs),
//! `--exit-after SECONDS` (stop by itself; default: run until killed). Spans go
//! to the OpenTelemetry SDK's batch processor and a discarding exporter; the
//! metrics to an in-process Prometheus recorder (upkeep every 5 s).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[path = "../../benches/support/stacks.rs"]
mod stacks;

use stacks::Stack;

struct Args {
    stack: Stack,
    addr: SocketAddr,
    threads: Option<usize>,
    exit_after: Option<Duration>,
}

const USAGE: &str = "usage: load_target [--stack bare|telltale|peers] [--addr 127.0.0.1:PORT] \
                     [--threads N] [--exit-after SECONDS]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        stack: Stack::Bare,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads: None,
        exit_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--stack" => {
                let name = value()?;
                args.stack = Stack::ALL
                    .into_iter()
                    .find(|s| s.name() == name)
                    .ok_or_else(|| format!("unknown stack `{name}`"))?;
            }
            "--addr" => {
                let addr = value()?;
                args.addr = addr.parse().map_err(|e| format!("--addr `{addr}`: {e}"))?;
                if !args.addr.ip().is_loopback() {
                    return Err(format!("--addr `{addr}`: loopback addresses only"));
                }
            }
            "--threads" => {
                let n = value()?;
                args.threads = Some(
                    n.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--threads `{n}`: a positive number"))?,
                );
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

async fn serve(args: Args) -> std::io::Result<()> {
    let metrics = stacks::metrics();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            metrics.run_upkeep();
        }
    });
    let router = stacks::router(args.stack);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!(
        "listening on http://{} (stack {})",
        listener.local_addr()?,
        args.stack.name()
    );
    let stop = async move {
        match args.exit_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
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
    let (dispatch, provider) = stacks::subscriber(true);
    if let Err(e) = tracing::dispatcher::set_global_default(dispatch) {
        eprintln!("tracing subscriber: {e}");
        return ExitCode::FAILURE;
    }
    let served = runtime.block_on(serve(args));
    let _ = provider.shutdown();
    println!("spans exported: {}", stacks::spans_exported());
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::FAILURE
        }
    }
}
