//! Issue 14, item 2: attribute limits, as the OpenTelemetry SDK environment
//! specification defines them (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`,
//! `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_*_COUNT_LIMIT`), seen in
//! the flight recorder and by a real OTLP/HTTP receiver; the cap on
//! request-derived attributes of the server layer, over real HTTP; and the
//! validation of every variable involved.

mod support;

use axum::Router;
use axum::routing::get as route_get;
use opentelemetry::{Array, StringValue, Value};
use support::otel::{client, get, http_receiver, serve};
use telltale_core::config::Env;
use telltale_telemetry::layer::{DEFAULT_MAX_ATTRIBUTE_LEN, ServerTelemetryLayer};
use telltale_telemetry::{RecordedSpan, Telemetry};
use tracing_opentelemetry::OpenTelemetrySpanExt;

fn string(span: &RecordedSpan, key: &str) -> String {
    span.attribute(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", span.attributes()))
        .as_str()
        .into_owned()
}

/// One span with six attributes, a string array, and three events.
fn emit() {
    let span = tracing::info_span!(
        "limited",
        a = "héllo wörld",
        b = "ok",
        c = 7,
        d = "0123456789",
        e = "e",
        f = "f",
    );
    span.in_scope(|| {
        tracing::info!(detail = "0123456789", "first");
        tracing::info!("second");
        tracing::info!("third");
    });
}

#[test]
fn value_length_and_count_limits_in_the_flight_recorder() {
    telltale_testkit::init();
    let env = Env::from_pairs([
        ("TELLTALE_LOG_FORMAT", "none"),
        // The span-specific limit wins over the general one.
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "4"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "2"),
    ]);
    let telemetry = Telemetry::from_env_source(&env).unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    telltale_testkit::with_default(telemetry.dispatch(), emit);
    let span = &recorder.recent(1)[0];
    assert_eq!(span.name(), "limited");
    // Strings cut to 5 characters (not bytes), on character boundaries;
    // numbers untouched.
    assert_eq!(string(span, "a"), "héllo");
    assert_eq!(string(span, "b"), "ok");
    assert_eq!(span.attribute("c"), Some(&Value::I64(7)));
    assert_eq!(string(span, "d"), "01234");
    // At most 4 attributes: the later ones are dropped and counted.
    assert_eq!(span.attributes().len(), 4, "{:?}", span.attributes());
    assert!(span.attribute("e").is_none() && span.attribute("f").is_none());
    assert_eq!(span.data().dropped_attributes_count, 2);
    // At most 2 events; event attributes are cut too.
    let events = &span.data().events;
    assert_eq!(events.events.len(), 2);
    assert_eq!(events.dropped_count, 1);
    let detail = events.events[0]
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "detail")
        .unwrap();
    assert_eq!(detail.value.as_str(), "01234");
}

#[test]
fn string_arrays_are_cut_item_by_item_and_no_limit_is_the_default() {
    telltale_testkit::init();
    let env = Env::from_pairs([
        ("TELLTALE_LOG_FORMAT", "none"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3"),
    ]);
    let telemetry = Telemetry::from_env_source(&env).unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    telltale_testkit::with_default(telemetry.dispatch(), || {
        let span = tracing::info_span!("arrays");
        span.set_attribute(
            "list",
            Value::Array(Array::String(vec![
                StringValue::from("abcdef"),
                StringValue::from("xy"),
                StringValue::from("日本語テキスト"),
            ])),
        );
        span.set_attribute("flags", Value::Array(Array::Bool(vec![true; 5])));
        drop(span);
    });
    let span = &recorder.recent(1)[0];
    assert_eq!(
        span.attribute("list"),
        Some(&Value::Array(Array::String(vec![
            "abc".into(),
            "xy".into(),
            "日本語".into()
        ])))
    );
    assert_eq!(
        span.attribute("flags"),
        Some(&Value::Array(Array::Bool(vec![true; 5])))
    );

    // Unset: the specification's default, no limit (and 128 attributes).
    let telemetry =
        Telemetry::from_env_source(&Env::from_pairs([("TELLTALE_LOG_FORMAT", "none")])).unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    let long = "x".repeat(100_000);
    telltale_testkit::with_default(telemetry.dispatch(), || {
        let span = tracing::info_span!("long", value = long.as_str());
        drop(span);
    });
    assert_eq!(string(&recorder.recent(1)[0], "value").len(), 100_000);
}

#[tokio::test]
async fn a_real_otlp_receiver_gets_the_limited_span() {
    telltale_testkit::init();
    let (sink, endpoint) = http_receiver().await;
    let env = Env::from_pairs([
        ("TELLTALE_LOG_FORMAT", "none"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3"),
        ("TELLTALE_EXPORT_DELAY", "10ms"),
    ]);
    let telemetry = Telemetry::from_env_source(&env).unwrap();
    telltale_testkit::with_default(telemetry.dispatch(), || {
        let span = tracing::info_span!("exported", a = "abcdefgh", b = "ü".repeat(9), c = 1, d = 2);
        span.set_attribute("late", "dropped");
        drop(span);
    });
    let spans = sink
        .wait_for(|spans| spans.iter().any(|s| s.name == "exported"))
        .await;
    let span = spans.iter().find(|s| s.name == "exported").unwrap();
    assert_eq!(span.attributes.get("a").map(String::as_str), Some("abcd"));
    assert_eq!(span.attributes.get("b").map(String::as_str), Some("üüüü"));
    assert_eq!(span.attributes.get("c").map(String::as_str), Some("1"));
    assert_eq!(span.attributes.len(), 3, "{:?}", span.attributes);
    drop(telemetry);
}

#[tokio::test]
async fn request_attributes_are_capped_on_a_real_server() {
    telltale_testkit::init();
    let telemetry =
        Telemetry::from_env_source(&Env::from_pairs([("TELLTALE_LOG_FORMAT", "none")])).unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    let dispatch = telemetry.dispatch().clone();
    let layer = ServerTelemetryLayer::builder()
        .capture_request_headers(["x-note"])
        .build()
        .unwrap();
    let app = Router::new()
        .fallback(route_get(|| async { "ok" }))
        .layer(layer);
    let addr = serve(app, dispatch).await;
    let client = client();
    let path = format!("/{}", "p".repeat(10_000));
    let query = format!("q={}", "é".repeat(5_000));
    let agent = "a".repeat(20_000);
    let note = "n".repeat(3_000);
    let (status, _) = get(
        &client,
        &format!("http://{addr}{path}?{query}"),
        &[("user-agent", &agent), ("x-note", &note)],
    )
    .await;
    assert_eq!(status, 200);
    let span = recorder
        .recent(10)
        .into_iter()
        .find(|s| s.attribute("url.path").is_some())
        .expect("the server span");
    let max = DEFAULT_MAX_ATTRIBUTE_LEN;
    assert_eq!(string(&span, "url.path"), path[..max]);
    // Characters, not bytes: 2048 two-byte characters survive the cut.
    let kept_query = string(&span, "url.query");
    assert_eq!(kept_query.chars().count(), max);
    assert!(query.starts_with(&kept_query));
    assert_eq!(string(&span, "user_agent.original"), agent[..max]);
    match span.attribute("http.request.header.x-note") {
        Some(Value::Array(Array::String(values))) => {
            assert_eq!(values.len(), 1);
            assert_eq!(values[0].as_str(), &note[..max]);
        }
        other => panic!("captured header: {other:?}"),
    }

    // A short request keeps every attribute whole.
    let (status, _) = get(&client, &format!("http://{addr}/short?x=1"), &[]).await;
    assert_eq!(status, 200);
    let span = recorder
        .recent(10)
        .into_iter()
        .find(|s| {
            s.attribute("url.path")
                .is_some_and(|p| p.as_str() == "/short")
        })
        .expect("the short span");
    assert_eq!(string(&span, "url.query"), "x=1");
}

#[tokio::test]
async fn the_request_attribute_cap_comes_from_the_environment() {
    telltale_testkit::init();
    let telemetry =
        Telemetry::from_env_source(&Env::from_pairs([("TELLTALE_LOG_FORMAT", "none")])).unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    let dispatch = telemetry.dispatch().clone();
    let env = Env::from_pairs([("TELLTALE_HTTP_MAX_ATTRIBUTE_LEN", "16")]);
    let app = Router::new()
        .fallback(route_get(|| async { "ok" }))
        .layer(ServerTelemetryLayer::from_env_source(&env).unwrap());
    let addr = serve(app, dispatch).await;
    let (status, _) = get(
        &client(),
        &format!("http://{addr}/{}", "z".repeat(100)),
        &[(
            "user-agent",
            "curl/8.5.0 (x86_64-pc-linux-gnu) libcurl/8.5.0",
        )],
    )
    .await;
    assert_eq!(status, 200);
    let span = recorder
        .recent(10)
        .into_iter()
        .find(|s| s.attribute("url.path").is_some())
        .expect("the server span");
    assert_eq!(string(&span, "url.path"), format!("/{}", "z".repeat(15)));
    assert_eq!(string(&span, "user_agent.original"), "curl/8.5.0 (x86_");

    for bad in ["0", "1048577", "-5", "2kb"] {
        let env = Env::from_pairs([("TELLTALE_HTTP_MAX_ATTRIBUTE_LEN", bad)]);
        let err = ServerTelemetryLayer::from_env_source(&env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TELLTALE_HTTP_MAX_ATTRIBUTE_LEN"), "{err}");
        assert!(err.contains(bad), "{err}");
        assert!(err.contains("1 to 1048576"), "{err}");
    }
}

#[test]
fn every_limit_variable_is_validated() {
    for var in [
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "OTEL_SPAN_LINK_COUNT_LIMIT",
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    ] {
        for good in ["0", "128", "2147483647"] {
            let env = Env::from_pairs([("TELLTALE_LOG_FORMAT", "none"), (var, good)]);
            assert!(Telemetry::from_env_source(&env).is_ok(), "{var}={good}");
        }
        for bad in ["-1", "2147483648", "ten", "1e3", "99999999999999999999999"] {
            let env = Env::from_pairs([(var, bad)]);
            let err = Telemetry::from_env_source(&env).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
            assert!(err.contains(bad), "{err}");
            assert!(err.contains("0 to 2147483647"), "{err}");
        }
    }
    // A bad general value is an error even when the specific one is set.
    let env = Env::from_pairs([
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "10"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "lots"),
    ]);
    let err = Telemetry::from_env_source(&env).unwrap_err().to_string();
    assert!(err.contains("OTEL_ATTRIBUTE_COUNT_LIMIT"), "{err}");

    for var in [
        "TELLTALE_FLIGHT_RECORDER_MAX_BYTES",
        "TELLTALE_EXPORT_QUEUE_MAX_BYTES",
    ] {
        for good in ["64KiB", "16MiB", "16GiB", "1000000"] {
            let env = Env::from_pairs([("TELLTALE_LOG_FORMAT", "none"), (var, good)]);
            assert!(Telemetry::from_env_source(&env).is_ok(), "{var}={good}");
        }
        for bad in ["0", "1KiB", "17GiB", "lots", "-1"] {
            let env = Env::from_pairs([(var, bad)]);
            let err = Telemetry::from_env_source(&env).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
            assert!(err.contains(bad), "{err}");
            assert!(err.contains("64KiB to 16GiB"), "{err}");
        }
    }
    let env = Env::from_pairs([
        ("TELLTALE_LOG_FORMAT", "none"),
        ("TELLTALE_FLIGHT_RECORDER_MAX_BYTES", "1MiB"),
    ]);
    let telemetry = Telemetry::from_env_source(&env).unwrap();
    assert_eq!(telemetry.flight_recorder().unwrap().max_bytes(), 1 << 20);
}

#[test]
fn budgets_set_in_code_are_checked() {
    let err = Telemetry::builder()
        .flight_recorder_max_bytes(10)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("flight recorder max bytes"), "{err}");
    let err = Telemetry::builder()
        .export_queue_max_bytes(usize::MAX)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("export queue max bytes"), "{err}");
}
