//! The invariant checker shared by every scenario, and the load that feeds it.
//!
//! - (i) single writer, seen two ways: every instance logs when it handles
//!   a message (start and end), and two instances of one entity busy at
//!   overlapping times is a failure; and the [`Store`] (the user's
//!   database) records which instance made each write, where two instances
//!   writing in turns (A, B, A) means two were live at once.
//! - (ii) every ask ends: asks carry a timeout, and every client task must
//!   finish within a deadline once told to stop.
//! - (iii) after recovery every entity answers.
//! - (iv) the store's count per entity equals the increments the clients saw
//!   acknowledged: writes happen before the ack and are de-duplicated by an
//!   idempotency key that a client reuses when it retries.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The user's database, shared by every node of the test.
#[derive(Default)]
pub struct Store {
    entities: Mutex<BTreeMap<String, Written>>,
    /// Per entity: when each instance was busy handling a message.
    busy: Mutex<BTreeMap<String, Vec<Busy>>>,
}

/// (start, end, instance) of one handled message.
type Busy = (Instant, Instant, u64);

#[derive(Default)]
struct Written {
    keys: HashSet<u64>,
    /// The instance that made each write, in write order.
    writers: Vec<u64>,
}

impl Store {
    /// Applies increment `key` once; answers the entity's count.
    fn apply(&self, entity: &str, key: u64, instance: u64) -> u64 {
        let mut entities = self.entities.lock().unwrap();
        let written = entities.entry(entity.to_string()).or_default();
        if written.keys.insert(key) {
            written.writers.push(instance);
        }
        written.keys.len() as u64
    }

    fn count(&self, entity: &str) -> u64 {
        let entities = self.entities.lock().unwrap();
        entities.get(entity).map_or(0, |w| w.keys.len() as u64)
    }

    fn handled(&self, entity: &str, start: Instant, instance: u64) {
        let mut busy = self.busy.lock().unwrap();
        let entry = busy.entry(entity.to_string()).or_default();
        entry.push((start, Instant::now(), instance));
    }

    /// Entities that two instances handled at overlapping times, or whose
    /// writes came from two instances in turns.
    pub fn single_writer_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (entity, intervals) in self.busy.lock().unwrap().iter() {
            let mut sorted = intervals.clone();
            sorted.sort();
            for pair in sorted.windows(2) {
                let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
                if a != b && start < end {
                    out.push(format!("{entity}: instances {a} and {b} busy at once"));
                }
            }
        }
        let entities = self.entities.lock().unwrap();
        for (entity, written) in entities.iter() {
            let mut done = HashSet::new();
            let mut current = None;
            for writer in &written.writers {
                if current != Some(*writer) {
                    if !done.insert(*writer) {
                        out.push(format!("{entity}: writers {:?}", written.writers));
                        break;
                    }
                    current = Some(*writer);
                }
            }
        }
        out
    }
}

/// An account: `Add { key }` writes to the store before it answers.
pub struct Account {
    id: String,
    instance: u64,
    store: Arc<Store>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum AccountMsg {
    Add { key: u64 },
    Get,
}

impl Entity for Account {
    type Message = AccountMsg;
    type Reply = u64;

    async fn handle(&mut self, _ctx: &mut EntityContext, message: AccountMsg) -> u64 {
        let start = Instant::now();
        let answer = match message {
            AccountMsg::Add { key } => self.store.apply(&self.id, key, self.instance),
            AccountMsg::Get => self.store.count(&self.id),
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
    pub fn verify(&self, acked: &BTreeMap<String, u64>) -> TestResult {
        let violations = self.store.single_writer_violations();
        assert!(violations.is_empty(), "two live instances: {violations:?}");
        for i in 0..ENTITIES {
            let id = entity(i);
            let stored = self.store.count(&id);
            let seen = acked.get(&id).copied().unwrap_or(0);
            assert_eq!(stored, seen, "{id}: stored {stored}, acknowledged {seen}");
        }
        Ok(())
    }
}

pub fn entity(i: u64) -> String {
    format!("acct-{i}")
}

/// Clients that write continuously, each from one node, retrying a failed
/// increment with the same idempotency key until it is acknowledged.
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Result<ClientReport, String>>>,
}

#[derive(Debug, Default)]
pub struct ClientReport {
    pub acked: BTreeMap<String, u64>,
    pub retries: u64,
}

impl Load {
    pub fn start(world: &World, from: &[&str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = from
            .iter()
            .enumerate()
            .map(|(client, name)| {
                let accounts = world.entity_ref(name);
                let stop = stop.clone();
                tokio::spawn(client_loop(accounts, client as u64, stop))
            })
            .collect();
        Self { stop, clients }
    }

    /// (ii): stops the clients; each finishes its current increment (with
    /// retries) within the deadline. Returns the acknowledged increments.
    pub async fn stop(self) -> Result<(BTreeMap<String, u64>, u64), Box<dyn std::error::Error>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut acked: BTreeMap<String, u64> = BTreeMap::new();
        let mut retries = 0;
        for client in self.clients {
            let report = tokio::time::timeout(RECOVER, client)
                .await
                .map_err(|_| "a client did not finish: an ask hangs")???;
            retries += report.retries;
            for (id, n) in report.acked {
                *acked.entry(id).or_default() += n;
            }
        }
        Ok((acked, retries))
    }
}

async fn client_loop(
    accounts: EntityRef<Account>,
    client: u64,
    stop: Arc<AtomicBool>,
) -> Result<ClientReport, String> {
    let mut report = ClientReport::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = entity(seq % ENTITIES);
        let key = (client << 40) | seq;
        let give_up = Instant::now() + RECOVER;
        loop {
            match accounts.ask(&id, AccountMsg::Add { key }, ASK).await {
                Ok(_) => {
                    *report.acked.entry(id.clone()).or_default() += 1;
                    break;
                }
                Err(ShardingError::Stopped) => return Err("the client's own node stopped".into()),
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
    let store = Store::default();
    // One instance after the other: fine.
    store
        .busy
        .lock()
        .unwrap()
        .insert("a".into(), vec![(ms(0), ms(5), 1), (ms(6), ms(8), 2)]);
    store.apply("a", 1, 1);
    store.apply("a", 2, 2);
    assert!(store.single_writer_violations().is_empty());
    // Overlapping handlers of two instances.
    store
        .busy
        .lock()
        .unwrap()
        .insert("b".into(), vec![(ms(0), ms(5), 1), (ms(4), ms(8), 2)]);
    // Writes in turns: 1, 2, 1.
    store.apply("c", 1, 1);
    store.apply("c", 2, 2);
    store.apply("c", 3, 1);
    let violations = store.single_writer_violations();
    assert_eq!(violations.len(), 2, "{violations:?}");
}
