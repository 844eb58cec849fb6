//! The downing strategies and what each decides for a split.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// How a partition is resolved. In TOML:
/// `downing = { strategy = "keep-majority" }`,
/// `downing = { strategy = "static-quorum", quorum_size = 3 }`,
/// `downing = { strategy = "keep-oldest", down_if_alone = true }`,
/// `downing = { strategy = "down-all" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "kebab-case")]
pub enum DowningStrategy {
    /// The side with more members survives; on a tie the side holding the
    /// oldest member.
    #[default]
    KeepMajority,
    /// The side with at least `quorum_size` members survives; a side below it
    /// downs itself. If the cluster has grown beyond `2 * quorum_size - 1`
    /// members, both sides could reach quorum and everything is downed.
    StaticQuorum {
        /// Members a side needs to survive.
        quorum_size: usize,
    },
    /// The side holding the oldest member survives.
    KeepOldest {
        /// If the oldest member is alone on its side (and the other side has
        /// at least two members), the oldest is downed and the other side
        /// survives. Default true.
        #[serde(default = "default_true")]
        down_if_alone: bool,
    },
    /// Every member is downed on any partition; for clusters that would
    /// rather restart than guess.
    DownAll,
}

fn default_true() -> bool {
    true
}

/// What to down. "Reachable" is the deciding node's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Down the other side (and the indirectly connected).
    DownUnreachable,
    /// Down the deciding node's own side.
    DownReachable,
    /// Down everyone.
    DownAll,
    /// Only indirectly connected members are unreachable: down them, keep the rest.
    DownIndirectlyConnected,
    /// Down the deciding node's own side and the indirectly connected.
    DownReachableAndIndirectlyConnected,
}

/// The members counted by a strategy (`Up` and `Leaving`), by side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// The deciding node's side.
    pub reachable: BTreeSet<NodeId>,
    /// The other side.
    pub unreachable: BTreeSet<NodeId>,
    /// Members Down but not yet Removed. Keep-majority counts them against
    /// the deciding side: a side that downed a member just before a second
    /// cut must not count itself a majority of the members that remain
    /// while the other side, which has not heard of that Down, still
    /// counts the member as its own (found by the simulation: both sides
    /// of a 2|3 cut survived).
    pub downed: BTreeSet<NodeId>,
}

impl Split {
    fn oldest(&self) -> Option<&NodeId> {
        self.reachable.iter().chain(&self.unreachable).min()
    }

    fn oldest_is_reachable(&self) -> bool {
        match self.oldest() {
            Some(oldest) => self.reachable.contains(oldest),
            None => false,
        }
    }
}

impl DowningStrategy {
    /// The decision for `split`, taken by a node of `split.reachable`.
    pub fn decide(&self, split: &Split) -> Decision {
        if split.unreachable.is_empty() {
            // Only joining members are unreachable: nothing to weigh.
            return Decision::DownUnreachable;
        }
        let reachable = split.reachable.len();
        let unreachable = split.unreachable.len();
        match self {
            DowningStrategy::KeepMajority => {
                let unreachable = unreachable + split.downed.len();
                let oldest_downed = split
                    .downed
                    .first()
                    .is_some_and(|downed| Some(downed) < split.oldest());
                if reachable == unreachable {
                    if split.oldest_is_reachable() && !oldest_downed {
                        Decision::DownUnreachable
                    } else {
                        Decision::DownReachable
                    }
                } else if reachable > unreachable {
                    Decision::DownUnreachable
                } else {
                    Decision::DownReachable
                }
            }
            DowningStrategy::StaticQuorum { quorum_size } => {
                let quorum = (*quorum_size).max(1);
                if reachable + unreachable > quorum * 2 - 1 {
                    Decision::DownAll
                } else if reachable < quorum {
                    Decision::DownReachable
                } else {
                    Decision::DownUnreachable
                }
            }
            DowningStrategy::KeepOldest { down_if_alone } => {
                let oldest_reachable = split.oldest_is_reachable();
                let (oldest_side, other_side) = if oldest_reachable {
                    (reachable, unreachable)
                } else {
                    (unreachable, reachable)
                };
                let oldest_alone = *down_if_alone && oldest_side == 1 && other_side >= 2;
                match (oldest_reachable, oldest_alone) {
                    (true, false) | (false, true) => Decision::DownUnreachable,
                    (true, true) | (false, false) => Decision::DownReachable,
                }
            }
            DowningStrategy::DownAll => Decision::DownAll,
        }
    }
}

impl std::fmt::Display for DowningStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DowningStrategy::KeepMajority => f.write_str("keep-majority"),
            DowningStrategy::StaticQuorum { quorum_size } => {
                write!(f, "static-quorum(quorum_size={quorum_size})")
            }
            DowningStrategy::KeepOldest { down_if_alone } => {
                write!(f, "keep-oldest(down_if_alone={down_if_alone})")
            }
            DowningStrategy::DownAll => f.write_str("down-all"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(gens: &[u64]) -> BTreeSet<NodeId> {
        gens.iter()
            .map(|g| NodeId::new(format!("n{g}"), *g))
            .collect()
    }

    fn split(reachable: &[u64], unreachable: &[u64]) -> Split {
        Split {
            reachable: ids(reachable),
            unreachable: ids(unreachable),
            downed: BTreeSet::new(),
        }
    }

    use Decision::*;

    #[test]
    fn keep_majority() {
        let s = DowningStrategy::KeepMajority;
        assert_eq!(s.decide(&split(&[3, 4, 5], &[1, 2])), DownUnreachable);
        assert_eq!(s.decide(&split(&[1, 2], &[3, 4, 5])), DownReachable);
        assert_eq!(s.decide(&split(&[1, 4], &[2, 3])), DownUnreachable);
        assert_eq!(s.decide(&split(&[2, 3], &[1, 4])), DownReachable);
    }

    #[test]
    fn static_quorum() {
        let s = DowningStrategy::StaticQuorum { quorum_size: 3 };
        assert_eq!(s.decide(&split(&[1, 2, 3], &[4, 5])), DownUnreachable);
        assert_eq!(s.decide(&split(&[4, 5], &[1, 2, 3])), DownReachable);
        assert_eq!(s.decide(&split(&[1, 2, 3], &[4, 5, 6])), DownAll);
    }

    #[test]
    fn keep_oldest() {
        let s = DowningStrategy::KeepOldest {
            down_if_alone: false,
        };
        assert_eq!(s.decide(&split(&[1], &[2, 3, 4])), DownUnreachable);
        assert_eq!(s.decide(&split(&[2, 3, 4], &[1])), DownReachable);
        let alone = DowningStrategy::KeepOldest {
            down_if_alone: true,
        };
        assert_eq!(alone.decide(&split(&[1], &[2, 3, 4])), DownReachable);
        assert_eq!(alone.decide(&split(&[2, 3, 4], &[1])), DownUnreachable);
        assert_eq!(alone.decide(&split(&[1, 2], &[3, 4])), DownUnreachable);
        // Two members: the oldest is never "alone", its side wins.
        assert_eq!(alone.decide(&split(&[1], &[2])), DownUnreachable);
        assert_eq!(alone.decide(&split(&[2], &[1])), DownReachable);
    }

    #[test]
    fn down_all() {
        assert_eq!(
            DowningStrategy::DownAll.decide(&split(&[1, 2, 3], &[4])),
            DownAll
        );
    }

    #[test]
    fn serde_names() {
        let json = serde_json::to_string(&DowningStrategy::KeepOldest {
            down_if_alone: true,
        })
        .expect("serializes");
        assert_eq!(json, r#"{"strategy":"keep-oldest","down_if_alone":true}"#);
        let back: DowningStrategy =
            serde_json::from_str(r#"{"strategy":"keep-oldest"}"#).expect("deserializes");
        assert_eq!(
            back,
            DowningStrategy::KeepOldest {
                down_if_alone: true
            }
        );
    }
}
