use super::*;
use crate::pipeline::fmt::Profile;

fn from(pairs: &[(&str, &str)]) -> Result<TelemetryBuilder, InitError> {
    TelemetryBuilder::env_defaults().env(&Env::from_pairs(pairs.iter().copied()))
}

fn config_err(pairs: &[(&str, &str)]) -> ConfigError {
    match from(pairs) {
        Err(InitError::Config(e)) => e,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn empty_env_gives_json_logs_and_no_exporter() {
    let b = from(&[]).unwrap();
    assert_eq!(b.log_format, LogFormat::Json(Profile::OpenTelemetry));
    assert!(b.otlp.is_none());
    assert!(!b.stdout_exporter);
    assert_eq!(b.sampler, Sampler::ParentBasedAlwaysOn);
    assert_eq!(b.filter, "info");
    assert!(!b.sdk_disabled);
}

#[test]
fn reads_standard_variables() {
    let b = from(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=ignored, deployment.environment=prod,team=a%2Cb",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Bearer%20x,x-tenant=7",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("RUST_LOG", "info,my_crate=debug"),
        ("TELLTALE_LOG_FORMAT", "ecs"),
        ("TELLTALE_FLIGHT_RECORDER_CAPACITY", "100"),
        ("TELLTALE_EXPORT_QUEUE_SIZE", "64"),
        ("TELLTALE_EXPORT_BATCH_SIZE", "8"),
        ("TELLTALE_EXPORT_DELAY", "250ms"),
        ("TELLTALE_SHUTDOWN_TIMEOUT", "3s"),
        ("TELLTALE_LOG_MAX_FIELD_LEN", "100"),
    ])
    .unwrap();
    assert_eq!(b.service_name.as_deref(), Some("checkout"));
    let attrs: Vec<_> = b
        .resource
        .iter()
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.to_string()))
        .collect();
    assert!(attrs.contains(&("deployment.environment".into(), "prod".into())));
    assert!(attrs.contains(&("team".into(), "a,b".into())));
    let otlp = b.otlp.unwrap();
    assert_eq!(otlp.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(otlp.protocol, Protocol::HttpProtobuf);
    assert_eq!(
        otlp.headers,
        [
            ("authorization".to_owned(), "Bearer x".to_owned()),
            ("x-tenant".to_owned(), "7".to_owned())
        ]
    );
    assert_eq!(otlp.timeout, Duration::from_millis(2500));
    assert_eq!(b.sampler, Sampler::ParentBasedTraceIdRatio(0.25));
    assert_eq!(b.filter, "info,my_crate=debug");
    assert_eq!(b.log_format, LogFormat::Json(Profile::ElasticCommonSchema));
    assert_eq!(b.flight_recorder_capacity, Some(100));
    assert_eq!((b.queue_size, b.batch_size), (64, 8));
    assert_eq!(b.export_delay, Duration::from_millis(250));
    assert_eq!(b.shutdown_timeout, Duration::from_secs(3));
    assert_eq!(b.max_field_len, 100);
}

#[test]
fn signal_specific_variables_win() {
    let b = from(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://logs:4318/v1/logs",
        ),
    ])
    .unwrap();
    let otlp = b.otlp.unwrap();
    assert_eq!(otlp.endpoint, "http://traces:4317");
    assert_eq!(otlp.protocol, Protocol::Grpc);
    assert_eq!(otlp.headers, [("b".to_owned(), "2".to_owned())]);
}

#[test]
fn grpc_endpoint_is_used_as_is_and_exporters_list_is_honoured() {
    let b = from(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_EXPORTER", "otlp,console"),
    ])
    .unwrap();
    assert_eq!(b.otlp.unwrap().endpoint, "http://collector:4317");
    assert!(b.stdout_exporter);
    let b = from(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ])
    .unwrap();
    assert!(b.otlp.is_none());
    let b = from(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap();
    assert_eq!(b.otlp.unwrap().endpoint, "http://localhost:4318/v1/traces");
}

#[test]
fn otlp_log_export_is_opt_in() {
    let b = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]).unwrap();
    assert!(b.otlp.is_some());
    assert!(b.otlp_logs.is_none());
    let b = from(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k=v"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "1500"),
    ])
    .unwrap();
    let logs = b.otlp_logs.unwrap();
    assert_eq!(logs.endpoint, "http://collector:4318/v1/logs");
    assert_eq!(logs.headers, [("k".to_owned(), "v".to_owned())]);
    assert_eq!(logs.timeout, Duration::from_millis(1500));
    let b = from(&[
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4317"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
    ])
    .unwrap();
    let logs = b.otlp_logs.unwrap();
    assert_eq!(
        (logs.endpoint.as_str(), logs.protocol),
        ("http://logs:4317", Protocol::Grpc)
    );
    assert!(
        b.otlp.is_none(),
        "traces are not exported by the logs variables"
    );
}

#[test]
fn samplers() {
    for (name, arg, want) in [
        ("always_on", None, Sampler::AlwaysOn),
        ("always_off", None, Sampler::AlwaysOff),
        ("traceidratio", Some("0.5"), Sampler::TraceIdRatio(0.5)),
        ("traceidratio", None, Sampler::TraceIdRatio(1.0)),
        ("parentbased_always_on", None, Sampler::ParentBasedAlwaysOn),
        (
            "parentbased_always_off",
            None,
            Sampler::ParentBasedAlwaysOff,
        ),
        (
            "parentbased_traceidratio",
            Some("10%"),
            Sampler::ParentBasedTraceIdRatio(0.1),
        ),
    ] {
        let mut pairs = vec![("OTEL_TRACES_SAMPLER", name)];
        if let Some(arg) = arg {
            pairs.push(("OTEL_TRACES_SAMPLER_ARG", arg));
        }
        assert_eq!(from(&pairs).unwrap().sampler, want, "{name}");
    }
}

#[test]
fn every_invalid_value_names_its_variable_and_position() {
    for (variable, value, position) in [
        ("OTEL_TRACES_SAMPLER", "jaeger_remote", 1),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5", 1),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5x", 4),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", 1),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp", 1),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", 1),
        #[cfg(not(feature = "tls"))]
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317", 1),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "br", 1),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0", 1),
        ("OTEL_BLRP_EXPORT_TIMEOUT", "-1", 1),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://c", 1),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "nope nope", 1),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b", 6),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1, bad name=2", 6),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=%zz", 3),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", 3),
        ("OTEL_RESOURCE_ATTRIBUTES", "a=1,,b=2", 5),
        ("OTEL_RESOURCE_ATTRIBUTES", "a=1,=2", 5),
        ("OTEL_TRACES_EXPORTER", "otlp,zipkin", 6),
        ("RUST_LOG", "info,a=[[", 6),
        ("TELLTALE_LOG_FORMAT", "xml", 1),
        ("TELLTALE_LOG_MAX_FIELD_LEN", "0", 1),
        ("TELLTALE_FLIGHT_RECORDER_CAPACITY", "-1", 1),
        ("TELLTALE_EXPORT_QUEUE_SIZE", "1k", 2),
        ("TELLTALE_EXPORT_BATCH_SIZE", "4096", 1),
        ("TELLTALE_EXPORT_DELAY", "5", 2),
        ("TELLTALE_EXPORT_TIMEOUT", "5x", 2),
        ("TELLTALE_SHUTDOWN_TIMEOUT", "soon", 1),
    ] {
        let pairs = [(variable, value)];
        let err = config_err(&pairs);
        assert_eq!(err.variable(), variable, "{pairs:?}: {err}");
        assert_eq!(err.position(), position, "{pairs:?}: {err}");
        let text = InitError::Config(err).to_string();
        assert!(text.contains(variable), "{text}");
    }
}

#[test]
fn code_settings_are_validated_too() {
    let err = TelemetryBuilder::default()
        .filter("a=[[")
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("filter"), "{err}");
    let err = TelemetryBuilder::default()
        .otlp("localhost:4317", Protocol::Grpc)
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("otlp endpoint"), "{err}");
    let err = TelemetryBuilder::default()
        .export_queue_size(4)
        .export_batch_size(8)
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("export batch size"), "{err}");
    let err = TelemetryBuilder::default()
        .sampler(Sampler::TraceIdRatio(2.0))
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("ratio"), "{err}");
}

#[test]
fn env_overlays_set_variables_and_keeps_the_rest() {
    let b = TelemetryBuilder::default()
        .service_name("from-code")
        .export_queue_size(1024)
        .otlp("http://code:4318/v1/traces", Protocol::HttpProtobuf)
        .env(&Env::from_pairs([
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "k=v"),
        ]))
        .unwrap();
    assert_eq!(b.service_name.as_deref(), Some("from-env"));
    assert_eq!(b.queue_size, 1024);
    assert_eq!(
        b.log_format,
        LogFormat::Pretty,
        "the builder's default is kept"
    );
    let otlp = b.otlp.unwrap();
    assert_eq!(otlp.endpoint, "http://code:4318/v1/traces");
    assert_eq!(otlp.headers, [("k".to_owned(), "v".to_owned())]);
    let b = TelemetryBuilder::default()
        .otlp("http://code:4318/v1/traces", Protocol::HttpProtobuf)
        .env(&Env::from_pairs([("OTEL_TRACES_EXPORTER", "none")]))
        .unwrap();
    assert!(b.otlp.is_none(), "a set exporter list wins over code");
}

#[test]
fn is_configured_sees_any_variable() {
    assert!(!is_configured(&Env::from_pairs([("HOME", "/")])));
    assert!(is_configured(&Env::from_pairs([(RUST_LOG, "debug")])));
    assert!(is_configured(&Env::from_pairs([(
        OTEL_RESOURCE_ATTRIBUTES,
        "a=b"
    )])));
    assert_eq!(VARS.len(), 79);
}
