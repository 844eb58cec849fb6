//! The sharded entity that benchmarks and load tests ask: it answers at
//! once, so that what is measured is routing, handoffs and failures, and
//! one entity id per shard, so that asking them all touches every shard.

use serde::{Deserialize, Serialize};
use sharding::{shard_id, Entity, EntityContext, EntityType};

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
