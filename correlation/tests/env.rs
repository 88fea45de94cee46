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

/// Issue 14, item 5: every variable × malformed and out-of-range values; the
/// error names the variable, quotes the value and states what is allowed.
#[test]
fn every_variable_rejects_bad_values_naming_variable_value_and_range() {
    use telltale_core::config::Env;
    use telltale_correlation::env;
    let long_name = format!("x-{}", "a".repeat(63));
    let many: Vec<String> = (0..17).map(|i| format!("x-a{i}")).collect();
    let many = many.join(",");
    let cases: Vec<(&str, &str, &str)> = vec![
        (env::HEADER, "x y", "a header name character"),
        (env::HEADER, "x-é", "a header name character"),
        (env::HEADER, "a:b", "a header name character"),
        (env::HEADER, &long_name, "at most 64 characters"),
        (env::ALIASES, "x-a,,x-b", "item"),
        (env::ALIASES, "x-a,bad name", "a header name character"),
        (env::ALIASES, &many, "at most 16 header names"),
        (env::TRUST_INCOMING, "maybe", "true or false"),
        (env::REQUIRE, "2", "true or false"),
        (env::ECHO, "nah", "true or false"),
        (env::MAX_LEN, "0", "a length from 1 to 1024"),
        (env::MAX_LEN, "1025", "a length from 1 to 1024"),
        (env::MAX_LEN, "-5", "a length from 1 to 1024"),
        (env::MAX_LEN, "12a", "a length from 1 to 1024"),
        (
            env::MAX_LEN,
            "99999999999999999999999",
            "a length from 1 to 1024",
        ),
        (env::CLIENT_OVERRIDE, "sometimes", "true or false"),
        (env::CLIENT_GENERATE, "-1", "true or false"),
    ];
    for (var, value, allowed) in cases {
        let source = Env::from_pairs([(var, value)]);
        let err = if env::SERVER_VARS.contains(&var) {
            CorrelationLayer::from_env_source(&source).unwrap_err()
        } else {
            InjectCorrelationLayer::from_env_source(&source).unwrap_err()
        };
        let BuildError::Config(config) = &err else {
            panic!("{var}={value}: {err:?}")
        };
        telltale_testkit::assert_config_error(&err, config, var, value, allowed);
    }
}
