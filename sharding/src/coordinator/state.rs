//! The coordinator state machine: `handle(now, input)` and `tick(now)`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::io::{CoordinatorEffect, CoordinatorInput};
use membership::AppVersion;

use super::regions::{Hosts, RegionEntry};
use super::table::{ShardState, ShardTable};
use crate::allocation::{AllocationStrategy, RegionShards};
use crate::config::ShardingConfig;
use crate::ids::{Epoch, RegionId, RequestId, ShardId};
use crate::lease::{shard_free_at, LatestGrant};
use crate::messages::{CoordinatorToRegion, Envelope, RegionToCoordinator};

static NO_SHARDS: BTreeSet<ShardId> = BTreeSet::new();

/// The shard coordinator of one entity type: a singleton that decides which
/// region hosts which shard, grants leases, and moves shards.
///
/// Sans-IO: no sockets, no clock; the driver passes `now`, feeds inputs and
/// performs the returned [`CoordinatorEffect`]s, and calls [`Self::tick`]
/// every `tick_interval`.
pub struct Coordinator {
    me: RegionId,
    epoch: Epoch,
    config: ShardingConfig,
    strategy: Box<dyn AllocationStrategy>,
    previous_coordinator_last_seen: Option<Instant>,
    quorum: bool,
    superseded: bool,
    next_request: u64,
    regions: BTreeMap<RegionId, RegionEntry>,
    table: ShardTable,
    /// Regions waiting for the home of a shard (`GetShardHome`).
    requesters: BTreeMap<ShardId, BTreeSet<RegionId>>,
    /// Free shards to allocate without waiting for a request (they had a home).
    reallocate: BTreeSet<ShardId>,
    /// Shards whose new home every region should hear about once started.
    announce: BTreeSet<ShardId>,
    next_rebalance: Instant,
    /// A rebalance after a change is under way: the strategy is asked every
    /// tick (topping up the moves in flight) until it has nothing to move.
    rebalancing: bool,
}

impl Coordinator {
    /// A new coordinator with epoch `epoch` (higher than every earlier one),
    /// running on node `me`, using the strategy the config names.
    ///
    /// `previous_coordinator_last_seen` is the last moment the previous
    /// coordinator's node was seen reachable, or `None` if no earlier
    /// coordinator can have granted a lease (the cluster's first). Until
    /// that grant has surely run out, shards that no region reports stay
    /// unallocated (rule 3).
    ///
    /// It starts without quorum: nothing is allocated, registered or renewed
    /// until the driver passes [`CoordinatorInput::Quorum`]`(true)`.
    pub fn new(
        me: RegionId,
        epoch: Epoch,
        config: ShardingConfig,
        now: Instant,
        previous_coordinator_last_seen: Option<Instant>,
    ) -> Self {
        let strategy = config.build_strategy();
        let grant = LatestGrant {
            own_last_answer: None,
            previous_coordinator_last_seen,
        };
        let initial = match shard_free_at(grant, config.lease, config.clock_drift_margin) {
            Some(free_at) => ShardState::LeaseRunningOut {
                holder: None,
                free_at,
            },
            None => ShardState::Free,
        };
        Self {
            me,
            epoch,
            table: ShardTable::new(config.number_of_shards, initial),
            next_rebalance: now + config.rebalance_interval,
            config,
            strategy,
            previous_coordinator_last_seen,
            quorum: false,
            superseded: false,
            next_request: 0,
            regions: BTreeMap::new(),
            requesters: BTreeMap::new(),
            reallocate: BTreeSet::new(),
            announce: BTreeSet::new(),
            rebalancing: false,
        }
    }

    /// Replaces the allocation strategy (for one of your own).
    pub fn with_strategy(mut self, strategy: Box<dyn AllocationStrategy>) -> Self {
        self.strategy = strategy;
        self
    }

    /// This coordinator's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Whether it currently believes its side has quorum.
    pub fn has_quorum(&self) -> bool {
        self.quorum
    }

    /// Whether a newer coordinator was seen (this one no longer acts).
    pub fn is_superseded(&self) -> bool {
        self.superseded
    }

    /// The state of one shard (`None` for a shard that does not exist).
    pub fn shard_state(&self, shard: ShardId) -> Option<&ShardState> {
        self.table.get(shard)
    }

    /// Where each running shard lives (shards in `Hosted` state).
    pub fn allocation(&self) -> BTreeMap<ShardId, RegionId> {
        self.table
            .iter()
            .filter_map(|(shard, state)| match state {
                ShardState::Hosted { region } => Some((shard, region.clone())),
                _ => None,
            })
            .collect()
    }

    /// Regions registered in this epoch whose lease has not lapsed.
    pub fn registered_regions(&self) -> Vec<RegionId> {
        self.regions
            .iter()
            .filter(|(_, entry)| entry.registered)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// This coordinator's last lease answer to `region`.
    pub fn last_lease_answer(&self, region: &RegionId) -> Option<Instant> {
        self.regions.get(region).and_then(|entry| entry.last_answer)
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, now: Instant, input: CoordinatorInput) -> Vec<CoordinatorEffect> {
        let mut out = Vec::new();
        if self.superseded {
            return out;
        }
        // Only a shard's own messages can make just that shard wanted and
        // free; anything else may free or enable many (the full scan).
        let scope = match &input {
            CoordinatorInput::Message(Envelope {
                body:
                    RegionToCoordinator::GetShardHome { shard }
                    | RegionToCoordinator::ShardStarted { shard, .. },
                ..
            }) => Some(*shard),
            _ => None,
        };
        match input {
            CoordinatorInput::Message(message) => self.on_message(now, message, &mut out),
            CoordinatorInput::MemberUp(region, app_version) => {
                self.on_member_up(now, region, app_version, &mut out)
            }
            CoordinatorInput::MemberLeaving(region) => {
                self.on_member_leaving(now, region, &mut out)
            }
            CoordinatorInput::MemberDown(region) => self.on_member_down(now, region, &mut out),
            CoordinatorInput::Quorum(quorum) => self.quorum = quorum,
        }
        self.allocate_wanted(now, scope, &mut out);
        out
    }

    /// Time-based work: leases that ran out, retransmissions, graceful
    /// leave, rebalancing. Call every `tick_interval`.
    pub fn tick(&mut self, now: Instant) -> Vec<CoordinatorEffect> {
        let mut out = Vec::new();
        if self.superseded {
            return out;
        }
        self.free_run_out_leases(now);
        self.lapse_silent_regions(now, &mut out);
        self.retransmit(now, &mut out);
        self.hand_off_leaving_regions(now, &mut out);
        self.rebalance(now, &mut out);
        self.allocate_wanted(now, None, &mut out);
        out
    }

    // ----- messages ---------------------------------------------------

    fn on_message(
        &mut self,
        now: Instant,
        message: Envelope<RegionToCoordinator>,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let Envelope {
            epoch,
            request_id,
            from,
            body,
        } = message;
        if epoch > self.epoch {
            // A region has seen a newer coordinator: stop acting at once.
            self.superseded = true;
            out.push(CoordinatorEffect::Superseded { by: epoch });
            return;
        }
        if self.regions.get(&from).is_some_and(|entry| entry.down) {
            // Down is final for this incarnation: nothing it says counts.
            return;
        }
        if epoch < self.epoch {
            // Stale epoch: changes nothing; tell the sender who runs now.
            self.send(out, from, CoordinatorToRegion::CoordinatorStarted);
            return;
        }
        if let RegionToCoordinator::Register {
            hosted,
            fenced,
            handing_off,
            proxy_only,
        } = body
        {
            let report = Report {
                hosted,
                fenced,
                handing_off,
                proxy_only,
            };
            self.on_register(now, from, request_id, report, out);
            return;
        }
        if !self
            .regions
            .get(&from)
            .is_some_and(|entry| entry.registered)
        {
            // Not registered (or lapsed): changes nothing; ask it to register.
            self.send(out, from, CoordinatorToRegion::CoordinatorStarted);
            return;
        }
        match body {
            RegionToCoordinator::Register { .. } => {}
            RegionToCoordinator::GetShardHome { shard } => {
                self.on_get_shard_home(now, from, shard, out)
            }
            RegionToCoordinator::ShardStarted { shard, host } => {
                self.on_shard_started(from, shard, host, out)
            }
            RegionToCoordinator::BeginHandoffAck { shard, begin } => {
                self.on_begin_handoff_ack(now, from, shard, begin, out)
            }
            RegionToCoordinator::ShardStopped { shard } => self.on_shard_stopped(from, shard),
            RegionToCoordinator::RenewLease => self.on_renew_lease(now, from, request_id, out),
        }
    }

    /// Register: duplicate (same request id) -> the same ack again, nothing
    /// changes; late (lower id than one processed) -> ignored; stale epoch
    /// -> CoordinatorStarted hint only (in `on_message`).
    fn on_register(
        &mut self,
        now: Instant,
        from: RegionId,
        request_id: RequestId,
        report: Report,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        if !self.quorum {
            // Rule 2: no lease without quorum; the region retries.
            return;
        }
        let entry = self.regions.entry(from.clone()).or_default();
        if let Some((last, ack_id, ack)) = &entry.last_register {
            if request_id < *last {
                return;
            }
            if request_id == *last {
                let message = Envelope {
                    epoch: self.epoch,
                    request_id: *ack_id,
                    from: self.me.clone(),
                    body: ack.clone(),
                };
                out.push(CoordinatorEffect::Send { to: from, message });
                return;
            }
        }
        entry.up = true;
        let joins = !entry.registered && !report.proxy_only;
        entry.registered = true;
        entry.proxy_only = report.proxy_only;
        entry.last_answer = Some(now);
        if joins {
            self.rebalance_after_change(now);
        }

        let mut confirmed = Vec::new();
        let mut drop = Vec::new();
        let claimed: BTreeSet<ShardId> = report.hosted.iter().copied().collect();
        let mut seen = BTreeSet::new();
        for shard in report.hosted.iter().chain(report.fenced.iter()).copied() {
            if !seen.insert(shard) || self.table.get(shard).is_none() {
                continue;
            }
            match self.resolve_claim(&from, shard, claimed.contains(&shard), report.proxy_only) {
                Claim::Confirm => confirmed.push(shard),
                Claim::Drop => drop.push(shard),
            }
        }
        for shard in report.handing_off.iter().copied() {
            if seen.insert(shard) {
                self.resolve_stopping(now, &from, shard, out);
            }
        }

        let ack_id = self.next_id();
        let ack = CoordinatorToRegion::RegisterAck {
            register: request_id,
            lease: self.config.lease,
            confirmed,
            drop,
        };
        if let Some(entry) = self.regions.get_mut(&from) {
            entry.last_register = Some((request_id, ack_id, ack.clone()));
        }
        let message = Envelope {
            epoch: self.epoch,
            request_id: ack_id,
            from: self.me.clone(),
            body: ack,
        };
        out.push(CoordinatorEffect::Send {
            to: from.clone(),
            message,
        });
        for shard in seen {
            self.answer_requesters(shard, out);
        }
        // The region ignores a HostShard older than this ack: re-issue the
        // ones it has not answered yet, newer than the ack.
        let pending: Vec<ShardId> = self
            .table
            .owned_by(&from)
            .into_iter()
            .flatten()
            .copied()
            .filter(|shard| matches!(self.table.get(*shard), Some(ShardState::Allocating { .. })))
            .collect();
        for shard in pending {
            self.send_host_shard(now, shard, from.clone(), out);
        }
    }

    /// A region reports running (`active`) or holding fenced a shard: keep
    /// it there or tell it to drop it (resolved deterministically from the
    /// table, whatever the arrival order).
    fn resolve_claim(
        &mut self,
        from: &RegionId,
        shard: ShardId,
        active: bool,
        proxy_only: bool,
    ) -> Claim {
        let Some(state) = self.table.get(shard) else {
            return Claim::Drop;
        };
        if proxy_only {
            return Claim::Drop;
        }
        match state {
            ShardState::Allocating { region, .. } if region == from => {
                self.table.set(
                    shard,
                    ShardState::Hosted {
                        region: from.clone(),
                    },
                );
                Claim::Confirm
            }
            ShardState::Hosted { region } if region == from => Claim::Confirm,
            // Half-done handoff from this region: it keeps running until `Handoff`.
            ShardState::BeginningHandoff { from: old, .. }
            | ShardState::HandingOff { from: old, .. }
                if old == from =>
            {
                Claim::Confirm
            }
            ShardState::Allocating { .. }
            | ShardState::Hosted { .. }
            | ShardState::BeginningHandoff { .. }
            | ShardState::HandingOff { .. } => Claim::Drop,
            // Nobody else can hold it under a valid lease (or a lease of an
            // earlier grant may still cover it): a region that runs it under
            // a valid lease is its only home. A fenced copy is dropped:
            // while its lease had lapsed, a previous coordinator may have
            // moved the shard and its new home written state that this copy
            // never saw (found by the simulation: a node paused past its
            // lease came back as the only survivor and served its old copy;
            // and a copy kept waiting out a predecessor's lease was given
            // the shard again after another home had written). Dropped, the
            // shard is allocated afresh and its entities start from the store.
            ShardState::Free | ShardState::LeaseRunningOut { .. } if active => {
                self.take_home(shard, from);
                Claim::Confirm
            }
            ShardState::Free | ShardState::LeaseRunningOut { .. } => Claim::Drop,
        }
    }

    fn take_home(&mut self, shard: ShardId, region: &RegionId) {
        self.table.set(
            shard,
            ShardState::Hosted {
                region: region.clone(),
            },
        );
        self.reallocate.remove(&shard);
    }

    /// A region reports a shard whose entities are stopping after a
    /// `Handoff` (perhaps from a previous coordinator): the handoff is
    /// completed; the shard is free once `ShardStopped` arrives.
    fn resolve_stopping(
        &mut self,
        now: Instant,
        from: &RegionId,
        shard: ShardId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let Some(state) = self.table.get(shard) else {
            return;
        };
        match state {
            ShardState::HandingOff { from: old, .. } if old == from => {}
            ShardState::Free | ShardState::LeaseRunningOut { .. } => {
                self.send_handoff(now, shard, from.clone(), out)
            }
            other if other.owner() == Some(from) => {
                self.send_handoff(now, shard, from.clone(), out)
            }
            // Another region owns it: that region's claim already won.
            _ => {}
        }
    }

    /// GetShardHome: duplicate or late -> answered again from the current
    /// table (or queued once more, a set); stale epoch -> hint only.
    fn on_get_shard_home(
        &mut self,
        now: Instant,
        from: RegionId,
        shard: ShardId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let Some(state) = self.table.get(shard) else {
            return;
        };
        match state {
            ShardState::Hosted { region } if *region != from => {
                let home = region.clone();
                self.send(out, from, CoordinatorToRegion::ShardHome { shard, home });
            }
            ShardState::Hosted { .. } => {
                // Its home asks: it lost track of it. Tell it again to host,
                // unless it may not host any more (leaving): then the
                // handoff of its shards frees this one, and it hears the
                // new home like any requester.
                let may_host = self.regions.get(&from).is_some_and(RegionEntry::may_host);
                if !may_host {
                    self.requesters.entry(shard).or_default().insert(from);
                } else if self.quorum {
                    self.send_host_shard(now, shard, from, out);
                }
            }
            _ => {
                self.requesters.entry(shard).or_default().insert(from);
            }
        }
    }

    /// ShardStarted: duplicate -> ignored (already Hosted); late (another
    /// HostShard, or the shard moved on) -> ignored; stale epoch -> hint only.
    fn on_shard_started(
        &mut self,
        from: RegionId,
        shard: ShardId,
        host: RequestId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let Some(ShardState::Allocating {
            region,
            host: expected,
            ..
        }) = self.table.get(shard)
        else {
            return;
        };
        if *region != from || *expected != host {
            return;
        }
        self.table.set(shard, ShardState::Hosted { region: from });
        self.answer_requesters(shard, out);
    }

    /// BeginHandoffAck: duplicate -> ignored (already counted); late (for
    /// another BeginHandoff) -> ignored; stale epoch -> hint only.
    fn on_begin_handoff_ack(
        &mut self,
        now: Instant,
        from: RegionId,
        shard: ShardId,
        begin: RequestId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let Some(ShardState::BeginningHandoff {
            begin: expected,
            waiting,
            from: old_home,
            ..
        }) = self.table.get_mut_same_owner(shard)
        else {
            return;
        };
        if *expected != begin {
            return;
        }
        waiting.remove(&from);
        if waiting.is_empty() {
            let old_home = old_home.clone();
            self.send_handoff(now, shard, old_home, out);
        }
    }

    /// ShardStopped: duplicate -> ignored (already free or allocated again);
    /// late (not the region we wait for) -> ignored; stale epoch -> hint only.
    fn on_shard_stopped(&mut self, from: RegionId, shard: ShardId) {
        let Some(ShardState::HandingOff { from: old_home, .. }) = self.table.get(shard) else {
            return;
        };
        if *old_home != from {
            return;
        }
        self.table.set(shard, ShardState::Free);
        self.reallocate.insert(shard);
        self.announce.insert(shard);
    }

    /// RenewLease: duplicate or late -> granted again (the region counts
    /// from its own send time, so a second grant adds nothing unsafe; our
    /// view only grows more conservative); stale epoch -> hint only.
    fn on_renew_lease(
        &mut self,
        now: Instant,
        from: RegionId,
        renewal: RequestId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        if !self.quorum {
            // Rule 2: without quorum the lease runs out and the region fences.
            return;
        }
        if let Some(entry) = self.regions.get_mut(&from) {
            entry.last_answer = Some(now);
        }
        let lease = self.config.lease;
        self.send(
            out,
            from,
            CoordinatorToRegion::LeaseGranted { renewal, lease },
        );
    }

    // ----- membership -------------------------------------------------

    /// MemberUp: duplicate -> CoordinatorStarted again if still unregistered
    /// (the version is the incarnation's, the same every time); after Down
    /// -> ignored (Down is final).
    fn on_member_up(
        &mut self,
        now: Instant,
        region: RegionId,
        app_version: Option<AppVersion>,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let entry = self.regions.entry(region.clone()).or_default();
        if entry.down {
            return;
        }
        entry.up = true;
        entry.app_version = app_version;
        if !entry.registered {
            entry.started_sent_at = Some(now);
            self.send(out, region, CoordinatorToRegion::CoordinatorStarted);
        }
    }

    /// MemberLeaving: duplicate -> CoordinatorStarted again if still
    /// unregistered, nothing else changes; after Down -> ignored.
    fn on_member_leaving(
        &mut self,
        now: Instant,
        region: RegionId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let entry = self.regions.entry(region.clone()).or_default();
        if entry.down {
            return;
        }
        entry.leaving = true;
        // It must register (it may host nothing new) so that its shards
        // can be handed off: a coordinator that starts while it leaves
        // asks it at once rather than wait for its next lease renewal.
        entry.up = true;
        if !entry.registered {
            entry.started_sent_at = Some(now);
            self.send(out, region, CoordinatorToRegion::CoordinatorStarted);
        }
        self.rebalance_after_change(now);
        self.hand_off_leaving_regions(now, out);
    }

    /// MemberDown: duplicate -> no change (the shards already wait for the lease).
    fn on_member_down(&mut self, now: Instant, region: RegionId, out: &mut Vec<CoordinatorEffect>) {
        let entry = self.regions.entry(region.clone()).or_default();
        if entry.down {
            return;
        }
        entry.down = true;
        entry.registered = false;
        let grant = LatestGrant {
            own_last_answer: entry.last_answer,
            previous_coordinator_last_seen: self.previous_coordinator_last_seen,
        };
        self.rebalance_after_change(now);
        let free_at = shard_free_at(grant, self.config.lease, self.config.clock_drift_margin);
        let owned: Vec<ShardId> = self
            .table
            .owned_by(&region)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        for shard in owned {
            self.release(shard, Some(region.clone()), free_at.filter(|at| *at > now));
        }
        for waiting in self.requesters.values_mut() {
            waiting.remove(&region);
        }
        self.forget_acks_from(now, &region, out);
    }

    /// The shard's holder can no longer renew: it is free at `free_at`
    /// (`None`: now), and goes to a new home then.
    fn release(&mut self, shard: ShardId, holder: Option<RegionId>, free_at: Option<Instant>) {
        let state = match free_at {
            Some(free_at) => ShardState::LeaseRunningOut { holder, free_at },
            None => ShardState::Free,
        };
        self.table.set(shard, state);
        self.reallocate.insert(shard);
        self.announce.insert(shard);
    }

    /// A region will never ack: stop waiting for it in every handoff.
    fn forget_acks_from(
        &mut self,
        now: Instant,
        region: &RegionId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let moving: Vec<ShardId> = self.table.moving().iter().copied().collect();
        for shard in moving {
            if let Some(ShardState::BeginningHandoff { waiting, from, .. }) =
                self.table.get_mut_same_owner(shard)
            {
                waiting.remove(region);
                if waiting.is_empty() {
                    let from = from.clone();
                    self.send_handoff(now, shard, from, out);
                }
            }
        }
    }

    // ----- time ---------------------------------------------------------

    fn free_run_out_leases(&mut self, now: Instant) {
        let due: Vec<(ShardId, bool)> = self
            .table
            .iter()
            .filter_map(|(shard, state)| match state {
                ShardState::LeaseRunningOut { holder, free_at } if *free_at <= now => {
                    Some((shard, holder.is_some()))
                }
                _ => None,
            })
            .collect();
        for (shard, had_home) in due {
            self.table.set(shard, ShardState::Free);
            if had_home {
                self.reallocate.insert(shard);
            }
        }
    }

    /// A region that has not renewed for a whole lease plus margin has
    /// surely fenced itself: its shards are free and it must register again.
    fn lapse_silent_regions(&mut self, now: Instant, out: &mut Vec<CoordinatorEffect>) {
        let lapsed: Vec<RegionId> = self
            .regions
            .iter()
            .filter(|(_, entry)| entry.registered && !entry.proxy_only)
            .filter(|(_, entry)| {
                let grant = LatestGrant {
                    own_last_answer: entry.last_answer,
                    previous_coordinator_last_seen: self.previous_coordinator_last_seen,
                };
                shard_free_at(grant, self.config.lease, self.config.clock_drift_margin)
                    .is_some_and(|free_at| free_at <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for region in lapsed {
            if let Some(entry) = self.regions.get_mut(&region) {
                // It must register again with a newer Register; the highest
                // id processed is kept so that a late old report stays late.
                entry.registered = false;
            }
            let owned: Vec<ShardId> = self
                .table
                .owned_by(&region)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default();
            for shard in owned {
                self.release(shard, Some(region.clone()), None);
            }
            self.forget_acks_from(now, &region, out);
        }
    }

    fn retransmit(&mut self, now: Instant, out: &mut Vec<CoordinatorEffect>) {
        let retry = self.config.retry_interval;
        let mut to_send = Vec::new();
        let mut handoffs = Vec::new();
        for index in 0..self.table.len() {
            let shard = ShardId(index as u32);
            let Some(state) = self.table.get_mut_same_owner(shard) else {
                continue;
            };
            match state {
                ShardState::Allocating {
                    region,
                    host,
                    sent_at,
                } if *sent_at + retry <= now => {
                    *sent_at = now;
                    to_send.push((
                        region.clone(),
                        *host,
                        CoordinatorToRegion::HostShard { shard },
                    ));
                }
                ShardState::BeginningHandoff {
                    from,
                    begin,
                    waiting,
                    began_at,
                    sent_at,
                } => {
                    if *began_at + self.config.handoff_timeout <= now {
                        handoffs.push((shard, from.clone()));
                    } else if *sent_at + retry <= now {
                        *sent_at = now;
                        for region in waiting.iter() {
                            to_send.push((
                                region.clone(),
                                *begin,
                                CoordinatorToRegion::BeginHandoff { shard },
                            ));
                        }
                    }
                }
                ShardState::HandingOff {
                    from,
                    handoff,
                    sent_at,
                } if *sent_at + retry <= now => {
                    *sent_at = now;
                    to_send.push((
                        from.clone(),
                        *handoff,
                        CoordinatorToRegion::Handoff { shard },
                    ));
                }
                _ => {}
            }
        }
        for (to, request_id, body) in to_send {
            self.send_with_id(out, to, request_id, body);
        }
        for (shard, from) in handoffs {
            self.send_handoff(now, shard, from, out);
        }
        let unregistered: Vec<RegionId> = self
            .regions
            .iter_mut()
            .filter(|(_, entry)| entry.up && !entry.down && !entry.registered)
            .filter(|(_, entry)| entry.started_sent_at.is_none_or(|at| at + retry <= now))
            .map(|(id, entry)| {
                entry.started_sent_at = Some(now);
                id.clone()
            })
            .collect();
        for region in unregistered {
            self.send(out, region, CoordinatorToRegion::CoordinatorStarted);
        }
    }

    fn hand_off_leaving_regions(&mut self, now: Instant, out: &mut Vec<CoordinatorEffect>) {
        let leaving: Vec<RegionId> = self
            .regions
            .iter()
            .filter(|(_, entry)| entry.leaving && !entry.down && !entry.handed_off_reported)
            .map(|(id, _)| id.clone())
            .collect();
        for region in leaving {
            let owned: Vec<ShardId> = self
                .table
                .owned_by(&region)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default();
            // Before its `Register` this coordinator does not know what the
            // region hosts: "owns nothing" would be a guess.
            let reported = self.regions.get(&region).is_some_and(|e| e.registered);
            if owned.is_empty() && reported {
                if let Some(entry) = self.regions.get_mut(&region) {
                    entry.handed_off_reported = true;
                }
                out.push(CoordinatorEffect::RegionHandedOff { region });
                continue;
            }
            if !self.quorum {
                continue;
            }
            for shard in owned {
                match self.table.get(shard) {
                    Some(ShardState::Hosted { .. }) => {
                        self.begin_handoff(now, shard, region.clone(), out)
                    }
                    // Allocated before it began to leave: no other region
                    // routes to it yet, so `Handoff` alone takes it back
                    // (the region stops it if it started it, and a
                    // `HostShard` still on its way is older, so ignored).
                    Some(ShardState::Allocating { .. }) => {
                        self.send_handoff(now, shard, region.clone(), out)
                    }
                    _ => {}
                }
            }
        }
    }

    /// A region registered, is leaving or went Down: rebalance once the
    /// changes have settled for `rebalance_after_change` (every change
    /// pushes the round back, so that nodes joining together are moved to
    /// together and no shard moves twice).
    fn rebalance_after_change(&mut self, now: Instant) {
        self.next_rebalance = now + self.config.rebalance_after_change;
    }

    fn rebalance(&mut self, now: Instant, out: &mut Vec<CoordinatorEffect>) {
        if now < self.next_rebalance && !self.rebalancing {
            return;
        }
        if now >= self.next_rebalance {
            self.next_rebalance = now + self.config.rebalance_interval;
            self.rebalancing = true;
        }
        if !self.quorum {
            return;
        }
        let hosts = self.hosts();
        if hosts.all.len() < 2 {
            self.rebalancing = false;
            return;
        }
        let moves = self.rebalance_moves(&hosts);
        if moves.is_empty() && self.table.moving().is_empty() && self.reallocate.is_empty() {
            self.rebalancing = false;
        }
        for shard in moves {
            if let Some(ShardState::Hosted { region }) = self.table.get(shard) {
                let region = region.clone();
                self.begin_handoff(now, shard, region, out);
            }
        }
    }

    /// The shards a rebalance round frees. A freed shard goes to one of
    /// the newest regions (see `allocate_wanted`), so the strategy is asked
    /// twice, within one limit of moves in flight:
    /// 1. to even out the newest regions among themselves;
    /// 2. while older regions may host too (a rolling update), over every
    ///    region, of which only the moves away from an older region are
    ///    kept: a newest region below its fair share of all shards takes
    ///    them from older ones, as a joining region would, and a shard on a
    ///    newest region never moves for the older ones' sake.
    fn rebalance_moves(&mut self, hosts: &Hosts) -> BTreeSet<ShardId> {
        let mut moves = {
            let view = view(&self.table, &hosts.newest);
            self.strategy.rebalance(&view, self.table.moving())
        };
        if hosts.mixed() {
            let moving: BTreeSet<ShardId> = self.table.moving().union(&moves).copied().collect();
            let view = view(&self.table, &hosts.all);
            let from_older = self
                .strategy
                .rebalance(&view, &moving)
                .into_iter()
                .filter(|shard| {
                    matches!(self.table.get(*shard), Some(ShardState::Hosted { region })
                        if !hosts.newest.contains(region))
                });
            moves.extend(from_older);
        }
        moves
    }

    // ----- allocation and handoff steps ---------------------------------

    /// Allocates every free shard that is wanted: requested, or moved away
    /// from a home it had. `only` limits the requested ones looked at to one
    /// shard, so that a stream of requests costs linear time, not quadratic.
    fn allocate_wanted(
        &mut self,
        now: Instant,
        only: Option<ShardId>,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        if !self.quorum {
            return;
        }
        let requested = match only {
            Some(shard) => self.requesters.range(shard..=shard),
            None => self.requesters.range(..),
        };
        let wanted: Vec<ShardId> = requested
            .map(|(shard, _)| shard)
            .chain(self.reallocate.iter())
            .copied()
            .filter(|shard| matches!(self.table.get(*shard), Some(ShardState::Free)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return;
        }
        // New and moved shards go to the newest regions only.
        let Hosts { newest: hosts, .. } = self.hosts();
        if hosts.is_empty() {
            return;
        }
        for shard in wanted {
            let requester = self
                .requesters
                .get(&shard)
                .and_then(|set| set.iter().next())
                .cloned();
            let choice = {
                let view = view(&self.table, &hosts);
                self.strategy.allocate(shard, requester.as_ref(), &view)
            };
            // A strategy may only pick a region that may host.
            let Some(region) = choice.filter(|region| hosts.contains(region)) else {
                continue;
            };
            self.reallocate.remove(&shard);
            self.send_host_shard(now, shard, region, out);
        }
    }

    fn send_host_shard(
        &mut self,
        now: Instant,
        shard: ShardId,
        region: RegionId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let host = self.next_id();
        self.table.set(
            shard,
            ShardState::Allocating {
                region: region.clone(),
                host,
                sent_at: now,
            },
        );
        self.send_with_id(out, region, host, CoordinatorToRegion::HostShard { shard });
    }

    fn begin_handoff(
        &mut self,
        now: Instant,
        shard: ShardId,
        from: RegionId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let waiting: BTreeSet<RegionId> = self
            .regions
            .iter()
            .filter(|(_, entry)| entry.registered && !entry.down)
            .map(|(id, _)| id.clone())
            .collect();
        if waiting.is_empty() {
            self.send_handoff(now, shard, from, out);
            return;
        }
        let begin = self.next_id();
        for region in &waiting {
            self.send_with_id(
                out,
                region.clone(),
                begin,
                CoordinatorToRegion::BeginHandoff { shard },
            );
        }
        self.table.set(
            shard,
            ShardState::BeginningHandoff {
                from,
                begin,
                waiting,
                began_at: now,
                sent_at: now,
            },
        );
    }

    fn send_handoff(
        &mut self,
        now: Instant,
        shard: ShardId,
        from: RegionId,
        out: &mut Vec<CoordinatorEffect>,
    ) {
        let handoff = self.next_id();
        self.table.set(
            shard,
            ShardState::HandingOff {
                from: from.clone(),
                handoff,
                sent_at: now,
            },
        );
        self.send_with_id(out, from, handoff, CoordinatorToRegion::Handoff { shard });
    }

    /// Once a shard runs somewhere: answer whoever asked, and after a move
    /// tell every registered region.
    fn answer_requesters(&mut self, shard: ShardId, out: &mut Vec<CoordinatorEffect>) {
        let Some(ShardState::Hosted { region }) = self.table.get(shard) else {
            return;
        };
        let home = region.clone();
        let mut told = self.requesters.remove(&shard).unwrap_or_default();
        if self.announce.remove(&shard) {
            told.extend(
                self.regions
                    .iter()
                    .filter(|(_, entry)| entry.registered && !entry.down)
                    .map(|(id, _)| id.clone()),
            );
        }
        for region in told.into_iter().filter(|region| *region != home) {
            let home = home.clone();
            self.send(out, region, CoordinatorToRegion::ShardHome { shard, home });
        }
    }

    // ----- helpers --------------------------------------------------------

    /// Regions that may host, oldest first, and the newest of them.
    fn hosts(&self) -> Hosts {
        Hosts::of(&self.regions)
    }

    fn next_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn send(&mut self, out: &mut Vec<CoordinatorEffect>, to: RegionId, body: CoordinatorToRegion) {
        let id = self.next_id();
        self.send_with_id(out, to, id, body);
    }

    fn send_with_id(
        &self,
        out: &mut Vec<CoordinatorEffect>,
        to: RegionId,
        request_id: RequestId,
        body: CoordinatorToRegion,
    ) {
        out.push(CoordinatorEffect::Send {
            to,
            message: Envelope {
                epoch: self.epoch,
                request_id,
                from: self.me.clone(),
                body,
            },
        });
    }
}

/// The regions in `hosts` with their shards, for the strategy.
fn view<'a>(table: &'a ShardTable, hosts: &'a [RegionId]) -> Vec<RegionShards<'a>> {
    hosts
        .iter()
        .map(|region| RegionShards {
            region,
            shards: table.owned_by(region).unwrap_or(&NO_SHARDS),
        })
        .collect()
}

/// A region's `Register` report.
struct Report {
    hosted: Vec<ShardId>,
    fenced: Vec<ShardId>,
    handing_off: Vec<ShardId>,
    proxy_only: bool,
}

/// The answer to one reported shard.
enum Claim {
    Confirm,
    Drop,
}
