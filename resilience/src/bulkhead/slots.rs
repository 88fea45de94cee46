//! The bulkhead's slots: a first-in first-out counting semaphore whose
//! waiters all share one max wait, expired by one timer per bulkhead.
//!
//! Hand-written rather than tokio's `Semaphore` because the waiting path had
//! to get as cheap as tower's `ConcurrencyLimit` (issue 16): tokio's acquire
//! future cannot be named (so it had to be boxed, one allocation per wait) and
//! its waiters can only be woken by a permit, so every wait also armed its own
//! max-wait timer (a timer-wheel insert and remove per wait). Here a waiter is
//! one entry in a queue under a mutex (a [`Slab`] and a `VecDeque` of keys:
//! their storage is reused, so a wait allocates nothing once they have
//! grown), and since the queue is first-in first-out and every waiter has the
//! same max wait, deadlines are in queue order: one background task per
//! bulkhead (the reaper) sleeps until the oldest waiter's deadline and
//! expires the waiters whose time is up, waking them through the same waker
//! a release would use.
//!
//! An uncontended acquire or release is one atomic compare-and-swap on a word
//! holding the free permits and a "waiters queued" bit; the mutex is only
//! taken when the bulkhead is full. While waiters are queued no permit is
//! free (a release hands its permit straight to the oldest waiter), so a new
//! caller cannot overtake the queue.
//!
//! A wait reads two clocks on arrival: tokio's, for its deadline (so that
//! the max wait follows tokio's clock, paused in tests), and `quanta`'s (the
//! CPU's time-stamp counter, cheaper to read than the OS clock, as the RED
//! metrics use), which the waiter reads again when it resumes with its
//! permit: the wait histogram's duration.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use slab::Slab;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Shared;

/// The most permits a bulkhead can have (2^61, as tokio's semaphore).
pub(crate) const MAX_PERMITS: usize = usize::MAX >> 3;

/// Set in [`Slots::state`] while waiters are queued (then no permit is free).
const QUEUED: usize = 1;
/// One permit in [`Slots::state`].
const ONE: usize = 2;

pub(super) struct Slots {
    /// Free permits `<< 1`, `| QUEUED` while waiters are queued.
    state: AtomicUsize,
    queue: Mutex<Queue>,
    /// Wakes a parked reaper when waiters queue up again.
    reaper_wake: Arc<Notify>,
}

struct Queue {
    entries: Slab<Entry>,
    /// Keys of `entries` in arrival order; cancelled entries are skipped (and
    /// removed) by whoever pops them.
    order: VecDeque<usize>,
    /// Entries waiting (not granted, expired or cancelled).
    waiting: usize,
    reaper: Reaper,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reaper {
    /// None running (never started, or its runtime shut down).
    Absent,
    /// Running, or sleeping until the oldest waiter's deadline.
    Active,
    /// Waiting for waiters (on `reaper_wake`).
    Parked,
    /// The reaper failed (for example a runtime without timers): the max wait
    /// cannot be enforced, so calls that find the bulkhead full are rejected
    /// at once.
    Broken,
}

struct Entry {
    waker: Option<Waker>,
    /// Arrival, on tokio's clock (the deadline).
    start: Instant,
    /// Arrival, on the wait histogram's clock.
    since: quanta::Instant,
    state: EntryState,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EntryState {
    Waiting,
    /// Handed a permit by a release.
    Granted,
    /// Waited the max wait.
    Expired,
    /// The waiter went away; its entry is removed when popped.
    Cancelled,
}

/// What a waiter's poll found.
pub(super) enum Polled {
    /// Still waiting (its waker is registered).
    Pending,
    /// Granted a permit after waiting since the given reading of the wait
    /// histogram's clock.
    Granted(quanta::Instant),
    /// Rejected after waiting since the given instant (max wait reached, or
    /// the max wait cannot be enforced).
    Expired(Instant),
}

/// A waiter's first poll: a permit was free after all, or it is queued.
pub(super) enum Enqueued {
    Permit,
    Queued(usize),
    /// The max wait cannot be enforced here (no tokio runtime, or its timers
    /// failed): reject at once.
    NoTimer,
}

impl Slots {
    pub(super) fn new(permits: usize) -> Self {
        debug_assert!(permits <= MAX_PERMITS);
        Slots {
            state: AtomicUsize::new(permits << 1),
            queue: Mutex::new(Queue {
                entries: Slab::new(),
                order: VecDeque::new(),
                waiting: 0,
                reaper: Reaper::Absent,
            }),
            reaper_wake: Arc::new(Notify::new()),
        }
    }

    /// `parking_lot`'s lock rather than std's: under contention it spins a
    /// little longer before parking the thread, and a worker parked on this
    /// short lock is a worker idle (measured: the waiting path's throughput
    /// against tower's `ConcurrencyLimit`, whose semaphore uses the same lock
    /// here). It has no poisoning (nothing under it can panic anyway).
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock()
    }

    /// Calls queued for a permit now.
    pub(super) fn waiting(&self) -> usize {
        self.lock().waiting
    }

    /// Free permits now.
    pub(super) fn available(&self) -> usize {
        self.state.load(Ordering::Relaxed) >> 1
    }

    /// Takes a permit if one is free (never while waiters are queued).
    pub(super) fn try_acquire(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s < ONE {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(s, s - ONE, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Gives a permit back: to the oldest waiter if any, else to the pool.
    pub(super) fn release(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & QUEUED == 0 {
                match self.state.compare_exchange_weak(
                    s,
                    s + ONE,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => s = now,
                }
                continue;
            }
            let mut q = self.lock();
            // Under the lock, while waiters are queued, the state cannot
            // change (no permit is free and only lock holders clear the
            // bit); the bit may have been cleared before we got the lock.
            s = self.state.load(Ordering::Relaxed);
            if s != QUEUED {
                continue;
            }
            let mut granted = None;
            while let Some(key) = q.order.pop_front() {
                let entry = &mut q.entries[key];
                if entry.state == EntryState::Waiting {
                    entry.state = EntryState::Granted;
                    granted = Some(entry.waker.take());
                    q.waiting -= 1;
                    break;
                }
                q.entries.remove(key);
            }
            let waker = match granted {
                Some(waker) => {
                    if q.order.is_empty() {
                        self.state.store(0, Ordering::Release);
                    }
                    waker
                }
                None => {
                    // Only cancelled waiters were queued: the permit is free.
                    self.state.store(ONE, Ordering::Release);
                    None
                }
            };
            drop(q);
            if let Some(waker) = waker {
                waker.wake();
            }
            return;
        }
    }

    /// A waiter's first poll: takes a free permit, or queues the waiter
    /// (starting the reaper if none runs).
    pub(super) fn enqueue(&self, shared: &Arc<Shared>, waker: &Waker) -> Enqueued {
        // Read and cloned before taking the lock, to keep the lock short.
        let start = Instant::now();
        let since = quanta::Instant::now();
        let waker = waker.clone();
        let mut q = self.lock();
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let next = if s >= ONE { s - ONE } else { s | QUEUED };
            match self
                .state
                .compare_exchange(s, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) if s >= ONE => return Enqueued::Permit,
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        let mut spawn = None;
        let wake_reaper = match q.reaper {
            Reaper::Broken => {
                if q.order.is_empty() {
                    self.state.store(0, Ordering::Release);
                }
                return Enqueued::NoTimer;
            }
            Reaper::Active => false,
            Reaper::Parked => {
                q.reaper = Reaper::Active;
                true
            }
            Reaper::Absent => match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    spawn = Some(handle);
                    q.reaper = Reaper::Active;
                    false
                }
                Err(_) => {
                    if q.order.is_empty() {
                        self.state.store(0, Ordering::Release);
                    }
                    return Enqueued::NoTimer;
                }
            },
        };
        let key = q.entries.insert(Entry {
            waker: Some(waker),
            start,
            since,
            state: EntryState::Waiting,
        });
        q.order.push_back(key);
        q.waiting += 1;
        drop(q);
        if wake_reaper {
            self.reaper_wake.notify_one();
        }
        if let Some(handle) = spawn {
            spawn_reaper(&handle, shared);
        }
        Enqueued::Queued(key)
    }

    /// A queued waiter's later poll.
    pub(super) fn poll(&self, shared: &Arc<Shared>, key: usize, waker: &Waker) -> Polled {
        let mut q = self.lock();
        let reaper = q.reaper;
        let entry = &mut q.entries[key];
        match entry.state {
            EntryState::Waiting => {
                if reaper == Reaper::Broken {
                    // Left in the queue as cancelled; rejected now.
                    entry.state = EntryState::Cancelled;
                    entry.waker = None;
                    let start = entry.start;
                    q.waiting -= 1;
                    return Polled::Expired(start);
                }
                match &entry.waker {
                    Some(w) if w.will_wake(waker) => {}
                    _ => entry.waker = Some(waker.clone()),
                }
                if reaper == Reaper::Absent {
                    // The reaper's runtime shut down: start one here.
                    match tokio::runtime::Handle::try_current() {
                        Ok(handle) => {
                            q.reaper = Reaper::Active;
                            drop(q);
                            spawn_reaper(&handle, shared);
                        }
                        Err(_) => {
                            let entry = &mut q.entries[key];
                            entry.state = EntryState::Cancelled;
                            entry.waker = None;
                            let start = entry.start;
                            q.waiting -= 1;
                            return Polled::Expired(start);
                        }
                    }
                }
                Polled::Pending
            }
            EntryState::Granted => Polled::Granted(q.entries.remove(key).since),
            EntryState::Expired => Polled::Expired(q.entries.remove(key).start),
            EntryState::Cancelled => {
                // Only the waiter itself cancels, and it is done then.
                Polled::Expired(entry.start)
            }
        }
    }

    /// A queued waiter went away before seeing its outcome: a permit it was
    /// handed goes to the next waiter.
    pub(super) fn cancel(&self, key: usize) {
        let mut q = self.lock();
        let entry = &mut q.entries[key];
        match entry.state {
            EntryState::Waiting => {
                entry.state = EntryState::Cancelled;
                entry.waker = None;
                q.waiting -= 1;
            }
            EntryState::Granted => {
                q.entries.remove(key);
                drop(q);
                self.release();
            }
            EntryState::Expired => {
                q.entries.remove(key);
            }
            EntryState::Cancelled => {}
        }
    }

    /// The reaper's work at `now`: expires the waiters whose max wait is
    /// over, and says when to come back (`None`: nobody waits, the reaper
    /// parks).
    fn tick(&self, now: Instant, max_wait: Duration) -> Option<Instant> {
        // Expired waiters are woken after the lock is released, a batch at
        // a time (a wake must not run under the lock: see `spawn_reaper`).
        loop {
            let mut batch: [Option<Waker>; 32] = Default::default();
            let (next, full) = self.expire_batch(now, max_wait, &mut batch);
            for waker in batch.into_iter().flatten() {
                waker.wake();
            }
            if !full {
                return next;
            }
        }
    }

    /// Expires up to `batch.len()` waiters, their wakers put in `batch`;
    /// returns what [`tick`](Self::tick) returns and whether the batch filled.
    fn expire_batch(
        &self,
        now: Instant,
        max_wait: Duration,
        batch: &mut [Option<Waker>],
    ) -> (Option<Instant>, bool) {
        let mut q = self.lock();
        let q = &mut *q;
        let mut filled = 0;
        loop {
            let Some(&key) = q.order.front() else {
                // Nobody waits: the permits are counted in `state` again.
                if self.state.load(Ordering::Relaxed) == QUEUED {
                    self.state.store(0, Ordering::Release);
                }
                q.reaper = Reaper::Parked;
                return (None, false);
            };
            let entry = &mut q.entries[key];
            match entry.state {
                EntryState::Waiting => {
                    let deadline = entry.start + max_wait;
                    if deadline > now {
                        return (Some(deadline), false);
                    }
                    if filled == batch.len() {
                        return (Some(now), true);
                    }
                    entry.state = EntryState::Expired;
                    batch[filled] = entry.waker.take();
                    filled += 1;
                    q.waiting -= 1;
                }
                _ => {
                    q.entries.remove(key);
                }
            }
            q.order.pop_front();
        }
    }

    /// The reaper stopped (its runtime shut down, or it panicked): the
    /// waiters are woken so that one of them starts another (or, after a
    /// panic, all are rejected).
    fn reaper_gone(&self, broken: bool) {
        let wakers: Vec<Waker> = {
            let mut q = self.lock();
            q.reaper = if broken {
                Reaper::Broken
            } else {
                Reaper::Absent
            };
            q.order
                .iter()
                .filter_map(|&key| q.entries[key].waker.clone())
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // A parked reaper finds the bulkhead gone and ends.
        self.reaper_wake.notify_one();
    }
}

/// Spawns the reaper (never under the queue's lock: a runtime shutting down
/// drops the task at once, and its guard takes the lock).
fn spawn_reaper(handle: &tokio::runtime::Handle, shared: &Arc<Shared>) {
    drop(handle.spawn(reap(ReaperGuard(Arc::downgrade(shared)))));
}

/// Marks the reaper gone when its task is dropped (runtime shutdown) or
/// panics.
struct ReaperGuard(Weak<Shared>);

impl Drop for ReaperGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.slots.reaper_gone(std::thread::panicking());
        }
    }
}

/// The bulkhead's one timer: sleeps until the oldest waiter's deadline,
/// expires the waiters whose max wait is over, and parks while nobody waits.
/// It holds the bulkhead weakly and ends once the bulkhead is dropped. The
/// guard is an argument, so it is dropped with a task that never ran.
async fn reap(guard: ReaperGuard) {
    loop {
        let Some(shared) = guard.0.upgrade() else {
            return;
        };
        let next = shared.slots.tick(Instant::now(), shared.max_wait);
        // `Notify` keeps a wake-up sent before we wait, and the bulkhead's
        // drop sends one: the reaper neither misses waiters nor keeps the
        // bulkhead alive (it holds the notify, not the bulkhead).
        let wake = shared.slots.reaper_wake.clone();
        drop(shared);
        let notified = wake.notified();
        match next {
            None => notified.await,
            Some(deadline) => {
                // Woken early when the bulkhead is dropped.
                let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
                let mut notified = std::pin::pin!(notified);
                std::future::poll_fn(|cx| {
                    if sleep.as_mut().poll(cx).is_ready() || notified.as_mut().poll(cx).is_ready() {
                        std::task::Poll::Ready(())
                    } else {
                        std::task::Poll::Pending
                    }
                })
                .await;
            }
        }
    }
}
