//! The telltale demo: a chain of four real services on 127.0.0.1, each its
//! own process with its own `service.name`,
//!
//! ```text
//! load ─HTTP─▶ checkout ─HTTP─▶ payment ─gRPC─▶ fraud-detection ─HTTP─▶ external-fraud-api
//!                                               (breaker + bulkhead)     (chaos from env)
//! ```
//!
//! driven through a scripted incident (the external API turns slow and
//! flaky, timeouts cascade, the breaker opens, the API recovers, the breaker
//! closes), then a report built from the services' flight recorders.
//!
//! ```text
//! cargo demo                       # = cargo run --release -p telltale-demo
//! cargo demo -- --short            # the ~8 s version the test runs
//! cargo demo -- --report-json r.json --logs json
//! ```

mod grpc;
mod parent;
mod report;
mod service;

use std::process::ExitCode;
use std::time::Duration;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The line a child prints once it serves: `READY {"role":…,"port":…,"admin":…}`.
pub(crate) const READY: &str = "TELLTALE_DEMO_READY";

/// The services, in calling order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Checkout,
    Payment,
    FraudDetection,
    ExternalFraudApi,
}

impl Role {
    /// Every role, callers first.
    pub(crate) const ALL: [Role; 4] = [
        Role::Checkout,
        Role::Payment,
        Role::FraudDetection,
        Role::ExternalFraudApi,
    ];

    /// The `service.name`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Checkout => "checkout",
            Role::Payment => "payment",
            Role::FraudDetection => "fraud-detection",
            Role::ExternalFraudApi => "external-fraud-api",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// Command-line settings.
#[derive(Clone, Debug, Default)]
pub(crate) struct Settings {
    /// `--role`: run one service (children).
    pub(crate) role: Option<Role>,
    /// `--upstream URL`: the service this one calls (children).
    pub(crate) upstream: Option<String>,
    /// `--short`: the short scenario.
    pub(crate) short: bool,
    /// Whether services print log lines (`--logs json`, or
    /// `TELLTALE_LOG_FORMAT` set); the parent forwards them to its stdout.
    pub(crate) json_logs: bool,
    /// `--logs json|none` given explicitly: overrides `TELLTALE_LOG_FORMAT`.
    pub(crate) logs_flag: bool,
    /// `--report-json PATH`: write the report's facts as JSON.
    pub(crate) report_json: Option<std::path::PathBuf>,
}

impl Settings {
    /// A duration of the scenario, in milliseconds. The demo runs in real
    /// time: timeouts, the breaker's open wait and the injected delays are
    /// the production-like values themselves (only the phases are short).
    pub(crate) fn scale(&self, ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}

const USAGE: &str = "\
usage: demo [--short] [--report-json PATH] [--logs json]

Starts checkout → payment → fraud-detection (gRPC) → external-fraud-api on
127.0.0.1, each its own process, runs a scripted incident against them and
prints a report from their flight recorders.

Environment: TELLTALE_CHAOS replaces the incident's chaos rules on
external-fraud-api; TELLTALE_BREAKER_* and TELLTALE_BULKHEAD_* tune the
breaker and bulkhead of fraud-detection; OTEL_* (OTEL_EXPORTER_OTLP_ENDPOINT
exports to a collector), TELLTALE_LOG_*, TELLTALE_HTTP_*, TELLTALE_METRICS_*
and TELLTALE_CORRELATION_* apply to every service.";

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings {
        json_logs: std::env::var_os("TELLTALE_LOG_FORMAT").is_some(),
        ..Settings::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--role" => {
                let v = value("--role")?;
                s.role = Some(Role::parse(&v).ok_or(format!("unknown role {v:?}"))?);
            }
            "--upstream" => s.upstream = Some(value("--upstream")?),
            "--short" => s.short = true,
            "--report-json" => s.report_json = Some(value("--report-json")?.into()),
            "--logs" => match value("--logs")?.as_str() {
                "json" => (s.json_logs, s.logs_flag) = (true, true),
                "none" | "off" => (s.json_logs, s.logs_flag) = (false, true),
                other => return Err(format!("--logs takes json or none, not {other:?}")),
            },
            "-h" | "--help" => return Err(String::new()),
            // `cargo run -p telltale-demo -- -- --short` passes a second
            // `--` through: it separates nothing here.
            "--" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(s)
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("demo: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match settings.role {
            Some(role) => service::run(role, &settings).await,
            None => parent::run(&settings).await,
        }
    });
    // Do not wait for stray blocking tasks (stdin readers) at exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match settings.role {
                Some(role) => eprintln!("{}: {e}", role.name()),
                None => eprintln!("demo failed: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}
