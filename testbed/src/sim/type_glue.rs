//! The sharding of one entity type on one simulated node: the production
//! [`Region`], [`Coordinator`] and [`TypeCore`] (the decisions the async
//! driver makes around them: member tracking, the coordinator's host and
//! epoch, rule 3's previous-last-seen, quorum, keep-alives), performed the
//! way `sharding/src/runtime/driver.rs` performs them.
//!
//! Local coordinator <-> region traffic is looped here, as the driver's
//! work queue does; everything that leaves the node comes out as a
//! [`GlueAction`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use membership::{Member, NodeId};
use sharding::{
    Coordinator, CoordinatorEffect, CoordinatorInput, CoordinatorToRegion, Delivery, DeliveryError,
    EntityId, Envelope, Epoch, Region, RegionEffect, RegionId, RegionInput, RegionToCoordinator,
    RegionToRegion, ReplyTo, ShardId, ShardingConfig, StopReason, TypeAction, TypeCore,
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
    core: TypeCore,
    handed_off: bool,
    keep_alive_message: Option<P>,
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
        let (schedule, keep_alive_message) = match keep_alive {
            Some(keep_alive) => (
                Some((keep_alive.every, keep_alive.workers)),
                Some(keep_alive.message),
            ),
            None => (None, None),
        };
        Self {
            region: Region::new(me.clone(), config.clone(), false),
            core: TypeCore::new(me.clone(), None, schedule, now),
            me,
            config,
            coordinator: None,
            handed_off: false,
            keep_alive_message,
            work: VecDeque::new(),
            actions: Vec::new(),
        }
    }

    /// The region (read-only).
    pub fn region(&self) -> &Region<P> {
        &self.region
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
        let epoch = self.region.coordinator_epoch();
        let actions = self.core.on_cluster(now, members, would_survive, epoch);
        self.core_actions(now, actions);
        let effects = self.region.tick(now);
        self.region_effects(effects);
        if let Some(coordinator) = &mut self.coordinator {
            let effects = coordinator.tick(now);
            self.coordinator_effects(now, effects);
        }
        let registered = self
            .coordinator
            .as_ref()
            .map_or(0, |coordinator| coordinator.registered_regions().len());
        let actions = self.core.tick(now, registered);
        self.core_actions(now, actions);
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
                        self.coordinator_effects(now, effects);
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
                    } else if let Some(host) = self.core.coordinator_host() {
                        if *host != self.me {
                            self.actions.push(GlueAction::ToCoordinator {
                                host: host.clone(),
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

    fn coordinator_effects(&mut self, now: Instant, effects: Vec<CoordinatorEffect>) {
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
                    let actions = self.core.on_superseded(now, by);
                    self.core_actions(now, actions);
                }
            }
        }
    }

    /// Performs the core's decisions, as the driver does.
    fn core_actions(&mut self, now: Instant, actions: Vec<TypeAction>) {
        for action in actions {
            match action {
                TypeAction::Region(signal) => self.work.push_back(Work::Region(signal.input())),
                TypeAction::Coordinator(input) => self.work.push_back(Work::Coordinator(input)),
                TypeAction::StartCoordinator {
                    epoch,
                    previous_grants_until,
                } => {
                    self.coordinator = Some(Coordinator::new(
                        self.me.clone(),
                        epoch,
                        self.config.clone(),
                        now,
                        previous_grants_until,
                    ));
                    self.actions.push(GlueAction::CoordinatorStarted { epoch });
                }
                TypeAction::StopCoordinator => self.coordinator = None,
                TypeAction::KeepAlive { worker } => {
                    if let Some(message) = &self.keep_alive_message {
                        self.work.push_back(Work::Region(RegionInput::Send {
                            entity: worker,
                            payload: message.clone(),
                            reply_to: None,
                        }));
                    }
                }
            }
        }
    }
}
