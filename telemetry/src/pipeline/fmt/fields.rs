//! Recording fields: [`JsonFields`] keeps span fields as `name\tjson\n`
//! lines; [`EventFields`] does the same for an event, its message apart.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

use super::escape::write_json_str;
use crate::pipeline::settings::DEFAULT_MAX_FIELD_LEN;

/// Records span fields as `name\tjson\n` lines inside [`FormattedFields`], so
/// [`JsonFormat`](super::JsonFormat) and [`PrettyFormat`](super::PrettyFormat) can flatten and de-duplicate them.
///
/// Pair it with either formatter: `fmt::layer().fmt_fields(JsonFields::new(max)).event_format(...)`.
#[derive(Clone, Copy, Debug)]
pub struct JsonFields {
    max_len: usize,
}

impl JsonFields {
    /// Field values longer than `max_len` characters are truncated.
    pub fn new(max_len: usize) -> Self {
        JsonFields {
            max_len: max_len.max(1),
        }
    }
}

impl Default for JsonFields {
    fn default() -> Self {
        JsonFields::new(DEFAULT_MAX_FIELD_LEN)
    }
}

struct FieldWriter<'a, W> {
    out: &'a mut W,
    pub(super) max: usize,
    result: fmt::Result,
}

impl<W: fmt::Write> FieldWriter<'_, W> {
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut W, usize) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = (|| {
            for c in name.chars() {
                self.out
                    .write_char(if c == '\t' || c == '\n' { '_' } else { c })?;
            }
            self.out.write_char('\t')?;
            value(self.out, self.max)?;
            self.out.write_char('\n')
        })();
    }
}

impl<W: fmt::Write> Visit for FieldWriter<'_, W> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.write(field, |out, max| write_json_str(out, &text, max));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, |out, max| write_json_str(out, value, max));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        self.write(field, |out, max| write_json_str(out, &text, max));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |out, _| write!(out, "{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.write(field, |out, _| write_float(out, value));
        } else {
            self.write(field, |out, max| {
                write_json_str(out, &value.to_string(), max)
            });
        }
    }
}

/// Writes a finite float so that it reads back as a float: `1.0`, not `1`
/// (a backend that first sees `1` maps the field as an integer and then
/// truncates or rejects `0.5`). Shortest round-trip digits, as serde_json.
pub(crate) fn write_float(out: &mut impl fmt::Write, value: f64) -> fmt::Result {
    out.write_str(ryu::Buffer::new().format_finite(value))
}

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter {
            out: &mut writer,
            max: self.max_len,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = FieldWriter {
            out: &mut current.fields,
            max: self.max_len,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Fields of one event: the message apart, the rest encoded as in spans.
pub(super) struct EventFields {
    pub(super) message: Option<String>,
    pub(super) encoded: String,
    pub(super) max: usize,
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.visitor().record_debug(field, value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.visitor().record_str(field, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.visitor().record_error(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.visitor().record_i64(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.visitor().record_u64(field, value);
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.visitor().record_i128(field, value);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.visitor().record_u128(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.visitor().record_bool(field, value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.visitor().record_f64(field, value);
    }
}

impl EventFields {
    fn visitor(&mut self) -> FieldWriter<'_, String> {
        FieldWriter {
            out: &mut self.encoded,
            max: self.max,
            result: Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_float;

    #[test]
    fn floats_read_back_as_floats() {
        for (value, text) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-3.0, "-3.0"),
            (0.0, "0.0"),
            (1e21, "1e21"),
            (1e-7, "1e-7"),
        ] {
            let mut out = String::new();
            write_float(&mut out, value).unwrap();
            assert_eq!(out, text);
            let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(parsed.is_f64(), "{out}");
        }
    }
}
