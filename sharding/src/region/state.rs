//! The region state machine: `handle(now, input)` and `tick(now)`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::io::{RegionEffect, RegionInput, StopReason};
use super::lease::LeaseClock;
use super::shard::{Home, Order, ShardEntry, ShardStatus};
use crate::config::ShardingConfig;
use crate::error::DeliveryError;
use crate::hash::shard_id;
use crate::ids::{Epoch, RegionId, RequestId, ShardId};
use crate::messages::{
    CoordinatorToRegion, Delivery, Envelope, RegionToCoordinator, RegionToRegion,
};

/// What `route` does with one message.
enum Next {
    Deliver,
    Bounce(RegionId),
    Forward(RegionId),
    Buffer,
}

/// Where a message to route came from.
enum Origin {
    /// A local sender, a bounced message, or this region's own buffer.
    Local,
    /// Another region that believes this one is the home.
    Peer(RegionId),
}

/// The shard region of one entity type on one node: routes messages to
/// shard homes, hosts the shards the coordinator gives it, and runs them
/// only under a valid lease.
///
/// Sans-IO: the driver passes `now`, feeds [`RegionInput`]s, performs the
/// returned [`RegionEffect`]s and calls [`Self::tick`] every `tick_interval`.
pub struct Region<P> {
    me: RegionId,
    config: ShardingConfig,
    proxy_only: bool,
    epoch: Epoch,
    /// The node of the coordinator of `epoch`. Two coordinators can pick
    /// the same epoch (their hosts' generations may be equal and neither saw
    /// the other's epoch); `(epoch, node)` then orders them, so that this
    /// region follows exactly one and ignores the other.
    coordinator: Option<RegionId>,
    registered: bool,
    side_survives: bool,
    lease: LeaseClock,
    /// The latest `Register` sent in this epoch and when.
    pub(super) last_register: Option<(RequestId, Instant)>,
    /// The `RegisterAck` that made the current registration. A `HostShard`
    /// older than it was decided under an earlier registration, perhaps
    /// before the coordinator gave the shard to someone else: ignored.
    registered_by: Option<(Epoch, RequestId)>,
    next_request: u64,
    shards: BTreeMap<ShardId, ShardEntry<P>>,
    /// Members known to be Down. Down is final for an incarnation, so none
    /// of them is a shard home again, whatever a `ShardHome` sent before
    /// the coordinator learnt it says: a message forwarded there would be
    /// lost with nobody left to answer `NotHere` (rule 5). One entry per
    /// Down incarnation, like the coordinator's region table.
    down: BTreeSet<RegionId>,
    /// Bumped by every input that may change a shard's home (see
    /// [`Self::homes_version`]).
    homes_version: u64,
}

impl<P> Region<P> {
    /// A region on node `me`; a `proxy_only` region hosts nothing and only routes.
    pub fn new(me: RegionId, config: ShardingConfig, proxy_only: bool) -> Self {
        Self {
            me,
            config,
            proxy_only,
            epoch: Epoch(0),
            coordinator: None,
            registered: false,
            side_survives: true,
            lease: LeaseClock::default(),
            last_register: None,
            registered_by: None,
            next_request: 0,
            shards: BTreeMap::new(),
            down: BTreeSet::new(),
            homes_version: 0,
        }
    }

    /// This region's id (its node).
    pub fn id(&self) -> &RegionId {
        &self.me
    }

    /// A proxy region hosts nothing and only routes.
    pub fn is_proxy_only(&self) -> bool {
        self.proxy_only
    }

    /// The highest coordinator epoch seen.
    pub fn coordinator_epoch(&self) -> Epoch {
        self.epoch
    }

    /// Registered with the coordinator of [`Self::coordinator_epoch`].
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// The end of the lease, on this region's clock.
    pub fn lease_valid_until(&self) -> Option<Instant> {
        self.lease.valid_until()
    }

    /// How this region sees a shard (`None`: never heard of it).
    pub fn shard_status(&self, shard: ShardId) -> Option<ShardStatus> {
        self.shards.get(&shard).map(|entry| entry.home.status())
    }

    /// Whether this region would deliver to `shard` at `now`: it runs it
    /// and holds a valid lease. The single-writer invariant is "at most one
    /// region serves a shard at any time". While it does, a local `Send` to
    /// an entity of `shard` (its [`shard_id`]) is exactly one `DeliverLocal`:
    /// the driver's fast path, which skips [`Region::handle`] for it.
    pub fn serves(&self, shard: ShardId, now: Instant) -> bool {
        self.may_deliver(now)
            && self
                .shards
                .get(&shard)
                .is_some_and(|entry| entry.home == Home::Active)
    }

    /// Whether this region may run work of `shard` while its lease holds:
    /// the shard lives here (active, or stopping for a handoff) and the
    /// region is registered on a side that survives. With
    /// [`Self::lease_valid_until`], this is what the driver's gates enforce
    /// on every poll of an entity's step.
    pub fn runs(&self, shard: ShardId) -> bool {
        self.registered
            && self.side_survives
            && self
                .shards
                .get(&shard)
                .is_some_and(|entry| matches!(entry.home, Home::Active | Home::Stopping))
    }

    /// Changes whenever a shard's home may have changed: after every tick
    /// and every input other than a local `Send` or a peer's `Deliver`
    /// (which only route). While it stays the same, [`Self::remote_homes`]
    /// stays true.
    pub fn homes_version(&self) -> u64 {
        self.homes_version
    }

    /// The shards whose home is another region, with that region: a local
    /// `Send` to one of their entities is exactly one `Deliver` to it, in
    /// the envelope [`Envelope::entity_traffic`] builds from this region's
    /// id and epoch. The driver publishes them so that callers can send
    /// there without its help.
    pub fn remote_homes(&self) -> impl Iterator<Item = (ShardId, &RegionId)> {
        self.shards
            .iter()
            .filter_map(|(shard, entry)| match &entry.home {
                Home::Remote(home) => Some((*shard, home)),
                _ => None,
            })
    }

    /// Shards whose state lives here (active, fenced or stopping).
    pub fn local_shards(&self) -> Vec<ShardId> {
        self.shards
            .iter()
            .filter(|(_, entry)| entry.home.is_local())
            .map(|(shard, _)| *shard)
            .collect()
    }

    /// Messages waiting in the buffer of `shard`.
    pub fn buffered(&self, shard: ShardId) -> usize {
        self.shards
            .get(&shard)
            .map_or(0, |entry| entry.buffer.len())
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, now: Instant, input: RegionInput<P>) -> Vec<RegionEffect<P>> {
        let mut out = Vec::new();
        self.check_lease(now);
        let only_routes = matches!(
            input,
            RegionInput::Send { .. }
                | RegionInput::FromRegion(Envelope {
                    body: RegionToRegion::Deliver(_),
                    ..
                })
        );
        if !only_routes {
            self.homes_version += 1;
        }
        match input {
            RegionInput::Send {
                entity,
                payload,
                reply_to,
            } => {
                let shard = shard_id(&entity, self.config.number_of_shards);
                let delivery = Delivery {
                    shard,
                    entity,
                    payload,
                    reply_to,
                    hops: 0,
                };
                self.route(now, delivery, Origin::Local, &mut out);
            }
            RegionInput::FromRegion(message) => self.on_region_message(now, message, &mut out),
            RegionInput::FromCoordinator(message) => {
                self.on_coordinator_message(now, message, &mut out)
            }
            RegionInput::ShardEntitiesStopped { shard } => {
                self.on_entities_stopped(now, shard, &mut out)
            }
            RegionInput::MemberDown(region) => self.on_member_down(now, &region, &mut out),
            RegionInput::FenceAll => {
                self.side_survives = false;
                self.fence_all();
            }
            RegionInput::SideSurvives => {
                self.side_survives = true;
                self.register_if_needed(now, &mut out);
            }
        }
        out
    }

    /// Time-based work: lease expiry, renewals, (re-)registration, asking
    /// again for unknown homes. Call every `tick_interval`.
    pub fn tick(&mut self, now: Instant) -> Vec<RegionEffect<P>> {
        self.homes_version += 1;
        let mut out = Vec::new();
        self.check_lease(now);
        self.register_if_needed(now, &mut out);
        if self.registered && !self.proxy_only {
            self.lease.prune(now, self.config.lease, false);
            if self
                .lease
                .renewal_due(now, self.config.lease_renewal_interval)
            {
                let renewal = self.next_id();
                self.lease.renewal_sent(renewal, now);
                self.send_to_coordinator_with_id(
                    &mut out,
                    renewal,
                    RegionToCoordinator::RenewLease,
                );
            }
        }
        let retry = self.config.retry_interval;
        let to_ask: Vec<ShardId> = self
            .shards
            .iter()
            .filter(|(_, entry)| !entry.buffer.is_empty())
            .filter(|(_, entry)| match entry.home {
                Home::Unknown { asked_at } => asked_at.is_none_or(|at| at + retry <= now),
                _ => false,
            })
            .map(|(shard, _)| *shard)
            .collect();
        for shard in to_ask {
            self.ask_home(now, shard, &mut out);
        }
        out
    }

    // ----- routing ----------------------------------------------------

    fn may_deliver(&self, now: Instant) -> bool {
        self.registered && self.side_survives && self.lease.is_valid(now)
    }

    /// Delivers, forwards, bounces or buffers one message (rule 5: an
    /// overflowing buffer is an error for the sender, never a silent drop).
    fn route(
        &mut self,
        now: Instant,
        delivery: Delivery<P>,
        origin: Origin,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        let shard = delivery.shard;
        if shard.0 >= self.config.number_of_shards {
            let error = DeliveryError::NoSuchShard {
                shard,
                number_of_shards: self.config.number_of_shards,
            };
            out.push(failed(delivery, error));
            return;
        }
        let may_deliver = self.may_deliver(now);
        let entry = self.shards.entry(shard).or_default();
        let next = match (&entry.home, origin) {
            (Home::Active, _) if may_deliver => Next::Deliver,
            // Not the home: the message goes back whole to the sender.
            (home, Origin::Peer(peer)) if !home.is_local() => Next::Bounce(peer),
            (Home::Remote(home), Origin::Local) => Next::Forward(home.clone()),
            _ => Next::Buffer,
        };
        match next {
            Next::Deliver => out.push(RegionEffect::DeliverLocal(delivery)),
            Next::Bounce(peer) => self.send_to_region(out, peer, RegionToRegion::NotHere(delivery)),
            Next::Forward(home) => {
                self.send_to_region(out, home, RegionToRegion::Deliver(delivery))
            }
            Next::Buffer => {
                if entry.buffer.len() >= self.config.buffer_size {
                    let error = DeliveryError::BufferFull {
                        shard,
                        capacity: self.config.buffer_size,
                    };
                    out.push(failed(delivery, error));
                    return;
                }
                entry.buffer.push_back(delivery);
                if matches!(entry.home, Home::Unknown { asked_at: None }) {
                    self.ask_home(now, shard, out);
                }
            }
        }
    }

    /// Routes everything buffered for `shard` again (after its state changed).
    fn flush(&mut self, now: Instant, shard: ShardId, out: &mut Vec<RegionEffect<P>>) {
        let Some(entry) = self.shards.get_mut(&shard) else {
            return;
        };
        let waiting = std::mem::take(&mut entry.buffer);
        for delivery in waiting {
            self.route(now, delivery, Origin::Local, out);
        }
    }

    fn ask_home(&mut self, now: Instant, shard: ShardId, out: &mut Vec<RegionEffect<P>>) {
        if !self.registered {
            // Asked once registered (the coordinator ignores the unregistered).
            return;
        }
        if let Some(entry) = self.shards.get_mut(&shard) {
            entry.home = Home::Unknown {
                asked_at: Some(now),
            };
        }
        self.send_to_coordinator(out, RegionToCoordinator::GetShardHome { shard });
    }

    /// Deliver: duplicate -> delivered again (at-least-once; entities
    /// de-duplicate by idempotency key); late (we are no longer the home) ->
    /// `NotHere`, the sender re-routes; epoch: not checked (routing only).
    /// NotHere: duplicate or late -> the message is routed again (hops
    /// bound any loop); epoch: not checked.
    fn on_region_message(
        &mut self,
        now: Instant,
        message: Envelope<RegionToRegion<P>>,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        let from = message.from;
        match message.body {
            RegionToRegion::Deliver(delivery) => self.route(now, delivery, Origin::Peer(from), out),
            RegionToRegion::NotHere(mut delivery) => {
                if let Some(entry) = self.shards.get_mut(&delivery.shard) {
                    if entry.home == Home::Remote(from.clone()) {
                        entry.home = Home::Unknown { asked_at: None };
                    }
                }
                delivery.hops = delivery.hops.saturating_add(1);
                if delivery.hops > self.config.max_hops {
                    let error = DeliveryError::TooManyHops {
                        shard: delivery.shard,
                        hops: delivery.hops,
                    };
                    out.push(failed(delivery, error));
                    return;
                }
                self.route(now, delivery, Origin::Local, out);
            }
        }
    }

    // ----- coordinator messages -----------------------------------------

    fn on_coordinator_message(
        &mut self,
        now: Instant,
        message: Envelope<CoordinatorToRegion>,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        let current = (self.epoch, self.coordinator.as_ref());
        let incoming = (message.epoch, Some(&message.from));
        if incoming < current {
            // Stale epoch (or the loser of an epoch tie): a coordinator that
            // has been replaced; ignored.
            return;
        }
        if incoming > current {
            self.coordinator = Some(message.from.clone());
            self.adopt_epoch(now, message.epoch);
        }
        let (epoch, id) = (message.epoch, message.request_id);
        match message.body {
            CoordinatorToRegion::CoordinatorStarted => self.register_if_needed(now, out),
            CoordinatorToRegion::RegisterAck {
                register,
                lease,
                confirmed,
                drop,
            } => self.on_register_ack(now, (epoch, id), register, lease, confirmed, drop, out),
            CoordinatorToRegion::ShardHome { shard, home } => {
                self.on_shard_home(now, (epoch, id), shard, home, out)
            }
            CoordinatorToRegion::HostShard { shard } => {
                self.on_host_shard(now, (epoch, id), shard, out)
            }
            CoordinatorToRegion::BeginHandoff { shard } => {
                self.on_begin_handoff((epoch, id), shard, out)
            }
            CoordinatorToRegion::Handoff { shard } => self.on_handoff(now, (epoch, id), shard, out),
            CoordinatorToRegion::LeaseGranted { renewal, lease } => {
                // Duplicate: no change (the grant was consumed); late: counted
                // from its own send time if remembered, never shortens;
                // stale epoch: ignored above; after the lease lapsed: ignored
                // (the region must register again).
                if self.registered {
                    self.lease.renewal_granted(renewal, lease);
                }
            }
        }
    }

    /// A newer coordinator: register with it; forget cached homes (they may
    /// be what a half-done handoff changed) and pending renewals. The lease
    /// granted by the old coordinator stays valid until it runs out.
    fn adopt_epoch(&mut self, now: Instant, epoch: Epoch) {
        self.epoch = epoch;
        self.registered = false;
        self.last_register = None;
        self.lease.prune(now, self.config.lease, true);
        for entry in self.shards.values_mut() {
            if !entry.home.is_local() {
                entry.home = Home::Unknown { asked_at: None };
            }
        }
    }

    /// RegisterAck: duplicate or late (not our latest Register) -> ignored;
    /// stale epoch -> ignored. Per shard, an instruction older than the
    /// newest seen for that shard is ignored.
    #[allow(clippy::too_many_arguments)]
    fn on_register_ack(
        &mut self,
        now: Instant,
        instruction: (Epoch, RequestId),
        register: RequestId,
        lease: std::time::Duration,
        confirmed: Vec<ShardId>,
        drop: Vec<ShardId>,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        let Some((latest, sent_at)) = self.last_register else {
            return;
        };
        if latest != register {
            return;
        }
        self.last_register = None;
        self.lease.registered(sent_at, lease);
        if !self.lease.is_valid(now) {
            // Answered too late to count: register again on the next tick.
            return;
        }
        self.registered = true;
        self.registered_by = Some(instruction);
        let may_deliver = self.may_deliver(now);
        for shard in confirmed {
            let Some(entry) = self.shards.get_mut(&shard) else {
                continue;
            };
            if entry.order(instruction.0, instruction.1) != Order::New {
                continue;
            }
            if matches!(entry.home, Home::Active | Home::Fenced) {
                entry.home = if may_deliver {
                    Home::Active
                } else {
                    Home::Fenced
                };
            }
        }
        for shard in drop {
            let Some(entry) = self.shards.get_mut(&shard) else {
                continue;
            };
            if entry.order(instruction.0, instruction.1) != Order::New {
                continue;
            }
            if matches!(entry.home, Home::Active | Home::Fenced) {
                entry.home = Home::Unknown { asked_at: None };
                out.push(RegionEffect::StopShard {
                    shard,
                    reason: StopReason::Dropped,
                });
            }
        }
        let with_messages: Vec<ShardId> = self
            .shards
            .iter()
            .filter(|(_, entry)| !entry.buffer.is_empty())
            .map(|(shard, _)| *shard)
            .collect();
        for shard in with_messages {
            self.flush(now, shard, out);
        }
    }

    /// ShardHome: duplicate -> no change; late (older than the newest
    /// instruction for the shard) -> ignored; stale epoch -> ignored.
    /// Naming a Down region (sent before the coordinator saw the Down,
    /// arriving after this region did) -> the home is unknown: buffer and
    /// ask again, never forward into the void.
    fn on_shard_home(
        &mut self,
        now: Instant,
        instruction: (Epoch, RequestId),
        shard: ShardId,
        home: RegionId,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        if shard.0 >= self.config.number_of_shards {
            return;
        }
        let me = self.me.clone();
        let entry = self.shards.entry(shard).or_default();
        if entry.order(instruction.0, instruction.1) != Order::New || entry.home.is_local() {
            // A local shard changes only through Handoff or a RegisterAck.
            return;
        }
        entry.home = if home == me || self.down.contains(&home) {
            Home::Unknown { asked_at: None }
        } else {
            Home::Remote(home)
        };
        self.flush(now, shard, out);
    }

    /// HostShard: duplicate -> `ShardStarted` again; late (older than the
    /// newest instruction for the shard, or than the current registration)
    /// -> ignored; stale epoch -> ignored. A proxy never hosts.
    fn on_host_shard(
        &mut self,
        now: Instant,
        instruction: (Epoch, RequestId),
        shard: ShardId,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        if self.proxy_only || shard.0 >= self.config.number_of_shards {
            return;
        }
        if self.registered_by.is_some_and(|by| instruction < by) {
            // Sent before this region's lease lapsed and it registered
            // again; the coordinator re-issues what still stands.
            return;
        }
        let may_deliver = self.may_deliver(now);
        let entry = self.shards.entry(shard).or_default();
        match entry.order(instruction.0, instruction.1) {
            Order::Late => return,
            Order::Duplicate if !entry.home.is_local() => return,
            Order::Duplicate => {}
            Order::New => match entry.home {
                Home::Stopping => return,
                Home::Active | Home::Fenced => {}
                // Without a valid lease it starts fenced; the next Register
                // asks the coordinator to confirm it.
                _ => {
                    entry.home = if may_deliver {
                        Home::Active
                    } else {
                        Home::Fenced
                    }
                }
            },
        }
        let host = instruction.1;
        self.send_to_coordinator(out, RegionToCoordinator::ShardStarted { shard, host });
        self.flush(now, shard, out);
    }

    /// BeginHandoff: duplicate -> ack again; late -> ignored; stale epoch
    /// -> ignored. The old home keeps running the shard until `Handoff`.
    fn on_begin_handoff(
        &mut self,
        instruction: (Epoch, RequestId),
        shard: ShardId,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        if shard.0 >= self.config.number_of_shards {
            return;
        }
        let entry = self.shards.entry(shard).or_default();
        match entry.order(instruction.0, instruction.1) {
            Order::Late => return,
            Order::Duplicate => {}
            Order::New => {
                if !entry.home.is_local() {
                    // Stop routing to the old home; buffer and ask.
                    entry.home = Home::Unknown { asked_at: None };
                }
            }
        }
        let begin = instruction.1;
        self.send_to_coordinator(out, RegionToCoordinator::BeginHandoffAck { shard, begin });
    }

    /// Handoff: duplicate -> nothing while stopping, `ShardStopped` again
    /// once stopped; late -> ignored; stale epoch -> ignored. A fenced shard
    /// is dropped without `stopped()` (it holds no lease).
    fn on_handoff(
        &mut self,
        now: Instant,
        instruction: (Epoch, RequestId),
        shard: ShardId,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        if shard.0 >= self.config.number_of_shards {
            return;
        }
        let entry = self.shards.entry(shard).or_default();
        if entry.order(instruction.0, instruction.1) == Order::Late {
            return;
        }
        match entry.home {
            Home::Active => {
                entry.home = Home::Stopping;
                out.push(RegionEffect::StopShard {
                    shard,
                    reason: StopReason::Handoff,
                });
            }
            // Without a lease `stopped()` must not run: the entities are
            // dropped as they are (nothing ran since the fence), and the
            // shard is free for its new home at once.
            Home::Fenced => {
                entry.home = Home::Unknown { asked_at: None };
                out.push(RegionEffect::StopShard {
                    shard,
                    reason: StopReason::Dropped,
                });
                self.send_to_coordinator(out, RegionToCoordinator::ShardStopped { shard });
                self.flush(now, shard, out);
            }
            Home::Stopping => {}
            Home::Unknown { .. } | Home::Remote(_) => {
                self.send_to_coordinator(out, RegionToCoordinator::ShardStopped { shard });
            }
        }
    }

    // ----- driver and membership inputs ----------------------------------

    /// The entities of a handed-off shard are stopped: report it; buffered
    /// messages wait for the new home. Duplicate -> ignored.
    fn on_entities_stopped(
        &mut self,
        now: Instant,
        shard: ShardId,
        out: &mut Vec<RegionEffect<P>>,
    ) {
        let Some(entry) = self.shards.get_mut(&shard) else {
            return;
        };
        if entry.home != Home::Stopping {
            return;
        }
        entry.home = Home::Unknown { asked_at: None };
        self.send_to_coordinator(out, RegionToCoordinator::ShardStopped { shard });
        self.flush(now, shard, out);
    }

    /// A Down region is no home any more, now or later (a late `ShardHome`
    /// naming it is not believed). Duplicate -> no change.
    fn on_member_down(&mut self, now: Instant, region: &RegionId, out: &mut Vec<RegionEffect<P>>) {
        if !self.down.insert(region.clone()) {
            return;
        }
        let affected: Vec<ShardId> = self
            .shards
            .iter_mut()
            .filter(|(_, entry)| entry.home == Home::Remote(region.clone()))
            .map(|(shard, entry)| {
                entry.home = Home::Unknown { asked_at: None };
                *shard
            })
            .collect();
        for shard in affected {
            self.flush(now, shard, out);
        }
    }

    // ----- lease, fencing, registration ---------------------------------

    /// Rule 1: an expired lease fences every running shard and the region
    /// must register again.
    fn check_lease(&mut self, now: Instant) {
        if self.proxy_only || !self.registered || self.lease.is_valid(now) {
            return;
        }
        self.registered = false;
        self.fence_all();
    }

    /// Pauses every running shard: delivery stops, messages buffer, state
    /// stays in memory.
    fn fence_all(&mut self) {
        for entry in self.shards.values_mut() {
            if entry.home == Home::Active {
                entry.home = Home::Fenced;
            }
        }
    }

    fn register_if_needed(&mut self, now: Instant, out: &mut Vec<RegionEffect<P>>) {
        if !self.side_survives {
            return;
        }
        let has_fenced = self.shards.values().any(|entry| entry.home == Home::Fenced);
        if self.registered && !has_fenced {
            return;
        }
        let retry = self.config.retry_interval;
        if self
            .last_register
            .is_some_and(|(_, sent_at)| sent_at + retry > now)
        {
            return;
        }
        let mut hosted = Vec::new();
        let mut fenced = Vec::new();
        let mut handing_off = Vec::new();
        for (shard, entry) in &self.shards {
            match entry.home {
                Home::Active => hosted.push(*shard),
                Home::Fenced => fenced.push(*shard),
                Home::Stopping => handing_off.push(*shard),
                Home::Unknown { .. } | Home::Remote(_) => {}
            }
        }
        let register = self.next_id();
        self.last_register = Some((register, now));
        let body = RegionToCoordinator::Register {
            hosted,
            fenced,
            handing_off,
            proxy_only: self.proxy_only,
        };
        self.send_to_coordinator_with_id(out, register, body);
    }

    // ----- helpers --------------------------------------------------------

    fn next_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn send_to_coordinator(&mut self, out: &mut Vec<RegionEffect<P>>, body: RegionToCoordinator) {
        let id = self.next_id();
        self.send_to_coordinator_with_id(out, id, body);
    }

    fn send_to_coordinator_with_id(
        &self,
        out: &mut Vec<RegionEffect<P>>,
        request_id: RequestId,
        body: RegionToCoordinator,
    ) {
        out.push(RegionEffect::ToCoordinator(Envelope {
            epoch: self.epoch,
            request_id,
            from: self.me.clone(),
            body,
        }));
    }

    fn send_to_region(
        &mut self,
        out: &mut Vec<RegionEffect<P>>,
        to: RegionId,
        body: RegionToRegion<P>,
    ) {
        out.push(RegionEffect::ToRegion {
            to,
            message: Envelope::entity_traffic(self.epoch, self.me.clone(), body),
        });
    }
}

fn failed<P>(delivery: Delivery<P>, error: DeliveryError) -> RegionEffect<P> {
    RegionEffect::DeliveryFailed {
        shard: delivery.shard,
        entity: delivery.entity,
        reply_to: delivery.reply_to,
        error,
    }
}
