//! `OTEL_PROPAGATORS=none`: no propagation at all, telltale's own server
//! and client layers included (its own binary: the propagator is global).

mod support;

use opentelemetry::trace::{SpanId, SpanKind};
use support::harness::Harness;
use support::hop::Hop;
use telltale_core::config::Env;
use telltale_telemetry::{LogFormat, Telemetry};

#[tokio::test]
async fn none_means_no_trace_context_in_or_out() {
    let env = Env::from_pairs([("OTEL_PROPAGATORS", "none")]);
    let telemetry = Telemetry::builder()
        .log_format(LogFormat::None)
        .env(&env)
        .unwrap()
        .build()
        .unwrap();
    assert!(telemetry.propagators().kinds().is_empty());
    telemetry.propagators().install();

    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let tid = "12345678901234567890123456789012";
    let seen = hop
        .send(&[
            ("traceparent", &format!("00-{tid}-1234567890123456-01")),
            ("tracestate", "foo=1"),
            ("baggage", "user=ada"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ])
        .await;
    let server = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_ne!(server.span_context.trace_id().to_string(), tid);
    assert_eq!(server.parent_span_id, SpanId::INVALID);
    for name in ["traceparent", "tracestate", "baggage", "b3", "x-b3-traceid"] {
        assert_eq!(seen.header(name), None, "{name} was sent");
    }
}
