//! [`Registry`]: instances by key, capped, with idle eviction.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::{CircuitBreaker, CircuitBreakerBuilder};
use crate::bulkhead::{Bulkhead, BulkheadBuilder};
use crate::error::BuildError;

struct Slot<T> {
    value: T,
    last_used: AtomicU64,
}

type Make<T> = Box<dyn Fn(&str) -> T + Send + Sync>;

/// Instances by key, capped, with idle eviction. See the [module docs](super).
pub struct Registry<T> {
    base: Arc<str>,
    make: Make<T>,
    map: RwLock<HashMap<Box<str>, Slot<T>>>,
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
            map: RwLock::new(HashMap::new()),
            max_keys,
            idle_nanos: crate::breaker::nanos(idle),
            origin: Instant::now(),
            overflow,
        }))
    }

    fn now(&self) -> u64 {
        crate::breaker::nanos(Instant::now().saturating_duration_since(self.origin))
    }
    /// The instance for `key` (created if there is room), or the overflow one.
    pub fn get(&self, key: Option<&str>) -> T {
        let Some(key) = key else {
            return self.overflow.clone();
        };
        let now = self.now();
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = map.get(key) {
                slot.last_used.store(now, Ordering::Relaxed);
                return slot.value.clone();
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.get(key) {
            slot.last_used.store(now, Ordering::Relaxed);
            return slot.value.clone();
        }
        if map.len() >= self.max_keys {
            let idle = self.idle_nanos;
            map.retain(|_, slot| now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) < idle);
        }
        if map.len() >= self.max_keys {
            return self.overflow.clone();
        }
        let value = (self.make)(key);
        map.insert(
            key.into(),
            Slot {
                value: value.clone(),
                last_used: AtomicU64::new(now),
            },
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
            .retain(|_, slot| now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) < idle);
    }
}
