//! Which incoming values are accepted as correlation IDs.
//!
//! The [`DefaultRule`] accepts `[A-Za-z0-9._:-]{1,128}`, checked byte by byte (no
//! regular expression). A value that is not accepted gives an
//! [`InvalidCorrelationId`] saying why (never what). Any [`Rule`] can replace it, including a plain closure
//! `Fn(&[u8]) -> Result<(), InvalidCorrelationId>`. Whatever the rule says, a value is only
//! ever turned into a [`CorrelationId`] when it is also visible ASCII of at most
//! [`telltale_core::correlation::MAX_LEN`] bytes, so an ID is always safe to log
//! and to send back in a header.
//!
//! ```
//! use http::HeaderValue;
//! use telltale_correlation::InvalidCorrelationId;
//! use telltale_correlation::rule::{DefaultRule, Rule, accept};
//!
//! let rule = DefaultRule::default();
//! assert!(accept(&rule, HeaderValue::from_static("req-42:a.b_c")).is_ok());
//! assert_eq!(
//!     accept(&rule, HeaderValue::from_static("a b")).unwrap_err(),
//!     InvalidCorrelationId::InvalidCharacter { position: 2 }
//! );
//!
//! // A custom rule: only lowercase hex, exactly 32 characters.
//! let hex32 = |v: &[u8]| -> Result<(), InvalidCorrelationId> {
//!     if v.len() != 32 {
//!         return Err(InvalidCorrelationId::Other("not_32_hex"));
//!     }
//!     match v.iter().position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
//!         Some(i) => Err(InvalidCorrelationId::InvalidCharacter { position: i + 1 }),
//!         None => Ok(()),
//!     }
//! };
//! assert_eq!(hex32.check(b"abc"), Err(InvalidCorrelationId::Other("not_32_hex")));
//! assert_eq!(InvalidCorrelationId::Other("not_32_hex").reason(), "not_32_hex");
//! ```

use std::fmt;

use http::HeaderValue;
use telltale_core::correlation::{CorrelationId, InvalidCorrelationId, MAX_LEN};

/// Default longest accepted ID, in bytes.
pub const DEFAULT_MAX_LEN: usize = 128;

/// A validation rule for incoming correlation IDs.
///
/// Implemented for [`DefaultRule`] and for every
/// `Fn(&[u8]) -> Result<(), InvalidCorrelationId> + Send + Sync + 'static`.
pub trait Rule: Send + Sync + 'static {
    /// Accepts or rejects the raw header bytes.
    fn check(&self, value: &[u8]) -> Result<(), InvalidCorrelationId>;
}

impl<F> Rule for F
where
    F: Fn(&[u8]) -> Result<(), InvalidCorrelationId> + Send + Sync + 'static,
{
    fn check(&self, value: &[u8]) -> Result<(), InvalidCorrelationId> {
        self(value)
    }
}

/// The default rule: `[A-Za-z0-9._:-]{1,max_len}` with `max_len` 128 unless set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultRule {
    max_len: usize,
}

impl Default for DefaultRule {
    fn default() -> Self {
        DefaultRule {
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

impl DefaultRule {
    /// The default rule with IDs of at most `max_len` bytes, clamped to
    /// `1..=`[`MAX_LEN`].
    pub fn with_max_len(max_len: usize) -> Self {
        DefaultRule {
            max_len: max_len.clamp(1, MAX_LEN),
        }
    }

    /// The longest accepted ID, in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

/// Whether `b` is in `[A-Za-z0-9._:-]`.
#[inline]
fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

impl Rule for DefaultRule {
    #[inline]
    fn check(&self, value: &[u8]) -> Result<(), InvalidCorrelationId> {
        if value.is_empty() {
            return Err(InvalidCorrelationId::Empty);
        }
        if value.len() > self.max_len {
            return Err(InvalidCorrelationId::TooLong { max: self.max_len });
        }
        match value.iter().position(|&b| !allowed(b)) {
            Some(i) => Err(InvalidCorrelationId::InvalidCharacter { position: i + 1 }),
            None => Ok(()),
        }
    }
}

/// Turns `value` into a [`CorrelationId`] when `rule` accepts it and it is
/// visible ASCII of at most [`MAX_LEN`] bytes. No bytes are copied.
pub fn accept(
    rule: &(impl Rule + ?Sized),
    value: HeaderValue,
) -> Result<CorrelationId, InvalidCorrelationId> {
    rule.check(value.as_bytes())?;
    CorrelationId::from_header_value(value)
}

/// The rule a layer applies: the default one, or a user's.
#[derive(Clone)]
pub(crate) enum AnyRule {
    Default(DefaultRule),
    Custom(std::sync::Arc<dyn Rule>),
}

impl AnyRule {
    #[inline]
    pub(crate) fn accept(&self, value: HeaderValue) -> Result<CorrelationId, InvalidCorrelationId> {
        match self {
            AnyRule::Default(rule) => {
                // The default rule's set is a subset of visible ASCII and its
                // limit is at most MAX_LEN, so core's check cannot fail after it.
                accept(rule, value)
            }
            AnyRule::Custom(rule) => accept(&**rule, value),
        }
    }
}

impl fmt::Debug for AnyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyRule::Default(rule) => rule.fmt(f),
            AnyRule::Custom(_) => f.write_str("CustomRule"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_accepts_exactly_the_set() {
        let rule = DefaultRule::default();
        for b in 0u8..=255 {
            let expected = b.is_ascii_alphanumeric() || b".-_:".contains(&b);
            assert_eq!(rule.check(&[b]).is_ok(), expected, "byte {b:#x}");
        }
        assert_eq!(rule.check(b""), Err(InvalidCorrelationId::Empty));
        assert!(rule.check(&[b'a'; 128]).is_ok());
        assert_eq!(
            rule.check(&[b'a'; 129]),
            Err(InvalidCorrelationId::TooLong { max: 128 })
        );
        assert_eq!(
            rule.check(b"ok\r\nSet-Cookie: x"),
            Err(InvalidCorrelationId::InvalidCharacter { position: 3 })
        );
    }

    #[test]
    fn max_len_is_clamped() {
        assert_eq!(DefaultRule::with_max_len(0).max_len(), 1);
        assert_eq!(DefaultRule::with_max_len(5000).max_len(), MAX_LEN);
        assert_eq!(
            DefaultRule::with_max_len(4).check(b"12345"),
            Err(InvalidCorrelationId::TooLong { max: 4 })
        );
    }

    #[test]
    fn custom_rules_cannot_admit_unsafe_values() {
        let anything = |_: &[u8]| Ok(());
        let v = HeaderValue::from_bytes(b"a b").unwrap();
        assert_eq!(
            accept(&anything, v),
            Err(InvalidCorrelationId::InvalidCharacter { position: 2 })
        );
        let v = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert_eq!(
            accept(&anything, v).unwrap_err().reason(),
            "invalid_character"
        );
        let v = HeaderValue::from_static("spaces-are-fine-for-core");
        assert!(accept(&anything, v).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn default_rule_matches_the_pattern(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let expected = (1..=DEFAULT_MAX_LEN).contains(&bytes.len())
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(b));
            proptest::prop_assert_eq!(DefaultRule::default().check(&bytes).is_ok(), expected);
        }

        #[test]
        fn accepted_ids_are_always_safe(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1100)) {
            // Whatever a custom rule admits, an ID is visible ASCII within MAX_LEN.
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                if let Ok(id) = accept(&|_: &[u8]| Ok(()), value) {
                    proptest::prop_assert!(id.as_str().len() <= MAX_LEN);
                    proptest::prop_assert!(id.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)));
                }
            }
        }
    }

    #[test]
    fn reasons_are_fixed_words() {
        assert_eq!(InvalidCorrelationId::Other("x").reason(), "x");
        assert_eq!(InvalidCorrelationId::Empty.reason(), "empty");
        assert_eq!(
            InvalidCorrelationId::TooLong { max: 1 }.reason(),
            "too_long"
        );
        assert_eq!(
            InvalidCorrelationId::InvalidCharacter { position: 1 }.reason(),
            "invalid_character"
        );
        assert_eq!(
            InvalidCorrelationId::TooLong { max: 128 }.to_string(),
            "longer than 128 bytes"
        );
    }
}
