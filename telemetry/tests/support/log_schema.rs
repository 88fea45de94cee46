//! Validators for log lines, shared by telemetry's and the demo's tests
//! (included with `#[path]`; needs only `serde_json` and std):
//!
//! - [`EcsSchema`]: a `TELLTALE_LOG_FORMAT=ecs` line against the ECS field
//!   definitions in `tests/data/ecs_fields.tsv` (derived from elastic/ecs
//!   `generated/ecs/ecs_flat.yml`) with Elasticsearch's mapping rules: every
//!   ECS field has its ECS type, no key is both a value and an object (also
//!   against ECS's own structure: nothing under `network.protocol`, no value
//!   at `error` or `user`), non-ECS keys only under `telltale.` (or
//!   `labels.`, keyword values without dots), keyword values at most 1,024
//!   characters.
//! - [`check_otel_line`]: a `TELLTALE_LOG_FORMAT=json` line against the
//!   OpenTelemetry profile's documented keys (`Profile::OpenTelemetry`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{Map, Value};

/// The ECS fields of the fixture: flat name → (type, ignore_above).
pub(crate) struct EcsSchema {
    fields: HashMap<String, (String, Option<usize>)>,
}

/// The fixture's text, embedded at compile time.
const FIXTURE: &str = include_str!("../data/ecs_fields.tsv");

/// Keyword values ECS indexes (`ignore_above`), also applied to strings under
/// the custom namespace.
const IGNORE_ABOVE: usize = 1024;

impl EcsSchema {
    pub(crate) fn load() -> Self {
        let mut fields = HashMap::new();
        for line in FIXTURE.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "bad fixture line {line:?}");
            let ignore_above = cols[2].parse().ok();
            fields.insert(cols[0].to_owned(), (cols[1].to_owned(), ignore_above));
        }
        EcsSchema { fields }
    }

    /// Whether `name` is a proper prefix of an ECS field (an ECS object).
    fn is_ecs_object(&self, name: &str) -> bool {
        self.fields.keys().any(|f| {
            f.len() > name.len() && f.starts_with(name) && f.as_bytes()[name.len()] == b'.'
        }) || self.fields.get(name).is_some_and(|(t, _)| t == "object")
    }

    /// Checks one line; the error says what Elasticsearch with the ECS
    /// template would reject or mis-map.
    pub(crate) fn check_line(&self, line: &str) -> Result<(), String> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
        let Value::Object(object) = value else {
            return Err(format!("not an object: {line}"));
        };
        let mut flat = Vec::new();
        flatten("", &object, &mut flat);
        let keys: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
        for required in ["@timestamp", "message", "log.level", "ecs.version"] {
            if !keys.contains(&required) {
                return Err(format!("no {required}: {line}"));
            }
        }
        for (i, (key, value)) in flat.iter().enumerate() {
            if keys.iter().enumerate().any(|(j, k)| j != i && *k == key) {
                return Err(format!("{key} twice: {line}"));
            }
            if let Some(other) = keys.iter().find(|k| {
                k.len() > key.len()
                    && k.starts_with(key.as_str())
                    && k.as_bytes()[key.len()] == b'.'
            }) {
                return Err(format!(
                    "{key} is a value and {other} makes it an object: {line}"
                ));
            }
            // No ECS leaf above the key.
            let mut at = 0;
            while let Some(dot) = key[at..].find('.') {
                let prefix = &key[..at + dot];
                if let Some((ty, _)) = self.fields.get(prefix)
                    && ty != "object"
                {
                    return Err(format!(
                        "{prefix} is an ECS {ty}, so {key} cannot exist: {line}"
                    ));
                }
                at += dot + 1;
            }
            match self.fields.get(key) {
                Some((ty, ignore_above)) => {
                    check_type(key, ty, *ignore_above, value).map_err(|e| format!("{e}: {line}"))?
                }
                None => {
                    if self.is_ecs_object(key) {
                        return Err(format!("{key} is an ECS object, not a value: {line}"));
                    }
                    if let Some(label) = key.strip_prefix("labels.") {
                        if label.contains('.') || !value.is_string() {
                            return Err(format!("labels are flat keywords: {key}: {line}"));
                        }
                    } else if !key.starts_with("telltale.") {
                        return Err(format!(
                            "{key} is not an ECS field and not under telltale.: {line}"
                        ));
                    }
                    if let Value::String(s) = value
                        && s.chars().count() > IGNORE_ABOVE
                    {
                        return Err(format!(
                            "{key} is longer than {IGNORE_ABOVE} characters: {line}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in object {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten(&key, inner, out),
            other => out.push((key, other.clone())),
        }
    }
}

fn check_type(
    key: &str,
    ty: &str,
    ignore_above: Option<usize>,
    value: &Value,
) -> Result<(), String> {
    let ok = match ty {
        "keyword" | "wildcard" | "match_only_text" | "text" => match value {
            Value::String(s) => {
                if let Some(max) = ignore_above
                    && s.chars().count() > max
                {
                    return Err(format!(
                        "{key} has {} characters, ECS indexes {max}",
                        s.chars().count()
                    ));
                }
                true
            }
            _ => false,
        },
        "long" => value.as_i64().is_some(),
        "float" | "double" | "scaled_float" => value.is_number(),
        "boolean" => value.is_boolean(),
        "date" => value.as_str().is_some_and(is_rfc3339),
        "ip" => value.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{key} must be an ECS {ty}, is {value}"))
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, what every telltale timestamp is.
pub(crate) fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && s.ends_with('Z')
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1)))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a line of the OpenTelemetry JSON profile against its documented
/// keys (see `Profile::OpenTelemetry`).
pub(crate) fn check_otel_line(line: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    let Value::Object(o) = value else {
        return Err(format!("not an object: {line}"));
    };
    let err = |what: &str| Err(format!("{what}: {line}"));
    if !o
        .get("timestamp")
        .and_then(Value::as_str)
        .is_some_and(is_rfc3339)
    {
        return err("timestamp is not RFC 3339");
    }
    let levels = [
        ("TRACE", 1),
        ("DEBUG", 5),
        ("INFO", 9),
        ("WARN", 13),
        ("ERROR", 17),
    ];
    let level = o.get("level").and_then(Value::as_str);
    let Some((_, number)) = levels.iter().find(|(l, _)| Some(*l) == level) else {
        return err("level");
    };
    if o.get("severity_text").and_then(Value::as_str) != level {
        return err("severity_text differs from level");
    }
    if o.get("severity_number").and_then(Value::as_i64) != Some(*number) {
        return err("severity_number");
    }
    for key in ["message", "target"] {
        if !o.get(key).is_some_and(Value::is_string) {
            return err(&format!("{key} is not a string"));
        }
    }
    for key in ["service.name", "correlation_id"] {
        if o.get(key).is_some_and(|v| !v.is_string()) {
            return err(&format!("{key} is not a string"));
        }
    }
    match (o.get("trace_id"), o.get("span_id")) {
        (None, None) => {}
        (Some(Value::String(t)), Some(Value::String(s))) if is_hex(t, 32) && is_hex(s, 16) => {}
        _ => return err("trace_id/span_id"),
    }
    if o.get("target").and_then(Value::as_str) == Some("telltale::span") {
        if !matches!(
            o.get("status").and_then(Value::as_str),
            Some("unset" | "ok" | "error")
        ) {
            return err("span status");
        }
        if !o.get("duration_ms").is_some_and(Value::is_f64) {
            return err("duration_ms is not a float");
        }
        if !matches!(
            o.get("span.kind").and_then(Value::as_str),
            Some("server" | "client" | "internal" | "producer" | "consumer")
        ) {
            return err("span.kind");
        }
        if let Some(parent) = o.get("parent_span_id")
            && !parent.as_str().is_some_and(|p| is_hex(p, 16))
        {
            return err("parent_span_id");
        }
    }
    for (key, value) in &o {
        if key.starts_with("otel.") {
            return err(&format!("{key} must be left out"));
        }
        if value.is_object() || value.is_array() {
            return err(&format!("{key} is not flat"));
        }
    }
    Ok(())
}
