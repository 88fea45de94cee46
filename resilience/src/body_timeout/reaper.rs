//! One reaper per layer: the task that ends the bodies of stalled readers.
//!
//! A stalled reader never polls its body again, so the timeout cannot be
//! checked on the reader's polls alone: something else must wake at the
//! deadline. Rather than a task (and a timer) per response, a layer has one
//! reaper task, started when the first body becomes due and ended when no
//! body is queued, and a deadline-ordered queue of weak handles to the
//! bodies whose reader is due.
//!
//! A body enters the queue only when it hands out a frame and is not at its
//! end (a single-frame response never does), and it is in the queue at most
//! once: the per-frame work is storing an `Instant` in the body's own state.
//! When an entry's deadline passes, the reaper looks at the body: ended or
//! gone, the entry is dropped; its producer is due (no frame handed out since
//! the last poll), the entry is dropped and the next frame queues the body
//! again; read since, the entry goes back with the deadline of the last
//! frame; not read since, the body is ended.
//!
//! An entry whose body is dropped stays in the queue until its deadline or
//! until the queue is full, when such entries are dropped (see
//! [`Queue::push`]): the queue is bounded by the bodies alive at once, not
//! by the responses of one timeout.
//!
//! Written by hand rather than with `tokio_util::time::DelayQueue`: the
//! entries are never cancelled or reset (a body's entry is re-checked, not
//! moved, when its reader reads), so a binary heap whose storage is kept
//! across entries is all it takes, with no allocation per entry once warm.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::layer::Shared;

/// How many due entries the reaper handles before it yields to the runtime.
const BATCH: usize = 64;

/// A body the reaper can check; implemented by the body's shared state.
pub(super) trait Watch: Send + Sync {
    /// Called once the deadline of its entry has passed: ends the body if its
    /// reader has been due for the layer's timeout, and returns the deadline
    /// to check it again at if its reader read since.
    fn check(&self, shared: &Shared, now: Instant) -> Option<Instant>;
}

/// The queue and the task of one layer (in its [`Shared`]).
#[derive(Default)]
pub(super) struct Reaper {
    queue: Mutex<Queue>,
    /// Wakes the reaper when an entry goes in ahead of the one it sleeps on.
    wake: Notify,
}

#[derive(Default)]
struct Queue {
    entries: BinaryHeap<Entry>,
    /// Whether a reaper task is alive (it clears this when it ends).
    running: bool,
}

struct Entry {
    deadline: Instant,
    body: Weak<dyn Watch>,
}

// The heap is a max-heap: the entry with the earliest deadline is the
// greatest.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}

impl Eq for Entry {}

impl fmt::Debug for Reaper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = self.lock();
        f.debug_struct("Reaper")
            .field("queued", &queue.entries.len())
            .field("running", &queue.running)
            .finish()
    }
}

impl Reaper {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing runs under this lock that can panic halfway through a
        // change: use the queue as it is.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `body` to be checked at `deadline`, starting the reaper task
    /// on `runtime` if none is running.
    pub(super) fn queue(
        shared: &Arc<Shared>,
        deadline: Instant,
        body: Weak<dyn Watch>,
        runtime: &Handle,
    ) {
        let start = {
            let mut queue = shared.reaper.lock();
            // All bodies of a layer share one timeout, so a new entry is
            // almost always the latest; it can only be earlier than the
            // one the reaper sleeps on by a race of a few instructions.
            let earlier = queue
                .entries
                .peek()
                .is_some_and(|first| deadline < first.deadline);
            queue.push(Entry { deadline, body });
            if earlier {
                shared.reaper.wake.notify_one();
            }
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            // Outside the lock: a runtime that is shutting down drops the
            // task at once, and its guard takes the lock.
            drop(runtime.spawn(run(Running {
                shared: shared.clone(),
                ended: false,
            })));
        }
    }

    fn requeue(&self, deadline: Instant, body: Weak<dyn Watch>) {
        self.lock().push(Entry { deadline, body });
    }
}

impl Queue {
    /// Pushes `entry`, first dropping the entries of bodies that are gone
    /// when the heap is full: an entry stays until its deadline otherwise,
    /// so a stream of short streamed responses would keep one per response
    /// for a whole timeout. The heap then grows to at least twice its live
    /// entries, so that this O(n) pass runs at most once per n pushes, and
    /// the heap stays within a small multiple of the bodies alive at once.
    fn push(&mut self, entry: Entry) {
        let entries = &mut self.entries;
        if entries.len() == entries.capacity() && !entries.is_empty() {
            entries.retain(|e| e.body.strong_count() > 0);
            let live = entries.len();
            if live > entries.capacity() / 2 {
                entries.reserve(live);
            }
        }
        entries.push(entry);
    }
}

/// The reaper task's hold on its layer; clears `running` if the task is
/// dropped before it ends (its runtime shut down, or a body's drop panicked).
struct Running {
    shared: Arc<Shared>,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.ended {
            self.shared.reaper.lock().running = false;
        }
    }
}

enum Next {
    Due(Option<Entry>),
    Sleep(Instant),
}

/// Checks the queued bodies as their deadlines pass; returns when the queue
/// is empty (the next body that becomes due starts a new task).
async fn run(mut running: Running) {
    let shared = running.shared.clone();
    let reaper = &shared.reaper;
    let mut handled = 0;
    loop {
        let now = Instant::now();
        let next = {
            let mut queue = reaper.lock();
            match queue.entries.peek().map(|first| first.deadline) {
                None => {
                    queue.running = false;
                    running.ended = true;
                    return;
                }
                Some(deadline) if deadline <= now => Next::Due(queue.entries.pop()),
                Some(deadline) => Next::Sleep(deadline),
            }
        };
        match next {
            Next::Due(Some(entry)) => {
                // A body that is gone (its reader dropped it) is done with.
                if let Some(body) = entry.body.upgrade()
                    && let Some(deadline) = body.check(&shared, now)
                {
                    reaper.requeue(deadline, entry.body);
                }
                handled += 1;
                if handled % BATCH == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Next::Due(None) => {}
            Next::Sleep(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = reaper.wake.notified() => {}
                }
            }
        }
    }
}
