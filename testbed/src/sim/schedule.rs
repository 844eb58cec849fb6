//! Hand-written schedules for the known bad cases of the single-writer
//! issue (issue 14): each names the host rules it needs to show its hole.

use super::host::HostRules;
use super::nemesis::{Fault, Schedule, Timed};

/// A known bad case.
#[derive(Clone, Debug)]
pub struct KnownCase {
    /// Its name (`--known NAME`).
    pub name: &'static str,
    /// Nodes that start the run.
    pub nodes: usize,
    /// The world's seed (message delays, step lengths) the case needs.
    pub seed: u64,
    /// The faults.
    pub schedule: Schedule,
    /// The pre-fix host rules under which this case shows its hole (the
    /// design's rules when the hole is in the production cores).
    pub legacy_host: HostRules,
}

fn at(at_ms: u64, fault: Fault) -> Timed {
    Timed { at_ms, fault }
}

/// Every known case.
pub fn known_cases() -> Vec<KnownCase> {
    vec![
        KnownCase {
            name: "join-during-2-2-cut",
            nodes: 4,
            seed: 1,
            schedule: Schedule::new(vec![
                at(
                    6_000,
                    Fault::Partition {
                        sides: vec![vec![0, 1], vec![2, 3, 4]],
                    },
                ),
                at(6_500, Fault::Join { node: 4 }),
                at(30_000, Fault::Heal),
            ]),
            legacy_host: HostRules::DESIGN,
        },
        KnownCase {
            name: "pause-inside-a-round",
            nodes: 5,
            seed: 1,
            schedule: Schedule::new(vec![at(8_000, Fault::Pause { node: 3, ms: 7_000 })]),
            legacy_host: HostRules {
                fresh_clock_per_delivery: false,
                ..HostRules::DESIGN
            },
        },
        KnownCase {
            name: "async-step-across-a-fence",
            nodes: 5,
            seed: 1,
            schedule: Schedule::new(vec![at(8_000, Fault::PauseMidStep { node: 2, ms: 6_000 })]),
            legacy_host: HostRules {
                steps_check_lease: false,
                ..HostRules::DESIGN
            },
        },
        KnownCase {
            name: "daemon-during-a-pause",
            nodes: 5,
            seed: 1,
            schedule: Schedule::new(
                (0..5u64)
                    .map(|node| {
                        let fault = Fault::Pause {
                            node: node as usize,
                            ms: 6_000,
                        };
                        at(6_000 + 7_000 * node, fault)
                    })
                    .collect(),
            ),
            legacy_host: HostRules {
                daemons_check_lease: false,
                ..HostRules::DESIGN
            },
        },
        KnownCase {
            // Found by 3,000 seeds (seed 2410) with the fix reverted, and
            // shrunk: after a restart and two cuts, n4 pauses mid-step and
            // comes back as the coordinator's host in its own view; its
            // coordinator is superseded by the epoch its regions learned
            // meanwhile and restarts at once. Without waiting out the leases
            // granted until it stopped, the restarted coordinator handed a
            // shard to a second home while the first still held a valid
            // lease (two-valid-homes at 32.9 s).
            name: "superseded-and-restarted-coordinator",
            nodes: 5,
            seed: 2410,
            schedule: Schedule::new(vec![
                at(6_222, Fault::Crash { node: 0 }),
                at(10_798, Fault::Restart { node: 0 }),
                at(
                    20_038,
                    Fault::Partition {
                        sides: vec![vec![0, 1], vec![3, 4, 2]],
                    },
                ),
                at(22_097, Fault::PauseMidStep { node: 4, ms: 8_214 }),
                at(
                    25_763,
                    Fault::Partition {
                        sides: vec![vec![1, 2, 4], vec![0, 3]],
                    },
                ),
                at(28_125, Fault::Heal),
                at(
                    30_836,
                    Fault::Partition {
                        sides: vec![vec![4], vec![1, 2, 0, 3]],
                    },
                ),
            ]),
            legacy_host: HostRules::DESIGN,
        },
    ]
}

/// The known case called `name`.
pub fn known_case(name: &str) -> Option<KnownCase> {
    known_cases().into_iter().find(|case| case.name == name)
}
