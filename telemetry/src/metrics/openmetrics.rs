//! The OpenMetrics text exposition (1.0.0) of a Prometheus handle's output,
//! with exemplars on the histogram buckets.
//!
//! Written by hand: metrics-exporter-prometheus renders only the Prometheus
//! text format, and no crate turns that format into OpenMetrics. The
//! conversion is line by line, on the exporter's own output, so the two
//! expositions always hold the same series with the same values; what
//! changes is what OpenMetrics requires:
//!
//! - no blank lines, and `# EOF` at the end;
//! - a counter family's name has no `_total` and its samples do: the
//!   exporter's `# TYPE http_requests_total counter` becomes
//!   `# TYPE http_requests counter` over the unchanged
//!   `http_requests_total` samples. A counter whose name does not end in
//!   `_total` is written as type `unknown` under its own name, so that the
//!   series Prometheus stores keep the names they have with the text format;
//! - `# HELP` escapes `"` too;
//! - histogram bucket lines may carry an exemplar:
//!   `name_bucket{…,le="0.5"} 7 # {trace_id="…",span_id="…"} 0.42 1700000000.123`.

use std::fmt::Write as _;

use super::exemplars::{self, Exemplar};

/// The content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Converts a Prometheus text exposition (as a `PrometheusHandle` renders
/// it) to OpenMetrics, appending the exemplars telltale keeps for the
/// request-duration histograms (see the [`exemplars`](super::exemplars)
/// module).
///
/// ```
/// use telltale_telemetry::metrics::render_openmetrics;
///
/// let text = "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3\n\n";
/// assert_eq!(
///     render_openmetrics(text),
///     "# TYPE jobs counter\n# HELP jobs Jobs done.\njobs_total 3\n# EOF\n"
/// );
/// ```
pub fn render_openmetrics(text: &str) -> String {
    render_with(text, &|name, labels| exemplars::lookup(name, labels))
}

/// Labels of a series, sorted by name, without `le`.
type Labels = Vec<(String, String)>;
/// The exemplars of a series: `lookup(metric name, labels)`.
type Lookup<'a> = &'a dyn Fn(&str, &[(String, String)]) -> Vec<Exemplar>;
/// The histogram series being written and its exemplars not yet placed.
type Pending = Option<(Labels, Vec<Exemplar>)>;

/// What the current family is, as the TYPE line said.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Histogram,
    Other,
}

/// [`render_openmetrics`] with the exemplars of each series given by
/// `lookup(metric name, labels sorted by name without le)`.
pub(crate) fn render_with(text: &str, lookup: Lookup<'_>) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 8);
    // HELP comes before TYPE in the exporter's output, but its family name
    // depends on the type: held until the TYPE line.
    let mut help: Option<(String, String)> = None;
    let mut family_type = Type::Other;
    // The histogram series whose exemplars are being written: (series
    // labels, exemplars not yet placed).
    let mut pending: Pending = None;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').unwrap_or((rest, ""));
            flush_help(&mut out, &mut help);
            help = Some((name.to_owned(), escape_help(doc)));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (family, kind, t) = match kind {
                "counter" => match name.strip_suffix("_total") {
                    Some(family) if !family.is_empty() => (family, "counter", Type::Counter),
                    _ => (name, "unknown", Type::Other),
                },
                "histogram" => (name, "histogram", Type::Histogram),
                "gauge" | "summary" => (name, kind, Type::Other),
                _ => (name, "unknown", Type::Other),
            };
            family_type = t;
            pending = None;
            let _ = writeln!(out, "# TYPE {family} {kind}");
            if let Some((help_name, doc)) = help.take() {
                let help_family = if help_name == name {
                    family
                } else {
                    &help_name
                };
                let _ = writeln!(out, "# HELP {help_family} {doc}");
            }
            continue;
        }
        if line.starts_with('#') {
            continue; // other comments have no place in OpenMetrics
        }
        flush_help(&mut out, &mut help);
        out.push_str(line);
        if family_type == Type::Histogram {
            append_exemplar(&mut out, line, &mut pending, lookup);
        }
        out.push('\n');
    }
    flush_help(&mut out, &mut help);
    out.push_str("# EOF\n");
    out
}

/// A HELP line without a TYPE line: kept under its own name.
fn flush_help(out: &mut String, help: &mut Option<(String, String)>) {
    if let Some((name, doc)) = help.take() {
        let _ = writeln!(out, "# HELP {name} {doc}");
    }
}

/// HELP text with the text format's escapes (`\\`, `\n`) kept, a lone
/// backslash escaped, and `"` escaped as OpenMetrics asks.
fn escape_help(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut chars = doc.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some('\\') | Some('n') | Some('"') => {
                    out.push('\\');
                    out.extend(chars.next());
                }
                _ => out.push_str("\\\\"),
            },
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// After a `_bucket` line, the exemplar of the lowest bucket (from this one
/// up) that holds one not yet placed, when its value is within this bucket.
fn append_exemplar(out: &mut String, line: &str, pending: &mut Pending, lookup: Lookup<'_>) {
    let Some((name, labels)) = parse_sample(line) else {
        return;
    };
    let Some(base) = name.strip_suffix("_bucket") else {
        return;
    };
    let mut le = None;
    let mut series: Vec<(String, String)> = Vec::with_capacity(labels.len());
    for (k, v) in labels {
        if k == "le" {
            le = Some(v);
        } else {
            series.push((k, v));
        }
    }
    let Some(le) = le.and_then(|v| parse_float(&v)) else {
        return;
    };
    series.sort();
    let fresh = !matches!(pending, Some((labels, _)) if *labels == series);
    if fresh {
        let mut found = lookup(base, &series);
        found.sort_by(|a, b| a.value.total_cmp(&b.value));
        *pending = Some((series, found));
    }
    if let Some((_, waiting)) = pending
        && let Some(first) = waiting.first()
        && first.value <= le
    {
        // Exemplars below this bound belong to a lower bucket of this
        // series; each bucket line shows at most one: the highest value.
        let mut best = 0;
        while best + 1 < waiting.len() && waiting[best + 1].value <= le {
            best += 1;
        }
        let chosen = waiting[best];
        waiting.drain(..=best);
        chosen.write_openmetrics(out);
    }
}

/// A sample line's metric name and labels (unescaped values).
fn parse_sample(line: &str) -> Option<(&str, Vec<(String, String)>)> {
    let brace = line.find(['{', ' '])?;
    let name = &line[..brace];
    if !line[brace..].starts_with('{') {
        return Some((name, Vec::new()));
    }
    let mut labels = Vec::new();
    let mut rest = &line[brace + 1..];
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            let _ = after;
            return Some((name, labels));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key, value));
        rest = &rest[end + 1..];
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Whether a request's `Accept` header prefers OpenMetrics over the text
/// format: `application/openmetrics-text` with a quality above 0 and at
/// least that of any type that would get the text format (`text/plain`,
/// `*/*`). Hand-written: a dozen lines of RFC 9110 media ranges, where a
/// content-negotiation crate would bring a framework's worth of types.
pub fn prefers_openmetrics(accept: &str) -> bool {
    let mut openmetrics: f32 = 0.0;
    let mut text: f32 = 0.0;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q: f32 = 1.0;
        for param in parts {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if !(0.0..=1.0).contains(&q) {
            continue;
        }
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const PROMETHEUS_2_42_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn negotiation() {
        assert!(prefers_openmetrics(PROMETHEUS_2_42_ACCEPT));
        assert!(!prefers_openmetrics("text/plain;version=0.0.4"));
        assert!(!prefers_openmetrics("*/*"));
        assert!(!prefers_openmetrics(""));
        assert!(!prefers_openmetrics("application/openmetrics-text;q=0"));
        assert!(!prefers_openmetrics(
            "text/plain,application/openmetrics-text;q=0.5"
        ));
        assert!(prefers_openmetrics(
            "Application/OpenMetrics-Text; q=0.9, text/plain; q=0.8"
        ));
        assert!(!prefers_openmetrics(
            "application/openmetrics-text;q=nonsense"
        ));
    }

    #[test]
    fn families_follow_openmetrics() {
        let text = "# HELP a_total Says \"hi\".\n# TYPE a_total counter\na_total{x=\"1\"} 2\n\n\
                    # TYPE plain counter\nplain 1\n\n\
                    # HELP g A gauge.\n# TYPE g gauge\ng -1\n\n";
        assert_eq!(
            render_with(text, &|_, _| Vec::new()),
            "# TYPE a counter\n# HELP a Says \\\"hi\\\".\na_total{x=\"1\"} 2\n\
             # TYPE plain unknown\nplain 1\n\
             # TYPE g gauge\n# HELP g A gauge.\ng -1\n# EOF\n"
        );
    }

    #[test]
    fn exemplars_go_to_their_buckets() {
        let text = "# TYPE d_seconds histogram\n\
                    d_seconds_bucket{r=\"/a\",le=\"0.1\"} 1\n\
                    d_seconds_bucket{r=\"/a\",le=\"1\"} 3\n\
                    d_seconds_bucket{r=\"/a\",le=\"+Inf\"} 4\n\
                    d_seconds_sum{r=\"/a\"} 7.5\n\
                    d_seconds_count{r=\"/a\"} 4\n\
                    d_seconds_bucket{r=\"/b\",le=\"0.1\"} 0\n\
                    d_seconds_bucket{r=\"/b\",le=\"1\"} 0\n\
                    d_seconds_bucket{r=\"/b\",le=\"+Inf\"} 0\n";
        let e = |value| Exemplar {
            trace_id: [0xaa; 16],
            span_id: [0xbb; 8],
            value,
            timestamp: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        let out = render_with(text, &|name, labels| {
            assert_eq!(name, "d_seconds");
            if labels == [("r".to_owned(), "/a".to_owned())] {
                vec![e(6.0), e(0.05), e(0.7)]
            } else {
                Vec::new()
            }
        });
        let ex = |v: &str| {
            format!(
                " # {{trace_id=\"{}\",span_id=\"{}\"}} {v} 1700000000.000",
                "aa".repeat(16),
                "bb".repeat(8)
            )
        };
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            format!("d_seconds_bucket{{r=\"/a\",le=\"0.1\"}} 1{}", ex("0.05"))
        );
        assert_eq!(
            lines[2],
            format!("d_seconds_bucket{{r=\"/a\",le=\"1\"}} 3{}", ex("0.7"))
        );
        assert_eq!(
            lines[3],
            format!("d_seconds_bucket{{r=\"/a\",le=\"+Inf\"}} 4{}", ex("6"))
        );
        assert_eq!(lines[4], "d_seconds_sum{r=\"/a\"} 7.5");
        assert_eq!(lines[6], "d_seconds_bucket{r=\"/b\",le=\"0.1\"} 0");
        assert_eq!(*lines.last().unwrap(), "# EOF");
    }

    #[test]
    fn label_values_are_unescaped() {
        let (name, labels) = parse_sample(r#"m_bucket{p="a\"b\\c",le="1"} 2"#).unwrap();
        assert_eq!(name, "m_bucket");
        assert_eq!(
            labels,
            [("p".into(), "a\"b\\c".into()), ("le".into(), "1".into())]
        );
        assert_eq!(parse_sample("m 1").unwrap().1, Vec::new());
        assert!(parse_sample("m{p=\"unterminated} 1").is_none());
    }

    #[test]
    fn help_escapes() {
        assert_eq!(escape_help(r#"a\nb \\ c " d \x"#), r#"a\nb \\ c \" d \\x"#);
    }
}
