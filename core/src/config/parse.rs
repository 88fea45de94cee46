//! The value parsers behind [`Env`](super::Env)'s typed getters, each
//! reporting the 1-based character position of a problem.

use std::str::FromStr;
use std::time::Duration;

use super::ParseError;

fn char_pos(s: &str, byte: usize) -> usize {
    s[..byte].chars().count() + 1
}

/// Parses a non-negative decimal number: digits, optionally a `.` and more digits.
/// Returns the value and the number of bytes consumed.
fn decimal(s: &str, start: usize) -> Result<(f64, usize), ParseError> {
    let bytes = s.as_bytes();
    let mut end = start;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let int_end = end;
    if end < bytes.len() && bytes[end] == b'.' {
        end += 1;
        let frac_start = end;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        if end == frac_start {
            return Err(ParseError::new(
                char_pos(s, end),
                "a digit after the decimal point",
            ));
        }
    }
    if int_end == start {
        return Err(ParseError::new(char_pos(s, start), "a number"));
    }
    let value: f64 = s[start..end]
        .parse()
        .map_err(|_| ParseError::new(char_pos(s, start), "a number"))?;
    Ok((value, end))
}

/// The digits of a decimal number at `start`: the integer digits, the
/// fraction digits (after a `.`), and the byte where the number ends.
fn decimal_digits(s: &str, start: usize) -> Result<(&str, &str, usize), ParseError> {
    let bytes = s.as_bytes();
    let digits_from = |from: usize| {
        from + bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int_end = digits_from(start);
    if int_end == start {
        return Err(ParseError::new(char_pos(s, start), "a number"));
    }
    if bytes.get(int_end) != Some(&b'.') {
        return Ok((&s[start..int_end], "", int_end));
    }
    let end = digits_from(int_end + 1);
    if end == int_end + 1 {
        return Err(ParseError::new(
            char_pos(s, end),
            "a digit after the decimal point",
        ));
    }
    Ok((&s[start..int_end], &s[int_end + 1..end], end))
}

/// Longest duration accepted, in nanoseconds (10^12 seconds).
const MAX_DURATION_NANOS: u128 = 1_000_000_000_000 * 1_000_000_000;

/// Parses a duration: one or more `<number><unit>` parts, units `ns`, `us` (or
/// `µs`), `ms`, `s`, `m`, `h`, `d`; `0` alone is zero. Examples: `250ms`, `2s`,
/// `1.5s`, `1m30s`. Exact to the nanosecond (integer arithmetic, so a
/// printed `Duration` reads back as the same value); fractions of a
/// nanosecond are dropped; at most 10^12 seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    if s.is_empty() {
        return Err(ParseError::new(1, "a duration such as 250ms or 2s"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let too_long = || ParseError::new(1, "a duration shorter than 10^12 seconds");
    let mut total: u128 = 0;
    let mut i = 0;
    while i < s.len() {
        let (int, frac, end) = decimal_digits(s, i)?;
        let unit_start = end;
        let rest = &s[unit_start..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(rest.len(), |(idx, _)| idx);
        let unit = &rest[..unit_len];
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => {
                return Err(ParseError::new(
                    char_pos(s, unit_start),
                    "a duration unit (ns, us, ms, s, m, h, d)",
                ));
            }
        };
        // Leading zeros do not count against the bound.
        let int = int.trim_start_matches('0');
        if int.len() > 24 {
            return Err(too_long());
        }
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| too_long())?
        };
        // Digits past the 20th are below a nanosecond for every unit.
        let frac = &frac[..frac.len().min(20)];
        let fraction: u128 = if frac.is_empty() {
            0
        } else {
            let digits: u128 = frac.parse().map_err(|_| too_long())?;
            digits * scale / 10u128.pow(frac.len() as u32)
        };
        total = whole
            .checked_mul(scale)
            .and_then(|n| n.checked_add(fraction))
            .and_then(|n| total.checked_add(n))
            .filter(|n| *n <= MAX_DURATION_NANOS)
            .ok_or_else(too_long)?;
        i = unit_start + unit_len;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Parses a fraction of one: `5%`, `12.5%`, `0.05`, `1`. Values above 100% (or 1)
/// are rejected.
pub fn parse_percentage(s: &str) -> Result<f64, ParseError> {
    let (value, end) = decimal(s, 0)?;
    let rest = &s[end..];
    let fraction = match rest {
        "%" => value / 100.0,
        "" => value,
        _ => {
            return Err(ParseError::new(
                char_pos(s, end),
                "'%' or the end of the value (write 5% or 0.05)",
            ));
        }
    };
    if fraction > 1.0 {
        return Err(ParseError::new(1, "at most 100% (or 1.0)"));
    }
    Ok(fraction)
}

/// Parses a boolean: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
pub fn parse_bool(s: &str) -> Result<bool, ParseError> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ParseError::new(
            1,
            "true or false (also 1/0, yes/no, on/off)",
        )),
    }
}

/// Parses a byte size: a whole number with an optional unit `B`, `KB`, `MB`, `GB`
/// (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024), any case.
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(ParseError::new(1, "a size such as 512, 64KiB or 1MB"));
    }
    let value: u64 = s[..digits]
        .parse()
        .map_err(|_| ParseError::new(1, "a size below 2^64 bytes"))?;
    let unit = &s[digits..];
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(ParseError::new(
                char_pos(s, digits),
                "a size unit (B, KB, MB, GB, KiB, MiB, GiB)",
            ));
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| ParseError::new(1, "a size below 2^64 bytes"))
}

/// Parses a non-negative integer (or any `FromStr` number type).
pub fn parse_number<T: FromStr>(s: &str) -> Result<T, ParseError> {
    if let Some(bad) = s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        return Err(ParseError::new(char_pos(s, bad.0), "a digit"));
    }
    s.parse()
        .map_err(|_| ParseError::new(1, "a number in range"))
}

/// Splits a comma-separated list, trimming each item. Empty items (`a,,b`) are an
/// error at their position; an empty value is an empty list.
pub fn parse_list(s: &str) -> Result<Vec<&str>, ParseError> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut offset = 0;
    for raw in s.split(',') {
        let item = raw.trim();
        if item.is_empty() {
            return Err(ParseError::new(
                char_pos(s, offset),
                "a list item before ','",
            ));
        }
        items.push(item);
        offset += raw.len() + 1;
    }
    Ok(items)
}

/// Parses each item of a comma-separated list with `item`; an item's error
/// position is reported within the whole value.
pub fn parse_list_with<T>(
    s: &str,
    mut item: impl FnMut(&str) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in s.split(',') {
        let lead = raw.len() - raw.trim_start().len();
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ParseError::new(
                char_pos(s, offset),
                "a list item before ','",
            ));
        }
        let shift = s[..offset + lead].chars().count();
        out.push(item(trimmed).map_err(|e| e.shifted(shift))?);
        offset += raw.len() + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        // Exact to the nanosecond, however long (found by fuzz/: summed in
        // f64, this read back as another duration).
        assert_eq!(
            ok("30799356756872001648ns"),
            Duration::new(30_799_356_756, 872_001_648)
        );
        assert_eq!(ok("1.000000001s"), Duration::new(1, 1));
        assert_eq!(ok("0.0000000001s"), Duration::ZERO);
        assert!(parse_duration("1000000000001s").is_err());
        assert_eq!(ok("1000000000000s"), Duration::from_secs(1_000_000_000_000));
        let err = |s: &str| parse_duration(s).unwrap_err();
        assert_eq!(err("250").position(), 4);
        assert_eq!(
            err("250").expected(),
            "a duration unit (ns, us, ms, s, m, h, d)"
        );
        assert_eq!(err("ms").position(), 1);
        assert_eq!(err("1.s").position(), 3);
        assert_eq!(err("2s3x").position(), 4);
        assert_eq!(err("").position(), 1);
        assert_eq!(err("-1s").position(), 1);
        assert_eq!(err("1e9999s").position(), 2);
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percentage("5%").unwrap(), 0.05);
        assert_eq!(parse_percentage("12.5%").unwrap(), 0.125);
        assert_eq!(parse_percentage("0.05").unwrap(), 0.05);
        assert_eq!(parse_percentage("1").unwrap(), 1.0);
        assert_eq!(parse_percentage("100%").unwrap(), 1.0);
        assert_eq!(parse_percentage("5 %").unwrap_err().position(), 2);
        assert_eq!(
            parse_percentage("150%").unwrap_err().expected(),
            "at most 100% (or 1.0)"
        );
        assert_eq!(parse_percentage("5").unwrap_err().position(), 1);
        assert_eq!(parse_percentage("x").unwrap_err().position(), 1);
    }

    #[test]
    fn booleans_sizes_numbers() {
        for t in ["true", "TRUE", "1", "yes", "On"] {
            assert!(parse_bool(t).unwrap());
        }
        for f in ["false", "0", "no", "OFF"] {
            assert!(!parse_bool(f).unwrap());
        }
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("2gib").unwrap(), 2 << 30);
        assert_eq!(parse_size("12XB").unwrap_err().position(), 3);
        assert_eq!(
            parse_size("99999999999999999999").unwrap_err().position(),
            1
        );
        assert_eq!(parse_number::<u32>("42").unwrap(), 42);
        assert_eq!(parse_number::<u32>("4x2").unwrap_err().position(), 2);
        assert_eq!(
            parse_number::<u8>("300").unwrap_err().expected(),
            "a number in range"
        );
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("a, b ,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(parse_list("").unwrap(), Vec::<&str>::new());
        assert_eq!(parse_list("a,,b").unwrap_err().position(), 3);
        assert_eq!(parse_list("a,").unwrap_err().position(), 3);
        let durations = parse_list_with("1s, 2x", parse_duration).unwrap_err();
        assert_eq!(durations.position(), 6);
        assert_eq!(
            parse_list_with("1s,250ms", parse_duration).unwrap(),
            [Duration::from_secs(1), Duration::from_millis(250)]
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic_and_positions_are_in_range(s in "\\PC{0,40}") {
            let len = s.chars().count().max(1);
            for result in [
                parse_duration(&s).err(),
                parse_percentage(&s).err(),
                parse_bool(&s).err(),
                parse_size(&s).err(),
                parse_number::<u64>(&s).err(),
                parse_list(&s).err(),
                parse_list_with(&s, parse_duration).err(),
            ].into_iter().flatten() {
                prop_assert!(result.position() >= 1 && result.position() <= len + 1, "{result:?} for {s:?}");
            }
        }

        #[test]
        fn durations_round_trip_millis(ms in 0u64..10_000_000) {
            prop_assert_eq!(parse_duration(&format!("{ms}ms")).unwrap(), Duration::from_millis(ms));
        }

        #[test]
        fn percentages_in_range(p in 0u32..=10_000) {
            let v = parse_percentage(&format!("{}.{:02}%", p / 100, p % 100)).unwrap();
            prop_assert!((v - f64::from(p) / 10_000.0).abs() < 1e-12);
        }
    }
}
