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
            schedule: Schedule::new(vec![at(8_000, Fault::Pause { node: 3, ms: 7_000 })]),
            legacy_host: HostRules {
                fresh_clock_per_delivery: false,
                ..HostRules::DESIGN
            },
        },
        KnownCase {
            name: "async-step-across-a-fence",
            nodes: 5,
            schedule: Schedule::new(vec![at(8_000, Fault::PauseMidStep { node: 2, ms: 6_000 })]),
            legacy_host: HostRules {
                steps_check_lease: false,
                ..HostRules::DESIGN
            },
        },
        KnownCase {
            name: "daemon-during-a-pause",
            nodes: 5,
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
    ]
}

/// The known case called `name`.
pub fn known_case(name: &str) -> Option<KnownCase> {
    known_cases().into_iter().find(|case| case.name == name)
}
