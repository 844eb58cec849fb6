//! The simulated cluster: slots of nodes, one event queue in virtual time,
//! one seeded random stream, and the checker looking at every step.
//!
//! Each running node has the production `Membership`, its sharding (the
//! production `Region` and `Coordinator` behind [`TypeGlue`]), a gossip
//! model, an entity host model and a client. Timers, message arrivals,
//! handler steps and faults are events ordered by (time, sequence number),
//! so a run is a pure function of its seed and schedule.
//!
//! A run has three phases: the cluster forms, then the schedule's faults
//! happen, then the quiet phase ([`QUIET_MS`]): every link heals, paused
//! nodes resume, stopped nodes start again; once settled, asks must end
//! and every entity must answer a probe.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membership::{
    Member, MemberEvent, MemberStatus, Membership, MembershipConfig, MembershipEffect, NodeId,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sharding::{
    shard_id, CoordinatorToRegion, EntityId, Envelope, Epoch, RegionInput, RegionToCoordinator,
    RegionToRegion, ReplyTo, ShardId, ShardingConfig, StopReason,
};

use super::gossip::{Digest, GossipState};
use super::host::{HostModel, HostOutput, HostRules, Ids, Job, SimMessage};
use super::invariants::{Checker, Violation};
use super::nemesis::{Fault, Schedule, QUIET_MS};
use super::network::{Network, NetworkCounters};
use super::time::{Micros, NodeClock, MS, SEC};
use super::type_glue::{GlueAction, KeepAlive, TypeGlue};

/// How a run is set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Nodes that start the run.
    pub nodes: usize,
    /// Length of a run in virtual milliseconds.
    pub virtual_ms: u64,
    /// Entities the clients talk to.
    pub entities: usize,
    /// Daemon workers kept alive.
    pub daemon_workers: usize,
    /// Which lease checks the entity host makes.
    pub host: HostRules,
    /// Clock rates differ by at most this many parts per million from the
    /// true rate (well inside the 10% that the drift margin covers).
    pub max_drift_ppm: i64,
    /// Sharding settings (fewer shards than production: faster runs).
    pub sharding: ShardingConfig,
    /// Membership settings.
    pub membership: MembershipConfig,
    /// Run membership and gossip only: no sharding, no clients (for scale).
    pub membership_only: bool,
    /// Whether a node started after the beginning of the run (a restart or
    /// a join) may bootstrap a cluster of its own when it hears nobody while
    /// a cluster runs elsewhere. False is the production behaviour (such a
    /// node has seeds, so `mesh` clears `may_start_cluster`); true is the
    /// behaviour before that rule, where a restart inside a cut forms a
    /// second cluster beside the first. Either way a new cluster is
    /// bootstrapped when no node of the old one is Up (an operator's doing).
    pub late_nodes_bootstrap: bool,
    /// The first this many nodes are the seeds that gossip falls back on
    /// (`None`: every node that starts the run). Only the first seed, n0,
    /// may start a cluster, as `mesh` allows only a node that is its own
    /// first seed: five nodes that may each start one would, once a whole
    /// cluster is downed during a cut, start one on each side.
    pub seeds: Option<usize>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 5,
            virtual_ms: 60_000,
            entities: 16,
            daemon_workers: 2,
            host: HostRules::DESIGN,
            max_drift_ppm: 20_000,
            sharding: ShardingConfig {
                number_of_shards: 12,
                ..ShardingConfig::default()
            },
            membership: MembershipConfig::default(),
            membership_only: false,
            late_nodes_bootstrap: false,
            seeds: None,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The faults it ran.
    pub schedule: Schedule,
    /// The first property that failed.
    pub violation: Option<Violation>,
    /// A hash of every event in order: the same seed and schedule give the
    /// same hash.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time reached, in milliseconds.
    pub virtual_ms: u64,
    /// Faults applied, by kind (including restarts of downed nodes).
    pub faults: BTreeMap<&'static str, u64>,
    /// Asks sent / answered / failed / timed out.
    pub asks: [u64; 4],
    /// Writes acknowledged.
    pub writes: u64,
    /// What the network did.
    pub network: NetworkCounters,
}

/// A message between nodes.
#[derive(Clone, Debug)]
enum Message {
    GossipSyn {
        from: usize,
        digest: Digest,
    },
    GossipAck {
        digest: Digest,
    },
    HeartbeatRequest {
        from: usize,
        to: NodeId,
    },
    HeartbeatReply {
        from: NodeId,
    },
    ToCoordinator(Envelope<RegionToCoordinator>),
    ToRegion {
        to: NodeId,
        message: Envelope<CoordinatorToRegion>,
    },
    Region(Envelope<RegionToRegion<SimMessage>>),
    Reply {
        to: NodeId,
        ask: u64,
        ok: bool,
    },
    HandedOff {
        to: NodeId,
        epoch: Epoch,
    },
}

impl Message {
    fn code(&self) -> u64 {
        match self {
            Message::GossipSyn { .. } => 1,
            Message::GossipAck { .. } => 2,
            Message::HeartbeatRequest { .. } => 3,
            Message::HeartbeatReply { .. } => 4,
            Message::ToCoordinator(_) => 5,
            Message::ToRegion { .. } => 6,
            Message::Region(_) => 7,
            Message::Reply { .. } => 8,
            Message::HandedOff { .. } => 9,
        }
    }
}

/// Something that happens at a virtual time.
#[derive(Clone, Debug)]
enum Event {
    Tick {
        slot: usize,
        inc: u32,
    },
    Gossip {
        slot: usize,
        inc: u32,
    },
    Client {
        slot: usize,
        inc: u32,
    },
    Arrive {
        slot: usize,
        message: Message,
    },
    StepDone {
        slot: usize,
        inc: u32,
        step: u64,
    },
    WorkerAct {
        slot: usize,
        inc: u32,
        worker: EntityId,
        instance: u64,
    },
    Resume {
        slot: usize,
        inc: u32,
    },
    Fault(usize),
    OrchestratorRestart {
        slot: usize,
        inc: u32,
    },
    AskDeadline(u64),
    Quiet,
    Probe,
}

impl Event {
    /// The slot whose process handles it (paused processes defer it).
    fn slot(&self) -> Option<usize> {
        match self {
            Event::Tick { slot, .. }
            | Event::Gossip { slot, .. }
            | Event::Client { slot, .. }
            | Event::Arrive { slot, .. }
            | Event::StepDone { slot, .. }
            | Event::WorkerAct { slot, .. } => Some(*slot),
            _ => None,
        }
    }

    fn code(&self) -> u64 {
        match self {
            Event::Tick { .. } => 1,
            Event::Gossip { .. } => 2,
            Event::Client { .. } => 3,
            Event::Arrive { message, .. } => 10 + message.code(),
            Event::StepDone { .. } => 4,
            Event::WorkerAct { .. } => 5,
            Event::Resume { .. } => 6,
            Event::Fault(_) => 7,
            Event::OrchestratorRestart { .. } => 8,
            Event::AskDeadline(_) => 9,
            Event::Quiet => 30,
            Event::Probe => 31,
        }
    }
}

/// One running process on a slot.
struct Process {
    id: NodeId,
    membership: Membership,
    gossip: GossipState,
    /// `None` once the node was downed or removed: only gossip lingers.
    sharding: Option<(TypeGlue<SimMessage>, HostModel)>,
    members: Vec<Member>,
    would_survive: bool,
    leaving: bool,
    handoff_reported: bool,
    /// After `SelfDown`/`SelfRemoved`: gossip until then, then exit.
    linger_until: Option<Micros>,
    /// When it started.
    started: Micros,
}

/// A pause in progress.
struct Paused {
    since: Micros,
    deferred: Vec<Event>,
}

/// A node's place in the world: its name, clock and current process.
struct Slot {
    clock: NodeClock,
    /// Bumped whenever the process starts or dies: older timers are void.
    inc: u32,
    process: Option<Process>,
    paused: Option<Paused>,
    /// The clock of a round a pause interrupted (pre-fix host rules).
    round_clock: Option<Instant>,
    /// Pause for this long once a handler step awaits.
    pause_mid_step: Option<u64>,
    ever_ran: bool,
}

/// An ask in flight or ended.
struct Ask {
    entity: EntityId,
    /// Must end within its deadline (sent once the quiet phase settled).
    must_end: bool,
    /// A probe: must be answered.
    probe: bool,
    outcome: Option<bool>,
}

/// How long an ask waits for its answer.
const ASK_DEADLINE: Micros = 5 * SEC;
/// A probe waits longer.
const PROBE_DEADLINE: Micros = 8 * SEC;
/// The quiet phase settles this long before asks must end.
const QUIET_SETTLE: Micros = 9 * SEC;
/// Gossip round interval.
const GOSSIP_EVERY: Micros = 200 * MS;
/// Peers per gossip round.
const GOSSIP_FANOUT: usize = 3;
/// A downed node is restarted by its orchestrator after this long.
const RESTART_AFTER_DOWN: Micros = 2 * SEC;
/// A node still Joining this long after it started is restarted (the
/// orchestrator's join timeout).
const JOIN_TIMEOUT: Micros = 12 * SEC;
/// A downed or removed node keeps gossiping this long.
const LINGER: Micros = SEC;
/// A daemon worker acts this often.
const WORKER_EVERY: (Micros, Micros) = (100 * MS, 300 * MS);
/// Handler steps that await take up to this long.
const STEP_AWAIT: (Micros, Micros) = (MS, 50 * MS);
/// Clients send one ask per this interval.
const CLIENT_EVERY: (Micros, Micros) = (50 * MS, 250 * MS);

/// FNV-1a over the trace.
struct TraceHash(u64);

impl TraceHash {
    fn add(&mut self, value: u64) {
        for byte in value.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The world of one run.
pub struct World {
    config: SimConfig,
    seed: u64,
    schedule: Schedule,
    base: Instant,
    now: Micros,
    end: Micros,
    queue: BTreeMap<(Micros, u64), Event>,
    seq: u64,
    rng: StdRng,
    network: Network,
    slots: Vec<Slot>,
    checker: Checker,
    asks: BTreeMap<u64, Ask>,
    ask_counts: [u64; 4],
    next_id: u64,
    hash: TraceHash,
    events: u64,
    faults: BTreeMap<&'static str, u64>,
    quiet_since: Option<Micros>,
    homes_dirty: bool,
    entity_names: Vec<EntityId>,
    log: Option<Vec<String>>,
}

/// Ids and store reads for the host model, from the world's parts.
struct IdSource<'a> {
    rng: &'a mut StdRng,
    next: &'a mut u64,
    checker: &'a Checker,
}

impl Ids for IdSource<'_> {
    fn next_id(&mut self) -> u64 {
        *self.next += 1;
        *self.next
    }

    fn awaits(&mut self) -> bool {
        self.rng.gen_bool(0.7)
    }

    fn stored(&self, entity: &str) -> u64 {
        self.checker.stored(entity)
    }
}

impl World {
    /// A world for `seed` that will run `schedule`.
    pub fn new(config: SimConfig, seed: u64, schedule: Schedule) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let slots = (0..schedule.slots(config.nodes))
            .map(|_| Slot {
                clock: NodeClock {
                    rate_ppm: rng.gen_range(-config.max_drift_ppm..=config.max_drift_ppm),
                },
                inc: 0,
                process: None,
                paused: None,
                round_clock: None,
                pause_mid_step: None,
                ever_ran: false,
            })
            .collect();
        let entity_names = (0..config.entities)
            .map(|i| EntityId::from(format!("e{i}")))
            .collect();
        let end = config.virtual_ms * MS;
        Self {
            config,
            seed,
            schedule,
            base: Instant::now(),
            now: 0,
            end,
            queue: BTreeMap::new(),
            seq: 0,
            rng,
            network: Network::default(),
            slots,
            checker: Checker::default(),
            asks: BTreeMap::new(),
            ask_counts: [0; 4],
            next_id: 0,
            hash: TraceHash(0xcbf2_9ce4_8422_2325),
            events: 0,
            faults: BTreeMap::new(),
            quiet_since: None,
            homes_dirty: false,
            entity_names,
            log: None,
        }
    }

    /// Keeps a readable line per fault and violation (for a failure report).
    pub fn with_log(mut self) -> Self {
        self.log = Some(Vec::new());
        self
    }

    /// Runs to the end or the first violation.
    pub fn run(mut self) -> (Outcome, Vec<String>) {
        self.begin();
        let quiet = self.end.saturating_sub(QUIET_MS * MS);
        self.at(quiet, Event::Quiet);
        self.at(quiet + QUIET_SETTLE, Event::Probe);
        self.run_until(self.end);
        self.hash.add(self.checker.total_writes());
        let violation = self.checker.violation().cloned();
        if let (Some(log), Some(v)) = (&mut self.log, &violation) {
            log.push(format!("VIOLATION {v}"));
        }
        let outcome = Outcome {
            seed: self.seed,
            schedule: self.schedule,
            violation,
            trace_hash: self.hash.0,
            events: self.events,
            virtual_ms: self.now / MS,
            faults: self.faults,
            asks: self.ask_counts,
            writes: self.checker.total_writes(),
            network: self.network.counters,
        };
        (outcome, self.log.unwrap_or_default())
    }

    /// Starts the initial nodes and queues the schedule's faults.
    fn begin(&mut self) {
        for slot in 0..self.config.nodes.min(self.slots.len()) {
            self.start(slot);
        }
        for (index, timed) in self.schedule.faults.iter().enumerate() {
            let at = timed.at_ms * MS;
            self.seq += 1;
            self.queue.insert((at, self.seq), Event::Fault(index));
        }
    }

    /// Processes events up to `until` or the first violation.
    fn run_until(&mut self, until: Micros) {
        while let Some(entry) = self.queue.first_entry() {
            let (t, _) = *entry.key();
            if t > until {
                break;
            }
            let event = entry.remove();
            self.now = t;
            self.events += 1;
            self.hash.add(t);
            self.hash.add(event.code());
            self.hash.add(event.slot().unwrap_or(usize::MAX) as u64);
            self.dispatch(event);
            if self.homes_dirty {
                self.check_homes();
            }
            if self.checker.violation().is_some() {
                return;
            }
        }
        self.now = self.now.max(until);
    }

    /// Whether every running node sees every running node Up.
    fn seeds(&self) -> usize {
        self.config.seeds.unwrap_or(self.config.nodes)
    }

    fn converged(&self) -> bool {
        let running: Vec<&Process> = self
            .slots
            .iter()
            .filter_map(|s| s.process.as_ref())
            .collect();
        running.iter().all(|p| {
            let members = p.membership.members();
            members.len() == running.len() && members.iter().all(|m| m.status == MemberStatus::Up)
        })
    }

    fn at(&mut self, t: Micros, event: Event) {
        self.seq += 1;
        self.queue.insert((t, self.seq), event);
    }

    fn after(&mut self, delay: Micros, event: Event) {
        self.at(self.now + delay, event);
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(log) = &mut self.log {
            log.push(format!("{:>8} ms  {}", self.now / MS, line()));
        }
    }

    fn instant(&self, slot: usize) -> Instant {
        let s = &self.slots[slot];
        s.round_clock
            .unwrap_or_else(|| s.clock.instant(self.base, self.now))
    }

    fn slot_of(name: &str) -> Option<usize> {
        name.strip_prefix('n')?.parse().ok()
    }

    // ----- processes ------------------------------------------------------

    fn start(&mut self, slot: usize) {
        self.checker.process_started(slot);
        let generation = 1_000 + self.now / MS + slot as u64;
        let id = NodeId::new(format!("n{slot}"), generation);
        let now = self.instant(slot);
        let mut membership_config = self.config.membership.clone();
        if slot != 0 {
            membership_config.may_start_cluster = false;
        }
        if self.now > 0 && !self.config.late_nodes_bootstrap && self.cluster_runs() {
            // A restart or a join is given the other nodes as seeds: it may
            // not start a cluster (as `mesh` sets it).
            membership_config.may_start_cluster = false;
        }
        let membership = Membership::new(
            id.clone(),
            ([127, 0, 0, 1], 7000).into(),
            BTreeSet::new(),
            membership_config,
            now,
        );
        let keep_alive = (self.config.daemon_workers > 0).then(|| KeepAlive {
            every: self.config.sharding.daemon_keep_alive_interval,
            workers: (0..self.config.daemon_workers)
                .map(|i| EntityId::from(format!("d{i}")))
                .collect(),
            message: SimMessage::KeepAlive,
        });
        let sharding = (!self.config.membership_only).then(|| {
            let glue = TypeGlue::new(id.clone(), self.config.sharding.clone(), keep_alive, now);
            (glue, HostModel::new(self.config.host))
        });
        let s = &mut self.slots[slot];
        s.inc += 1;
        s.paused = None;
        s.round_clock = None;
        s.ever_ran = true;
        s.process = Some(Process {
            id: id.clone(),
            membership,
            gossip: GossipState::new(id, self.now),
            sharding,
            members: Vec::new(),
            would_survive: true,
            leaving: false,
            handoff_reported: false,
            linger_until: None,
            started: self.now,
        });
        let inc = s.inc;
        let tick = self.rng.gen_range(0..100 * MS);
        let gossip = self.rng.gen_range(0..GOSSIP_EVERY);
        self.after(tick, Event::Tick { slot, inc });
        self.after(gossip, Event::Gossip { slot, inc });
        if !self.config.membership_only {
            self.after(SEC + tick, Event::Client { slot, inc });
        }
    }

    /// Whether some running node is Up (or Leaving): a cluster exists.
    fn cluster_runs(&self) -> bool {
        self.slots
            .iter()
            .filter_map(|s| s.process.as_ref())
            .any(|p| {
                p.linger_until.is_none()
                    && matches!(
                        p.membership.status(),
                        MemberStatus::Up | MemberStatus::Leaving
                    )
            })
    }

    fn kill(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.inc += 1;
        s.process = None;
        s.paused = None;
        s.round_clock = None;
        self.homes_dirty = true;
    }

    fn running(&self, slot: usize, inc: u32) -> bool {
        let s = &self.slots[slot];
        s.inc == inc && s.process.is_some()
    }

    // ----- events ---------------------------------------------------------

    fn dispatch(&mut self, event: Event) {
        if let Some(slot) = event.slot() {
            if let Some(paused) = &mut self.slots[slot].paused {
                paused.deferred.push(event);
                return;
            }
        }
        match event {
            Event::Tick { slot, inc } => {
                if self.running(slot, inc) {
                    self.tick(slot);
                    self.after(100 * MS, Event::Tick { slot, inc });
                }
            }
            Event::Gossip { slot, inc } => {
                if self.running(slot, inc) {
                    self.gossip_round(slot);
                    self.after(GOSSIP_EVERY, Event::Gossip { slot, inc });
                }
            }
            Event::Client { slot, inc } => {
                if self.running(slot, inc) {
                    self.client(slot);
                    let next = self.rng.gen_range(CLIENT_EVERY.0..=CLIENT_EVERY.1);
                    self.after(next, Event::Client { slot, inc });
                }
            }
            Event::Arrive { slot, message } => self.arrive(slot, message),
            Event::StepDone { slot, inc, step } => {
                if self.running(slot, inc) {
                    self.step_done(slot, step);
                }
            }
            Event::WorkerAct {
                slot,
                inc,
                worker,
                instance,
            } => {
                if self.running(slot, inc) {
                    self.worker_act(slot, inc, worker, instance);
                }
            }
            Event::Resume { slot, inc } => {
                if self.slots[slot].inc == inc {
                    self.resume(slot);
                }
            }
            Event::Fault(index) => {
                let fault = self.schedule.faults[index].fault.clone();
                self.fault(fault);
            }
            Event::OrchestratorRestart { slot, inc } => {
                if self.slots[slot].inc == inc && self.slots[slot].process.is_none() {
                    *self.faults.entry("restart-after-down").or_default() += 1;
                    self.note(|| format!("orchestrator restarts n{slot}"));
                    self.start(slot);
                }
            }
            Event::AskDeadline(ask) => self.ask_deadline(ask),
            Event::Quiet => self.quiet(),
            Event::Probe => self.probe(),
        }
    }

    fn fault(&mut self, fault: Fault) {
        *self.faults.entry(fault.kind()).or_default() += 1;
        self.note(|| fault.to_string());
        let alive =
            |world: &World, node: usize| world.slots.get(node).is_some_and(|s| s.process.is_some());
        match fault {
            Fault::Partition { sides } => {
                self.network.heal();
                self.network.partition(&sides);
                // A node on neither side (one that joined after the
                // schedule was drawn) still talks to both: the cluster may
                // legitimately span the cut through it, so only the
                // single-writer invariants judge that run.
                let listed = |slot: &usize| sides.iter().flatten().any(|s| s == slot);
                let bridged = (0..self.slots.len()).any(|slot| alive(self, slot) && !listed(&slot));
                self.checker
                    .set_split(self.now, (!bridged).then_some(sides.as_slice()));
            }
            Fault::OneWay { from, to } => {
                self.network
                    .set_rule(from, to, crate::proxy::LinkRule::drop_all());
                self.checker.set_split(self.now, None);
            }
            Fault::Link { from, to, rule } => self.network.set_rule(from, to, rule),
            Fault::Heal => {
                self.network.heal();
                self.checker.set_split(self.now, None);
            }
            Fault::Pause { node, ms } => self.pause(node, ms),
            Fault::PauseMidStep { node, ms } => {
                if let Some(slot) = self.slots.get_mut(node) {
                    slot.pause_mid_step = Some(ms);
                }
            }
            Fault::Crash { node } => {
                if alive(self, node) {
                    self.kill(node);
                }
            }
            Fault::Restart { node } | Fault::Join { node } => {
                if node < self.slots.len() && !alive(self, node) {
                    self.start(node);
                }
            }
            Fault::Leave { node } => {
                if let Some(p) = self.slots.get_mut(node).and_then(|s| s.process.as_mut()) {
                    if p.sharding.is_some() && !p.leaving {
                        p.leaving = true;
                        let now = self.slots[node].clock.instant(self.base, self.now);
                        let effects = match &mut self.slots[node].process {
                            Some(p) => p.membership.leave(now),
                            None => Vec::new(),
                        };
                        self.membership_effects(node, effects);
                    }
                }
            }
        }
    }

    fn pause(&mut self, node: usize, ms: u64) {
        let alive = self.slots.get(node).is_some_and(|s| s.process.is_some());
        if alive && self.slots[node].paused.is_none() {
            self.slots[node].paused = Some(Paused {
                since: self.now,
                deferred: Vec::new(),
            });
            let inc = self.slots[node].inc;
            self.after(ms * MS, Event::Resume { slot: node, inc });
        }
    }

    fn resume(&mut self, slot: usize) {
        let Some(paused) = self.slots[slot].paused.take() else {
            return;
        };
        self.note(|| format!("n{slot} resumes"));
        // Daemon workers are tasks of their own: they run as soon as the
        // process does, before the driver's next round.
        let (workers, rest): (Vec<Event>, Vec<Event>) = paused
            .deferred
            .into_iter()
            .partition(|event| matches!(event, Event::WorkerAct { .. }));
        for event in workers {
            self.dispatch(event);
        }
        if !self.config.host.fresh_clock_per_delivery {
            // The round the pause interrupted goes on with its clock read.
            let since = self.slots[slot].clock.instant(self.base, paused.since);
            self.slots[slot].round_clock = Some(since);
        }
        let (arrivals, others): (Vec<Event>, Vec<Event>) = rest
            .into_iter()
            .partition(|event| matches!(event, Event::Arrive { .. }));
        for event in arrivals {
            self.dispatch(event);
        }
        self.slots[slot].round_clock = None;
        for event in others {
            self.after(0, event);
        }
    }

    fn quiet(&mut self) {
        self.note(|| "quiet: heal, resume, restart".to_string());
        self.quiet_since = Some(self.now);
        self.network.heal();
        self.checker.set_split(self.now, None);
        for slot in 0..self.slots.len() {
            if self.slots[slot].paused.is_some() {
                let inc = self.slots[slot].inc;
                self.after(0, Event::Resume { slot, inc });
            } else if self.slots[slot].ever_ran && self.slots[slot].process.is_none() {
                self.start(slot);
            }
        }
    }

    fn probe(&mut self) {
        self.note(|| "probe every entity".to_string());
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|slot| self.serving_process(*slot))
            .collect();
        if live.is_empty() {
            self.checker.fail(
                self.now,
                "entities-answer",
                "no node runs after the quiet phase".into(),
            );
            return;
        }
        for entity in self.entity_names.clone() {
            let slot = live[self.rng.gen_range(0..live.len())];
            self.ask(slot, entity, true);
        }
    }

    fn serving_process(&self, slot: usize) -> bool {
        self.slots[slot]
            .process
            .as_ref()
            .is_some_and(|p| p.sharding.is_some() && !p.leaving)
    }

    // ----- membership and gossip -----------------------------------------

    fn tick(&mut self, slot: usize) {
        let now = self.instant(slot);
        let vnow = self.now;
        let Some(p) = &mut self.slots[slot].process else {
            return;
        };
        if let Some(until) = p.linger_until {
            if vnow >= until {
                self.kill(slot);
            }
            return;
        }
        if let Some(view) = p.gossip.view(vnow) {
            p.membership.on_gossip(now, view);
        }
        if p.membership.status() == MemberStatus::Joining && vnow >= p.started + JOIN_TIMEOUT {
            // The orchestrator's join timeout: start again.
            *self.faults.entry("restart-after-join-timeout").or_default() += 1;
            self.note(|| format!("n{slot} gives up joining and restarts"));
            self.kill(slot);
            self.start(slot);
            return;
        }
        let effects = p.membership.tick(now);
        self.membership_effects(slot, effects);
        let Some(p) = &mut self.slots[slot].process else {
            return;
        };
        if p.sharding.is_none() {
            return;
        }
        p.members = p.membership.members();
        p.would_survive = p.membership.would_survive();
        let (members, would_survive) = (std::mem::take(&mut p.members), p.would_survive);
        let actions = match &mut p.sharding {
            Some((glue, _)) => glue.tick(now, &members, would_survive),
            None => Vec::new(),
        };
        if let Some(p) = &mut self.slots[slot].process {
            p.members = members;
        }
        self.perform(slot, actions);
        self.host_tick(slot);
        self.check_leave(slot);
        self.homes_dirty = true;
    }

    fn check_leave(&mut self, slot: usize) {
        let now = self.instant(slot);
        let Some(p) = &mut self.slots[slot].process else {
            return;
        };
        let handed_off = p
            .sharding
            .as_ref()
            .is_some_and(|(glue, _)| glue.handed_off());
        if p.leaving && handed_off && !p.handoff_reported {
            p.handoff_reported = true;
            let effects = p.membership.leave_handoff_done(now);
            self.membership_effects(slot, effects);
        }
    }

    fn membership_effects(&mut self, slot: usize, effects: Vec<MembershipEffect>) {
        for effect in effects {
            let Some(p) = &mut self.slots[slot].process else {
                return;
            };
            match effect {
                MembershipEffect::SetKey { key, value } => p.gossip.set_own(key, Some(value)),
                MembershipEffect::DeleteKey { key } => p.gossip.set_own(key, None),
                MembershipEffect::SendHeartbeat { to } => {
                    if let Some(target) = Self::slot_of(&to.name) {
                        self.send(slot, target, Message::HeartbeatRequest { from: slot, to });
                    }
                }
                MembershipEffect::Event(event) => {
                    if self.log.is_some() {
                        let line = match &event {
                            MemberEvent::MemberUp(m) => Some(format!("{} Up", m.id)),
                            MemberEvent::MemberDowned(m) => Some(format!("{} Down", m.id)),
                            MemberEvent::Unreachable { member, .. } => {
                                Some(format!("{member} unreachable"))
                            }
                            MemberEvent::Reachable(member) => Some(format!("{member} reachable")),
                            _ => None,
                        };
                        if let Some(line) = line {
                            self.note(|| format!("  n{slot} sees {line}"));
                        }
                    }
                }
                MembershipEffect::SelfDown | MembershipEffect::SelfRemoved => {
                    let down = matches!(effect, MembershipEffect::SelfDown);
                    p.sharding = None;
                    p.linger_until = Some(self.now + LINGER);
                    self.homes_dirty = true;
                    self.note(|| {
                        format!("n{slot} {}", if down { "is downed" } else { "is removed" })
                    });
                    if down {
                        let inc = self.slots[slot].inc + 1;
                        self.after(
                            LINGER + RESTART_AFTER_DOWN,
                            Event::OrchestratorRestart { slot, inc },
                        );
                    }
                }
            }
        }
    }

    fn gossip_round(&mut self, slot: usize) {
        let vnow = self.now;
        let Some(p) = &mut self.slots[slot].process else {
            return;
        };
        let digest = p.gossip.round(vnow);
        let mut peers: Vec<usize> = p
            .gossip
            .peers()
            .filter_map(|id| Self::slot_of(&id.name))
            .filter(|peer| *peer != slot)
            .collect();
        peers.dedup();
        if peers.is_empty() {
            // Seeds: the nodes that started the run.
            peers = (0..self.seeds()).filter(|s| *s != slot).collect();
        }
        let known = peers.len();
        peers.shuffle(&mut self.rng);
        peers.truncate(GOSSIP_FANOUT);
        // chitchat's seed rule (CASSANDRA-150): unless a seed is among the
        // peers picked, also gossip to a random seed with probability
        // seeds / known, so that nodes that met only each other at start
        // cannot stay an island.
        let seeds = self.seeds();
        let is_seed = |peer: &usize| *peer < seeds;
        if !peers.iter().any(is_seed)
            && self
                .rng
                .gen_bool((seeds as f64 / known.max(1) as f64).min(1.0))
        {
            let seed = self.rng.gen_range(0..seeds);
            if seed != slot && !peers.contains(&seed) {
                peers.push(seed);
            }
        }
        for peer in peers {
            self.send(
                slot,
                peer,
                Message::GossipSyn {
                    from: slot,
                    digest: Arc::clone(&digest),
                },
            );
        }
    }

    // ----- network --------------------------------------------------------

    fn send(&mut self, from: usize, to: usize, message: Message) {
        if to >= self.slots.len() {
            return;
        }
        for due in self.network.route(&mut self.rng, self.now, from, to) {
            self.at(
                due,
                Event::Arrive {
                    slot: to,
                    message: message.clone(),
                },
            );
        }
    }

    fn arrive(&mut self, slot: usize, message: Message) {
        let now = self.instant(slot);
        let vnow = self.now;
        let Some(p) = &mut self.slots[slot].process else {
            return;
        };
        let me = p.id.clone();
        match message {
            Message::GossipSyn { from, digest } => {
                p.gossip.merge(&digest, vnow);
                let answer = p.gossip.digest();
                self.send(slot, from, Message::GossipAck { digest: answer });
            }
            Message::GossipAck { digest } => p.gossip.merge(&digest, vnow),
            Message::HeartbeatRequest { from, to } => {
                if to == me && p.linger_until.is_none() {
                    self.send(slot, from, Message::HeartbeatReply { from: me });
                }
            }
            Message::HeartbeatReply { from } => p.membership.on_heartbeat(now, &from),
            Message::ToCoordinator(message) => {
                if let Some((glue, _)) = &mut p.sharding {
                    let actions = glue.to_coordinator(now, message);
                    self.perform(slot, actions);
                }
            }
            Message::ToRegion { to, message } => {
                if to == me {
                    self.region_input(slot, RegionInput::FromCoordinator(message));
                }
            }
            Message::Region(message) => self.region_input(slot, RegionInput::FromRegion(message)),
            Message::Reply { to, ask, ok } => {
                if to == me {
                    self.ask_ended(ask, ok);
                }
            }
            Message::HandedOff { to, epoch } => {
                if let Some((glue, _)) = &mut p.sharding {
                    glue.on_handed_off(&to, epoch);
                }
                self.check_leave(slot);
            }
        }
    }

    // ----- sharding -------------------------------------------------------

    fn region_input(&mut self, slot: usize, input: RegionInput<SimMessage>) {
        let now = self.instant(slot);
        let actions = match &mut self.slots[slot].process {
            Some(Process {
                sharding: Some((glue, _)),
                ..
            }) => glue.region_input(now, input),
            _ => return,
        };
        self.homes_dirty = true;
        self.perform(slot, actions);
    }

    /// Carries out sharding actions, and what the host answers to them.
    fn perform(&mut self, slot: usize, actions: Vec<GlueAction<SimMessage>>) {
        let mut pending: std::collections::VecDeque<GlueAction<SimMessage>> = actions.into();
        while let Some(action) = pending.pop_front() {
            let Some(p) = &self.slots[slot].process else {
                return;
            };
            let me = p.id.clone();
            match action {
                GlueAction::ToCoordinator { host, message } => {
                    if let Some(to) = Self::slot_of(&host.name) {
                        self.send(slot, to, Message::ToCoordinator(message));
                    }
                }
                GlueAction::ToRegion { to, message } => {
                    if let Some(target) = Self::slot_of(&to.name) {
                        self.send(slot, target, Message::ToRegion { to, message });
                    }
                }
                GlueAction::ToPeer { to, message } => {
                    if let Some(target) = Self::slot_of(&to.name) {
                        self.send(slot, target, Message::Region(message));
                    }
                }
                GlueAction::DeliverLocal(delivery) => {
                    let job = Job {
                        message: delivery.payload,
                        reply_to: delivery.reply_to,
                    };
                    let out = self.with_host(slot, |host, serves, ids, now| {
                        host.deliver(now, delivery.shard, delivery.entity, job, serves, ids)
                    });
                    pending.extend(self.host_output(slot, out));
                }
                GlueAction::StopShard { shard, reason } => {
                    let out = self.with_host(slot, |host, _, _, _| match reason {
                        StopReason::Handoff => host.stop_shard(shard),
                        StopReason::Dropped => host.drop_shard(shard),
                    });
                    pending.extend(self.host_output(slot, out));
                }
                GlueAction::DeliveryFailed { reply_to, .. } => {
                    if let Some(reply_to) = reply_to {
                        self.reply(slot, reply_to, false);
                    }
                }
                GlueAction::HandedOff { region, epoch } => {
                    if let Some(target) = Self::slot_of(&region.name) {
                        self.send(slot, target, Message::HandedOff { to: region, epoch });
                    }
                }
                GlueAction::CoordinatorStarted { epoch } => {
                    self.note(|| format!("coordinator {epoch} starts on {me}"));
                    self.checker.coordinator_started(self.now, &me, epoch);
                }
            }
        }
    }

    /// Runs `f` on the host of `slot` with a `serves` check on the node's
    /// clock and the world's id source.
    fn with_host(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut HostModel, &dyn Fn(ShardId) -> bool, &mut dyn Ids, Micros) -> HostOutput,
    ) -> HostOutput {
        let now = self.instant(slot);
        let vnow = self.now;
        let mut ids = IdSource {
            rng: &mut self.rng,
            next: &mut self.next_id,
            checker: &self.checker,
        };
        match &mut self.slots[slot].process {
            Some(Process {
                sharding: Some((glue, host)),
                ..
            }) => {
                let region = glue.region();
                let serves = |shard: ShardId| region.serves(shard, now);
                f(host, &serves, &mut ids, vnow)
            }
            _ => HostOutput::default(),
        }
    }

    /// Schedules and records what the host did; returns follow-up actions.
    fn host_output(&mut self, slot: usize, out: HostOutput) -> Vec<GlueAction<SimMessage>> {
        let Some(p) = &self.slots[slot].process else {
            return Vec::new();
        };
        let me = p.id.clone();
        let inc = self.slots[slot].inc;
        let awaiting = !out.awaiting.is_empty();
        for step in out.awaiting {
            let delay = self.rng.gen_range(STEP_AWAIT.0..=STEP_AWAIT.1);
            self.after(delay, Event::StepDone { slot, inc, step });
        }
        if awaiting {
            if let Some(ms) = self.slots[slot].pause_mid_step.take() {
                self.note(|| format!("n{slot} pauses mid-step for {ms} ms"));
                self.pause(slot, ms);
            }
        }
        for step in out.committed {
            self.checker
                .step_committed(slot, &me, &step.entity, step.read, step.started, self.now);
            if let Some(reply_to) = step.reply_to {
                self.reply(slot, reply_to, true);
            }
        }
        for step in out.aborted {
            if let Some(reply_to) = step.reply_to {
                self.reply(slot, reply_to, false);
            }
        }
        for (worker, instance) in out.workers_started {
            self.note(|| format!("daemon {worker} starts on {me}"));
            let delay = self.rng.gen_range(WORKER_EVERY.0..=WORKER_EVERY.1);
            self.after(
                delay,
                Event::WorkerAct {
                    slot,
                    inc,
                    worker,
                    instance,
                },
            );
        }
        let now = self.instant(slot);
        let mut actions = Vec::new();
        let Some(Process {
            sharding: Some((glue, _)),
            ..
        }) = &mut self.slots[slot].process
        else {
            return actions;
        };
        for shard in out.shards_stopped {
            actions.extend(glue.region_input(now, RegionInput::ShardEntitiesStopped { shard }));
        }
        for (entity, job) in out.reroute {
            actions.extend(glue.send(now, entity, job.message, job.reply_to));
        }
        actions
    }

    fn host_tick(&mut self, slot: usize) {
        let out = self.with_host(slot, |host, serves, ids, now| {
            host.on_tick(now, serves, ids)
        });
        let actions = self.host_output(slot, out);
        self.perform(slot, actions);
    }

    fn step_done(&mut self, slot: usize, step: u64) {
        let out = self.with_host(slot, |host, serves, ids, now| {
            host.step_done(now, step, serves, ids)
        });
        let actions = self.host_output(slot, out);
        self.perform(slot, actions);
    }

    fn worker_act(&mut self, slot: usize, inc: u32, worker: EntityId, instance: u64) {
        let now = self.instant(slot);
        let Some(p) = &mut self.slots[slot].process else {
            return;
        };
        let me = p.id.clone();
        let Some((glue, host)) = &mut p.sharding else {
            return;
        };
        let shard = shard_id(&worker, self.config.sharding.number_of_shards);
        let serves = glue.region().serves(shard, now);
        if !host.worker_acts(&worker, instance, serves) {
            return;
        }
        self.checker
            .worker_acted(slot, &me, &worker, instance, self.now);
        let delay = self.rng.gen_range(WORKER_EVERY.0..=WORKER_EVERY.1);
        self.after(
            delay,
            Event::WorkerAct {
                slot,
                inc,
                worker,
                instance,
            },
        );
    }

    fn check_homes(&mut self) {
        self.homes_dirty = false;
        let mut serving = Vec::new();
        for s in &self.slots {
            let Some(Process {
                id,
                sharding: Some((glue, _)),
                ..
            }) = &s.process
            else {
                continue;
            };
            let now = s.clock.instant(self.base, self.now);
            let region = glue.region();
            for shard in region.local_shards() {
                if region.serves(shard, now) {
                    serving.push((id.clone(), shard, region.coordinator_epoch()));
                }
            }
        }
        self.checker.homes(self.now, &serving);
    }

    // ----- clients --------------------------------------------------------

    fn client(&mut self, slot: usize) {
        if !self.serving_process(slot) || self.now + ASK_DEADLINE > self.end {
            return;
        }
        let entity = self.entity_names[self.rng.gen_range(0..self.entity_names.len())].clone();
        self.ask(slot, entity, false);
    }

    fn ask(&mut self, slot: usize, entity: EntityId, probe: bool) {
        let Some(p) = &self.slots[slot].process else {
            return;
        };
        self.next_id += 1;
        let ask = self.next_id;
        let reply_to = ReplyTo {
            node: p.id.clone(),
            correlation: ask,
        };
        let must_end = self
            .quiet_since
            .is_some_and(|quiet| self.now >= quiet + QUIET_SETTLE);
        self.asks.insert(
            ask,
            Ask {
                entity: entity.clone(),
                must_end,
                probe,
                outcome: None,
            },
        );
        self.ask_counts[0] += 1;
        let deadline = if probe { PROBE_DEADLINE } else { ASK_DEADLINE };
        self.after(deadline, Event::AskDeadline(ask));
        let now = self.instant(slot);
        let actions = match &mut self.slots[slot].process {
            Some(Process {
                sharding: Some((glue, _)),
                ..
            }) => glue.send(now, entity, SimMessage::Increment, Some(reply_to)),
            _ => return,
        };
        self.perform(slot, actions);
    }

    fn reply(&mut self, slot: usize, to: ReplyTo, ok: bool) {
        match Self::slot_of(&to.node.name) {
            Some(target) if target == slot => {
                let mine = self.slots[slot]
                    .process
                    .as_ref()
                    .is_some_and(|p| p.id == to.node);
                if mine {
                    self.ask_ended(to.correlation, ok);
                }
            }
            Some(target) => self.send(
                slot,
                target,
                Message::Reply {
                    to: to.node,
                    ask: to.correlation,
                    ok,
                },
            ),
            None => {}
        }
    }

    fn ask_ended(&mut self, ask: u64, ok: bool) {
        let Some(record) = self.asks.get_mut(&ask) else {
            return;
        };
        if record.outcome.is_some() {
            return;
        }
        record.outcome = Some(ok);
        self.ask_counts[if ok { 1 } else { 2 }] += 1;
        if record.probe && !ok {
            let entity = record.entity.clone();
            self.checker.fail(
                self.now,
                "entities-answer",
                format!("the probe of {entity} failed after heal and quiet"),
            );
        }
    }

    fn ask_deadline(&mut self, ask: u64) {
        let Some(record) = self.asks.remove(&ask) else {
            return;
        };
        if record.outcome.is_some() {
            return;
        }
        self.ask_counts[3] += 1;
        if record.probe {
            self.checker.fail(
                self.now,
                "entities-answer",
                format!(
                    "{} did not answer its probe after heal and quiet",
                    record.entity
                ),
            );
        } else if record.must_end {
            self.checker.fail(
                self.now,
                "every-ask-ends",
                format!(
                    "an ask to {} sent in the quiet phase did not end in {} s",
                    record.entity,
                    Duration::from_micros(ASK_DEADLINE).as_secs()
                ),
            );
        }
    }
}

/// Starts `nodes` nodes (membership and gossip only) and returns the
/// virtual milliseconds until every one sees all of them Up, if within
/// `limit_ms`.
pub fn converge(nodes: usize, limit_ms: u64) -> Option<u64> {
    let config = SimConfig {
        nodes,
        virtual_ms: limit_ms,
        entities: 0,
        daemon_workers: 0,
        membership_only: true,
        seeds: Some(nodes.min(3)),
        ..SimConfig::default()
    };
    let mut world = World::new(config, 1, Schedule::default());
    world.begin();
    let mut t = 0;
    while t <= limit_ms * MS {
        t += 500 * MS;
        world.run_until(t);
        if world.converged() {
            return Some(t / MS);
        }
    }
    None
}
