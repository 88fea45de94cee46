//! Start-up values that crash or lie (issue 14, item 5), for telemetry's
//! variables: every variable × malformed and out-of-range values is a
//! start-up error that names the variable, quotes the value (escaped and
//! truncated) and says what is allowed; the edges of every range are
//! accepted.

use telltale_core::config::{ConfigError, Env, EnvSource};
use telltale_telemetry::layer::{BuildError, ClientTelemetryLayer, ServerTelemetryLayer};
use telltale_telemetry::metrics::{RedConfig, RedConfigError};
use telltale_telemetry::{InitError, Telemetry};
use telltale_testkit::check_config_error;

/// Which builder reads the variable.
#[derive(Clone, Copy, Debug)]
enum Reader {
    Pipeline,
    Metrics,
    Server,
    Client,
}

fn error_of<S: EnvSource>(reader: Reader, env: &Env<S>) -> Option<ConfigError> {
    match reader {
        Reader::Pipeline => match Telemetry::builder().env(env) {
            Ok(_) => None,
            Err(InitError::Config(e)) => Some(e),
            Err(e) => panic!("not a configuration error: {e}"),
        },
        Reader::Metrics => match RedConfig::from_env_source(env) {
            Ok(_) => None,
            Err(RedConfigError::Config(e)) => Some(e),
            Err(e) => panic!("not a configuration error: {e}"),
        },
        Reader::Server => match ServerTelemetryLayer::builder().env(env) {
            Ok(_) => None,
            Err(BuildError::Config(e)) => Some(e),
            Err(BuildError::Metrics(RedConfigError::Config(e))) => Some(e),
            Err(e) => panic!("not a configuration error: {e}"),
        },
        Reader::Client => match ClientTelemetryLayer::builder().env(env) {
            Ok(_) => None,
            Err(BuildError::Config(e)) => Some(e),
            Err(BuildError::Metrics(RedConfigError::Config(e))) => Some(e),
            Err(e) => panic!("not a configuration error: {e}"),
        },
    }
}

fn lorem(bytes: usize) -> String {
    "lorem ipsum dolor sit amet ".repeat(bytes / 27 + 1)[..bytes].to_owned()
}

#[test]
fn every_variable_rejects_malformed_and_out_of_range_values_by_name() {
    use Reader::*;
    let long_text = lorem(10 * 1024);
    let long_name = "x".repeat(300);
    let long_filter = format!("info,{}", "a=warn,".repeat(700));
    let rows: Vec<(Reader, &str, &str, &str)> = vec![
        // (reader, variable, value, a word of what is allowed)
        (Pipeline, "RUST_LOG", "-1", "target"),
        (Pipeline, "RUST_LOG", "5 parsecs", "target"),
        (Pipeline, "RUST_LOG", &long_text, "characters"),
        (Pipeline, "RUST_LOG", &long_filter, "characters"),
        (Pipeline, "RUST_LOG", "info,=debug", "target"),
        (Pipeline, "RUST_LOG", "my_crate=verbose", "level"),
        (Pipeline, "RUST_LOG", "my_crate[unclosed=info", "span"),
        (Pipeline, "RUST_LOG", "info\u{7}", "target"),
        (Pipeline, "RUST_LOG", ",,,", "level"),
        (Pipeline, "TELLTALE_TRACES_FILTER", "-1", "target"),
        (
            Pipeline,
            "TELLTALE_TRACES_FILTER",
            "off,5 parsecs",
            "target",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:99999",
            "65535",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:0",
            "65535",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:",
            "65535",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://[::1]:70000",
            "65535",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4317x",
            "65535",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "localhost:4317",
            "http",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://collector",
            "http",
        ),
        (Pipeline, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://", "URL"),
        (Pipeline, "OTEL_EXPORTER_OTLP_ENDPOINT", "not a url", "URL"),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:99999/v1/traces",
            "65535",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://c:123456/v1/logs",
            "65535",
        ),
        (Pipeline, "OTEL_SERVICE_NAME", "check\u{0}out", "control"),
        (Pipeline, "OTEL_SERVICE_NAME", &long_name, "255"),
        (Pipeline, "OTEL_TRACES_SAMPLER", "sometimes", "always_on"),
        (
            Pipeline,
            "OTEL_TRACES_SAMPLER",
            "jaeger_remote",
            "always_on",
        ),
        (Pipeline, "OTEL_TRACES_SAMPLER_ARG", "1.5", "100%"),
        (Pipeline, "OTEL_TRACES_SAMPLER_ARG", "-0.1", "number"),
        (Pipeline, "OTEL_TRACES_SAMPLER_ARG", "NaN", "number"),
        (Pipeline, "TELLTALE_LOG_FORMAT", "xml", "json"),
        (Pipeline, "TELLTALE_LOG_MAX_FIELD_LEN", "0", "1048576"),
        (Pipeline, "TELLTALE_LOG_MAX_FIELD_LEN", "-1", "1048576"),
        (Pipeline, "TELLTALE_LOG_MAX_FIELD_LEN", "1048577", "1048576"),
        (
            Pipeline,
            "TELLTALE_LOG_MAX_FIELD_LEN",
            "18446744073709551616",
            "1048576",
        ),
        (Pipeline, "TELLTALE_LOG_ANSI", "maybe", "true"),
        (Metrics, "TELLTALE_METRICS_NAMING", "statsd", "classic"),
        (Metrics, "TELLTALE_METRICS_MAX_LABEL_SETS", "0", "1000000"),
        (
            Metrics,
            "TELLTALE_METRICS_MAX_LABEL_SETS",
            "1000001",
            "1000000",
        ),
        (Metrics, "TELLTALE_METRICS_MAX_LABEL_SETS", "-5", "1000000"),
        (Metrics, "TELLTALE_METRICS_MAX_LABEL_SETS", "1e3", "1000000"),
        (
            Metrics,
            "TELLTALE_METRICS_ADDR",
            "localhost",
            "socket address",
        ),
        (
            Metrics,
            "TELLTALE_METRICS_ADDR",
            "127.0.0.1:99999",
            "socket address",
        ),
        (Server, "TELLTALE_METRICS_MAX_LABEL_SETS", "0", "1000000"),
        (
            Server,
            "TELLTALE_HTTP_TRUSTED_PROXIES",
            "10.0.0.0/33",
            "network",
        ),
        (
            Server,
            "TELLTALE_HTTP_TRUSTED_PROXIES",
            "not-an-ip",
            "network",
        ),
        (
            Server,
            "TELLTALE_HTTP_TRUSTED_PROXIES",
            "10.0.0.1,,10.0.0.2",
            "item",
        ),
        (
            Server,
            "TELLTALE_HTTP_REDACTED_QUERY_KEYS",
            "token=x",
            "query key",
        ),
        (
            Server,
            "TELLTALE_HTTP_REDACTED_QUERY_KEYS",
            "api key",
            "query key",
        ),
        (
            Server,
            "TELLTALE_HTTP_SERVER_CAPTURE_REQUEST_HEADERS",
            "bad header",
            "header name",
        ),
        (
            Server,
            "TELLTALE_HTTP_SERVER_CAPTURE_REQUEST_HEADERS",
            "x-ok,x:y",
            "header name",
        ),
        (
            Server,
            "TELLTALE_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS",
            "é",
            "header name",
        ),
        (
            Server,
            "TELLTALE_HTTP_SERVER_PUBLIC_ENDPOINT",
            "perhaps",
            "true",
        ),
        (
            Server,
            "TELLTALE_HTTP_SERVER_TRACE_HEALTH_CHECKS",
            "2",
            "true",
        ),
        (
            Client,
            "TELLTALE_HTTP_REDACTED_QUERY_KEYS",
            "a&b",
            "query key",
        ),
        (
            Client,
            "TELLTALE_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS",
            "(x)",
            "header name",
        ),
        (
            Client,
            "TELLTALE_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS",
            "a b",
            "header name",
        ),
        (
            Client,
            "TELLTALE_HTTP_CLIENT_PROPAGATE",
            "yes please",
            "true",
        ),
    ];
    let mut failures = Vec::new();
    for (reader, variable, value, allowed) in &rows {
        let env = Env::from_pairs([(*variable, *value)]);
        let Some(err) = error_of(*reader, &env) else {
            failures.push(format!("{variable}={value:.60?} accepted"));
            continue;
        };
        if let Err(failure) = check_config_error(&err, &err, variable, value, allowed) {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn the_edges_of_every_range_are_accepted() {
    use Reader::*;
    let longest_filter = format!(
        "{}=info",
        "a".repeat(telltale_telemetry::pipeline::MAX_FILTER_LEN - 5)
    );
    let longest_name = "x".repeat(255);
    let rows: Vec<(Reader, &str, &str)> = vec![
        (Pipeline, "RUST_LOG", "warn"),
        (
            Pipeline,
            "RUST_LOG",
            "INFO,my_crate::db=trace,hyper=off,tower-http=debug",
        ),
        (Pipeline, "RUST_LOG", "my_crate[request{user=ada}]=debug"),
        (Pipeline, "RUST_LOG", &longest_filter),
        (Pipeline, "TELLTALE_TRACES_FILTER", "info,noisy=off"),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:65535",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:1",
        ),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://[::1]:4318/",
        ),
        (Pipeline, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector"),
        (
            Pipeline,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        ),
        (Pipeline, "OTEL_SERVICE_NAME", &longest_name),
        (Pipeline, "OTEL_SERVICE_NAME", "checkout ünïcode"),
        (Pipeline, "OTEL_TRACES_SAMPLER", "ParentBased_TraceIdRatio"),
        (Pipeline, "OTEL_TRACES_SAMPLER_ARG", "0"),
        (Pipeline, "OTEL_TRACES_SAMPLER_ARG", "1"),
        (Pipeline, "TELLTALE_LOG_MAX_FIELD_LEN", "1"),
        (Pipeline, "TELLTALE_LOG_MAX_FIELD_LEN", "1048576"),
        (Metrics, "TELLTALE_METRICS_MAX_LABEL_SETS", "1"),
        (Metrics, "TELLTALE_METRICS_MAX_LABEL_SETS", "1000000"),
        (
            Server,
            "TELLTALE_HTTP_TRUSTED_PROXIES",
            "10.0.0.0/8, ::1, 192.168.1.7",
        ),
        (
            Server,
            "TELLTALE_HTTP_REDACTED_QUERY_KEYS",
            "token,api_key,X-Sig",
        ),
        (
            Server,
            "TELLTALE_HTTP_SERVER_CAPTURE_REQUEST_HEADERS",
            "X-Tenant-Id, user-agent",
        ),
        (
            Client,
            "TELLTALE_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS",
            "retry-after",
        ),
    ];
    for (reader, variable, value) in rows {
        let env = Env::from_pairs([(variable, value)]);
        if let Some(err) = error_of(reader, &env) {
            panic!("{variable}={value:.60?} rejected: {err}");
        }
    }
}
