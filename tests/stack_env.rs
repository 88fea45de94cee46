//! Issue 14, item 5, through the presets: the presets' own variables, the
//! public/skip routes, and the breaker, bulkhead, chaos and correlation
//! variables they read. Every rejected value is an error naming the
//! variable the user set, quoting the value and stating what is allowed.

use telltale::core::config::{ConfigError, Env};
use telltale::stack::{ClientStack, ServerStack, StackError};

/// (variable, bad value, a piece of the "allowed" text).
const SERVER: &[(&str, &str, &str)] = &[
    ("TELLTALE_BULKHEAD_STATUS", "500", "503 or 429"),
    ("TELLTALE_BULKHEAD_STATUS", "busy", "503 or 429"),
    ("TELLTALE_BULKHEAD_STATUS", "-1", "503 or 429"),
    (
        "TELLTALE_BODY_IDLE_TIMEOUT",
        "0",
        "`off` or a duration from 1ms to 1h",
    ),
    (
        "TELLTALE_BODY_IDLE_TIMEOUT",
        "2h",
        "`off` or a duration from 1ms to 1h",
    ),
    (
        "TELLTALE_BODY_IDLE_TIMEOUT",
        "never",
        "`off` or a duration from 1ms to 1h",
    ),
    (
        "TELLTALE_HTTP_SERVER_PUBLIC_ROUTES",
        "health",
        "starting with `/`",
    ),
    (
        "TELLTALE_HTTP_SERVER_PUBLIC_ROUTES",
        "/a,users/{id}",
        "starting with `/`",
    ),
    (
        "TELLTALE_HTTP_SERVER_PUBLIC_ROUTES",
        "/a b",
        "visible ASCII",
    ),
    (
        "TELLTALE_HTTP_SERVER_SKIP_TRACING",
        "metrics",
        "starting with `/`",
    ),
    (
        "TELLTALE_HTTP_SERVER_SKIP_TRACING",
        "*",
        "starting with `/`",
    ),
    ("TELLTALE_BREAKER_MINIMUM_CALLS", "0", "from 1 to 10000"),
    ("TELLTALE_BREAKER_WINDOW_BUCKETS", "0", "from 1 to 120"),
    ("TELLTALE_BREAKER_FAILURE_RATE", "0", "above 0"),
    ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "0", "from 1 to 1000000"),
    ("TELLTALE_CHAOS_MAX_ACTIVE", "0", "from 1 to 100000"),
    ("TELLTALE_CHAOS_TTL", "0", "from 1s to 24h"),
    (
        "TELLTALE_CORRELATION_MAX_LEN",
        "0",
        "a length from 1 to 1024",
    ),
];

const CLIENT: &[(&str, &str, &str)] = &[
    ("TELLTALE_CLIENT_TIMEOUT", "0", "from 1ms to 1h"),
    ("TELLTALE_CLIENT_TIMEOUT", "2h", "from 1ms to 1h"),
    ("TELLTALE_CLIENT_TIMEOUT", "soon", "from 1ms to 1h"),
    ("TELLTALE_BREAKER_HALF_OPEN_PROBES", "0", "from 1 to 4095"),
    ("TELLTALE_BULKHEAD_MAX_WAIT", "1h", "from 0 to 1m"),
    ("TELLTALE_CHAOS_SEED", "x", "a whole number"),
    (
        "TELLTALE_CORRELATION_CLIENT_GENERATE",
        "perhaps",
        "true or false",
    ),
];

/// The configuration error a preset's error carries, whichever component
/// read the variable.
fn config_of(err: &StackError) -> Option<&ConfigError> {
    use telltale::telemetry::layer::BuildError as TelemetryError;
    use telltale::telemetry::metrics::RedConfigError;
    match err {
        StackError::Config(c)
        | StackError::Telemetry(TelemetryError::Config(c))
        | StackError::Telemetry(TelemetryError::Metrics(RedConfigError::Config(c)))
        | StackError::Correlation(telltale::correlation::BuildError::Config(c))
        | StackError::Chaos(telltale::chaos::ChaosError::Config(c)) => Some(c),
        StackError::Resilience(e) => e.config(),
        _ => None,
    }
}

fn check(err: StackError, var: &str, value: &str, allowed: &str) {
    let config =
        config_of(&err).unwrap_or_else(|| panic!("{var}={value}: not a config error: {err}"));
    telltale_testkit::assert_config_error(&err, config, var, value, allowed);
}

#[test]
fn server_preset_rejects_every_bad_value_naming_it() {
    for &(var, value, allowed) in SERVER {
        let err = ServerStack::from_env_source(&Env::from_pairs([(var, value)])).unwrap_err();
        check(err, var, value, allowed);
    }
}

#[test]
fn client_preset_rejects_every_bad_value_naming_it() {
    for &(var, value, allowed) in CLIENT {
        let err =
            ClientStack::from_env_source(&Env::from_pairs([(var, value)]), "dep").unwrap_err();
        check(err, var, value, allowed);
    }
}

#[test]
fn good_values_are_accepted() {
    let env = Env::from_pairs([
        ("TELLTALE_BULKHEAD_STATUS", "429"),
        ("TELLTALE_BULKHEAD_MAX_CONCURRENT", "32"),
        ("TELLTALE_HTTP_SERVER_PUBLIC_ROUTES", "/login,/users/{id}"),
        (
            "TELLTALE_HTTP_SERVER_SKIP_TRACING",
            "/metrics, /grpc.health.v1.Health/Check",
        ),
        ("TELLTALE_BREAKER_MINIMUM_CALLS", "1"),
        ("TELLTALE_BODY_IDLE_TIMEOUT", "off"),
    ]);
    let stack = ServerStack::from_env_source(&env).unwrap();
    assert_eq!(stack.bulkhead_ref().unwrap().max_concurrent(), 32);
    let env = Env::from_pairs([("TELLTALE_CLIENT_TIMEOUT", "1h")]);
    assert_eq!(
        ClientStack::from_env_source(&env, "dep")
            .unwrap()
            .timeout_value(),
        std::time::Duration::from_secs(3600)
    );
}
