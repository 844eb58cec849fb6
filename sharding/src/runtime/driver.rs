//! The driver of one entity type on one node: one task that owns the
//! [`Region`], the [`Coordinator`] while this node hosts it, and the
//! entities, and moves inputs and effects between them, the mesh and the
//! clock. All protocol decisions are in the state machines; this file only
//! performs them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use membership::{ordering, MemberStatus, NodeId};
use mesh::{ClusterState, Node};
use tokio::sync::{mpsc, oneshot};

use super::clock;
use super::host::{Host, Job};
use super::lease_gate::Gates;
use super::replies::Replies;
use super::routes::Routes;
use super::view::{CoordinatorView, RegionLease, RegionView, ShardRow};
use super::wire::{ShardingError, Wire};
use crate::coordinator::{Coordinator, CoordinatorEffect, CoordinatorInput};
use crate::entity::{Entity, Factory};
use crate::ids::{EntityId, Epoch, RegionId, ReplyTo, ShardId};
use crate::messages::{CoordinatorToRegion, Delivery, RegionToCoordinator, RegionToRegion};
use crate::region::{Region, RegionEffect, RegionInput, ShardStatus, StopReason};
use crate::ShardingConfig;

/// The hook points of the sharding driver (see [`mesh::Hooks`]): arm one
/// on a node to crash or pause it exactly between two protocol steps.
pub mod hook_points {
    /// The coordinator has just sent a `BeginHandoff`.
    pub const AFTER_BEGIN_HANDOFF: &str = "sharding.coordinator.after_begin_handoff";
    /// A region's entities of a shard are stopped; `ShardStopped` is next.
    pub const BEFORE_SHARD_STOPPED: &str = "sharding.region.before_shard_stopped";
    /// A region is about to hand the first message to a new entity.
    pub const BEFORE_FIRST_DELIVERY: &str = "sharding.region.before_first_delivery";
    /// The driver is about to run its timers (lease renewal, fencing,
    /// keep-alives): a pause here stalls the driver, not its entities'
    /// tasks or daemon workers.
    pub const BEFORE_TICK: &str = "sharding.driver.before_tick";
}

/// Commands taken per wake-up of the driver before it looks at its timers
/// and finished entities again.
const BATCH: usize = 256;

/// Where an `ask` waits for its answer.
pub(crate) type ReplySender<R> = oneshot::Sender<Result<R, ShardingError>>;

/// What the driver task receives.
pub(crate) enum Command<E: Entity> {
    Send(LocalSend<E>),
    /// From another node's driver (boxed: it is large, and local sends,
    /// the common case, should not pay its size in the queue).
    Wire(Box<Wire<E::Message, E::Reply>>),
    /// This node leaves: answer once everything hosted here is handed off.
    Leave(oneshot::Sender<()>),
    RegionView(oneshot::Sender<RegionView>),
    CoordinatorView(oneshot::Sender<Option<CoordinatorView>>),
}

/// A local `tell` (`reply: None`) or `ask`.
pub(crate) struct LocalSend<E: Entity> {
    /// The entity's shard, computed once by the sender.
    pub(crate) shard: ShardId,
    pub(crate) entity: EntityId,
    pub(crate) message: E::Message,
    pub(crate) reply: Option<ReplySender<E::Reply>>,
}

/// The ShardedDaemonProcess keep-alive: while this node hosts the
/// coordinator, every worker is sent `message` every `every`, which starts
/// any worker that does not run.
pub(crate) struct KeepAlive<M> {
    pub(crate) every: Duration,
    pub(crate) workers: Vec<EntityId>,
    pub(crate) message: fn() -> M,
}

/// The settings of one entity type's driver.
pub(crate) struct TypeSettings<E: Entity> {
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) role: Option<String>,
    pub(crate) passivate_after: Option<Duration>,
    pub(crate) factory: Factory<E>,
    pub(crate) keep_alive: Option<KeepAlive<E::Message>>,
}

/// One unit of local work: an input for one of the two state machines.
enum Work<M> {
    Region(RegionInput<M>),
    Coordinator(CoordinatorInput),
}

/// The coordinator's host as this node saw it, for rule 3.
struct HostSeen {
    host: NodeId,
    last_reachable: Instant,
}

pub(crate) struct Driver<E: Entity> {
    node: Node,
    me: RegionId,
    settings: TypeSettings<E>,
    config: ShardingConfig,
    region: Region<E::Message>,
    coordinator: Option<Coordinator>,
    host: Host<E>,
    /// What the region allows, as the host's steps see it on every poll.
    gates: Arc<Gates>,
    /// The region's homes version and lease last published to `gates`.
    gates_synced: Option<(u64, Option<Instant>)>,
    replies: Arc<Replies<E::Reply>>,
    routes: Arc<Routes>,
    /// Local sends taken from the queue this round (see [`Routes`]).
    sends_taken: usize,
    statuses: BTreeMap<NodeId, MemberStatus>,
    coordinator_host: Option<HostSeen>,
    /// Rule 3 for the next coordinator started here: the latest moment a
    /// previous coordinator may have granted a lease. That is when its host
    /// was last seen reachable, or, for a coordinator of this node that was
    /// superseded or moved away, when it stopped.
    previous_grants_until: Option<Instant>,
    would_survive: bool,
    quorum_sent: Option<bool>,
    /// A hook point crashed the node: the driver stops at once.
    crashed: bool,
    /// The highest coordinator epoch this driver has started or heard of.
    highest_epoch: Epoch,
    leaving: Vec<oneshot::Sender<()>>,
    handed_off: bool,
    next_passivation: Instant,
    next_keep_alive: Instant,
    /// The first keep-alive of a new coordinator goes out by then at the latest.
    keep_alive_deadline: Instant,
    work: VecDeque<Work<E::Message>>,
    /// The time of the current round of work (see `process`).
    now: Instant,
}

impl<E: Entity> Driver<E> {
    pub(crate) fn new(
        node: Node,
        settings: TypeSettings<E>,
        config: ShardingConfig,
        replies: Arc<Replies<E::Reply>>,
        routes: Arc<Routes>,
    ) -> Self {
        let me = node.id().clone();
        let proxy_only = settings
            .role
            .as_deref()
            .is_some_and(|role| !node.config().roles.iter().any(|r| r == role));
        let now = clock::now();
        let gates = Gates::new(config.number_of_shards);
        Self {
            region: Region::new(me.clone(), config.clone(), proxy_only),
            host: Host::new(settings.factory.clone(), gates.clone()),
            gates,
            gates_synced: None,
            node,
            me,
            settings,
            config,
            coordinator: None,
            replies,
            routes,
            sends_taken: 0,
            statuses: BTreeMap::new(),
            coordinator_host: None,
            previous_grants_until: None,
            would_survive: true,
            quorum_sent: None,
            crashed: false,
            highest_epoch: Epoch(0),
            leaving: Vec::new(),
            handed_off: false,
            next_passivation: now,
            next_keep_alive: now,
            keep_alive_deadline: now,
            work: VecDeque::new(),
            now,
        }
    }

    /// Runs until the node stops or every handle is dropped.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command<E>>) {
        let waker = std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await;
        self.host.set_waker(&waker);
        let mut ticker = tokio::time::interval(self.config.tick_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        self.now = clock::now();
                        self.on_command(command);
                        // Under load, take what else is queued in one go:
                        // one wake-up for many messages.
                        for _ in 0..BATCH {
                            match commands.try_recv() {
                                Ok(command) => self.on_command(command),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                Some(finished) = self.host.running().next() => {
                    self.host.finished(finished);
                }
                _ = ticker.tick() => {
                    if self.node.is_stopped() {
                        break;
                    }
                    self.on_tick();
                }
            }
            self.process();
            if self.crashed {
                self.routes.clear();
                return;
            }
            // Published first: once `queued` reaches 0, a caller must find
            // the homes as this round left them. With the table of an
            // earlier round, a caller could send straight to a home the
            // region forgot in this round, past its own earlier messages
            // that the region now buffers.
            self.routes.publish(&self.region, &self.node);
            self.routes.routed(std::mem::take(&mut self.sends_taken));
        }
        self.routes.clear();
        self.replies.fail_all(ShardingError::Stopped);
    }

    fn on_command(&mut self, command: Command<E>) {
        match command {
            Command::Send(LocalSend {
                shard,
                entity,
                message,
                reply,
            }) => {
                self.sends_taken += 1;
                let reply_to = reply.map(|reply| self.expect_reply(reply));
                // With nothing queued ahead, a message for a shard served
                // here goes straight to its entity, as the region would
                // send it (see `Region::serves`).
                if self.work.is_empty() && !self.crashed && self.region.serves(shard, self.now) {
                    let job = Job { message, reply_to };
                    self.deliver_local(shard, &entity, job);
                } else {
                    self.work.push_back(Work::Region(RegionInput::Send {
                        entity,
                        payload: message,
                        reply_to,
                    }));
                }
            }
            Command::Wire(wire) => self.on_wire(*wire),
            Command::Leave(done) => {
                self.leaving.push(done);
                self.check_left();
            }
            Command::RegionView(answer) => {
                let _ = answer.send(self.region_view());
            }
            Command::CoordinatorView(answer) => {
                let _ = answer.send(self.coordinator_view());
            }
        }
    }

    fn on_wire(&mut self, wire: Wire<E::Message, E::Reply>) {
        match wire {
            // Only the coordinator of this node takes it; with none here
            // (not started yet, or moved away) the region retries.
            Wire::ToCoordinator(message) => {
                if self.coordinator.is_some() {
                    self.work
                        .push_back(Work::Coordinator(CoordinatorInput::Message(message)));
                }
            }
            // Meant for an earlier incarnation of this node: not ours.
            Wire::ToRegion { to, message } => {
                if to == self.me {
                    self.work
                        .push_back(Work::Region(RegionInput::FromCoordinator(message)));
                }
            }
            Wire::Region(message) => self
                .work
                .push_back(Work::Region(RegionInput::FromRegion(message))),
            // The mesh service completes answers before they reach the
            // queue; one that got here is completed the same way.
            Wire::Reply {
                correlation,
                result,
            } => self.replies.complete_remote(correlation, result),
            Wire::HandedOff { to, epoch } => {
                if to == self.me && epoch >= self.region.coordinator_epoch() {
                    self.handed_off = true;
                    self.check_left();
                }
            }
        }
    }

    fn on_tick(&mut self) {
        if self.node.hooks().any_armed() && self.hook(hook_points::BEFORE_TICK) {
            return;
        }
        let now = clock::now();
        tracing::trace!(node = %self.me, entity_type = %self.settings.name, registered = self.region.is_registered(), epoch = %self.region.coordinator_epoch(), lease = ?self.region.lease_valid_until().map(|t| t.saturating_duration_since(now)), coordinator = self.coordinator.is_some(), "tick");
        self.follow_membership(now);
        let effects = self.region.tick(now);
        self.sync_gates();
        self.region_effects(effects);
        if let Some(coordinator) = &mut self.coordinator {
            let effects = coordinator.tick(now);
            self.coordinator_effects(effects);
        }
        // Leases also end by the clock alone, between two region inputs.
        self.host.fence();
        self.host.resume();
        if let Some(idle) = self.settings.passivate_after {
            if now >= self.next_passivation {
                self.host.passivate_idle(now, idle);
                self.next_passivation = now + (idle / 4).max(self.config.tick_interval);
            }
        }
        self.keep_alive(now);
        self.replies.forget_abandoned();
        self.check_left();
    }

    /// Performs queued work until none is left (local coordinator <->
    /// region traffic is queued here instead of crossing the mesh).
    fn process(&mut self) {
        loop {
            self.take_outcomes();
            let Some(work) = self.work.pop_front() else {
                return;
            };
            if self.crashed {
                return;
            }
            // A fresh clock read per input: a pause inside a round must not
            // leave the rest of the round deciding on an old time. (Entity
            // steps check the lease themselves on every poll, see `Gates`.)
            let now = clock::now();
            self.now = now;
            match work {
                Work::Region(input) => {
                    let effects = self.region.handle(now, input);
                    self.sync_gates();
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
    }

    /// Publishes what the region now allows to the gates that every entity
    /// step and daemon worker passes: shards it may run, and its lease.
    /// Steps of a shard whose gate shuts are interrupted at once; shards
    /// whose gate opens resume.
    fn sync_gates(&mut self) {
        let state = (self.region.homes_version(), self.region.lease_valid_until());
        if self.gates_synced == Some(state) {
            return;
        }
        self.gates_synced = Some(state);
        self.gates.set_lease(state.1);
        for shard in (0..self.config.number_of_shards).map(ShardId) {
            let runs = self.region.runs(shard);
            if self.gates.set_open(shard, runs) && !runs {
                self.host.interrupt(shard);
            }
        }
        self.host.fence();
        self.host.resume();
    }

    /// Sends the replies of entities that finished and reports shards
    /// whose entities all stopped.
    fn take_outcomes(&mut self) {
        for outcome in self.host.take_outcomes() {
            if let Some((to, result)) = outcome.reply {
                self.reply(to, result);
            }
            if let Some(shard) = outcome.shard_stopped {
                self.work
                    .push_back(Work::Region(RegionInput::ShardEntitiesStopped { shard }));
            }
        }
    }

    fn region_effects(&mut self, effects: Vec<RegionEffect<E::Message>>) {
        for effect in effects {
            if self.crashed {
                return;
            }
            match effect {
                RegionEffect::ToCoordinator(message) => {
                    if matches!(message.body, RegionToCoordinator::ShardStopped { .. })
                        && self.hook(hook_points::BEFORE_SHARD_STOPPED)
                    {
                        return;
                    }
                    if self.coordinator.is_some() {
                        self.work
                            .push_back(Work::Coordinator(CoordinatorInput::Message(message)));
                    } else if let Some(host) = self.coordinator_node() {
                        if host != self.me {
                            // Lost on a broken link: the region retries.
                            let _ = self.send(&host.name, Wire::ToCoordinator(message));
                        }
                    }
                }
                RegionEffect::ToRegion { to, message } => {
                    if to == self.me {
                        self.work
                            .push_back(Work::Region(RegionInput::FromRegion(message)));
                        continue;
                    }
                    let returned = match &message.body {
                        RegionToRegion::Deliver(delivery) | RegionToRegion::NotHere(delivery) => {
                            (delivery.shard, delivery.reply_to.clone())
                        }
                    };
                    tracing::trace!(entity_type = %self.settings.name, %to, body = ?message.body.kind(), "to region");
                    if let Err(error) = self.send(&to.name, Wire::Region(message)) {
                        if let (_, Some(reply_to)) = returned {
                            self.reply(reply_to, Err(error));
                        } else {
                            tracing::warn!(shard = %returned.0, %to, %error, "sharded tell lost");
                        }
                    }
                }
                RegionEffect::DeliverLocal(delivery) => {
                    let Delivery {
                        shard,
                        entity,
                        payload,
                        reply_to,
                        ..
                    } = delivery;
                    let job = Job {
                        message: payload,
                        reply_to,
                    };
                    if !self.deliver_local(shard, &entity, job) {
                        return;
                    }
                }
                RegionEffect::StopShard { shard, reason } => match reason {
                    StopReason::Handoff => self.host.stop_shard(shard),
                    // Not handled here: the new home handles them.
                    StopReason::Dropped => {
                        for (entity, job) in self.host.drop_shard(shard) {
                            self.work.push_back(Work::Region(RegionInput::Send {
                                entity: entity.as_ref().into(),
                                payload: job.message,
                                reply_to: job.reply_to,
                            }));
                        }
                    }
                },
                RegionEffect::DeliveryFailed {
                    shard,
                    entity,
                    reply_to,
                    error,
                } => match reply_to {
                    Some(reply_to) => self.reply(reply_to, Err(error.into())),
                    None => tracing::warn!(%shard, %entity, %error, "sharded tell failed"),
                },
            }
        }
    }

    /// Hands one message to its entity here; false if a hook point
    /// crashed the node first.
    fn deliver_local(&mut self, shard: ShardId, entity: &str, job: Job<E::Message>) -> bool {
        if self.node.hooks().any_armed()
            && !self.host.contains(shard, entity)
            && self.hook(hook_points::BEFORE_FIRST_DELIVERY)
        {
            return false;
        }
        tracing::trace!(entity_type = %self.settings.name, entity, reply_to = ?job.reply_to, "deliver here");
        self.host.deliver(shard, entity, job, self.now);
        true
    }

    fn coordinator_effects(&mut self, effects: Vec<CoordinatorEffect>) {
        for effect in effects {
            if self.crashed {
                return;
            }
            match effect {
                CoordinatorEffect::Send { to, message } => {
                    let begin_handoff =
                        matches!(message.body, CoordinatorToRegion::BeginHandoff { .. });
                    if to == self.me {
                        self.work
                            .push_back(Work::Region(RegionInput::FromCoordinator(message)));
                    } else {
                        let _ = self.send(&to.name.clone(), Wire::ToRegion { to, message });
                    }
                    if begin_handoff && self.hook(hook_points::AFTER_BEGIN_HANDOFF) {
                        return;
                    }
                }
                CoordinatorEffect::RegionHandedOff { region } => {
                    let epoch = self.coordinator.as_ref().map_or(Epoch(0), |c| c.epoch());
                    if region == self.me {
                        self.handed_off = true;
                    } else {
                        let _ =
                            self.send(&region.name.clone(), Wire::HandedOff { to: region, epoch });
                    }
                }
                CoordinatorEffect::Superseded { by } => {
                    // If this node is still the host, the next coordinator
                    // starts above `by`.
                    self.highest_epoch = self.highest_epoch.max(by);
                    tracing::info!(entity_type = %self.settings.name, %by, "coordinator superseded by a newer epoch; stopping it");
                    self.stop_coordinator(clock::now());
                }
            }
        }
    }

    /// Reads the cluster state: member changes for both state machines,
    /// where the coordinator runs (starting or stopping ours), quorum and
    /// the fencing fast path.
    fn follow_membership(&mut self, now: Instant) {
        let state = self.node.cluster_state();
        self.member_changes(&state);
        self.follow_coordinator_host(&state, now);
        if state.would_survive != self.would_survive {
            tracing::info!(node = %self.me, entity_type = %self.settings.name, would_survive = state.would_survive, "this side's survival changed: fencing or resuming");
            self.would_survive = state.would_survive;
            let input = if state.would_survive {
                RegionInput::SideSurvives
            } else {
                RegionInput::FenceAll
            };
            self.work.push_back(Work::Region(input));
        }
        if self.coordinator.is_some() && self.quorum_sent != Some(state.would_survive) {
            self.quorum_sent = Some(state.would_survive);
            self.work
                .push_back(Work::Coordinator(CoordinatorInput::Quorum(
                    state.would_survive,
                )));
        }
    }

    fn member_changes(&mut self, state: &ClusterState) {
        let mut seen = BTreeMap::new();
        for member in &state.members {
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

    fn follow_coordinator_host(&mut self, state: &ClusterState, now: Instant) {
        let host = ordering::singleton_host(&state.members, self.settings.role.as_deref());
        if let Some(seen) = &mut self.coordinator_host {
            let reachable = state
                .members
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
            if let Some(previous) = previous.filter(|p| p.host != self.me) {
                self.previous_grants_until(previous.last_reachable);
            }
        }
        let here = host.as_ref() == Some(&self.me);
        if here && self.coordinator.is_none() {
            self.start_coordinator(now);
        } else if !here && self.coordinator.is_some() {
            tracing::info!(entity_type = %self.settings.name, "the coordinator moves away from this node");
            self.stop_coordinator(now);
        }
    }

    /// This node's coordinator stops acting (superseded, or the singleton
    /// moved). Regions may hold leases it granted until now: a coordinator
    /// started here later must wait them out like any predecessor's.
    fn stop_coordinator(&mut self, now: Instant) {
        if self.coordinator.take().is_some() {
            self.previous_grants_until(now);
        }
    }

    fn previous_grants_until(&mut self, at: Instant) {
        self.previous_grants_until = Some(self.previous_grants_until.map_or(at, |t| t.max(at)));
    }

    fn start_coordinator(&mut self, now: Instant) {
        // Above every epoch seen here: the generation orders hosts, but two
        // processes may share a generation (same millisecond).
        let seen = self.highest_epoch.max(self.region.coordinator_epoch());
        let epoch = Epoch(self.me.generation).max(Epoch(seen.0 + 1));
        self.highest_epoch = epoch;
        let previous_last_seen = self.previous_grants_until;
        tracing::info!(entity_type = %self.settings.name, %epoch, ?previous_last_seen, "coordinator starts on this node");
        self.coordinator = Some(Coordinator::new(
            self.me.clone(),
            epoch,
            self.config.clone(),
            now,
            previous_last_seen,
        ));
        self.quorum_sent = None;
        if let Some(keep_alive) = &self.settings.keep_alive {
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

    /// The node the coordinator runs on, as this node sees it.
    fn coordinator_node(&self) -> Option<NodeId> {
        self.coordinator_host.as_ref().map(|seen| seen.host.clone())
    }

    fn keep_alive(&mut self, now: Instant) {
        let Some(keep_alive) = &self.settings.keep_alive else {
            return;
        };
        let Some(coordinator) = &self.coordinator else {
            return;
        };
        // A new coordinator waits until every Up region registered (or one
        // interval), so that the workers spread instead of all starting on
        // the first region to register.
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
                payload: (keep_alive.message)(),
                reply_to: None,
            }));
        }
    }

    /// Fires a hook point; true if the node crashed there (do nothing more).
    fn hook(&mut self, point: &str) -> bool {
        self.crashed |= self.node.hooks().fire_now(point);
        self.crashed
    }

    fn expect_reply(&mut self, reply: ReplySender<E::Reply>) -> ReplyTo {
        ReplyTo {
            node: self.me.clone(),
            correlation: self.replies.expect(reply),
        }
    }

    fn reply(&mut self, to: ReplyTo, result: Result<E::Reply, ShardingError>) {
        if to.node == self.me {
            self.replies.complete(to.correlation, result);
            return;
        }
        let wire = Wire::Reply {
            correlation: to.correlation,
            result: result.map_err(|error| error.to_string()),
        };
        if let Err(error) = self.send(&to.node.name, wire) {
            tracing::debug!(to = %to.node, %error, "reply lost; the asker times out");
        }
    }

    fn send(&self, to: &str, wire: Wire<E::Message, E::Reply>) -> Result<(), ShardingError> {
        self.node
            .tell(to, &self.settings.service, wire)
            .map_err(|error| ShardingError::from_mesh(&self.settings.name, error))
    }

    fn check_left(&mut self) {
        if self.leaving.is_empty() {
            return;
        }
        // Messages still buffered here would be lost with the node: wait
        // until they have gone to their new homes.
        let empty = self.region.local_shards().is_empty()
            && self.host.entity_count() == 0
            && self.buffered() == 0;
        if empty && (self.handed_off || self.is_proxy()) {
            for done in self.leaving.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Messages waiting in this region for a home or a lease.
    fn buffered(&self) -> usize {
        (0..self.config.number_of_shards)
            .map(|shard| self.region.buffered(ShardId(shard)))
            .sum()
    }

    fn is_proxy(&self) -> bool {
        self.settings
            .role
            .as_deref()
            .is_some_and(|role| !self.node.config().roles.iter().any(|r| r == role))
    }

    fn region_view(&self) -> RegionView {
        let now = clock::now();
        let shards: Vec<ShardRow> = self
            .region
            .local_shards()
            .into_iter()
            .map(|shard| ShardRow {
                shard: shard.0,
                status: match self.region.shard_status(shard) {
                    Some(ShardStatus::Active) => "active",
                    Some(ShardStatus::Fenced) => "fenced",
                    Some(ShardStatus::Stopping) => "stopping",
                    _ => "unknown",
                }
                .to_string(),
                entities: self.host.shard_entities(shard),
            })
            .collect();
        let buffered = self.buffered();
        RegionView {
            entity_type: self.settings.name.clone(),
            node: self.me.to_string(),
            proxy_only: self.is_proxy(),
            coordinator_epoch: self.region.coordinator_epoch().0,
            registered: self.region.is_registered(),
            lease_left_ms: self
                .region
                .lease_valid_until()
                .map(|until| until.saturating_duration_since(now).as_millis() as u64),
            shards,
            entities: self.host.entity_count(),
            buffered,
        }
    }

    fn coordinator_view(&self) -> Option<CoordinatorView> {
        let coordinator = self.coordinator.as_ref()?;
        let now = clock::now();
        let allocation = coordinator.allocation();
        let mut counts: BTreeMap<&RegionId, usize> = BTreeMap::new();
        for region in allocation.values() {
            *counts.entry(region).or_default() += 1;
        }
        let regions = coordinator
            .registered_regions()
            .into_iter()
            .map(|region| RegionLease {
                shards: counts.get(&region).copied().unwrap_or(0),
                last_grant_ms_ago: coordinator
                    .last_lease_answer(&region)
                    .map(|at| now.saturating_duration_since(at).as_millis() as u64),
                region: region.to_string(),
            })
            .collect();
        Some(CoordinatorView {
            entity_type: self.settings.name.clone(),
            node: self.me.to_string(),
            epoch: coordinator.epoch().0,
            quorum: coordinator.has_quorum(),
            allocation: allocation
                .iter()
                .map(|(shard, region)| (shard.0, region.to_string()))
                .collect(),
            regions,
        })
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
