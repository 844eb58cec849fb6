//! Consistent hashing: each region owns many points on a 64-bit ring
//! (FNV-1a of `"<name>#<generation>/<i>"`, finished with MurmurHash3's
//! `fmix64` so that ids differing in their last character land far apart),
//! a shard lives at the first point at or after the hash of its number. When a region joins or leaves
//! only the shards between its points and their predecessors move.

use std::collections::BTreeSet;

use super::{AllocationStrategy, RegionShards};
use crate::hash::fnv1a_64;
use crate::ids::{RegionId, ShardId};

/// Points per region on the ring: enough for an even spread with ten regions.
const POINTS_PER_REGION: u32 = 128;

/// Consistent-hashing allocation; rebalance moves the shards whose home is
/// not their ring position, at most `rebalance_limit` moving at once.
#[derive(Clone, Debug, Default)]
pub struct ConsistentHashing {
    rebalance_limit: usize,
    members: Vec<RegionId>,
    ring: Vec<(u64, usize)>,
}

impl ConsistentHashing {
    /// A strategy moving at most `rebalance_limit` (at least 1) shards moving at once.
    pub fn new(rebalance_limit: usize) -> Self {
        Self {
            rebalance_limit: rebalance_limit.max(1),
            members: Vec::new(),
            ring: Vec::new(),
        }
    }

    /// The ring position of `shard` among `regions` (`None` without regions).
    pub fn home_of(&mut self, shard: ShardId, regions: &[RegionShards<'_>]) -> Option<RegionId> {
        self.refresh_ring(regions);
        let point = ring_point(format!("shard-{}", shard.0).as_bytes());
        let index = self.ring.partition_point(|(p, _)| *p < point);
        let (_, member) = self.ring.get(index).or_else(|| self.ring.first())?;
        self.members.get(*member).cloned()
    }

    fn refresh_ring(&mut self, regions: &[RegionShards<'_>]) {
        let same = self.members.len() == regions.len()
            && self.members.iter().zip(regions).all(|(a, b)| a == b.region);
        if same {
            return;
        }
        self.members = regions.iter().map(|r| r.region.clone()).collect();
        self.ring = self
            .members
            .iter()
            .enumerate()
            .flat_map(|(index, region)| {
                (0..POINTS_PER_REGION).map(move |i| {
                    let key = format!("{}#{}/{}", region.name, region.generation, i);
                    (ring_point(key.as_bytes()), index)
                })
            })
            .collect();
        self.ring.sort_unstable();
    }
}

/// A position on the ring: FNV-1a spreads well in its low bits only (the
/// last byte is multiplied by the prime once), so the high bits, which
/// decide the ring order, are mixed with MurmurHash3's 64-bit finalizer.
fn ring_point(bytes: &[u8]) -> u64 {
    let mut x = fnv1a_64(bytes);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl AllocationStrategy for ConsistentHashing {
    fn allocate(
        &mut self,
        shard: ShardId,
        _requester: Option<&RegionId>,
        regions: &[RegionShards<'_>],
    ) -> Option<RegionId> {
        self.home_of(shard, regions)
    }

    fn rebalance(
        &mut self,
        regions: &[RegionShards<'_>],
        in_progress: &BTreeSet<ShardId>,
    ) -> BTreeSet<ShardId> {
        let mut moves = BTreeSet::new();
        let budget = self.rebalance_limit.saturating_sub(in_progress.len());
        for current in regions {
            for shard in current.shards.iter() {
                if moves.len() >= budget {
                    return moves;
                }
                if in_progress.contains(shard) {
                    continue;
                }
                if self.home_of(*shard, regions).as_ref() != Some(current.region) {
                    moves.insert(*shard);
                }
            }
        }
        moves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<RegionId> {
        (0..n).map(|i| RegionId::new(format!("r{i}"), i)).collect()
    }

    fn view<'a>(ids: &'a [RegionId], shards: &'a [BTreeSet<ShardId>]) -> Vec<RegionShards<'a>> {
        ids.iter()
            .zip(shards)
            .map(|(region, shards)| RegionShards { region, shards })
            .collect()
    }

    #[test]
    fn allocation_depends_only_on_shard_and_regions() {
        let ids = ids(3);
        let empty = vec![BTreeSet::new(); 3];
        let mut one = ConsistentHashing::new(20);
        let mut two = ConsistentHashing::new(20);
        for shard in (0..100).map(ShardId) {
            assert_eq!(
                one.allocate(shard, None, &view(&ids, &empty)),
                two.allocate(shard, Some(&ids[2]), &view(&ids, &empty))
            );
        }
    }

    #[test]
    fn spreads_shards_over_all_regions() {
        let ids = ids(10);
        let empty = vec![BTreeSet::new(); 10];
        let mut strategy = ConsistentHashing::new(20);
        let mut counts = vec![0usize; 10];
        for shard in (0..10_000).map(ShardId) {
            let home = strategy
                .allocate(shard, None, &view(&ids, &empty))
                .expect("regions");
            counts[ids.iter().position(|id| *id == home).expect("known")] += 1;
        }
        // 1,000 each on average; a 128-point ring keeps every region within 2x.
        assert!(
            counts.iter().all(|&c| (500..2_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_new_region_takes_shards_and_rebalance_moves_only_those() {
        let mut strategy = ConsistentHashing::new(1_000);
        let two = ids(2);
        let empty = vec![BTreeSet::new(); 2];
        let mut shards = vec![BTreeSet::new(); 3];
        for shard in (0..200).map(ShardId) {
            let home = strategy
                .allocate(shard, None, &view(&two, &empty))
                .expect("regions");
            shards[two.iter().position(|id| *id == home).expect("known")].insert(shard);
        }
        let three = ids(3);
        let moves = strategy.rebalance(&view(&three, &shards), &BTreeSet::new());
        assert!(!moves.is_empty());
        for shard in &moves {
            assert_eq!(
                strategy.home_of(*shard, &view(&three, &shards)),
                Some(three[2].clone())
            );
        }
        let limited = ConsistentHashing::new(3).rebalance(&view(&three, &shards), &BTreeSet::new());
        assert_eq!(limited.len(), 3.min(moves.len()));
    }
}
