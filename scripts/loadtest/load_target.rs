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
//! `--exit-after SECONDS` (stop by itself; default: run until killed or sent
//! SIGTERM/SIGINT, which also stop it gracefully). The metrics go to an
//! in-process Prometheus recorder (upkeep every 5 s). Spans:
//!
//! - without `--otlp`: the OpenTelemetry SDK's batch processor and a
//!   discarding in-process exporter, every trace sampled in;
//! - with `--otlp URL` (OTLP/HTTP protobuf, e.g.
//!   `http://127.0.0.1:4318/v1/traces`): the SDK's batch processor (default
//!   settings) and opentelemetry-otlp's exporter, sampled by
//!   `ParentBased(AlwaysOn)` or, with `--sample RATIO` below 1,
//!   `ParentBased(TraceIdRatioBased(RATIO))`; identical for every stack
//!   (`stacks::otlp_subscriber`).
//!
//! On exit it prints `spans exported: N failed: M`.
//!
//! `--receive` runs the other end instead: a discarding OTLP/HTTP receiver
//! that answers every `POST` with `200` and an empty protobuf
//! `Export*ServiceResponse` (full success) after reading the body, without
//! decoding it; on exit it prints `received: N requests, B bytes`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[path = "../../benches/support/stacks.rs"]
mod stacks;

use stacks::Stack;

struct Args {
    stack: Stack,
    otlp: Option<String>,
    sample: f64,
    receive: bool,
    addr: SocketAddr,
    threads: Option<usize>,
    exit_after: Option<Duration>,
}

const USAGE: &str = "usage: load_target [--stack bare|telltale|peers] [--otlp URL] \
                     [--sample RATIO] [--addr 127.0.0.1:PORT] [--threads N] \
                     [--exit-after SECONDS] | load_target --receive [--addr ...] [--threads N]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        stack: Stack::Bare,
        otlp: None,
        sample: 1.0,
        receive: false,
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
            "--otlp" => {
                let url = value()?;
                let uri: http::Uri = url.parse().map_err(|e| format!("--otlp `{url}`: {e}"))?;
                if uri.scheme_str() != Some("http") || uri.host().is_none() {
                    return Err(format!("--otlp `{url}`: an http:// URL"));
                }
                args.otlp = Some(url);
            }
            "--sample" => {
                let ratio = value()?;
                args.sample = ratio
                    .parse()
                    .ok()
                    .filter(|r: &f64| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("--sample `{ratio}`: a ratio from 0 to 1"))?;
            }
            "--receive" => args.receive = true,
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

/// Resolves on SIGTERM or SIGINT (the script stops servers with `kill`), or
/// after `exit_after`.
async fn stop_signal(exit_after: Option<Duration>) {
    use tokio::signal::unix::{SignalKind, signal};
    let after = async move {
        match exit_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return after.await;
    };
    tokio::select! {
        _ = after => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
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
    axum::serve(listener, router)
        .with_graceful_shutdown(stop_signal(args.exit_after))
        .await
}

static RECEIVED_REQUESTS: AtomicU64 = AtomicU64::new(0);
static RECEIVED_BYTES: AtomicU64 = AtomicU64::new(0);

/// The discarding OTLP/HTTP receiver (`--receive`).
async fn receive(args: Args) -> std::io::Result<()> {
    async fn discard(body: axum::body::Bytes) -> impl axum::response::IntoResponse {
        RECEIVED_REQUESTS.fetch_add(1, Ordering::Relaxed);
        RECEIVED_BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
        // An empty message is a valid `Export*ServiceResponse`: full success.
        (
            [(http::header::CONTENT_TYPE, "application/x-protobuf")],
            axum::body::Bytes::new(),
        )
    }
    let router = axum::Router::new()
        .fallback(axum::routing::post(discard))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!(
        "listening on http://{} (OTLP receiver)",
        listener.local_addr()?
    );
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(stop_signal(args.exit_after))
        .await;
    println!(
        "received: {} requests, {} bytes",
        RECEIVED_REQUESTS.load(Ordering::Relaxed),
        RECEIVED_BYTES.load(Ordering::Relaxed)
    );
    served
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
    if args.receive {
        return match runtime.block_on(receive(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serve: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // OTLP exports run on a runtime of their own (one thread), like an
    // exporter's background worker, not on the server's workers.
    let export_runtime = match &args.otlp {
        None => None,
        Some(_) => match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
        {
            Ok(rt) => Some(rt),
            Err(e) => {
                eprintln!("tokio runtime: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let (dispatch, provider) = match (&args.otlp, &export_runtime) {
        (Some(url), Some(rt)) => {
            match stacks::otlp_subscriber(url, args.sample, rt.handle().clone()) {
                Ok(pair) => pair,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => stacks::subscriber(true),
    };
    if let Err(e) = tracing::dispatcher::set_global_default(dispatch) {
        eprintln!("tracing subscriber: {e}");
        return ExitCode::FAILURE;
    }
    let served = runtime.block_on(serve(args));
    let _ = provider.shutdown();
    println!(
        "spans exported: {} failed: {}",
        stacks::spans_exported(),
        stacks::spans_failed()
    );
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::FAILURE
        }
    }
}
