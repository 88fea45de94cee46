//! `OTEL_PROPAGATORS` over real servers: `tracecontext,baggage,b3multi`
//! installed from the variable, callers sending B3 single and multiple
//! headers join the trace, and the next hop gets both W3C and B3 headers.
//! Invalid values fail at start-up, naming the variable.

mod support;

use opentelemetry::trace::SpanKind;
use support::harness::Harness;
use support::hop::Hop;
use telltale_core::config::Env;
use telltale_telemetry::propagation::{PropagatorKind, Propagators};
use telltale_telemetry::{LogFormat, Telemetry};

const TID: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const SID: &str = "e457b5a2e4d86bd1";

/// Installs the propagators `OTEL_PROPAGATORS` names (the same value in
/// every test of this binary).
fn install_from_env() {
    let env = Env::from_pairs([("OTEL_PROPAGATORS", "tracecontext, baggage,b3multi,b3multi")]);
    let telemetry = Telemetry::builder()
        .log_format(LogFormat::None)
        .env(&env)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        telemetry.propagators().kinds(),
        [
            PropagatorKind::TraceContext,
            PropagatorKind::Baggage,
            PropagatorKind::B3Multi
        ]
    );
    telemetry.propagators().install();
}

#[tokio::test]
async fn b3_single_and_multi_callers_join_the_trace() {
    install_from_env();
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;

    let single = format!("{TID}-{SID}-1");
    let seen = hop.send(&[("b3", &single)]).await;
    let server = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(server.span_context.trace_id().to_string(), TID);
    assert_eq!(server.parent_span_id.to_string(), SID);
    assert!(server.parent_span_is_remote);
    let client = h.wait_spans(SpanKind::Client, 1).await.remove(0);
    let client_id = client.span_context.span_id().to_string();
    assert_eq!(seen.header("x-b3-traceid"), Some(TID));
    assert_eq!(seen.header("x-b3-spanid"), Some(client_id.as_str()));
    assert_eq!(seen.header("x-b3-sampled"), Some("1"));
    assert_eq!(seen.traceparent, [format!("00-{TID}-{client_id}-01")]);

    let other_tid = "0af7651916cd43dd8448eb211c80319c";
    let other_sid = "b7ad6b7169203331";
    let seen = hop
        .send(&[
            ("X-B3-TraceId", other_tid),
            ("X-B3-SpanId", other_sid),
            ("X-B3-ParentSpanId", "05e3ac9a4f6e3b90"),
            ("X-B3-Sampled", "1"),
        ])
        .await;
    let servers = h.wait_spans(SpanKind::Server, 2).await;
    let server = servers
        .iter()
        .find(|s| s.span_context.trace_id().to_string() == other_tid)
        .expect("the multi-header caller's trace");
    assert_eq!(server.parent_span_id.to_string(), other_sid);
    assert_eq!(seen.header("x-b3-traceid"), Some(other_tid));
    assert_eq!(seen.traceparent().trace_id().to_string(), other_tid);
}

#[tokio::test]
async fn w3c_still_works_beside_b3() {
    install_from_env();
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let tp = "00-12345678901234567890123456789012-1234567890123456-01";
    let seen = hop
        .send(&[("traceparent", tp), ("tracestate", "t@congo=1")])
        .await;
    assert_eq!(
        seen.traceparent().trace_id().to_string(),
        "12345678901234567890123456789012"
    );
    assert_eq!(seen.tracestate(), Some("t@congo=1"));
    assert_eq!(
        seen.header("x-b3-traceid"),
        Some("12345678901234567890123456789012")
    );
}

#[test]
fn unknown_values_fail_at_start_up() {
    let err = Telemetry::builder()
        .env(&Env::from_pairs([(
            "OTEL_PROPAGATORS",
            "tracecontext,bogus",
        )]))
        .unwrap_err();
    assert!(
        err.to_string().ends_with(
            "invalid OTEL_PROPAGATORS=\"tracecontext,bogus\" at position 14: \
         expected tracecontext, baggage, b3, b3multi or none"
        ),
        "{err}"
    );
    let err = Telemetry::builder()
        .env(&Env::from_pairs([("OTEL_PROPAGATORS", "b3,none")]))
        .unwrap_err();
    assert!(err.to_string().contains("position 4"), "{err}");
    assert_eq!(Propagators::parse("none").unwrap(), Propagators::none());
}
