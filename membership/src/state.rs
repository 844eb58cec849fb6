//! [`Membership`]: the membership brain of one node, stepped by its driver.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::downing::{PendingDecision, SplitBrainResolver};
use crate::events::{member_events, MemberEvent, MembershipEffect};
use crate::gossip_view::{GossipNode, GossipView, Said};
use crate::keys::{self, MembershipKey};
use crate::monitor::HeartbeatMonitor;
use crate::phi::PhiConfig;
use crate::{ordering, ring, AppVersion, Member, MemberStatus, MembershipConfig, NodeId};

/// The membership state machine of one node. See the crate documentation for
/// how a driver uses it.
#[derive(Clone, Debug)]
pub struct Membership {
    config: MembershipConfig,
    self_id: NodeId,
    roles: BTreeSet<String>,
    app_version: Option<AppVersion>,
    /// Set once, when this node becomes Up (see [`keys::UP_NUMBER`]).
    up_number: Option<u64>,
    started: Instant,
    now: Instant,
    /// What this node publishes as its status (never Down: that is decided).
    lifecycle: MemberStatus,
    leave_started: Option<Instant>,
    exiting_since: Option<Instant>,
    /// The latest gossip, without this node (its own keys are overlaid),
    /// each node's keys read once.
    gossip: BTreeMap<NodeId, (GossipNode, Arc<Said>)>,
    /// This node as it entered the current view.
    me: (GossipNode, Arc<Said>),
    /// The gossip changed since the view was built.
    gossip_changed: bool,
    gossip_rounds: u64,
    /// Every Down decision ever adopted: final.
    down: BTreeSet<NodeId>,
    /// When this node learned of each Down member still in gossip.
    down_since: BTreeMap<NodeId, Instant>,
    /// Down decisions this node published, with since when their subject has
    /// been absent from gossip.
    decided: BTreeMap<NodeId, Option<Instant>>,
    /// Joining members this node admits while it is the leader, and those
    /// of them already Up while others still join (see `update_admissions`).
    admits: BTreeSet<NodeId>,
    monitor: HeartbeatMonitor,
    resolver: SplitBrainResolver,
    /// This node's keys as last handed to the driver.
    published: BTreeMap<String, String>,
    view: GossipView,
    /// The members as of the last events emitted.
    reported: BTreeMap<NodeId, Member>,
    singletons: BTreeMap<Option<String>, Option<NodeId>>,
    finished: bool,
}

impl Membership {
    /// A node that is about to join: status `Joining`, nothing published yet
    /// (the first [`tick`](Self::tick) publishes its keys).
    pub fn new(
        self_id: NodeId,
        addr: SocketAddr,
        roles: BTreeSet<String>,
        config: MembershipConfig,
        now: Instant,
    ) -> Self {
        let monitor = HeartbeatMonitor::new(
            PhiConfig::from_membership(&config),
            config.heartbeat_interval,
        );
        let resolver = SplitBrainResolver::new(&config, now);
        let me = GossipNode {
            id: self_id.clone(),
            addr,
            keys: Arc::default(),
            live: true,
        };
        let mut membership = Self {
            config,
            self_id,
            roles,
            app_version: None,
            up_number: None,
            started: now,
            now,
            lifecycle: MemberStatus::Joining,
            leave_started: None,
            exiting_since: None,
            gossip: BTreeMap::new(),
            me: (me, Arc::default()),
            gossip_changed: true,
            gossip_rounds: 0,
            down: BTreeSet::new(),
            down_since: BTreeMap::new(),
            decided: BTreeMap::new(),
            admits: BTreeSet::new(),
            monitor,
            resolver,
            published: BTreeMap::new(),
            view: GossipView::default(),
            reported: BTreeMap::new(),
            singletons: BTreeMap::new(),
            finished: false,
        };
        membership.rebuild_view();
        membership
    }

    /// This node runs `version` of the application (gossiped as
    /// `member.app-version`; `None`, the default, gossips none: the lowest).
    /// Set it before the first [`tick`](Self::tick): a node's version is
    /// fixed for its incarnation.
    pub fn with_app_version(mut self, version: Option<AppVersion>) -> Self {
        self.app_version = version;
        self.rebuild_view();
        self
    }

    /// A heartbeat answer from `from` arrived (the reply to a
    /// [`MembershipEffect::SendHeartbeat`]). Late or duplicate answers and
    /// answers from peers no longer monitored are harmless.
    pub fn on_heartbeat(&mut self, now: Instant, from: &NodeId) {
        let now = self.advance(now);
        self.monitor.heartbeat(now, from);
    }

    /// The current chitchat view: every node chitchat knows (this node's own
    /// entry is ignored: its keys are taken from this state machine). Replaces
    /// the previous view; a stale or reordered view can only delay, never undo,
    /// a Down (Down is final).
    pub fn on_gossip(&mut self, now: Instant, nodes: Vec<GossipNode>) {
        self.advance(now);
        let mut previous = std::mem::take(&mut self.gossip);
        let mut changed = false;
        for node in nodes {
            if node.id == self.self_id {
                continue;
            }
            let read = match (previous.remove(&node.id), self.gossip.remove(&node.id)) {
                // The same id twice in one view: merged, keys read again.
                (_, Some((mut seen, _))) => {
                    seen.merge(&node);
                    let said = Arc::new(Said::read(&seen));
                    changed = true;
                    (seen, said)
                }
                (Some((old, said)), None) if old == node => (old, said),
                (Some((old, said)), None) if old.keys == node.keys => {
                    changed = true;
                    (node, said)
                }
                _ => {
                    changed = true;
                    let said = Arc::new(Said::read(&node));
                    (node, said)
                }
            };
            self.gossip.insert(read.0.id.clone(), read);
        }
        self.gossip_changed |= changed || !previous.is_empty();
        self.gossip_rounds += 1;
        self.rebuild_view();
    }

    /// Advances timers: failure detection, lifecycle, admissions, downing.
    /// Call it every [`MembershipConfig::tick_interval`] (and after
    /// [`on_gossip`](Self::on_gossip) for faster reactions). After
    /// [`MembershipEffect::SelfDown`] or [`MembershipEffect::SelfRemoved`] it
    /// returns nothing.
    pub fn tick(&mut self, now: Instant) -> Vec<MembershipEffect> {
        let now = self.advance(now);
        if self.finished {
            return Vec::new();
        }
        self.rebuild_view();
        self.progress_lifecycle(now);
        self.update_monitoring(now);
        self.update_admissions();
        self.rebuild_view();
        self.run_resolver(now);
        self.forget_old_decisions(now);
        self.effects(now)
    }

    /// Starts a graceful leave: `Leaving` now (services hand off), `Exiting`
    /// after [`leave_handoff_done`](Self::leave_handoff_done) or after
    /// `leave_handoff_timeout`, `Removed` once every live member has said it
    /// saw `Exiting` (or `exiting_timeout` later), signalled by
    /// [`MembershipEffect::SelfRemoved`]. A node still `Joining` was never
    /// a member: it is `Removed` at once (as `Leaving` it would count as a
    /// member, and could admit other joiners on its own). Calling it again
    /// changes nothing.
    pub fn leave(&mut self, now: Instant) -> Vec<MembershipEffect> {
        match self.lifecycle {
            MemberStatus::Joining => self.lifecycle = MemberStatus::Removed,
            MemberStatus::Up => {
                self.lifecycle = MemberStatus::Leaving;
                self.leave_started = Some(now);
            }
            _ => {}
        }
        self.tick(now)
    }

    /// An operator's manual Down of `member` (Akka's `Cluster.down`): this
    /// node publishes the decision like one of its resolver's, and every
    /// node adopts it. Final. Unknown or already gone members change
    /// nothing; returns whether the decision was taken.
    pub fn down(&mut self, now: Instant, member: &NodeId) -> (bool, Vec<MembershipEffect>) {
        let known = self
            .view
            .members
            .get(member)
            .is_some_and(|m| !m.status.is_gone());
        if known && !self.finished {
            self.decided.entry(member.clone()).or_insert(None);
            self.down.insert(member.clone());
        }
        (known, self.tick(now))
    }

    /// The services have handed off: move on from `Leaving` to `Exiting`.
    /// Ignored in any other status.
    pub fn leave_handoff_done(&mut self, now: Instant) -> Vec<MembershipEffect> {
        if self.lifecycle == MemberStatus::Leaving {
            self.lifecycle = MemberStatus::Exiting;
            self.exiting_since = Some(now);
        }
        self.tick(now)
    }

    /// The members, oldest first, Removed ones left out: the same on every
    /// node that has the same gossip. A Down member is Removed once every
    /// Up, reachable member has seen it Down.
    pub fn members(&self) -> Vec<Member> {
        self.view
            .members
            .values()
            .filter(|m| m.status != MemberStatus::Removed)
            .cloned()
            .collect()
    }

    /// The departed incarnations still in gossip: Removed after a leave, or
    /// after a Down that everyone has seen.
    pub fn departed(&self) -> Vec<Member> {
        self.view
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Removed)
            .cloned()
            .collect()
    }

    /// One member by id.
    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.view.members.get(id)
    }

    /// The oldest member that is Up with `role` (`None`: any role): where the
    /// singleton for that role runs. Unreachability does not move it.
    pub fn singleton_host(&self, role: Option<&str>) -> Option<NodeId> {
        ordering::singleton_host(self.view.members.values(), role)
    }

    /// The oldest member that is neither Down nor Removed.
    pub fn oldest(&self) -> Option<NodeId> {
        ordering::oldest(self.view.members.values())
    }

    /// The peers this node sends heartbeats to.
    pub fn monitored(&self) -> Vec<NodeId> {
        self.monitor.monitored()
    }

    /// When to tick next, at the latest, besides the regular ticks: the
    /// moment a silent monitored peer would become unreachable, so that a
    /// crash is seen then rather than up to a tick later (`None`: nothing
    /// after `now`).
    pub fn next_check(&self, now: Instant) -> Option<Instant> {
        self.monitor.next_unreachable_at().filter(|at| *at > now)
    }

    /// The current phi of every peer this node sends heartbeats to.
    pub fn phis(&self, now: Instant) -> impl Iterator<Item = (&NodeId, f64)> + '_ {
        self.monitor.phis(now)
    }

    /// What the split-brain resolver would decide and when, if some member
    /// is unreachable.
    pub fn pending_decision(&self) -> Option<PendingDecision> {
        if self.finished {
            return None;
        }
        let members = self.resolver_view();
        self.resolver.pending(self.now, &self.self_id, &members)
    }

    /// Whether this node's side would survive the downing strategy if it were
    /// applied now (for fencing before the decision lands). False once this
    /// node is Down or gone.
    pub fn would_survive(&self) -> bool {
        if self.finished || self.status().is_gone() {
            return false;
        }
        match self.pending_decision() {
            None => true,
            Some(pending) => !pending.to_down.contains(&self.self_id),
        }
    }

    /// This node's id.
    pub fn self_id(&self) -> &NodeId {
        &self.self_id
    }

    /// This node's status: what it publishes, or Down.
    pub fn status(&self) -> MemberStatus {
        if self.down.contains(&self.self_id) {
            MemberStatus::Down
        } else {
            self.lifecycle
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    fn advance(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn own_keys(&self) -> BTreeMap<String, String> {
        let mut own = BTreeMap::new();
        own.insert(keys::STATUS.to_owned(), keys::encode_status(self.lifecycle));
        own.insert(keys::ROLES.to_owned(), keys::encode_roles(&self.roles));
        if let Some(version) = &self.app_version {
            own.insert(keys::APP_VERSION.to_owned(), version.to_string());
        }
        if let Some(number) = self.up_number {
            own.insert(keys::UP_NUMBER.to_owned(), number.to_string());
        }
        if self.config.may_start_cluster && self.lifecycle == MemberStatus::Joining {
            own.insert(keys::MAY_START.to_owned(), keys::MARKER.to_owned());
        }
        // Only an Up or Leaving member's sighting counts for an admission.
        if self.lifecycle.is_counted() {
            own.insert(keys::SEEN_MEMBERS.to_owned(), self.members_seen());
            if self.an_older_build_is_present() {
                own.insert(keys::SEEN_JOINERS.to_owned(), self.joiners_seen());
            }
        }
        let marker = |key: MembershipKey| (key.encode(), keys::MARKER.to_owned());
        own.extend(
            self.monitor
                .unreachable()
                .iter()
                .map(|id| marker(MembershipKey::Unreachable(id.clone()))),
        );
        own.extend(
            self.decided
                .keys()
                .map(|id| marker(MembershipKey::Down(id.clone()))),
        );
        own.extend(
            self.admits
                .iter()
                .map(|id| marker(MembershipKey::Admit(id.clone()))),
        );
        own.extend(
            self.view
                .members
                .values()
                .filter(|m| m.id != self.self_id)
                .filter_map(|m| match m.status {
                    MemberStatus::Exiting => Some(MembershipKey::SeenExiting(m.id.clone())),
                    _ if self.down.contains(&m.id) => Some(MembershipKey::SeenDown(m.id.clone())),
                    _ => None,
                })
                .map(marker),
        );
        own
    }

    /// The view is a function of the gossip, this node's keys and the Down
    /// decisions known; it is built again only when one of them changed.
    fn rebuild_view(&mut self) {
        let own = self.own_keys();
        let own_changed = own != *self.me.0.keys;
        if own_changed {
            self.me.0.keys = Arc::new(own);
            self.me.1 = Arc::new(Said::read(&self.me.0));
        }
        if own_changed || self.gossip_changed || self.down != self.view.down {
            let nodes = self.gossip.values().chain([&self.me]);
            self.view = GossipView::build_read(nodes.map(|(node, said)| (node, said)), &self.down);
            self.down.clone_from(&self.view.down);
            self.gossip_changed = false;
        }
        self.remove_seen_downs();
    }

    /// Akka's Down -> Removed: a Down member that every Up, reachable member
    /// (this node included) has seen Down leaves the member list, once this
    /// node has known the decision for `down_removal_after`. Every node
    /// keeps saying it saw the Down while the member is in gossip, so this
    /// depends on the gossip and the time only, not on the order.
    fn remove_seen_downs(&mut self) {
        let now = self.now;
        let members = &self.view.members;
        self.down_since.retain(|id, _| members.contains_key(id));
        for member in members.values() {
            if member.status == MemberStatus::Down {
                self.down_since.entry(member.id.clone()).or_insert(now);
            }
        }
        let settled = |id: &NodeId| {
            self.down_since.get(id).is_some_and(|since| {
                now.saturating_duration_since(*since) >= self.config.down_removal_after
            })
        };
        let removed: Vec<NodeId> = self
            .view
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Down && m.id != self.self_id)
            .filter(|m| settled(&m.id) && self.down_seen_by_everyone(&m.id))
            .map(|m| m.id.clone())
            .collect();
        for id in removed {
            if let Some(member) = self.view.members.get_mut(&id) {
                member.status = MemberStatus::Removed;
            }
        }
    }

    /// Every other Up or Leaving member, reachable or not, says it has seen
    /// `subject` Down (Akka's convergence: an unreachable member blocks it
    /// until it is Down itself).
    fn down_seen_by_everyone(&self, subject: &NodeId) -> bool {
        self.view
            .members
            .values()
            .filter(|m| m.status.is_counted() && m.id != self.self_id)
            .all(|m| self.view.has_seen(&m.id, MemberStatus::Down, subject))
    }

    /// One more than the highest up-number among the members that are or
    /// were Up (0 for the first): members that became Up earlier come first
    /// in [`ordering`], whatever their generation.
    fn next_up_number(&self) -> u64 {
        self.view
            .members
            .values()
            .filter(|m| {
                matches!(
                    m.status,
                    MemberStatus::Up | MemberStatus::Leaving | MemberStatus::Exiting
                )
            })
            .filter_map(|m| m.up_number)
            .max()
            .map_or(0, |highest| highest + 1)
    }

    /// The members as the split-brain resolver weighs them: a Down member
    /// that some member has not acknowledged yet stays in (keep-majority
    /// counts it against the deciding side, since a side that has not heard
    /// of the Down may still count it as its own).
    ///
    /// Likewise an unreachable `Joining` member counts as `Up` (on the other
    /// side) once every Up member publishes the members this node sees: the
    /// leader may have admitted it just as the cut came, and the other side
    /// counts it as its own (found by the simulation: a 2|3 cut right after
    /// two restarted nodes joined the 3 side; the 2 side, which never saw
    /// them Up, counted 2 against 1 and both sides survived).
    fn resolver_view(&self) -> Vec<Member> {
        let admissible = self.every_member_sees_my_members();
        self.view
            .members
            .values()
            .filter(|m| m.status != MemberStatus::Down || !self.down_seen_by_everyone(&m.id))
            .map(|m| {
                let maybe_up_elsewhere = admissible
                    && m.status == MemberStatus::Joining
                    && !m.reachability.is_reachable();
                Member {
                    status: if maybe_up_elsewhere {
                        MemberStatus::Up
                    } else {
                        m.status
                    },
                    ..m.clone()
                }
            })
            .collect()
    }

    fn progress_lifecycle(&mut self, now: Instant) {
        match self.lifecycle {
            MemberStatus::Joining => {
                if self.view.admitted.contains(&self.self_id) || self.may_admit_itself(now) {
                    self.lifecycle = MemberStatus::Up;
                    self.up_number = Some(self.next_up_number());
                }
            }
            MemberStatus::Leaving => {
                let since = *self.leave_started.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.config.leave_handoff_timeout {
                    self.lifecycle = MemberStatus::Exiting;
                    self.exiting_since = Some(now);
                }
            }
            MemberStatus::Exiting => {
                let since = *self.exiting_since.get_or_insert(now);
                let exiting_published = self.published.get(keys::STATUS)
                    == Some(&keys::encode_status(MemberStatus::Exiting));
                if exiting_published && self.every_live_member_saw_me_exiting()
                    || now.saturating_duration_since(since) >= self.config.exiting_timeout
                {
                    self.lifecycle = MemberStatus::Removed;
                }
            }
            MemberStatus::Up | MemberStatus::Down | MemberStatus::Removed => {}
        }
    }

    /// Every live member still in the cluster has published that it saw this
    /// node `Exiting`, so none of them mistakes the silence that follows for
    /// a crash, and each has seen the exit before the node is gone.
    fn every_live_member_saw_me_exiting(&self) -> bool {
        self.view
            .members
            .values()
            .filter(|m| {
                m.id != self.self_id && !m.status.is_gone() && self.view.live.contains(&m.id)
            })
            .all(|m| {
                self.view
                    .has_seen(&m.id, MemberStatus::Exiting, &self.self_id)
            })
    }

    /// The first node of a cluster: it may start one, has gossiped for a
    /// while and sees only joining nodes, none of them older, live and
    /// allowed to start a cluster too (an older joiner that may not start
    /// one waits to be admitted, so waiting for it would wait forever). A
    /// node that sees any
    /// trace of an existing cluster (a member Up, past Up, or Down) never
    /// starts a cluster of its own: if that cluster was downed around it
    /// (say it joined through the losing side of a split), a cluster of its
    /// own would run beside the surviving side.
    fn may_admit_itself(&self, now: Instant) -> bool {
        if !self.config.may_start_cluster
            || self.gossip_rounds == 0
            || now.saturating_duration_since(self.started) < self.config.seed_self_admit_after
        {
            return false;
        }
        self.view.members.values().all(|m| {
            m.id == self.self_id
                || (m.status == MemberStatus::Joining
                    && (m.id > self.self_id
                        || !self.view.live.contains(&m.id)
                        || !self.view.may_start.contains(&m.id)))
        })
    }

    fn update_monitoring(&mut self, now: Instant) {
        let watching = !self.down.contains(&self.self_id) && self.lifecycle.is_monitored();
        if !watching {
            self.monitor.set_monitored(now, []);
        } else {
            let ring: BTreeSet<NodeId> = self
                .view
                .members
                .values()
                .filter(|m| m.status.is_monitored())
                .map(|m| m.id.clone())
                .collect();
            let unreachable: BTreeSet<NodeId> = self
                .view
                .members
                .values()
                .filter(|m| !m.reachability.is_reachable())
                .map(|m| m.id.clone())
                .collect();
            let peers = ring::watched(
                &ring,
                &self.self_id,
                self.config.monitored_ring_size,
                &unreachable,
            );
            self.monitor.set_monitored(now, peers);
        }
        self.monitor.evaluate(now);
    }

    /// The leader (oldest Up or Leaving member that nobody reports, or this
    /// node) admits the live, reachable joining members, and only while its
    /// view has converged (Akka's rule): no member short of Down is
    /// unreachable, and every other Up or Leaving member says it sees
    /// exactly the Joining and Up members this node sees. Admitting during
    /// a partition would let a joiner, or a restarted incarnation, tip one
    /// side into a false majority; the second condition also covers a cut
    /// not detected yet, since members on the far side of it cannot have
    /// seen a joiner that came after it. Joiners admitted together become Up
    /// one by one and stay in that set, so the admission holds while its
    /// news spreads (with the joiners alone in it, each joiner that became
    /// Up withdrew the admission of the others until every view agreed
    /// again: 50 nodes were admitted in waves 0.4 s apart).
    fn update_admissions(&mut self) {
        let before = std::mem::take(&mut self.admits);
        let converged = self
            .view
            .members
            .values()
            .all(|m| m.status.is_gone() || m.reachability.is_reachable());
        if !converged {
            return;
        }
        let leader = self
            .view
            .members
            .values()
            .filter(|m| matches!(m.status, MemberStatus::Up | MemberStatus::Leaving))
            .find(|m| m.reachability.is_reachable() || m.id == self.self_id)
            .map(|m| m.id.clone());
        if leader.as_ref() != Some(&self.self_id) {
            return;
        }
        if !self.every_member_sees_my_members() {
            return;
        }
        self.admits = self
            .view
            .members
            .values()
            .filter(|m| {
                m.status == MemberStatus::Joining
                    && m.reachability.is_reachable()
                    && self.view.live.contains(&m.id)
            })
            .map(|m| m.id.clone())
            .collect();
        // The admitted that are Up already keep their admission while
        // others of theirs still join, and the keys go together at the end:
        // with one change of the leader's keys per joiner (99 at 100 nodes,
        // each gossiped to everyone while the wave spread) most 100-node
        // runs ended in false unreachables; with one per wave most converge.
        if !self.admits.is_empty() {
            let members = &self.view.members;
            self.admits.extend(before.into_iter().filter(|id| {
                members
                    .get(id)
                    .is_some_and(|m| m.status == MemberStatus::Up)
            }));
        }
    }

    /// Every other Up or Leaving member publishes exactly the Joining and Up
    /// members this node sees (Akka's convergence, the leader's condition
    /// for admitting); a member of a build that predates
    /// `member.seen-members`, exactly the joiners.
    fn every_member_sees_my_members(&self) -> bool {
        let members = self.members_seen();
        // Only a member of an older build is compared on its joiners.
        let joiners = std::cell::OnceCell::new();
        self.view
            .members
            .values()
            .filter(|m| m.status.is_counted() && m.id != self.self_id)
            .all(|m| match self.view.seen_members(&m.id) {
                Some(seen) => seen == members,
                None => {
                    let joiners = joiners.get_or_init(|| self.joiners_seen());
                    self.view.seen_joiners(&m.id) == Some(joiners.as_str())
                }
            })
    }

    /// Some member publishes `member.seen-joiners` but not
    /// `member.seen-members`: a build that predates the latter, which reads
    /// only the former when it admits. Only then is `member.seen-joiners`
    /// published: its value changes each time a joiner becomes Up, and with
    /// 49 joiners admitted at once those changes alone were most of the
    /// gossip while the news spread (50 nodes converged in 1.6-2.7 s with
    /// it, 1.45-1.7 s without).
    fn an_older_build_is_present(&self) -> bool {
        self.view
            .members
            .keys()
            .any(|id| self.view.seen_joiners(id).is_some() && self.view.seen_members(id).is_none())
    }

    /// The Joining and Up members of this node's view, as
    /// `member.seen-members` says them.
    fn members_seen(&self) -> String {
        self.ids_in(&[MemberStatus::Joining, MemberStatus::Up])
    }

    /// The Joining members of this node's view, as `member.seen-joiners`
    /// says them.
    fn joiners_seen(&self) -> String {
        self.ids_in(&[MemberStatus::Joining])
    }

    fn ids_in(&self, statuses: &[MemberStatus]) -> String {
        keys::encode_ids(
            self.view
                .members
                .values()
                .filter(|m| statuses.contains(&m.status))
                .map(|m| &m.id),
        )
    }

    fn run_resolver(&mut self, now: Instant) {
        if self.down.contains(&self.self_id) || self.lifecycle.is_gone() {
            return;
        }
        let members = self.resolver_view();
        let to_down = self.resolver.step(now, &self.self_id, &members);
        if to_down.is_empty() {
            return;
        }
        for id in to_down {
            self.decided.entry(id.clone()).or_insert(None);
            self.down.insert(id);
        }
        self.rebuild_view();
    }

    fn forget_old_decisions(&mut self, now: Instant) {
        let retention = self.config.down_key_retention;
        let view = &self.view;
        self.decided.retain(|id, absent_since| {
            if view.members.contains_key(id) {
                *absent_since = None;
                return true;
            }
            let since = *absent_since.get_or_insert(now);
            now.saturating_duration_since(since) < retention
        });
    }

    fn effects(&mut self, now: Instant) -> Vec<MembershipEffect> {
        let mut effects = Vec::new();

        let desired = self.own_keys();
        for (key, value) in &desired {
            if self.published.get(key) != Some(value) {
                effects.push(MembershipEffect::SetKey {
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
        for key in self.published.keys() {
            if !desired.contains_key(key) {
                effects.push(MembershipEffect::DeleteKey { key: key.clone() });
            }
        }
        self.published = desired;

        let self_down = self.down.contains(&self.self_id);
        if !self_down && self.lifecycle.is_monitored() {
            effects.extend(
                self.monitor
                    .due(now)
                    .into_iter()
                    .map(|to| MembershipEffect::SendHeartbeat { to }),
            );
        }

        let events = member_events(&self.reported, &self.view.members);
        self.reported.clone_from(&self.view.members);
        effects.extend(events.into_iter().map(MembershipEffect::Event));
        effects.extend(
            self.singleton_changes()
                .into_iter()
                .map(MembershipEffect::Event),
        );

        if self_down {
            self.finished = true;
            effects.push(MembershipEffect::SelfDown);
        } else if self.lifecycle == MemberStatus::Removed {
            self.finished = true;
            effects.push(MembershipEffect::SelfRemoved);
        }
        effects
    }

    fn singleton_changes(&mut self) -> Vec<MemberEvent> {
        let mut roles: BTreeSet<Option<String>> = self.singletons.keys().cloned().collect();
        roles.insert(None);
        for member in self.view.members.values() {
            roles.extend(member.roles.iter().cloned().map(Some));
        }
        let mut events = Vec::new();
        for role in roles {
            let host = self.singleton_host(role.as_deref());
            let previous = self.singletons.insert(role.clone(), host.clone());
            if previous.flatten() != host {
                events.push(MemberEvent::SingletonHostChanged { role, host });
            }
        }
        events
    }
}
