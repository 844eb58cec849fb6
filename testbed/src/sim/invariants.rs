//! The properties checked after every step of a run.
//!
//! | name | what must hold |
//! |---|---|
//! | `single-writer` | no two nodes run handler steps of one entity at overlapping virtual times |
//! | `stale-write` | every write starts from the value the store holds (no instance works on stale state) |
//! | `daemon-single-writer` | no two instances of one daemon worker act in overlapping intervals |
//! | `one-side-serves` | once a split has settled, only one of its sides delivers |
//! | `two-valid-homes` | no shard is served by two regions that both hold a valid lease |
//! | `epochs-grow` | a shard starts being served only under an epoch at least as high as before; no node starts two coordinators under one epoch (two nodes may share one: regions order coordinators by epoch, then node, as DESIGN.md section 3 allows for equal generations) |
//! | `every-ask-ends` | an ask sent once the quiet phase has settled ends within its deadline |
//! | `entities-answer` | after heal and quiet, every entity answers a probe |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use membership::NodeId;
use sharding::{EntityId, Epoch, ShardId};

use super::time::{Micros, MS};

/// A property that failed, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Virtual time of the failing step.
    pub at: Micros,
    /// The property's name (see the module table).
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {} ms: {}",
            self.invariant,
            self.at / MS,
            self.detail
        )
    }
}

/// A handler step that wrote.
#[derive(Clone, Debug)]
struct Written {
    node: NodeId,
    started: Micros,
    ended: Micros,
}

/// A daemon worker instance's acts so far.
#[derive(Clone, Debug)]
struct WorkerActs {
    node: NodeId,
    first: Micros,
    last: Micros,
}

/// A split in force: which side each slot is on, and since when.
#[derive(Clone, Debug)]
struct Split {
    since: Micros,
    side_of: BTreeMap<usize, usize>,
    served: BTreeMap<usize, (usize, Micros)>,
}

/// Records what happened and checks the properties; the first violation
/// is kept.
#[derive(Debug, Default)]
pub struct Checker {
    /// The store: acknowledged writes per entity.
    store: BTreeMap<EntityId, u64>,
    writes: BTreeMap<EntityId, Vec<Written>>,
    workers: BTreeMap<EntityId, BTreeMap<u64, WorkerActs>>,
    split: Option<Split>,
    /// Serving shards, by (node, shard), with the epoch they started under.
    serving: BTreeMap<(NodeId, ShardId), Epoch>,
    highest_epoch: BTreeMap<ShardId, Epoch>,
    coordinators: BTreeSet<(Epoch, NodeId)>,
    violation: Option<Violation>,
}

/// How long a split runs before only one side may deliver: the lease, the
/// drift margin, a renewal and a tick of slack.
pub const SPLIT_SETTLE: Micros = 4_500 * MS;

impl Checker {
    /// The first violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// The value the store holds for `entity`.
    pub fn stored(&self, entity: &str) -> u64 {
        self.store.get(entity).copied().unwrap_or(0)
    }

    /// Writes acknowledged in total.
    pub fn total_writes(&self) -> u64 {
        self.store.values().sum()
    }

    /// Records a violation (the first one is kept).
    pub fn fail(&mut self, at: Micros, invariant: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                at,
                invariant,
                detail,
            });
        }
    }

    /// A split starts (`None`: every link is whole again, or the cut is
    /// not a clean split).
    pub fn set_split(&mut self, now: Micros, sides: Option<&[Vec<usize>]>) {
        self.split = sides.map(|sides| Split {
            since: now,
            side_of: sides
                .iter()
                .enumerate()
                .flat_map(|(i, side)| side.iter().map(move |slot| (*slot, i)))
                .collect(),
            served: BTreeMap::new(),
        });
    }

    /// A process started on `slot`. One on neither side of the split (a
    /// joiner) talks to both: the cluster may legitimately span the cut
    /// through it, so the split no longer counts as clean.
    pub fn process_started(&mut self, slot: usize) {
        if self
            .split
            .as_ref()
            .is_some_and(|split| !split.side_of.contains_key(&slot))
        {
            self.split = None;
        }
    }

    /// A handler step of `entity` on `node` (slot `slot`) that read `read`
    /// at `started` wrote at `ended`.
    pub fn step_committed(
        &mut self,
        slot: usize,
        node: &NodeId,
        entity: &EntityId,
        read: u64,
        started: Micros,
        ended: Micros,
    ) {
        let stored = self.stored(entity);
        if read != stored {
            self.fail(
                ended,
                "stale-write",
                format!(
                    "{node} wrote {entity} from value {read} read at {} ms, the store holds {stored}",
                    started / MS
                ),
            );
        }
        *self.store.entry(entity.clone()).or_default() += 1;
        let writes = self.writes.entry(entity.clone()).or_default();
        let overlap = writes
            .iter()
            .rev()
            .find(|w| w.node != *node && w.ended > started && w.started < ended)
            .cloned();
        writes.push(Written {
            node: node.clone(),
            started,
            ended,
        });
        if writes.len() > 64 {
            writes.drain(..32);
        }
        if let Some(other) = overlap {
            self.fail(
                ended,
                "single-writer",
                format!(
                    "{entity}: {node} ran a step {}..{} ms while {} ran one {}..{} ms",
                    started / MS,
                    ended / MS,
                    other.node,
                    other.started / MS,
                    other.ended / MS
                ),
            );
        }
        self.served_by(slot, ended);
    }

    /// Daemon worker `instance` of `worker` acted on `node` at `now`.
    pub fn worker_acted(
        &mut self,
        slot: usize,
        node: &NodeId,
        worker: &EntityId,
        instance: u64,
        now: Micros,
    ) {
        let instances = self.workers.entry(worker.clone()).or_default();
        let acts = instances.entry(instance).or_insert(WorkerActs {
            node: node.clone(),
            first: now,
            last: now,
        });
        acts.last = now;
        let (first, last) = (acts.first, acts.last);
        let overlap = instances
            .iter()
            .find(|(other, acts)| {
                **other != instance
                    && acts.node != *node
                    && acts.last >= first
                    && acts.first <= last
            })
            .map(|(_, acts)| acts.clone());
        if instances.len() > 16 {
            let oldest = instances.keys().next().copied();
            if let Some(oldest) = oldest.filter(|o| *o != instance) {
                instances.remove(&oldest);
            }
        }
        if let Some(other) = overlap {
            self.fail(
                now,
                "daemon-single-writer",
                format!(
                    "{worker}: {node} acted {}..{} ms while {} acted {}..{} ms",
                    first / MS,
                    last / MS,
                    other.node,
                    other.first / MS,
                    other.last / MS
                ),
            );
        }
        self.served_by(slot, now);
    }

    fn served_by(&mut self, slot: usize, now: Micros) {
        let Some(split) = &mut self.split else {
            return;
        };
        if now < split.since + SPLIT_SETTLE {
            return;
        }
        let Some(side) = split.side_of.get(&slot).copied() else {
            return;
        };
        split.served.insert(side, (slot, now));
        if split.served.len() > 1 {
            let detail = split
                .served
                .iter()
                .map(|(side, (slot, at))| format!("side {side} (n{slot} at {} ms)", at / MS))
                .collect::<Vec<_>>()
                .join(" and ");
            let since = split.since;
            self.fail(
                now,
                "one-side-serves",
                format!("split since {} ms: {detail} both delivered", since / MS),
            );
        }
    }

    /// A coordinator with `epoch` started on `node`.
    pub fn coordinator_started(&mut self, now: Micros, node: &NodeId, epoch: Epoch) {
        if !self.coordinators.insert((epoch, node.clone())) {
            self.fail(
                now,
                "epochs-grow",
                format!("{node} started a second coordinator with {epoch}"),
            );
        }
    }

    /// The shards each live node serves at this moment (valid lease, home),
    /// with the epoch of its region: checks two-valid-homes and epochs-grow.
    pub fn homes(&mut self, now: Micros, serving: &[(NodeId, ShardId, Epoch)]) {
        if serving.len() == self.serving.len()
            && serving.iter().all(|(node, shard, epoch)| {
                self.serving.get(&(node.clone(), *shard)) == Some(epoch)
            })
        {
            return;
        }
        let mut by_shard: BTreeMap<ShardId, Vec<&NodeId>> = BTreeMap::new();
        for (node, shard, epoch) in serving {
            by_shard.entry(*shard).or_default().push(node);
            if !self.serving.contains_key(&(node.clone(), *shard)) {
                let highest = self.highest_epoch.entry(*shard).or_default();
                if *epoch < *highest {
                    let highest = *highest;
                    self.fail(
                        now,
                        "epochs-grow",
                        format!("{node} serves {shard} under {epoch}, after {highest}"),
                    );
                } else {
                    *highest = *epoch;
                }
            }
        }
        self.serving = serving
            .iter()
            .map(|(node, shard, epoch)| ((node.clone(), *shard), *epoch))
            .collect();
        if let Some((shard, nodes)) = by_shard.iter().find(|(_, nodes)| nodes.len() > 1) {
            let nodes: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            self.fail(
                now,
                "two-valid-homes",
                format!("{shard} is served by {}", nodes.join(" and ")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_steps_on_two_nodes_fail_and_adjacent_ones_do_not() {
        let a = NodeId::new("a", 1);
        let b = NodeId::new("b", 2);
        let e: EntityId = "e".into();
        let mut checker = Checker::default();
        checker.step_committed(0, &a, &e, 0, 0, 10 * MS);
        checker.step_committed(1, &b, &e, 1, 10 * MS, 20 * MS);
        assert!(checker.violation().is_none());
        checker.step_committed(0, &a, &e, 2, 15 * MS, 30 * MS);
        assert_eq!(
            checker.violation().map(|v| v.invariant),
            Some("single-writer")
        );
    }

    #[test]
    fn a_write_from_a_stale_value_fails() {
        let a = NodeId::new("a", 1);
        let e: EntityId = "e".into();
        let mut checker = Checker::default();
        checker.step_committed(0, &a, &e, 0, 0, MS);
        checker.step_committed(0, &a, &e, 0, 2 * MS, 3 * MS);
        assert_eq!(
            checker.violation().map(|v| v.invariant),
            Some("stale-write")
        );
    }

    #[test]
    fn a_lower_epoch_and_two_homes_fail() {
        let a = NodeId::new("a", 1);
        let b = NodeId::new("b", 2);
        let mut checker = Checker::default();
        checker.homes(0, &[(a.clone(), ShardId(1), Epoch(5))]);
        checker.homes(MS, &[]);
        checker.homes(2 * MS, &[(b.clone(), ShardId(1), Epoch(4))]);
        assert_eq!(
            checker.violation().map(|v| v.invariant),
            Some("epochs-grow")
        );
        let mut checker = Checker::default();
        checker.homes(0, &[(a, ShardId(1), Epoch(5)), (b, ShardId(1), Epoch(5))]);
        assert_eq!(
            checker.violation().map(|v| v.invariant),
            Some("two-valid-homes")
        );
    }

    #[test]
    fn two_sides_delivering_after_the_split_settled_fail() {
        let a = NodeId::new("a", 1);
        let b = NodeId::new("b", 2);
        let e: EntityId = "e".into();
        let f: EntityId = "f".into();
        let mut checker = Checker::default();
        checker.set_split(0, Some(&[vec![0], vec![1]]));
        checker.step_committed(0, &a, &e, 0, SPLIT_SETTLE, SPLIT_SETTLE + MS);
        assert!(checker.violation().is_none());
        checker.step_committed(1, &b, &f, 0, SPLIT_SETTLE, SPLIT_SETTLE + 2 * MS);
        assert_eq!(
            checker.violation().map(|v| v.invariant),
            Some("one-side-serves")
        );
    }

    #[test]
    fn two_nodes_may_share_an_epoch_but_no_node_starts_two_coordinators_under_one() {
        let (a, b) = (NodeId::new("a", 1), NodeId::new("b", 2));
        let mut checker = Checker::default();
        checker.coordinator_started(0, &a, Epoch(7));
        checker.coordinator_started(MS, &b, Epoch(7));
        assert!(checker.violation().is_none());
        checker.coordinator_started(2 * MS, &a, Epoch(7));
        assert_eq!(
            checker.violation().map(|v| v.invariant),
            Some("epochs-grow")
        );
    }

    #[test]
    fn a_joiner_on_neither_side_bridges_the_split() {
        let a = NodeId::new("a", 1);
        let b = NodeId::new("b", 2);
        let (e, f): (EntityId, EntityId) = ("e".into(), "f".into());
        let mut checker = Checker::default();
        checker.set_split(0, Some(&[vec![0], vec![1]]));
        checker.process_started(1);
        checker.step_committed(0, &a, &e, 0, SPLIT_SETTLE, SPLIT_SETTLE + MS);
        checker.process_started(2);
        checker.step_committed(1, &b, &f, 0, SPLIT_SETTLE, SPLIT_SETTLE + 2 * MS);
        assert!(checker.violation().is_none());
    }
}
