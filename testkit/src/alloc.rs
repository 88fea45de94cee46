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
/// The command line is read as libtest reads it, for what applies here:
/// names filter (a test runs when its name contains one of them),
/// `--skip NAME` leaves out the tests whose names contain `NAME`, `--exact`
/// makes names match whole, `--list` lists the tests without running them;
/// other flags are ignored, with their values (`--test-threads 2`). A
/// failing test panics, which fails the target.
///
/// ```
/// fn adds() {
///     assert_eq!(1 + 1, 2);
/// }
/// telltale_testkit::alloc::run_tests(&[("adds", adds)]);
/// ```
pub fn run_tests(tests: &[(&str, fn())]) {
    run_tests_with(tests, std::env::args().skip(1));
}

/// Flags of libtest that take a value.
const FLAGS_WITH_VALUE: [&str; 6] = [
    "--skip",
    "--test-threads",
    "--format",
    "--color",
    "--logfile",
    "-Z",
];

fn run_tests_with(tests: &[(&str, fn())], args: impl IntoIterator<Item = String>) {
    use std::io::Write;
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let (mut exact, mut list) = (false, false);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            flag if FLAGS_WITH_VALUE.contains(&flag) => {
                let value = args.next();
                if flag == "--skip" {
                    skips.extend(value);
                }
            }
            flag if flag.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    let matches = |name: &str, pattern: &String| {
        if exact {
            name == pattern
        } else {
            name.contains(pattern.as_str())
        }
    };
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RAN: AtomicUsize = AtomicUsize::new(0);

    fn one() {
        RAN.fetch_add(1, Ordering::SeqCst);
    }

    fn two() {
        RAN.fetch_add(10, Ordering::SeqCst);
    }

    fn ran(args: &[&str]) -> usize {
        RAN.store(0, Ordering::SeqCst);
        let tests: [(&str, fn()); 2] = [("alloc_one", one), ("alloc_two", two)];
        super::run_tests_with(&tests, args.iter().map(|a| (*a).to_owned()));
        RAN.load(Ordering::SeqCst)
    }

    // One test: they share `RAN`.
    #[test]
    fn arguments_are_read_as_libtest_reads_them() {
        assert_eq!(ran(&[]), 11);
        assert_eq!(ran(&["one"]), 1);
        assert_eq!(ran(&["--test-threads", "2"]), 11);
        assert_eq!(ran(&["--skip", "one"]), 10);
        assert_eq!(ran(&["--exact", "one"]), 0);
        assert_eq!(ran(&["--exact", "alloc_two"]), 10);
        assert_eq!(ran(&["--list"]), 0);
        assert_eq!(ran(&["--nocapture", "alloc"]), 11);
    }
}
