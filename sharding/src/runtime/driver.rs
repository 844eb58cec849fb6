//! The driver of one entity type on one node: one task that owns the
//! [`Region`], the [`Coordinator`] while this node hosts it, and the
//! entities, and moves inputs and effects between them, the mesh and the
//! clock. All protocol decisions are in the state machines and in the
//! [`TypeCore`] (member tracking, the coordinator's host and epoch, quorum,
//! keep-alives); this file only performs them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mesh::{MemberStatus, Node};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Interval;

use super::core::{TypeAction, TypeCore};
use super::host::{Host, Job};
use super::metrics::TypeMetrics;
use super::replies::{Replies, ReplySender};
use super::routes::Routes;
use super::view::{CoordinatorView, RegionLease, RegionView, ShardRow};
use super::wire::{Protocol, ShardingError, Wire};
use crate::clock;
use crate::coordinator::{Coordinator, CoordinatorEffect, CoordinatorInput};
use crate::entity::{Entity, Factory};
use crate::ids::{EntityId, Epoch, RegionId, ReplyTo, ShardId};
use crate::lease_gate::Gates;
use crate::messages::{CoordinatorToRegion, Delivery, RegionToCoordinator, RegionToRegion};
use crate::region::{Region, RegionEffect, RegionInput, ShardStatus, StopReason};
use crate::ShardingConfig;

/// The hook points of the sharding driver (see [`mesh::Hooks`]): arm one
/// on a node to crash or pause it exactly between two protocol steps
/// (exported with the cargo feature `fault-injection`).
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

/// How a round of the driver task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    /// Inputs were handled; more may come.
    Worked,
    /// The node stopped (or the command queue closed).
    Stopped,
    /// A hook point crashed the node.
    Crashed,
}

/// Commands taken per wake-up of the driver before it looks at its timers
/// and finished entities again.
const BATCH: usize = 256;

/// What the driver task receives.
pub(crate) enum Command<E: Entity> {
    Send(LocalSend<E>),
    /// From another node's driver (boxed: it is large, and local sends,
    /// the common case, should not pay its size in the queue).
    Wire(Box<Protocol<E::Message>>),
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
    /// The decisions around the two state machines.
    core: TypeCore,
    /// A hook point crashed the node: the driver stops at once.
    crashed: bool,
    leaving: Vec<oneshot::Sender<()>>,
    handed_off: bool,
    next_passivation: Instant,
    work: VecDeque<Work<E::Message>>,
    /// The time of the current round of work (see `process`).
    now: Instant,
    metrics: TypeMetrics,
    /// Local sends and what the mesh could not hand over at once.
    commands: mpsc::Receiver<Command<E>>,
}

impl<E: Entity> Driver<E> {
    pub(crate) fn new(
        node: Node,
        settings: TypeSettings<E>,
        config: ShardingConfig,
        replies: Arc<Replies<E::Reply>>,
        routes: Arc<Routes>,
        metrics: TypeMetrics,
        commands: mpsc::Receiver<Command<E>>,
    ) -> Self {
        let me = node.id().clone();
        let proxy_only = settings
            .role
            .as_deref()
            .is_some_and(|role| !node.config().roles.iter().any(|r| r == role));
        let now = clock::now();
        let gates = Gates::new(config.number_of_shards);
        let keep_alive = settings
            .keep_alive
            .as_ref()
            .map(|keep_alive| (keep_alive.every, keep_alive.workers.clone()));
        Self {
            core: TypeCore::new(me.clone(), settings.role.clone(), keep_alive, now),
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
            crashed: false,
            leaving: Vec::new(),
            handed_off: false,
            next_passivation: now,
            work: VecDeque::new(),
            now,
            metrics,
            commands,
        }
    }

    /// The timer of the driver task's ticks.
    pub(crate) fn ticker(&self) -> Interval {
        let mut ticker = tokio::time::interval(self.config.tick_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    }

    /// One round of the driver task: its timers if due, a finished entity
    /// step, and the queued commands (up to [`BATCH`] more after the first:
    /// one wake-up for many messages under load); `Pending` while none of
    /// them is ready.
    pub(crate) fn poll_round(
        &mut self,
        cx: &mut Context<'_>,
        ticker: &mut Interval,
    ) -> Poll<Round> {
        if self.crashed {
            return Poll::Ready(Round::Crashed);
        }
        self.host.set_waker(cx.waker());
        let mut worked = false;
        if ticker.poll_tick(cx).is_ready() {
            if self.node.is_stopped() {
                return Poll::Ready(Round::Stopped);
            }
            self.on_tick();
            if self.crashed {
                // Nothing more runs: not a finished step's next one.
                return Poll::Ready(Round::Crashed);
            }
            worked = true;
        }
        if let Poll::Ready(Some(finished)) = self.host.running().poll_next_unpin(cx) {
            self.host.finished(finished);
            worked = true;
        }
        match self.commands.poll_recv(cx) {
            Poll::Ready(Some(command)) => {
                self.now = clock::now();
                self.on_command(command);
                for _ in 0..BATCH {
                    match self.commands.try_recv() {
                        Ok(command) => self.on_command(command),
                        Err(_) => break,
                    }
                }
                worked = true;
            }
            Poll::Ready(None) => return Poll::Ready(Round::Stopped),
            Poll::Pending => {}
        }
        if !worked {
            return Poll::Pending;
        }
        self.end_round();
        Poll::Ready(if self.crashed {
            Round::Crashed
        } else {
            Round::Worked
        })
    }

    /// Handles a message from another node now, on the caller's task (the
    /// mesh reader of its link), unless commands wait in the queue: it
    /// would overtake them, among them earlier messages from its sender.
    /// Gives the message back for the queue then. Saves the hop to the
    /// driver task, which on a multi-threaded runtime is often the hop that
    /// wakes another worker (see `mesh::pipeline`).
    pub(crate) fn handle_now(
        &mut self,
        protocol: Protocol<E::Message>,
    ) -> Option<Protocol<E::Message>> {
        if self.crashed || !self.commands.is_empty() {
            return Some(protocol);
        }
        self.now = clock::now();
        self.on_wire(protocol);
        self.end_round();
        None
    }

    /// Whether a hook point crashed the node: the driver task ends.
    pub(crate) fn crashed(&self) -> bool {
        self.crashed
    }

    /// Performs what a round of inputs left queued, then lets callers send
    /// straight to the homes as the round left them.
    fn end_round(&mut self) {
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

    /// The driver ends: sends take the driver's way (and find it closed),
    /// and, unless the node crashed, every waiting ask fails.
    pub(crate) fn finish(self) {
        self.routes.clear();
        if !self.crashed {
            self.replies.fail_all(ShardingError::Stopped);
        }
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

    fn on_wire(&mut self, protocol: Protocol<E::Message>) {
        match protocol {
            // Only the coordinator of this node takes it; with none here
            // (not started yet, or moved away) the region retries.
            Protocol::ToCoordinator(message) => {
                if self.coordinator.is_some() {
                    self.work
                        .push_back(Work::Coordinator(CoordinatorInput::Message(message)));
                }
            }
            // Meant for an earlier incarnation of this node: not ours.
            Protocol::ToRegion { to, message } => {
                if to == self.me {
                    self.work
                        .push_back(Work::Region(RegionInput::FromCoordinator(message)));
                }
            }
            Protocol::Region(message) => self
                .work
                .push_back(Work::Region(RegionInput::FromRegion(message))),
            Protocol::HandedOff { to, epoch } => {
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
        // Every region tick changes its homes version, so this sync (with
        // its fence and resume) runs on every tick: a lease that ended by
        // the clock alone, between two region inputs, is seen here.
        self.sync_gates();
        self.region_effects(effects);
        if let Some(coordinator) = &mut self.coordinator {
            let effects = coordinator.tick(now);
            self.coordinator_effects(effects);
        }
        if let Some(idle) = self.settings.passivate_after {
            if now >= self.next_passivation {
                let passivated = self.host.passivate_idle(now, idle);
                self.metrics.passivations.inc_by(passivated as u64);
                self.next_passivation = now + (idle / 4).max(self.config.tick_interval);
            }
        }
        self.keep_alive(now);
        self.replies.forget_abandoned(now);
        self.check_left();
        self.record_gauges(now);
    }

    /// Sets the gauges of the region's state; counts epoch changes and
    /// lease expiries.
    fn record_gauges(&mut self, now: Instant) {
        let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let buffered = self.buffered();
        let metrics = &mut self.metrics;
        metrics
            .shards
            .set(as_gauge(self.region.local_shards().len()));
        metrics.entities.set(as_gauge(self.host.entity_count()));
        metrics.buffered.set(as_gauge(buffered));
        let lease_live = self
            .region
            .lease_valid_until()
            .is_some_and(|until| until > now);
        metrics.region_state(self.region.coordinator_epoch().0, lease_live);
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
                if self.region.shard_status(shard) == Some(ShardStatus::Fenced) {
                    self.metrics.fences.inc();
                }
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
                    if matches!(message.body, RegionToCoordinator::RenewLease) {
                        self.metrics.lease_renewals.inc();
                    }
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
                            let _ = self.send(&host.name, Protocol::ToCoordinator(message));
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
                    if let Err(error) = self.send(&to.name, Protocol::Region(message)) {
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
                    match message.body {
                        CoordinatorToRegion::BeginHandoff { shard } => {
                            self.metrics.handoff_begun(shard, self.now);
                        }
                        CoordinatorToRegion::HostShard { shard } => {
                            self.metrics.shard_allocated(shard, self.now);
                        }
                        _ => {}
                    }
                    if to == self.me {
                        self.work
                            .push_back(Work::Region(RegionInput::FromCoordinator(message)));
                    } else {
                        let _ = self.send(&to.name.clone(), Protocol::ToRegion { to, message });
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
                        let _ = self.send(
                            &region.name.clone(),
                            Protocol::HandedOff { to: region, epoch },
                        );
                    }
                }
                CoordinatorEffect::Superseded { by } => {
                    tracing::info!(entity_type = %self.settings.name, %by, "coordinator superseded by a newer epoch; stopping it");
                    let now = clock::now();
                    let actions = self.core.on_superseded(now, by);
                    self.core_actions(now, actions);
                }
            }
        }
    }

    /// Reads the cluster state and lets the core decide: member changes for
    /// both state machines, where the coordinator runs (starting or stopping
    /// ours), quorum and the fencing fast path.
    fn follow_membership(&mut self, now: Instant) {
        let state = self.node.cluster_state();
        // The failover clock of a Down member starts where the coordinator
        // runs (see `sharding_failover_seconds`).
        let mut down = state
            .members
            .iter()
            .filter(|m| m.status == MemberStatus::Down)
            .peekable();
        if let (Some(coordinator), Some(_)) = (&self.coordinator, down.peek()) {
            let allocation = coordinator.allocation();
            for member in down {
                let shards = allocation
                    .iter()
                    .filter(|(_, home)| **home == member.id)
                    .map(|(shard, _)| *shard)
                    .collect();
                self.metrics.member_down(&member.id, shards, now);
            }
        }
        let epoch = self.region.coordinator_epoch();
        let actions = self
            .core
            .on_cluster(now, &state.members, state.would_survive, epoch);
        self.core_actions(now, actions);
    }

    /// Performs the core's decisions: inputs are queued behind the work
    /// already queued, a coordinator starts or stops at once.
    fn core_actions(&mut self, now: Instant, actions: Vec<TypeAction>) {
        for action in actions {
            match action {
                TypeAction::Region(signal) => {
                    tracing::debug!(node = %self.me, entity_type = %self.settings.name, ?signal, "region signal");
                    self.work.push_back(Work::Region(signal.input()));
                }
                TypeAction::Coordinator(input) => self.work.push_back(Work::Coordinator(input)),
                TypeAction::StartCoordinator {
                    epoch,
                    previous_grants_until,
                } => {
                    tracing::info!(entity_type = %self.settings.name, %epoch, ?previous_grants_until, "coordinator starts on this node");
                    self.coordinator = Some(Coordinator::new(
                        self.me.clone(),
                        epoch,
                        self.config.clone(),
                        now,
                        previous_grants_until,
                    ));
                }
                TypeAction::StopCoordinator => {
                    tracing::info!(entity_type = %self.settings.name, "the coordinator stops on this node");
                    self.coordinator = None;
                    self.metrics.coordinator_stopped();
                }
                TypeAction::KeepAlive { worker } => {
                    if let Some(keep_alive) = &self.settings.keep_alive {
                        self.work.push_back(Work::Region(RegionInput::Send {
                            entity: worker,
                            payload: (keep_alive.message)(),
                            reply_to: None,
                        }));
                    }
                }
            }
        }
    }

    /// The node the coordinator runs on, as this node sees it.
    fn coordinator_node(&self) -> Option<RegionId> {
        self.core.coordinator_host().cloned()
    }

    fn keep_alive(&mut self, now: Instant) {
        let registered = self
            .coordinator
            .as_ref()
            .map_or(0, |coordinator| coordinator.registered_regions().len());
        let actions = self.core.tick(now, registered);
        self.core_actions(now, actions);
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
        if let Err(error) = self.send_wire(&to.node.name, wire) {
            tracing::debug!(to = %to.node, %error, "reply lost; the asker times out");
        }
    }

    fn send(&self, to: &str, protocol: Protocol<E::Message>) -> Result<(), ShardingError> {
        self.send_wire(to, Wire::Protocol(protocol))
    }

    fn send_wire(&self, to: &str, wire: Wire<E::Message, E::Reply>) -> Result<(), ShardingError> {
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
        if empty && (self.handed_off || self.region.is_proxy_only()) {
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
            proxy_only: self.region.is_proxy_only(),
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
