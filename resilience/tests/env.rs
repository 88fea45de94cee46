//! Issue 14, item 5: every breaker and bulkhead variable has a bounded,
//! validated range; a rejected value is an error naming the variable the
//! user set (not a builder setting), quoting the value and stating what is
//! allowed. Nonsense never silently becomes something else.
#![cfg(not(loom))]

use telltale_core::Env;
use telltale_resilience::{BuildError, Bulkhead, CircuitBreaker};

/// (variable, bad value, a piece of the "allowed" text).
const BREAKER: &[(&str, &str, &str)] = &[
    ("TELLTALE_BREAKER_WINDOW", "0", "from 1 to 10000"),
    ("TELLTALE_BREAKER_WINDOW", "10001", "from 1 to 10000"),
    (
        "TELLTALE_BREAKER_WINDOW",
        "ten",
        "a count of calls from 1 to 10000, or a duration from 1s to 1h",
    ),
    (
        "TELLTALE_BREAKER_WINDOW",
        "500ms",
        "a duration from 1s to 1h",
    ),
    ("TELLTALE_BREAKER_WINDOW", "2h", "a duration from 1s to 1h"),
    ("TELLTALE_BREAKER_WINDOW", "-5", "a count of calls"),
    ("TELLTALE_BREAKER_WINDOW_BUCKETS", "0", "from 1 to 120"),
    ("TELLTALE_BREAKER_WINDOW_BUCKETS", "121", "from 1 to 120"),
    ("TELLTALE_BREAKER_WINDOW_BUCKETS", "x", "from 1 to 120"),
    ("TELLTALE_BREAKER_FAILURE_RATE", "0", "above 0"),
    ("TELLTALE_BREAKER_FAILURE_RATE", "0%", "above 0"),
    ("TELLTALE_BREAKER_FAILURE_RATE", "150%", "at most 1"),
    ("TELLTALE_BREAKER_FAILURE_RATE", "1.5", "at most 1"),
    ("TELLTALE_BREAKER_FAILURE_RATE", "-0.5", "above 0"),
    ("TELLTALE_BREAKER_FAILURE_RATE", "half", "above 0"),
    ("TELLTALE_BREAKER_SLOW_CALL_RATE", "0", "above 0"),
    ("TELLTALE_BREAKER_SLOW_CALL_RATE", "101%", "at most 1"),
    ("TELLTALE_BREAKER_SLOW_CALL_DURATION", "0", "from 1ms to 1h"),
    (
        "TELLTALE_BREAKER_SLOW_CALL_DURATION",
        "2h",
        "from 1ms to 1h",
    ),
    (
        "TELLTALE_BREAKER_SLOW_CALL_DURATION",
        "fast",
        "from 1ms to 1h",
    ),
    ("TELLTALE_BREAKER_MINIMUM_CALLS", "0", "from 1 to 10000"),
    ("TELLTALE_BREAKER_MINIMUM_CALLS", "10001", "from 1 to 10000"),
    ("TELLTALE_BREAKER_MINIMUM_CALLS", "ten", "from 1 to 10000"),
    (
        "TELLTALE_BREAKER_MINIMUM_CALLS",
        "99999999999999999999",
        "from 1 to 10000",
    ),
    ("TELLTALE_BREAKER_OPEN_WAIT", "0", "from 1ms to 1h"),
    ("TELLTALE_BREAKER_OPEN_WAIT", "1000000h", "from 1ms to 1h"),
    (
        "TELLTALE_BREAKER_OPEN_WAIT_MULTIPLIER",
        "0.5",
        "from 1 to 100",
    ),
    (
        "TELLTALE_BREAKER_OPEN_WAIT_MULTIPLIER",
        "101",
        "from 1 to 100",
    ),
    (
        "TELLTALE_BREAKER_OPEN_WAIT_MULTIPLIER",
        "NaN",
        "from 1 to 100",
    ),
    (
        "TELLTALE_BREAKER_OPEN_WAIT_MULTIPLIER",
        "inf",
        "from 1 to 100",
    ),
    ("TELLTALE_BREAKER_OPEN_WAIT_MAX", "0", "from 1ms to 24h"),
    ("TELLTALE_BREAKER_OPEN_WAIT_MAX", "25h", "from 1ms to 24h"),
    (
        "TELLTALE_BREAKER_OPEN_WAIT_MAX",
        "1s",
        "at least the open wait (1m)",
    ),
    ("TELLTALE_BREAKER_OPEN_WAIT_JITTER", "101%", "from 0 to 1"),
    ("TELLTALE_BREAKER_OPEN_WAIT_JITTER", "x", "from 0 to 1"),
    ("TELLTALE_BREAKER_HALF_OPEN_PROBES", "0", "from 1 to 4095"),
    (
        "TELLTALE_BREAKER_HALF_OPEN_PROBES",
        "4096",
        "from 1 to 4095",
    ),
    ("TELLTALE_BREAKER_PROBE_DEADLINE", "0", "from 1ms to 1h"),
    ("TELLTALE_BREAKER_PROBE_DEADLINE", "3h", "from 1ms to 1h"),
    (
        "TELLTALE_BREAKER_FAILURE_STATUSES",
        "500-abc",
        "within 100-599",
    ),
    ("TELLTALE_BREAKER_FAILURE_STATUSES", "99", "within 100-599"),
    ("TELLTALE_BREAKER_FAILURE_STATUSES", "600", "within 100-599"),
    (
        "TELLTALE_BREAKER_FAILURE_STATUSES",
        "599-500",
        "within 100-599",
    ),
    (
        "TELLTALE_BREAKER_ABANDONED",
        "sometimes",
        "`ignore` or `failure`",
    ),
    (
        "TELLTALE_BREAKER_STATE",
        "half_open",
        "`closed`, `disabled`, `metrics_only` or `forced_open`",
    ),
    (
        "TELLTALE_BREAKER_STATE",
        "open",
        "`closed`, `disabled`, `metrics_only` or `forced_open`",
    ),
    (
        "TELLTALE_BREAKER_COUNT_REJECTIONS",
        "maybe",
        "true or false",
    ),
];

const BULKHEAD: &[(&str, &str, &str)] = &[
    ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "0", "from 1 to 1000000"),
    (
        "TELLTALE_BULKHEAD_MAX_CONCURRENT",
        "1000001",
        "from 1 to 1000000",
    ),
    (
        "TELLTALE_BULKHEAD_MAX_CONCURRENT",
        "2305843009213693952",
        "from 1 to 1000000",
    ),
    (
        "TELLTALE_BULKHEAD_MAX_CONCURRENT",
        "-1",
        "from 1 to 1000000",
    ),
    (
        "TELLTALE_BULKHEAD_MAX_CONCURRENT",
        "eight",
        "from 1 to 1000000",
    ),
    ("TELLTALE_BULKHEAD_MAX_WAIT", "2m", "from 0 to 1m"),
    ("TELLTALE_BULKHEAD_MAX_WAIT", "soon", "from 0 to 1m"),
    ("TELLTALE_BULKHEAD_MAX_WAIT", "-1s", "from 0 to 1m"),
];

fn check(err: BuildError, var: &str, value: &str, allowed: &str) {
    let config = err
        .config()
        .unwrap_or_else(|| panic!("{var}={value}: not a config error: {err}"));
    telltale_testkit::assert_config_error(&err, config, var, value, allowed);
}

#[test]
fn every_breaker_variable_names_itself_its_value_and_its_range() {
    for &(var, value, allowed) in BREAKER {
        // The buckets of a time window: give it one, so only the value is wrong.
        let mut pairs = vec![(var, value)];
        if var.ends_with("WINDOW_BUCKETS") {
            pairs.push(("TELLTALE_BREAKER_WINDOW", "60s"));
        }
        let err = CircuitBreaker::from_env_source(&Env::from_pairs(pairs), "t").unwrap_err();
        check(err, var, value, allowed);
    }
}

#[test]
fn every_bulkhead_variable_names_itself_its_value_and_its_range() {
    for &(var, value, allowed) in BULKHEAD {
        let err = Bulkhead::from_env_source(&Env::from_pairs([(var, value)]), "t").unwrap_err();
        check(err, var, value, allowed);
    }
}

#[test]
fn issue_cases_are_errors_not_silent_changes() {
    // MINIMUM_CALLS=0 used to become 1 (the breaker then opened on one 500).
    let err = CircuitBreaker::from_env_source(
        &Env::from_pairs([("TELLTALE_BREAKER_MINIMUM_CALLS", "0")]),
        "t",
    )
    .unwrap_err();
    assert_eq!(
        err.config().unwrap().variable(),
        "TELLTALE_BREAKER_MINIMUM_CALLS"
    );
    // In code too: refused, not raised to 1.
    assert!(
        CircuitBreaker::builder("t")
            .minimum_calls(0)
            .build()
            .is_err()
    );
    // WINDOW_BUCKETS used to be ignored with a count window (and at 0).
    for pairs in [
        vec![("TELLTALE_BREAKER_WINDOW_BUCKETS", "0")],
        vec![("TELLTALE_BREAKER_WINDOW_BUCKETS", "10")],
        vec![
            ("TELLTALE_BREAKER_WINDOW", "100"),
            ("TELLTALE_BREAKER_WINDOW_BUCKETS", "10"),
        ],
    ] {
        let err =
            CircuitBreaker::from_env_source(&Env::from_pairs(pairs.clone()), "t").unwrap_err();
        assert_eq!(
            err.config().unwrap().variable(),
            "TELLTALE_BREAKER_WINDOW_BUCKETS",
            "{pairs:?}: {err}"
        );
    }
    // A rate of 0 used to name the builder setting ("invalid failure_rate_threshold").
    let err = CircuitBreaker::from_env_source(
        &Env::from_pairs([("TELLTALE_BREAKER_FAILURE_RATE", "0")]),
        "t",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("TELLTALE_BREAKER_FAILURE_RATE"),
        "{err}"
    );
    assert!(!err.to_string().contains("failure_rate_threshold"), "{err}");
    // A prefixed family names its own variables.
    let err = CircuitBreaker::builder("t")
        .env_with_prefix(
            &Env::from_pairs([("DB_BREAKER_MINIMUM_CALLS", "0")]),
            "DB_BREAKER_",
        )
        .unwrap_err();
    assert_eq!(err.config().unwrap().variable(), "DB_BREAKER_MINIMUM_CALLS");
}

#[test]
fn the_bounds_themselves_are_accepted() {
    let env = Env::from_pairs([
        ("TELLTALE_BREAKER_WINDOW", "1h"),
        ("TELLTALE_BREAKER_WINDOW_BUCKETS", "120"),
        ("TELLTALE_BREAKER_FAILURE_RATE", "100%"),
        ("TELLTALE_BREAKER_SLOW_CALL_RATE", "0.01"),
        ("TELLTALE_BREAKER_SLOW_CALL_DURATION", "1ms"),
        ("TELLTALE_BREAKER_MINIMUM_CALLS", "10000"),
        ("TELLTALE_BREAKER_OPEN_WAIT", "1h"),
        ("TELLTALE_BREAKER_OPEN_WAIT_MULTIPLIER", "100"),
        ("TELLTALE_BREAKER_OPEN_WAIT_MAX", "24h"),
        ("TELLTALE_BREAKER_OPEN_WAIT_JITTER", "0"),
        ("TELLTALE_BREAKER_HALF_OPEN_PROBES", "4095"),
        ("TELLTALE_BREAKER_PROBE_DEADLINE", "1h"),
        ("TELLTALE_BREAKER_COUNT_REJECTIONS", "false"),
    ]);
    assert!(CircuitBreaker::from_env_source(&env, "t").is_ok());
    let env = Env::from_pairs([("TELLTALE_BREAKER_WINDOW", "10000")]);
    assert!(CircuitBreaker::from_env_source(&env, "t").is_ok());
    let env = Env::from_pairs([
        ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "1000000"),
        ("TELLTALE_BULKHEAD_MAX_WAIT", "1m"),
    ]);
    assert!(Bulkhead::from_env_source(&env, "t").is_ok());
    let env = Env::from_pairs([
        ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "1"),
        ("TELLTALE_BULKHEAD_MAX_WAIT", "0"),
    ]);
    assert!(Bulkhead::from_env_source(&env, "t").is_ok());
}
