//! The driver task: one loop that feeds the brain and performs its effects.
//!
//! Every input is handled the same way whenever it comes: a tick or a gossip
//! change reads chitchat and steps the brain; a heartbeat answer (late or
//! duplicate included) is passed on as is; a second `Leave` is ignored by the
//! brain. Nothing in the loop waits on a peer: heartbeats and handoffs run in
//! tasks of their own and report back through channels.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chitchat::ListenerHandle;
use membership::{AppVersion, MemberEvent, Membership, MembershipConfig, MembershipEffect, NodeId};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use super::gossip_io::{
    admitted, push_fanout, push_targets, read_gossip, who_downed, write_own_keys, KeyChange,
    SharedChitchat,
};
use super::handle::{ClusterHandle, Command, NodeExit, Outputs};
use super::heartbeat::{self, HeartbeatAnswer};
use super::state::{ClusterState, Downed};
use crate::error::StartError;
use crate::node::Node;

/// A downed node keeps gossiping this many gossip intervals before it leaves
/// the mesh (1 s with the default 200 ms), so its side learns the Down keys.
pub const DOWN_LINGER_ROUNDS: u32 = 5;

/// A removed node keeps gossiping this many gossip intervals before it leaves
/// the mesh, so that peers see `removed` rather than silence.
pub const REMOVED_LINGER_ROUNDS: u32 = 2;

/// Creates the brain of a node that is starting, and both ends of its driver.
pub(crate) fn prepare(
    id: NodeId,
    advertise: std::net::SocketAddr,
    roles: BTreeSet<String>,
    app_version: Option<AppVersion>,
    config: MembershipConfig,
) -> (ClusterHandle, Prepared) {
    let membership =
        Membership::new(id, advertise, roles, config, Instant::now()).with_app_version(app_version);
    let (handle, outputs) = ClusterHandle::channels(&membership);
    (
        handle,
        Prepared {
            membership,
            outputs,
        },
    )
}

/// A driver that is ready to start once the [`Node`] exists.
pub(crate) struct Prepared {
    membership: Membership,
    outputs: Outputs,
}

/// Registers the heartbeat service, follows chitchat's `member.*` keys and
/// spawns the driver loop as one of the node's tasks.
pub(crate) async fn start(
    node: &Node,
    chitchat: SharedChitchat,
    prepared: Prepared,
) -> Result<(), StartError> {
    heartbeat::register(node).map_err(|e| StartError::Membership(e.to_string()))?;
    let gossip_changed = Arc::new(Notify::new());
    let notify = gossip_changed.clone();
    let listener = chitchat
        .lock()
        .await
        .subscribe_event(membership::keys::PREFIX, move |_| notify.notify_one());
    let (answers_tx, answers) = mpsc::unbounded_channel();
    let config = node.config();
    let own = [node.advertise_addr(), node.local_addr()];
    let driver = Driver {
        node: node.clone(),
        chitchat,
        membership: prepared.membership,
        out: prepared.outputs,
        answers_tx,
        answers,
        gossip_changed,
        _listener: listener,
        gossip_open: !config.seeds.iter().any(|seed| !own.contains(seed)),
        leaving: false,
        decision_due: None,
    };
    let span = tracing::info_span!(parent: node.span(), "membership");
    node.spawn(driver.run().instrument(span));
    Ok(())
}

struct Driver {
    node: Node,
    chitchat: SharedChitchat,
    membership: Membership,
    out: Outputs,
    answers_tx: mpsc::UnboundedSender<HeartbeatAnswer>,
    answers: mpsc::UnboundedReceiver<HeartbeatAnswer>,
    /// Woken by chitchat when a `member.*` key of any node changes.
    gossip_changed: Arc<Notify>,
    _listener: ListenerHandle,
    /// Whether gossip is fed to the brain yet: a node with seeds other than
    /// itself waits until it has heard from someone, so that an unreachable
    /// seed list never makes it admit itself as the first node of a new cluster.
    gossip_open: bool,
    leaving: bool,
    /// When the pending downing decision is due, if one is pending.
    decision_due: Option<Instant>,
}

/// Why the loop ends.
enum Ending {
    Down,
    Removed,
}

impl Driver {
    async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.membership.config().tick_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A pending downing decision is taken when it is due, not at the
            // next tick; likewise a peer's silence is judged when it would
            // cross the threshold.
            let decision_due = self.decision_due;
            let check_due = self.membership.next_check(Instant::now());
            let ending = tokio::select! {
                _ = ticks.tick() => self.step().await,
                _ = sleep_until(decision_due) => self.step().await,
                _ = sleep_until(check_due) => self.step().await,
                _ = self.gossip_changed.notified() => self.step().await,
                Some((from, at)) = self.answers.recv() => {
                    self.membership.on_heartbeat(at, &from);
                    None
                }
                Some(command) = self.out.commands.recv() => self.command(command).await,
            };
            if let Some(ending) = ending {
                self.finish(ending).await;
                return;
            }
        }
    }

    /// Feeds chitchat's view, ticks, performs the effects.
    async fn step(&mut self) -> Option<Ending> {
        let gossip = read_gossip(&self.chitchat).await;
        self.gossip_open |= !gossip.nodes.is_empty();
        if self.gossip_open {
            self.membership.on_gossip(Instant::now(), gossip.nodes);
        }
        let effects = self.membership.tick(Instant::now());
        self.apply(effects).await
    }

    async fn command(&mut self, command: Command) -> Option<Ending> {
        let effects = match command {
            Command::Leave => {
                let effects = self.membership.leave(Instant::now());
                if !self.leaving {
                    self.leaving = true;
                    tracing::info!("leaving the cluster: handing off");
                    let handoffs = self.out.handoffs.clone();
                    let done = self.out.command_tx.clone();
                    tokio::spawn(
                        async move {
                            handoffs.run_all().await;
                            let _ = done.send(Command::HandoffDone);
                        }
                        .in_current_span(),
                    );
                }
                effects
            }
            Command::HandoffDone => {
                tracing::info!("leave handoff done");
                self.membership.leave_handoff_done(Instant::now())
            }
            Command::Down(member, answer) => {
                let (known, effects) = self.membership.down(Instant::now(), &member);
                if known {
                    tracing::warn!(%member, "downed by an operator");
                }
                let _ = answer.send(known);
                effects
            }
        };
        self.apply(effects).await
    }

    /// Performs `effects`: keys first, then the watches, then the events (so
    /// that a subscriber reacting to an event reads an up-to-date node).
    async fn apply(&mut self, effects: Vec<MembershipEffect>) -> Option<Ending> {
        let mut keys = Vec::new();
        let mut events = Vec::new();
        let mut ending = None;
        for effect in effects {
            match effect {
                MembershipEffect::SetKey { key, value } => keys.push(KeyChange::Set(key, value)),
                MembershipEffect::DeleteKey { key } => keys.push(KeyChange::Delete(key)),
                MembershipEffect::SendHeartbeat { to } => {
                    let addr = self.membership.member(&to).map(|m| m.addr);
                    heartbeat::send(&self.node, to, addr, &self.answers_tx);
                }
                MembershipEffect::Event(event) => events.push(event),
                MembershipEffect::SelfDown => ending = Some(Ending::Down),
                MembershipEffect::SelfRemoved => ending = Some(Ending::Removed),
            }
        }
        if matches!(ending, Some(Ending::Down)) {
            // Before anyone can read the Down status: nothing is served from now on.
            self.node.close_services();
        }
        let fanout = push_fanout(&keys, self.node.config().gossip_push_fanout);
        let joiners: Vec<SocketAddr> = admitted(&keys)
            .filter_map(|id| self.membership.member(&id).map(|m| m.addr))
            .collect();
        let live = write_own_keys(&self.chitchat, keys).await;
        if !live.is_empty() {
            let leader = self.leader();
            let peers = push_targets(live, leader, &joiners, fanout, &mut rand::thread_rng());
            self.node.gossip_now(&peers);
        }
        self.publish();
        for event in events {
            log_event(&event);
            // No subscriber is fine.
            let _ = self.out.events.send(event);
        }
        ending
    }

    /// The gossip address of the oldest reachable member other than this
    /// node that is neither Down nor gone: the one that admits joiners and
    /// takes the downing decisions, so it hears of every change first.
    fn leader(&self) -> Option<SocketAddr> {
        let me = self.membership.self_id();
        self.membership
            .members()
            .into_iter()
            .find(|m| m.id != *me && m.reachability.is_reachable() && !m.status.is_gone())
            .map(|m| m.addr)
    }

    fn publish(&mut self) {
        let state = ClusterState::of(&self.membership);
        let phis = self.membership.phis(Instant::now()).map(|(_, phi)| phi);
        self.node.metrics().mesh.record_phis(phis);
        // Only the deciding node acts on the timer; a due time already past
        // was handled by this very step (or the decision waits for a change).
        let now = Instant::now();
        self.decision_due = state
            .pending_decision
            .as_ref()
            .filter(|p| p.decider == state.self_id && p.decide_at > now)
            .map(|p| p.decide_at);
        self.out.members.send_if_modified(|members| {
            let changed = *members != state.members;
            if changed {
                members.clone_from(&state.members);
            }
            changed
        });
        self.out.status.send_if_modified(|status| {
            let changed = *status != state.self_status;
            *status = state.self_status;
            changed
        });
        self.out.state.send_if_modified(|current| {
            let changed = *current != state;
            if changed {
                *current = state;
            }
            changed
        });
    }

    /// Downed (services already closed by `apply`): linger so the Down keys
    /// spread, then leave the mesh. Removed: linger so peers read `removed`, then leave.
    async fn finish(self, ending: Ending) {
        let gossip_interval = self.node.config().gossip_interval;
        let exit = match ending {
            Ending::Down => {
                let me = self.membership.self_id().clone();
                let (decided_by, superseded_by) = who_downed(&self.chitchat, &me).await;
                let unreachable = self
                    .membership
                    .members()
                    .into_iter()
                    .filter(|m| !m.reachability.is_reachable() && m.id != me)
                    .map(|m| m.id)
                    .collect();
                let downed = Downed {
                    id: me,
                    decided_by,
                    superseded_by,
                    unreachable,
                };
                tracing::error!(
                    "this node was downed by the cluster: {downed}; services stopped, leaving the mesh"
                );
                tokio::time::sleep(gossip_interval * DOWN_LINGER_ROUNDS).await;
                NodeExit::Downed(downed)
            }
            Ending::Removed => {
                tracing::info!("removed from the cluster; leaving the mesh");
                tokio::time::sleep(gossip_interval * REMOVED_LINGER_ROUNDS).await;
                NodeExit::Left
            }
        };
        // Shutting down aborts the node's tasks, this one included: the
        // shutdown runs in a task of its own and reports the exit when done.
        let node = self.node;
        let exit_tx = self.out.exit;
        tokio::spawn(
            async move {
                node.shutdown().await;
                exit_tx.send_replace(Some(exit));
            }
            .in_current_span(),
        );
    }
}

/// Sleeps until `at`, or forever if there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn log_event(event: &MemberEvent) {
    match event {
        MemberEvent::MemberUp(m) => tracing::info!(member = %m.id, "member up"),
        MemberEvent::MemberLeft(m) => tracing::info!(member = %m.id, "member leaving"),
        MemberEvent::MemberExited(m) => tracing::info!(member = %m.id, "member exiting"),
        MemberEvent::MemberDowned(m) => tracing::warn!(member = %m.id, "member downed"),
        MemberEvent::MemberRemoved(m) => tracing::info!(member = %m.id, "member removed"),
        MemberEvent::Unreachable { member, observers } => tracing::warn!(
            %member,
            observers = ?observers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "member unreachable"
        ),
        MemberEvent::Reachable(member) => tracing::info!(%member, "member reachable again"),
        MemberEvent::SingletonHostChanged { role, host } => tracing::info!(
            role = role.as_deref().unwrap_or("*"),
            host = %host.as_ref().map_or_else(|| "none".to_string(), ToString::to_string),
            "singleton host changed"
        ),
    }
}
