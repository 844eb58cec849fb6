//! The sharded entity that benchmarks and load tests ask: it answers at
//! once, so that what is measured is routing, handoffs and failures; one
//! entity id per shard, so that asking them all touches every shard; and
//! where the shards live, as the coordinator says.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sharding::{shard_id, Entity, EntityContext, EntityRef, EntityType, Sharding, ShardingConfig};

use crate::Cluster;

/// An entity that answers at once.
pub struct Probe;

/// The one message a [`Probe`] understands; it answers `()`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ping;

impl Entity for Probe {
    type Message = Ping;
    type Reply = ();

    async fn handle(&mut self, _ctx: &mut EntityContext, _ping: Ping) {}
}

/// The `probe` entity type of [`Probe`]s.
pub fn probe_type() -> EntityType<Probe> {
    EntityType::new("probe", |_id| Probe)
}

/// Starts sharding with `config` on the cluster's node `name` and registers
/// the [`probe_type`] there.
pub async fn start_probes(
    cluster: &Cluster,
    name: &str,
    config: &ShardingConfig,
) -> anyhow::Result<(Sharding, EntityRef<Probe>)> {
    let sharding = Sharding::start(&cluster.node(name), config.clone()).await?;
    let probes = sharding.init(probe_type())?;
    Ok((sharding, probes))
}

/// One entity id per shard (`e-<i>`, the first that hashes to each shard),
/// in shard order, so that touching them all allocates every shard.
///
/// ```
/// let ids = testbed::load::entity_per_shard(8);
/// let shards: Vec<u32> = ids.iter().map(|id| sharding::shard_id(id, 8).0).collect();
/// assert_eq!(shards, (0..8).collect::<Vec<_>>());
/// ```
pub fn entity_per_shard(shards: u32) -> Vec<String> {
    let mut ids: Vec<Option<String>> = vec![None; shards as usize];
    let mut missing = shards as usize;
    let mut next = 0u64;
    while missing > 0 {
        let id = format!("e-{next}");
        next += 1;
        let slot = &mut ids[shard_id(&id, shards).0 as usize];
        if slot.is_none() {
            *slot = Some(id);
            missing -= 1;
        }
    }
    ids.into_iter().flatten().collect()
}

/// Shard -> home region (`name#generation`), from the coordinator, asked
/// through `via` within `timeout`.
pub async fn homes<E: Entity>(
    via: &EntityRef<E>,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<u32, String>> {
    let view = via
        .coordinator_state(timeout)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no coordinator"))?;
    Ok(view.allocation)
}

/// The node name of a region id (`name#generation`).
///
/// ```
/// assert_eq!(testbed::load::node_of("n1.eu#17"), "n1.eu");
/// ```
pub fn node_of(region: &str) -> &str {
    region.rsplit_once('#').map_or(region, |(name, _)| name)
}
