//! The sharding of one entity type on one simulated node: the production
//! [`Region`] and [`Coordinator`], and the decisions the async driver
//! (`sharding/src/runtime/driver.rs`) makes around them: member tracking,
//! following the coordinator's host, the epoch of a new coordinator, rule
//! 3's previous-last-seen, quorum and the daemon keep-alive.
//!
//! Local coordinator <-> region traffic is looped here, as the driver's
//! work queue does; everything that leaves the node comes out as a
//! [`GlueAction`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use membership::{ordering, Member, MemberStatus, NodeId};
use sharding::{
    Coordinator, CoordinatorEffect, CoordinatorInput, CoordinatorToRegion, Delivery, DeliveryError,
    EntityId, Envelope, Epoch, Region, RegionEffect, RegionId, RegionInput, RegionToCoordinator,
    RegionToRegion, ReplyTo, ShardId, ShardingConfig, StopReason,
};

/// Something the node must do for its sharding.
#[derive(Clone, Debug)]
pub enum GlueAction<P> {
    /// Send to the coordinator on `host`.
    ToCoordinator {
        /// The node that hosts the coordinator, as this node sees it.
        host: NodeId,
        /// The message.
        message: Envelope<RegionToCoordinator>,
    },
    /// Send from this node's coordinator to a region elsewhere.
    ToRegion {
        /// The region.
        to: RegionId,
        /// The message.
        message: Envelope<CoordinatorToRegion>,
    },
    /// Entity traffic to another region.
    ToPeer {
        /// The region.
        to: RegionId,
        /// The message.
        message: Envelope<RegionToRegion<P>>,
    },
    /// Hand the message to the local entity.
    DeliverLocal(Delivery<P>),
    /// Stop (handoff) or discard (dropped) the entities of a local shard.
    StopShard {
        /// The shard.
        shard: ShardId,
        /// Why.
        reason: StopReason,
    },
    /// The message cannot be delivered.
    DeliveryFailed {
        /// Who waits for an answer.
        reply_to: Option<ReplyTo>,
        /// Why.
        error: DeliveryError,
    },
    /// Tell a leaving region elsewhere that it hosts nothing any more.
    HandedOff {
        /// The region.
        region: RegionId,
        /// This coordinator's epoch.
        epoch: Epoch,
    },
    /// A coordinator started on this node.
    CoordinatorStarted {
        /// Its epoch.
        epoch: Epoch,
    },
}

/// One unit of local work.
enum Work<P> {
    Region(RegionInput<P>),
    Coordinator(CoordinatorInput),
}

/// The coordinator's host as this node saw it, for rule 3.
struct HostSeen {
    host: NodeId,
    last_reachable: Instant,
}

/// The daemon keep-alive: while this node hosts the coordinator, each
/// worker entity gets `message` every `every`.
pub struct KeepAlive<P> {
    /// The interval.
    pub every: Duration,
    /// The worker entities.
    pub workers: Vec<EntityId>,
    /// The message that starts a worker.
    pub message: P,
}

/// The sharding of one entity type on one node.
pub struct TypeGlue<P> {
    me: RegionId,
    config: ShardingConfig,
    region: Region<P>,
    coordinator: Option<Coordinator>,
    statuses: BTreeMap<NodeId, MemberStatus>,
    coordinator_host: Option<HostSeen>,
    previous_host: Option<HostSeen>,
    would_survive: bool,
    quorum_sent: Option<bool>,
    highest_epoch: Epoch,
    handed_off: bool,
    keep_alive: Option<KeepAlive<P>>,
    next_keep_alive: Instant,
    keep_alive_deadline: Instant,
    work: VecDeque<Work<P>>,
    actions: Vec<GlueAction<P>>,
}

impl<P: Clone> TypeGlue<P> {
    /// The sharding of node `me`, started at `now`.
    pub fn new(
        me: RegionId,
        config: ShardingConfig,
        keep_alive: Option<KeepAlive<P>>,
        now: Instant,
    ) -> Self {
        Self {
            region: Region::new(me.clone(), config.clone(), false),
            me,
            config,
            coordinator: None,
            statuses: BTreeMap::new(),
            coordinator_host: None,
            previous_host: None,
            would_survive: true,
            quorum_sent: None,
            highest_epoch: Epoch(0),
            handed_off: false,
            keep_alive,
            next_keep_alive: now,
            keep_alive_deadline: now,
            work: VecDeque::new(),
            actions: Vec::new(),
        }
    }

    /// The region (read-only).
    pub fn region(&self) -> &Region<P> {
        &self.region
    }

    /// The coordinator, while this node hosts one.
    pub fn coordinator(&self) -> Option<&Coordinator> {
        self.coordinator.as_ref()
    }

    /// A coordinator told this (leaving) node that it hosts nothing any more.
    pub fn handed_off(&self) -> bool {
        self.handed_off
    }

    /// The timer: membership, region and coordinator ticks, keep-alives.
    pub fn tick(
        &mut self,
        now: Instant,
        members: &[Member],
        would_survive: bool,
    ) -> Vec<GlueAction<P>> {
        self.follow_membership(now, members, would_survive);
        let effects = self.region.tick(now);
        self.region_effects(effects);
        if let Some(coordinator) = &mut self.coordinator {
            let effects = coordinator.tick(now);
            self.coordinator_effects(effects);
        }
        self.keep_alive(now);
        self.process(now)
    }

    /// A local sender's message for an entity.
    pub fn send(
        &mut self,
        now: Instant,
        entity: EntityId,
        payload: P,
        reply_to: Option<ReplyTo>,
    ) -> Vec<GlueAction<P>> {
        self.work.push_back(Work::Region(RegionInput::Send {
            entity,
            payload,
            reply_to,
        }));
        self.process(now)
    }

    /// An input for the region (from the network or the entity host).
    pub fn region_input(&mut self, now: Instant, input: RegionInput<P>) -> Vec<GlueAction<P>> {
        self.work.push_back(Work::Region(input));
        self.process(now)
    }

    /// A message for the coordinator; dropped if none runs here (the region retries).
    pub fn to_coordinator(
        &mut self,
        now: Instant,
        message: Envelope<RegionToCoordinator>,
    ) -> Vec<GlueAction<P>> {
        if self.coordinator.is_some() {
            self.work
                .push_back(Work::Coordinator(CoordinatorInput::Message(message)));
        }
        self.process(now)
    }

    /// A coordinator elsewhere says this leaving region hosts nothing.
    pub fn on_handed_off(&mut self, to: &RegionId, epoch: Epoch) {
        if *to == self.me && epoch >= self.region.coordinator_epoch() {
            self.handed_off = true;
        }
    }

    fn process(&mut self, now: Instant) -> Vec<GlueAction<P>> {
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::Region(input) => {
                    let effects = self.region.handle(now, input);
                    self.region_effects(effects);
                }
                Work::Coordinator(input) => {
                    if let Some(coordinator) = &mut self.coordinator {
                        let effects = coordinator.handle(now, input);
                        self.coordinator_effects(effects);
                    }
                }
            }
        }
        std::mem::take(&mut self.actions)
    }

    fn region_effects(&mut self, effects: Vec<RegionEffect<P>>) {
        for effect in effects {
            match effect {
                RegionEffect::ToCoordinator(message) => {
                    if self.coordinator.is_some() {
                        self.work
                            .push_back(Work::Coordinator(CoordinatorInput::Message(message)));
                    } else if let Some(seen) = &self.coordinator_host {
                        if seen.host != self.me {
                            self.actions.push(GlueAction::ToCoordinator {
                                host: seen.host.clone(),
                                message,
                            });
                        }
                    }
                }
                RegionEffect::ToRegion { to, message } => {
                    if to == self.me {
                        self.work
                            .push_back(Work::Region(RegionInput::FromRegion(message)));
                    } else {
                        self.actions.push(GlueAction::ToPeer { to, message });
                    }
                }
                RegionEffect::DeliverLocal(delivery) => {
                    self.actions.push(GlueAction::DeliverLocal(delivery))
                }
                RegionEffect::StopShard { shard, reason } => {
                    self.actions.push(GlueAction::StopShard { shard, reason })
                }
                RegionEffect::DeliveryFailed {
                    reply_to, error, ..
                } => self
                    .actions
                    .push(GlueAction::DeliveryFailed { reply_to, error }),
            }
        }
    }

    fn coordinator_effects(&mut self, effects: Vec<CoordinatorEffect>) {
        for effect in effects {
            match effect {
                CoordinatorEffect::Send { to, message } => {
                    if to == self.me {
                        self.work
                            .push_back(Work::Region(RegionInput::FromCoordinator(message)));
                    } else {
                        self.actions.push(GlueAction::ToRegion { to, message });
                    }
                }
                CoordinatorEffect::RegionHandedOff { region } => {
                    let epoch = self.coordinator.as_ref().map_or(Epoch(0), |c| c.epoch());
                    if region == self.me {
                        self.handed_off = true;
                    } else {
                        self.actions.push(GlueAction::HandedOff { region, epoch });
                    }
                }
                CoordinatorEffect::Superseded { by } => {
                    self.highest_epoch = self.highest_epoch.max(by);
                    self.coordinator = None;
                }
            }
        }
    }

    fn follow_membership(&mut self, now: Instant, members: &[Member], would_survive: bool) {
        self.member_changes(members);
        self.follow_coordinator_host(members, now);
        if would_survive != self.would_survive {
            self.would_survive = would_survive;
            let input = if would_survive {
                RegionInput::SideSurvives
            } else {
                RegionInput::FenceAll
            };
            self.work.push_back(Work::Region(input));
        }
        if self.coordinator.is_some() && self.quorum_sent != Some(would_survive) {
            self.quorum_sent = Some(would_survive);
            self.work
                .push_back(Work::Coordinator(CoordinatorInput::Quorum(would_survive)));
        }
    }

    fn member_changes(&mut self, members: &[Member]) {
        let mut seen = BTreeMap::new();
        for member in members {
            seen.insert(member.id.clone(), member.status);
            if self.statuses.get(&member.id) != Some(&member.status) {
                self.member_input(&member.id, member.status);
            }
        }
        let vanished: Vec<NodeId> = self
            .statuses
            .keys()
            .filter(|id| !seen.contains_key(*id))
            .cloned()
            .collect();
        for id in vanished {
            self.member_input(&id, MemberStatus::Removed);
        }
        self.statuses = seen;
    }

    fn member_input(&mut self, id: &NodeId, status: MemberStatus) {
        if let Some(input) = coordinator_member_input(id, status) {
            if self.coordinator.is_some() {
                self.work.push_back(Work::Coordinator(input));
            }
        }
        if status.is_gone() {
            self.work
                .push_back(Work::Region(RegionInput::MemberDown(id.clone())));
        }
    }

    fn follow_coordinator_host(&mut self, members: &[Member], now: Instant) {
        let host = ordering::singleton_host(members, None);
        if let Some(seen) = &mut self.coordinator_host {
            let reachable = members
                .iter()
                .any(|m| m.id == seen.host && !m.status.is_gone() && m.reachability.is_reachable());
            if reachable {
                seen.last_reachable = now;
            }
        }
        let moved = self.coordinator_host.as_ref().map(|seen| &seen.host) != host.as_ref();
        if moved {
            let previous = self.coordinator_host.take();
            self.coordinator_host = host.clone().map(|host| HostSeen {
                host,
                last_reachable: now,
            });
            if previous.as_ref().is_some_and(|p| p.host != self.me) {
                self.previous_host = previous;
            }
        }
        let here = host.as_ref() == Some(&self.me);
        if here && self.coordinator.is_none() {
            self.start_coordinator(now);
        } else if !here && self.coordinator.is_some() {
            self.coordinator = None;
        }
    }

    fn start_coordinator(&mut self, now: Instant) {
        let seen = self.highest_epoch.max(self.region.coordinator_epoch());
        let epoch = Epoch(self.me.generation).max(Epoch(seen.0 + 1));
        self.highest_epoch = epoch;
        let previous_last_seen = self.previous_host.as_ref().map(|p| p.last_reachable);
        self.coordinator = Some(Coordinator::new(
            self.me.clone(),
            epoch,
            self.config.clone(),
            now,
            previous_last_seen,
        ));
        self.actions.push(GlueAction::CoordinatorStarted { epoch });
        self.quorum_sent = None;
        if let Some(keep_alive) = &self.keep_alive {
            self.keep_alive_deadline = now + keep_alive.every;
        }
        let members: Vec<(NodeId, MemberStatus)> = self
            .statuses
            .iter()
            .map(|(id, status)| (id.clone(), *status))
            .collect();
        for (id, status) in members {
            if let Some(input) = coordinator_member_input(&id, status) {
                self.work.push_back(Work::Coordinator(input));
            }
        }
    }

    fn keep_alive(&mut self, now: Instant) {
        let Some(keep_alive) = &self.keep_alive else {
            return;
        };
        let Some(coordinator) = &self.coordinator else {
            return;
        };
        let up = self
            .statuses
            .values()
            .filter(|status| **status == MemberStatus::Up)
            .count();
        let all_registered = coordinator.registered_regions().len() >= up;
        if now < self.next_keep_alive || !(all_registered || now >= self.keep_alive_deadline) {
            return;
        }
        self.next_keep_alive = now + keep_alive.every;
        for worker in &keep_alive.workers {
            self.work.push_back(Work::Region(RegionInput::Send {
                entity: worker.clone(),
                payload: keep_alive.message.clone(),
                reply_to: None,
            }));
        }
    }
}

/// What a member's status means to the coordinator.
fn coordinator_member_input(id: &NodeId, status: MemberStatus) -> Option<CoordinatorInput> {
    match status {
        MemberStatus::Joining => None,
        MemberStatus::Up => Some(CoordinatorInput::MemberUp(id.clone())),
        MemberStatus::Leaving | MemberStatus::Exiting => {
            Some(CoordinatorInput::MemberLeaving(id.clone()))
        }
        MemberStatus::Down | MemberStatus::Removed => {
            Some(CoordinatorInput::MemberDown(id.clone()))
        }
    }
}
