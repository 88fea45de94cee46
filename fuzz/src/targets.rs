//! The fuzz targets: one function per input surface, each asserting its
//! properties by panicking.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Once;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use telltale_core::config::{
    Env, ParseError, parse_bool, parse_duration, parse_list, parse_list_with, parse_number,
    parse_percentage, parse_size,
};
use telltale_core::http::percent_encode;
use telltale_correlation::rule::Rule;
use telltale_correlation::{CorrelationId, CorrelationLayer, DefaultRule};
use tower::{Layer, ServiceExt};

use crate::Target;

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "chaos_rules",
        corpus: CHAOS_CORPUS,
        dictionary: CHAOS_DICTIONARY,
        check: chaos_rules,
    },
    Target {
        name: "config",
        corpus: CONFIG_CORPUS,
        dictionary: CONFIG_DICTIONARY,
        check: config,
    },
    Target {
        name: "key_values",
        corpus: KEY_VALUES_CORPUS,
        dictionary: KEY_VALUES_DICTIONARY,
        check: key_values,
    },
    Target {
        name: "telemetry_env",
        corpus: TELEMETRY_ENV_CORPUS,
        dictionary: TELEMETRY_ENV_DICTIONARY,
        check: telemetry_env,
    },
    Target {
        name: "propagation",
        corpus: PROPAGATION_CORPUS,
        dictionary: PROPAGATION_DICTIONARY,
        check: propagation,
    },
    Target {
        name: "correlation",
        corpus: CORRELATION_CORPUS,
        dictionary: CORRELATION_DICTIONARY,
        check: correlation,
    },
];

/// An error position must point into the value or just past its end.
fn assert_position(e: &ParseError, input: &str) {
    let len = input.chars().count();
    assert!(
        (1..=len + 1).contains(&e.position()),
        "position {} outside 1..={} for {input:?}: {e}",
        e.position(),
        len + 1
    );
}

// ---------------------------------------------------------------- chaos rules

const CHAOS_CORPUS: &[&str] = &[
    "in GET /payments/*: 30% delay(200ms..800ms); 5% status(503)",
    "in GET /payments/*: 30% delay(200ms..800ms); 5% status(503) | out fraud-api: 10% grpc(UNAVAILABLE); 3* abort",
    "out  *.internal [x-canary] :0.5 delay( 1s ,jitter=250ms )+slow(2KiB/s)",
    "in GET /payments/*: 2* status(503, retry-after=2s)",
    "any db:5432 [x-tenant=a]: 12.5% timeout",
    "in POST /orders/**: status(500, body=\"boom \\\"x\\\"\\n\") ; reset",
    "out api: grpc(14, message=\"down\") + truncate(64KiB)",
    "in /x: 1% delay(1m30s) + abort",
];

const CHAOS_DICTIONARY: &[&str] = &[
    "in ",
    "out ",
    "any ",
    "GET ",
    "POST ",
    "/",
    "/*",
    "/**",
    "*.",
    ":",
    ";",
    "|",
    "+",
    "%",
    "*",
    "[x-h]",
    "[x-h=v]",
    "delay(",
    "status(",
    "grpc(",
    "abort",
    "reset",
    "timeout",
    "slow(",
    "truncate(",
    ")",
    "..",
    ",",
    "jitter=",
    "body=",
    "retry-after=",
    "message=",
    "\"",
    "\\\"",
    "\\n",
    "ms",
    "s",
    "KiB",
    "/s",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "OK",
    "0.",
    "100%",
];

/// `parse_rules`: no panic; an error points into the value and renders as a
/// line/column report; a parsed set prints to text that parses to the same
/// set (and prints the same again).
fn chaos_rules(input: &str) {
    match telltale_chaos::parse_rules(input) {
        Ok(rules) => {
            let printed = rules.to_string();
            let again = telltale_chaos::parse_rules(&printed)
                .unwrap_or_else(|e| panic!("printed {printed:?} of {input:?} does not parse: {e}"));
            assert_eq!(again, rules, "round trip of {input:?} through {printed:?}");
            assert_eq!(again.to_string(), printed, "printing is not stable");
        }
        Err(e) => {
            assert_position(&e, input);
            let report = telltale_chaos::RuleError::new("TELLTALE_CHAOS", input, e.clone());
            assert!(report.line() >= 1 && report.column() >= 1);
            let text = report.to_string();
            assert!(text.contains("TELLTALE_CHAOS"), "{text}");
        }
    }
}

// -------------------------------------------------------------- env parsers

const CONFIG_CORPUS: &[&str] = &[
    "250ms", "2s", "1.5s", "1m30s", "10µs", "0", "5%", "12.5%", "0.05", "1", "true", "Off", "512",
    "64KiB", "1MB", "2gib", "42", "a, b ,c", "1s,250ms", "",
];

const CONFIG_DICTIONARY: &[&str] = &[
    "ns", "us", "µs", "ms", "s", "m", "h", "d", ".", "%", "B", "KB", "MB", "GB", "KiB", "MiB",
    "GiB", "k", ",", " ", "true", "false", "yes", "no", "on", "off",
];

/// Relative closeness of two durations, for round trips through `f64`.
fn close(a: std::time::Duration, b: std::time::Duration) -> bool {
    let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
    (a - b).abs() <= 1e-9 + a.abs().max(b.abs()) * 1e-12
}

/// Every parser of `telltale_core::config`: no panic, error positions in
/// range, values in their documented range, and a printed value parses back
/// to the same value.
fn config(input: &str) {
    match parse_duration(input) {
        Ok(d) => {
            assert!(d.as_secs_f64() <= 1e12, "{input:?} gave {d:?}");
            let printed = format!("{}.{:09}s", d.as_secs(), d.subsec_nanos());
            let back = parse_duration(&printed).expect("a printed duration parses");
            assert!(
                close(back, d),
                "{input:?}: {d:?} printed {printed} read {back:?}"
            );
        }
        Err(e) => assert_position(&e, input),
    }
    match parse_percentage(input) {
        Ok(p) => {
            assert!((0.0..=1.0).contains(&p), "{input:?} gave {p}");
            assert_eq!(parse_percentage(&format!("{p}")), Ok(p), "{input:?}");
        }
        Err(e) => assert_position(&e, input),
    }
    match parse_bool(input) {
        Ok(b) => assert_eq!(parse_bool(&b.to_string()), Ok(b)),
        Err(e) => assert_position(&e, input),
    }
    match parse_size(input) {
        Ok(n) => assert_eq!(parse_size(&n.to_string()), Ok(n)),
        Err(e) => assert_position(&e, input),
    }
    match parse_number::<u64>(input) {
        Ok(n) => {
            assert!(input.bytes().all(|b| b.is_ascii_digit()), "{input:?}");
            assert_eq!(parse_number::<u64>(&n.to_string()), Ok(n));
        }
        Err(e) => assert_position(&e, input),
    }
    match parse_number::<u16>(input) {
        Ok(n) => assert_eq!(parse_number::<u16>(&n.to_string()), Ok(n)),
        Err(e) => assert_position(&e, input),
    }
    match parse_list(input) {
        Ok(items) => {
            for item in &items {
                assert!(
                    !item.is_empty() && !item.contains(','),
                    "{input:?}: {items:?}"
                );
                assert_eq!(item.trim(), *item, "{input:?}: {items:?}");
            }
            assert_eq!(parse_list(&items.join(",")).unwrap(), items, "{input:?}");
        }
        Err(e) => assert_position(&e, input),
    }
    match parse_list_with(input, parse_duration) {
        Ok(list) => assert_eq!(list.len(), parse_list(input).map(|l| l.len()).unwrap_or(0)),
        Err(e) => assert_position(&e, input),
    }
    // Through `Env`, as every component reads them: the error names the
    // variable and quotes a bounded value.
    let env = Env::from_pairs([("FUZZ_VAR", input)]);
    for result in [
        env.duration("FUZZ_VAR").err(),
        env.percentage("FUZZ_VAR").err(),
        env.boolean("FUZZ_VAR").err(),
        env.size("FUZZ_VAR").err(),
        env.number::<usize>("FUZZ_VAR").err(),
        env.list("FUZZ_VAR").err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(result.variable(), "FUZZ_VAR");
        // At most 120 characters quoted, each escaped to at most 10.
        assert!(result.value().chars().count() <= 10 * 120 + 3, "{result}");
        assert!(result.to_string().contains("FUZZ_VAR"));
    }
}

// ------------------------------------------------------ OTEL key=value lists

const KEY_VALUES_CORPUS: &[&str] = &[
    "service.name=checkout,deployment.environment=prod",
    "team=a%2Cb, k = v ",
    "Authorization=Bearer%20x,x-tenant=7",
    "a=",
    "k=%E2%82%AC",
];

const KEY_VALUES_DICTIONARY: &[&str] = &[
    "=",
    ",",
    "%",
    "%2C",
    "%20",
    "%3D",
    "%E2%82%AC",
    "%zz",
    "%C3",
    " ",
    "service.name",
];

/// `telltale_core::resource::parse_key_values` (`OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_EXPORTER_OTLP_HEADERS`): no panic, error positions in range, and
/// pairs percent-encoded and joined parse back to the same pairs.
fn key_values(input: &str) {
    match telltale_core::resource::parse_key_values(input) {
        Ok(pairs) => {
            assert!(!pairs.is_empty(), "{input:?}");
            let printed = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect::<Vec<_>>()
                .join(",");
            let back = telltale_core::resource::parse_key_values(&printed)
                .unwrap_or_else(|e| panic!("{printed:?} of {input:?} does not parse: {e}"));
            assert_eq!(back, pairs, "round trip of {input:?} through {printed:?}");
        }
        Err(e) => assert_position(&e, input),
    }
}

// ---------------------------------------------------- telemetry's variables

const TELEMETRY_ENV_CORPUS: &[&str] = &[
    "info",
    "info,my_crate=debug,hyper=off",
    "my_crate[request{user=ada}]=trace",
    "http://127.0.0.1:4317",
    "http://collector:4318/",
    "parentbased_traceidratio",
    "0.25",
    "json",
    "4096",
    "checkout",
];

const TELEMETRY_ENV_DICTIONARY: &[&str] = &[
    "http://",
    "https://",
    "[::1]",
    ":",
    "65535",
    "65536",
    "99999",
    "/v1/traces",
    "=",
    ",",
    "[",
    "]",
    "{",
    "}",
    "info",
    "warn",
    "trace",
    "::",
    "-",
    "%",
    "always_on",
    "traceidratio",
];

/// The variables whose errors must name themselves (a variable that needs
/// another one may name that one instead).
const SELF_NAMING: &[&str] = &[
    "RUST_LOG",
    "TELLTALE_TRACES_FILTER",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "TELLTALE_LOG_FORMAT",
    "TELLTALE_LOG_MAX_FIELD_LEN",
    "TELLTALE_LOG_ANSI",
];

/// Every variable of the telemetry pipeline set to the input: no panic, and
/// an error names a pipeline variable (the one set, for the variables that
/// stand alone); an accepted filter is one `EnvFilter` accepts.
fn telemetry_env(input: &str) {
    use telltale_telemetry::pipeline::env as vars;
    for var in vars::VARS {
        let env = Env::from_pairs([(*var, input)]);
        match telltale_telemetry::Telemetry::builder().env(&env) {
            Ok(_) => {
                if *var == vars::RUST_LOG || *var == vars::TELLTALE_TRACES_FILTER {
                    assert!(
                        tracing_filter_accepts(input.trim()),
                        "{var}={input:?} accepted but EnvFilter rejects it"
                    );
                }
            }
            Err(telltale_telemetry::InitError::Config(e)) => {
                if SELF_NAMING.contains(var) {
                    assert_eq!(e.variable(), *var, "{var}={input:?}: {e}");
                } else {
                    assert!(vars::VARS.contains(&e.variable()), "{var}={input:?}: {e}");
                }
            }
            Err(e) => panic!("{var}={input:?}: not a configuration error: {e}"),
        }
    }
}

fn tracing_filter_accepts(s: &str) -> bool {
    s.is_empty()
        || tracing_subscriber::EnvFilter::builder()
            .with_regex(false)
            .parse(s)
            .is_ok()
}

// ---------------------------------------------------- W3C trace context

const PROPAGATION_CORPUS: &[&str] = &[
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nrojo=00f067aa0ba902b7,congo=t61rcWkgMzE\nuserId=alice,serverNode=DF%2028,isProduction=false",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\n\nk=v;prop=1",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra\ntenant@vendor=x",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
];

const PROPAGATION_DICTIONARY: &[&str] = &[
    "-",
    "00",
    "01",
    "ff",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "00f067aa0ba902b7",
    "\n",
    ",",
    "=",
    ";",
    "@",
    "%20",
    "%2C",
    "%",
    " ",
    "0000000000000000",
    "A",
    "g",
];

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A W3C tracestate list member key (Trace Context Level 2:
/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`, `@` one of the keychars).
fn is_tracestate_key(k: &str) -> bool {
    let mut b = k.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && k.len() <= 256
        && b.all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// A W3C tracestate list member value.
fn is_tracestate_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && !v.ends_with(' ')
}

/// `traceparent`, `tracestate` and `baggage` (one line each) extracted by the
/// propagator `install_propagators` installs: no panic; a context is
/// extracted only from a `traceparent` valid by the W3C rules, with its IDs
/// and sampled flag; it injects back to the canonical `traceparent` and a
/// valid `tracestate`, which extract to the same context; baggage survives
/// an inject/extract round trip.
fn propagation(input: &str) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(telltale_telemetry::install_propagators);

    let mut lines = input.split('\n');
    let mut headers = HeaderMap::new();
    for name in ["traceparent", "tracestate", "baggage"] {
        if let Some(value) = lines.next().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(&headers)));
    let sc = cx.span().span_context().clone();
    let mut out = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut out));

    if sc.is_valid() {
        let tp = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .expect("a context came from a traceparent")
            .trim_matches([' ', '\t']);
        let parts: Vec<&str> = tp.split('-').collect();
        assert!(parts.len() >= 4, "{tp:?}");
        let version = parts[0];
        assert!(
            is_lower_hex(version, 2) && version != "ff",
            "version of {tp:?}"
        );
        if version == "00" {
            assert!(
                tp.len() == 55 && parts.len() == 4,
                "version 00 is 55 characters: {tp:?}"
            );
        }
        let (trace, span, flags) = (parts[1], parts[2], parts[3]);
        assert!(
            is_lower_hex(trace, 32) && trace != "0".repeat(32),
            "trace-id of {tp:?}"
        );
        assert!(
            is_lower_hex(span, 16) && span != "0".repeat(16),
            "parent-id of {tp:?}"
        );
        assert!(is_lower_hex(flags, 2), "trace-flags of {tp:?}");
        assert_eq!(sc.trace_id().to_string(), trace, "{tp:?}");
        assert_eq!(sc.span_id().to_string(), span, "{tp:?}");
        let flags = u8::from_str_radix(flags, 16).unwrap_or(0);
        assert_eq!(sc.is_sampled(), flags & 1 == 1, "{tp:?}");
        assert!(sc.is_remote());

        // Trace Context Level 2 knows `sampled` (01) and `random` (02);
        // unknown flags are sent as zero.
        let canonical = format!("00-{trace}-{span}-{:02x}", flags & 0x03);
        assert_eq!(out.get("traceparent"), Some(&canonical), "inject of {tp:?}");
        if let Some(ts) = out.get("tracestate") {
            let members: Vec<&str> = ts.split(',').collect();
            assert!(
                members.len() <= 32,
                "tracestate of {} members",
                members.len()
            );
            for m in members {
                let (k, v) = m.split_once('=').unwrap_or((m, ""));
                assert!(
                    is_tracestate_key(k) && is_tracestate_value(v),
                    "member {m:?} of {ts:?}"
                );
            }
        }
        let mut again = HeaderMap::new();
        for (k, v) in &out {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
                again.insert(k, v);
            }
        }
        let cx2 = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(&again)));
        let sc2 = cx2.span().span_context().clone();
        assert_eq!(sc2.trace_id(), sc.trace_id());
        assert_eq!(sc2.span_id(), sc.span_id());
        assert_eq!(sc2.is_sampled(), sc.is_sampled());
        assert_eq!(sc2.trace_state().header(), sc.trace_state().header());
    } else {
        assert!(
            !out.contains_key("traceparent"),
            "no context, yet {:?} injected",
            out.get("traceparent")
        );
    }

    let baggage: Vec<(String, String)> = {
        let mut b: Vec<_> = cx
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.to_string(), v.to_string()))
            .collect();
        b.sort();
        b
    };
    // Baggage: what is written reads back as entries that were received (no
    // entry appears that nobody set), within the W3C limit of 8192 bytes;
    // all of them when the received header was short enough that encoding
    // (at most 3 bytes per byte) cannot pass the limit.
    let received = headers.get("baggage").map_or(0, |v| v.len());
    let back: Vec<(String, String)> = match out.get("baggage") {
        Some(header) => {
            assert!(
                header.len() <= 8192,
                "baggage header of {} bytes",
                header.len()
            );
            let mut again = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(header) {
                again.insert("baggage", v);
            }
            let cx2 =
                opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(&again)));
            let mut back: Vec<_> = cx2
                .baggage()
                .iter()
                .map(|(k, (v, _))| (k.to_string(), v.to_string()))
                .collect();
            back.sort();
            for entry in &back {
                assert!(
                    baggage.contains(entry),
                    "{entry:?} appeared through {header:?}"
                );
            }
            back
        }
        None => Vec::new(),
    };
    if received * 3 <= 8192 {
        assert_eq!(back, baggage, "baggage round trip of {received} bytes");
    }
}

// ------------------------------------------------------ correlation header

const CORRELATION_CORPUS: &[&str] = &[
    "abc-123",
    "0190f5b2-7c1e-7b8a-9a3e-1f2e3d4c5b6a",
    "req:1.2_3\nfrom-alias",
    "\nonly-alias",
    "bad value\nalias-ok",
    "a]b",
];

const CORRELATION_DICTIONARY: &[&str] = &[
    "\n", " ", "-", ":", ".", "_", "\t", "\u{7f}", "é", "\"", "<script>", "%0d%0a",
];

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    static LAYER: CorrelationLayer = CorrelationLayer::builder()
        .alias("x-request-id")
        .build()
        .expect("the default correlation layer");
}

/// The correlation header: `CorrelationId::from_header_value` keeps exactly
/// visible ASCII up to `MAX_LEN`, and the server layer, given the input's
/// first line as `x-correlation-id` and its second as `x-request-id`, echoes
/// the first present header's value only when the default rule accepts it,
/// and otherwise a fresh UUIDv7; the inner service sees the same ID as the
/// current one, in the extensions and in the primary header.
fn correlation(input: &str) {
    let bytes = input.as_bytes();
    if let Ok(value) = HeaderValue::from_bytes(bytes) {
        let visible = !bytes.is_empty()
            && bytes.len() <= telltale_correlation::MAX_LEN
            && bytes.iter().all(|b| (0x21..=0x7e).contains(b));
        match CorrelationId::from_header_value(value) {
            Ok(id) => {
                assert!(visible, "{input:?} accepted");
                assert_eq!(id.as_str().as_bytes(), bytes);
                assert_eq!(id.to_header_value().as_bytes(), bytes);
            }
            Err(_) => assert!(!visible, "{input:?} rejected"),
        }
    }

    let mut lines = input.splitn(2, '\n');
    let mut req = Request::new(Full::new(Bytes::new()));
    let mut first_present = None;
    for name in ["x-correlation-id", "x-request-id"] {
        if let Some(value) = lines.next().and_then(|v| HeaderValue::from_str(v).ok()) {
            first_present.get_or_insert_with(|| value.clone());
            req.headers_mut().insert(name, value);
        }
    }
    let inner = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let current = telltale_correlation::current().map(|id| id.as_str().to_owned());
        let ext = req
            .extensions()
            .get::<CorrelationId>()
            .map(|id| id.as_str().to_owned());
        let header = req
            .headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = format!("{current:?}|{ext:?}|{header:?}");
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    });
    let svc = LAYER.with(|layer| layer.layer(inner));
    let (echoed, seen) = RUNTIME.with(|rt| {
        rt.block_on(async {
            let res = svc.oneshot(req).await.expect("infallible");
            let echoed = res.headers().get("x-correlation-id").cloned();
            let body = res.into_body().collect().await.map(|b| b.to_bytes());
            (echoed, body.ok())
        })
    });
    let echoed = echoed.expect("the response carries an ID");
    let echoed = echoed.to_str().expect("an echoed ID is visible ASCII");
    let seen = seen.expect("the body ends");
    let id = format!("{:?}", Some(echoed));
    assert_eq!(seen, format!("{id}|{id}|{id}"), "{input:?}");
    match first_present {
        Some(value) if DefaultRule::default().check(value.as_bytes()).is_ok() => {
            assert_eq!(echoed.as_bytes(), value.as_bytes(), "{input:?}");
        }
        other => {
            let uuid = uuid::Uuid::parse_str(echoed).expect("a generated ID is a UUID");
            assert_eq!(uuid.get_version_num(), 7, "{echoed}");
            if let Some(value) = other {
                assert_ne!(echoed.as_bytes(), value.as_bytes(), "{input:?} echoed");
            }
        }
    }
}
