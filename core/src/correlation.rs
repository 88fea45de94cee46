//! The correlation ID of the request being served, available anywhere in its
//! future.
//!
//! The type and the task-local live here, in core, so that every telltale crate
//! (breaker events, chaos seeding, log enrichment) can read the current ID
//! without depending on the layers that set it. `telltale-correlation`
//! re-exports all of this and adds validation rules and the tower layers.
//!
//! ```
//! use telltale_core::correlation::{self, CorrelationId};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let id = CorrelationId::generate();
//! let seen = correlation::scope(id.clone(), async {
//!     // Code spawned from inside the request keeps the ID when wrapped:
//!     tokio::spawn(correlation::in_current(async { correlation::current() }))
//!         .await
//!         .unwrap()
//! })
//! .await;
//! assert_eq!(seen, Some(id));
//! assert_eq!(correlation::current(), None);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::thread::LocalKey;

use http::HeaderValue;
use tokio::task::futures::TaskLocalFuture;

use crate::relay::{self, Relayed, Slot};

/// Longest correlation ID that core accepts at all, in bytes. The default
/// validation rule in `telltale-correlation` is stricter (128).
pub const MAX_LEN: usize = 1024;

/// A correlation ID: visible ASCII only (`0x21..=0x7E`), 1 to [`MAX_LEN`] bytes,
/// so it is always safe to put in a header, a log line or a metric exemplar.
///
/// Cloning is cheap: an ID read from a request shares the request's bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CorrelationId(HeaderValue);

/// Why a value is not accepted as a [`CorrelationId`]: by core's own check
/// (visible ASCII, 1 to [`MAX_LEN`] bytes) or by a validation rule
/// (`telltale-correlation`'s default rule or a custom one).
///
/// It carries no part of the value itself, so it is safe to log and to put in
/// a metric label ([`InvalidCorrelationId::reason`]).
///
/// ```
/// use telltale_core::{CorrelationId, InvalidCorrelationId};
///
/// let err = "a b".parse::<CorrelationId>().unwrap_err();
/// assert_eq!(err, InvalidCorrelationId::InvalidCharacter { position: 2 });
/// assert_eq!(err.reason(), "invalid_character");
/// assert_eq!(err.to_string(), "disallowed character at position 2");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCorrelationId {
    /// The value was empty.
    #[error("empty")]
    Empty,
    /// The value was longer than `max` bytes.
    #[error("longer than {max} bytes")]
    TooLong {
        /// The limit that applied.
        max: usize,
    },
    /// The value held a byte outside the allowed set, at this 1-based position.
    #[error("disallowed character at position {position}")]
    InvalidCharacter {
        /// 1-based byte position of the first disallowed byte.
        position: usize,
    },
    /// A custom rule's reason. Use a small fixed set of `snake_case` words: it
    /// becomes a metric label value.
    #[error("rejected ({0})")]
    Other(&'static str),
}

impl InvalidCorrelationId {
    /// A short, fixed label for metrics and logs: `empty`, `too_long`,
    /// `invalid_character`, or a custom rule's own word.
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidCorrelationId::Empty => "empty",
            InvalidCorrelationId::TooLong { .. } => "too_long",
            InvalidCorrelationId::InvalidCharacter { .. } => "invalid_character",
            InvalidCorrelationId::Other(reason) => reason,
        }
    }
}

fn check_visible_ascii(bytes: &[u8]) -> Result<(), InvalidCorrelationId> {
    if bytes.is_empty() {
        return Err(InvalidCorrelationId::Empty);
    }
    if bytes.len() > MAX_LEN {
        return Err(InvalidCorrelationId::TooLong { max: MAX_LEN });
    }
    match bytes.iter().position(|b| !(0x21..=0x7e).contains(b)) {
        Some(i) => Err(InvalidCorrelationId::InvalidCharacter { position: i + 1 }),
        None => Ok(()),
    }
}

impl CorrelationId {
    /// A new random, time-ordered ID (UUIDv7, hyphenated).
    pub fn generate() -> Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
        // One allocation for the owner; clones of the header value are then
        // reference counts (a `Vec`-backed value would allocate again on its
        // first clone).
        let bytes = bytes::Bytes::from_owner(buf);
        CorrelationId(
            HeaderValue::from_maybe_shared(bytes).expect("a UUID is a valid header value"),
        )
    }

    /// Takes a header value as an ID when it is visible ASCII of an allowed length.
    /// No copy is made.
    pub fn from_header_value(value: HeaderValue) -> Result<Self, InvalidCorrelationId> {
        check_visible_ascii(value.as_bytes())?;
        Ok(CorrelationId(value))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        // Checked at construction: visible ASCII is valid UTF-8.
        std::str::from_utf8(self.0.as_bytes()).unwrap_or_default()
    }

    /// The ID as a header value (cheap clone).
    pub fn to_header_value(&self) -> HeaderValue {
        self.0.clone()
    }

    /// The ID as a borrowed header value.
    pub fn as_header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::str::FromStr for CorrelationId {
    type Err = InvalidCorrelationId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_visible_ascii(s.as_bytes())?;
        Ok(CorrelationId(HeaderValue::from_str(s).map_err(|_| {
            InvalidCorrelationId::InvalidCharacter { position: 1 }
        })?))
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CorrelationId")
            .field(&self.as_str())
            .finish()
    }
}

impl AsRef<str> for CorrelationId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

tokio::task_local! {
    static CURRENT: CorrelationId;
}

/// The correlation ID of the request whose future is running, if any.
pub fn current() -> Option<CorrelationId> {
    CURRENT.try_with(CorrelationId::clone).ok()
}

/// Calls `f` with the current correlation ID, without cloning it.
pub fn with_current<R>(f: impl FnOnce(Option<&CorrelationId>) -> R) -> R {
    let mut f = Some(f);
    match CURRENT.try_with(|id| (f.take().expect("called once"))(Some(id))) {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called yet"))(None),
    }
}

impl Relayed for CorrelationId {
    fn slot() -> &'static LocalKey<Slot<Self>> {
        thread_local!(static SLOT: Slot<CorrelationId> = const { Slot::new(None) });
        &SLOT
    }
}

/// Tells the layers around that listen ([`listen`]) which ID this request
/// settled on. A correlation layer calls it in its `Service::call`; without a
/// listener it costs a thread-local check (the ID is cloned only for a
/// listener).
pub fn announce(id: &CorrelationId) {
    relay::offer(|| id.clone());
}

/// Runs `call` (an inner service's synchronous `call`) and returns what it
/// returned with the correlation ID an inner layer [`announce`]d meanwhile:
/// how an outer layer with no span to carry the ID (the request log line of a
/// request sampled out before its span was built) learns it. A listener
/// around this one hears the ID too.
pub fn listen<R>(call: impl FnOnce() -> R) -> (R, Option<CorrelationId>) {
    relay::listen(call)
}

/// [`listen`], with the ID written to `heard` (`None` when no layer
/// announced one; left as it was when `call` panics) and what `call`
/// returned returned as it is: an inner
/// service's future, often hundreds of bytes, is then not moved into a pair
/// and out of it again on every request.
///
/// ```
/// use telltale_core::correlation::{self, CorrelationId};
///
/// let id = CorrelationId::generate();
/// let mut heard = None;
/// let answer = correlation::listen_into(&mut heard, || {
///     correlation::announce(&id);
///     42
/// });
/// assert_eq!(answer, 42);
/// assert_eq!(heard, Some(id));
/// ```
pub fn listen_into<R>(heard: &mut Option<CorrelationId>, call: impl FnOnce() -> R) -> R {
    relay::listen_into(heard, call)
}

/// Runs `fut` with `id` as the current correlation ID.
pub fn scope<F: Future>(id: CorrelationId, fut: F) -> TaskLocalFuture<CorrelationId, F> {
    CURRENT.scope(id, fut)
}

/// Runs the closure `f` with `id` as the current correlation ID (for blocking code).
pub fn sync_scope<R>(id: CorrelationId, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(id, f)
}

/// Wraps `fut` so it runs with the correlation ID current now, for futures handed
/// to `tokio::spawn` (task-locals do not cross spawns by themselves). With no
/// current ID the future runs without one.
pub fn in_current<F: Future>(fut: F) -> InCurrent<F> {
    let state = match current() {
        Some(id) => State::Scoped {
            fut: scope(id, fut),
        },
        None => State::Bare { fut },
    };
    InCurrent { state }
}

pin_project_lite::pin_project! {
    /// Future returned by [`in_current`].
    pub struct InCurrent<F: Future> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F: Future> {
        // Runs with a captured ID.
        Scoped { #[pin] fut: TaskLocalFuture<CorrelationId, F> },
        // No ID was current.
        Bare { #[pin] fut: F },
    }
}

impl<F: Future> Future for InCurrent<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        match self.project().state.project() {
            StateProj::Scoped { fut } => fut.poll(cx),
            StateProj::Bare { fut } => fut.poll(cx),
        }
    }
}

impl<F: Future> fmt::Debug for InCurrent<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InCurrent").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_uuid_v7() {
        let id = CorrelationId::generate();
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_ne!(CorrelationId::generate(), id);
    }

    #[test]
    fn only_visible_ascii() {
        assert!("abc-123".parse::<CorrelationId>().is_ok());
        assert_eq!(
            "".parse::<CorrelationId>(),
            Err(InvalidCorrelationId::Empty)
        );
        assert_eq!(
            "a b".parse::<CorrelationId>(),
            Err(InvalidCorrelationId::InvalidCharacter { position: 2 })
        );
        assert_eq!(
            "ab\r\n".parse::<CorrelationId>(),
            Err(InvalidCorrelationId::InvalidCharacter { position: 3 })
        );
        assert!("é".parse::<CorrelationId>().is_err());
        assert_eq!(
            "x".repeat(MAX_LEN + 1).parse::<CorrelationId>(),
            Err(InvalidCorrelationId::TooLong { max: MAX_LEN })
        );
        assert_eq!(
            InvalidCorrelationId::TooLong { max: 128 }.to_string(),
            "longer than 128 bytes"
        );
        assert_eq!(InvalidCorrelationId::Other("x").reason(), "x");
        assert_eq!(InvalidCorrelationId::Empty.reason(), "empty");
        let raw = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert!(CorrelationId::from_header_value(raw).is_err());
    }

    #[test]
    fn announced_ids_reach_every_listener_around() {
        let id: CorrelationId = "settled".parse().unwrap();
        // Nobody listens: nothing is kept for later.
        announce(&id);
        let ((inner, ()), outer) = listen(|| {
            let ((), heard) = listen(|| announce(&id));
            (heard, ())
        });
        assert_eq!(inner.as_ref(), Some(&id));
        assert_eq!(outer, Some(id.clone()));
        let ((), heard) = listen(|| ());
        assert_eq!(heard, None);
        // A body timeout's signal is another kind: not heard here.
        let ((), heard) = listen(|| crate::BodyTimeoutSignal::new().offer());
        assert_eq!(heard, None);
    }

    #[tokio::test]
    async fn scopes_nest_and_end() {
        let outer: CorrelationId = "outer".parse().unwrap();
        let inner: CorrelationId = "inner".parse().unwrap();
        assert_eq!(current(), None);
        scope(outer.clone(), async {
            assert_eq!(current(), Some(outer.clone()));
            scope(inner.clone(), async {
                assert_eq!(current(), Some(inner.clone()))
            })
            .await;
            assert_eq!(with_current(|id| id.map(|i| i.as_str().len())), Some(5));
            let blocking = sync_scope(inner.clone(), current);
            assert_eq!(blocking, Some(inner.clone()));
        })
        .await;
        assert!(with_current(|id| id.is_none()));
        // Spawned without the wrapper, the ID is not there.
        let lost = scope(outer, async {
            tokio::spawn(async { current() }).await.unwrap()
        })
        .await;
        assert_eq!(lost, None);
    }
}
