//! `telltale-fuzz`: runs the fuzz targets for a time (or input) budget and
//! prints how many inputs each ran; exits with 1 when any input panicked.
//!
//! ```text
//! cargo run --release -p telltale-fuzz -- [--seconds N | --inputs N] [--seed S] [TARGET...]
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use telltale_fuzz::{Budget, TARGETS, run};

const USAGE: &str = "usage: telltale-fuzz [--seconds N | --inputs N] [--seed S] [TARGET...]";

fn main() -> ExitCode {
    let mut budget = Budget::Time(Duration::from_secs(10));
    let mut seed = None;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Option<u64> {
            let v = args.next().and_then(|v| v.parse().ok());
            if v.is_none() {
                eprintln!("{what} needs a whole number\n{USAGE}");
            }
            v
        };
        match arg.as_str() {
            "--seconds" => match number("--seconds") {
                Some(n) => budget = Budget::Time(Duration::from_secs(n)),
                None => return ExitCode::from(2),
            },
            "--inputs" => match number("--inputs") {
                Some(n) => budget = Budget::Inputs(n),
                None => return ExitCode::from(2),
            },
            "--seed" => match number("--seed") {
                Some(n) => seed = Some(n),
                None => return ExitCode::from(2),
            },
            "--list" => {
                for t in TARGETS {
                    println!("{}", t.name);
                }
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{USAGE}\ntargets: {}", target_names());
                return ExitCode::SUCCESS;
            }
            name if TARGETS.iter().any(|t| t.name == name) => names.push(arg),
            other => {
                eprintln!(
                    "unknown argument or target {other:?}\n{USAGE}\ntargets: {}",
                    target_names()
                );
                return ExitCode::from(2);
            }
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    // Panics are caught and reported with their input below; the default
    // hook would print each one (and a backtrace) on top.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = false;
    for target in TARGETS
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
    {
        let start = Instant::now();
        let report = run(target, seed, budget);
        let secs = start.elapsed().as_secs_f64();
        match &report.failure {
            None => println!(
                "{:<14} {:>10} inputs  0 panics  {:>6.1} s  seed {seed}",
                report.target, report.inputs, secs
            ),
            Some(f) => {
                failed = true;
                println!(
                    "{:<14} {:>10} inputs  PANIC at input {}  seed {seed}\n  input ({} chars): {:?}\n  panic: {}",
                    report.target,
                    report.inputs,
                    report.inputs,
                    f.input.chars().count(),
                    shorten(&f.input),
                    shorten(&f.message)
                );
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// At most 400 characters of `s`, for the terminal (rerun with the seed
/// to get the whole input).
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(400).collect();
    if s.chars().count() > 400 {
        out.push('…');
    }
    out
}

fn target_names() -> String {
    TARGETS
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}
