//! Property tests of the rule grammar: no input panics, positions stay in
//! range, printing then re-parsing gives the same rules.

use std::time::Duration;

use http::{HeaderName, Method, StatusCode};
use proptest::prelude::*;
use telltale_chaos::parse::{RuleError, parse_rules};
use telltale_chaos::rules::{
    Delay, Fault, Group, HeaderMatch, Matcher, Rule, RuleSet, side_keyword,
};
use telltale_chaos::{ChaosError, Injector};
use telltale_core::GrpcCode;
use telltale_core::Side;
use telltale_core::config::Env;

const TOKENS: &[&str] = &[
    "in",
    "out",
    "any",
    " ",
    "  ",
    "\n",
    ":",
    ";",
    "|",
    "+",
    "GET",
    "POST",
    "/payments/*",
    "/a/**",
    "/{id}",
    "/**/x",
    "fraud-api",
    "*.internal",
    "db:5432",
    "[x-debug]",
    "[x=1]",
    "[",
    "]",
    "30%",
    "0.5",
    "150%",
    "3*",
    "*",
    "delay(",
    "200ms",
    "..",
    "800ms",
    ", jitter=",
    "status(",
    "503",
    "retry-after=",
    "body=",
    "\"hi\"",
    "\"",
    "\\",
    "grpc(",
    "UNAVAILABLE",
    "OK",
    "message=",
    "abort",
    "reset",
    "timeout",
    "slow(",
    "1KiB",
    "/s",
    "truncate(",
    "10",
    ")",
    "(",
    ",",
    "=",
    "é",
    "µs",
    "1.5s",
    "x",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..30).prop_map(|v| v.concat())
}

fn ms() -> impl Strategy<Value = Duration> {
    (0u64..200_000).prop_map(Duration::from_millis)
}

fn text() -> impl Strategy<Value = String> {
    "[a-z \"\\\\é\n]{0,8}"
}

fn fault(terminal: bool) -> BoxedStrategy<Fault> {
    if terminal {
        prop_oneof![
            (
                100u16..=999,
                prop::option::of(text()),
                prop::option::of(ms())
            )
                .prop_map(|(code, body, retry_after)| Fault::Status {
                    status: StatusCode::from_u16(code).unwrap(),
                    body,
                    retry_after,
                }),
            (1i32..=16, prop::option::of(text())).prop_map(|(code, message)| Fault::Grpc {
                code: GrpcCode::from_i32(code).unwrap(),
                message,
            }),
            Just(Fault::Abort),
            Just(Fault::Reset),
            Just(Fault::Timeout),
        ]
        .boxed()
    } else {
        prop_oneof![
            ms().prop_map(|d| Fault::Delay(Delay::Fixed(d))),
            (ms(), ms()).prop_map(|(a, b)| Fault::Delay(Delay::Range(a.min(b), a.max(b)))),
            (ms(), ms()).prop_map(|(a, b)| Fault::Delay(Delay::Jitter(a, b))),
            (1u64..10_000_000).prop_map(|bytes_per_second| Fault::Slow { bytes_per_second }),
            (0u64..10_000_000).prop_map(|after| Fault::Truncate { after }),
        ]
        .boxed()
    }
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::option::of(0u32..=10_000),
        prop::option::of(0u64..1000),
        prop::collection::vec(fault(false), 0..3),
        prop::option::of(fault(true)),
    )
        .prop_filter_map("a chain has a fault", |(p, limit, mut faults, terminal)| {
            faults.extend(terminal);
            (!faults.is_empty()).then(|| Rule {
                probability: p.map(|p| f64::from(p) / 10_000.0),
                limit,
                faults,
            })
        })
}

fn matcher() -> impl Strategy<Value = Matcher> {
    (
        prop::sample::select(vec![Some(Side::Server), Some(Side::Client), None]),
        prop::option::of(prop::sample::select(vec!["GET", "POST", "DELETE", "PATCH"])),
        prop::option::of(prop::sample::select(vec![
            "/payments/*",
            "/a/{id}/b",
            "/x/**",
            "/v*/items",
            "/grpc.health.v1.Health/Check",
            "/",
        ])),
        prop::option::of(prop::sample::select(vec![
            "fraud-api",
            "*.internal",
            "db:5432",
        ])),
        prop::collection::vec(
            (
                prop::sample::select(vec!["x-debug", "x-tenant"]),
                prop::option::of("[a-z0-9=.]{1,5}"),
            ),
            0..3,
        ),
    )
        .prop_map(|(side, method, path, host, headers)| {
            let text = format!(
                "{}{}{}{}{}: abort",
                side_keyword(side),
                method.map(|m| format!(" {m}")).unwrap_or_default(),
                path.map(|p| format!(" {p}")).unwrap_or_default(),
                host.map(|h| format!(" {h}")).unwrap_or_default(),
                headers
                    .iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!(" [{n}={v}]"),
                        None => format!(" [{n}]"),
                    })
                    .collect::<String>()
            );
            let m = parse_rules(&text).unwrap().groups.remove(0).matcher;
            assert_eq!(m.side, side);
            assert_eq!(m.method, method.map(|m| m.parse::<Method>().unwrap()));
            assert_eq!(
                m.headers,
                headers
                    .into_iter()
                    .map(|(n, value)| HeaderMatch {
                        name: HeaderName::from_static(n),
                        value
                    })
                    .collect::<Vec<_>>()
            );
            m
        })
}

fn rule_set() -> impl Strategy<Value = RuleSet> {
    prop::collection::vec(
        (matcher(), prop::collection::vec(rule(), 1..4))
            .prop_map(|(matcher, rules)| Group { matcher, rules }),
        1..4,
    )
    .prop_map(|groups| RuleSet { groups })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
        check_no_panic(&s)?;
    }

    #[test]
    fn token_soup_never_panics_and_round_trips(s in soup()) {
        check_no_panic(&s)?;
        if let Ok(rules) = parse_rules(&s) {
            let printed = rules.to_string();
            prop_assert_eq!(parse_rules(&printed).unwrap(), rules, "printed {:?}", printed);
        }
    }

    #[test]
    fn printing_then_parsing_gives_the_same_rules(rules in rule_set()) {
        let printed = rules.to_string();
        let parsed = parse_rules(&printed);
        prop_assert!(parsed.is_ok(), "{printed:?}: {parsed:?}");
        prop_assert_eq!(parsed.unwrap(), rules, "printed {:?}", printed);
    }
}

fn check_no_panic(s: &str) -> Result<(), TestCaseError> {
    if let Err(e) = parse_rules(s) {
        let len = s.chars().count();
        prop_assert!(
            e.position() >= 1 && e.position() <= len + 1,
            "{e:?} for {s:?}"
        );
        let shown = RuleError::new("TELLTALE_CHAOS", s, e).to_string();
        prop_assert!(shown.contains('^'));
    }
    Ok(())
}

#[test]
fn malformed_env_value_fails_at_start_up_naming_variable_and_position() {
    let env = Env::from_pairs([
        (
            "TELLTALE_CHAOS",
            "in GET /x: 10% status(503) | out api: 5% grpc(NOPE)",
        ),
        ("TELLTALE_ENV", "dev"),
    ]);
    let err = Injector::from_env_source(&env).unwrap_err();
    let ChaosError::Rules(rule) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(rule.variable(), "TELLTALE_CHAOS");
    assert_eq!(rule.position(), 47);
    assert!(rule.expected().starts_with("a gRPC error code"));
    assert!(
        err.to_string()
            .contains("invalid TELLTALE_CHAOS at line 1, column 47"),
        "{err}"
    );

    for (var, value) in [
        ("TELLTALE_CHAOS_SEED", "x1"),
        ("TELLTALE_CHAOS_MAX_ACTIVE", "-1"),
        ("TELLTALE_CHAOS_TTL", "10"),
        ("TELLTALE_CHAOS_HEADERS_TRUSTED", "10.0.0.1,nope"),
    ] {
        let env = Env::from_pairs([
            ("TELLTALE_CHAOS", "in: abort"),
            ("TELLTALE_ENV", "dev"),
            ("TELLTALE_CHAOS_HEADERS", "on"),
            (var, value),
        ]);
        match Injector::from_env_source(&env).unwrap_err() {
            ChaosError::Config(c) => assert_eq!(c.variable(), var),
            other => panic!("{var}: {other:?}"),
        }
    }
    let env = Env::from_pairs([
        ("TELLTALE_CHAOS", "in: abort"),
        ("TELLTALE_ENV", "dev"),
        ("TELLTALE_CHAOS_HEADERS", "on"),
    ]);
    assert!(matches!(
        Injector::from_env_source(&env).unwrap_err(),
        ChaosError::UntrustedHeaders
    ));
}
