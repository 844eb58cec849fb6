//! A deterministic simulation of one coordinator and a few regions
//! exchanging messages through a network the test controls: every packet
//! waits in `network` until the test delivers, duplicates or drops it, in
//! any order. Time is virtual.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sharding::{
    Coordinator, CoordinatorEffect, CoordinatorInput, CoordinatorToRegion, Envelope, Epoch, Region,
    RegionEffect, RegionId, RegionInput, RegionToCoordinator, RegionToRegion, ReplyTo, ShardId,
    ShardState, ShardingConfig, StopReason,
};

/// A message on the wire.
#[derive(Clone, Debug)]
pub enum Packet {
    /// To whichever coordinator runs when it arrives.
    ToCoordinator(Envelope<RegionToCoordinator>),
    /// To one region.
    FromCoordinator {
        to: RegionId,
        message: Envelope<CoordinatorToRegion>,
    },
    /// Between regions.
    Peer {
        to: RegionId,
        message: Envelope<RegionToRegion<u64>>,
    },
}

/// One node's region.
pub struct Node {
    pub region: Region<u64>,
    pub paused: bool,
}

pub struct Sim {
    pub t0: Instant,
    pub now: Instant,
    pub config: ShardingConfig,
    pub coordinator: Coordinator,
    /// Replaced coordinators that still act (they have not seen the newer
    /// epoch, and believe they have quorum) until the instant given.
    pub superseded: Vec<(Coordinator, Instant)>,
    pub epoch: u64,
    pub nodes: BTreeMap<String, Node>,
    pub crashed: BTreeMap<String, u64>,
    /// Declared Down to everyone else, but still running (a cut-off minority).
    pub downed_alive: BTreeSet<RegionId>,
    pub network: Vec<Packet>,
    /// (region, payload) for every local delivery.
    pub delivered: Vec<(RegionId, ShardId, u64)>,
    /// Payloads that came back as errors.
    pub failed: Vec<u64>,
    pub pending_stops: Vec<(RegionId, ShardId)>,
    pub next_payload: u64,
}

pub fn region_id(name: &str, generation: u64) -> RegionId {
    RegionId::new(name, generation)
}

impl Sim {
    pub fn new(config: ShardingConfig, names: &[&str]) -> Self {
        let t0 = Instant::now();
        let mut coordinator =
            Coordinator::new(region_id("coord", 1), Epoch(1), config.clone(), t0, None);
        coordinator.handle(t0, CoordinatorInput::Quorum(true));
        let mut sim = Sim {
            t0,
            now: t0,
            config: config.clone(),
            coordinator,
            superseded: Vec::new(),
            epoch: 1,
            nodes: BTreeMap::new(),
            crashed: BTreeMap::new(),
            downed_alive: BTreeSet::new(),
            network: Vec::new(),
            delivered: Vec::new(),
            failed: Vec::new(),
            pending_stops: Vec::new(),
            next_payload: 0,
        };
        for name in names {
            sim.start_region(name, 1);
        }
        sim
    }

    pub fn start_region(&mut self, name: &str, generation: u64) {
        let id = region_id(name, generation);
        let region = Region::new(id.clone(), self.config.clone(), false);
        self.nodes.insert(
            name.to_string(),
            Node {
                region,
                paused: false,
            },
        );
        let effects = self
            .coordinator
            .handle(self.now, CoordinatorInput::MemberUp(id, None));
        self.coordinator_effects(effects);
    }

    pub fn ids(&self) -> Vec<RegionId> {
        self.nodes.values().map(|n| n.region.id().clone()).collect()
    }

    fn node_mut(&mut self, id: &RegionId) -> Option<&mut Node> {
        self.nodes
            .get_mut(id.name.as_str())
            .filter(|node| node.region.id() == id)
    }

    pub fn coordinator_effects(&mut self, effects: Vec<CoordinatorEffect>) {
        for effect in effects {
            if let CoordinatorEffect::Send { to, message } = effect {
                self.network.push(Packet::FromCoordinator { to, message });
            }
        }
    }

    pub fn region_effects(&mut self, from: &RegionId, effects: Vec<RegionEffect<u64>>) {
        for effect in effects {
            match effect {
                RegionEffect::ToCoordinator(message) => {
                    self.network.push(Packet::ToCoordinator(message))
                }
                RegionEffect::ToRegion { to, message } => {
                    self.network.push(Packet::Peer { to, message })
                }
                RegionEffect::DeliverLocal(delivery) => {
                    self.delivered
                        .push((from.clone(), delivery.shard, delivery.payload))
                }
                RegionEffect::StopShard {
                    shard,
                    reason: StopReason::Handoff,
                } => self.pending_stops.push((from.clone(), shard)),
                RegionEffect::StopShard { .. } => {}
                RegionEffect::DeliveryFailed { reply_to, .. } => {
                    if let Some(reply_to) = reply_to {
                        self.failed.push(reply_to.correlation);
                    }
                }
            }
        }
    }

    /// Delivers one packet; `false` if its target is paused (it stays queued).
    pub fn deliver(&mut self, packet: Packet) -> bool {
        let now = self.now;
        match packet {
            Packet::ToCoordinator(message) => {
                // Every coordinator still running gets it: the region sent it
                // to the host it knew, which may be the replaced one.
                let mut effects = Vec::new();
                for (old, _) in &mut self.superseded {
                    effects.extend(old.handle(now, CoordinatorInput::Message(message.clone())));
                }
                self.superseded.retain(|(old, _)| !old.is_superseded());
                effects.extend(
                    self.coordinator
                        .handle(now, CoordinatorInput::Message(message)),
                );
                self.coordinator_effects(effects);
            }
            Packet::FromCoordinator { to, message } => {
                let Some(node) = self.node_mut(&to) else {
                    return true;
                };
                if node.paused {
                    return false;
                }
                let effects = node
                    .region
                    .handle(now, RegionInput::FromCoordinator(message));
                self.region_effects(&to, effects);
            }
            Packet::Peer { to, message } => {
                let Some(node) = self.node_mut(&to) else {
                    return true;
                };
                if node.paused {
                    return false;
                }
                let effects = node.region.handle(now, RegionInput::FromRegion(message));
                self.region_effects(&to, effects);
            }
        }
        true
    }

    pub fn deliver_at(&mut self, index: usize, keep_copy: bool) {
        if self.network.is_empty() {
            return;
        }
        let index = index % self.network.len();
        let packet = if keep_copy {
            self.network[index].clone()
        } else {
            self.network.remove(index)
        };
        if !self.deliver(packet.clone()) && !keep_copy {
            self.network.push(packet);
        }
    }

    pub fn drop_at(&mut self, index: usize) {
        if !self.network.is_empty() {
            let index = index % self.network.len();
            self.network.remove(index);
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        let now = self.now;
        let mut effects = Vec::new();
        for (old, acts_until) in &mut self.superseded {
            if now >= *acts_until {
                // Its node saw it lost quorum: it acts no more.
                effects.extend(old.handle(now, CoordinatorInput::Quorum(false)));
            }
            effects.extend(old.tick(now));
        }
        self.superseded
            .retain(|(old, acts_until)| now < *acts_until && !old.is_superseded());
        self.coordinator_effects(effects);
        let effects = self.coordinator.tick(self.now);
        self.coordinator_effects(effects);
        let ids = self.ids();
        for id in ids {
            let now = self.now;
            let Some(node) = self.node_mut(&id) else {
                continue;
            };
            if node.paused {
                continue;
            }
            let effects = node.region.tick(now);
            self.region_effects(&id, effects);
        }
        self.complete_stops();
    }

    pub fn complete_stops(&mut self) {
        for (id, shard) in std::mem::take(&mut self.pending_stops) {
            let now = self.now;
            let Some(node) = self.node_mut(&id) else {
                continue;
            };
            let effects = node
                .region
                .handle(now, RegionInput::ShardEntitiesStopped { shard });
            self.region_effects(&id, effects);
        }
    }

    pub fn send(&mut self, from_index: usize, entity: u32) -> u64 {
        self.next_payload += 1;
        let payload = self.next_payload;
        let ids = self.ids();
        if ids.is_empty() {
            return payload;
        }
        let id = ids[from_index % ids.len()].clone();
        let now = self.now;
        if let Some(node) = self.node_mut(&id) {
            let input = RegionInput::Send {
                entity: format!("entity-{entity}").into(),
                payload,
                reply_to: Some(ReplyTo {
                    node: id.clone(),
                    correlation: payload,
                }),
            };
            let effects = node.region.handle(now, input);
            self.region_effects(&id, effects);
        }
        payload
    }

    /// Membership decides `id` is Down: everyone else is told.
    fn announce_down(&mut self, id: &RegionId) {
        let effects = self
            .coordinator
            .handle(self.now, CoordinatorInput::MemberDown(id.clone()));
        self.coordinator_effects(effects);
        for other in self.ids() {
            if other == *id {
                continue;
            }
            let now = self.now;
            if let Some(node) = self.node_mut(&other) {
                let effects = node.region.handle(now, RegionInput::MemberDown(id.clone()));
                self.region_effects(&other, effects);
            }
        }
    }

    pub fn crash(&mut self, index: usize) {
        let ids = self.ids();
        let live = ids
            .iter()
            .filter(|id| !self.downed_alive.contains(id))
            .count();
        if live <= 1 {
            return;
        }
        let id = ids[index % ids.len()].clone();
        self.nodes.remove(id.name.as_str());
        self.crashed.insert(id.name.to_string(), id.generation);
        self.downed_alive.remove(&id);
        self.announce_down(&id);
    }

    pub fn restart(&mut self, index: usize) {
        let crashed: Vec<(String, u64)> =
            self.crashed.iter().map(|(n, g)| (n.clone(), *g)).collect();
        if crashed.is_empty() {
            return;
        }
        let (name, generation) = crashed[index % crashed.len()].clone();
        self.crashed.remove(&name);
        self.start_region(&name, generation + 100);
    }

    /// The region is cut off and Downed by the majority, but keeps running.
    pub fn down_but_alive(&mut self, index: usize) {
        let ids: Vec<RegionId> = self
            .ids()
            .into_iter()
            .filter(|id| !self.downed_alive.contains(id))
            .collect();
        if ids.len() <= 1 {
            return;
        }
        let id = ids[index % ids.len()].clone();
        if self.downed_alive.insert(id.clone()) {
            self.announce_down(&id);
        }
    }

    pub fn toggle_pause(&mut self, index: usize) {
        let ids = self.ids();
        let id = ids[index % ids.len()].clone();
        if let Some(node) = self.node_mut(&id) {
            node.paused = !node.paused;
        }
    }

    pub fn fence(&mut self, index: usize, survive: bool) {
        let ids = self.ids();
        let id = ids[index % ids.len()].clone();
        let now = self.now;
        if let Some(node) = self.node_mut(&id) {
            let input = if survive {
                RegionInput::SideSurvives
            } else {
                RegionInput::FenceAll
            };
            let effects = node.region.handle(now, input);
            self.region_effects(&id, effects);
        }
    }

    /// The coordinator's node crashes; a new coordinator with a higher
    /// epoch starts elsewhere. Its predecessor was last seen now.
    pub fn replace_coordinator(&mut self) {
        self.replace_coordinator_acting_on(Duration::ZERO);
    }

    /// A new coordinator with a higher epoch starts elsewhere, its
    /// predecessor last seen now; the predecessor goes on acting for
    /// `overlap` (it has not yet seen that it lost quorum): two
    /// coordinators act at once.
    pub fn replace_coordinator_acting_on(&mut self, overlap: Duration) {
        self.epoch += 1;
        let me = region_id("coord", self.epoch);
        let mut coordinator = Coordinator::new(
            me,
            Epoch(self.epoch),
            self.config.clone(),
            self.now,
            Some(self.now),
        );
        let mut effects = coordinator.handle(self.now, CoordinatorInput::Quorum(true));
        for id in self.ids() {
            let input = if self.downed_alive.contains(&id) {
                CoordinatorInput::MemberDown(id)
            } else {
                CoordinatorInput::MemberUp(id, None)
            };
            effects.extend(coordinator.handle(self.now, input));
        }
        let old = std::mem::replace(&mut self.coordinator, coordinator);
        if !overlap.is_zero() {
            self.superseded.push((old, self.now + overlap));
        }
        self.coordinator_effects(effects);
    }

    /// Rule 1 as seen from outside: at most one region serves each shard.
    pub fn check_single_writer(&self) -> Result<(), String> {
        for shard in (0..self.config.number_of_shards).map(ShardId) {
            let serving: Vec<&RegionId> = self
                .nodes
                .values()
                .filter(|node| node.region.serves(shard, self.now))
                .map(|node| node.region.id())
                .collect();
            if serving.len() > 1 {
                return Err(format!(
                    "{shard} served by {serving:?} at {:?}",
                    self.now - self.t0
                ));
            }
        }
        Ok(())
    }

    /// The network heals: pauses end, every side survives, nodes that were
    /// Downed while running learn it and stop, and every stopped node
    /// starts again as a new incarnation.
    pub fn heal(&mut self) {
        for id in std::mem::take(&mut self.downed_alive) {
            self.nodes.remove(id.name.as_str());
            self.crashed.insert(id.name.to_string(), id.generation);
        }
        for node in self.nodes.values_mut() {
            node.paused = false;
        }
        for index in 0..self.nodes.len() {
            self.fence(index, true);
        }
        while !self.crashed.is_empty() {
            self.restart(0);
        }
    }

    /// After healing and settling: the coordinator's table and the regions
    /// agree, shard by shard.
    pub fn check_converged(&self) -> Result<(), String> {
        let allocation = self.coordinator.allocation();
        for shard in (0..self.config.number_of_shards).map(ShardId) {
            let serving: Vec<RegionId> = self
                .nodes
                .values()
                .filter(|node| node.region.serves(shard, self.now))
                .map(|node| node.region.id().clone())
                .collect();
            let home = allocation.get(&shard);
            let agrees = match home {
                Some(home) => serving == vec![home.clone()],
                None => serving.is_empty(),
            };
            if !agrees {
                return Err(format!(
                    "{shard}: coordinator says {home:?} ({:?}), regions serving {serving:?}, statuses {:?}",
                    self.coordinator.shard_state(shard),
                    self.nodes
                        .values()
                        .map(|n| (n.region.id().name.clone(), n.region.shard_status(shard)))
                        .collect::<Vec<_>>()
                ));
            }
        }
        Ok(())
    }

    /// Delivers everything in order, ticking, until nothing is in flight.
    pub fn settle(&mut self, rounds: usize, step_ms: u64) {
        for _ in 0..rounds {
            let mut budget = 10_000;
            let mut waiting = Vec::new();
            while !self.network.is_empty() && budget > 0 {
                budget -= 1;
                let packet = self.network.remove(0);
                if !self.deliver(packet.clone()) {
                    // Its target is paused: it waits on the wire.
                    waiting.push(packet);
                }
                self.complete_stops();
            }
            assert!(budget > 0, "messages keep bouncing without time passing");
            self.network.extend(waiting);
            self.advance(step_ms);
        }
    }

    /// Shard -> (kind, owner), without times and request ids.
    pub fn table(&self) -> BTreeMap<ShardId, (&'static str, Option<RegionId>)> {
        (0..self.config.number_of_shards)
            .map(ShardId)
            .filter_map(|shard| {
                self.coordinator
                    .shard_state(shard)
                    .map(|s| (shard, normalize(s)))
            })
            .collect()
    }
}

/// A shard state without times and request ids.
pub fn normalize(state: &ShardState) -> (&'static str, Option<RegionId>) {
    let kind = match state {
        ShardState::Free => "free",
        ShardState::LeaseRunningOut { .. } => "lease-running-out",
        ShardState::Allocating { .. } => "allocating",
        ShardState::Hosted { .. } => "hosted",
        ShardState::BeginningHandoff { .. } => "beginning-handoff",
        ShardState::HandingOff { .. } => "handing-off",
    };
    (kind, state.owner().cloned())
}
