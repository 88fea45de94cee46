//! The Elastic Common Schema mapping of span and event fields: an explicit
//! table from the names telltale (and OpenTelemetry) use to ECS 8.11 fields;
//! every other field goes under the [`CUSTOM_NAMESPACE`].
//!
//! Hand-written because the mapping is telltale's own decision (which ECS
//! field an OpenTelemetry attribute lands in); no crate maps one to the
//! other for log lines.

use std::fmt;
use std::net::IpAddr;

use super::escape::{TRUNCATION_MARKER, write_escaped};

/// Where fields that are not ECS fields go: `telltale.<field name>`.
pub const CUSTOM_NAMESPACE: &str = "telltale";

/// The longest keyword value ECS indexes (`ignore_above: 1024`), in
/// characters; longer values are cut to this length, marker included.
pub const KEYWORD_MAX_CHARS: usize = 1024;

/// How a mapped value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// ECS `keyword` (or `wildcard`): a string of at most
    /// [`KEYWORD_MAX_CHARS`]; numbers and booleans are quoted.
    Keyword,
    /// ECS `long`: an integer that fits an `i64`, else the field goes to the
    /// custom namespace.
    Long,
    /// ECS `match_only_text`: a string, no `ignore_above`.
    Text,
    /// `client.address`: a keyword, copied to `client.ip` when it is an IP
    /// address (as ECS asks).
    ClientAddress,
    /// ECS `event.duration` (`long`, nanoseconds) from a float of
    /// milliseconds (`duration_ms`, as the request log line and console span
    /// lines write it); a value that is not a number goes to the custom
    /// namespace.
    DurationMs,
    /// ECS `ip` (only made from [`Kind::ClientAddress`]).
    Ip,
    /// Not ECS: under the custom namespace, the value as recorded (strings
    /// cut at [`KEYWORD_MAX_CHARS`]).
    Custom,
}

/// What becomes of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// This ECS field.
    Ecs(&'static str, Kind),
    /// Left out: its value is carried by another field.
    Drop,
    /// `telltale.<name>`.
    Custom,
}

/// The table (documented on [`Profile::ElasticCommonSchema`](super::Profile)).
pub(crate) fn map(key: &str) -> Mapped {
    use Kind::{ClientAddress, Keyword, Long, Text};
    use Mapped::{Drop, Ecs};
    match key {
        "http.request.method" => Ecs("http.request.method", Keyword),
        // Read by `http.request.method` when that is `_OTHER`.
        "http.request.method_original" => Drop,
        "http.response.status_code" => Ecs("http.response.status_code", Long),
        // ECS `network.protocol` is a keyword (the protocol's name), so it
        // cannot hold `.version`; the HTTP version has its own field.
        "network.protocol.version" => Ecs("http.version", Keyword),
        "url.full" => Ecs("url.full", Keyword),
        "url.path" => Ecs("url.path", Keyword),
        "url.query" => Ecs("url.query", Keyword),
        "url.scheme" => Ecs("url.scheme", Keyword),
        "server.address" => Ecs("server.address", Keyword),
        "server.port" => Ecs("server.port", Long),
        "client.address" => Ecs("client.address", ClientAddress),
        "client.port" => Ecs("client.port", Long),
        "user_agent.original" => Ecs("user_agent.original", Keyword),
        "error.type" | "exception.type" => Ecs("error.type", Keyword),
        // `error` is an object in ECS: a field named `error` is its message.
        "error" | "error.message" | "exception.message" => Ecs("error.message", Text),
        "exception.stacktrace" => Ecs("error.stack_trace", Keyword),
        // `user` is an object in ECS too.
        "user" | "user.name" => Ecs("user.name", Keyword),
        "user.id" => Ecs("user.id", Keyword),
        "duration_ms" => Ecs("event.duration", Kind::DurationMs),
        _ => Mapped::Custom,
    }
}

/// A key of the output line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target<'a> {
    Ecs(&'static str),
    Custom(&'a str),
}

struct Out<'a> {
    target: Target<'a>,
    value: &'a str,
    kind: Kind,
}

/// Writes `pairs` (`(field name, JSON value)`, later ones winning) as ECS
/// keys, each preceded by a comma. `otel.*` fields and `correlation_id`
/// (written as `http.request.id` by the caller) are left out.
pub(crate) fn write_fields(w: &mut impl fmt::Write, pairs: &[(&str, &str)]) -> fmt::Result {
    let mut out: Vec<Out<'_>> = Vec::with_capacity(pairs.len() + 1);
    for &(key, value) in pairs {
        if key.starts_with("otel.") || key == "correlation_id" {
            continue;
        }
        match map(key) {
            Mapped::Drop => {}
            Mapped::Custom => out.push(Out {
                target: Target::Custom(key),
                value,
                kind: Kind::Custom,
            }),
            Mapped::Ecs(name, kind) => {
                let mut value = value;
                if name == "http.request.method" && value == "\"_OTHER\"" {
                    // ECS wants the real method.
                    match pairs
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == "http.request.method_original")
                    {
                        Some((_, original)) => value = original,
                        None => continue,
                    }
                }
                let not_a_number = match kind {
                    Kind::Long => value.parse::<i64>().is_err(),
                    Kind::DurationMs => !value.parse::<f64>().is_ok_and(f64::is_finite),
                    _ => false,
                };
                if not_a_number {
                    out.push(Out {
                        target: Target::Custom(key),
                        value,
                        kind: Kind::Custom,
                    });
                    continue;
                }
                out.push(Out {
                    target: Target::Ecs(name),
                    value,
                    kind,
                });
                if kind == Kind::ClientAddress && is_ip(value) {
                    out.push(Out {
                        target: Target::Ecs("client.ip"),
                        value,
                        kind: Kind::Ip,
                    });
                }
            }
        }
    }
    for (i, field) in out.iter().enumerate() {
        // Later fields win (inner spans over outer, the event over spans).
        if out[i + 1..]
            .iter()
            .any(|later| later.target == field.target)
        {
            continue;
        }
        w.write_str(",\"")?;
        match field.target {
            Target::Ecs(name) => w.write_str(name)?,
            Target::Custom(name) => {
                w.write_str(CUSTOM_NAMESPACE)?;
                w.write_char('.')?;
                write_escaped(w, name, 256)?;
                // `a` and `a.b` in one line: `a` cannot be a value and an
                // object at once, so its value becomes `a._value`.
                let parent_of_another = out.iter().any(|o| match o.target {
                    Target::Custom(other) => {
                        other.len() > name.len()
                            && other.starts_with(name)
                            && other.as_bytes()[name.len()] == b'.'
                    }
                    Target::Ecs(_) => false,
                });
                if parent_of_another {
                    w.write_str("._value")?;
                }
            }
        }
        w.write_str("\":")?;
        match field.kind {
            Kind::Keyword | Kind::ClientAddress | Kind::Ip => write_keyword(w, field.value)?,
            Kind::Text => write_quoted(w, field.value)?,
            Kind::Long => w.write_str(field.value)?,
            Kind::DurationMs => {
                let ms = field.value.parse::<f64>().unwrap_or(0.0);
                // Saturating: a float outside i64 becomes its bound.
                write!(w, "{}", (ms * 1e6).round() as i64)?;
            }
            Kind::Custom => {
                if field.value.starts_with('"') {
                    write_capped(w, field.value, KEYWORD_MAX_CHARS)?;
                } else {
                    w.write_str(field.value)?;
                }
            }
        }
    }
    Ok(())
}

fn is_ip(json: &str) -> bool {
    json.len() > 2
        && json.starts_with('"')
        && json.ends_with('"')
        && json[1..json.len() - 1].parse::<IpAddr>().is_ok()
}

/// A keyword: a JSON string of at most [`KEYWORD_MAX_CHARS`] (numbers and
/// booleans quoted).
pub(crate) fn write_keyword(w: &mut impl fmt::Write, json: &str) -> fmt::Result {
    if json.starts_with('"') {
        write_capped(w, json, KEYWORD_MAX_CHARS)
    } else {
        write_quoted(w, json)
    }
}

/// A JSON value as a JSON string (a number or boolean gets quotes; they
/// need no escaping).
fn write_quoted(w: &mut impl fmt::Write, json: &str) -> fmt::Result {
    if json.starts_with('"') {
        w.write_str(json)
    } else {
        w.write_char('"')?;
        w.write_str(json)?;
        w.write_char('"')
    }
}

/// Writes the JSON string `json` (quotes included, as [`write_escaped`]
/// makes it) cut to at most `max` characters once decoded, the
/// [`TRUNCATION_MARKER`] included.
pub(crate) fn write_capped(w: &mut impl fmt::Write, json: &str, max: usize) -> fmt::Result {
    // Every decoded character takes at least one byte.
    if json.len() <= max + 2 || json.len() < 2 {
        return w.write_str(json);
    }
    let inner = &json[1..json.len() - 1];
    let keep = max.saturating_sub(TRUNCATION_MARKER.chars().count());
    let mut count = 0;
    let mut cut = 0;
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        if count == keep {
            cut = i;
        }
        count += 1;
        if count > max {
            break;
        }
        if c == '\\' && chars.next().is_some_and(|(_, e)| e == 'u') {
            chars.nth(3);
        }
    }
    if count <= max {
        return w.write_str(json);
    }
    w.write_char('"')?;
    w.write_str(&inner[..cut])?;
    w.write_str(TRUNCATION_MARKER)?;
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> serde_json::Value {
        let mut out = String::from("{\"x\":0");
        write_fields(&mut out, pairs).unwrap();
        out.push('}');
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn maps_by_the_table_and_namespaces_the_rest() {
        let line = fields(&[
            ("http.request.method", "\"_OTHER\""),
            ("http.request.method_original", "\"PURGE\""),
            ("network.protocol.version", "\"1.1\""),
            ("http.route", "\"/orders/{id}\""),
            ("client.address", "\"10.0.0.1\""),
            ("server.port", "8080"),
            ("error", "\"boom\""),
            ("user", "\"ada\""),
            ("rows", "3"),
        ]);
        assert_eq!(line["http.request.method"], "PURGE");
        assert_eq!(line["http.version"], "1.1");
        assert_eq!(line["telltale.http.route"], "/orders/{id}");
        assert_eq!(line["client.address"], "10.0.0.1");
        assert_eq!(line["client.ip"], "10.0.0.1");
        assert_eq!(line["server.port"], 8080);
        assert_eq!(line["error.message"], "boom");
        assert_eq!(line["user.name"], "ada");
        assert_eq!(line["telltale.rows"], 3);
        assert!(line.get("http.request.method_original").is_none());
        assert!(line.get("network.protocol.version").is_none());
    }

    #[test]
    fn mapped_duplicates_keep_the_last_and_conflicts_become_objects() {
        let line = fields(&[
            ("error", "\"outer\""),
            ("error.message", "\"inner\""),
            ("client.address", "\"not an ip\""),
            ("server.port", "\"eighty\""),
            ("a", "1"),
            ("a.b", "2"),
            ("http.request.method", "\"_OTHER\""),
        ]);
        assert_eq!(line["error.message"], "inner");
        assert!(line.get("client.ip").is_none());
        assert_eq!(line["telltale.server.port"], "eighty");
        assert_eq!(line["telltale.a._value"], 1);
        assert_eq!(line["telltale.a.b"], 2);
        // `_OTHER` without the original method: left out.
        assert!(line.get("http.request.method").is_none());
    }

    #[test]
    fn keywords_are_strings_of_at_most_1024_characters() {
        let long = format!("\"{}\"", "é\\u001b".repeat(700));
        let mut out = String::new();
        write_keyword(&mut out, &long).unwrap();
        let value: String = serde_json::from_str(&out).unwrap();
        assert_eq!(value.chars().count(), KEYWORD_MAX_CHARS);
        assert!(value.ends_with(TRUNCATION_MARKER));
        assert!(value.starts_with("é\u{1b}é"));
        let exact = format!("\"{}\"", "x".repeat(KEYWORD_MAX_CHARS));
        let mut out = String::new();
        write_keyword(&mut out, &exact).unwrap();
        assert_eq!(out, exact);
        let mut out = String::new();
        write_keyword(&mut out, "42").unwrap();
        assert_eq!(out, "\"42\"");
    }
}
