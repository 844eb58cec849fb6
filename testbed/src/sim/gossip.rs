//! A model of chitchat: each node owns its keys, every gossip round it
//! pushes its whole view to a few peers and they answer with theirs, and
//! the newer copy of each node's state wins. A node is *live* while news
//! of its heartbeat keeps arriving (relayed by anyone, as in chitchat).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use membership::{GossipNode, NodeId};

use super::time::{Micros, SEC};

/// A node whose heartbeat has not advanced for this long is not live.
pub const DEAD_AFTER: Micros = 3 * SEC;

/// One node's state as gossip carries it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Bumped by the owner on every key change.
    pub version: u64,
    /// Bumped by the owner every gossip round.
    pub heartbeat: u64,
    /// The owner's keys.
    pub keys: Arc<BTreeMap<String, String>>,
}

impl Entry {
    fn newer_than(&self, other: &Entry) -> bool {
        (self.version, self.heartbeat) > (other.version, other.heartbeat)
    }
}

/// What one gossip message carries: every node's state the sender knows.
pub type Digest = Arc<BTreeMap<NodeId, Entry>>;

/// What one node knows through gossip.
#[derive(Debug)]
pub struct GossipState {
    me: NodeId,
    entries: BTreeMap<NodeId, (Entry, Micros)>,
    /// Something Membership reads changed since the last [`Self::view`].
    changed: bool,
    live_before: Vec<bool>,
}

impl GossipState {
    /// A fresh node that knows only itself.
    pub fn new(me: NodeId, now: Micros) -> Self {
        let own = Entry {
            version: 0,
            heartbeat: 0,
            keys: Arc::new(BTreeMap::new()),
        };
        let mut entries = BTreeMap::new();
        entries.insert(me.clone(), (own, now));
        Self {
            me,
            entries,
            changed: true,
            live_before: Vec::new(),
        }
    }

    /// Sets or deletes one of this node's own keys.
    pub fn set_own(&mut self, key: String, value: Option<String>) {
        if let Some((own, _)) = self.entries.get_mut(&self.me) {
            let keys = Arc::make_mut(&mut own.keys);
            match value {
                Some(value) => keys.insert(key, value),
                None => keys.remove(&key),
            };
            own.version += 1;
            self.changed = true;
        }
    }

    /// A new round: this node's heartbeat advances; returns the digest to
    /// send to peers.
    pub fn round(&mut self, now: Micros) -> Digest {
        if let Some((own, heard)) = self.entries.get_mut(&self.me) {
            own.heartbeat += 1;
            *heard = now;
        }
        self.digest()
    }

    /// Everything this node knows, to answer a peer.
    pub fn digest(&self) -> Digest {
        Arc::new(
            self.entries
                .iter()
                .map(|(id, (entry, _))| (id.clone(), entry.clone()))
                .collect(),
        )
    }

    /// Merges a peer's digest: the newer copy of each node's state wins.
    pub fn merge(&mut self, digest: &BTreeMap<NodeId, Entry>, now: Micros) {
        for (id, entry) in digest {
            if *id == self.me {
                continue;
            }
            match self.entries.get_mut(id) {
                Some((mine, heard)) => {
                    if entry.newer_than(mine) {
                        if entry.version != mine.version {
                            self.changed = true;
                        }
                        *mine = entry.clone();
                        *heard = now;
                    }
                }
                None => {
                    self.entries.insert(id.clone(), (entry.clone(), now));
                    self.changed = true;
                }
            }
        }
    }

    /// The nodes gossip knows, except this one.
    pub fn peers(&self) -> impl Iterator<Item = &NodeId> {
        self.entries.keys().filter(|id| **id != self.me)
    }

    /// The view for `Membership::on_gossip`, if anything in it changed
    /// since the last call (keys, or who is live).
    pub fn view(&mut self, now: Micros) -> Option<Vec<GossipNode>> {
        let live: Vec<bool> = self
            .entries
            .values()
            .map(|(_, heard)| now.saturating_sub(*heard) < DEAD_AFTER)
            .collect();
        if !self.changed && live == self.live_before {
            return None;
        }
        self.changed = false;
        let nodes = self
            .entries
            .iter()
            .zip(&live)
            .filter(|((id, _), _)| **id != self.me)
            .map(|((id, (entry, _)), live)| GossipNode {
                id: id.clone(),
                addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
                keys: Arc::clone(&entry.keys),
                live: *live,
            })
            .collect();
        self.live_before = live;
        Some(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_copy_wins_and_silence_makes_a_node_not_live() {
        let a = NodeId::new("a", 1);
        let b = NodeId::new("b", 2);
        let mut at_a = GossipState::new(a.clone(), 0);
        let mut at_b = GossipState::new(b.clone(), 0);
        at_b.set_own("member.status".into(), Some("up".into()));
        let digest = at_b.round(0);
        at_a.merge(&digest, 0);
        let view = at_a.view(0).expect("b is new");
        assert_eq!(view.len(), 1);
        assert!(view[0].live);
        assert_eq!(
            view[0].keys.get("member.status").map(String::as_str),
            Some("up")
        );
        assert!(at_a.view(SEC).is_none(), "nothing changed");
        let view = at_a.view(DEAD_AFTER).expect("b is no longer live");
        assert!(!view[0].live);
        // An old copy does not overwrite a newer one.
        at_a.merge(&digest, DEAD_AFTER);
        assert!(at_a.view(DEAD_AFTER).is_none());
    }
}
