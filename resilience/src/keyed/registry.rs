//! [`Registry`]: instances by key, capped, with idle eviction.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hashbrown::HashTable;
use tokio::time::Instant;

use crate::breaker::{CircuitBreaker, CircuitBreakerBuilder};
use crate::bulkhead::{Bulkhead, BulkheadBuilder};
use crate::error::BuildError;

/// One key's instance, in the table itself: with the key's bytes inline (see
/// [`Key`]), a lookup reads one slot of the table and nothing else.
struct Slot<T> {
    key: Key,
    value: T,
    last_used: AtomicU64,
}

/// Bytes of a key kept inside its slot; longer keys are on the heap.
const INLINE: usize = 38;

/// A key's bytes: inline up to [`INLINE`] bytes (host names, most gRPC paths),
/// so that comparing a request's key with a slot's touches no other memory
/// (with thousands of keys, that other memory is a cache miss per call).
/// Written by hand: a short-string type with byte comparison only, which
/// `hashbrown`'s `HashTable` takes as is.
enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(key: &str) -> Self {
        let b = key.as_bytes();
        if b.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(b.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

/// The hasher of the key table: foldhash, seeded at random per table. Keys
/// come from requests (a `Host` header, a gRPC path), but the table holds at
/// most `max_keys` of them and the seed is not observable, which is what
/// foldhash's "minimal DoS resistance" covers; hashing a short key costs a few
/// nanoseconds instead of SipHash's tens, on every call.
type KeyHash = foldhash::fast::RandomState;

type Make<T> = Box<dyn Fn(&str) -> T + Send + Sync>;

/// Instances by key, capped, with idle eviction. See the [module docs](super).
pub struct Registry<T> {
    base: Arc<str>,
    make: Make<T>,
    map: RwLock<HashTable<Slot<T>>>,
    hasher: KeyHash,
    max_keys: usize,
    idle_nanos: u64,
    origin: Instant,
    overflow: T,
}

impl<T> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.base)
            .field("keys", &self.map.read().map(|m| m.len()).unwrap_or(0))
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

impl Registry<CircuitBreaker> {
    /// One breaker per key, each built from `builder` with the name
    /// `{name}/{key}`.
    pub fn breakers(
        builder: CircuitBreakerBuilder,
        max_keys: usize,
        idle_timeout: Duration,
    ) -> Result<Arc<Self>, BuildError> {
        builder.validate()?;
        let base = builder.name.clone();
        Self::from_builder(
            base,
            builder,
            |b, name| b.name(name).build(),
            max_keys,
            idle_timeout,
        )
    }
}

impl Registry<Bulkhead> {
    /// One bulkhead per key, each built from `builder` with the name
    /// `{name}/{key}`.
    pub fn bulkheads(
        builder: BulkheadBuilder,
        max_keys: usize,
        idle_timeout: Duration,
    ) -> Result<Arc<Self>, BuildError> {
        let base = builder.name.clone();
        Self::from_builder(
            base,
            builder,
            |b, name| b.name(name).build(),
            max_keys,
            idle_timeout,
        )
    }
}

impl<T: Clone> Registry<T> {
    /// Builds the overflow instance (which checks the settings) and keeps
    /// `builder` to build one instance per key.
    fn from_builder<B: Clone + Send + Sync + 'static>(
        base: Arc<str>,
        builder: B,
        build: fn(B, String) -> Result<T, BuildError>,
        max_keys: usize,
        idle: Duration,
    ) -> Result<Arc<Self>, BuildError>
    where
        T: 'static,
    {
        let overflow = build(builder.clone(), format!("{base}/_overflow"))?;
        let prefix = base.clone();
        let make =
            move |key: &str| build(builder.clone(), format!("{prefix}/{key}")).expect("validated");
        Ok(Arc::new(Registry {
            base,
            make: Box::new(make),
            map: RwLock::new(HashTable::new()),
            hasher: KeyHash::default(),
            max_keys,
            idle_nanos: crate::breaker::nanos(idle),
            origin: Instant::now(),
            overflow,
        }))
    }

    fn now(&self) -> u64 {
        self.nanos_at(Instant::now())
    }

    fn nanos_at(&self, at: Instant) -> u64 {
        crate::breaker::nanos(at.saturating_duration_since(self.origin))
    }

    /// The instance for `key` (created if there is room), or the overflow one.
    pub fn get(&self, key: Option<&str>) -> T {
        match key {
            Some(key) => self.get_at(key, Instant::now()),
            None => self.overflow.clone(),
        }
    }

    /// [`get`](Self::get) of a key with the clock already read (the keyed
    /// breaker service reads it once for the registry and the breaker).
    pub(crate) fn get_at(&self, key: &str, now: Instant) -> T {
        let now = self.nanos_at(now);
        let hash = self.hasher.hash_one(key.as_bytes());
        let is_key = |slot: &Slot<T>| slot.key.bytes() == key.as_bytes();
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = map.find(hash, is_key) {
                slot.last_used.store(now, Ordering::Relaxed);
                return slot.value.clone();
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.find(hash, is_key) {
            slot.last_used.store(now, Ordering::Relaxed);
            return slot.value.clone();
        }
        if map.len() >= self.max_keys {
            let idle = self.idle_nanos;
            map.retain(|slot| now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) < idle);
        }
        if map.len() >= self.max_keys {
            return self.overflow.clone();
        }
        let value = (self.make)(key);
        map.insert_unique(
            hash,
            Slot {
                key: Key::new(key),
                value: value.clone(),
                last_used: AtomicU64::new(now),
            },
            |slot| self.hasher.hash_one(slot.key.bytes()),
        );
        value
    }

    /// The overflow instance (no key, or no room).
    pub fn overflow(&self) -> &T {
        &self.overflow
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops instances idle for longer than the idle timeout now (also done
    /// on demand when the registry is full).
    pub fn evict_idle(&self) {
        let now = self.now();
        let idle = self.idle_nanos;
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|slot| now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) < idle);
    }
}
