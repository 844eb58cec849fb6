//! From what gossip knows to the member view.
//!
//! The gossip layer (chitchat, in `mesh`) hands each node over as a plain
//! [`GossipNode`] (built with [`GossipNode::from_key_values`]), so this crate
//! and its tests need no chitchat and no IO. The view is a pure function of
//! the nodes (in any order, duplicates merged) and the Down decisions adopted
//! earlier, so two nodes that see the same gossip see the same members.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use crate::keys::{self, MembershipKey};
use crate::reachability::ReachabilityTable;
use crate::{Member, MemberStatus, NodeId, Reachability};

/// One node as gossip knows it: its identity, advertise address, its
/// membership keys (`member.*`) and whether chitchat considers it live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipNode {
    /// The node's identity (from chitchat's id: `node_id` is the name,
    /// `generation_id` the generation).
    pub id: NodeId,
    /// Its gossip advertise address.
    pub addr: SocketAddr,
    /// The node's keys (only `member.*` ones are read).
    pub keys: BTreeMap<String, String>,
    /// The gossip layer's own (transitive) liveness.
    pub live: bool,
}

impl GossipNode {
    /// A node from its identity, advertise address, key-value pairs (any
    /// keys: only membership keys, `member.*`, are kept) and whether the
    /// gossip layer considers it live.
    pub fn from_key_values<'a>(
        id: NodeId,
        addr: SocketAddr,
        key_values: impl IntoIterator<Item = (&'a str, &'a str)>,
        live: bool,
    ) -> Self {
        GossipNode {
            id,
            addr,
            keys: key_values
                .into_iter()
                .filter(|(key, _)| key.starts_with(keys::PREFIX))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            live,
        }
    }
}

/// What one node says in its keys; garbage is skipped.
#[derive(Debug, Default)]
struct Said {
    status: Option<MemberStatus>,
    roles: BTreeSet<String>,
    unreachable: BTreeSet<NodeId>,
    down: BTreeSet<NodeId>,
    admit: BTreeSet<NodeId>,
    may_start: bool,
    /// (the status it was seen in, the member)
    seen: BTreeSet<(MemberStatus, NodeId)>,
}

impl Said {
    fn read(node: &GossipNode) -> Self {
        let mut said = Said::default();
        for (key, value) in &node.keys {
            let Some(Ok(key)) = MembershipKey::decode(key) else {
                continue;
            };
            match key {
                MembershipKey::Status => said.status = keys::decode_status(value).ok(),
                MembershipKey::Roles => said.roles = keys::decode_roles(value),
                MembershipKey::MayStart => said.may_start = true,
                MembershipKey::Unreachable(id) => {
                    said.unreachable.insert(id);
                }
                MembershipKey::Down(id) => {
                    said.down.insert(id);
                }
                MembershipKey::Admit(id) => {
                    said.admit.insert(id);
                }
                MembershipKey::SeenJoining(id) => {
                    said.seen.insert((MemberStatus::Joining, id));
                }
                MembershipKey::SeenExiting(id) => {
                    said.seen.insert((MemberStatus::Exiting, id));
                }
                MembershipKey::SeenDown(id) => {
                    said.seen.insert((MemberStatus::Down, id));
                }
            }
        }
        said
    }
}

/// The members derived from gossip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipView {
    /// Every known member, any status (Removed and Down included), oldest first.
    pub members: BTreeMap<NodeId, Member>,
    /// Members that an Up (or Leaving) member admits.
    pub admitted: BTreeSet<NodeId>,
    /// Joining members that may start a cluster.
    pub may_start: BTreeSet<NodeId>,
    /// Every member known to be Down, present or not: the adopted union.
    pub down: BTreeSet<NodeId>,
    /// Members chitchat considers live.
    pub live: BTreeSet<NodeId>,
    /// For each member and status (`Joining`, `Exiting`, `Down`), the
    /// members that say they have seen it in that status.
    pub seen: BTreeMap<(MemberStatus, NodeId), BTreeSet<NodeId>>,
}

impl GossipView {
    /// Whether `observer` says it has seen `subject` in `status`.
    pub fn has_seen(&self, observer: &NodeId, status: MemberStatus, subject: &NodeId) -> bool {
        self.seen
            .get(&(status, subject.clone()))
            .is_some_and(|seen| seen.contains(observer))
    }
}

impl GossipView {
    /// The view of `nodes` given the Down decisions adopted before
    /// (`known_down`, since Down is final even after its key is gone).
    ///
    /// - A member's status is what it publishes (missing or garbage: Joining),
    ///   unless it is Down: named in any node's `member.down.*` key, in
    ///   `known_down`, or superseded by a younger generation of the same name.
    /// - Reachability merges every observation of observers not Down/Removed.
    pub fn build<'a>(
        nodes: impl IntoIterator<Item = &'a GossipNode>,
        known_down: &BTreeSet<NodeId>,
    ) -> Self {
        let nodes = merge_duplicates(nodes);
        let said: BTreeMap<&NodeId, Said> = nodes
            .iter()
            .map(|(id, node)| (*id, Said::read(node)))
            .collect();

        let mut down = known_down.clone();
        for what in said.values() {
            down.extend(what.down.iter().cloned());
        }
        let mut youngest: BTreeMap<&str, u64> = BTreeMap::new();
        for id in nodes.keys() {
            let generation = youngest.entry(id.name.as_str()).or_default();
            *generation = (*generation).max(id.generation);
        }
        for id in nodes.keys() {
            if youngest
                .get(id.name.as_str())
                .is_some_and(|g| *g > id.generation)
            {
                down.insert((*id).clone());
            }
        }

        let status_of = |id: &NodeId| -> MemberStatus {
            if down.contains(id) {
                return MemberStatus::Down;
            }
            said.get(id)
                .and_then(|s| s.status)
                .unwrap_or(MemberStatus::Joining)
        };

        let mut table = ReachabilityTable::new();
        for (observer, what) in &said {
            table.set_observations((*observer).clone(), what.unreachable.clone());
        }
        let mut observers =
            table.merged(|observer| nodes.contains_key(observer) && !status_of(observer).is_gone());

        let mut admitted = BTreeSet::new();
        for (writer, what) in &said {
            if matches!(status_of(writer), MemberStatus::Up | MemberStatus::Leaving) {
                admitted.extend(what.admit.iter().cloned());
            }
        }

        let mut seen: BTreeMap<(MemberStatus, NodeId), BTreeSet<NodeId>> = BTreeMap::new();
        for (writer, what) in &said {
            for subject in &what.seen {
                seen.entry(subject.clone())
                    .or_default()
                    .insert((*writer).clone());
            }
        }

        let members = nodes
            .iter()
            .map(|(id, node)| {
                let member = Member {
                    id: (*id).clone(),
                    addr: node.addr,
                    status: status_of(id),
                    roles: said.get(id).map(|s| s.roles.clone()).unwrap_or_default(),
                    reachability: Reachability::from_observers(
                        observers.remove(id).unwrap_or_default(),
                    ),
                };
                ((*id).clone(), member)
            })
            .collect();

        let may_start = said
            .iter()
            .filter(|(_, what)| what.may_start)
            .map(|(id, _)| (*id).clone())
            .collect();
        GossipView {
            members,
            admitted,
            may_start,
            live: nodes
                .iter()
                .filter(|(_, node)| node.live)
                .map(|(id, _)| (*id).clone())
                .collect(),
            down,
            seen,
        }
    }
}

/// The same id twice (a caller merging sources): keys are united, a conflict
/// keeps the larger value, so the result does not depend on the order.
/// One entry per node id; a node listed twice is merged (live if either
/// says so, the larger value of each key). Borrows the nodes listed once.
fn merge_duplicates<'a>(
    nodes: impl IntoIterator<Item = &'a GossipNode>,
) -> BTreeMap<&'a NodeId, Cow<'a, GossipNode>> {
    let mut merged: BTreeMap<&'a NodeId, Cow<'a, GossipNode>> = BTreeMap::new();
    for node in nodes {
        match merged.get_mut(&node.id) {
            None => {
                merged.insert(&node.id, Cow::Borrowed(node));
            }
            Some(existing) => {
                let existing = existing.to_mut();
                existing.live |= node.live;
                existing.addr = existing.addr.min(node.addr);
                for (key, value) in &node.keys {
                    let entry = existing.keys.entry(key.clone()).or_default();
                    if *value > *entry {
                        entry.clone_from(value);
                    }
                }
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::new(format!("n{n}"), n)
    }

    fn node(n: u64, keys: &[(&str, &str)]) -> GossipNode {
        GossipNode {
            id: id(n),
            addr: ([127, 0, 0, 1], 7000 + n as u16).into(),
            keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            live: true,
        }
    }

    #[test]
    fn reads_status_roles_and_observations() {
        let nodes = [
            node(1, &[("member.status", "up"), ("member.roles", "a,b")]),
            node(
                2,
                &[("member.status", "up"), ("member.unreachable.n3#3", "1")],
            ),
            node(3, &[("member.status", "leaving")]),
            node(4, &[]),
        ];
        let view = GossipView::build(&nodes, &BTreeSet::new());
        let m = &view.members;
        assert_eq!(m[&id(1)].status, MemberStatus::Up);
        assert_eq!(m[&id(1)].roles.len(), 2);
        assert_eq!(m[&id(3)].status, MemberStatus::Leaving);
        assert_eq!(m[&id(4)].status, MemberStatus::Joining);
        assert_eq!(
            m[&id(3)].reachability,
            Reachability::from_observers([id(2)].into())
        );
    }

    #[test]
    fn garbage_is_skipped_never_fatal() {
        let nodes = [
            node(
                1,
                &[
                    ("member.status", "on fire"),
                    ("member.roles", ",,,"),
                    ("member.down.nobody", "1"),
                    ("member.unreachable.#", "1"),
                    ("member.admit.x#y", "1"),
                    ("other.key", "whatever"),
                ],
            ),
            node(2, &[("member.status", "up")]),
        ];
        let view = GossipView::build(&nodes, &BTreeSet::new());
        assert_eq!(view.members[&id(1)].status, MemberStatus::Joining);
        assert!(view.members[&id(1)].roles.is_empty());
        assert!(view.down.is_empty());
        assert!(view.members.values().all(|m| m.reachability.is_reachable()));
    }

    #[test]
    fn down_is_the_union_of_all_decisions_and_final() {
        let nodes = [
            node(1, &[("member.status", "up"), ("member.down.n3#3", "1")]),
            node(2, &[("member.status", "up"), ("member.down.n4#4", "1")]),
            node(3, &[("member.status", "up")]),
            node(4, &[("member.status", "up")]),
        ];
        let view = GossipView::build(&nodes, &BTreeSet::new());
        assert_eq!(view.down, [id(3), id(4)].into());
        assert_eq!(view.members[&id(3)].status, MemberStatus::Down);

        // The deciding node's keys vanished: Down stays, by the adopted set.
        let later = [node(3, &[("member.status", "up")])];
        let view = GossipView::build(&later, &view.down);
        assert_eq!(view.members[&id(3)].status, MemberStatus::Down);
    }

    #[test]
    fn a_younger_incarnation_supersedes_the_older() {
        let old = node(1, &[("member.status", "up")]);
        let mut new = node(1, &[("member.status", "joining")]);
        new.id = NodeId::new("n1", 99);
        let view = GossipView::build([&old, &new], &BTreeSet::new());
        assert_eq!(view.members[&id(1)].status, MemberStatus::Down);
        assert_eq!(
            view.members[&NodeId::new("n1", 99)].status,
            MemberStatus::Joining
        );
    }

    #[test]
    fn observations_of_down_observers_do_not_count() {
        let nodes = [
            node(
                1,
                &[("member.status", "up"), ("member.unreachable.n2#2", "1")],
            ),
            node(2, &[("member.status", "up")]),
            node(3, &[("member.status", "up"), ("member.down.n1#1", "1")]),
        ];
        let view = GossipView::build(&nodes, &BTreeSet::new());
        assert!(view.members[&id(2)].reachability.is_reachable());
    }

    #[test]
    fn admissions_count_only_from_up_members() {
        let nodes = [
            node(1, &[("member.status", "up"), ("member.admit.n3#3", "1")]),
            node(
                2,
                &[("member.status", "joining"), ("member.admit.n4#4", "1")],
            ),
            node(3, &[]),
            node(4, &[]),
        ];
        let view = GossipView::build(&nodes, &BTreeSet::new());
        assert_eq!(view.admitted, [id(3)].into());
    }

    #[test]
    fn keeps_only_membership_keys() {
        let node = GossipNode::from_key_values(
            id(1),
            "127.0.0.1:1".parse().unwrap(),
            [
                ("member.status", "up"),
                ("member.roles", "coord"),
                ("unrelated", "x"),
            ],
            true,
        );
        assert_eq!(node.keys.len(), 2);
        assert!(node.live);
        assert_eq!(node.id, id(1));
    }
}
