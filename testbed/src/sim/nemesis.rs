//! Fault schedules: what goes wrong, and when.
//!
//! A [`Schedule`] is a list of timed [`Fault`]s. [`Schedule::generate`]
//! draws one from a seed, in the spirit of Jepsen's combined nemesis: cuts
//! (symmetric partitions, one-way blackholes), bad links (loss, delay with
//! jitter, duplicates, reordering), process pauses, crashes, restarts with a
//! new generation, joins of new nodes and graceful leaves. Every fault ends
//! on its own or at the quiet phase (see [`super::world`]), so a schedule
//! with any of its faults removed is still a valid schedule: that is what
//! shrinking relies on.

use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::proxy::LinkRule;

/// Mixed into the seed for the nemesis' own random stream, so that the
/// schedule does not shift when the world draws more or fewer numbers.
const NEMESIS_STREAM: u64 = 0x6e65_6d65_7369_7321;

/// The first fault comes after the cluster formed.
pub const FAULTS_FROM_MS: u64 = 4_000;

/// The quiet phase (everything healed, resumed, restarted) lasts this long
/// at the end of a run.
pub const QUIET_MS: u64 = 20_000;

/// At most this many nodes join during a run (each on a new slot).
pub const MAX_JOINS: usize = 2;

/// One thing that goes wrong. Nodes are slots: `0..nodes` start the run,
/// higher slots are joiners.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum Fault {
    /// Cut every link between different sides, both ways.
    Partition {
        /// The sides.
        sides: Vec<Vec<usize>>,
    },
    /// Drop everything `from -> to`, the other direction passes.
    OneWay {
        /// The sender.
        from: usize,
        /// The receiver.
        to: usize,
    },
    /// Set the rule of one directed link.
    Link {
        /// The sender.
        from: usize,
        /// The receiver.
        to: usize,
        /// The rule.
        rule: LinkRule,
    },
    /// Every link passes again.
    Heal,
    /// Stop the process for `ms` (SIGSTOP, a long GC, a VM migration).
    Pause {
        /// The node.
        node: usize,
        /// How long.
        ms: u64,
    },
    /// Stop the process for `ms` the next time one of its handler steps
    /// awaits (a pause that catches a step mid-await).
    PauseMidStep {
        /// The node.
        node: usize,
        /// How long.
        ms: u64,
    },
    /// Kill the process: no goodbye.
    Crash {
        /// The node.
        node: usize,
    },
    /// Start a crashed or stopped node again, as a new generation.
    Restart {
        /// The node.
        node: usize,
    },
    /// Start a node that never ran (a new slot).
    Join {
        /// The node.
        node: usize,
    },
    /// Leave the cluster gracefully.
    Leave {
        /// The node.
        node: usize,
    },
}

impl Fault {
    /// The kind, for counts in the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::OneWay { .. } => "one-way",
            Fault::Link { .. } => "link",
            Fault::Heal => "heal",
            Fault::Pause { .. } => "pause",
            Fault::PauseMidStep { .. } => "pause-mid-step",
            Fault::Crash { .. } => "crash",
            Fault::Restart { .. } => "restart",
            Fault::Join { .. } => "join",
            Fault::Leave { .. } => "leave",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { sides } => {
                let sides: Vec<String> = sides.iter().map(|side| format!("{side:?}")).collect();
                write!(f, "partition {}", sides.join("|"))
            }
            Fault::OneWay { from, to } => write!(f, "one-way n{from} -x-> n{to}"),
            Fault::Link { from, to, rule } => write!(f, "link n{from} -> n{to}: {rule}"),
            Fault::Heal => f.write_str("heal"),
            Fault::Pause { node, ms } => write!(f, "pause n{node} for {ms} ms"),
            Fault::PauseMidStep { node, ms } => {
                write!(f, "pause n{node} for {ms} ms once a step awaits")
            }
            Fault::Crash { node } => write!(f, "crash n{node}"),
            Fault::Restart { node } => write!(f, "restart n{node}"),
            Fault::Join { node } => write!(f, "join n{node}"),
            Fault::Leave { node } => write!(f, "leave n{node}"),
        }
    }
}

/// A fault and when it happens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timed {
    /// Virtual milliseconds since the start of the run.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// The faults of one run, in time order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The faults.
    pub faults: Vec<Timed>,
}

impl Schedule {
    /// A schedule from timed faults (sorted by time, stable).
    pub fn new(mut faults: Vec<Timed>) -> Self {
        faults.sort_by_key(|timed| timed.at_ms);
        Self { faults }
    }

    /// Draws a schedule from `seed` for `nodes` initial nodes and a run of
    /// `virtual_ms`: faults between [`FAULTS_FROM_MS`] and the quiet phase.
    pub fn generate(seed: u64, nodes: usize, virtual_ms: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ NEMESIS_STREAM);
        let until = virtual_ms.saturating_sub(QUIET_MS);
        if until <= FAULTS_FROM_MS || nodes == 0 {
            return Self::default();
        }
        let mut faults = Vec::new();
        let mut joins = 0;
        let count = rng.gen_range(2..=8);
        for _ in 0..count {
            let at_ms = rng.gen_range(FAULTS_FROM_MS..until);
            let slots = nodes + joins;
            let node = rng.gen_range(0..slots);
            let other = (node + rng.gen_range(1..slots.max(2))) % slots.max(2);
            let later = |rng: &mut StdRng, min: u64, max: u64| at_ms + rng.gen_range(min..=max);
            match rng.gen_range(0..100) {
                0..=24 => {
                    let mut all: Vec<usize> = (0..slots).collect();
                    all.shuffle(&mut rng);
                    let cut = rng.gen_range(1..slots.max(2));
                    let sides = vec![all[..cut].to_vec(), all[cut..].to_vec()];
                    faults.push(Timed {
                        at_ms,
                        fault: Fault::Partition { sides },
                    });
                    if rng.gen_bool(0.7) {
                        let heal = later(&mut rng, 2_000, 15_000);
                        faults.push(Timed {
                            at_ms: heal,
                            fault: Fault::Heal,
                        });
                    }
                }
                25..=34 => faults.push(Timed {
                    at_ms,
                    fault: Fault::OneWay {
                        from: node,
                        to: other,
                    },
                }),
                35..=46 => {
                    let rule = match rng.gen_range(0..4) {
                        0 => LinkRule::loss(rng.gen_range(0.1..0.6)),
                        1 => LinkRule::delay(rng.gen_range(5..300), rng.gen_range(0..100)),
                        2 => LinkRule::duplicate(rng.gen_range(0.1..0.5)),
                        _ => LinkRule::reorder(rng.gen_range(0.1..0.5), 3),
                    };
                    faults.push(Timed {
                        at_ms,
                        fault: Fault::Link {
                            from: node,
                            to: other,
                            rule,
                        },
                    });
                }
                47..=58 => faults.push(Timed {
                    at_ms,
                    fault: Fault::Pause {
                        node,
                        ms: rng.gen_range(500..9_000),
                    },
                }),
                59..=64 => faults.push(Timed {
                    at_ms,
                    fault: Fault::PauseMidStep {
                        node,
                        ms: rng.gen_range(500..9_000),
                    },
                }),
                65..=79 => {
                    faults.push(Timed {
                        at_ms,
                        fault: Fault::Crash { node },
                    });
                    if rng.gen_bool(0.7) {
                        let restart = later(&mut rng, 500, 10_000);
                        faults.push(Timed {
                            at_ms: restart,
                            fault: Fault::Restart { node },
                        });
                    }
                }
                80..=89 if joins < MAX_JOINS => {
                    faults.push(Timed {
                        at_ms,
                        fault: Fault::Join { node: slots },
                    });
                    joins += 1;
                }
                80..=94 => faults.push(Timed {
                    at_ms,
                    fault: Fault::Heal,
                }),
                _ => faults.push(Timed {
                    at_ms,
                    fault: Fault::Leave { node },
                }),
            }
        }
        faults.retain(|timed| timed.at_ms < until);
        Self::new(faults)
    }

    /// How many slots a run with `nodes` initial nodes needs.
    pub fn slots(&self, nodes: usize) -> usize {
        let referenced = self.faults.iter().flat_map(|timed| match &timed.fault {
            Fault::Partition { sides } => sides.iter().flatten().copied().collect::<Vec<_>>(),
            Fault::OneWay { from, to } | Fault::Link { from, to, .. } => vec![*from, *to],
            Fault::Heal => Vec::new(),
            Fault::Pause { node, .. }
            | Fault::PauseMidStep { node, .. }
            | Fault::Crash { node }
            | Fault::Restart { node }
            | Fault::Join { node }
            | Fault::Leave { node } => vec![*node],
        });
        referenced
            .map(|slot| slot + 1)
            .max()
            .unwrap_or(0)
            .max(nodes)
    }

    /// The schedule as JSON, for a replay command.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.faults).unwrap_or_default()
    }

    /// A schedule from its JSON form.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json).map(Self::new)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for timed in &self.faults {
            writeln!(f, "  {:>6} ms  {}", timed.at_ms, timed.fault)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_json_round_trips() {
        let a = Schedule::generate(42, 5, 60_000);
        assert_eq!(a, Schedule::generate(42, 5, 60_000));
        assert!(!a.faults.is_empty());
        assert!(a
            .faults
            .iter()
            .all(|t| t.at_ms >= FAULTS_FROM_MS && t.at_ms < 60_000 - QUIET_MS));
        assert_eq!(Schedule::from_json(&a.to_json()).expect("parses"), a);
    }
}
