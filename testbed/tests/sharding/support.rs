//! A counter entity and helpers to run it on every node of a harness cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sharding::{Entity, EntityContext, EntityRef, EntityType, Sharding, ShardingConfig};
use testbed::Cluster;

/// What a test returns; errors print the harness's readable dump.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Timeout of one sharded ask.
pub const ASK: Duration = Duration::from_secs(2);

/// Deadline of a condition that needs gossip rounds, leases or handoffs.
pub const SETTLE: Duration = Duration::from_secs(20);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A counter: `Add(n)` answers the new value, `Get` the current one.
pub struct Counter(u64);

#[derive(Debug, Serialize, Deserialize)]
pub enum CounterMsg {
    Add(u64),
    Get,
}

impl Entity for Counter {
    type Message = CounterMsg;
    type Reply = u64;

    async fn handle(&mut self, _ctx: &mut EntityContext, message: CounterMsg) -> u64 {
        if let CounterMsg::Add(n) = message {
            self.0 += n;
        }
        self.0
    }
}

/// The config of these tests: the defaults, with a quick rebalance.
pub fn config() -> ShardingConfig {
    ShardingConfig {
        number_of_shards: 30,
        rebalance_interval: Duration::from_secs(1),
        ..ShardingConfig::default()
    }
}

/// Starts sharding and `entity_type` on node `name`.
pub async fn start_type<E: Entity>(
    cluster: &Cluster,
    name: &str,
    entity_type: EntityType<E>,
) -> Result<(Sharding, EntityRef<E>), Box<dyn std::error::Error>> {
    let sharding = Sharding::start(&cluster.node(name), config()).await?;
    let entities = sharding.init(entity_type)?;
    Ok((sharding, entities))
}

/// Sharding with the type `entity_type` makes on every node of `cluster`:
/// the shardings (keep them alive) and each node's handle by node name.
pub async fn start_everywhere<E: Entity>(
    cluster: &Cluster,
    entity_type: impl Fn() -> EntityType<E>,
) -> Result<(Vec<Sharding>, BTreeMap<String, EntityRef<E>>), Box<dyn std::error::Error>> {
    let mut shardings = Vec::new();
    let mut refs = BTreeMap::new();
    for name in cluster.names() {
        let (sharding, entities) = start_type(cluster, &name, entity_type()).await?;
        shardings.push(sharding);
        refs.insert(name, entities);
    }
    Ok((shardings, refs))
}

/// The counter type every test uses (optionally only on nodes with `role`).
pub fn counter_type(role: Option<&str>) -> EntityType<Counter> {
    let entity_type = EntityType::new("counter", |_id| Counter(0));
    match role {
        Some(role) => entity_type.role(role),
        None => entity_type,
    }
}

/// Entities per node, from each node's region.
pub async fn entities_per_node(
    refs: &BTreeMap<String, EntityRef<Counter>>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (name, counters) in refs {
        let entities = counters.region_state().await.map_or(0, |v| v.entities);
        out.insert(name.clone(), entities);
    }
    out
}

/// Shards per node, from each node's region.
pub async fn shards_per_node(
    refs: &BTreeMap<String, EntityRef<Counter>>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (name, counters) in refs {
        let shards = counters.region_state().await.map_or(0, |v| v.shards.len());
        out.insert(name.clone(), shards);
    }
    out
}

/// Waits until the coordinator (asked through `via`) has `regions`
/// registered regions.
pub async fn wait_registered(
    cluster: &Cluster,
    via: &EntityRef<Counter>,
    regions: usize,
) -> TestResult {
    wait_registered_regions(cluster, via, regions).await
}

/// [`wait_registered`] for any entity type.
pub async fn wait_registered_regions<E: Entity>(
    cluster: &Cluster,
    via: &EntityRef<E>,
    regions: usize,
) -> TestResult {
    let what = format!("{regions} regions registered with the coordinator");
    cluster
        .wait_until_async(SETTLE, &what, |_| async move {
            via.coordinator_state(ASK)
                .await
                .ok()
                .flatten()
                .is_some_and(|view| view.regions.len() == regions)
        })
        .await?;
    Ok(())
}
