//! What a real OTLP receiver decodes from telltale's pipeline: spans carry
//! only OpenTelemetry attributes by default (none of the `tracing` bridge's
//! `code.*`, `thread.*`, `busy_ns`, `idle_ns`, `target`), the bridge's
//! attributes come back when asked for (builder or
//! `TELLTALE_TRACES_TRACING_ATTRIBUTES`), and every span's instrumentation
//! scope is `telltale-telemetry` with the crate's version.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get as route_get;
use support::otel::{Received, client, get, http_receiver, serve};
use telltale_core::config::Env;
use telltale_telemetry::layer::server::ServerTelemetryLayer;
use telltale_telemetry::{LogFormat, Protocol, Telemetry, TelemetryBuilder};
use tracing::Instrument;

/// Attributes the `tracing` bridge adds outside the conventions.
fn is_bridge_attribute(key: &str) -> bool {
    key.starts_with("code.")
        || key.starts_with("thread.")
        || matches!(key, "busy_ns" | "idle_ns" | "target" | "level")
}

fn pipeline(service: &str, endpoint: &str, builder: TelemetryBuilder) -> Telemetry {
    builder
        .service_name(service)
        .otlp(endpoint, Protocol::HttpProtobuf)
        .otlp_timeout(Duration::from_secs(5))
        .export_delay(Duration::from_millis(20))
        .log_format(LogFormat::None)
        .build()
        .unwrap()
}

/// Serves one route behind the server layer with `telemetry`'s subscriber,
/// calls it once, and returns the spans the receiver decoded for `service`.
async fn export_one_request(service: &'static str, builder: TelemetryBuilder) -> Vec<Received> {
    let (sink, endpoint) = http_receiver().await;
    let (dispatch, guard) = pipeline(service, &endpoint, builder).into_parts();
    let app = Router::new()
        .route(
            "/work",
            route_get(|| async {
                async { tracing::info!(step = "inner", "working") }
                    .instrument(tracing::info_span!("inner work"))
                    .await;
                "done"
            }),
        )
        .layer(ServerTelemetryLayer::new());
    let addr = serve(app, dispatch).await;
    let (status, body) = get(&client(), &format!("http://{addr}/work"), &[]).await;
    assert_eq!((status, body.as_str()), (200, "done"));
    guard.force_flush().unwrap();
    let spans = sink
        .wait_for(|s| {
            s.iter()
                .filter(|s| s.service == service && s.kind == 2) // SERVER
                .count()
                >= 2
                && s.iter().any(|s| s.name == "inner work")
        })
        .await;
    guard.shutdown().unwrap();
    spans.into_iter().filter(|s| s.service == service).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_carry_no_bridge_attributes_and_name_their_scope() {
    let spans = export_one_request("svc-conventions", Telemetry::builder()).await;
    // The layer's SERVER span, the test middleware's span, the inner span.
    assert!(spans.len() >= 3, "{spans:#?}");
    for span in &spans {
        let extra: Vec<&String> = span
            .attributes
            .keys()
            .filter(|k| is_bridge_attribute(k))
            .collect();
        assert!(extra.is_empty(), "{} carries {extra:?}", span.name);
        assert_eq!(
            span.scope,
            (
                "telltale-telemetry".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned()
            ),
            "{}",
            span.name
        );
    }
    let layer_span = spans
        .iter()
        .find(|s| s.name == "GET /work" && s.attributes.contains_key("http.route"))
        .expect("the layer's span");
    assert_eq!(layer_span.attributes["http.request.method"], "GET");
    assert_eq!(layer_span.attributes["http.response.status_code"], "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_attributes_are_opt_in_from_the_environment() {
    let env = Env::from_pairs([("TELLTALE_TRACES_TRACING_ATTRIBUTES", "true")]);
    let builder = Telemetry::builder().env(&env).unwrap();
    let spans = export_one_request("svc-bridge-attributes", builder).await;
    let inner = spans
        .iter()
        .find(|s| s.name == "inner work")
        .expect("inner span");
    for key in ["thread.id", "busy_ns", "idle_ns", "target"] {
        assert!(inner.attributes.contains_key(key), "{key} in {inner:#?}");
    }
    assert!(
        inner.attributes.keys().any(|k| k.starts_with("code.")),
        "{inner:#?}"
    );
    // The scope is the same either way.
    assert_eq!(inner.scope.0, "telltale-telemetry");
}

#[test]
fn a_malformed_opt_in_names_the_variable_and_value() {
    let env = Env::from_pairs([("TELLTALE_TRACES_TRACING_ATTRIBUTES", "sometimes")]);
    let err = Telemetry::builder().env(&env).unwrap_err().to_string();
    assert!(err.contains("TELLTALE_TRACES_TRACING_ATTRIBUTES"), "{err}");
    assert!(err.contains("sometimes"), "{err}");
}
