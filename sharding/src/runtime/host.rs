//! The entities that live in one region: their mailboxes, the handler
//! invocations in flight, passivation and shard stops.
//!
//! An idle entity is a map entry (its id, the value, an empty mailbox and a
//! timestamp), not a task: a million idle entities cost a million map
//! entries. A message for an idle entity starts one future that runs the
//! handler (and `started` first, for a new entity); the future hands the
//! entity back when done, and the next queued message starts the next one.
//!
//! Rule 1 holds per poll: every step passes its shard's gate (see
//! [`crate::lease_gate`]). A step checks the lease itself when it starts and,
//! if it is gone, hands its message back untouched; a step that waits is
//! polled again only while the lease holds, and is interrupted (its caller
//! gets [`DeliveryError::Interrupted`], the instance is gone) once it is
//! lost or its shard is fenced, handed off or dropped.

use std::collections::{BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, Abortable, BoxFuture};
use futures::stream::FuturesUnordered;
use futures::FutureExt;
use rustc_hash::{FxBuildHasher, FxHashMap};

use super::wire::ShardingError;
use crate::entity::{Entity, EntityContext, Factory};
use crate::error::DeliveryError;
use crate::ids::{ReplyTo, ShardId};
use crate::lease_gate::{Gates, LeaseBound, ShardLease};

/// One message waiting for its entity.
pub(crate) struct Job<M> {
    pub(crate) message: M,
    pub(crate) reply_to: Option<ReplyTo>,
}

/// What a finished entity future reports.
pub(crate) enum Finished<E: Entity> {
    /// A message was handled; the entity comes back.
    Handled {
        shard: ShardId,
        id: Arc<str>,
        entity: E,
        passivate: bool,
        reply: E::Reply,
        reply_to: Option<ReplyTo>,
    },
    /// `stopped` ran; the entity is gone.
    Stopped { shard: ShardId, id: Arc<str> },
    /// The handler (or a hook) panicked; the instance is gone.
    Panicked {
        shard: ShardId,
        id: Arc<str>,
        reply_to: Option<ReplyTo>,
    },
    /// The step found its shard's lease gone when it started: nothing ran;
    /// the entity and the message (none for a stop) come back.
    Refused {
        shard: ShardId,
        id: Arc<str>,
        entity: E,
        fresh: bool,
        job: Option<Job<E::Message>>,
    },
    /// The step waited and its lease was lost meanwhile: it was not polled
    /// again; the instance is gone.
    Interrupted {
        shard: ShardId,
        id: Arc<str>,
        reply_to: Option<ReplyTo>,
    },
}

impl<E: Entity> Finished<E> {
    /// The entity this step belonged to.
    fn entity(&self) -> (ShardId, &Arc<str>) {
        match self {
            Finished::Handled { shard, id, .. }
            | Finished::Stopped { shard, id }
            | Finished::Panicked { shard, id, .. }
            | Finished::Refused { shard, id, .. }
            | Finished::Interrupted { shard, id, .. } => (*shard, id),
        }
    }

    fn kind(&self) -> (&'static str, ShardId, &str) {
        let kind = match self {
            Finished::Handled { .. } => "handled",
            Finished::Stopped { .. } => "stopped",
            Finished::Panicked { .. } => "panicked",
            Finished::Refused { .. } => "refused",
            Finished::Interrupted { .. } => "interrupted",
        };
        let (shard, id) = self.entity();
        (kind, shard, id)
    }
}

/// A step that waits: polled only under its shard's lease (see
/// [`LeaseBound`]), and interrupted at once when its shard's gate is shut.
pub(crate) struct Running<E: Entity> {
    step: Abortable<LeaseBound<BoxFuture<'static, Finished<E>>>>,
    shard: ShardId,
    id: Arc<str>,
    reply_to: Option<ReplyTo>,
}

impl<E: Entity> std::future::Future for Running<E> {
    type Output = Finished<E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Finished<E>> {
        let this = self.get_mut();
        std::pin::Pin::new(&mut this.step).poll(cx).map(|result| {
            result
                .ok()
                .flatten()
                .unwrap_or_else(|| Finished::Interrupted {
                    shard: this.shard,
                    id: this.id.clone(),
                    reply_to: this.reply_to.take(),
                })
        })
    }
}

/// What the driver must do after an entity future finished.
pub(crate) struct Outcome<R> {
    /// The answer for the asker, if any (`Err` after a panic or an
    /// interruption).
    pub(crate) reply: Option<(ReplyTo, Result<R, ShardingError>)>,
    /// Every entity of this shard has stopped for a handoff.
    pub(crate) shard_stopped: Option<ShardId>,
}

struct Slot<E: Entity> {
    /// `None` while a future owns it (or before the first message).
    entity: Option<E>,
    /// `started` has run for this instance.
    live: bool,
    busy: bool,
    /// Stop once the mailbox is empty (passivation or handoff).
    stopping: bool,
    mailbox: VecDeque<Job<E::Message>>,
    last_active: Instant,
    /// Interrupts the step that waits, if one does.
    waiting: Option<AbortHandle>,
}

/// The entities of one shard, by id.
type Slots<E> = hashbrown::HashMap<Arc<str>, Slot<E>, FxBuildHasher>;

/// The entities of one region.
pub(crate) struct Host<E: Entity> {
    factory: Factory<E>,
    gates: Arc<Gates>,
    shards: FxHashMap<ShardId, Slots<E>>,
    running: FuturesUnordered<Running<E>>,
    /// Shards being stopped for a handoff.
    handing_off: BTreeSet<ShardId>,
    /// Shards with work held back because their gate was shut.
    paused: BTreeSet<ShardId>,
    /// Shards whose entities were told they are fenced.
    fenced: BTreeSet<ShardId>,
    entities: usize,
    /// What finished since the driver last looked (see [`Host::outcomes`]).
    outcomes: Vec<Outcome<E::Reply>>,
    /// The driver task's waker: an entity future is polled once right away
    /// with it, and only one that does not finish at once is kept running.
    waker: Waker,
}

impl<E: Entity> Host<E> {
    pub(crate) fn new(factory: Factory<E>, gates: Arc<Gates>) -> Self {
        Self {
            factory,
            gates,
            shards: FxHashMap::default(),
            running: FuturesUnordered::new(),
            handing_off: BTreeSet::new(),
            paused: BTreeSet::new(),
            fenced: BTreeSet::new(),
            entities: 0,
            outcomes: Vec::new(),
            waker: futures::task::noop_waker(),
        }
    }

    /// The futures in flight, for the driver to poll.
    pub(crate) fn running(&mut self) -> &mut FuturesUnordered<Running<E>> {
        &mut self.running
    }

    /// Live entities (idle or busy).
    pub(crate) fn entity_count(&self) -> usize {
        self.entities
    }

    /// Whether entity `id` lives here (idle or busy).
    pub(crate) fn contains(&self, shard: ShardId, id: &str) -> bool {
        self.shards
            .get(&shard)
            .is_some_and(|slots| slots.contains_key(id))
    }

    /// Entities of one shard.
    pub(crate) fn shard_entities(&self, shard: ShardId) -> usize {
        self.shards.get(&shard).map_or(0, Slots::len)
    }

    /// Queues a message for an entity (starting it if it does not run) and
    /// runs it now if the shard's gate is open.
    pub(crate) fn deliver(&mut self, shard: ShardId, id: &str, job: Job<E::Message>, now: Instant) {
        let slot = match self.shards.entry(shard).or_default().entry_ref(id) {
            hashbrown::hash_map::EntryRef::Occupied(slot) => slot.into_mut(),
            hashbrown::hash_map::EntryRef::Vacant(vacant) => {
                self.entities += 1;
                let slot = Slot {
                    entity: None,
                    live: false,
                    busy: false,
                    stopping: false,
                    mailbox: VecDeque::new(),
                    last_active: now,
                    waiting: None,
                };
                vacant.insert_with_key(id.into(), slot)
            }
        };
        slot.mailbox.push_back(job);
        slot.last_active = now;
        tracing::trace!(%shard, id, busy = slot.busy, stopping = slot.stopping, queued = slot.mailbox.len(), "host deliver");
        self.kick(shard, id);
    }

    /// Starts the next queued steps of every paused shard whose gate is
    /// open again.
    pub(crate) fn resume(&mut self) {
        let gates = &self.gates;
        let ready: Vec<ShardId> = self
            .paused
            .iter()
            .copied()
            .filter(|s| gates.runs(*s))
            .collect();
        for shard in ready {
            self.paused.remove(&shard);
            let keys: Vec<Arc<str>> = self
                .shards
                .get(&shard)
                .map(|slots| slots.keys().cloned().collect())
                .unwrap_or_default();
            for key in keys {
                self.kick(shard, &key);
            }
        }
    }

    /// The waker of the task that polls [`Host::running`]; set before each
    /// round of work.
    pub(crate) fn set_waker(&mut self, waker: &Waker) {
        if !self.waker.will_wake(waker) {
            self.waker = waker.clone();
        }
    }

    /// What finished since the last call: replies to send, shards stopped.
    pub(crate) fn take_outcomes(&mut self) -> Vec<Outcome<E::Reply>> {
        std::mem::take(&mut self.outcomes)
    }

    /// Runs the next steps of an idle entity: its queued messages, then its
    /// stop if one is due. A step that finishes at once (most handlers) is
    /// settled here and the next one runs; one that waits is left running.
    /// With the shard's gate shut, nothing runs and the shard is paused.
    fn kick(&mut self, shard: ShardId, id: &str) {
        if !self.gates.runs(shard) {
            self.paused.insert(shard);
            return;
        }
        let lease = self.gates.lease(shard);
        let Some((key, slot)) = self
            .shards
            .get_mut(&shard)
            .and_then(|slots| slots.get_key_value_mut(id))
        else {
            return;
        };
        loop {
            if slot.busy {
                return;
            }
            let (mut step, reply_to) = if let Some(job) = slot.mailbox.pop_front() {
                let fresh = !slot.live;
                let entity = slot.entity.take().unwrap_or_else(|| (self.factory)(id));
                slot.live = true;
                slot.busy = true;
                let reply_to = job.reply_to.clone();
                let step = handle_one(shard, key.clone(), entity, fresh, job, lease.clone());
                (step, reply_to)
            } else if slot.stopping {
                slot.busy = true;
                match slot.entity.take() {
                    Some(entity) if slot.live => {
                        (stop_one(shard, key.clone(), entity, lease.clone()), None)
                    }
                    _ => {
                        // Never started: nothing to stop.
                        self.remove(shard, id);
                        self.report_if_stopped(shard);
                        return;
                    }
                }
            } else {
                return;
            };
            match step.as_mut().poll(&mut Context::from_waker(&self.waker)) {
                Poll::Pending => {
                    let (step, interrupt) =
                        futures::future::abortable(LeaseBound::new(step, lease));
                    slot.waiting = Some(interrupt);
                    self.running.push(Running {
                        step,
                        shard,
                        id: key.clone(),
                        reply_to,
                    });
                    return;
                }
                Poll::Ready(finished) => {
                    let refused = matches!(finished, Finished::Refused { .. });
                    if !settle_slot(Some(slot), &mut self.outcomes, finished) {
                        self.remove(shard, id);
                        self.report_if_stopped(shard);
                        return;
                    }
                    if refused {
                        self.paused.insert(shard);
                        return;
                    }
                }
            }
        }
    }

    /// Takes back a future that finished later (from [`Host::running`]) and
    /// runs the entity's next steps (if its shard's gate is open).
    pub(crate) fn finished(&mut self, finished: Finished<E>) {
        let (shard, id) = finished.entity();
        let (shard, id) = (shard, id.clone());
        if self.settle(finished) {
            self.kick(shard, &id);
        }
    }

    /// The gate of `shard` was shut: interrupts its steps that wait (they
    /// come back as [`Finished::Interrupted`] at once).
    pub(crate) fn interrupt(&mut self, shard: ShardId) {
        if let Some(slots) = self.shards.get_mut(&shard) {
            for slot in slots.values_mut() {
                if let Some(waiting) = slot.waiting.take() {
                    waiting.abort();
                }
            }
        }
    }

    /// Puts a finished step's result in place; true if the entity is still
    /// here and idle (its next step may run).
    fn settle(&mut self, finished: Finished<E>) -> bool {
        let (shard, id) = finished.entity();
        let (shard, id) = (shard, id.clone());
        let slot = self.shards.get_mut(&shard).and_then(|s| s.get_mut(&id));
        if settle_slot(slot, &mut self.outcomes, finished) {
            return true;
        }
        self.remove(shard, &id);
        self.report_if_stopped(shard);
        false
    }

    /// A shard being handed off whose last entity is gone is reported once.
    fn report_if_stopped(&mut self, shard: ShardId) {
        if !self.shards.contains_key(&shard) && self.handing_off.remove(&shard) {
            self.outcomes.push(Outcome {
                reply: None,
                shard_stopped: Some(shard),
            });
        }
    }

    /// Stops every entity of `shard` after the messages already queued for
    /// it (handoff); once none is left, [`Host::outcomes`] reports the shard
    /// stopped (at once if nothing runs).
    pub(crate) fn stop_shard(&mut self, shard: ShardId) {
        self.handing_off.insert(shard);
        self.paused.remove(&shard);
        let keys: Vec<Arc<str>> = match self.shards.get_mut(&shard) {
            Some(slots) => {
                for slot in slots.values_mut() {
                    slot.stopping = true;
                }
                slots.keys().cloned().collect()
            }
            None => Vec::new(),
        };
        for key in keys {
            self.kick(shard, &key);
        }
        self.report_if_stopped(shard);
    }

    /// Discards the entities of a shard that now lives elsewhere, without
    /// `stopped` (another instance may already run); steps that wait are
    /// interrupted. Returns the messages that were queued but not handled,
    /// to route again.
    pub(crate) fn drop_shard(&mut self, shard: ShardId) -> Vec<(Arc<str>, Job<E::Message>)> {
        self.interrupt(shard);
        self.paused.remove(&shard);
        self.handing_off.remove(&shard);
        self.fenced.remove(&shard);
        let Some(slots) = self.shards.remove(&shard) else {
            return Vec::new();
        };
        self.entities -= slots.len();
        slots
            .into_iter()
            .flat_map(|(id, slot)| slot.mailbox.into_iter().map(move |job| (id.clone(), job)))
            .collect()
    }

    /// Tells the idle entities of every shard whose gate is shut (once per
    /// fencing) that they are fenced.
    pub(crate) fn fence(&mut self) {
        for (shard, slots) in &mut self.shards {
            if self.gates.runs(*shard) {
                self.fenced.remove(shard);
            } else if self.fenced.insert(*shard) {
                for entity in slots.values_mut().filter_map(|slot| slot.entity.as_mut()) {
                    entity.fenced();
                }
            }
        }
    }

    /// Passivates every idle entity that received nothing for `idle`;
    /// how many.
    pub(crate) fn passivate_idle(&mut self, now: Instant, idle: Duration) -> usize {
        let mut due = Vec::new();
        for (shard, slots) in &mut self.shards {
            for (id, slot) in slots.iter_mut() {
                if !slot.busy && slot.mailbox.is_empty() && slot.last_active + idle <= now {
                    slot.stopping = true;
                    due.push((*shard, id.clone()));
                }
            }
        }
        let passivated = due.len();
        for (shard, id) in due {
            self.kick(shard, &id);
        }
        passivated
    }

    fn remove(&mut self, shard: ShardId, id: &str) {
        if let Some(slots) = self.shards.get_mut(&shard) {
            if slots.remove(id).is_some() {
                self.entities -= 1;
            }
            if slots.is_empty() {
                self.shards.remove(&shard);
            }
        }
    }
}

/// Puts a finished step's result into its entity's slot (`None`: the
/// shard was dropped meanwhile, this instance is stale) and queues the
/// reply; true if the entity is still here and idle. `Stopped` and a missing
/// slot give false: the caller removes what is left.
fn settle_slot<E: Entity>(
    slot: Option<&mut Slot<E>>,
    outcomes: &mut Vec<Outcome<E::Reply>>,
    finished: Finished<E>,
) -> bool {
    tracing::trace!(kind = ?finished.kind(), "host finished");
    match finished {
        Finished::Handled {
            entity,
            passivate,
            reply,
            reply_to,
            ..
        } => {
            answer(outcomes, reply_to, Ok(reply));
            let Some(slot) = slot else { return false };
            slot.entity = Some(entity);
            slot.busy = false;
            slot.waiting = None;
            slot.stopping |= passivate;
            true
        }
        Finished::Stopped { .. } => false,
        Finished::Panicked { id, reply_to, .. } => {
            let error = ShardingError::Remote(format!("entity {id} panicked"));
            answer(outcomes, reply_to, Err(error));
            lose_instance(slot)
        }
        Finished::Interrupted {
            shard, reply_to, ..
        } => {
            answer(
                outcomes,
                reply_to,
                Err(DeliveryError::Interrupted { shard }.into()),
            );
            lose_instance(slot)
        }
        Finished::Refused {
            shard,
            entity,
            fresh,
            job,
            ..
        } => {
            let Some(slot) = slot else {
                // The shard was dropped meanwhile: the message goes back to
                // its sender as interrupted (it never ran).
                if let Some(job) = job {
                    let error = DeliveryError::Interrupted { shard };
                    answer(outcomes, job.reply_to, Err(error.into()));
                }
                return false;
            };
            slot.entity = Some(entity);
            slot.live = !fresh;
            slot.busy = false;
            slot.waiting = None;
            if let Some(job) = job {
                slot.mailbox.push_front(job);
            }
            true
        }
    }
}

fn answer<R>(
    outcomes: &mut Vec<Outcome<R>>,
    reply_to: Option<ReplyTo>,
    result: Result<R, ShardingError>,
) {
    if let Some(to) = reply_to {
        outcomes.push(Outcome {
            reply: Some((to, result)),
            shard_stopped: None,
        });
    }
}

/// The instance is gone (it panicked or was interrupted): the next message
/// starts a new one.
fn lose_instance<E: Entity>(slot: Option<&mut Slot<E>>) -> bool {
    let Some(slot) = slot else { return false };
    slot.live = false;
    slot.busy = false;
    slot.waiting = None;
    slot.entity = None;
    true
}

fn handle_one<E: Entity>(
    shard: ShardId,
    id: Arc<str>,
    mut entity: E,
    fresh: bool,
    job: Job<E::Message>,
    lease: ShardLease,
) -> BoxFuture<'static, Finished<E>> {
    let reply_to = job.reply_to.clone();
    let panic_id = id.clone();
    let run = async move {
        // Rule 1 on a fresh clock read, inside the step's first poll: a
        // pause between the driver's decision and this point cannot let
        // the message run after the lease.
        if !lease.is_valid() {
            return Finished::Refused {
                shard,
                id,
                entity,
                fresh,
                job: Some(job),
            };
        }
        let mut ctx = EntityContext::new(id, lease);
        if fresh {
            entity.started(&mut ctx).await;
        }
        let reply = entity.handle(&mut ctx, job.message).await;
        Finished::Handled {
            shard,
            passivate: ctx.wants_passivation(),
            id: ctx.into_id(),
            entity,
            reply,
            reply_to: job.reply_to,
        }
    };
    AssertUnwindSafe(run)
        .catch_unwind()
        .map(move |result| {
            result.unwrap_or(Finished::Panicked {
                shard,
                id: panic_id,
                reply_to,
            })
        })
        .boxed()
}

fn stop_one<E: Entity>(
    shard: ShardId,
    id: Arc<str>,
    mut entity: E,
    lease: ShardLease,
) -> BoxFuture<'static, Finished<E>> {
    let stopped_id = id.clone();
    let run = async move {
        // `stopped` runs only under a valid lease (see `handle_one`).
        if !lease.is_valid() {
            return Some(Finished::Refused {
                shard,
                id,
                entity,
                fresh: false,
                job: None,
            });
        }
        let mut ctx = EntityContext::new(id, lease);
        entity.stopped(&mut ctx).await;
        None
    };
    // A panicking `stopped` still ends the instance.
    AssertUnwindSafe(run)
        .catch_unwind()
        .map(move |result| {
            result.ok().flatten().unwrap_or(Finished::Stopped {
                shard,
                id: stopped_id,
            })
        })
        .boxed()
}
