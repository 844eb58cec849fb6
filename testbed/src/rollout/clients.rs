//! The clients of a rollout: each asks through one node, continuously,
//! and steps aside while that node rolls (as a load balancer whose
//! readiness probe fails would). An ask counts as failed only if its node
//! was not rolling at any time during it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mesh::sync::lock;
use sharding::EntityRef;

use crate::load::{Ping, Probe};

/// The phase an ask's latency is recorded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the measurement.
    Warmup = 0,
    /// The steady state before the rollout.
    Steady = 1,
    /// From the first leave to the last node's return.
    Rolling = 2,
}

/// One node as its clients see it: its current handle, and whether it rolls.
#[derive(Default)]
pub(crate) struct NodeSlot {
    entities: Mutex<Option<EntityRef<Probe>>>,
    /// Odd while the node rolls; changes at each start and end of a roll.
    rolls: AtomicU64,
}

impl NodeSlot {
    /// Clients stop asking through this node.
    pub(crate) fn begin_roll(&self) {
        *lock(&self.entities) = None;
        self.rolls.fetch_add(1, Ordering::SeqCst);
    }

    /// The node's new incarnation serves, through `entities`.
    pub(crate) fn end_roll(&self, entities: EntityRef<Probe>) {
        *lock(&self.entities) = Some(entities);
        self.rolls.fetch_add(1, Ordering::SeqCst);
    }

    /// Installs the first handle.
    pub(crate) fn serve(&self, entities: EntityRef<Probe>) {
        *lock(&self.entities) = Some(entities);
    }

    /// The handle to ask through and the roll count, unless it rolls.
    fn current(&self) -> Option<(EntityRef<Probe>, u64)> {
        let rolls = self.rolls.load(Ordering::SeqCst);
        let entities = lock(&self.entities).clone()?;
        (rolls % 2 == 0).then_some((entities, rolls))
    }
}

/// What the clients saw.
pub(crate) struct Outcome {
    pub(crate) answered: u64,
    pub(crate) failed: u64,
    /// Failed asks through a node that was rolling meanwhile (not counted).
    pub(crate) set_aside: u64,
    /// The first few failures.
    pub(crate) failures: Vec<String>,
    pub(crate) steady: Histogram<u64>,
    pub(crate) rolling: Histogram<u64>,
    /// The longest answered ask (µs) while each node (by index) rolled.
    pub(crate) longest_by_roll: BTreeMap<usize, u64>,
}

struct Shared {
    stop: AtomicBool,
    phase: AtomicU8,
    answered: AtomicU64,
    failed: AtomicU64,
    set_aside: AtomicU64,
    failures: Mutex<Vec<String>>,
    /// Latencies in µs by phase (warm-up, steady, rolling).
    latencies: [Mutex<Histogram<u64>>; 3],
    /// The index of the node rolling (or that rolled last).
    rolling: AtomicUsize,
    longest_by_roll: Mutex<BTreeMap<usize, u64>>,
}

/// The running clients.
pub(crate) struct Clients {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Failures kept verbatim for the report.
const FAILURES_KEPT: usize = 10;

impl Clients {
    /// `per_node` clients on each of `slots`, asking `entities` in turn
    /// with `timeout` each.
    pub(crate) fn start(
        slots: &[Arc<NodeSlot>],
        per_node: usize,
        entities: &Arc<Vec<String>>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let histogram = || Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).map(Mutex::new);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            phase: AtomicU8::new(Phase::Warmup as u8),
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            set_aside: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
            latencies: [histogram()?, histogram()?, histogram()?],
            rolling: AtomicUsize::new(0),
            longest_by_roll: Mutex::new(BTreeMap::new()),
        });
        let mut tasks = Vec::new();
        for (index, slot) in slots.iter().enumerate() {
            for client in 0..per_node {
                let (slot, shared, entities) = (slot.clone(), shared.clone(), entities.clone());
                let first = (index * per_node + client) * 7;
                tasks.push(tokio::spawn(ask_in_turn(
                    slot, shared, entities, first, timeout,
                )));
            }
        }
        Ok(Self { shared, tasks })
    }

    /// Latencies from now on count in `phase`.
    pub(crate) fn phase(&self, phase: Phase) {
        self.shared.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// Node `index` rolls now: the longest ask is kept per node rolled.
    pub(crate) fn rolling(&self, index: usize) {
        self.shared.rolling.store(index, Ordering::SeqCst);
    }

    /// Stops every client and returns what they saw.
    pub(crate) async fn stop(self) -> Outcome {
        self.shared.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            let _ = task.await;
        }
        let shared = &self.shared;
        Outcome {
            answered: shared.answered.load(Ordering::SeqCst),
            failed: shared.failed.load(Ordering::SeqCst),
            set_aside: shared.set_aside.load(Ordering::SeqCst),
            failures: lock(&shared.failures).clone(),
            steady: lock(&shared.latencies[Phase::Steady as usize]).clone(),
            rolling: lock(&shared.latencies[Phase::Rolling as usize]).clone(),
            longest_by_roll: lock(&shared.longest_by_roll).clone(),
        }
    }
}

/// How long a client whose node rolls waits before it looks again.
const STEP_ASIDE: Duration = Duration::from_millis(10);

async fn ask_in_turn(
    slot: Arc<NodeSlot>,
    shared: Arc<Shared>,
    entities: Arc<Vec<String>>,
    first: usize,
    timeout: Duration,
) {
    let mut next = first;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some((via, rolls)) = slot.current() else {
            tokio::time::sleep(STEP_ASIDE).await;
            continue;
        };
        let entity = &entities[next % entities.len()];
        next += 1;
        let phase = shared.phase.load(Ordering::SeqCst) as usize;
        let roll = shared.rolling.load(Ordering::SeqCst);
        let start = Instant::now();
        let result = via.ask(entity, Ping, timeout).await;
        let micros = start.elapsed().as_micros() as u64;
        match result {
            Ok(()) => {
                shared.answered.fetch_add(1, Ordering::SeqCst);
                let _ = lock(&shared.latencies[phase]).record(micros.max(1));
                if phase == Phase::Rolling as usize {
                    let mut longest = lock(&shared.longest_by_roll);
                    let longest = longest.entry(roll).or_default();
                    *longest = (*longest).max(micros);
                }
            }
            Err(_) if slot.rolls.load(Ordering::SeqCst) != rolls => {
                shared.set_aside.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) => {
                shared.failed.fetch_add(1, Ordering::SeqCst);
                let mut failures = lock(&shared.failures);
                if failures.len() < FAILURES_KEPT {
                    failures.push(format!("{entity}: {error}"));
                }
            }
        }
    }
}
