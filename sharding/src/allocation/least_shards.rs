//! Akka's newer `LeastShardAllocationStrategy`: a new shard goes to the
//! region with the fewest shards; rebalancing moves shards from regions above
//! the optimum, limited per round by an absolute and a relative limit.

use std::collections::BTreeSet;

use super::{AllocationStrategy, RegionShards};
use crate::ids::{RegionId, ShardId};

/// Least-shards allocation with rebalance limits (the default strategy).
///
/// Rebalance (shards already moving count against their old home's excess
/// and against the limit):
/// 1. `optimal = ceil(total / regions)`; every region above it gives its
///    excess.
/// 2. If none is above, but some region is at least two below the optimum,
///    regions at the optimum give one shard each, as many as are missing
///    below `optimal - 1`.
///
/// At most `max(1, min(relative_limit * total, absolute_limit))` shards are
/// moving at once. A freed shard goes to the region with the fewest shards,
/// so a shard moves once per change, straight to its new home.
#[derive(Clone, Debug, PartialEq)]
pub struct LeastShardAllocation {
    absolute_limit: usize,
    relative_limit: f64,
}

impl Default for LeastShardAllocation {
    /// Akka's defaults: absolute limit 20, relative limit 0.1.
    fn default() -> Self {
        Self::new(20, 0.1)
    }
}

impl LeastShardAllocation {
    /// A strategy with the given rebalance limits.
    pub fn new(absolute_limit: usize, relative_limit: f64) -> Self {
        Self {
            absolute_limit,
            relative_limit,
        }
    }

    /// How many shards may be moving at once when there are `total` shards.
    pub fn limit(&self, total: usize) -> usize {
        // Truncation is the intent (Akka's `.toInt`); negative or NaN become 0.
        let relative = (self.relative_limit * total as f64) as usize;
        relative.min(self.absolute_limit).max(1)
    }
}

impl AllocationStrategy for LeastShardAllocation {
    fn allocate(
        &mut self,
        _shard: ShardId,
        _requester: Option<&RegionId>,
        regions: &[RegionShards<'_>],
    ) -> Option<RegionId> {
        regions
            .iter()
            .min_by(|a, b| (a.shards.len(), a.region).cmp(&(b.shards.len(), b.region)))
            .map(|least| least.region.clone())
    }

    fn rebalance(
        &mut self,
        regions: &[RegionShards<'_>],
        in_progress: &BTreeSet<ShardId>,
    ) -> BTreeSet<ShardId> {
        if regions.is_empty() {
            return BTreeSet::new();
        }
        let total: usize = regions.iter().map(|r| r.shards.len()).sum();
        if total == 0 {
            return BTreeSet::new();
        }
        let optimal = total.div_ceil(regions.len());
        let budget = self.limit(total).saturating_sub(in_progress.len());
        if budget == 0 {
            return BTreeSet::new();
        }
        // A region's shards once its moves in flight have left.
        let staying = |r: &RegionShards<'_>| -> Vec<ShardId> {
            r.shards
                .iter()
                .filter(|s| !in_progress.contains(s))
                .copied()
                .collect()
        };

        // Most loaded first, so that the limit takes from the worst ones.
        let mut sorted: Vec<(&RegionShards<'_>, Vec<ShardId>)> =
            regions.iter().map(|r| (r, staying(r))).collect();
        sorted.sort_by(|(a, a_staying), (b, b_staying)| {
            (b_staying.len(), a.region).cmp(&(a_staying.len(), b.region))
        });

        let phase_one: BTreeSet<ShardId> = sorted
            .iter()
            .flat_map(|(_, staying)| staying.iter().take(staying.len().saturating_sub(optimal)))
            .take(budget)
            .copied()
            .collect();
        if !phase_one.is_empty() || !in_progress.is_empty() {
            // Phase two only once phase one's moves have landed.
            return phase_one;
        }

        let below_optimal: usize = regions
            .iter()
            .map(|r| (optimal - 1).saturating_sub(r.shards.len()))
            .sum();
        if below_optimal == 0 {
            return BTreeSet::new();
        }
        sorted
            .iter()
            .filter(|(_, staying)| staying.len() >= optimal)
            .filter_map(|(_, staying)| staying.first())
            .take(below_optimal.min(budget))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(counts: &[u32]) -> (Vec<RegionId>, Vec<BTreeSet<ShardId>>) {
        let ids = (0..counts.len())
            .map(|i| RegionId::new(format!("r{i}"), i as u64))
            .collect();
        let mut next = 0;
        let shards = counts
            .iter()
            .map(|&n| {
                let set = (next..next + n).map(ShardId).collect();
                next += n;
                set
            })
            .collect();
        (ids, shards)
    }

    fn view<'a>(ids: &'a [RegionId], shards: &'a [BTreeSet<ShardId>]) -> Vec<RegionShards<'a>> {
        ids.iter()
            .zip(shards)
            .map(|(region, shards)| RegionShards { region, shards })
            .collect()
    }

    #[test]
    fn allocates_to_the_region_with_fewest_shards_oldest_on_ties() {
        let (ids, shards) = regions(&[3, 1, 1]);
        let mut strategy = LeastShardAllocation::default();
        let home = strategy.allocate(ShardId(99), None, &view(&ids, &shards));
        assert_eq!(home, Some(ids[1].clone()));
        assert_eq!(strategy.allocate(ShardId(99), None, &[]), None);
    }

    #[test]
    fn limit_is_the_smaller_of_absolute_and_relative_and_at_least_one() {
        let strategy = LeastShardAllocation::new(20, 0.1);
        assert_eq!(strategy.limit(1_000), 20);
        assert_eq!(strategy.limit(100), 10);
        assert_eq!(strategy.limit(5), 1);
    }

    #[test]
    fn phase_one_moves_the_excess_within_the_limit() {
        // 100 shards on one region, 4 empty: optimal 20, excess 80, limit 10.
        let (ids, shards) = regions(&[100, 0, 0, 0, 0]);
        let mut strategy = LeastShardAllocation::default();
        let moves = strategy.rebalance(&view(&ids, &shards), &BTreeSet::new());
        assert_eq!(moves.len(), 10);
        assert!(moves.iter().all(|s| shards[0].contains(s)));
    }

    #[test]
    fn absolute_limit_caps_a_large_cluster() {
        let (ids, shards) = regions(&[1_000, 0]);
        let mut strategy = LeastShardAllocation::new(20, 0.1);
        let moves = strategy.rebalance(&view(&ids, &shards), &BTreeSet::new());
        assert_eq!(moves.len(), 20);
    }

    #[test]
    fn phase_two_evens_out_a_region_two_below_the_optimum() {
        // 4 + 4 + 1 = 9, optimal 3: phase one takes 1 from each 4. With
        // 3 + 3 + 1 = 7 the optimum is 3: nobody above, r2 is one below
        // optimal - 1 = 2, so one shard moves from a region at the optimum.
        let (ids, shards) = regions(&[3, 3, 1]);
        let mut strategy = LeastShardAllocation::new(20, 1.0);
        let moves = strategy.rebalance(&view(&ids, &shards), &BTreeSet::new());
        assert_eq!(moves.len(), 1);
        assert!(!shards[2].contains(moves.iter().next().expect("one move")));
    }

    #[test]
    fn moves_in_flight_count_against_the_limit_and_their_home_s_excess() {
        // Limit 10, four already moving from r0: six more.
        let (ids, shards) = regions(&[100, 0, 0, 0, 0]);
        let mut strategy = LeastShardAllocation::default();
        let moving: BTreeSet<ShardId> = shards[0].iter().take(4).copied().collect();
        let moves = strategy.rebalance(&view(&ids, &shards), &moving);
        assert_eq!(moves.len(), 6);
        assert!(moves.is_disjoint(&moving));
        // 30 + 0, optimal 15, ten of r0's already leaving: five more, not 15.
        let (ids, shards) = regions(&[30, 0]);
        let mut strategy = LeastShardAllocation::new(20, 1.0);
        let moving: BTreeSet<ShardId> = shards[0].iter().take(10).copied().collect();
        let moves = strategy.rebalance(&view(&ids, &shards), &moving);
        assert_eq!(moves.len(), 5);
    }

    #[test]
    fn balanced_or_at_the_limit_means_no_moves() {
        let (ids, shards) = regions(&[3, 3, 2]);
        let mut strategy = LeastShardAllocation::default();
        assert!(strategy
            .rebalance(&view(&ids, &shards), &BTreeSet::new())
            .is_empty());
        let (ids, shards) = regions(&[10, 0]);
        let moving = BTreeSet::from([ShardId(0)]);
        assert!(strategy.rebalance(&view(&ids, &shards), &moving).is_empty());
    }

    #[test]
    fn ten_thousand_shards_over_ten_regions_are_even() {
        let ids: Vec<RegionId> = (0..10).map(|i| RegionId::new(format!("r{i}"), i)).collect();
        let mut shards: Vec<BTreeSet<ShardId>> = vec![BTreeSet::new(); 10];
        let mut strategy = LeastShardAllocation::default();
        for shard in (0..10_000).map(ShardId) {
            let home = strategy
                .allocate(shard, None, &view(&ids, &shards))
                .expect("regions exist");
            let index = ids.iter().position(|id| *id == home).expect("known region");
            shards[index].insert(shard);
        }
        assert!(shards.iter().all(|s| s.len() == 1_000));
        assert!(strategy
            .rebalance(&view(&ids, &shards), &BTreeSet::new())
            .is_empty());
    }
}
