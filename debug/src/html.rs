//! The page: one server-rendered HTML document, no external asset, no
//! script. Every value that came from a request (routes, IDs, span names and
//! attributes, header values, rule text) goes through [`esc`].

use std::fmt::Write;
use std::time::SystemTime;

use opentelemetry::trace::Status as SpanStatus;
use serde_json::Value;

use crate::traces::{self, Dependency, TraceSummary};
use crate::view::{self, RecorderView, View};

/// `s` escaped for HTML text and quoted attribute values: `&`, `<`, `>`,
/// `"` and `'` become entities, and every control character is shown as
/// `\u{…}` text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The page's own URL under `base` (where the router is mounted).
pub(crate) fn page_url(base: &str) -> String {
    if base.is_empty() {
        "/".to_owned()
    } else {
        base.to_owned()
    }
}

/// A percent-encoded query value (for links).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn num(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(f) => format!("{f:.digits$}"),
        None => "–".to_owned(),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |f| format!("{:.1}%", f * 100.0))
}

fn ago(t: SystemTime) -> String {
    match SystemTime::now().duration_since(t) {
        Ok(d) => format!("{} ago", view::duration_text(d)),
        Err(_) => "now".to_owned(),
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}\
header{background:#1d2430;color:#fff;padding:12px 20px;display:flex;gap:24px;align-items:center;flex-wrap:wrap}\
header h1{font-size:18px;margin:0}header a{color:#9cc3ff}main{padding:8px 20px 40px}\
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:14px 0;padding:10px 14px}\
h2{font-size:16px;margin:4px 0 10px}table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}\
th{font-weight:600;color:#4a5466}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.state{font-weight:600}.st-closed,.st-armed{color:#18794e}.st-open,.st-forced_open,.st-killed,.st-refused{color:#c62828}\
.st-half_open,.st-paused,.st-expired{color:#b26a00}.err{color:#c62828}.muted{color:#6b7585}\
.wf{position:relative;height:16px;background:#f0f2f5;min-width:200px}.bar{position:absolute;top:2px;height:12px;background:#4a8cff;border-radius:2px}\
.bar.client{background:#8a63d2}.bar.error{background:#e53935}form.inline{display:inline}\
input[type=text],input[type=password]{padding:3px 6px}code{font-size:12px}";

/// Renders the page; `base` is the path the surface is mounted at ("" at
/// the root).
pub(crate) fn page(view: &View, base: &str) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let service = esc(&view.service);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>telltale · {service}</title>\
<style>{STYLE}</style></head><body><header><h1>telltale · <span id=\"service\">{service}</span></h1>\
<a href=\"#red\">RED</a><a href=\"#breakers\">breakers</a><a href=\"#bulkheads\">bulkheads</a>\
<a href=\"#chaos\">chaos</a><a href=\"#traces\">traces</a><a href=\"#dependencies\">dependencies</a>\
<a href=\"{base}/api/overview\">JSON</a>\
<form class=\"inline\" method=\"get\" action=\"{page}\"><input type=\"text\" name=\"q\" size=\"36\" \
placeholder=\"correlation ID or trace ID\" aria-label=\"lookup\"> <button>find trace</button></form></header><main>",
        base = esc(base),
        page = esc(&page_url(base)),
    );
    if let Some(r) = &view.recorder {
        lookup(&mut h, r, base);
    }
    red(&mut h, &view.red);
    breakers(&mut h, view);
    bulkheads(&mut h, view);
    chaos(&mut h, view, base);
    match &view.recorder {
        Some(r) => {
            trace_lists(&mut h, r, base);
            dependencies(&mut h, &view.service, &r.dependencies);
        }
        None => h.push_str(
            "<section id=\"traces\"><h2>Traces</h2><p class=\"muted\">No flight recorder: give the \
surface <code>TelemetryGuard::flight_recorder()</code> (telemetry keeps one when no OTLP endpoint is set, \
or with <code>TELLTALE_FLIGHT_RECORDER_CAPACITY</code>).</p></section>",
        ),
    }
    h.push_str("</main></body></html>");
    h
}

fn red(h: &mut String, red: &Value) {
    h.push_str("<section id=\"red\"><h2>RED per route</h2>");
    if red["recorder"] != Value::Bool(true) {
        h.push_str(
            "<p class=\"muted\">No Prometheus recorder: give the surface the handle of \
<code>install_prometheus</code> to see rate, errors and latency per route.</p></section>",
        );
        return;
    }
    let window = red["window_seconds"].as_f64().unwrap_or(0.0);
    let _ = write!(
        h,
        "<p class=\"muted\">Rates over the last {} s{}; latency over the same window (since start when the route was idle).</p>",
        window.round(),
        if red["since_start"] == Value::Bool(true) {
            " (since the surface started: first read)"
        } else {
            ""
        }
    );
    h.push_str(
        "<table id=\"red-table\"><tr><th>route</th><th>req/s</th><th>requests</th><th>errors</th>\
<th>error %</th><th>p50 ms</th><th>p99 ms</th><th>total</th></tr>",
    );
    let routes = red["routes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if routes.is_empty() {
        h.push_str("<tr><td colspan=\"8\" class=\"muted\">no requests yet</td></tr>");
    }
    for r in routes {
        let errors = r["errors"].as_f64().unwrap_or(0.0);
        let _ = write!(
            h,
            "<tr data-route=\"{route}\"><td><code>{route}</code></td><td class=\"n\">{rate}</td><td class=\"n\">{req}</td>\
<td class=\"n{cls}\">{errors}</td><td class=\"n\">{ratio}</td><td class=\"n\">{p50}</td><td class=\"n\">{p99}</td><td class=\"n\">{total}</td></tr>",
            route = esc(r["route"].as_str().unwrap_or("")),
            rate = num(&r["rate_per_second"], 2),
            req = num(&r["requests"], 0),
            cls = if errors > 0.0 { " err" } else { "" },
            errors = num(&r["errors"], 0),
            ratio = pct(r["error_ratio"].as_f64()),
            p50 = num(&r["p50_ms"], 1),
            p99 = num(&r["p99_ms"], 1),
            total = num(&r["total_requests"], 0),
        );
    }
    h.push_str("</table></section>");
}

fn breakers(h: &mut String, view: &View) {
    h.push_str("<section id=\"breakers\"><h2>Circuit breakers</h2>");
    if view.breakers.is_empty() {
        h.push_str(
            "<p class=\"muted\">None registered (the presets register theirs; \
<code>telltale::debug::register_breaker</code> for others).</p></section>",
        );
        return;
    }
    h.push_str(
        "<table><tr><th>name</th><th>state</th><th>window</th><th>calls</th><th>failure rate</th>\
<th>slow-call rate</th><th>thresholds</th><th>transitions (oldest first)</th></tr>",
    );
    for b in &view.breakers {
        let snap = b.snapshot();
        let settings = b.settings();
        let rates = b.rates();
        let state = snap.state.as_str();
        let _ = write!(
            h,
            "<tr class=\"breaker\" data-name=\"{name}\" data-state=\"{state}\"><td><code>{name}</code></td>\
<td class=\"state st-{state}\">{state}</td><td>{window}</td><td class=\"n\">{calls} ({failed} failed, {slow} slow)</td>\
<td class=\"n\">{fr}</td><td class=\"n\">{sr}</td><td>{ft} failures, {st} slow (≥ {sd}), min {min} calls</td><td>",
            name = esc(b.name()),
            window = esc(&view::window_text(settings.window)),
            calls = snap.calls,
            failed = snap.failed,
            slow = snap.slow,
            fr = pct(rates.map(|r| r.0)),
            sr = pct(rates.map(|r| r.1)),
            ft = pct(Some(settings.failure_rate_threshold)),
            st = pct(Some(settings.slow_call_rate_threshold)),
            sd = view::duration_text(settings.slow_call_duration),
            min = settings.minimum_calls,
        );
        let log = b.transitions();
        if log.is_empty() {
            h.push_str("<span class=\"muted\">none</span>");
        } else {
            h.push_str("<ol class=\"timeline\">");
            for t in &log {
                let _ = write!(
                    h,
                    "<li><span class=\"muted\">{ago}</span> <span class=\"st-{from}\">{from}</span> → \
<span class=\"st-{to}\">{to}</span>: {reason}{corr}</li>",
                    ago = ago(t.at),
                    from = t.from.as_str(),
                    to = t.to.as_str(),
                    reason = esc(&t.reason.to_string()),
                    corr = t.correlation_id.as_ref().map_or(String::new(), |c| format!(
                        " <span class=\"muted\">(correlation ID <code>{}</code>)</span>",
                        esc(c.as_str())
                    )),
                );
            }
            h.push_str("</ol>");
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</table></section>");
}

fn bulkheads(h: &mut String, view: &View) {
    h.push_str("<section id=\"bulkheads\"><h2>Bulkheads</h2>");
    if view.bulkheads.is_empty() {
        h.push_str("<p class=\"muted\">None registered.</p></section>");
        return;
    }
    h.push_str("<table><tr><th>name</th><th>in use / limit</th><th>waiting</th><th>rejected</th><th>max wait</th></tr>");
    for b in &view.bulkheads {
        let _ = write!(
            h,
            "<tr class=\"bulkhead\" data-name=\"{name}\"><td><code>{name}</code></td><td class=\"n\">{used} / {limit}</td>\
<td class=\"n\">{waiting}</td><td class=\"n{cls}\">{rejected}</td><td>{wait}</td></tr>",
            name = esc(b.name()),
            used = b.in_use(),
            limit = b.max_concurrent(),
            waiting = b.waiting(),
            cls = if b.rejected() > 0 { " err" } else { "" },
            rejected = b.rejected(),
            wait = view::duration_text(b.max_wait()),
        );
    }
    h.push_str("</table></section>");
}

fn chaos(h: &mut String, view: &View, base: &str) {
    h.push_str("<section id=\"chaos\"><h2>Chaos</h2>");
    if view.injectors.is_empty() {
        h.push_str("<p class=\"muted\">No chaos injector armed (<code>TELLTALE_CHAOS</code> unset).</p></section>");
        return;
    }
    for i in &view.injectors {
        let handle = &i.handle;
        let status = view::status_text(handle.status());
        let ttl = handle.ttl_left().map_or_else(
            || "no TTL".to_owned(),
            |d| format!("TTL left {}", view::duration_text(d)),
        );
        let _ = write!(
            h,
            "<div class=\"injector\" data-label=\"{label}\" data-status=\"{status}\"><h3><code>{label}</code>: \
<span class=\"state st-{status}\" id=\"chaos-status\">{status}</span> <span class=\"muted\">{ttl}, {active} faults in progress</span></h3>",
            label = esc(&i.label),
            active = handle.active(),
        );
        if let Some(reason) = handle.refusal() {
            let _ = write!(h, "<p class=\"err\">refused: {}</p>", esc(reason));
        }
        h.push_str("<table><tr><th>rule</th><th>matcher</th><th>faults</th><th>fired</th></tr>");
        for r in handle.rule_stats() {
            let _ = write!(
                h,
                "<tr><td>{id}</td><td><code>{m}</code></td><td><code>{rule}</code></td><td class=\"n\">{fired}{limit}</td></tr>",
                id = esc(&r.id),
                m = esc(&r.matcher),
                rule = esc(&r.rule),
                fired = r.fired,
                limit = r.limit.map_or(String::new(), |l| format!(" / {l}")),
            );
        }
        h.push_str("</table>");
        if view.writable {
            for action in ["pause", "resume", "kill"] {
                let _ = write!(
                    h,
                    "<form class=\"inline\" method=\"post\" action=\"{base}/api/chaos/{action}\">\
<input type=\"hidden\" name=\"target\" value=\"{label}\"><input type=\"password\" name=\"token\" \
placeholder=\"token\" aria-label=\"token\" size=\"10\"> <button id=\"chaos-{action}\">{action}</button></form> ",
                    base = esc(base),
                    label = esc(&i.label),
                );
            }
        } else {
            h.push_str("<p class=\"muted\">Read-only: set <code>TELLTALE_DEBUG_TOKEN</code> to pause, resume or kill from here.</p>");
        }
        h.push_str("</div>");
    }
    h.push_str("</section>");
}

fn trace_link(base: &str, t: &TraceSummary) -> String {
    let id = t.trace_id.to_string();
    format!(
        "<a href=\"{}?q={}#lookup\"><code>{}</code></a>",
        esc(&page_url(base)),
        enc(&id),
        esc(&id)
    )
}

fn trace_table(h: &mut String, id: &str, title: &str, list: &[TraceSummary], base: &str) {
    let _ = write!(
        h,
        "<h3>{title}</h3><table id=\"{id}\"><tr><th>root span</th><th>service</th><th>ms</th>\
<th>spans</th><th>correlation ID</th><th>trace</th><th>ended</th></tr>"
    );
    if list.is_empty() {
        h.push_str("<tr><td colspan=\"7\" class=\"muted\">none</td></tr>");
    }
    for t in list {
        let _ = write!(
            h,
            "<tr><td class=\"{cls}\">{name}</td><td>{svc}</td><td class=\"n\">{ms:.1}</td><td class=\"n\">{spans}</td>\
<td><code>{corr}</code></td><td>{link}</td><td class=\"muted\">{ago}</td></tr>",
            cls = if t.failed { "err" } else { "" },
            name = esc(t.root.name()),
            svc = esc(t.root.service_name().unwrap_or("")),
            ms = traces::ms(t.root.duration()),
            spans = t.spans,
            corr = esc(t.correlation_id.as_deref().unwrap_or("")),
            link = trace_link(base, t),
            ago = ago(t.root.end_time()),
        );
    }
    h.push_str("</table>");
}

fn trace_lists(h: &mut String, r: &RecorderView, base: &str) {
    let _ = write!(
        h,
        "<section id=\"traces\"><h2>Traces</h2><p class=\"muted\">Flight recorder: {} of {} spans kept, {} recorded since start.</p>",
        r.len, r.capacity, r.recorded
    );
    trace_table(h, "recent", "Recent", &r.lists.recent, base);
    trace_table(h, "slowest", "Slowest", &r.lists.slowest, base);
    trace_table(h, "failed", "Failed", &r.lists.failed, base);
    h.push_str("</section>");
}

fn lookup(h: &mut String, r: &RecorderView, _base: &str) {
    let Some((query, spans)) = &r.lookup else {
        return;
    };
    let _ = write!(
        h,
        "<section id=\"lookup\"><h2>Lookup: <code id=\"lookup-query\">{}</code></h2>",
        esc(query)
    );
    if spans.is_empty() {
        h.push_str(
            "<p class=\"muted\" id=\"lookup-none\">No span in the flight recorder has this \
correlation ID or trace ID.</p></section>",
        );
        return;
    }
    let _ = write!(
        h,
        "<p class=\"muted\">{} spans</p><table id=\"waterfall\"><tr><th>span</th><th>service</th>\
<th>kind</th><th>ms</th><th>status</th><th style=\"width:45%\">timeline</th></tr>",
        spans.len()
    );
    for row in traces::waterfall(spans) {
        let s = &row.span;
        let kind = traces::kind(s.kind());
        let (status, failed) = match s.status() {
            SpanStatus::Error { description } => (format!("error: {description}"), true),
            SpanStatus::Ok => ("ok".to_owned(), false),
            SpanStatus::Unset => (String::new(), false),
        };
        let mut name = s.name().to_owned();
        if kind == "client" {
            name = format!("{name} → {}", traces::target(s));
        }
        let _ = write!(
            h,
            "<tr class=\"span\" data-trace-id=\"{tid}\" data-correlation-id=\"{corr}\"><td style=\"padding-left:{pad}px\">{name}</td>\
<td>{svc}</td><td>{kind}</td><td class=\"n\">{ms:.2}</td><td class=\"{cls}\">{status}</td>\
<td><div class=\"wf\"><div class=\"bar {kind}{ebar}\" style=\"left:{left:.2}%;width:{width:.2}%\"></div></div></td></tr>",
            tid = esc(&s.trace_id().to_string()),
            corr = esc(s.correlation_id().as_deref().unwrap_or("")),
            pad = 8 + 16 * row.depth.min(20),
            name = esc(&name),
            svc = esc(s.service_name().unwrap_or("")),
            ms = traces::ms(s.duration()),
            cls = if failed { "err" } else { "" },
            status = esc(&status),
            ebar = if failed { " error" } else { "" },
            left = row.offset * 100.0,
            width = (row.width * 100.0).max(0.3),
        );
    }
    h.push_str("</table></section>");
}

fn dependencies(h: &mut String, service: &str, deps: &[Dependency]) {
    h.push_str("<section id=\"dependencies\"><h2>Dependency map</h2>");
    if deps.is_empty() {
        h.push_str("<p class=\"muted\">No CLIENT span in the flight recorder: this service has called nothing yet \
(or its clients are not wrapped in <code>ClientStack</code>).</p></section>");
        return;
    }
    // Sources on the left, targets on the right, one row per edge.
    let mut sources: Vec<&str> = Vec::new();
    for d in deps {
        if !sources.contains(&d.from.as_str()) {
            sources.push(&d.from);
        }
    }
    let row = 56.0;
    let height = (deps.len().max(sources.len()) as f64) * row + 20.0;
    let _ = write!(
        h,
        "<svg id=\"depmap\" xmlns=\"http://www.w3.org/2000/svg\" width=\"820\" height=\"{height}\" \
viewBox=\"0 0 820 {height}\" role=\"img\" aria-label=\"dependency map of {}\" font-size=\"12\">",
        esc(service)
    );
    let src_y = |i: usize| 10.0 + i as f64 * row;
    for (i, d) in deps.iter().enumerate() {
        let si = sources.iter().position(|s| *s == d.from).unwrap_or(0);
        let y1 = src_y(si) + 20.0;
        let y2 = 10.0 + i as f64 * row + 20.0;
        let color = if d.errors > 0 { "#c62828" } else { "#4a5466" };
        let _ = write!(
            h,
            "<line x1=\"200\" y1=\"{y1}\" x2=\"560\" y2=\"{y2}\" stroke=\"{color}\" stroke-width=\"{w:.1}\"/>\
<polygon points=\"560,{y2} 550,{a} 550,{b}\" fill=\"{color}\"/>\
<text x=\"380\" y=\"{ty}\" text-anchor=\"middle\" fill=\"{color}\">{calls} calls · {errors} errors · p99 {p99:.1} ms</text>\
<rect x=\"560\" y=\"{ry}\" width=\"250\" height=\"40\" rx=\"6\" fill=\"#eef3ff\" stroke=\"#4a8cff\"/>\
<text x=\"685\" y=\"{ty2}\" text-anchor=\"middle\">{to}</text>",
            w = 1.0 + (d.calls as f64).log10().max(0.0),
            a = y2 - 5.0,
            b = y2 + 5.0,
            ty = (y1 + y2) / 2.0 - 6.0,
            calls = d.calls,
            errors = d.errors,
            p99 = d.p99_ms,
            ry = y2 - 20.0,
            ty2 = y2 + 4.0,
            to = esc(&d.to),
        );
    }
    for (i, s) in sources.iter().enumerate() {
        let y = src_y(i);
        let _ = write!(
            h,
            "<rect x=\"10\" y=\"{y}\" width=\"190\" height=\"40\" rx=\"6\" fill=\"#1d2430\"/>\
<text x=\"105\" y=\"{ty}\" text-anchor=\"middle\" fill=\"#fff\">{name}</text>",
            ty = y + 24.0,
            name = esc(s),
        );
    }
    h.push_str("</svg><table><tr><th>from</th><th>to</th><th>calls</th><th>errors</th><th>p99 ms</th></tr>");
    for d in deps {
        let _ = write!(
            h,
            "<tr class=\"dependency\"><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"n\">{:.1}</td></tr>",
            esc(&d.from),
            esc(&d.to),
            d.calls,
            if d.errors > 0 { " err" } else { "" },
            d.errors,
            d.p99_ms
        );
    }
    h.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_nothing_raw() {
        assert_eq!(
            esc("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("a\"b&c"), "a&quot;b&amp;c");
        assert_eq!(
            esc("bell\u{7}\r\n\u{1b}[31m"),
            "bell\\u{7}\\u{d}\\u{a}\\u{1b}[31m"
        );
        assert_eq!(enc("a b/<>"), "a%20b%2F%3C%3E");
    }
}
