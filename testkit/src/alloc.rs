//! Steady-state allocation counts for allocation-lock tests.

use std::fmt::Debug;

/// The allocations of one round once a service is warm: runs `round` twice
/// to warm up (lazily built state, caches, label sets), then three times,
/// and returns the fewest allocations of those three (a background task's
/// turn or a table growing lands in one round, not in all).
///
/// `round` returns its count of `(allocations, reallocations)` and anything
/// to print on failure, typically `stats_alloc`'s `Stats` of a region
/// around the round. Panics if a measured round reallocated: a lock counts
/// allocations, and a buffer growing per request is a regression too.
///
/// ```
/// let mut n = 0;
/// let fewest = telltale_testkit::alloc::steady_allocations(|| {
///     n += 1;
///     // The first two rounds (warm-up) allocate more.
///     let allocations = if n <= 2 { 10 } else { 3 };
///     (allocations, 0, n)
/// });
/// assert_eq!(fewest, 3);
/// ```
pub fn steady_allocations<D: Debug>(mut round: impl FnMut() -> (usize, usize, D)) -> usize {
    round();
    round();
    let rounds = [round(), round(), round()];
    for (_, reallocations, detail) in &rounds {
        assert_eq!(
            *reallocations, 0,
            "a measured round reallocated: {detail:?}"
        );
    }
    rounds.iter().map(|r| r.0).min().unwrap_or_default()
}
