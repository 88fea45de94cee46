//! The sliding window: a ring of tagged slots and a packed aggregate, updated
//! with compare-and-swap only (no lock, no allocation, O(1) per call).
//!
//! A count-based window has one slot per call; a time-based window one slot per
//! time bucket. Every slot carries the state generation that wrote it and a
//! sequence number (the lap for a count window, the bucket number for a time
//! window); the aggregate carries the generation it belongs to. A reset is a
//! single store of a zeroed aggregate with the new generation: slots of older
//! generations then read as empty, and a result from an older generation can
//! neither change the aggregate nor overwrite a newer slot.
//!
//! Count-window slot (u64): `gen:32 | lap:29 | present:1 | failed:1 | slow:1`.
//! Time-window slot (u64): `gen:12 | bucket:16 | total:12 | failed:12 | slow:12`.
//! Staleness is decided with the absolute position (count) or the absolute
//! newest bucket (time), never with the wrapping fields.
//! Aggregate layout (u64): `gen:16 | total:16 | failed:16 | slow:16`, each count
//! a signed 16-bit value (it can dip below zero for an instant while two
//! updates of the same slot land out of order, and always converges).

use crate::sync::{AtomicU64, Ordering};

/// Largest count-based window.
pub(crate) const MAX_COUNT_WINDOW: u32 = 10_000;
/// Most buckets in a time-based window.
pub(crate) const MAX_BUCKETS: u32 = 120;
const AGG_MAX: u64 = 32_000;
const SLOT_MAX: u64 = 4_095;

/// One call's result, as the window sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

/// The aggregate of the window after a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) total: u32,
    pub(crate) failed: u32,
    pub(crate) slow: u32,
}

impl Snapshot {
    pub(crate) fn failure_rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            f64::from(self.failed) / f64::from(self.total)
        }
    }

    pub(crate) fn slow_rate(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            f64::from(self.slow) / f64::from(self.total)
        }
    }
}

/// What happened to a recorded sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Counted in the current generation's window.
    Current(Snapshot),
    /// The window belongs to a newer generation: not counted.
    Late,
    /// Too old for the window (a newer lap or bucket already took its slot), or
    /// the bucket is full: not counted.
    Dropped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Count { size: u64 },
    Time { buckets: u64, bucket_nanos: u64 },
}

/// In declaration order (`repr(C)`): the two words every record writes, then
/// what it reads.
#[repr(C)]
pub(crate) struct Window {
    agg: AtomicU64,
    /// Count window: the next call's position. Time window: the newest bucket
    /// number swept so far.
    pos: AtomicU64,
    slots: Box<[AtomicU64]>,
    kind: Kind,
    slot_cap: u64,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("kind", &self.kind)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

const fn slot_pack(generation: u64, seq: u64, total: u64, failed: u64, slow: u64) -> u64 {
    ((generation & 0xFFF) << 52)
        | ((seq & 0xFFFF) << 36)
        | ((total & 0xFFF) << 24)
        | ((failed & 0xFFF) << 12)
        | (slow & 0xFFF)
}

const fn slot_gen(s: u64) -> u64 {
    s >> 52
}

const fn slot_seq(s: u64) -> u64 {
    (s >> 36) & 0xFFFF
}

const fn slot_counts(s: u64) -> (u64, u64, u64) {
    ((s >> 24) & 0xFFF, (s >> 12) & 0xFFF, s & 0xFFF)
}

const fn agg_gen(a: u64) -> u64 {
    a >> 48
}

fn agg_field(a: u64, shift: u32) -> i64 {
    i64::from(((a >> shift) & 0xFFFF) as u16 as i16)
}

fn agg_pack(generation: u64, total: i64, failed: i64, slow: i64) -> u64 {
    ((generation & 0xFFFF) << 48)
        | ((total as u64 & 0xFFFF) << 32)
        | ((failed as u64 & 0xFFFF) << 16)
        | (slow as u64 & 0xFFFF)
}

fn agg_snapshot(a: u64) -> Snapshot {
    let clamp = |v: i64| u32::try_from(v.max(0)).unwrap_or(0);
    Snapshot {
        total: clamp(agg_field(a, 32)),
        failed: clamp(agg_field(a, 16)),
        slow: clamp(agg_field(a, 0)),
    }
}

/// `a` is newer than `b` in a wrapping space of `bits` bits.
const fn newer(a: u64, b: u64, bits: u32) -> bool {
    let mask = (1u64 << bits) - 1;
    let d = a.wrapping_sub(b) & mask;
    d != 0 && d < (1 << (bits - 1))
}

impl Window {
    pub(crate) fn new(kind: Kind, generation: u32) -> Self {
        let (len, slot_cap) = match kind {
            Kind::Count { size } => (size, 1),
            Kind::Time { buckets, .. } => (buckets, SLOT_MAX.min(AGG_MAX / buckets)),
        };
        // Every slot starts empty (a count slot's `present` bit clear, a time
        // slot's counts zero).
        let slots = (0..len).map(|_| AtomicU64::new(0)).collect();
        Window {
            kind,
            slots,
            agg: AtomicU64::new(agg_pack(u64::from(generation), 0, 0, 0)),
            pos: AtomicU64::new(0),
            slot_cap,
        }
    }

    /// Starts an empty window for `generation` (no-op when already there).
    pub(crate) fn reset(&self, generation: u32) {
        let g = u64::from(generation) & 0xFFFF;
        let _ = self
            .agg
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                (agg_gen(a) != g).then(|| agg_pack(g, 0, 0, 0))
            });
    }

    /// The current aggregate, whatever its generation.
    pub(crate) fn snapshot(&self) -> Snapshot {
        agg_snapshot(self.agg.load(Ordering::Acquire))
    }

    /// Records one sample admitted under `generation` at `now_nanos`.
    pub(crate) fn record(&self, generation: u32, now_nanos: u64, sample: Sample) -> Recorded {
        let g = u64::from(generation);
        if agg_gen(self.agg.load(Ordering::Acquire)) != g & 0xFFFF {
            return Recorded::Late;
        }
        let f = u64::from(sample.failed);
        let s = u64::from(sample.slow);
        let (add, sub) = match self.kind {
            Kind::Count { size } => match self.record_count(g, size, f, s) {
                Ok(delta) => delta,
                Err(r) => return r,
            },
            Kind::Time {
                buckets,
                bucket_nanos,
            } => match self.record_time(g, buckets, now_nanos / bucket_nanos, f, s) {
                Ok(delta) => delta,
                Err(r) => return r,
            },
        };
        match self.apply(g, add, sub) {
            Some(a) => Recorded::Current(agg_snapshot(a)),
            None => Recorded::Late,
        }
    }

    fn agg_is(&self, g: u64) -> bool {
        agg_gen(self.agg.load(Ordering::Acquire)) == g & 0xFFFF
    }

    /// Count window: slot `p % size` for the call at position `p`. Slot layout
    /// `gen:32 | lap:29 | present:1 | failed:1 | slow:1`.
    fn record_count(&self, g: u64, size: u64, f: u64, s: u64) -> Result<(Delta, Delta), Recorded> {
        let p = self.pos.fetch_add(1, Ordering::AcqRel);
        let slot = &self.slots[(p % size) as usize];
        let new = ((g & 0xFFFF_FFFF) << 32) | (((p / size) & 0x1FFF_FFFF) << 3) | 4 | (f << 1) | s;
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            // Out of the window already (a later lap owns the slot): not counted.
            if self.pos.load(Ordering::Acquire) > p + size {
                return Err(Recorded::Dropped);
            }
            let slot_gen = cur >> 32;
            if newer(slot_gen, g, 32) {
                return Err(Recorded::Late);
            }
            let sub = if slot_gen == g & 0xFFFF_FFFF && cur & 4 != 0 {
                (1, (cur >> 1) & 1, cur & 1)
            } else {
                (0, 0, 0)
            };
            match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(((1, f, s), sub)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Time window: slot `bucket % buckets`, after sweeping the buckets that
    /// left the window.
    fn record_time(
        &self,
        g: u64,
        buckets: u64,
        bucket: u64,
        f: u64,
        s: u64,
    ) -> Result<(Delta, Delta), Recorded> {
        self.sweep(g, bucket, buckets);
        let slot = &self.slots[(bucket % buckets) as usize];
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            if self.pos.load(Ordering::Acquire) >= bucket + buckets {
                return Err(Recorded::Dropped);
            }
            let (sg, ss) = (slot_gen(cur), slot_seq(cur));
            let (t0, f0, s0) = slot_counts(cur);
            let (new, sub) = if sg == g & 0xFFF && ss == bucket & 0xFFFF {
                if t0 >= self.slot_cap {
                    return Err(Recorded::Dropped);
                }
                (slot_pack(g, bucket, t0 + 1, f0 + f, s0 + s), (0, 0, 0))
            } else if sg != g & 0xFFF {
                // Another generation's slot: empty, unless ours is over.
                if !self.agg_is(g) {
                    return Err(Recorded::Late);
                }
                (slot_pack(g, bucket, 1, f, s), (0, 0, 0))
            } else {
                (slot_pack(g, bucket, 1, f, s), (t0, f0, s0))
            };
            match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(((1, f, s), sub)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Adds `add` and subtracts `sub` in generation `g`; the new aggregate, or
    /// `None` when the aggregate belongs to another generation.
    fn apply(&self, g: u64, add: Delta, sub: Delta) -> Option<u64> {
        let delta = |a: u64, shift: u32, plus: u64, minus: u64| {
            agg_field(a, shift) + plus as i64 - minus as i64
        };
        let mut next = 0;
        self.agg
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                if agg_gen(a) != g & 0xFFFF {
                    return None;
                }
                next = agg_pack(
                    g,
                    delta(a, 32, add.0, sub.0),
                    delta(a, 16, add.1, sub.1),
                    delta(a, 0, add.2, sub.2),
                );
                Some(next)
            })
            .ok()
            .map(|_| next)
    }

    /// Empties the buckets between the last swept one and `bucket` (at most one
    /// lap of the ring): amortised O(1), each bucket is evicted once per lap.
    fn sweep(&self, g: u64, bucket: u64, buckets: u64) {
        let mut head = self.pos.load(Ordering::Acquire);
        loop {
            if bucket <= head {
                return;
            }
            match self
                .pos
                .compare_exchange_weak(head, bucket, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        let from = (head + 1).max(bucket.saturating_sub(buckets - 1));
        for b in from..=bucket {
            let slot = &self.slots[(b % buckets) as usize];
            let mut cur = slot.load(Ordering::Acquire);
            let sub = loop {
                let (sg, ss) = (slot_gen(cur), slot_seq(cur));
                if sg == g & 0xFFF && ss == b & 0xFFFF {
                    break None;
                }
                if sg != g & 0xFFF && !self.agg_is(g) {
                    return;
                }
                // A later sweep already owns this slot.
                if self.pos.load(Ordering::Acquire) >= b + buckets {
                    return;
                }
                let sub = (sg == g & 0xFFF).then(|| slot_counts(cur));
                match slot.compare_exchange_weak(
                    cur,
                    slot_pack(g, b, 0, 0, 0),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break sub,
                    Err(actual) => cur = actual,
                }
            };
            if let Some(sub) = sub {
                let _ = self.apply(g, (0, 0, 0), sub);
            }
        }
    }
}

type Delta = (u64, u64, u64);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    const OK: Sample = Sample {
        failed: false,
        slow: false,
    };
    const FAIL: Sample = Sample {
        failed: true,
        slow: false,
    };

    fn snap(r: Recorded) -> Snapshot {
        match r {
            Recorded::Current(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn count_window_slides() {
        let w = Window::new(Kind::Count { size: 3 }, 1);
        assert_eq!(snap(w.record(1, 0, FAIL)).failed, 1);
        w.record(1, 0, OK);
        w.record(1, 0, OK);
        let s = snap(w.record(1, 0, OK));
        assert_eq!((s.total, s.failed), (3, 0));
    }

    #[test]
    fn reset_and_late_results() {
        let w = Window::new(Kind::Count { size: 4 }, 1);
        w.record(1, 0, FAIL);
        w.reset(2);
        assert_eq!(w.record(1, 0, FAIL), Recorded::Late);
        let s = snap(w.record(2, 0, OK));
        assert_eq!((s.total, s.failed), (1, 0));
        // Old-generation slots read as empty, even after wrapping around.
        for _ in 0..8 {
            w.record(2, 0, OK);
        }
        assert_eq!(w.snapshot().total, 4);
        assert_eq!(w.snapshot().failed, 0);
    }

    #[test]
    fn time_window_evicts_skipped_buckets() {
        let w = Window::new(
            Kind::Time {
                buckets: 4,
                bucket_nanos: 10,
            },
            7,
        );
        w.record(7, 0, FAIL);
        w.record(7, 15, FAIL);
        assert_eq!(w.snapshot().failed, 2);
        // Bucket 4 evicts bucket 0 only.
        let s = snap(w.record(7, 40, OK));
        assert_eq!((s.total, s.failed), (2, 1));
        // A long silence empties everything.
        let s = snap(w.record(7, 1_000, OK));
        assert_eq!((s.total, s.failed), (1, 0));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Record { dt: u64, failed: bool, slow: bool },
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            20 => (0u64..40, any::<bool>(), any::<bool>())
                .prop_map(|(dt, failed, slow)| Op::Record { dt, failed, slow }),
            1 => Just(Op::Reset),
        ]
    }

    proptest! {
        /// The count window matches a plain "last N calls" model.
        #[test]
        fn count_window_matches_model(size in 1u64..20, ops in prop::collection::vec(op(), 0..300)) {
            let w = Window::new(Kind::Count { size }, 0);
            let mut generation = 0u32;
            let mut model: VecDeque<(bool, bool)> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Reset => { generation += 1; w.reset(generation); model.clear(); }
                    Op::Record { failed, slow, .. } => {
                        let s = snap(w.record(generation, 0, Sample { failed, slow }));
                        model.push_back((failed, slow));
                        if model.len() as u64 > size { model.pop_front(); }
                        let expect = Snapshot {
                            total: model.len() as u32,
                            failed: model.iter().filter(|c| c.0).count() as u32,
                            slow: model.iter().filter(|c| c.1).count() as u32,
                        };
                        prop_assert_eq!(s, expect);
                    }
                }
            }
        }

        /// The time window matches a model that keeps every call of the last
        /// `buckets` buckets.
        #[test]
        fn time_window_matches_model(
            buckets in 1u64..12,
            bucket_nanos in 1u64..50,
            ops in prop::collection::vec(op(), 0..300),
        ) {
            let w = Window::new(Kind::Time { buckets, bucket_nanos }, 0);
            let mut generation = 0u32;
            let mut now = 0u64;
            let mut model: Vec<(u64, bool, bool)> = Vec::new();
            for op in ops {
                match op {
                    Op::Reset => { generation += 1; w.reset(generation); model.clear(); }
                    Op::Record { dt, failed, slow } => {
                        now += dt;
                        let s = snap(w.record(generation, now, Sample { failed, slow }));
                        let b = now / bucket_nanos;
                        model.push((b, failed, slow));
                        model.retain(|c| c.0 + buckets > b);
                        let expect = Snapshot {
                            total: model.len() as u32,
                            failed: model.iter().filter(|c| c.1).count() as u32,
                            slow: model.iter().filter(|c| c.2).count() as u32,
                        };
                        prop_assert_eq!(s, expect);
                    }
                }
            }
        }
    }
}
