//! [`PrettyFormat`]: human-readable lines for terminals.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

use super::escape::write_escaped;
use super::fields::JsonFields;
use super::line::{correlation, gather, is_last};
use super::{DispatchCell, OtelIdsLayer, format_common, severity, write_timestamp};
use crate::pipeline::settings::DEFAULT_MAX_FIELD_LEN;

/// Human-readable lines for terminals:
/// `2026-01-02T03:04:05.678901Z  INFO request:db: my_app: loaded order=42 trace_id=… correlation_id="…"`.
///
/// Values are escaped as in [`JsonFormat`](super::JsonFormat); colors (level only) when `ansi`.
///
/// ```
/// use telltale_telemetry::{JsonFields, PrettyFormat};
///
/// let layer = tracing_subscriber::fmt::layer::<tracing_subscriber::Registry>()
///     .fmt_fields(JsonFields::default())
///     .event_format(PrettyFormat::new(false));
/// # drop(layer);
/// ```
#[derive(Clone, Debug, Default)]
pub struct PrettyFormat {
    cell: DispatchCell,
    ansi: bool,
    max_len: usize,
}

impl PrettyFormat {
    /// A pretty formatter, with colors when `ansi`.
    pub fn new(ansi: bool) -> Self {
        PrettyFormat {
            cell: DispatchCell::default(),
            ansi,
            max_len: DEFAULT_MAX_FIELD_LEN,
        }
    }

    format_common!();
}

impl<S> FormatEvent<S, JsonFields> for PrettyFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = gather(ctx, event, self.max_len, &self.cell, false);
        let meta = event.metadata();
        let (upper, ..) = severity(meta.level());
        let color = match *meta.level() {
            Level::ERROR => "31",
            Level::WARN => "33",
            Level::INFO => "32",
            Level::DEBUG => "34",
            Level::TRACE => "35",
        };
        write_timestamp(&mut w)?;
        if self.ansi {
            write!(w, " \x1b[{color}m{upper:>5}\x1b[0m ")?;
        } else {
            write!(w, " {upper:>5} ")?;
        }
        for (name, _) in &line.spans {
            write_escaped(&mut w, name, 256)?;
            w.write_char(':')?;
        }
        if !line.spans.is_empty() {
            w.write_char(' ')?;
        }
        write_escaped(&mut w, meta.target(), self.max_len)?;
        w.write_str(": ")?;
        write_escaped(&mut w, &line.message, self.max_len)?;
        let pairs = line.pairs();
        for (i, (key, value)) in pairs.iter().enumerate() {
            if key.starts_with("otel.") || *key == "correlation_id" || !is_last(&pairs, i) {
                continue;
            }
            w.write_char(' ')?;
            write_escaped(&mut w, key, 256)?;
            write!(w, "={value}")?;
        }
        if let Some(sc) = &line.otel {
            write!(w, " trace_id={} span_id={}", sc.trace_id(), sc.span_id())?;
        }
        if let Some(id) = correlation(&pairs, &line) {
            write!(w, " correlation_id={id}")?;
        }
        w.write_char('\n')
    }
}

/// A console span line in the pretty format:
/// `<time>  INFO span: <name> <extra…> <attributes…> trace_id=… span_id=…`.
pub(crate) fn write_span_line(
    w: &mut impl fmt::Write,
    head: &super::Head<'_>,
    pairs: &[(&str, &str)],
    max_len: usize,
) -> fmt::Result {
    let (upper, ..) = severity(head.level);
    write!(
        w,
        "{} {upper:>5} ",
        humantime::format_rfc3339_micros(head.time)
    )?;
    write_escaped(w, head.target, 256)?;
    w.write_str(": ")?;
    write_escaped(w, head.message, max_len)?;
    for (key, value) in head.extra.iter().chain(pairs) {
        w.write_char(' ')?;
        write_escaped(w, key, 256)?;
        write!(w, "={value}")?;
    }
    if let Some((trace_id, span_id)) = head.ids {
        write!(w, " trace_id={trace_id} span_id={span_id}")?;
    }
    if let Some(id) = head.correlation {
        write!(w, " correlation_id={id}")?;
    }
    w.write_char('\n')
}
