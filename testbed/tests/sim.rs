//! The deterministic simulation in CI: replay is exact, each known bad case
//! fails under the pre-fix rules and passes under the design's, and a fixed
//! budget of seeds finds nothing beyond the open findings listed below.

use testbed::sim::schedule::known_cases;
use testbed::sim::{run_schedule, run_seed, shrink, Schedule, SimConfig};

/// Seeds this many in `cargo test`: the CLI's default budget, so that each
/// reverted fix the README lists is caught here too. `sim --seeds N` is the
/// longer soak.
const SEED_BUDGET: u64 = 100;

/// Seeds of the CI budget that fail today, with the property they break
/// (open findings of the simulation; each may start to pass once its cause
/// is fixed, and then leaves this list). All are liveness: safety holds.
/// - 0: a member crashes, a cut isolates two members, a node joins: after
///   heal and quiet some entity does not answer within 5 s; cause not
///   found yet.
/// - 22, 52, 96: every member ends up Down (22: a crash, a cut and a long
///   pause make every side down itself; 52: a joiner that hears one side
///   over a one-way link relays that side's reports of the other, so the
///   other side sees its own members indirectly connected and downs them
///   with the rest, as Akka's resolver does). The restarted nodes see a
///   trace of the old cluster and none may start a new one, so nobody
///   bootstraps again until an operator acts.
///
/// Fixed this way, each with a membership or coordinator test that fails
/// without its fix: a down-all on a cut-off node that downed the surviving
/// majority once the cut healed (old seed 3); both sides of a second cut
/// surviving because one had downed a member the other never heard of
/// (seed 99, `two-valid-homes`); a joiner that left counting as a member
/// and admitting another on a cut's minority side (seed 161); a node
/// paused past its lease serving its old copy of a shard, confirmed by a
/// coordinator that could not know the shard had moved (seed 179,
/// `stale-write`). Found by 3,000 seeds and fixed: a successor coordinator
/// that had been paused counting the old host's grants from before its
/// pause (seed 364, `two-valid-homes`); a fenced copy kept waiting out a
/// predecessor's lease and then handed the shard again after another home
/// wrote (seed 97, `stale-write`); a losing side downing the other side's
/// indirectly connected members (seed 2, a liveness failure: the whole
/// cluster went down after the heal); a node started early that joined late
/// taking the singleton under a lower epoch (seeds 39, 99, `epochs-grow`);
/// a node cut off alone downing every indirectly connected member and
/// staying up (seed 935, `two-valid-homes`); a side that never saw two
/// joiners admitted on the other side counting itself the majority (seed
/// 2927); a successor coordinator trusting another observer's stale report
/// of the old host (seeds 1069, 1742, 1879, `two-valid-homes`; 2797,
/// `epochs-grow`).
const OPEN_FINDINGS: &[(u64, &str)] = &[
    (0, "every-ask-ends"),
    (22, "every-ask-ends"),
    (52, "every-ask-ends"),
    (96, "every-ask-ends"),
];

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
        let design = run_schedule(&config, case.seed, case.schedule.clone());
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
            let outcome = run_schedule(&legacy, case.seed, case.schedule.clone());
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
    let failing = run_schedule(&config, case.seed, Schedule::new(faults));
    let invariant = failing.violation.as_ref().map(|v| v.invariant);
    assert!(invariant.is_some());
    let shrunk = shrink(&config, failing.clone(), 100);
    assert!(shrunk.outcome.schedule.faults.len() <= failing.schedule.faults.len());
    assert_eq!(
        shrunk.outcome.violation.as_ref().map(|v| v.invariant),
        invariant
    );
    let replay = run_schedule(&config, case.seed, shrunk.outcome.schedule.clone());
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
