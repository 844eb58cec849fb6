//! A model of one node's entity host (`sharding/src/runtime/host.rs` and
//! `daemon.rs`): mailboxes, handler steps that await across virtual time,
//! in-memory entity state loaded from a store, and daemon workers that act
//! on their own.
//!
//! A handler step reads the entity's in-memory value when it starts and
//! writes `value + 1` to the store when it ends; a step with no await ends
//! at once, in the same round. [`HostRules`] says which lease checks the
//! host makes: the rules of DESIGN.md section 5, rule 1, by default, or the
//! looser ones of the code before the single-writer fixes (issue 14), so
//! that the simulation can show it would have caught each hole.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sharding::{EntityId, ReplyTo, ShardId};

use super::time::Micros;

/// The payload of entity traffic in the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimMessage {
    /// Read the entity's value, await, write `value + 1`, answer it.
    Increment,
    /// Daemon keep-alive: be running.
    KeepAlive,
}

/// Which lease checks the host makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRules {
    /// A handler step that awaited is resumed only while its shard is still
    /// served (fresh clock); a fenced, dropped or handed-off shard's steps
    /// end with an error, and a handed-off shard's queued messages go back
    /// to the region. Off: issue 14 hole 2.
    pub steps_check_lease: bool,
    /// Every delivery reads the clock afresh. Off: a round that a pause
    /// interrupted delivers the rest of its messages with the clock read
    /// before the pause (issue 14 hole 3).
    pub fresh_clock_per_delivery: bool,
    /// A daemon worker checks its lease before it acts. Off: it acts until
    /// the driver's next tick stops it (issue 14 hole 4).
    pub daemons_check_lease: bool,
}

impl HostRules {
    /// The checks DESIGN.md section 5, rule 1 asks for.
    pub const DESIGN: HostRules = HostRules {
        steps_check_lease: true,
        fresh_clock_per_delivery: true,
        daemons_check_lease: true,
    };
}

impl Default for HostRules {
    fn default() -> Self {
        Self::DESIGN
    }
}

/// One message waiting for its entity.
#[derive(Clone, Debug)]
pub struct Job {
    /// The message.
    pub message: SimMessage,
    /// Who waits for the answer.
    pub reply_to: Option<ReplyTo>,
}

/// One entity instance on this node.
#[derive(Debug)]
struct Slot {
    shard: ShardId,
    mailbox: VecDeque<Job>,
    /// The step in flight, if any.
    busy: Option<u64>,
    /// The in-memory value (`None` until the first step loads it).
    value: Option<u64>,
    /// Stop once idle (handoff).
    stopping: bool,
    /// The daemon worker instance running here, if this is a worker.
    worker: Option<u64>,
}

/// A step in flight.
#[derive(Clone, Debug)]
pub struct Step {
    /// The entity.
    pub entity: EntityId,
    /// Its shard.
    pub shard: ShardId,
    /// When it started (global time).
    pub started: Micros,
    /// The value it read.
    pub read: u64,
    /// Who waits for the answer.
    pub reply_to: Option<ReplyTo>,
}

/// What the host asks of the world after an operation.
#[derive(Debug, Default)]
pub struct HostOutput {
    /// Steps that started and await: finish each at `started + delay`.
    pub awaiting: Vec<u64>,
    /// Steps that ended with a write.
    pub committed: Vec<Step>,
    /// Steps that ended without a write (their caller gets an error).
    pub aborted: Vec<Step>,
    /// Daemon worker instances that started: schedule their acts.
    pub workers_started: Vec<(EntityId, u64)>,
    /// Shards whose entities all stopped for a handoff.
    pub shards_stopped: Vec<ShardId>,
    /// Messages to route again (their shard left this node).
    pub reroute: Vec<(EntityId, Job)>,
}

/// The entities of one node.
#[derive(Debug)]
pub struct HostModel {
    rules: HostRules,
    entities: BTreeMap<EntityId, Slot>,
    steps: BTreeMap<u64, Step>,
    handing_off: BTreeSet<ShardId>,
}

/// Ids of steps and worker instances, unique in a world.
pub trait Ids {
    /// A fresh id.
    fn next_id(&mut self) -> u64;
    /// Whether a new step awaits (`false`: it ends in the same round).
    fn awaits(&mut self) -> bool;
    /// The value in the store for `entity`.
    fn stored(&self, entity: &str) -> u64;
}

impl HostModel {
    /// An empty host.
    pub fn new(rules: HostRules) -> Self {
        Self {
            rules,
            entities: BTreeMap::new(),
            steps: BTreeMap::new(),
            handing_off: BTreeSet::new(),
        }
    }

    /// Queues a message for its entity and runs what `serves` allows.
    pub fn deliver(
        &mut self,
        now: Micros,
        shard: ShardId,
        entity: EntityId,
        job: Job,
        serves: &dyn Fn(ShardId) -> bool,
        ids: &mut dyn Ids,
    ) -> HostOutput {
        let slot = self.entities.entry(entity.clone()).or_insert(Slot {
            shard,
            mailbox: VecDeque::new(),
            busy: None,
            value: None,
            stopping: false,
            worker: None,
        });
        slot.mailbox.push_back(job);
        let mut out = HostOutput::default();
        self.kick(now, &entity, serves, ids, &mut out);
        out
    }

    /// Runs queued messages of every idle entity whose shard is served, and
    /// stops daemon workers whose shard is not (the driver's tick).
    pub fn on_tick(
        &mut self,
        now: Micros,
        serves: &dyn Fn(ShardId) -> bool,
        ids: &mut dyn Ids,
    ) -> HostOutput {
        let mut out = HostOutput::default();
        for slot in self.entities.values_mut() {
            if !serves(slot.shard) {
                slot.worker = None;
            }
        }
        let ready: Vec<EntityId> = self
            .entities
            .iter()
            .filter(|(_, slot)| slot.busy.is_none() && !slot.mailbox.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for entity in ready {
            self.kick(now, &entity, serves, ids, &mut out);
        }
        self.finish_handoffs(&mut out);
        out
    }

    /// A step that awaited is ready to resume at `now`; `serves_now` says
    /// whether its shard is served on a fresh clock read.
    pub fn step_done(
        &mut self,
        now: Micros,
        id: u64,
        serves: &dyn Fn(ShardId) -> bool,
        ids: &mut dyn Ids,
    ) -> HostOutput {
        let mut out = HostOutput::default();
        let Some(step) = self.steps.remove(&id) else {
            return out;
        };
        let entity = step.entity.clone();
        let handing_off = self.handing_off.contains(&step.shard);
        let commit = !self.rules.steps_check_lease || (serves(step.shard) && !handing_off);
        if let Some(slot) = self.entities.get_mut(&entity) {
            slot.busy = None;
            if commit {
                slot.value = Some(step.read + 1);
            }
        }
        if commit {
            out.committed.push(step);
        } else {
            out.aborted.push(step);
        }
        self.kick(now, &entity, serves, ids, &mut out);
        self.finish_handoffs(&mut out);
        out
    }

    /// A daemon worker wants to act; returns whether it does.
    pub fn worker_acts(&mut self, entity: &str, instance: u64, serves: bool) -> bool {
        let Some(slot) = self.entities.get_mut(entity) else {
            return false;
        };
        if slot.worker != Some(instance) {
            return false;
        }
        if self.rules.daemons_check_lease && !serves {
            slot.worker = None;
            return false;
        }
        true
    }

    /// Handoff: stop the entities of `shard` once idle.
    pub fn stop_shard(&mut self, shard: ShardId) -> HostOutput {
        let mut out = HostOutput::default();
        self.handing_off.insert(shard);
        for (id, slot) in self.entities.iter_mut().filter(|(_, s)| s.shard == shard) {
            slot.stopping = true;
            slot.worker = None;
            if self.rules.steps_check_lease {
                for job in slot.mailbox.drain(..) {
                    out.reroute.push((id.clone(), job));
                }
                if let Some(step) = slot.busy.take().and_then(|step| self.steps.remove(&step)) {
                    out.aborted.push(step);
                }
            }
        }
        self.finish_handoffs(&mut out);
        out
    }

    /// The shard lives elsewhere now: discard its entities; their queued
    /// messages are routed again.
    pub fn drop_shard(&mut self, shard: ShardId) -> HostOutput {
        let mut out = HostOutput::default();
        let ids: Vec<EntityId> = self
            .entities
            .iter()
            .filter(|(_, slot)| slot.shard == shard)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(mut slot) = self.entities.remove(&id) {
                for job in slot.mailbox.drain(..) {
                    out.reroute.push((id.clone(), job));
                }
                if self.rules.steps_check_lease {
                    if let Some(step) = slot.busy.and_then(|step| self.steps.remove(&step)) {
                        out.aborted.push(step);
                    }
                }
            }
        }
        self.handing_off.remove(&shard);
        out
    }

    fn kick(
        &mut self,
        now: Micros,
        entity: &EntityId,
        serves: &dyn Fn(ShardId) -> bool,
        ids: &mut dyn Ids,
        out: &mut HostOutput,
    ) {
        let check = self.rules.steps_check_lease;
        let Some(slot) = self.entities.get_mut(entity) else {
            return;
        };
        // A handoff under the pre-fix rules runs the mailbox without a
        // lease check; otherwise a step starts only on a served shard.
        let allowed = if slot.stopping {
            !check
        } else {
            serves(slot.shard)
        };
        while slot.busy.is_none() && allowed {
            let Some(job) = slot.mailbox.pop_front() else {
                break;
            };
            match job.message {
                SimMessage::KeepAlive => {
                    if slot.worker.is_none() && !slot.stopping {
                        let instance = ids.next_id();
                        slot.worker = Some(instance);
                        out.workers_started.push((entity.clone(), instance));
                    }
                }
                SimMessage::Increment => {
                    let read = *slot.value.get_or_insert_with(|| ids.stored(entity));
                    let step = Step {
                        entity: entity.clone(),
                        shard: slot.shard,
                        started: now,
                        read,
                        reply_to: job.reply_to,
                    };
                    if ids.awaits() {
                        let id = ids.next_id();
                        slot.busy = Some(id);
                        self.steps.insert(id, step);
                        out.awaiting.push(id);
                    } else {
                        slot.value = Some(read + 1);
                        out.committed.push(step);
                    }
                }
            }
        }
    }

    /// Removes the stopped entities of handed-off shards and reports the
    /// shards whose entities are all gone.
    fn finish_handoffs(&mut self, out: &mut HostOutput) {
        let shards: Vec<ShardId> = self.handing_off.iter().copied().collect();
        for shard in shards {
            let pending = self.entities.values().any(|slot| {
                slot.shard == shard && (slot.busy.is_some() || !slot.mailbox.is_empty())
            });
            if pending {
                continue;
            }
            self.entities.retain(|_, slot| slot.shard != shard);
            self.handing_off.remove(&shard);
            out.shards_stopped.push(shard);
        }
    }
}
