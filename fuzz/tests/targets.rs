//! Every fuzz target on a fixed number of inputs from a fixed seed: part of
//! the test suite, deterministic (the time-bounded runs are `scripts/fuzz`).

use telltale_fuzz::{Budget, TARGETS, run};

#[test]
fn every_target_holds_on_its_corpus_and_2000_mutations() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let report = run(target, 14, Budget::Inputs(2000));
        assert_eq!(report.inputs, 2000, "{}", target.name);
        if let Some(f) = report.failure {
            failures.push(format!("{}: {:?}\n  {}", target.name, f.input, f.message));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn there_is_a_target_for_every_surface_of_the_issue() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    for wanted in [
        "chaos_rules",
        "config",
        "key_values",
        "telemetry_env",
        "propagation",
        "correlation",
    ] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
}
