//! The `TELLTALE_CHAOS` parser, and its compiler-style errors.
//!
//! The parser is a hand-written recursive descent over the grammar in the
//! [crate docs](crate#grammar). No parser crate was taken: telltale needs the
//! exact character position and the "expected …" text of every error, and
//! durations, percentages and sizes inside rules are parsed by the shared
//! `telltale_core::config` parsers with their positions shifted into the whole
//! value, which a combinator crate would not know about.
//!
//! ```
//! use telltale_chaos::parse::{parse_rules, RuleError};
//!
//! let value = "in GET /payments/*: 30% dely(200ms)";
//! let err = parse_rules(value).unwrap_err();
//! assert_eq!(err.position(), 25);
//! let err = RuleError::new("TELLTALE_CHAOS", value, err);
//! assert_eq!((err.line(), err.column()), (1, 25));
//! assert_eq!(err.to_string(), "\
//! invalid TELLTALE_CHAOS at line 1, column 25: expected a fault: delay, status, grpc, abort, reset, timeout, slow or truncate
//!   |
//! 1 | in GET /payments/*: 30% dely(200ms)
//!   |                         ^");
//! ```

use std::fmt;
use std::time::Duration;

use http::{HeaderName, Method, StatusCode};
use telltale_core::config::{
    ParseError, parse_duration, parse_number, parse_percentage, parse_size,
};
use telltale_core::{ConfigError, GrpcCode, Side};

use crate::rules::{
    Delay, Fault, Group, HeaderMatch, HostPattern, Matcher, PathPattern, Rule, RuleSet,
};

/// Parses a rule set; the error carries the 1-based character position.
pub fn parse_rules(s: &str) -> Result<RuleSet, ParseError> {
    let mut p = Parser { s, i: 0 };
    p.rules()
}

/// Parses a fault chain such as `delay(200ms) + status(503)` (the part of a rule
/// after its probability and count).
pub fn parse_faults(s: &str) -> Result<Vec<Fault>, ParseError> {
    let mut p = Parser { s, i: 0 };
    p.ws();
    let faults = p.chain()?;
    p.ws();
    if p.i < s.len() {
        return Err(p.err("'+' between chained faults, or the end"));
    }
    Ok(faults)
}

impl std::str::FromStr for RuleSet {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_rules(s)
    }
}

const FAULTS: &str = "a fault: delay, status, grpc, abort, reset, timeout, slow or truncate";

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

type R<T> = Result<T, ParseError>;

impl<'a> Parser<'a> {
    fn pos_of(&self, byte: usize) -> usize {
        self.s[..byte].chars().count() + 1
    }

    fn err(&self, expected: &'static str) -> ParseError {
        ParseError::new(self.pos_of(self.i), expected)
    }

    fn err_at(&self, byte: usize, expected: &'static str) -> ParseError {
        ParseError::new(self.pos_of(byte), expected)
    }

    /// Shifts an error from a sub-parser of the token starting at `byte`.
    fn shift(&self, byte: usize, e: ParseError) -> ParseError {
        e.shifted(self.pos_of(byte) - 1)
    }

    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.s[self.i..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.i += c.len_utf8();
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, expected: &'static str) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(expected))
        }
    }

    fn ws(&mut self) -> bool {
        let start = self.i;
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        self.i > start
    }

    fn take_while(&mut self, mut f: impl FnMut(char, Option<char>) -> bool) -> (usize, &'a str) {
        let start = self.i;
        while let Some(c) = self.peek() {
            if !f(c, self.peek2()) {
                break;
            }
            self.bump();
        }
        let s: &'a str = self.s;
        (start, &s[start..self.i])
    }

    fn word(&mut self) -> (usize, String) {
        let (start, w) = self.take_while(|c, _| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        (start, w.to_owned())
    }

    fn rules(&mut self) -> R<RuleSet> {
        self.ws();
        if self.i == self.s.len() {
            return Err(self.err("a rule group such as `in GET /path: 10% status(503)`"));
        }
        let mut groups = Vec::new();
        loop {
            groups.push(self.group()?);
            self.ws();
            if self.eat('|') {
                self.ws();
                continue;
            }
            if self.i == self.s.len() {
                return Ok(RuleSet { groups });
            }
            return Err(self.err(
                "';' between rules, '+' between chained faults, '|' between groups, or the end",
            ));
        }
    }

    fn group(&mut self) -> R<Group> {
        let (start, dir) = self.word();
        let side = match dir.as_str() {
            "in" => Some(Side::Server),
            "out" => Some(Side::Client),
            "any" => None,
            _ => return Err(self.err_at(start, "a direction: in, out or any")),
        };
        let mut matcher = Matcher::new(side);
        loop {
            let spaced = self.ws();
            match self.peek() {
                Some(':') => {
                    self.bump();
                    break;
                }
                None => return Err(self.err("':' after the matcher")),
                _ if !spaced => {
                    return Err(self.err("whitespace or ':' after the matcher part"));
                }
                Some('/') => {
                    let at = self.i;
                    let path = self.path()?;
                    if matcher.path.replace(path).is_some() {
                        return Err(self.err_at(at, "one path per group (write another group)"));
                    }
                }
                Some('[') => matcher.headers.push(self.header()?),
                Some(c) if c.is_ascii_alphanumeric() || c == '*' => {
                    let (at, token) = self.take_while(|c, next| {
                        c.is_ascii_alphanumeric()
                            || matches!(c, '.' | '-' | '_' | '*')
                            || (c == ':' && next.is_some_and(|n| n.is_ascii_digit()))
                    });
                    if token.bytes().all(|b| b.is_ascii_uppercase()) {
                        let method = Method::from_bytes(token.as_bytes())
                            .map_err(|_| self.err_at(at, "an HTTP method"))?;
                        if matcher.method.replace(method).is_some() {
                            return Err(self.err_at(at, "one method per group"));
                        }
                    } else {
                        let host = HostPattern(token.to_ascii_lowercase());
                        if matcher.host.replace(host).is_some() {
                            return Err(self.err_at(at, "one host per group"));
                        }
                    }
                }
                Some(_) => {
                    return Err(self.err(
                        "a method (GET), a path (/x/*), a host (api.internal), a header ([x-name]) or ':'",
                    ));
                }
            }
        }
        self.ws();
        let mut rules = vec![self.rule()?];
        loop {
            let save = self.i;
            self.ws();
            if self.eat(';') {
                self.ws();
                rules.push(self.rule()?);
            } else {
                self.i = save;
                return Ok(Group { matcher, rules });
            }
        }
    }

    fn path(&mut self) -> R<PathPattern> {
        let (start, path) =
            self.take_while(|c, _| !c.is_whitespace() && !matches!(c, ':' | '|' | ';' | '[' | ']'));
        let mut offset = start;
        let count = path.split('/').count();
        for (n, seg) in path.split('/').enumerate() {
            let bad = (seg == "**" && n + 1 != count)
                || (seg.contains("**") && seg != "**")
                || (seg.contains(['{', '}'])
                    && !(seg.starts_with('{')
                        && seg.ends_with('}')
                        && seg.len() > 2
                        && !seg[1..seg.len() - 1].contains(['{', '}', '*'])));
            if bad {
                return Err(self.err_at(
                    offset,
                    "a path segment: literal, glob with *, {name}, or ** as the last segment",
                ));
            }
            offset += seg.len() + 1;
        }
        Ok(PathPattern(path.to_owned()))
    }

    fn header(&mut self) -> R<HeaderMatch> {
        self.bump();
        let (at, name) =
            self.take_while(|c, _| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| self.err_at(at, "a header name"))?;
        let value = if self.eat('=') {
            let (at, v) = self.take_while(|c, _| c.is_ascii_graphic() && c != ']');
            if v.is_empty() {
                return Err(self.err_at(at, "a header value (visible ASCII, no ']')"));
            }
            Some(v.to_owned())
        } else {
            None
        };
        self.expect(']', "']' closing the header matcher")?;
        Ok(HeaderMatch { name, value })
    }

    fn rule(&mut self) -> R<Rule> {
        let mut rule = Rule {
            probability: None,
            limit: None,
            faults: Vec::new(),
        };
        if self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
            let (at, token) =
                self.take_while(|c, _| c.is_ascii_digit() || matches!(c, '.' | '%' | '*'));
            if let Some(n) = token.strip_suffix('*') {
                rule.limit = Some(self.limit(at, n)?);
            } else {
                rule.probability = Some(parse_percentage(token).map_err(|e| self.shift(at, e))?);
                if !self.ws() {
                    return Err(self.err("whitespace after the probability"));
                }
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    let (at, token) = self.take_while(|c, _| c.is_ascii_digit() || c == '*');
                    let Some(n) = token.strip_suffix('*') else {
                        return Err(self.err("'*' after the count (3* = the first 3 times)"));
                    };
                    rule.limit = Some(self.limit(at, n)?);
                }
            }
            if rule.limit.is_some() && !self.ws() {
                return Err(self.err("whitespace after the count"));
            }
        }
        rule.faults = self.chain()?;
        Ok(rule)
    }

    fn limit(&self, at: usize, n: &str) -> R<u64> {
        if n.is_empty() {
            return Err(self.err_at(at, "a count such as 3*"));
        }
        parse_number::<u64>(n).map_err(|e| self.shift(at, e))
    }

    fn chain(&mut self) -> R<Vec<Fault>> {
        let mut faults = vec![self.fault()?];
        loop {
            let save = self.i;
            self.ws();
            if self.peek() == Some('+') {
                if faults.last().is_some_and(Fault::is_terminal) {
                    return Err(self.err(
                        "';', '|' or the end: nothing can follow a terminal fault (status, grpc, abort, reset, timeout) in a chain",
                    ));
                }
                self.bump();
                self.ws();
                faults.push(self.fault()?);
            } else {
                self.i = save;
                return Ok(faults);
            }
        }
    }

    fn fault(&mut self) -> R<Fault> {
        let (start, name) = self.word();
        let fault = match name.as_str() {
            "delay" => {
                self.open()?;
                let lo = self.duration()?;
                self.ws();
                let delay = if self.s[self.i..].starts_with("..") {
                    self.i += 2;
                    self.ws();
                    let at = self.i;
                    let hi = self.duration()?;
                    if hi < lo {
                        return Err(self.err_at(at, "an upper bound not below the lower bound"));
                    }
                    Delay::Range(lo, hi)
                } else if self.eat(',') {
                    self.ws();
                    self.key("jitter", "jitter=<duration>")?;
                    Delay::Jitter(lo, self.duration()?)
                } else {
                    Delay::Fixed(lo)
                };
                self.close()?;
                Fault::Delay(delay)
            }
            "status" => {
                self.open()?;
                let (at, code) = self.take_while(|c, _| c.is_ascii_digit());
                let status = code
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| self.err_at(at, "an HTTP status code (100-999)"))?;
                let (mut body, mut retry_after) = (None, None);
                while self.comma()? {
                    let (at, key) = self.word();
                    self.expect('=', "'=' after the option name")?;
                    match key.as_str() {
                        "body" if body.is_none() => body = Some(self.string()?),
                        "retry-after" if retry_after.is_none() => {
                            retry_after = Some(self.duration()?);
                        }
                        _ => {
                            return Err(self
                                .err_at(at, "body=\"...\" or retry-after=<duration>, once each"));
                        }
                    }
                }
                self.close()?;
                Fault::Status {
                    status,
                    body,
                    retry_after,
                }
            }
            "grpc" => {
                self.open()?;
                let (at, token) = self.take_while(|c, _| c.is_ascii_alphanumeric() || c == '_');
                let code = token
                    .parse::<GrpcCode>()
                    .ok()
                    .filter(|c| *c != GrpcCode::Ok)
                    .ok_or_else(|| {
                        self.err_at(at, "a gRPC error code such as UNAVAILABLE or 14 (not OK)")
                    })?;
                let mut message = None;
                if self.comma()? {
                    let at = self.i;
                    let (_, key) = self.word();
                    if key != "message" {
                        return Err(self.err_at(at, "message=\"...\""));
                    }
                    self.expect('=', "'=' after message")?;
                    message = Some(self.string()?);
                }
                self.close()?;
                Fault::Grpc { code, message }
            }
            "abort" => Fault::Abort,
            "reset" => Fault::Reset,
            "timeout" => Fault::Timeout,
            "slow" => {
                self.open()?;
                let size = self.size()?;
                if size == 0 {
                    return Err(self.err("at least 1 byte per second"));
                }
                if !self.s[self.i..].starts_with("/s") {
                    return Err(self.err("'/s' after the rate (slow(1KiB/s))"));
                }
                self.i += 2;
                self.close()?;
                Fault::Slow {
                    bytes_per_second: size,
                }
            }
            "truncate" => {
                self.open()?;
                let after = self.size()?;
                self.close()?;
                Fault::Truncate { after }
            }
            _ => return Err(self.err_at(start, FAULTS)),
        };
        Ok(fault)
    }

    fn open(&mut self) -> R<()> {
        self.expect('(', "'(' after the fault name")?;
        self.ws();
        Ok(())
    }

    fn close(&mut self) -> R<()> {
        self.ws();
        self.expect(')', "')' (or ', option=value')")
    }

    fn comma(&mut self) -> R<bool> {
        self.ws();
        if self.eat(',') {
            self.ws();
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn key(&mut self, key: &str, expected: &'static str) -> R<()> {
        let (at, word) = self.word();
        if word != key || !self.eat('=') {
            return Err(self.err_at(at, expected));
        }
        Ok(())
    }

    fn duration(&mut self) -> R<Duration> {
        let (at, token) =
            self.take_while(|c, next| c.is_alphanumeric() || (c == '.' && next != Some('.')));
        if token.is_empty() {
            return Err(self.err_at(at, "a duration such as 250ms or 2s"));
        }
        let token = token.to_owned();
        parse_duration(&token).map_err(|e| self.shift(at, e))
    }

    fn size(&mut self) -> R<u64> {
        let (at, token) = self.take_while(|c, _| c.is_ascii_alphanumeric());
        if token.is_empty() {
            return Err(self.err_at(at, "a size such as 512, 64KiB or 1MB"));
        }
        let token = token.to_owned();
        parse_size(&token).map_err(|e| self.shift(at, e))
    }

    fn string(&mut self) -> R<String> {
        self.expect('"', "a double-quoted string")?;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err("'\"' closing the string")),
                Some('"') => {
                    self.bump();
                    return Ok(out);
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some('n') => out.push('\n'),
                        _ => return Err(self.err("an escape: \\\", \\\\ or \\n")),
                    }
                    self.bump();
                }
                Some(c) => {
                    out.push(c);
                    self.bump();
                }
            }
        }
    }
}

/// A malformed rule value: the variable, the value, and where and what was
/// expected. Displays like a compiler error, with the line and a caret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    variable: String,
    value: String,
    position: usize,
    line: usize,
    column: usize,
    expected: String,
}

impl RuleError {
    /// Names `variable`, holding `value`, as failing with `error`.
    pub fn new(variable: impl Into<String>, value: &str, error: ParseError) -> Self {
        let position = error.position();
        let mut line = 1;
        let mut column = 1;
        for c in value.chars().take(position - 1) {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        RuleError {
            variable: variable.into(),
            value: value.to_owned(),
            position,
            line,
            column,
            expected: error.expected().to_owned(),
        }
    }

    /// The variable that held the rules.
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// The 1-based character position in the whole value.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column (in characters) within the line.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What was expected there.
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// The same error as the one-line [`ConfigError`] every telltale crate returns.
    pub fn to_config_error(&self) -> ConfigError {
        ConfigError::new(
            self.variable.clone(),
            &self.value,
            ParseError::new(self.position, self.expected.clone()),
        )
    }
}

const WINDOW: usize = 100;

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} at line {}, column {}: expected {}",
            self.variable, self.line, self.column, self.expected
        )?;
        let text = self.value.split('\n').nth(self.line - 1).unwrap_or("");
        let chars: Vec<char> = text.chars().collect();
        let caret = self.column - 1;
        let from = caret.saturating_sub(WINDOW / 2);
        let to = (from + WINDOW).min(chars.len());
        let mut shown = String::new();
        let mut caret_at = 0;
        if from > 0 {
            shown.push_str("...");
        }
        for (i, c) in chars.iter().enumerate().take(to).skip(from) {
            if i == caret {
                caret_at = shown.chars().count();
            }
            if *c == ' ' {
                shown.push(' ');
            } else {
                shown.extend(c.escape_debug());
            }
        }
        if caret >= to {
            caret_at = shown.chars().count();
        }
        if to < chars.len() {
            shown.push_str("...");
        }
        let gutter = self.line.to_string();
        let pad = " ".repeat(gutter.len());
        write!(
            f,
            "\n{pad} |\n{gutter} | {shown}\n{pad} | {}^",
            " ".repeat(caret_at)
        )
    }
}

impl std::error::Error for RuleError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> (usize, String) {
        let e = parse_rules(s).unwrap_err();
        (e.position(), e.expected().to_owned())
    }

    #[test]
    fn the_issue_example_parses() {
        let s = "in GET /payments/*: 30% delay(200ms..800ms); 5% status(503) | out fraud-api: 10% grpc(UNAVAILABLE); 3* abort";
        let rules = parse_rules(s).unwrap();
        assert_eq!(rules.groups.len(), 2);
        assert_eq!(
            rules.groups[1].matcher.host.as_ref().unwrap().as_str(),
            "fraud-api"
        );
        assert_eq!(rules.groups[1].rules[1].limit, Some(3));
        assert_eq!(rules.groups[1].rules[1].faults, [Fault::Abort]);
        assert_eq!(rules.to_string(), s);
    }

    #[test]
    fn everything_parses_and_prints_canonically() {
        let s = "any POST /a/{id}/**  db.internal:5432 [x-debug] [x-tenant=acme]:\n 0.125 2* delay(1.5s, jitter=100ms) + slow(1KiB/s) + truncate(10) ;status(429, retry-after=2s, body=\"slow \\\"down\\\"\") | in: grpc(14, message=\"no\") ; reset; timeout";
        let rules = parse_rules(s).unwrap();
        assert_eq!(
            rules.to_string(),
            "any POST /a/{id}/** db.internal:5432 [x-debug] [x-tenant=acme]: 12.5% 2* delay(1500ms, jitter=100ms) + slow(1024/s) + truncate(10); status(429, body=\"slow \\\"down\\\"\", retry-after=2s) | in: grpc(UNAVAILABLE, message=\"no\"); reset; timeout"
        );
        assert_eq!(parse_rules(&rules.to_string()).unwrap(), rules);
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert_eq!(err("").0, 1);
        assert_eq!(err("inn GET /x: abort").1, "a direction: in, out or any");
        assert_eq!(err("in GET /x abort"), (16, "':' after the matcher".into()));
        assert_eq!(err("in /x: 30% delay(20xs)").0, 20);
        assert_eq!(err("in /x: 30% delay(200ms..100ms)").0, 25);
        assert_eq!(err("in /x: 300% abort").1, "at most 100% (or 1.0)");
        assert_eq!(err("in /x: 30% abort + abort").0, 18);
        assert_eq!(err("in /x: status(99)").0, 15);
        assert_eq!(err("in /x: grpc(OK)").0, 13);
        assert_eq!(err("in /x: grpc(UNAVAILABLE, msg=\"x\")").0, 26);
        assert_eq!(err("in /x: slow(0/s)").0, 14);
        assert_eq!(err("in /x: slow(10)").0, 15);
        assert_eq!(err("in /x: status(503, body=\"x)").0, 28);
        assert_eq!(err("in /x/**/y: abort").0, 7);
        assert_eq!(err("in /x: abort;").0, 14);
        assert_eq!(err("in /x: abort |").0, 15);
        assert_eq!(err("in /x: x* abort").0, 8);
        assert_eq!(err("in /x: 5%abort").0, 10);
        assert_eq!(
            err("in /x /y: abort").1,
            "one path per group (write another group)"
        );
        assert_eq!(err("in [bad name]: abort").0, 8);
    }

    #[test]
    fn error_display_has_line_column_and_caret() {
        let value = "in /x: abort |\n  out api: 10% dlay(1s)";
        let e = RuleError::new("TELLTALE_CHAOS", value, parse_rules(value).unwrap_err());
        assert_eq!((e.line(), e.column()), (2, 16));
        assert_eq!(
            e.to_string(),
            format!(
                "invalid TELLTALE_CHAOS at line 2, column 16: expected {FAULTS}\n  |\n2 |   out api: 10% dlay(1s)\n  |                ^"
            )
        );
        assert_eq!(e.to_config_error().variable(), "TELLTALE_CHAOS");
        assert_eq!(e.to_config_error().position(), 31);
    }

    #[test]
    fn fault_chains_alone() {
        assert_eq!(
            parse_faults(" delay(1s) + status(503) ").unwrap(),
            [
                Fault::Delay(Delay::Fixed(Duration::from_secs(1))),
                Fault::status(503)
            ]
        );
        assert_eq!(parse_faults("abort x").unwrap_err().position(), 7);
    }
}
