//! The invariant checker shared by every scenario, and the load that feeds it.
//!
//! The entity under test is an account that keeps its state in memory
//! (loaded from the [`Store`] when it starts) and, between reading that
//! state and writing the next record, usually awaits a random 1-50 ms as a
//! stand-in for I/O (a quarter of the writes happen at once, in the step's
//! first poll). Two live instances of one account therefore disagree about
//! its state, and the store shows it.
//!
//! - (i) single writer, seen three ways: two instances busy at overlapping
//!   times (every pair of intervals is compared); store records whose
//!   sequence numbers are not exactly 1, 2, 3, ... (two instances wrote
//!   from diverging states, or one replayed a stale one); and writers in
//!   turns (A, B, A).
//! - (ii) every ask ends: asks carry a timeout, and every client task must
//!   finish within a deadline once told to stop.
//! - (iii) after recovery every entity answers.
//! - (iv) acknowledged writes: every acknowledged increment is in the store
//!   exactly once, at the sequence number the entity answered; nothing is in
//!   the store that no client sent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use sharding::{
    Entity, EntityContext, EntityRef, EntityType, Sharding, ShardingConfig, ShardingError,
};
use testbed::Cluster;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Deadline of recovery waits (the benchmark states real times).
pub const RECOVER: Duration = Duration::from_secs(30);
/// Timeout of one client ask before it retries.
pub const ASK: Duration = Duration::from_secs(2);
/// Entities the clients write to.
pub const ENTITIES: u64 = 30;
/// The longest stand-in for I/O in a handler.
const IO: Duration = Duration::from_millis(50);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// One record of an account in the store.
#[derive(Clone, Copy, Debug)]
struct Record {
    seq: u64,
    key: u64,
    instance: u64,
}

/// The user's database, shared by every node of the test: an append-only
/// log per account. It takes every write it is given (it has no locks of
/// its own: single writer is sharding's promise).
#[derive(Default)]
pub struct Store {
    logs: Mutex<BTreeMap<String, Vec<Record>>>,
    /// Per entity: when each instance was busy handling a message.
    busy: Mutex<BTreeMap<String, Vec<Busy>>>,
    /// Entities with a `SlowAdd` that has started its wait.
    slow: Mutex<BTreeSet<String>>,
}

/// (start, end, instance) of one handled message.
type Busy = (Instant, Instant, u64);

impl Store {
    fn append(&self, entity: &str, record: Record) {
        let mut logs = self.logs.lock().unwrap();
        logs.entry(entity.to_string()).or_default().push(record);
    }

    /// The key -> sequence map of an account, as a starting instance loads it.
    fn load(&self, entity: &str) -> HashMap<u64, u64> {
        let logs = self.logs.lock().unwrap();
        logs.get(entity)
            .map(|log| log.iter().map(|r| (r.key, r.seq)).collect())
            .unwrap_or_default()
    }

    fn keys(&self, entity: &str) -> BTreeMap<u64, Vec<u64>> {
        let logs = self.logs.lock().unwrap();
        let mut keys: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for record in logs.get(entity).into_iter().flatten() {
            keys.entry(record.key).or_default().push(record.seq);
        }
        keys
    }

    /// Whether a `SlowAdd` of `entity` has started its wait.
    pub fn slow_step_started(&self, entity: &str) -> bool {
        self.slow.lock().unwrap().contains(entity)
    }

    fn handled(&self, entity: &str, start: Instant, instance: u64) {
        let mut busy = self.busy.lock().unwrap();
        let entry = busy.entry(entity.to_string()).or_default();
        entry.push((start, Instant::now(), instance));
    }

    /// Every sign of two live instances of one entity.
    pub fn single_writer_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (entity, intervals) in self.busy.lock().unwrap().iter() {
            out.extend(overlaps(intervals).into_iter().map(|(a, b)| {
                format!("{entity}: instances {a} and {b} busy at overlapping times")
            }));
        }
        for (entity, log) in self.logs.lock().unwrap().iter() {
            if let Some(at) = log
                .iter()
                .enumerate()
                .position(|(i, r)| r.seq != i as u64 + 1)
            {
                let around: Vec<(u64, u64)> = log[at.saturating_sub(2)..(at + 3).min(log.len())]
                    .iter()
                    .map(|r| (r.seq, r.instance))
                    .collect();
                out.push(format!(
                    "{entity}: record {} has sequence {} (seq, instance around it: {around:?})",
                    at + 1,
                    log[at].seq
                ));
            }
            let mut done = BTreeSet::new();
            let mut current = None;
            for record in log {
                if current != Some(record.instance) {
                    if !done.insert(record.instance) {
                        let writers: Vec<u64> = log.iter().map(|r| r.instance).collect();
                        out.push(format!("{entity}: writers in turns {writers:?}"));
                        break;
                    }
                    current = Some(record.instance);
                }
            }
        }
        out
    }
}

/// Every pair of intervals of two different instances that overlap.
fn overlaps(intervals: &[Busy]) -> Vec<(u64, u64)> {
    let mut sorted = intervals.to_vec();
    sorted.sort();
    let mut found = Vec::new();
    for (i, (_, end, a)) in sorted.iter().enumerate() {
        for (start, _, b) in sorted[i + 1..].iter().take_while(|(start, ..)| start < end) {
            if a != b && start < end {
                found.push((*a, *b));
            }
        }
    }
    found
}

/// An account. `Add { key }` appends the next record unless the key is
/// already in (then it answers that record's sequence): a client retries
/// with the same key.
pub struct Account {
    id: String,
    instance: u64,
    store: Arc<Store>,
    /// key -> sequence of every record this instance knows.
    applied: HashMap<u64, u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum AccountMsg {
    /// Answers the sequence of the record with this key.
    Add { key: u64 },
    /// Like `Add`, with a fixed wait between reading and writing.
    SlowAdd { key: u64, io_ms: u64 },
    /// Like `Add`, writing at once (in the step's first poll).
    AddNow { key: u64 },
    /// Answers the count of records.
    Get,
}

impl Account {
    async fn add(&mut self, key: u64, io: Duration) -> u64 {
        if let Some(seq) = self.applied.get(&key) {
            return *seq;
        }
        let seq = self.applied.len() as u64 + 1;
        if !io.is_zero() {
            tokio::time::sleep(io).await;
        }
        let record = Record {
            seq,
            key,
            instance: self.instance,
        };
        self.store.append(&self.id, record);
        self.applied.insert(key, seq);
        seq
    }
}

impl Entity for Account {
    type Message = AccountMsg;
    type Reply = u64;

    async fn started(&mut self, _ctx: &mut EntityContext) {
        self.applied = self.store.load(&self.id);
    }

    async fn handle(&mut self, _ctx: &mut EntityContext, message: AccountMsg) -> u64 {
        let start = Instant::now();
        let answer = match message {
            AccountMsg::Add { key } => {
                let io = {
                    let mut rng = rand::thread_rng();
                    if rng.gen_bool(0.25) {
                        Duration::ZERO
                    } else {
                        rng.gen_range(Duration::from_millis(1)..=IO)
                    }
                };
                self.add(key, io).await
            }
            AccountMsg::AddNow { key } => self.add(key, Duration::ZERO).await,
            AccountMsg::SlowAdd { key, io_ms } => {
                self.store.slow.lock().unwrap().insert(self.id.clone());
                self.add(key, Duration::from_millis(io_ms)).await
            }
            AccountMsg::Get => self.applied.len() as u64,
        };
        self.store.handled(&self.id, start, self.instance);
        answer
    }
}

/// Everything a scenario needs: the cluster, the store and each node's ref.
pub struct World {
    pub cluster: Cluster,
    pub store: Arc<Store>,
    pub refs: Mutex<BTreeMap<String, EntityRef<Account>>>,
    shardings: Mutex<Vec<Sharding>>,
    instances: Arc<AtomicU64>,
    config: ShardingConfig,
}

/// The sharding config of the failover tests (defaults, fewer shards).
pub fn sharding_config() -> ShardingConfig {
    ShardingConfig {
        number_of_shards: 30,
        ..ShardingConfig::default()
    }
}

impl World {
    pub async fn start(
        cluster: Cluster,
        config: ShardingConfig,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let world = Self {
            cluster,
            store: Arc::default(),
            refs: Mutex::default(),
            shardings: Mutex::default(),
            instances: Arc::default(),
            config,
        };
        for name in world.cluster.names() {
            world.start_node(&name).await?;
        }
        let first = world.cluster.names()[0].clone();
        let nodes = world.cluster.names().len();
        let via = world.entity_ref(&first);
        world
            .cluster
            .wait_until_async(RECOVER, "every region registered", |_| {
                let via = via.clone();
                async move {
                    via.coordinator_state(ASK)
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|view| view.regions.len() == nodes)
                }
            })
            .await?;
        Ok(world)
    }

    /// Starts sharding and the account type on `name` (again after a restart).
    pub async fn start_node(&self, name: &str) -> TestResult {
        let sharding = Sharding::start(&self.cluster.node(name), self.config.clone()).await?;
        let store = self.store.clone();
        let instances = self.instances.clone();
        let accounts = sharding.init(EntityType::new("account", move |id| Account {
            id: id.to_string(),
            instance: instances.fetch_add(1, Ordering::Relaxed),
            store: store.clone(),
            applied: HashMap::new(),
        }))?;
        self.shardings.lock().unwrap().push(sharding);
        self.refs.lock().unwrap().insert(name.to_string(), accounts);
        Ok(())
    }

    pub fn entity_ref(&self, name: &str) -> EntityRef<Account> {
        self.refs.lock().unwrap()[name].clone()
    }

    /// Writes once to every entity from `via` (so that all are allocated).
    pub async fn touch_all(&self, via: &str) -> TestResult {
        let accounts = self.entity_ref(via);
        for i in 0..ENTITIES {
            accounts
                .ask(&entity(i), AccountMsg::Get, RECOVER)
                .await
                .map_err(|e| format!("{} via {via}: {e}", entity(i)))?;
        }
        Ok(())
    }

    /// (iii): waits until every entity answers through each of `via`;
    /// returns how long that took.
    pub async fn wait_all_answer(
        &self,
        via: &[&str],
    ) -> Result<Duration, Box<dyn std::error::Error>> {
        let started = Instant::now();
        let refs: Vec<EntityRef<Account>> = via.iter().map(|n| self.entity_ref(n)).collect();
        let refs = &refs;
        self.cluster
            .wait_until_async(RECOVER, "every entity to answer", |_| async move {
                for accounts in refs {
                    for i in 0..ENTITIES {
                        let quick = Duration::from_millis(500);
                        if accounts
                            .ask(&entity(i), AccountMsg::Get, quick)
                            .await
                            .is_err()
                        {
                            return false;
                        }
                    }
                }
                true
            })
            .await?;
        Ok(started.elapsed())
    }

    /// (i) and (iv) after the clients stopped.
    pub fn verify(&self, history: &History) -> TestResult {
        let violations = self.violations(history);
        assert!(violations.is_empty(), "{violations:#?}");
        Ok(())
    }

    /// What `verify` asserts, as a list.
    pub fn violations(&self, history: &History) -> Vec<String> {
        let mut out = self.store.single_writer_violations();
        for i in 0..ENTITIES {
            let id = entity(i);
            let stored = self.store.keys(&id);
            let acked = history.acked.get(&id);
            for (key, seq) in acked.into_iter().flatten() {
                match stored.get(key).map(Vec::as_slice) {
                    Some([stored_seq]) if stored_seq == seq => {}
                    other => out.push(format!(
                        "{id}: key {key} acknowledged at {seq}, stored at {other:?}"
                    )),
                }
            }
            for (key, seqs) in &stored {
                if seqs.len() > 1 {
                    out.push(format!("{id}: key {key} stored {} times", seqs.len()));
                }
                let sent = acked.is_some_and(|a| a.contains_key(key))
                    || history.unknown.contains(&(id.clone(), *key));
                if !sent {
                    out.push(format!("{id}: key {key} stored but never sent"));
                }
            }
        }
        out
    }
}

pub fn entity(i: u64) -> String {
    format!("acct-{i}")
}

/// What the clients saw: the sequence each acknowledged key got, and the
/// keys whose outcome is unknown (the client's node stopped while it tried).
#[derive(Debug, Default)]
pub struct History {
    pub acked: BTreeMap<String, BTreeMap<u64, u64>>,
    pub unknown: BTreeSet<(String, u64)>,
    pub retries: u64,
}

impl History {
    pub fn acked_count(&self) -> usize {
        self.acked.values().map(BTreeMap::len).sum()
    }
}

/// Clients that write continuously, one per node, retrying a failed
/// increment with the same idempotency key until it is acknowledged. A
/// client whose own node stops (crashed, downed, left) ends there.
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Result<History, String>>>,
}

impl Load {
    pub fn start(world: &World, from: &[&str]) -> Self {
        let load = Self {
            stop: Arc::new(AtomicBool::new(false)),
            clients: Vec::new(),
        };
        load.with(world, from)
    }

    /// The same load from every node of the cluster.
    pub fn everywhere(world: &World) -> Self {
        let names = world.cluster.names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Self::start(world, &names)
    }

    /// Adds clients on more nodes (say, a node that joined).
    pub fn with(mut self, world: &World, from: &[&str]) -> Self {
        for name in from {
            let client = (self.clients.len() as u64) + 1;
            let accounts = world.entity_ref(name);
            let stop = self.stop.clone();
            self.clients
                .push(tokio::spawn(client_loop(accounts, client, stop)));
        }
        self
    }

    /// (ii): stops the clients; each finishes its current increment (with
    /// retries) within the deadline. Returns what they saw.
    pub async fn stop(self) -> Result<History, Box<dyn std::error::Error>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut history = History::default();
        for client in self.clients {
            let report = tokio::time::timeout(RECOVER, client)
                .await
                .map_err(|_| "a client did not finish: an ask hangs")???;
            history.retries += report.retries;
            history.unknown.extend(report.unknown);
            for (id, keys) in report.acked {
                history.acked.entry(id).or_default().extend(keys);
            }
        }
        Ok(history)
    }
}

async fn client_loop(
    accounts: EntityRef<Account>,
    client: u64,
    stop: Arc<AtomicBool>,
) -> Result<History, String> {
    let mut report = History::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = entity(seq % ENTITIES);
        let key = (client << 40) | seq;
        let give_up = Instant::now() + RECOVER;
        loop {
            match accounts.ask(&id, AccountMsg::Add { key }, ASK).await {
                Ok(stored_at) => {
                    report
                        .acked
                        .entry(id.clone())
                        .or_default()
                        .insert(key, stored_at);
                    break;
                }
                Err(ShardingError::Stopped) => {
                    report.unknown.insert((id, key));
                    return Ok(report);
                }
                Err(error) if Instant::now() >= give_up => {
                    return Err(format!(
                        "{id} key {key}: still failing after {RECOVER:?}: {error}"
                    ));
                }
                Err(_) => {
                    report.retries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        seq += 1;
    }
    Ok(report)
}

#[test]
fn the_checker_sees_two_writers() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let record = |seq, key, instance| Record { seq, key, instance };
    let store = Store::default();
    // One instance after the other: fine.
    store
        .busy
        .lock()
        .unwrap()
        .insert("a".into(), vec![(ms(0), ms(5), 1), (ms(6), ms(8), 2)]);
    store.append("a", record(1, 10, 1));
    store.append("a", record(2, 11, 2));
    assert!(store.single_writer_violations().is_empty());
    // Overlapping handlers of two instances, not next to each other once
    // sorted (a long interval of 1 covers 2's, with 3's in between).
    store.busy.lock().unwrap().insert(
        "b".into(),
        vec![(ms(0), ms(50), 1), (ms(1), ms(2), 1), (ms(40), ms(45), 2)],
    );
    // Two instances that wrote from the same state: sequence 2 twice.
    store.append("c", record(1, 1, 1));
    store.append("c", record(2, 2, 1));
    store.append("c", record(2, 3, 2));
    // Writes in turns: 1, 2, 1 (gapless, as a stale replay would look).
    store.append("d", record(1, 1, 1));
    store.append("d", record(2, 2, 2));
    store.append("d", record(3, 3, 1));
    let violations = store.single_writer_violations();
    assert_eq!(violations.len(), 3, "{violations:#?}");
    for entity in ["b:", "c:", "d:"] {
        assert!(
            violations.iter().any(|v| v.starts_with(entity)),
            "{entity} {violations:#?}"
        );
    }
}
