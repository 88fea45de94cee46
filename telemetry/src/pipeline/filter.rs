//! The log filter (`RUST_LOG`) and the trace filter (`TELLTALE_TRACES_FILTER`):
//! strict validation of their directives, and the per-layer filters the
//! pipeline builds from them.
//!
//! The two are independent: the log filter decides which events become log
//! lines (and OTLP log records); the trace filter decides which spans (and
//! span events) reach the OpenTelemetry layer, so quieting logs never turns
//! traces off. Sampling stays the knob for trace volume.
//!
//! Validation is written here rather than left to `EnvFilter`, because
//! `EnvFilter` reads any text as a target name (`-1`, `5 parsecs` and 10 KB
//! of prose are all "targets" that match nothing), so a typo silently turns
//! logging off. The grammar accepted is `EnvFilter`'s without regular
//! expressions: `level`, or `target[span{field=value}]=level` where every
//! part but one is optional.

use telltale_core::config::ParseError;
use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::Filter;

/// Default trace filter when `TELLTALE_TRACES_FILTER` is not set: spans at
/// INFO and above (telltale's request spans are INFO).
pub const DEFAULT_TRACE_FILTER: &str = "info";
/// Longest filter accepted, in characters.
pub const MAX_FILTER_LEN: usize = 4096;
/// Most directives in one filter.
pub const MAX_FILTER_DIRECTIVES: usize = 128;

const LEVELS: &str = "trace, debug, info, warn, error, off (or 0 to 5)";

fn is_level(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error" | "off" | "0" | "1" | "2" | "3" | "4" | "5"
    )
}

/// A target: a Rust path or a custom target name, starting with a letter or
/// `_`, then letters, digits, `_`, `-`, `.` and `::`.
fn is_target(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        && !s.ends_with(':')
}

/// Whether `s` is `[name{fields}]`, `[name]`, `[{fields}]` or `[]`.
fn is_span_part(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    if inner.contains(['[', ']']) {
        return false;
    }
    let (name, fields) = match inner.find('{') {
        Some(i) => (&inner[..i], Some(&inner[i..])),
        None => (inner, None),
    };
    let name_ok = !name.contains('}') && !name.chars().any(char::is_control);
    let fields_ok = fields.is_none_or(|f| {
        f.strip_prefix('{')
            .and_then(|f| f.strip_suffix('}'))
            .is_some_and(|f| {
                !f.contains(['{', '}'])
                    && !f.chars().any(char::is_control)
                    && f.split_whitespace().next().is_some()
            })
    });
    name_ok && fields_ok
}

/// What is wrong with one directive, if anything.
fn check_directive(d: &str) -> Result<(), &'static str> {
    let (head, level) = match d.rfind('=') {
        Some(i) if !d[i..].contains([']', '}']) => (&d[..i], Some(&d[i + 1..])),
        _ => (d, None),
    };
    match level {
        None if is_level(head) => return Ok(()),
        Some(level) if !is_level(level) => {
            return Err("a level after '=': trace, debug, info, warn, error, off (or 0 to 5)");
        }
        _ => {}
    }
    let (target, span) = match head.find('[') {
        Some(i) => (&head[..i], Some(&head[i..])),
        None => (head, None),
    };
    if target.is_empty() && span.is_none() {
        return Err("a target or span before '='");
    }
    if !target.is_empty() && !is_target(target) {
        return Err(
            "a level (trace, debug, info, warn, error, off) or a target such as my_crate::module \
             (letters, digits, _, -, ., ::; starting with a letter or _)",
        );
    }
    if span.is_some_and(|s| !is_span_part(s)) {
        return Err("a span filter such as [request] or [request{user=ada}]");
    }
    Ok(())
}

/// Checks a filter in `RUST_LOG` syntax, strictly: bounded length and
/// directive count, every directive a level or a well-formed
/// `target[span{field=value}]=level`, and accepted by `EnvFilter` (without
/// regular expressions). Blank directives (`info,`) are allowed. The error
/// points at the first character of the bad directive.
pub(crate) fn check_filter(s: &str) -> Result<(), ParseError> {
    let len = s.chars().count();
    if len > MAX_FILTER_LEN {
        return Err(ParseError::new(
            MAX_FILTER_LEN + 1,
            format!("at most {MAX_FILTER_LEN} characters of filter directives"),
        ));
    }
    let mut offset = 0;
    let mut count = 0;
    for raw in s.split(',') {
        let lead = raw.chars().take_while(|c| c.is_whitespace()).count();
        let item = raw.trim();
        if !item.is_empty() {
            count += 1;
            if count > MAX_FILTER_DIRECTIVES {
                return Err(ParseError::new(
                    offset + lead + 1,
                    format!("at most {MAX_FILTER_DIRECTIVES} directives"),
                ));
            }
            check_directive(item).map_err(|e| ParseError::new(offset + lead + 1, e))?;
        }
        offset += raw.chars().count() + 1;
    }
    if count == 0 {
        return Err(ParseError::new(
            1,
            format!("a level ({LEVELS}) or directives"),
        ));
    }
    EnvFilter::builder()
        .with_regex(false)
        .parse(s)
        .map_err(|_| ParseError::new(1, "filter directives such as info or my_crate=debug"))?;
    Ok(())
}

/// An `EnvFilter` of checked directives, field values matched literally.
pub(crate) fn env_filter(directives: &str) -> EnvFilter {
    EnvFilter::builder()
        .with_regex(false)
        .parse_lossy(directives)
}

/// The filter of the OpenTelemetry layer: the trace filter, without the
/// request log line ([`crate::layer::request_log`]): its span already holds
/// every field, so as a span event it would only be a copy.
pub(crate) fn otel_filter<S>(trace: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let not_request_log = filter_fn(|meta: &Metadata<'_>| {
        !(meta.is_event() && meta.target() == crate::layer::request_log::TARGET)
    });
    env_filter(trace).and(not_request_log)
}

/// The filter of the log layers: events as the log filter says; spans as
/// either filter says, so that a log line inside a traced span still carries
/// the span's fields and trace ID when the log filter alone would not keep
/// the span.
pub(crate) fn log_filter<S>(log: &str, trace: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let spans = filter_fn(|meta: &Metadata<'_>| meta.is_span());
    env_filter(log).or(spans.and(env_filter(trace)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_rust_log_users_write() {
        for ok in [
            "info",
            "WARN",
            "3",
            "off",
            "info,",
            "my_crate=debug",
            "info,my_crate::module=trace,hyper=off",
            "tower-http=debug",
            "otel.tracing=warn",
            "my_crate",
            "[request]=debug",
            "my_crate[request{user=ada}]=trace",
            "[{user}]=debug",
        ] {
            assert!(check_filter(ok).is_ok(), "{ok}: {:?}", check_filter(ok));
        }
    }

    #[test]
    fn rejects_nonsense_at_the_directive() {
        for (bad, position) in [
            ("-1", 1),
            ("5 parsecs", 1),
            ("info,-1", 6),
            ("info, a=verbose", 7),
            ("=debug", 1),
            ("a=[[", 1),
            ("a[b", 1),
            ("a[b{c]=info", 1),
            ("a::=info", 1),
            ("info,a b=warn", 6),
            (",", 1),
            ("info\u{7}", 1),
        ] {
            let err = check_filter(bad).unwrap_err();
            assert_eq!(err.position(), position, "{bad:?}: {err}");
        }
        let long = "a".repeat(MAX_FILTER_LEN + 1);
        assert_eq!(
            check_filter(&long).unwrap_err().position(),
            MAX_FILTER_LEN + 1
        );
        let many = vec!["a=info"; MAX_FILTER_DIRECTIVES + 1].join(",");
        assert!(
            check_filter(&many)
                .unwrap_err()
                .expected()
                .contains("directives")
        );
    }
}
