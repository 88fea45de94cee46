//! `from_env()` reads the real process environment: checked in a child
//! process (this same test binary) started with `Command::env`, since setting
//! variables in this process is unsafe in edition 2024.

use std::process::Command;

use telltale_correlation::BuildError;
use telltale_correlation::client::InjectCorrelationLayer;
use telltale_correlation::env::{ALIASES, HEADER, REQUIRE};
use telltale_correlation::server::CorrelationLayer;

const CHILD: &str = "TELLTALE_CORRELATION_TEST_CHILD";

fn run_child(test: &str, vars: &[(&str, &str)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn from_env_reads_the_process_environment() {
    if std::env::var_os(CHILD).is_none() {
        return run_child(
            "from_env_reads_the_process_environment",
            &[(HEADER, "X-Trace-Ref"), (ALIASES, "x-request-id")],
        );
    }
    let layer = CorrelationLayer::from_env().unwrap();
    assert_eq!(layer.header(), "x-trace-ref");
    let client = InjectCorrelationLayer::from_env().unwrap();
    assert_eq!(client.header(), "x-trace-ref");
}

#[test]
fn from_env_errors_name_the_variable() {
    if std::env::var_os(CHILD).is_none() {
        return run_child("from_env_errors_name_the_variable", &[(REQUIRE, "perhaps")]);
    }
    let err = CorrelationLayer::from_env().unwrap_err();
    let BuildError::Config(config) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(config.variable(), REQUIRE);
    assert!(
        err.to_string()
            .starts_with("invalid TELLTALE_CORRELATION_REQUIRE=\"perhaps\"")
    );
}
