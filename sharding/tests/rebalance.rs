//! Rebalancing when the cluster changes (issue 19): a round soon after a
//! region registers, not at the next interval; moves topped up as handoffs
//! finish, within the limit of moves in flight; and when two regions join
//! together, every shard moves at most once, straight to its final home.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Sim;
use sharding::{RegionId, ShardId, ShardingConfig};

fn config() -> ShardingConfig {
    ShardingConfig {
        number_of_shards: 60,
        // The interval alone would take a minute: every move here comes
        // from the change.
        rebalance_interval: Duration::from_secs(60),
        ..ShardingConfig::default()
    }
}

/// Hosts every shard on a, b and c.
fn three_regions_hosting_everything() -> Sim {
    let mut sim = Sim::new(config(), &["a", "b", "c"]);
    sim.settle(3, 100);
    for entity in 0..600u32 {
        sim.send(entity as usize, entity);
    }
    sim.settle(5, 100);
    assert_eq!(sim.coordinator.allocation().len(), 60, "every shard hosted");
    sim
}

fn counts(sim: &Sim) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for region in sim.coordinator.allocation().values() {
        *counts.entry(region.name.to_string()).or_default() += 1;
    }
    counts
}

/// Steps `ms` at a time until the allocation is even over `regions`,
/// recording every home each shard had; returns the time it took.
fn until_balanced(
    sim: &mut Sim,
    regions: usize,
    homes: &mut BTreeMap<ShardId, Vec<RegionId>>,
) -> Duration {
    let per_region = 60 / regions;
    let mut waited = Duration::ZERO;
    loop {
        for (shard, region) in sim.coordinator.allocation() {
            let seen = homes.entry(shard).or_default();
            if seen.last() != Some(&region) {
                seen.push(region);
            }
        }
        let counts = counts(sim);
        if counts.len() == regions && counts.values().all(|n| *n == per_region) {
            return waited;
        }
        assert!(waited < Duration::from_secs(30), "not balanced: {counts:?}");
        sim.settle(1, 50);
        waited += Duration::from_millis(50);
    }
}

#[test]
fn a_joining_region_gets_its_share_soon_after_it_registers() {
    let mut sim = three_regions_hosting_everything();
    let mut homes = BTreeMap::new();
    sim.start_region("d", 1);
    let took = until_balanced(&mut sim, 4, &mut homes);
    let limit = config().rebalance_after_change + Duration::from_secs(2);
    assert!(took <= limit, "balanced after {took:?} (> {limit:?})");
    let moved = homes.values().filter(|h| h.len() > 1).count();
    assert_eq!(moved, 15, "exactly d's share moves");
}

#[test]
fn two_regions_joining_together_move_each_shard_once() {
    let mut sim = three_regions_hosting_everything();
    let mut homes = BTreeMap::new();
    sim.start_region("d", 1);
    sim.settle(4, 100); // d registers; e follows within the settle window
    sim.start_region("e", 1);
    until_balanced(&mut sim, 5, &mut homes);
    let twice: Vec<_> = homes.iter().filter(|(_, h)| h.len() > 2).collect();
    assert!(twice.is_empty(), "moved more than once: {twice:?}");
    let moved = homes.values().filter(|h| h.len() > 1).count();
    assert_eq!(moved, 24, "the minimum: d's and e's shares");
}
