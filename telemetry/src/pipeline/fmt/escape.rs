//! Escaping for JSON strings and terminals, with a length cap.

use std::fmt;

/// Marker appended to values cut at the maximum length.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// Writes `s` escaped for a JSON string (without quotes): quotes, backslash,
/// every C0 control (ESC included), DEL and every C1 control, so no terminal
/// escape sequence survives. At most `max` characters are written; a longer
/// value ends with [`TRUNCATION_MARKER`].
pub fn write_escaped(out: &mut impl fmt::Write, s: &str, max: usize) -> fmt::Result {
    let mut start = 0;
    for (count, (i, c)) in s.char_indices().enumerate() {
        if count == max {
            out.write_str(&s[start..i])?;
            return out.write_str(TRUNCATION_MARKER);
        }
        let escape = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let control = matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}');
        if escape.is_some() || control {
            out.write_str(&s[start..i])?;
            match escape {
                Some(e) => out.write_str(e)?,
                None => write!(out, "\\u{:04x}", c as u32)?,
            }
            start = i + c.len_utf8();
        }
    }
    out.write_str(&s[start..])
}

pub(crate) fn write_json_str(out: &mut impl fmt::Write, s: &str, max: usize) -> fmt::Result {
    out.write_char('"')?;
    write_escaped(out, s, max)?;
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str, max: usize) -> String {
        let mut out = String::new();
        write_escaped(&mut out, s, max).unwrap();
        out
    }

    #[test]
    fn escapes_every_control_character() {
        assert_eq!(escaped("a\"b\\c", 100), r#"a\"b\\c"#);
        assert_eq!(
            escaped("\x1b[31mred\x1b[0m", 100),
            r"\u001b[31mred\u001b[0m"
        );
        assert_eq!(
            escaped("del\x7f c1\u{9b}31m", 100),
            r"del\u007f c1\u009b31m"
        );
        assert_eq!(escaped("l1\nl2\r\t\0", 100), r"l1\nl2\r\t\u0000");
        assert_eq!(escaped("é ü ✓", 100), "é ü ✓");
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(c).unwrap();
            let out = escaped(&c.to_string(), 10);
            assert!(out.chars().all(|c| !c.is_control()), "{out:?}");
            let parsed: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
            assert_eq!(parsed, c.to_string());
        }
    }

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(escaped("abcdef", 3), format!("abc{TRUNCATION_MARKER}"));
        assert_eq!(escaped("ééééé", 2), format!("éé{TRUNCATION_MARKER}"));
        assert_eq!(escaped("abc", 3), "abc");
    }
}
