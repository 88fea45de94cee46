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

/// Runs the tests of a test target built without libtest's harness
/// (`harness = false` in Cargo.toml: allocations are counted process-wide,
/// so the tests of an allocation lock must not run beside libtest's
/// threads), one after the other, printing libtest's lines so that
/// `cargo test` output and `scripts/test`'s tally read the same.
///
/// Command-line arguments that do not start with `-` filter by name, as
/// libtest's do; flags are ignored. A failing test panics, which fails the
/// target.
///
/// ```
/// fn adds() {
///     assert_eq!(1 + 1, 2);
/// }
/// telltale_testkit::alloc::run_tests(&[("adds", adds)]);
/// ```
pub fn run_tests(tests: &[(&str, fn())]) {
    use std::io::Write;
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let plural = if selected.len() == 1 { "" } else { "s" };
    println!("\nrunning {} test{plural}", selected.len());
    for (name, test) in &selected {
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        test();
        println!("ok");
    }
    let (passed, filtered_out) = (selected.len(), tests.len() - selected.len());
    println!(
        "\ntest result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; {filtered_out} filtered out\n"
    );
}
