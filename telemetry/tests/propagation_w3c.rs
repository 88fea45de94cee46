//! W3C Trace Context on the wire, case by case after the W3C trace-context
//! test suite (`test/test.py`): a real hyper client sends headers to a real
//! axum server behind `ServerTelemetryLayer`; its handler calls a second
//! real server through `ClientTelemetryLayer`, which records the
//! `traceparent` and `tracestate` headers it receives.
//!
//! No propagator is installed in this binary: the layers use telltale's
//! default list (its W3C Trace Context propagator and W3C Baggage).

mod support;

use opentelemetry::trace::SpanKind;
use support::harness::Harness;
use support::hop::Hop;

const TID: &str = "12345678901234567890123456789012";
const PID: &str = "1234567890123456";

fn tp(flags: &str) -> String {
    format!("00-{TID}-{PID}-{flags}")
}

#[tokio::test]
async fn level2_flags_and_32_multi_tenant_members_reach_the_next_hop_exactly() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let state: String = (1..=32)
        .map(|i| format!("t{i}@vendor{i:02}={i}"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(state.len() <= 512);
    let seen = hop
        .send(&[("traceparent", &tp("03")), ("tracestate", &state)])
        .await;

    let client = h.wait_spans(SpanKind::Client, 1).await.remove(0);
    let server = h.wait_spans(SpanKind::Server, 1).await.remove(0);
    assert_eq!(server.span_context.trace_id().to_string(), TID);
    assert_eq!(server.parent_span_id.to_string(), PID);
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(
        seen.traceparent,
        [format!("00-{TID}-{}-03", client.span_context.span_id())]
    );
    assert_eq!(seen.tracestate, [state]);
}

#[tokio::test]
async fn tracestate_over_512_characters_is_truncated_by_whole_entries_from_the_right() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let members: Vec<String> = (1..=32)
        .map(|i| format!("tenant{i}@vendor{i:02}=value-{i}"))
        .collect();
    let state = members.join(",");
    assert!(state.len() > 512);
    let seen = hop
        .send(&[("traceparent", &tp("01")), ("tracestate", &state)])
        .await;
    let out = seen.tracestate().unwrap();
    let kept = out.split(',').count();
    assert_eq!(out, members[..kept].join(","));
    assert!(
        out.len() <= 512 && out.len() + members[kept].len() + 1 > 512,
        "{out}"
    );
}

#[tokio::test]
async fn random_flag_is_kept_when_not_sampled() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let seen = hop.send(&[("traceparent", &tp("02"))]).await;
    let out = seen.traceparent();
    assert_eq!(out.trace_id().to_string(), TID);
    assert_eq!(out.flags(), 0x02);
    assert_ne!(out.parent_id().to_string(), PID);
}

#[tokio::test]
async fn reserved_flags_are_not_sent_on() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let out = hop.send(&[("traceparent", &tp("ff"))]).await.traceparent();
    assert_eq!(out.trace_id().to_string(), TID);
    assert_eq!(out.flags(), 0x03);
}

#[tokio::test]
async fn without_trace_context_a_trace_starts_and_no_empty_tracestate_is_sent() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let seen = hop.send(&[]).await;
    assert_ne!(seen.traceparent().trace_id().to_string(), TID);
    assert_eq!(seen.tracestate(), None);
    // traceparent only.
    let seen = hop.send(&[("traceparent", &tp("01"))]).await;
    let out = seen.traceparent();
    assert_eq!(out.trace_id().to_string(), TID);
    assert_ne!(out.parent_id().to_string(), PID);
    assert_eq!(seen.tracestate(), None);
    // An empty tracestate header is accepted, and not sent on.
    let seen = hop
        .send(&[("traceparent", &tp("00")), ("tracestate", "")])
        .await;
    assert_eq!(seen.traceparent().trace_id().to_string(), TID);
    assert_eq!(seen.tracestate(), None);
}

#[tokio::test]
async fn tracestate_without_traceparent_is_discarded() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    for state in ["foo=1", "foo=1,bar=2"] {
        let seen = hop.send(&[("tracestate", state)]).await;
        assert_eq!(seen.tracestate(), None);
    }
}

#[tokio::test]
async fn two_traceparent_headers_restart_the_trace() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let other = format!("00-12345678901234567890123456789011-{PID}-01");
    let seen = hop
        .send(&[("traceparent", &other), ("traceparent", &tp("01"))])
        .await;
    let id = seen.traceparent().trace_id().to_string();
    assert_ne!(id, TID);
    assert_ne!(id, "12345678901234567890123456789011");
}

#[tokio::test]
async fn repeated_tracestate_headers_are_one_list() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let seen = hop
        .send(&[
            ("traceparent", &tp("00")),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ])
        .await;
    assert_eq!(seen.tracestate(), Some("foo=1,bar=2,rojo=1,congo=2,baz=3"));
    for headers in [
        [("tracestate", ""), ("tracestate", "foo=1")],
        [("tracestate", "foo=1"), ("tracestate", "")],
    ] {
        let mut all = vec![("traceparent", tp("00"))];
        all.extend(headers.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(hop.send(&pairs).await.tracestate(), Some("foo=1"));
    }
    // 32 members over four headers are kept, 33 are discarded.
    let list = |from: usize, to: usize| {
        (from..=to)
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (a, b, c) = (list(1, 10), list(11, 20), list(21, 30));
    for (last, expected) in [(list(31, 32), Some(list(1, 32))), (list(31, 33), None)] {
        let seen = hop
            .send(&[
                ("traceparent", &tp("00")),
                ("tracestate", &a),
                ("tracestate", &b),
                ("tracestate", &c),
                ("tracestate", &last),
            ])
            .await;
        assert_eq!(seen.tracestate(), expected.as_deref());
    }
    // Duplicate keys across headers: the list is discarded.
    let seen = hop
        .send(&[
            ("traceparent", &tp("00")),
            ("tracestate", "foo=1"),
            ("tracestate", "foo=2"),
        ])
        .await;
    assert_eq!(seen.tracestate(), None);
}

#[tokio::test]
async fn level2_keys_pass_an_invalid_member_discards_the_list_and_whitespace_is_ignored() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let z257 = format!("foo=1,{}=1", "z".repeat(257));
    let long_tenant = format!("{}@v=1", "t".repeat(242));
    let long_system = format!("t@{}=1", "v".repeat(15));
    let cases: [(&str, Option<&str>); 13] = [
        ("foo=1 \t , \t bar=2, \t baz=3", Some("foo=1,bar=2,baz=3")),
        // Level 2: `@` is a key character anywhere after the first.
        ("foo@=1,bar=2", Some("foo@=1,bar=2")),
        ("foo@@bar=1,bar=2", Some("foo@@bar=1,bar=2")),
        ("foo@bar@baz=1,bar=2", Some("foo@bar@baz=1,bar=2")),
        (long_tenant.as_str(), Some(long_tenant.as_str())),
        (long_system.as_str(), Some(long_system.as_str())),
        // One invalid member: the header is discarded whole.
        ("@foo=1,bar=2", None),
        ("foo=,bar=3", None),
        ("FOO=1,bar=2", None),
        ("foo.bar=1,bar=2", None),
        ("foo=bar=baz,bar=2", None),
        ("bar=2,foo =1", None),
        (z257.as_str(), None),
    ];
    for (sent, expected) in cases {
        let seen = hop
            .send(&[("traceparent", &tp("00")), ("tracestate", sent)])
            .await;
        assert_eq!(seen.traceparent().trace_id().to_string(), TID, "{sent:?}");
        assert_eq!(seen.tracestate(), expected, "{sent:?}");
    }
    // An invalid member in one of several headers discards them all.
    let seen = hop
        .send(&[
            ("traceparent", &tp("00")),
            ("tracestate", "foo=1"),
            ("tracestate", "Bar=2"),
        ])
        .await;
    assert_eq!(seen.tracestate(), None);
}

#[tokio::test]
async fn malformed_traceparent_restarts_the_trace() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let cases = [
        format!("00-{TID}-{PID}-01."),
        format!("00-{TID}-{PID}-01-what-the-future-will-be-like"),
        format!("ff-{TID}-{PID}-01"),
        format!(".0-{TID}-{PID}-01"),
        format!("000-{TID}-{PID}-01"),
        format!("0-{TID}-{PID}-01"),
        format!("00-00000000000000000000000000000000-{PID}-01"),
        format!("00-.2345678901234567890123456789012-{PID}-01"),
        format!("00-{TID}3-{PID}-01"),
        format!("00-1234567890123456789012345678901-{PID}-01"),
        format!("00-{TID}-0000000000000000-01"),
        format!("00-{TID}-123456789012345.-01"),
        format!("00-{TID}-12345678901234567-01"),
        format!("00-{TID}-123456789012345-01"),
        format!("00-{TID}-{PID}-.0"),
        format!("00-{TID}-{PID}-001"),
        format!("00-{TID}-{PID}-1"),
        format!("00-{}-{PID}-01", TID.replace('1', "A")),
    ];
    for case in &cases {
        let seen = hop
            .send(&[("traceparent", case), ("tracestate", "foo=1")])
            .await;
        let out = seen.traceparent();
        assert_ne!(out.trace_id().to_string(), TID, "{case:?}");
        assert_eq!(seen.tracestate(), None, "{case:?}");
    }
}

#[tokio::test]
async fn future_versions_and_whitespace_are_accepted() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    for case in [
        format!("cc-{TID}-{PID}-01"),
        format!("cc-{TID}-{PID}-01-what-the-future-will-be-like"),
        format!(" 00-{TID}-{PID}-01"),
        format!("\t00-{TID}-{PID}-01 \t"),
    ] {
        let out = hop.send(&[("traceparent", &case)]).await.traceparent();
        assert_eq!(out.trace_id().to_string(), TID, "{case:?}");
        assert_eq!(out.version(), 0);
    }
    let out = hop
        .send(&[(
            "traceparent",
            &format!("cc-{TID}-{PID}-01.what-the-future-will-be-like"),
        )])
        .await
        .traceparent();
    assert_ne!(out.trace_id().to_string(), TID);
}

#[tokio::test]
async fn every_outbound_call_gets_its_own_parent_id() {
    let h = Harness::new();
    let mut hop = Hop::start(&h).await;
    let mut parents = std::collections::HashSet::new();
    for _ in 0..3 {
        let out = hop.send(&[("traceparent", &tp("01"))]).await.traceparent();
        assert_eq!(out.trace_id().to_string(), TID);
        parents.insert(out.parent_id());
    }
    assert_eq!(parents.len(), 3);
}
