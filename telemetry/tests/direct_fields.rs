//! Request attributes given to telltale's log formatters directly
//! (`DirectRequestAttributes`): the log lines show them exactly as recorded
//! tracing fields, the OpenTelemetry span does not get them, and the
//! pipeline declares itself.

mod support;

use support::otel::Captured;
use telltale_telemetry::{
    DirectRequestAttributes, FlightRecorder, JsonFields, JsonFormat, LogFormat, Profile,
    TRUNCATION_MARKER, Telemetry,
};
use tracing::field::{Empty, ValueSet};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

const MAX_FIELD_LEN: usize = 24;

/// A path with characters JSON must escape and longer than the cap.
fn long_path() -> String {
    format!("/a\"b\\c\n\u{1b}[31m{}", "p".repeat(100))
}

/// Calls `f` with the request attributes as one value set (of a callsite
/// of their own, as the request layers build theirs).
fn with_request_values(path: &str, f: impl FnOnce(&ValueSet<'_>)) {
    static CALLSITE: tracing::callsite::DefaultCallsite =
        tracing::callsite::DefaultCallsite::new(&META);
    static META: tracing::Metadata<'static> = tracing::Metadata::new(
        "request attributes",
        "direct_fields",
        tracing::Level::INFO,
        None,
        None,
        None,
        tracing::field::FieldSet::new(
            &["http.route", "url.path", "http.response.status_code"],
            tracing::callsite::Identifier(&CALLSITE),
        ),
        tracing::metadata::Kind::SPAN,
    );
    let fields = META.fields();
    let route = fields.field("http.route").unwrap();
    let url = fields.field("url.path").unwrap();
    let status = fields.field("http.response.status_code").unwrap();
    let values = [
        (&route, Some(&"/orders/{id}" as &dyn tracing::Value)),
        (&url, Some(&path as &dyn tracing::Value)),
        (&status, Some(&200_i64 as &dyn tracing::Value)),
    ];
    f(&fields.value_set(&values));
}

/// A request span whose attributes are given directly (`direct`) or
/// recorded as tracing fields, and two events inside it (one in a child).
fn scenario(direct: bool) {
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        http.route = Empty,
        url.path = Empty,
        http.response.status_code = Empty,
    );
    let path = long_path();
    if direct {
        with_request_values(&path, |values| {
            DirectRequestAttributes::__record_for_logs(&span, values)
        });
    } else {
        span.record("http.route", "/orders/{id}");
        span.record("url.path", path.as_str());
        span.record("http.response.status_code", 200_i64);
    }
    let _request = span.enter();
    tracing::info!(step = 1, "inside");
    let _child = tracing::info_span!("db", db.system = "postgresql").entered();
    tracing::warn!("in the child");
}

/// The pipeline's log text for `format` and its recorder.
fn run(format: LogFormat, direct: bool) -> (String, FlightRecorder) {
    let logs = Captured::default();
    let telemetry = Telemetry::builder()
        .service_name("direct-svc")
        .log_format(format)
        .max_field_len(MAX_FIELD_LEN)
        .writer(logs.clone())
        .filter("info")
        .trace_filter("info")
        .build()
        .unwrap();
    let recorder = telemetry.flight_recorder().unwrap().clone();
    telltale_testkit::with_default(telemetry.dispatch(), || scenario(direct));
    (logs.text(), recorder)
}

/// `text` with timestamps and the recorder's IDs replaced by placeholders.
fn normalize(text: &str, recorder: &FlightRecorder) -> String {
    let spans = recorder.recent(10);
    let mut ids = Vec::new();
    for span in &spans {
        ids.push((span.trace_id().to_string(), "<trace-id>".to_owned()));
        ids.push((
            span.span_id().to_string(),
            format!("<{}-span-id>", span.name()),
        ));
    }
    support::otel::normalize_lines(text, &ids)
}

fn request_span(recorder: &FlightRecorder) -> std::sync::Arc<telltale_telemetry::RecordedSpan> {
    recorder
        .recent(10)
        .into_iter()
        .find(|s| s.name() == "request")
        .expect("the request span is exported")
}

fn check_format(format: LogFormat) {
    let (direct, direct_spans) = run(format, true);
    let (recorded, recorded_spans) = run(format, false);
    let direct = normalize(&direct, &direct_spans);
    let recorded = normalize(&recorded, &recorded_spans);
    assert_eq!(direct.lines().count(), 2, "{direct}");
    // Exactly the lines a recorded field gives: same names, escaping, cap.
    assert_eq!(direct, recorded, "{format:?}");
    for line in direct.lines() {
        assert!(line.contains("/orders/{id}"), "{line}");
        assert!(line.contains(TRUNCATION_MARKER), "{line}");
        assert!(line.contains("200"), "{line}");
        assert!(!line.contains('\u{1b}'), "{line}");
    }
    // The OpenTelemetry span gets recorded fields, not direct ones.
    let direct_span = request_span(&direct_spans);
    for key in ["http.route", "url.path", "http.response.status_code"] {
        assert_eq!(direct_span.attribute(key), None, "{key}");
    }
    let recorded_span = request_span(&recorded_spans);
    assert_eq!(
        recorded_span
            .attribute("http.route")
            .map(|v| v.as_str().into_owned()),
        Some("/orders/{id}".to_owned())
    );
}

#[test]
fn json_lines_show_direct_fields_as_recorded_ones() {
    check_format(LogFormat::Json(Profile::OpenTelemetry));
    let (text, _) = run(LogFormat::Json(Profile::OpenTelemetry), true);
    for line in text.lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["http.route"], "/orders/{id}");
        assert_eq!(line["http.response.status_code"], 200);
        let path = line["url.path"].as_str().unwrap();
        let expected: String = long_path().chars().take(MAX_FIELD_LEN).collect();
        assert_eq!(path, format!("{expected}{TRUNCATION_MARKER}"));
    }
}

#[test]
fn ecs_lines_show_direct_fields_as_recorded_ones() {
    check_format(LogFormat::Json(Profile::ElasticCommonSchema));
}

#[test]
fn pretty_lines_show_direct_fields_as_recorded_ones() {
    check_format(LogFormat::Pretty);
}

#[test]
fn the_pipeline_declares_its_formatters_whatever_the_format() {
    for format in [
        LogFormat::Json(Profile::OpenTelemetry),
        LogFormat::Json(Profile::ElasticCommonSchema),
        LogFormat::Pretty,
        LogFormat::None,
    ] {
        let telemetry = Telemetry::builder().log_format(format).build().unwrap();
        let found = telltale_testkit::with_default(telemetry.dispatch(), || {
            DirectRequestAttributes::__enabled(&tracing::info_span!("request"))
        });
        assert!(found, "{format:?}");
    }
}

/// A filter that matches a request field's value must see it as a tracing
/// field: then the pipeline does not declare its formatters.
#[test]
fn the_pipeline_keeps_fields_for_filters_on_their_values() {
    for (log, trace) in [
        ("info,[{correlation_id=req-42}]=debug", "info"),
        ("info", "info,[request{http.route=/status}]=debug"),
    ] {
        let telemetry = Telemetry::builder()
            .filter(log)
            .trace_filter(trace)
            .build()
            .unwrap();
        let found = telltale_testkit::with_default(telemetry.dispatch(), || {
            DirectRequestAttributes::__enabled(&tracing::info_span!("request"))
        });
        assert!(!found, "{log} / {trace}");
    }
}

#[test]
fn found_through_boxes_and_filters_and_absent_otherwise() {
    let enabled_in = |dispatch: tracing::Dispatch| {
        telltale_testkit::with_default(&dispatch, || {
            DirectRequestAttributes::__enabled(&tracing::info_span!("request"))
        })
    };
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let boxed: Boxed = Box::new(DirectRequestAttributes);
    assert!(enabled_in(tracing::Dispatch::new(
        tracing_subscriber::registry().with(boxed)
    )));
    let boxed_filtered: Boxed = Box::new(DirectRequestAttributes::layer());
    let fmt: Boxed = Box::new(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO));
    assert!(enabled_in(tracing::Dispatch::new(
        tracing_subscriber::registry().with(vec![fmt, boxed_filtered])
    )));
    assert!(enabled_in(tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(DirectRequestAttributes.with_filter(LevelFilter::DEBUG))
    )));
    assert!(!enabled_in(tracing::Dispatch::new(
        tracing_subscriber::registry().with(tracing_subscriber::fmt::layer())
    )));
    // No subscriber at all, or a disabled span.
    assert!(!DirectRequestAttributes::__enabled(&tracing::Span::none()));
}

#[test]
fn disabled_filtered_or_unformatted_spans_are_left_alone() {
    // No span at all.
    with_request_values("/x", |values| {
        DirectRequestAttributes::__record_for_logs(&tracing::Span::none(), values)
    });
    // A span the formatter's filter turns away while another layer keeps
    // it: nothing to add to, no line shows it.
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::default())
                .event_format(JsonFormat::default())
                .with_writer(logs.clone())
                .with_filter(LevelFilter::WARN),
        )
        .with(tracing_subscriber::layer::Identity::new())
        .with(DirectRequestAttributes::layer());
    telltale_testkit::with_default(&tracing::Dispatch::new(subscriber), || {
        let span = tracing::info_span!("request");
        assert!(!span.is_disabled());
        with_request_values("/x", |values| {
            DirectRequestAttributes::__record_for_logs(&span, values)
        });
        let _entered = span.enter();
        tracing::warn!("inside");
    });
    let lines = logs.json_lines();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].get("http.route").is_none(), "{}", lines[0]);
    // A foreign formatter: not given the fields (documented), no panic.
    let foreign = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_ansi(false)
                .with_writer(foreign.clone()),
        )
        .with(DirectRequestAttributes::layer());
    telltale_testkit::with_default(&tracing::Dispatch::new(subscriber), || {
        let span = tracing::info_span!("request");
        assert!(DirectRequestAttributes::__enabled(&span));
        with_request_values("/x", |values| {
            DirectRequestAttributes::__record_for_logs(&span, values)
        });
        let _entered = span.enter();
        tracing::info!("inside");
    });
    let text = foreign.text();
    assert!(text.contains("inside"), "{text}");
    assert!(!text.contains("http.route"), "{text}");
}
