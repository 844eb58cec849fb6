//! A network-free simulation of several `Membership` instances: each node's
//! own keys, gossip relayed along links that are not cut (stale copies stay
//! stale), heartbeats answered at once unless the link is cut, virtual time.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membership::{
    GossipNode, MemberEvent, MemberStatus, Membership, MembershipConfig, MembershipEffect, NodeId,
};

/// Virtual time per step.
pub const STEP: Duration = Duration::from_millis(100);
/// How long a node that got `SelfDown`/`SelfRemoved` keeps gossiping.
pub const LINGER: Duration = Duration::from_secs(1);

pub struct SimNode {
    pub membership: Membership,
    pub keys: BTreeMap<String, String>,
    /// What this node last heard of each other node's keys.
    pub known: BTreeMap<NodeId, BTreeMap<String, String>>,
    pub running: bool,
    /// Still gossiping (running, or lingering after it stopped).
    pub gossiping_until: Option<Instant>,
    pub self_down_at: Option<Instant>,
    pub self_removed_at: Option<Instant>,
    pub events: Vec<(Instant, MemberEvent)>,
}

pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub nodes: BTreeMap<NodeId, SimNode>,
    cuts: BTreeSet<(String, String)>,
}

pub fn id(n: u64) -> NodeId {
    NodeId::new(format!("n{n}"), n)
}

impl Sim {
    pub fn new() -> Self {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            nodes: BTreeMap::new(),
            cuts: BTreeSet::new(),
        }
    }

    /// Nodes n1..=n<count> (n1 oldest), started now.
    pub fn with_nodes(count: u64) -> Self {
        let mut sim = Sim::new();
        for n in 1..=count {
            sim.start_node(id(n));
        }
        sim
    }

    pub fn start_node(&mut self, node: NodeId) {
        let addr = ([127, 0, 0, 1], 7000 + self.nodes.len() as u16).into();
        let membership = Membership::new(
            node.clone(),
            addr,
            BTreeSet::new(),
            MembershipConfig::default(),
            self.now,
        );
        self.nodes.insert(
            node,
            SimNode {
                membership,
                keys: BTreeMap::new(),
                known: BTreeMap::new(),
                running: true,
                gossiping_until: None,
                self_down_at: None,
                self_removed_at: None,
                events: Vec::new(),
            },
        );
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn pair(a: &NodeId, b: &NodeId) -> (String, String) {
        let (x, y) = if a.name <= b.name { (a, b) } else { (b, a) };
        (x.name.to_string(), y.name.to_string())
    }

    pub fn cut(&mut self, a: &NodeId, b: &NodeId) {
        self.cuts.insert(Self::pair(a, b));
    }

    pub fn partition(&mut self, side_a: &[NodeId], side_b: &[NodeId]) {
        for a in side_a {
            for b in side_b {
                self.cut(a, b);
            }
        }
    }

    pub fn heal(&mut self) {
        self.cuts.clear();
    }

    fn linked(&self, a: &NodeId, b: &NodeId) -> bool {
        !self.cuts.contains(&Self::pair(a, b))
    }

    /// Kill -9: no goodbye, no lingering gossip.
    pub fn crash(&mut self, node: &NodeId) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.running = false;
            n.gossiping_until = None;
        }
    }

    fn gossiping(&self, node: &NodeId) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.running || n.gossiping_until.is_some_and(|until| self.now < until))
    }

    /// Nodes reachable from `from` through gossiping nodes and uncut links.
    fn component(&self, from: &NodeId) -> BTreeSet<NodeId> {
        let mut seen = BTreeSet::from([from.clone()]);
        let mut queue = VecDeque::from([from.clone()]);
        while let Some(current) = queue.pop_front() {
            for other in self.nodes.keys() {
                if !seen.contains(other) && self.gossiping(other) && self.linked(&current, other) {
                    seen.insert(other.clone());
                    queue.push_back(other.clone());
                }
            }
        }
        seen
    }

    fn deliver_gossip(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for node in &ids {
            if !self.gossiping(node) {
                continue;
            }
            let component = self.component(node);
            let fresh: Vec<(NodeId, BTreeMap<String, String>)> = component
                .iter()
                .filter(|other| *other != node)
                .map(|other| (other.clone(), self.nodes[other].keys.clone()))
                .collect();
            let addrs: BTreeMap<NodeId, _> = ids
                .iter()
                .map(|i| (i.clone(), ([127, 0, 0, 1], 7000).into()))
                .collect();
            let now = self.now;
            let Some(sim_node) = self.nodes.get_mut(node) else {
                continue;
            };
            for (other, keys) in fresh {
                sim_node.known.insert(other, keys);
            }
            if !sim_node.running {
                continue;
            }
            let gossip: Vec<GossipNode> = sim_node
                .known
                .iter()
                .map(|(other, keys)| GossipNode {
                    id: other.clone(),
                    addr: addrs[other],
                    keys: Arc::new(keys.clone()),
                    live: component.contains(other),
                })
                .collect();
            sim_node.membership.on_gossip(now, gossip);
        }
    }

    fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for node in &ids {
            if !self.nodes[node].running {
                continue;
            }
            let now = self.now;
            let effects = match self.nodes.get_mut(node) {
                Some(n) => n.membership.tick(now),
                None => continue,
            };
            self.apply(node, effects);
        }
    }

    pub fn apply(&mut self, node: &NodeId, effects: Vec<MembershipEffect>) {
        let now = self.now;
        let mut answers = Vec::new();
        for effect in effects {
            match effect {
                MembershipEffect::SendHeartbeat { to } => {
                    let answers_back =
                        self.nodes.get(&to).is_some_and(|n| n.running) && self.linked(node, &to);
                    if answers_back {
                        answers.push(to);
                    }
                }
                other => {
                    let Some(n) = self.nodes.get_mut(node) else {
                        continue;
                    };
                    match other {
                        MembershipEffect::SetKey { key, value } => {
                            n.keys.insert(key, value);
                        }
                        MembershipEffect::DeleteKey { key } => {
                            n.keys.remove(&key);
                        }
                        MembershipEffect::Event(event) => n.events.push((now, event)),
                        MembershipEffect::SelfDown => {
                            n.self_down_at = Some(now);
                            n.running = false;
                            n.gossiping_until = Some(now + LINGER);
                        }
                        MembershipEffect::SelfRemoved => {
                            n.self_removed_at = Some(now);
                            n.running = false;
                            n.gossiping_until = Some(now + LINGER);
                        }
                        MembershipEffect::SendHeartbeat { .. } => {}
                    }
                }
            }
        }
        if let Some(n) = self.nodes.get_mut(node) {
            for from in answers {
                n.membership.on_heartbeat(now, &from);
            }
        }
    }

    /// One step: gossip, ticks, then time advances.
    pub fn step(&mut self) {
        self.deliver_gossip();
        self.tick_all();
        self.now += STEP;
    }

    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        while self.now < until {
            self.step();
        }
    }

    /// Steps until `done` holds, at most `limit`; returns the time it took.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let from = self.now;
        while self.now - from <= limit {
            if done(self) {
                return Some(self.now - from);
            }
            self.step();
        }
        None
    }

    pub fn running(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.running)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn status_seen_by(&self, observer: &NodeId, subject: &NodeId) -> Option<MemberStatus> {
        self.nodes[observer]
            .membership
            .member(subject)
            .map(|m| m.status)
    }

    pub fn all_up(&self) -> bool {
        self.running().iter().all(|observer| {
            let members = self.nodes[observer].membership.members();
            members.len() == self.running().len()
                && members.iter().all(|m| m.status == MemberStatus::Up)
        })
    }

    /// Runs until every running node sees every running node Up.
    pub fn converge(&mut self) -> Duration {
        self.run_until(Duration::from_secs(10), Sim::all_up)
            .expect("the cluster converges to all Up")
    }
}
