//! The report: facts computed from what the services recorded (flight
//! recorder spans, breaker and bulkhead events, `/metrics`), as JSON, and
//! their rendering for a terminal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::Role;

/// A phase of the incident.
#[derive(Clone, Debug)]
pub(crate) struct Phase {
    pub(crate) name: String,
    /// Since the start of the load.
    pub(crate) start_ms: u64,
    pub(crate) rules: String,
}

/// What the load generator saw.
#[derive(Clone, Debug)]
pub(crate) struct LoadSummary {
    pub(crate) start_unix_ms: u64,
    pub(crate) duration_ms: u64,
    pub(crate) sent: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) rejected: u64,
    pub(crate) phases: Vec<Phase>,
    /// One `{correlation_id, phase, outcome, latency_ms}` per request.
    pub(crate) records: Vec<Value>,
}

/// What one service recorded.
#[derive(Clone, Debug)]
pub(crate) struct ServiceData {
    pub(crate) role: Role,
    pub(crate) port: u16,
    /// `RecordedSpan::to_json()` objects.
    pub(crate) spans: Vec<Value>,
    /// `/debug/events`.
    pub(crate) events: Value,
    /// `/metrics` (Prometheus text).
    pub(crate) metrics: String,
}

/// Everything collected after the load.
#[derive(Clone, Debug)]
pub(crate) struct Collected {
    pub(crate) services: Vec<ServiceData>,
    pub(crate) load: LoadSummary,
    /// The slowest trace's spans, from every service, found by correlation ID.
    pub(crate) slowest: Vec<Value>,
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].get(key)
}

fn is_kind(span: &Value, kind: &str) -> bool {
    span["kind"] == kind
}

fn service_of(span: &Value) -> &str {
    span["service.name"].as_str().unwrap_or("?")
}

fn duration_ms(span: &Value) -> f64 {
    span["duration_ms"].as_f64().unwrap_or(0.0)
}

fn is_error(span: &Value) -> bool {
    span["status"] == "error"
}

/// A span tagged by telltale-chaos: the `chaos fault injected` event, or the
/// `x-telltale-chaos` response header captured on the span.
pub(crate) fn is_chaos_tagged(span: &Value) -> bool {
    let event = span["events"].as_array().is_some_and(|events| {
        events.iter().any(|e| {
            e["name"] == "chaos fault injected" || e["attributes"].get("chaos.injected").is_some()
        })
    });
    event
        || span["attributes"].as_object().is_some_and(|a| {
            a.keys()
                .any(|k| k.starts_with("chaos.") || k.ends_with("x-telltale-chaos"))
        })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn http_status(span: &Value) -> Option<i64> {
    attr(span, "http.response.status_code").and_then(Value::as_i64)
}

/// The correlation ID of the slowest checkout request whose trace reached
/// all four services (or of the slowest one at all).
pub(crate) fn slowest_correlation_id(c: &Collected) -> Option<String> {
    let mut services_of_trace: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for s in c.services.iter().flat_map(|s| &s.spans) {
        if let Some(t) = s["trace_id"].as_str() {
            services_of_trace
                .entry(t)
                .or_default()
                .insert(service_of(s));
        }
    }
    let roots: Vec<&Value> = c
        .services
        .iter()
        .filter(|s| s.role == Role::Checkout)
        .flat_map(|s| &s.spans)
        .filter(|s| is_kind(s, "server") && attr(s, "correlation_id").is_some())
        .collect();
    let full = |s: &&Value| {
        s["trace_id"]
            .as_str()
            .and_then(|t| services_of_trace.get(t))
            .is_some_and(|set| set.len() == Role::ALL.len())
    };
    let by_duration = |a: &&&Value, b: &&&Value| duration_ms(a).total_cmp(&duration_ms(b));
    let best = roots
        .iter()
        .filter(|s| full(s))
        .max_by(by_duration)
        .or_else(|| roots.iter().max_by(by_duration))?;
    attr(best, "correlation_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn metrics_requests(text: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, rest) = l.split_once(['{', ' '])?;
            // OpenTelemetry names (histogram counts), or the classic ones.
            let server = (name.ends_with("_count")
                && (name.starts_with("http_server_request_duration")
                    || name.starts_with("rpc_server_")))
                || name.ends_with("http_requests_total")
                || name.ends_with("grpc_server_handled_total");
            let value = rest.rsplit(' ').next()?;
            server.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum::<f64>() as u64
}

/// The report's facts.
pub(crate) fn build(c: &Collected) -> Value {
    let load = &c.load;
    let secs = (load.duration_ms as f64 / 1000.0).max(0.001);
    let all: Vec<&Value> = c.services.iter().flat_map(|s| &s.spans).collect();
    let port_to_service: HashMap<u16, &str> =
        c.services.iter().map(|s| (s.port, s.role.name())).collect();

    // RED per service, from its SERVER spans.
    let mut services = serde_json::Map::new();
    for s in &c.services {
        let server: Vec<&Value> = s.spans.iter().filter(|x| is_kind(x, "server")).collect();
        let mut d: Vec<f64> = server.iter().map(|x| duration_ms(x)).collect();
        d.sort_by(f64::total_cmp);
        let errors = server.iter().filter(|x| is_error(x)).count();
        services.insert(
            s.role.name().to_owned(),
            json!({
                "requests": server.len(),
                "rate_per_s": server.len() as f64 / secs,
                "errors": errors,
                "error_pct": if server.is_empty() { 0.0 } else { 100.0 * errors as f64 / server.len() as f64 },
                "p50_ms": percentile(&d, 0.50),
                "p99_ms": percentile(&d, 0.99),
                "metrics_requests": metrics_requests(&s.metrics),
                "spans_recorded": s.events["spans_recorded"],
            }),
        );
    }

    // Breaker and bulkhead, from fraud-detection's events.
    let fraud = c.services.iter().find(|s| s.role == Role::FraudDetection);
    let transitions: Vec<Value> = fraud
        .and_then(|f| f.events["breaker_transitions"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.get("to").is_some())
        .map(|t| {
            let at = t["at_unix_ms"].as_u64().unwrap_or(0);
            json!({
                "at_s": (at.saturating_sub(load.start_unix_ms)) as f64 / 1000.0,
                "from": t["from"], "to": t["to"], "reason": t["reason"],
                "correlation_id": t["correlation_id"],
            })
        })
        .collect();
    let opened_at = transitions.iter().position(|t| t["to"] == "open");
    let closed_again =
        opened_at.is_some_and(|i| transitions[i..].iter().any(|t| t["to"] == "closed"));
    let events = fraud.map(|f| f.events.clone()).unwrap_or(Value::Null);

    // Injected faults vs real errors.
    let mut tagged_by_service: BTreeMap<&str, u64> = BTreeMap::new();
    let mut tagged_traces: BTreeSet<&str> = BTreeSet::new();
    let mut tagged_errors = 0u64;
    for s in &all {
        if is_chaos_tagged(s) {
            *tagged_by_service.entry(service_of(s)).or_default() += 1;
            if let Some(t) = s["trace_id"].as_str() {
                tagged_traces.insert(t);
            }
            if is_error(s) {
                tagged_errors += 1;
            }
        }
    }
    // The external API never fails by itself: every error response there
    // (any status of 400 and above: `status(503)`, `status(500)`, …) was
    // injected, and must carry the chaos tag. Counted by the status the
    // spans recorded, not by the status the default rules inject.
    let mut injected_statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut untagged_errors = 0u64;
    for s in all.iter().filter(|s| {
        service_of(s) == Role::ExternalFraudApi.name()
            && is_kind(s, "server")
            && http_status(s).is_some_and(|code| code >= 400)
    }) {
        if is_chaos_tagged(s) {
            let code = http_status(s).unwrap_or(0);
            *injected_statuses.entry(code.to_string()).or_default() += 1;
        } else {
            untagged_errors += 1;
        }
    }
    // Failed checkout requests by cause.
    let (mut caused_by_chaos, mut rejected, mut real) = (0u64, 0u64, 0u64);
    let mut real_types: BTreeMap<String, u64> = BTreeMap::new();
    for s in all
        .iter()
        .filter(|s| service_of(s) == Role::Checkout.name() && is_kind(s, "server") && is_error(s))
    {
        if s["attributes"]
            .as_object()
            .is_some_and(|a| a.keys().any(|k| k.ends_with("x-rejected-by")))
        {
            rejected += 1;
        } else if s["trace_id"]
            .as_str()
            .is_some_and(|t| tagged_traces.contains(t))
        {
            caused_by_chaos += 1;
        } else {
            real += 1;
            let ty = attr(s, "error.type")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            *real_types.entry(ty.to_owned()).or_default() += 1;
        }
    }

    // The dependency map, from CLIENT spans and the SERVER spans they caused.
    let server_by_parent: HashMap<&str, &Value> = all
        .iter()
        .filter(|s| is_kind(s, "server"))
        .filter_map(|s| s["parent_span_id"].as_str().map(|p| (p, *s)))
        .collect();
    // (caller, callee, protocol) → (first call's start, calls, errors,
    // durations); listed in call order (by each edge's first call).
    type Edge = (u64, u64, u64, Vec<f64>);
    let mut edges: HashMap<(String, String, String), Edge> = HashMap::new();
    for s in all.iter().filter(|s| is_kind(s, "client")) {
        let callee = callee_of(s, &server_by_parent, &port_to_service);
        let protocol = if attr(s, "rpc.system").is_some() {
            "grpc"
        } else {
            "http"
        };
        let e = edges
            .entry((service_of(s).to_owned(), callee, protocol.to_owned()))
            .or_insert((u64::MAX, 0, 0, Vec::new()));
        e.0 = e.0.min(start_ns(s));
        e.1 += 1;
        if is_error(s) {
            e.2 += 1;
        }
        e.3.push(duration_ms(s));
    }
    let mut edges: Vec<_> = edges.into_iter().collect();
    edges.sort_by(|a, b| (a.1.0, &a.0).cmp(&(b.1.0, &b.0)));
    let dependencies: Vec<Value> = edges
        .into_iter()
        .map(|((from, to, protocol), (_, calls, errors, mut d))| {
            d.sort_by(f64::total_cmp);
            json!({"from": from, "to": to, "protocol": protocol, "calls": calls,
                   "errors": errors, "p99_ms": percentile(&d, 0.99)})
        })
        .collect();

    let cascade = cascade(&all, load, &server_by_parent, &port_to_service);

    json!({
        "load": {
            "duration_s": secs,
            "sent": load.sent,
            "succeeded": load.succeeded,
            "failed": load.failed,
            "rejected": load.rejected,
            "accounted": load.sent == load.succeeded + load.failed + load.rejected,
            "phases": load.phases.iter().enumerate().map(|(i, p)| {
                let mine: Vec<&Value> = load.records.iter().filter(|r| r["phase"] == i).collect();
                let count = |o: &str| mine.iter().filter(|r| r["outcome"] == o).count();
                json!({"name": p.name, "start_s": p.start_ms as f64 / 1000.0, "rules": p.rules,
                       "sent": mine.len(), "succeeded": count("succeeded"),
                       "failed": count("failed"), "rejected": count("rejected")})
            }).collect::<Vec<_>>(),
        },
        "services": services,
        "breaker": {
            "name": "external-fraud-api",
            "opened": opened_at.is_some(),
            "closed_again": closed_again,
            "final_state": events["breaker_state"],
            "transitions": transitions,
            "rejections": events["breaker_rejections"],
        },
        "bulkhead": {
            "name": "external-fraud-api",
            "rejections": events["bulkhead_rejections"],
        },
        "chaos": {
            "tagged_spans": tagged_by_service.values().sum::<u64>(),
            "tagged_spans_by_service": tagged_by_service,
            "tagged_error_spans": tagged_errors,
            "injected_error_responses": injected_statuses.values().sum::<u64>(),
            "injected_statuses": injected_statuses,
            "untagged_error_responses": untagged_errors,
            "failed_checkouts": {
                "caused_by_injected_faults": caused_by_chaos,
                "rejected_by_resilience": rejected,
                "real_errors": real,
                "real_error_types": real_types,
            },
        },
        "dependencies": dependencies,
        "cascade": cascade,
        "slowest_trace": slowest_trace(&c.slowest, &port_to_service),
    })
}

fn start_ns(span: &Value) -> u64 {
    span["start_time_unix_nano"].as_u64().unwrap_or(u64::MAX)
}

fn end_ns(span: &Value) -> u64 {
    span["end_time_unix_nano"].as_u64().unwrap_or(u64::MAX)
}

/// The service a CLIENT span called: the service of the SERVER span it
/// caused, else the service listening on its `server.port`, else
/// `address:port`.
fn callee_of(
    span: &Value,
    server_by_parent: &HashMap<&str, &Value>,
    port_to_service: &HashMap<u16, &str>,
) -> String {
    span["span_id"]
        .as_str()
        .and_then(|id| server_by_parent.get(id))
        .map(|srv| service_of(srv).to_owned())
        .or_else(|| {
            let port = attr(span, "server.port")?.as_i64()?;
            port_to_service
                .get(&u16::try_from(port).ok()?)
                .map(|n| (*n).to_owned())
        })
        .unwrap_or_else(|| {
            format!(
                "{}:{}",
                attr(span, "server.address")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                attr(span, "server.port").map_or(String::new(), ToString::to_string)
            )
        })
}

/// Where the cascade started: the first failed outbound call (by the time
/// it failed) names the dependency, and each service's first failed
/// request shows how the failure travelled up, in the order it arrived.
fn cascade(
    all: &[&Value],
    load: &LoadSummary,
    server_by_parent: &HashMap<&str, &Value>,
    port_to_service: &HashMap<u16, &str>,
) -> Value {
    let at_s = |ns: u64| (ns / 1_000_000).saturating_sub(load.start_unix_ms) as f64 / 1000.0;
    let Some(first) = all
        .iter()
        .filter(|s| is_kind(s, "client") && is_error(s))
        .min_by_key(|s| end_ns(s))
    else {
        return Value::Null;
    };
    let mut first_failures: Vec<(u64, &str)> = Vec::new();
    for role in Role::ALL {
        if let Some(t) = all
            .iter()
            .filter(|s| service_of(s) == role.name() && is_kind(s, "server") && is_error(s))
            .map(|s| end_ns(s))
            .min()
        {
            first_failures.push((t, role.name()));
        }
    }
    first_failures.sort();
    json!({
        "origin": callee_of(first, server_by_parent, port_to_service),
        "first_failed_call": {
            "from": service_of(first),
            "at_s": at_s(end_ns(first)),
            "error_type": attr(first, "error.type"),
        },
        "first_failure_by_service": first_failures.iter().map(|(t, name)| json!({
            "service": name, "at_s": at_s(*t),
        })).collect::<Vec<_>>(),
    })
}

fn slowest_trace(spans: &[Value], port_to_service: &HashMap<u16, &str>) -> Value {
    // The same span can come from several recorders only once (each span is
    // recorded by the process that produced it), but dedupe to be safe.
    let mut seen = BTreeSet::new();
    let mut spans: Vec<&Value> = spans
        .iter()
        .filter(|s| seen.insert(s["span_id"].as_str().unwrap_or("").to_owned()))
        .collect();
    spans.sort_by_key(|s| s["start_time_unix_nano"].as_u64().unwrap_or(0));
    let trace_ids: BTreeSet<&str> = spans
        .iter()
        .filter_map(|s| s["trace_id"].as_str())
        .collect();
    let services: BTreeSet<&str> = spans.iter().map(|s| service_of(s)).collect();
    let ids: BTreeSet<&str> = spans
        .iter()
        .filter(|s| is_kind(s, "server"))
        .filter_map(|s| attr(s, "correlation_id").and_then(Value::as_str))
        .collect();
    let start = spans
        .iter()
        .filter_map(|s| s["start_time_unix_nano"].as_u64())
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .filter_map(|s| s["end_time_unix_nano"].as_u64())
        .max()
        .unwrap_or(0);
    // Depth: parent chain length within the trace.
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .filter_map(|s| s["span_id"].as_str().map(|id| (id, *s)))
        .collect();
    let depth = |s: &Value| {
        let mut d = 0;
        let mut cur = s["parent_span_id"].as_str();
        while let Some(p) = cur.and_then(|p| by_id.get(p)) {
            d += 1;
            cur = p["parent_span_id"].as_str();
            if d > 32 {
                break;
            }
        }
        d
    };
    // Where the time went: each span's own time (minus its children's), in
    // call order (the order in which each part first appears).
    let mut own: Vec<(&str, f64)> = Vec::new();
    for s in &spans {
        let id = s["span_id"].as_str().unwrap_or("");
        let children: f64 = spans
            .iter()
            .filter(|c| c["parent_span_id"].as_str() == Some(id))
            .map(|c| duration_ms(c))
            .sum();
        let key = if is_kind(s, "client") {
            "network + client"
        } else {
            service_of(s)
        };
        let ms = (duration_ms(s) - children).max(0.0);
        match own.iter_mut().find(|(k, _)| *k == key) {
            Some((_, total)) => *total += ms,
            None => own.push((key, ms)),
        }
    }
    let server_by_parent: HashMap<&str, &Value> = spans
        .iter()
        .filter(|s| is_kind(s, "server"))
        .filter_map(|s| s["parent_span_id"].as_str().map(|p| (p, *s)))
        .collect();
    // A CLIENT span's name is `{method}` (OpenTelemetry's HTTP client
    // conventions, no URL template) or the RPC: the waterfall adds where it
    // went, the called service and the route its SERVER span matched.
    let target = |s: &Value| -> Option<String> {
        if !is_kind(s, "client") {
            return None;
        }
        let callee = callee_of(s, &server_by_parent, port_to_service);
        let route = s["span_id"]
            .as_str()
            .and_then(|id| server_by_parent.get(id))
            .and_then(|srv| attr(srv, "http.route").and_then(Value::as_str))
            .filter(|_| attr(s, "rpc.system").is_none());
        Some(match route {
            Some(r) => format!("{callee} {r}"),
            None => callee,
        })
    };
    json!({
        "correlation_id": ids.iter().next(),
        "correlation_ids": ids,
        "trace_ids": trace_ids,
        "services": services,
        "duration_ms": (end.saturating_sub(start)) as f64 / 1e6,
        "time_by_service_ms": own.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "time_in_call_order": own.iter().map(|(k, v)| json!({"part": k, "ms": v})).collect::<Vec<_>>(),
        "spans": spans.iter().map(|s| json!({
            "service": service_of(s),
            "name": s["name"],
            "target": target(s),
            "kind": s["kind"],
            "depth": depth(s),
            "offset_ms": (s["start_time_unix_nano"].as_u64().unwrap_or(start).saturating_sub(start)) as f64 / 1e6,
            "duration_ms": duration_ms(s),
            "status": s["status"],
            "http_status": attr(s, "http.response.status_code"),
            "grpc_status": attr(s, "rpc.grpc.status_code"),
            "error_type": attr(s, "error.type"),
            "chaos": is_chaos_tagged(s),
        })).collect::<Vec<_>>(),
    })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The report for a terminal.
pub(crate) fn render(r: &Value) -> String {
    let mut o = String::new();
    let l = &r["load"];
    let _ = writeln!(
        o,
        "\n══ telltale demo report ══════════════════════════════════════════════════════"
    );
    let _ = writeln!(
        o,
        "\nLoad: {} requests in {:.1} s. sent {} = succeeded {} + failed {} + rejected {}  {}",
        l["sent"],
        f(&l["duration_s"]),
        l["sent"],
        l["succeeded"],
        l["failed"],
        l["rejected"],
        if l["accounted"] == true {
            "✔ every request accounted for"
        } else {
            "✘ MISMATCH"
        }
    );
    for p in l["phases"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:>5.1}s {:<9} sent {:>4}  ok {:>4}  failed {:>4}  rejected {:>4}   chaos: {}",
            f(&p["start_s"]),
            p["name"].as_str().unwrap_or(""),
            p["sent"].to_string(),
            p["succeeded"].to_string(),
            p["failed"].to_string(),
            p["rejected"].to_string(),
            p["rules"].as_str().unwrap_or("")
        );
    }

    let _ = writeln!(
        o,
        "\nRED per service (SERVER spans from each flight recorder; /metrics count alongside)"
    );
    let _ = writeln!(
        o,
        "  {:<19} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "service", "requests", "rate/s", "errors", "p50", "p99", "/metrics"
    );
    for role in Role::ALL {
        let s = &r["services"][role.name()];
        let _ = writeln!(
            o,
            "  {:<19} {:>8} {:>8.1} {:>7.1}% {:>7.1}ms {:>7.1}ms {:>9}",
            role.name(),
            s["requests"].to_string(),
            f(&s["rate_per_s"]),
            f(&s["error_pct"]),
            f(&s["p50_ms"]),
            f(&s["p99_ms"]),
            s["metrics_requests"].to_string()
        );
    }

    let b = &r["breaker"];
    let _ = writeln!(
        o,
        "\nCircuit breaker `{}` (fraud-detection → external-fraud-api): opened {}, closed again {}, {} calls rejected",
        b["name"].as_str().unwrap_or(""),
        yes(&b["opened"]),
        yes(&b["closed_again"]),
        b["rejections"]
    );
    for t in b["transitions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:>6.2}s  {:<9} → {:<9} {}{}",
            f(&t["at_s"]),
            t["from"].as_str().unwrap_or(""),
            t["to"].as_str().unwrap_or(""),
            t["reason"].as_str().unwrap_or(""),
            t["correlation_id"]
                .as_str()
                .map_or(String::new(), |c| format!("  (call {c})"))
        );
    }
    let _ = writeln!(
        o,
        "Bulkhead `{}`: {} calls rejected (no free slot)",
        r["bulkhead"]["name"].as_str().unwrap_or(""),
        r["bulkhead"]["rejections"]
    );

    let c = &r["chaos"];
    let fc = &c["failed_checkouts"];
    let statuses = c["injected_statuses"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "\nInjected faults vs real errors\n  chaos-tagged spans: {} ({}), of which errors: {}\n  injected error responses at external-fraud-api: {} ({}); error responses there without a chaos tag: {} (it never fails by itself, so 0 means every injected fault was tagged)",
        c["tagged_spans"],
        c["tagged_spans_by_service"]
            .as_object()
            .map(|m| m
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        c["tagged_error_spans"],
        c["injected_error_responses"],
        if statuses.is_empty() {
            "none".to_owned()
        } else {
            statuses
        },
        c["untagged_error_responses"]
    );
    // Real errors are listed by error.type only when there are any.
    let real_error_types = fc["real_error_types"]
        .as_object()
        .filter(|types| !types.is_empty())
        .map(|types| {
            let listed: Vec<String> = types.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!(" ({})", listed.join(", "))
        })
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "  failed checkouts: {} caused by injected faults (trace has a chaos tag), {} rejected by breaker/bulkhead, {} real errors{}",
        fc["caused_by_injected_faults"],
        fc["rejected_by_resilience"],
        fc["real_errors"],
        real_error_types
    );

    let cascade = &r["cascade"];
    if let Some(origin) = cascade["origin"].as_str() {
        let first = &cascade["first_failed_call"];
        let travelled: Vec<String> = cascade["first_failure_by_service"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{} {:.2}s",
                    s["service"].as_str().unwrap_or("?"),
                    f(&s["at_s"])
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "\nCascade: started at {origin}: {}'s call to it failed first, at {:.2}s ({}); first failures then: {}",
            first["from"].as_str().unwrap_or("?"),
            f(&first["at_s"]),
            first["error_type"].as_str().unwrap_or("error"),
            travelled.join(", ")
        );
    }

    let _ = writeln!(
        o,
        "\nDependency map, in call order (from CLIENT spans; calls include those rejected before leaving)"
    );
    for d in r["dependencies"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {:<16} ─{:<4}→ {:<19} {:>5} calls {:>5} errors  p99 {:>7.1}ms",
            d["from"].as_str().unwrap_or(""),
            d["protocol"].as_str().unwrap_or(""),
            d["to"].as_str().unwrap_or(""),
            d["calls"].to_string(),
            d["errors"].to_string(),
            f(&d["p99_ms"])
        );
    }

    let t = &r["slowest_trace"];
    let total = f(&t["duration_ms"]).max(0.001);
    let _ = writeln!(
        o,
        "\nSlowest trace: correlation ID {} — {:.1} ms, {} spans across {} services, trace {}",
        t["correlation_id"].as_str().unwrap_or("?"),
        total,
        t["spans"].as_array().map_or(0, Vec::len),
        t["services"].as_array().map_or(0, Vec::len),
        t["trace_ids"][0].as_str().unwrap_or("?")
    );
    const WIDTH: f64 = 40.0;
    for s in t["spans"].as_array().into_iter().flatten() {
        let depth = s["depth"].as_u64().unwrap_or(0) as usize;
        let label = format!(
            "{}{} {}{}",
            " ".repeat(depth),
            s["service"].as_str().unwrap_or(""),
            s["name"].as_str().unwrap_or(""),
            s["target"]
                .as_str()
                .map_or(String::new(), |t| format!(" → {t}"))
        );
        let from = (f(&s["offset_ms"]) / total * WIDTH).round() as usize;
        let len = ((f(&s["duration_ms"]) / total * WIDTH).round() as usize).max(1);
        let from = from.min(WIDTH as usize - 1);
        let len = len.min(WIDTH as usize - from);
        let bar = format!(
            "{}{}{}",
            " ".repeat(from),
            "█".repeat(len),
            " ".repeat(WIDTH as usize - from - len)
        );
        let status = match (&s["http_status"], &s["grpc_status"]) {
            (_, Value::Number(g)) => format!("grpc {g}"),
            (Value::Number(h), _) => format!("{h}"),
            _ => s["error_type"].as_str().unwrap_or("").to_owned(),
        };
        let _ = writeln!(
            o,
            "  {:<68.68} |{bar}| {:>7.1}ms {}{}",
            label,
            f(&s["duration_ms"]),
            status,
            if s["chaos"] == true { " ⚡chaos" } else { "" }
        );
    }
    let _ = write!(o, "  where the time went, in call order:");
    for part in t["time_in_call_order"].as_array().into_iter().flatten() {
        let _ = write!(
            o,
            "  {} {:.1}ms",
            part["part"].as_str().unwrap_or("?"),
            f(&part["ms"])
        );
    }
    let _ = writeln!(o);
    o
}

fn yes(v: &Value) -> &'static str {
    if v == true { "yes" } else { "NO" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let d: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&d, 0.5), 50.0);
        assert_eq!(percentile(&d, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn metrics_requests_sum_server_counts_only() {
        let text = "# TYPE x histogram\n\
            http_server_request_duration_seconds_count{http_route=\"/a\"} 3\n\
            http_server_request_duration_seconds_count{http_route=\"/b\"} 2\n\
            http_client_request_duration_seconds_count{x=\"y\"} 9\n\
            rpc_server_call_duration_seconds_count{rpc_method=\"Check\"} 4\n\
            http_server_request_duration_seconds_sum{http_route=\"/a\"} 0.5\n";
        assert_eq!(metrics_requests(text), 9);
    }

    #[test]
    fn chaos_tags_come_from_the_event_or_the_header() {
        let event = json!({"events": [{"name": "chaos fault injected", "attributes": {}}], "attributes": {}});
        let header =
            json!({"events": [], "attributes": {"http.response.header.x-telltale-chaos": "1.1"}});
        let plain = json!({"events": [{"name": "saying hello", "attributes": {}}], "attributes": {"http.route": "/"}});
        assert!(is_chaos_tagged(&event));
        assert!(is_chaos_tagged(&header));
        assert!(!is_chaos_tagged(&plain));
    }

    #[test]
    fn the_slowest_trace_is_one_tree_with_depths() {
        let span = |id: &str,
                    parent: Option<&str>,
                    service: &str,
                    kind: &str,
                    start: u64,
                    end: u64| {
            json!({"trace_id": "t", "span_id": id, "parent_span_id": parent, "service.name": service,
                   "kind": kind, "name": "x", "start_time_unix_nano": start, "end_time_unix_nano": end,
                   "duration_ms": (end - start) as f64 / 1e6, "status": "unset", "events": [],
                   "attributes": {"correlation_id": "order-1"}})
        };
        let spans = vec![
            span("b", Some("a"), "front", "client", 1_000_000, 9_000_000),
            span("a", None, "front", "server", 0, 10_000_000),
            span("c", Some("b"), "back", "server", 2_000_000, 8_000_000),
        ];
        let t = slowest_trace(&spans, &HashMap::new());
        assert_eq!(t["duration_ms"], 10.0);
        assert_eq!(t["correlation_ids"], json!(["order-1"]));
        let depths: Vec<u64> = t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["depth"].as_u64().unwrap())
            .collect();
        assert_eq!(depths, [0, 1, 2]);
        assert_eq!(t["time_by_service_ms"]["back"], 6.0);
        assert_eq!(t["time_by_service_ms"]["front"], 2.0);
        // In call order, not alphabetical: front's server span starts first.
        let parts: Vec<&str> = t["time_in_call_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["part"].as_str().unwrap())
            .collect();
        assert_eq!(parts, ["front", "network + client", "back"]);
        // The CLIENT span's label names where it went.
        let client = &t["spans"][1];
        assert_eq!(client["kind"], "client");
        assert_eq!(client["target"], "back");
    }
}
