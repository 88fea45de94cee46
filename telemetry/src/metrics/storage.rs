//! Label-set storage, apart from recording and formatting (as in
//! metrics-util): strings interned to small ids, label sets keyed by small
//! integers, and a capped map from label sets to prepared handles with
//! overflow sets.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, PoisonError, RwLock};

use super::config::Scheme;
use super::red::METHOD_OTHER;

pub(super) const ID_NONE: u32 = u32::MAX;
pub(super) const ID_OVERFLOW: u32 = u32::MAX - 1;
pub(super) const GRPC_NONE: u8 = u8::MAX;

/// The hasher of routes and server addresses: foldhash, seeded at random per
/// map. The strings can come from requests (a gRPC path), but a map holds at
/// most `cap` of them and the seed is not observable, which is what foldhash's
/// "minimal DoS resistance" covers; hashing a route costs a few nanoseconds
/// instead of SipHash's tens, on every request.
type StrHash = foldhash::fast::RandomState;

/// Strings (server addresses) mapped to small ids, at most `cap` of them.
/// Lookups of known strings take a read lock and allocate nothing.
pub(super) struct Interner {
    map: RwLock<HashMap<Arc<str>, u32, StrHash>>,
    names: RwLock<Vec<Arc<str>>>,
    cap: usize,
}

impl Interner {
    pub(super) fn new(cap: usize) -> Self {
        Interner {
            map: RwLock::new(HashMap::default()),
            names: RwLock::new(Vec::new()),
            // Ids stay below the reserved values.
            cap: cap.min(ID_OVERFLOW as usize),
        }
    }

    /// The string of an id (cold path).
    pub(super) fn name(&self, id: u32) -> Option<Arc<str>> {
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id as usize)
            .cloned()
    }

    pub(super) fn id(&self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return ID_NONE };
        if let Some(&id) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(s)
        {
            return id;
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = map.get(s) {
            return id;
        }
        if map.len() >= self.cap {
            return ID_OVERFLOW;
        }
        let id = map.len() as u32;
        let name: Arc<str> = Arc::from(s);
        self.names
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.clone());
        map.insert(name, id);
        id
    }
}

/// Label sets recorded per route, found with one hash of the route.
const SETS_PER_ROUTE: usize = 8;

/// Routes mapped to small ids, at most `cap` of them (as an [`Interner`]), each
/// with the handles of the label sets already recorded under it (up to
/// [`SETS_PER_ROUTE`]), so that a request of a known route and label set takes
/// one read lock, hashes its route once, compares a few small keys, and finds
/// its handles next to its route: no second map, and with thousands of routes,
/// little memory touched per request. The [`SeriesMap`] stays the authority
/// (cap, overflow sets): a label set is cached under its route once the
/// series map resolved it, and a resolution never changes afterwards.
pub(super) struct Routes<V> {
    map: RwLock<HashMap<Arc<str>, Route<V>, StrHash>>,
    cap: usize,
}

/// A route's id and the label sets recorded under it: the key, the handles,
/// and whether they are an overflow set's.
struct Route<V> {
    id: u32,
    sets: Vec<(SeriesKey, V, bool)>,
}

impl<V: Clone> Routes<V> {
    pub(super) fn new(cap: usize) -> Self {
        Routes {
            map: RwLock::new(HashMap::default()),
            // Ids stay below the reserved values.
            cap: cap.min(ID_OVERFLOW as usize),
        }
    }

    /// Runs `hit` on the handles of `key` under `route` (`key.route` is set
    /// here) and returns whether they are an overflow set's. Handles not
    /// cached yet come from `resolve` (the series map) with the route's id.
    pub(super) fn with<R>(
        &self,
        route: Option<&str>,
        mut key: SeriesKey,
        resolve: impl FnOnce(SeriesKey) -> (V, bool),
        hit: impl Fn(&V) -> R,
    ) -> (R, bool) {
        let Some(route) = route else {
            key.route = ID_NONE;
            let (v, overflow) = resolve(key);
            return (hit(&v), overflow);
        };
        let id = {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            match map.get(route) {
                Some(entry) => {
                    key.route = entry.id;
                    if let Some((_, v, overflow)) = entry.sets.iter().find(|(k, ..)| *k == key) {
                        return (hit(v), *overflow);
                    }
                    Some(entry.id)
                }
                None => None,
            }
        };
        let id = match id {
            Some(id) => id,
            None => self.intern(route),
        };
        key.route = id;
        let (v, overflow) = resolve(key);
        let r = hit(&v);
        if id != ID_OVERFLOW {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = map.get_mut(route)
                && entry.sets.len() < SETS_PER_ROUTE
                && !entry.sets.iter().any(|(k, ..)| *k == key)
            {
                entry.sets.push((key, v, overflow));
            }
        }
        (r, overflow)
    }

    /// The id of a route not seen yet (or seen by another request meanwhile),
    /// [`ID_OVERFLOW`] once `cap` routes are known.
    fn intern(&self, route: &str) -> u32 {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get(route) {
            return entry.id;
        }
        if map.len() >= self.cap {
            return ID_OVERFLOW;
        }
        let id = map.len() as u32;
        map.insert(
            Arc::from(route),
            Route {
                id,
                sets: Vec::new(),
            },
        );
        id
    }
}

/// One label set, in small integers. Fields a kind does not use stay at their
/// "none" value so that they do not multiply series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct SeriesKey {
    pub(super) route: u32,
    pub(super) addr: u32,
    pub(super) port: Option<u16>,
    pub(super) status: u16,
    pub(super) grpc: u8,
    pub(super) method: u8,
    pub(super) scheme: Scheme,
    pub(super) error: Option<&'static str>,
}

impl SeriesKey {
    pub(super) fn has_overflow(&self) -> bool {
        self.route == ID_OVERFLOW || self.addr == ID_OVERFLOW
    }

    /// The same label set with route and address folded into the overflow value.
    fn folded(mut self) -> Self {
        if self.route != ID_NONE {
            self.route = ID_OVERFLOW;
        }
        if self.addr != ID_NONE {
            self.addr = ID_OVERFLOW;
        }
        self
    }

    /// Where a label set goes once the cap is reached: its route and address
    /// folded into `__overflow__`, or the catch-all when it has neither.
    fn overflow_target(self) -> Self {
        let folded = self.folded();
        if folded == self && !self.has_overflow() {
            self.catch_all()
        } else {
            folded
        }
    }

    /// The last-resort label set once even overflow label sets are exhausted.
    pub(super) fn catch_all(self) -> Self {
        SeriesKey {
            route: ID_OVERFLOW,
            addr: if self.addr == ID_NONE {
                ID_NONE
            } else {
                ID_OVERFLOW
            },
            port: None,
            status: 0,
            grpc: GRPC_NONE,
            method: METHOD_OTHER,
            scheme: self.scheme,
            error: None,
        }
    }
}

/// A fast hasher for [`SeriesKey`]s (small integers chosen by this crate, not by
/// callers, so no flooding concern): the FxHash mixing step.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

/// The strings of a label set, available when a new label set is registered.
pub(super) struct LabelValues<'a> {
    pub(super) route: Option<&'a str>,
    pub(super) addr: Option<&'a str>,
}

/// A capped map from label sets to prepared handles.
pub(super) struct SeriesMap<V> {
    inner: RwLock<SeriesInner<V>>,
    cap: usize,
    reserve: usize,
}

struct SeriesInner<V> {
    /// Handles, and whether the label set is an overflow set.
    map: HashMap<SeriesKey, (V, bool), KeyHash>,
    overflow_sets: usize,
}

impl<V> SeriesInner<V> {
    /// The number of regular (not overflow) label sets.
    fn normal(&self) -> usize {
        self.map.len() - self.overflow_sets
    }
}

impl<V: Clone> SeriesMap<V> {
    pub(super) fn new(cap: usize) -> Self {
        SeriesMap {
            inner: RwLock::new(SeriesInner {
                map: HashMap::default(),
                overflow_sets: 0,
            }),
            cap,
            reserve: cap.clamp(1, 100),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// The handles for `key` (created with `create` when the label set is new)
    /// and whether they are an overflow set's (see [`with`](Self::with)).
    pub(super) fn resolve(
        &self,
        key: SeriesKey,
        values: &LabelValues<'_>,
        create: impl Fn(&SeriesKey, &LabelValues<'_>) -> V,
    ) -> (V, bool) {
        self.with(key, values, create, V::clone)
    }

    /// Runs `hit` on the handles for `key`, creating them with `create` when the
    /// label set is new. Returns whether the request was recorded under an
    /// overflow label set.
    ///
    /// Known label sets, and label sets folded into existing overflow sets once
    /// the cap is reached, take the read lock only.
    pub(super) fn with<R>(
        &self,
        key: SeriesKey,
        values: &LabelValues<'_>,
        create: impl Fn(&SeriesKey, &LabelValues<'_>) -> V,
        hit: impl Fn(&V) -> R,
    ) -> (R, bool) {
        let target = key.overflow_target();
        {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((v, overflow)) = inner.map.get(&key) {
                return (hit(v), *overflow || key.has_overflow());
            }
            if key.has_overflow() || inner.normal() >= self.cap {
                if let Some((v, _)) = inner.map.get(&target) {
                    return (hit(v), true);
                }
                if inner.overflow_sets >= self.reserve {
                    if let Some((v, _)) = inner.map.get(&target.catch_all()) {
                        return (hit(v), true);
                    }
                }
            }
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((v, overflow)) = inner.map.get(&key) {
            return (hit(v), *overflow || key.has_overflow());
        }
        if !key.has_overflow() && inner.normal() < self.cap {
            let v = create(&key, values);
            let r = hit(&v);
            inner.map.insert(key, (v, false));
            return (r, false);
        }
        for candidate in [target, target.catch_all()] {
            if let Some((v, _)) = inner.map.get(&candidate) {
                return (hit(v), true);
            }
            // The catch-all is always admitted: it is the last label set.
            if inner.overflow_sets < self.reserve || candidate == candidate.catch_all() {
                let v = create(&candidate, values);
                let r = hit(&v);
                inner.map.insert(candidate, (v, true));
                inner.overflow_sets += 1;
                return (r, true);
            }
        }
        unreachable!("the catch-all label set is always admitted")
    }
}
