//! The deterministic simulation in CI: replay is exact, each known bad case
//! fails under the pre-fix rules and passes under the design's, and a fixed
//! budget of seeds finds nothing beyond the open findings listed below.

use testbed::sim::schedule::known_cases;
use testbed::sim::{run_schedule, run_seed, shrink, Schedule, SimConfig};

/// Seeds this many in `cargo test`; `sim --seeds N` is the longer soak.
const SEED_BUDGET: u64 = 24;

/// Seeds of the CI budget that fail today, with the property they break
/// (open findings of the simulation; each may start to pass once its cause
/// is fixed, and then leaves this list):
/// - 0, 2: a member crashes or stalls, then a cut isolates a minority
///   (seed 0: then a node joins). Safety holds (the resolver no longer
///   lets the cut-off side count the crashed member's observers as its
///   own), but after heal and quiet some entity does not answer within
///   5 s: a liveness finding, cause not found yet.
///
/// Fixed: seed 3 (a down-all taken on a cut-off node downed, once the cut
/// healed, the majority that had survived; down-all now downs the decider's
/// own side only). Outside this budget, seed 99 breaks safety
/// (`two-valid-homes`): a second cut that lands while the first is being
/// resolved leaves the two sides with different Down sets, and each counts
/// itself the keep-majority winner (`sim --seed 99`).
const OPEN_FINDINGS: &[(u64, &str)] = &[(0, "every-ask-ends"), (2, "every-ask-ends")];

#[test]
fn the_same_seed_replays_bit_for_bit() {
    let config = SimConfig::default();
    let first = run_seed(&config, 11);
    let second = run_seed(&config, 11);
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.events, second.events);
    assert_eq!(first.writes, second.writes);
    let other = run_seed(&config, 12);
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn each_known_case_fails_under_the_pre_fix_rules_and_passes_under_the_design() {
    for case in known_cases() {
        let config = SimConfig {
            nodes: case.nodes,
            ..SimConfig::default()
        };
        let design = run_schedule(&config, 1, case.schedule.clone());
        assert!(
            design.violation.is_none(),
            "{}: {:?}",
            case.name,
            design.violation
        );
        if case.legacy_host != config.host {
            let legacy = SimConfig {
                host: case.legacy_host,
                ..config
            };
            let outcome = run_schedule(&legacy, 1, case.schedule.clone());
            assert!(
                outcome.violation.is_some(),
                "{} passes under the pre-fix host rules",
                case.name
            );
        }
    }
}

#[test]
fn a_failure_shrinks_to_a_schedule_that_still_fails_the_same_way() {
    let case = known_cases()
        .into_iter()
        .find(|case| case.name == "pause-inside-a-round")
        .expect("the case exists");
    let config = SimConfig {
        nodes: case.nodes,
        host: case.legacy_host,
        ..SimConfig::default()
    };
    let mut faults = case.schedule.faults.clone();
    // Noise around the one fault that matters.
    faults.extend(Schedule::generate(5, config.nodes, config.virtual_ms).faults);
    let failing = run_schedule(&config, 1, Schedule::new(faults));
    let invariant = failing.violation.as_ref().map(|v| v.invariant);
    assert!(invariant.is_some());
    let shrunk = shrink(&config, failing.clone(), 100);
    assert!(shrunk.outcome.schedule.faults.len() <= failing.schedule.faults.len());
    assert_eq!(
        shrunk.outcome.violation.as_ref().map(|v| v.invariant),
        invariant
    );
    let replay = run_schedule(&config, 1, shrunk.outcome.schedule.clone());
    assert_eq!(replay.trace_hash, shrunk.outcome.trace_hash);
}

#[test]
fn a_fixed_budget_of_seeds_finds_nothing_new() {
    let config = SimConfig::default();
    for seed in 0..SEED_BUDGET {
        let outcome = run_seed(&config, seed);
        let Some(violation) = &outcome.violation else {
            continue;
        };
        let known = OPEN_FINDINGS
            .iter()
            .any(|(s, invariant)| *s == seed && *invariant == violation.invariant);
        assert!(
            known,
            "seed {seed}: {violation}\nschedule:\n{}replay: {}",
            outcome.schedule,
            testbed::sim::replay_command(&config, &outcome)
        );
    }
}
