//! Issue 14, item 5: every chaos variable has a bounded, validated range, and
//! a rejected value is an error naming the variable, quoting the value and
//! stating what is allowed, whether chaos is switched on or not.

use telltale_chaos::{ChaosError, Injector, Status};
use telltale_core::config::Env;

/// (variable, bad value, a piece of the "allowed" text).
const CASES: &[(&str, &str, &str)] = &[
    (
        "TELLTALE_CHAOS_SEED",
        "x1",
        "from 0 to 18446744073709551615",
    ),
    (
        "TELLTALE_CHAOS_SEED",
        "-1",
        "from 0 to 18446744073709551615",
    ),
    (
        "TELLTALE_CHAOS_SEED",
        "18446744073709551616",
        "from 0 to 18446744073709551615",
    ),
    ("TELLTALE_CHAOS_MAX_ACTIVE", "0", "from 1 to 100000"),
    ("TELLTALE_CHAOS_MAX_ACTIVE", "-1", "from 1 to 100000"),
    ("TELLTALE_CHAOS_MAX_ACTIVE", "100001", "from 1 to 100000"),
    (
        "TELLTALE_CHAOS_MAX_ACTIVE",
        "99999999999999999999999",
        "from 1 to 100000",
    ),
    ("TELLTALE_CHAOS_MAX_ACTIVE", "ten", "from 1 to 100000"),
    ("TELLTALE_CHAOS_TTL", "10", "from 1s to 24h"),
    ("TELLTALE_CHAOS_TTL", "0", "from 1s to 24h"),
    ("TELLTALE_CHAOS_TTL", "500ms", "from 1s to 24h"),
    ("TELLTALE_CHAOS_TTL", "25h", "from 1s to 24h"),
    ("TELLTALE_CHAOS_TTL", "soon", "from 1s to 24h"),
    ("TELLTALE_CHAOS_RESPONSE_HEADER", "maybe", "true or false"),
    ("TELLTALE_CHAOS_HEADERS", "2", "true or false"),
    (
        "TELLTALE_CHAOS_HEADERS_SECRET",
        "two words",
        "visible ASCII",
    ),
    (
        "TELLTALE_CHAOS_HEADERS_TRUSTED",
        "10.0.0.1,nope",
        "an IP address",
    ),
    ("TELLTALE_CHAOS_HEADERS_TRUSTED", "10.0.0.1,,10.0.0.2", ""),
    ("TELLTALE_CHAOS_ALLOW_ENVS", "dev,st aging", "visible ASCII"),
    ("TELLTALE_ENV", "pro\u{1b}d", "visible ASCII"),
];

fn check(err: &ChaosError, var: &str, value: &str, allowed: &str) {
    let ChaosError::Config(c) = err else {
        panic!("{var}={value:?}: expected a config error, got {err:?}")
    };
    telltale_testkit::assert_config_error(err, c, var, value, allowed);
}

#[test]
fn every_variable_rejects_malformed_and_out_of_range_values_armed_or_not() {
    for &(var, value, allowed) in CASES {
        // Armed (rules set, allowed environment) and off (no rules): the same error.
        let armed = Env::from_pairs([
            ("TELLTALE_CHAOS", "in: abort"),
            ("TELLTALE_ENV", "dev"),
            ("TELLTALE_CHAOS_HEADERS_SECRET", "k"),
            (var, value),
        ]);
        let off = Env::from_pairs([(var, value)]);
        for env in [armed, off] {
            let err = Injector::from_env_source(&env).unwrap_err();
            check(&err, var, value, allowed);
        }
        let err = Injector::builder()
            .env(&Env::from_pairs([(var, value)]))
            .unwrap_err();
        check(&err, var, value, allowed);
    }
}

#[test]
fn lists_and_rules_are_bounded() {
    let many: Vec<String> = (0..65).map(|i| format!("10.0.0.{i}")).collect();
    let many = many.join(",");
    let err = Injector::from_env_source(&Env::from_pairs([(
        "TELLTALE_CHAOS_HEADERS_TRUSTED",
        many.as_str(),
    )]))
    .unwrap_err();
    assert!(err.to_string().contains("at most 64 IP addresses"), "{err}");
    let long = format!("in: {}", "abort + ".repeat(10_000));
    let err = Injector::from_env_source(&Env::from_pairs([("TELLTALE_CHAOS", long.as_str())]))
        .unwrap_err();
    assert!(err.to_string().contains("TELLTALE_CHAOS"), "{err}");
    assert!(err.to_string().contains("at most 65536 bytes"), "{err}");
    let secret = "s".repeat(257);
    let err = Injector::from_env_source(&Env::from_pairs([(
        "TELLTALE_CHAOS_HEADERS_SECRET",
        secret.as_str(),
    )]))
    .unwrap_err();
    assert!(err.to_string().contains("at most 256"), "{err}");
}

#[test]
fn malformed_rules_name_the_variable_and_the_position() {
    let err = Injector::from_env_source(&Env::from_pairs([("TELLTALE_CHAOS", "in: 150% abort")]))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ChaosError::Rules(_)), "{err:?}");
    assert!(text.contains("TELLTALE_CHAOS"), "{text}");
    assert!(text.contains("150%"), "{text}");
}

#[test]
fn the_bounds_themselves_are_accepted() {
    let env = Env::from_pairs([
        ("TELLTALE_CHAOS", "in: abort"),
        ("TELLTALE_ENV", "dev"),
        ("TELLTALE_CHAOS_MAX_ACTIVE", "1"),
        ("TELLTALE_CHAOS_TTL", "24h"),
        ("TELLTALE_CHAOS_SEED", "18446744073709551615"),
    ]);
    assert_eq!(
        Injector::from_env_source(&env).unwrap().status(),
        Status::Armed
    );
    let env = Env::from_pairs([
        ("TELLTALE_CHAOS_MAX_ACTIVE", "100000"),
        ("TELLTALE_CHAOS_TTL", "1s"),
    ]);
    assert_eq!(
        Injector::from_env_source(&env).unwrap().status(),
        Status::Off
    );
}
