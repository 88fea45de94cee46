//! What `init` installs by default: telltale's W3C Trace Context propagator
//! and W3C Baggage, as the global propagator (its own binary: it installs
//! the global subscriber and propagator).

use std::collections::HashMap;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceContextExt;
use telltale_core::config::Env;
use telltale_telemetry::Telemetry;

#[test]
fn init_installs_trace_context_level_2_and_baggage() {
    // `init()` is `Telemetry::from_env()?.install()`; the same from a fixed
    // environment.
    let _guard = Telemetry::from_env_source(&Env::from_pairs([("TELLTALE_LOG_FORMAT", "none")]))
        .unwrap()
        .install()
        .unwrap();
    let mut fields: Vec<String> =
        opentelemetry::global::get_text_map_propagator(|p| p.fields().map(str::to_owned).collect());
    fields.sort();
    assert_eq!(fields, ["baggage", "traceparent", "tracestate"]);

    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03";
    // Keys Level 2 allows and opentelemetry's own propagator refuses (and
    // the whole list with them): 14 characters after `@`, a trailing `@`.
    let ts = "t@abcdefghijklmn=1,foo@=2,congo=t61rcWkgMzE";
    let incoming: HashMap<String, String> = [
        ("traceparent", tp),
        ("tracestate", ts),
        ("baggage", "user=ada"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&incoming));
    assert_eq!(cx.span().span_context().trace_flags().to_u8(), 0x03);
    assert_eq!(
        cx.baggage().get("user").map(|v| v.as_str().to_owned()),
        Some("ada".to_owned())
    );
    let mut out = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut out));
    assert_eq!(out["traceparent"], tp);
    assert_eq!(out["tracestate"], ts);
    assert_eq!(out["baggage"], "user=ada");
}
