//! The `tracestate` list of W3C Trace Context Level 2: parsing, mutation and
//! the size limits.
//!
//! Written here rather than taken from `opentelemetry::trace::TraceState`,
//! whose key check follows Level 1's `tenant@system` grammar (it refuses
//! keys such as `foo@` or `t@` followed by 14 characters that Level 2
//! allows) and which accepts empty values.

use std::fmt;

/// Most list members a `tracestate` carries.
pub const MAX_MEMBERS: usize = 32;
/// Size of the combined header telltale propagates; larger lists are
/// truncated by whole entries (entries longer than [`LONG_ENTRY`] first,
/// then from the right).
pub const MAX_HEADER_LEN: usize = 512;
/// Entries longer than this are the first removed when truncating.
pub const LONG_ENTRY: usize = 128;
/// Longest key and longest value, in characters.
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;

/// A `tracestate` list member that cannot be stored: its key or value does
/// not follow the grammar.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid tracestate list member {key:?}={value:?}: {reason}")]
pub struct InvalidMember {
    key: String,
    value: String,
    reason: &'static str,
}

/// The `tracestate` list: vendor entries, leftmost most recent.
///
/// Parsing ([`parse`](Self::parse)) follows Trace Context Level 2:
/// - list members are separated by `,`, with optional spaces and tabs around
///   them; empty members are allowed and skipped (so an empty header, or an
///   empty header followed by `foo=1`, parse fine);
/// - a key is 1 to 256 characters: a lowercase letter or a digit, then
///   `a-z 0-9 _ - * / @` (Level 2's grammar: `@` is an ordinary key
///   character, so `tenant@system`, `foo@` and `foo@@bar` are all keys);
/// - a value is 1 to 256 printable ASCII characters other than `,` and `=`,
///   not ending with a space (an empty value is invalid);
/// - a header that does not follow this grammar is discarded whole: one
///   invalid member, more than 32 members, or a duplicate key (only one
///   entry per key is allowed, and which one is the caller's position
///   cannot be known). The specification lets a receiver discard the whole
///   header or only the invalid entries; telltale never forwards a list that
///   no upstream vendor wrote, and this is what the W3C test suite checks at
///   its strict level.
///
/// Mutations ([`insert`](Self::insert)) move the updated key to the left and
/// keep at most 32 members; [`header`](Self::header) truncates the list to
/// 512 characters by whole entries, as the specification says.
///
/// ```
/// use telltale_telemetry::propagation::W3cTraceState;
///
/// let mut ts = W3cTraceState::parse("congo=t61rcWkgMzE, \t tenant@rojo=00f067aa0ba902b7");
/// assert_eq!(ts.header(), "congo=t61rcWkgMzE,tenant@rojo=00f067aa0ba902b7");
/// ts.insert("tenant@rojo", "b9c7c989f97918e1").unwrap();
/// assert_eq!(ts.header(), "tenant@rojo=b9c7c989f97918e1,congo=t61rcWkgMzE");
/// // One invalid member (an uppercase key) discards the whole header.
/// assert!(W3cTraceState::parse("congo=t61rcWkgMzE,BAD=1").is_empty());
/// assert!(W3cTraceState::parse("foo=1,foo=2").is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct W3cTraceState {
    members: Vec<(String, String)>,
}

/// `keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"`.
fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// Whether `key` follows the Level 2 key grammar:
/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`.
pub(crate) fn valid_key(key: &str) -> bool {
    let k = key.as_bytes();
    (1..=MAX_KEY_LEN).contains(&k.len())
        && (k[0].is_ascii_lowercase() || k[0].is_ascii_digit())
        && k.iter().all(|&b| key_char(b))
}

/// Whether `value` follows the value grammar:
/// `value = 0*255(chr) nblk-chr`.
pub(crate) fn valid_value(value: &str) -> bool {
    let v = value.as_bytes();
    (1..=MAX_VALUE_LEN).contains(&v.len())
        && v.iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && v.last() != Some(&b' ')
}

fn check(key: &str, value: &str) -> Result<(), InvalidMember> {
    let reason = if !valid_key(key) {
        "the key is not 1 to 256 of a-z 0-9 _ - * / @ starting with a-z or 0-9"
    } else if !valid_value(value) {
        "the value is not 1 to 256 printable ASCII characters other than ',' and '=', not ending in a space"
    } else {
        return Ok(());
    };
    Err(InvalidMember {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    })
}

/// The non-empty list members of `value`, optional whitespace removed.
fn raw_members(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|raw| raw.trim_matches([' ', '\t']))
        .filter(|member| !member.is_empty())
}

impl W3cTraceState {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a received header value (several received headers joined with
    /// `,`); see the [type docs](Self) for the rules. Never fails: a header
    /// that cannot be parsed is an empty list.
    pub fn parse(value: &str) -> Self {
        let mut members: Vec<(String, String)> = Vec::new();
        for member in raw_members(value) {
            if members.len() == MAX_MEMBERS {
                return Self::default();
            }
            let Some((key, value)) = member.split_once('=') else {
                return Self::default();
            };
            if check(key, value).is_err() || members.iter().any(|(k, _)| k == key) {
                return Self::default();
            }
            members.push((key.to_owned(), value.to_owned()));
        }
        W3cTraceState { members }
    }

    /// The valid members of `value`, each invalid member left out alone, the
    /// first of duplicate keys kept, at most 32: for lists telltale sends
    /// from what code set (opentelemetry's `TraceState`), not for received
    /// headers.
    pub(crate) fn parse_members(value: &str) -> Self {
        let mut list = W3cTraceState::new();
        for member in raw_members(value) {
            let Some((key, value)) = member.split_once('=') else {
                continue;
            };
            if check(key, value).is_ok() && list.get(key).is_none() && list.len() < MAX_MEMBERS {
                list.members.push((key.to_owned(), value.to_owned()));
            }
        }
        list
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value` and moves it to the left (the mutation rule);
    /// drops the rightmost member when the list would exceed 32.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), InvalidMember> {
        check(key, value)?;
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        self.members.truncate(MAX_MEMBERS);
        Ok(())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.members.iter().position(|(k, _)| k == key)?;
        Some(self.members.remove(i).1)
    }

    /// The members, leftmost first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No member: a sender sends no `tracestate` header then.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn combined_len(&self) -> usize {
        let entries: usize = self
            .members
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len())
            .sum();
        entries + self.members.len().saturating_sub(1)
    }

    /// Truncates the list by whole entries until its header fits in
    /// [`MAX_HEADER_LEN`] characters: entries longer than [`LONG_ENTRY`]
    /// are removed first (rightmost first), then entries from the right.
    pub fn truncate_to_limit(&mut self) {
        while self.combined_len() > MAX_HEADER_LEN {
            let long = self
                .members
                .iter()
                .rposition(|(k, v)| k.len() + 1 + v.len() > LONG_ENTRY);
            match long {
                Some(i) => {
                    self.members.remove(i);
                }
                None => {
                    self.members.pop();
                }
            }
        }
    }

    /// The header value: members joined with `,`, truncated to
    /// [`MAX_HEADER_LEN`] characters. Empty when there is no member (and
    /// then no header should be sent).
    pub fn header(&self) -> String {
        let mut list = self.clone();
        list.truncate_to_limit();
        list.to_string()
    }
}

impl fmt::Display for W3cTraceState {
    /// Every member, joined with `,`, without truncation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(ts: &W3cTraceState) -> Vec<&str> {
        ts.iter().map(|(k, _)| k).collect()
    }

    // Cases of the W3C trace-context test suite (test/test.py), tracestate.
    #[test]
    fn empty_and_ows() {
        assert!(W3cTraceState::parse("").is_empty());
        assert!(W3cTraceState::parse(" , \t ,").is_empty());
        assert_eq!(W3cTraceState::parse(", foo=1").header(), "foo=1");
        assert_eq!(W3cTraceState::parse("foo=1, ").header(), "foo=1");
        for s in [
            "foo=1 \t , \t bar=2, \t baz=3",
            "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
        ] {
            assert_eq!(W3cTraceState::parse(s).header(), "foo=1,bar=2,baz=3");
        }
        for s in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            assert_eq!(W3cTraceState::parse(s).get("foo"), Some("1"), "{s:?}");
        }
    }

    #[test]
    fn joined_headers_keep_their_order() {
        let ts = W3cTraceState::parse("foo=1,bar=2, rojo=1,congo=2, baz=3");
        assert_eq!(keys(&ts), ["foo", "bar", "rojo", "congo", "baz"]);
    }

    #[test]
    fn all_allowed_characters() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let value: String = (0x20u8..=0x7e)
            .filter(|b| *b != b',' && *b != b'=')
            .map(char::from)
            .collect();
        let ts = W3cTraceState::parse(&format!("{key}={value}"));
        assert_eq!(ts.get(key), Some(value.as_str()));
        let vendor = format!("{key}@a-z0-9_-*/");
        let ts = W3cTraceState::parse(&format!("{vendor}={value}"));
        assert_eq!(ts.get(&vendor), Some(value.as_str()));
    }

    #[test]
    fn one_invalid_member_discards_the_whole_list() {
        let long_key = format!("{}=1", "z".repeat(257));
        for bad in [
            "foo =1",
            "FOO=1",
            "foo.bar=1",
            "@foo=1",
            "_foo=1",
            "foo=",
            "foo=bar=baz",
            "foo",
            "=1",
            "foo=a\u{7f}",
            "foo=a\tb",
            long_key.as_str(),
        ] {
            for list in [
                format!("{bad},bar=2"),
                format!("bar=2,{bad}"),
                bad.to_owned(),
            ] {
                assert!(W3cTraceState::parse(&list).is_empty(), "{list:?}");
            }
        }
        // A trailing space is optional whitespace, a leading one is part of
        // the value.
        assert_eq!(W3cTraceState::parse("foo= 1 ").get("foo"), Some(" 1"));
    }

    #[test]
    fn level2_keys_take_at_signs_anywhere_after_the_first_character() {
        for key in [
            "foo@",
            "foo@@bar",
            "foo@bar@baz",
            "t@1abc",
            "1tenant@vendor",
            "0",
            "a@",
        ] {
            let ts = W3cTraceState::parse(&format!("{key}=1,bar=2"));
            assert_eq!(ts.header(), format!("{key}=1,bar=2"), "{key:?}");
        }
    }

    #[test]
    fn key_lengths() {
        let ok = |k: &str| valid_key(k);
        assert!(ok(&"z".repeat(256)));
        assert!(!ok(&"z".repeat(257)));
        assert!(!ok(""));
        // Level 1's tenant (241) and system (14) limits are gone: only the
        // whole key's 256 characters count.
        assert!(ok(&format!("{}@{}", "t".repeat(241), "v".repeat(14))));
        assert!(ok(&format!("{}@v", "t".repeat(242))));
        assert!(ok(&format!("t@{}", "v".repeat(15))));
        assert!(ok(&format!("{}@{}", "t".repeat(200), "v".repeat(55))));
        assert!(!ok(&format!("{}@{}", "t".repeat(200), "v".repeat(56))));
        let v256 = "v".repeat(256);
        assert!(valid_value(&v256));
        assert!(!valid_value(&"v".repeat(257)));
        assert!(W3cTraceState::parse(&format!("foo=1,{}=1", "z".repeat(257))).is_empty());
        assert_eq!(
            W3cTraceState::parse(&format!("foo=1,{}=1", "z".repeat(256))).len(),
            2
        );
    }

    #[test]
    fn members_set_in_code_lose_only_their_invalid_members() {
        let ts = W3cTraceState::parse_members("a=1,BAD=2,b=,c=3,a=4, ,d");
        assert_eq!(ts.header(), "a=1,c=3");
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            W3cTraceState::parse_members(&many.join(",")).len(),
            MAX_MEMBERS
        );
    }

    #[test]
    fn member_count_limit() {
        let list = |n: usize| {
            (1..=n)
                .map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let ts = W3cTraceState::parse(&list(32));
        assert_eq!(ts.len(), 32);
        assert_eq!(ts.get("bar01"), Some("01"));
        assert!(W3cTraceState::parse(&list(33)).is_empty());
        // Empty members do not count.
        assert_eq!(W3cTraceState::parse(&format!(",,{},,", list(32))).len(), 32);
    }

    #[test]
    fn duplicate_keys_discard_the_list() {
        for s in [
            "foo=1,foo=1",
            "foo=1,foo=2",
            "foo=1, foo=1",
            "bar=1,foo=1,foo=2",
        ] {
            assert!(W3cTraceState::parse(s).is_empty(), "{s:?}");
        }
    }

    #[test]
    fn mutation_moves_the_key_left() {
        let mut ts = W3cTraceState::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        ts.insert("congo", "ucfJifl5GOE").unwrap();
        assert_eq!(ts.header(), "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7");
        ts.insert("new", "1").unwrap();
        assert_eq!(keys(&ts), ["new", "congo", "rojo"]);
        assert!(ts.insert("Bad", "1").is_err());
        assert!(ts.insert("ok", "").is_err());
        assert_eq!(ts.remove("congo").as_deref(), Some("ucfJifl5GOE"));
        assert_eq!(keys(&ts), ["new", "rojo"]);
        // The 33rd insert drops the rightmost member.
        let mut full = W3cTraceState::new();
        for i in 0..33 {
            full.insert(&format!("k{i}"), "v").unwrap();
        }
        assert_eq!(full.len(), 32);
        assert_eq!(full.iter().next().unwrap().0, "k32");
        assert_eq!(full.get("k0"), None);
    }

    #[test]
    fn truncation_removes_long_entries_first_then_from_the_right() {
        let long = format!("long={}", "x".repeat(200));
        let mut parts = vec!["a=1".to_owned(), long.clone()];
        for i in 0..20 {
            parts.push(format!("k{i:02}={}", "y".repeat(25)));
        }
        let ts = W3cTraceState::parse(&parts.join(","));
        assert!(ts.to_string().len() > MAX_HEADER_LEN);
        let header = ts.header();
        assert!(header.len() <= MAX_HEADER_LEN, "{}", header.len());
        assert!(!header.contains("long="));
        assert!(header.starts_with("a=1,k00="));
        // Still too long without the long entry: entries go from the right.
        let out = W3cTraceState::parse(&header);
        assert_eq!(out.get("k16"), None);
        assert_eq!(out.iter().last().unwrap().0, "k15");
    }

    fn member() -> impl Strategy<Value = (String, String)> {
        (
            prop_oneof!["[a-z0-9][a-z0-9_*/-]{0,20}", "[a-z0-9][a-z0-9_*/@-]{0,30}",],
            "[ -+\\--<>-~]{0,20}[!-+\\--<>-~]",
        )
    }

    proptest! {
        #[test]
        fn any_input_never_panics(s in ".{0,600}") {
            let ts = W3cTraceState::parse(&s);
            prop_assert!(ts.len() <= MAX_MEMBERS);
            let _ = ts.header();
        }

        #[test]
        fn received_lists_are_kept_or_discarded_whole(s in "([a-zA-Z0-9@ =_.-]{0,12},){0,40}") {
            let ts = W3cTraceState::parse(&s);
            prop_assert!(ts.is_empty() || ts.len() == raw_members(&s).count());
            for (k, v) in ts.iter() {
                prop_assert!(valid_key(k) && valid_value(v));
            }
        }

        #[test]
        fn written_lists_parse_back(members in proptest::collection::vec(member(), 0..40)) {
            let mut ts = W3cTraceState::new();
            for (k, v) in members.iter().rev() {
                ts.insert(k, v).unwrap();
            }
            prop_assert!(ts.len() <= MAX_MEMBERS);
            let header = ts.header();
            prop_assert!(header.len() <= MAX_HEADER_LEN);
            let mut limited = ts.clone();
            limited.truncate_to_limit();
            prop_assert_eq!(W3cTraceState::parse(&header), limited);
        }
    }
}
