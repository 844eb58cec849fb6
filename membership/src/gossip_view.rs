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
use std::sync::Arc;

use crate::keys::{self, MembershipKey};
use crate::reachability::ReachabilityTable;
use crate::{AppVersion, Member, MemberStatus, NodeId, Reachability};

/// One node as gossip knows it: its identity, advertise address, its
/// membership keys (`member.*`) and whether chitchat considers it live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipNode {
    /// The node's identity (from chitchat's id: `node_id` is the name,
    /// `generation_id` the generation).
    pub id: NodeId,
    /// Its gossip advertise address.
    pub addr: SocketAddr,
    /// The node's keys (only `member.*` ones are read), shared: a view of
    /// N nodes is rebuilt on every gossip change, and copying every key of
    /// every node each time made a 1,000-node view cost O(N^2) per change.
    pub keys: Arc<BTreeMap<String, String>>,
    /// The gossip layer's own (transitive) liveness.
    pub live: bool,
}

impl GossipNode {
    /// Merges another report of the same node: live if either says so, the
    /// larger value of each key, so the result does not depend on the order.
    pub(crate) fn merge(&mut self, other: &GossipNode) {
        self.live |= other.live;
        self.addr = self.addr.min(other.addr);
        let keys = Arc::make_mut(&mut self.keys);
        for (key, value) in other.keys.iter() {
            let entry = keys.entry(key.clone()).or_default();
            if *value > *entry {
                entry.clone_from(value);
            }
        }
    }

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
            keys: Arc::new(
                key_values
                    .into_iter()
                    .filter(|(key, _)| key.starts_with(keys::PREFIX))
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .collect(),
            ),
            live,
        }
    }
}

/// What one node says in its keys; garbage is skipped. Reading it is most
/// of the cost of a view, so [`Membership`](crate::Membership) keeps each
/// node's reading until that node's keys change.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Said {
    status: Option<MemberStatus>,
    roles: BTreeSet<String>,
    app_version: Option<AppVersion>,
    up_number: Option<u64>,
    unreachable: BTreeSet<NodeId>,
    down: BTreeSet<NodeId>,
    admit: BTreeSet<NodeId>,
    may_start: bool,
    /// The joiners it sees, as [`keys::encode_ids`] writes them.
    seen_joiners: Option<String>,
    /// The joining and Up members it sees, likewise.
    seen_members: Option<String>,
    /// (the status it was seen in, the member)
    seen: BTreeSet<(MemberStatus, NodeId)>,
}

impl Said {
    pub(crate) fn read(node: &GossipNode) -> Self {
        let mut said = Said::default();
        for (key, value) in node.keys.iter() {
            let Some(Ok(key)) = MembershipKey::decode(key) else {
                continue;
            };
            match key {
                MembershipKey::Status => said.status = keys::decode_status(value).ok(),
                MembershipKey::Roles => said.roles = keys::decode_roles(value),
                MembershipKey::AppVersion => said.app_version = AppVersion::new(value),
                MembershipKey::UpNumber => said.up_number = value.parse().ok(),
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
                MembershipKey::SeenJoiners => said.seen_joiners = Some(value.clone()),
                MembershipKey::SeenMembers => said.seen_members = Some(value.clone()),
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
    /// What each member says, read from its keys: asked by
    /// [`Self::has_seen`] (an index of every sighting would cost N^2 per
    /// view while N nodes join).
    said: BTreeMap<NodeId, Arc<Said>>,
}

impl GossipView {
    /// The joiners `observer` says it sees ([`keys::encode_ids`]).
    pub fn seen_joiners(&self, observer: &NodeId) -> Option<&str> {
        self.said.get(observer)?.seen_joiners.as_deref()
    }

    /// The joining and Up members `observer` says it sees
    /// ([`keys::encode_ids`]); `None` from a build that predates the key.
    pub fn seen_members(&self, observer: &NodeId) -> Option<&str> {
        self.said.get(observer)?.seen_members.as_deref()
    }

    /// Whether `observer` says it has seen `subject` in `status`
    /// (`Exiting` or `Down`).
    pub fn has_seen(&self, observer: &NodeId, status: MemberStatus, subject: &NodeId) -> bool {
        self.said
            .get(observer)
            .is_some_and(|said| said.seen.contains(&(status, subject.clone())))
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
        let said: Vec<Arc<Said>> = nodes
            .values()
            .map(|node| Arc::new(Said::read(node)))
            .collect();
        Self::build_read(nodes.values().map(|node| &**node).zip(&said), known_down)
    }

    /// [`Self::build`] from nodes whose keys are read already; each id at
    /// most once.
    pub(crate) fn build_read<'a>(
        read: impl IntoIterator<Item = (&'a GossipNode, &'a Arc<Said>)>,
        known_down: &BTreeSet<NodeId>,
    ) -> Self {
        let mut nodes: BTreeMap<&NodeId, &GossipNode> = BTreeMap::new();
        let mut said: BTreeMap<&NodeId, &Arc<Said>> = BTreeMap::new();
        for (node, what) in read {
            nodes.insert(&node.id, node);
            said.insert(&node.id, what);
        }

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

        let members = nodes
            .iter()
            .map(|(id, node)| {
                let member = Member {
                    id: (*id).clone(),
                    addr: node.addr,
                    status: status_of(id),
                    roles: said.get(id).map(|s| s.roles.clone()).unwrap_or_default(),
                    app_version: said.get(id).and_then(|s| s.app_version.clone()),
                    up_number: said.get(id).and_then(|s| s.up_number),
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
            said: said
                .into_iter()
                .map(|(id, what)| (id.clone(), Arc::clone(what)))
                .collect(),
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
            Some(existing) => existing.to_mut().merge(node),
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
            keys: Arc::new(
                keys.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            live: true,
        }
    }

    #[test]
    fn reads_status_roles_versions_and_observations() {
        let nodes = [
            node(
                1,
                &[
                    ("member.status", "up"),
                    ("member.roles", "a,b"),
                    ("member.app-version", "1.10.2"),
                ],
            ),
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
        assert_eq!(m[&id(1)].app_version, AppVersion::new("1.10.2"));
        assert_eq!(m[&id(2)].app_version, None, "none gossiped: the lowest");
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
                    ("member.app-version", "  "),
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
        assert_eq!(view.members[&id(1)].app_version, None);
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
