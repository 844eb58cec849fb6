//! Where shards live: the [`AllocationStrategy`] trait the coordinator asks,
//! and the two built-in strategies.
//!
//! The coordinator calls a strategy only with the regions that may host
//! right now (registered with it, holding a lease, not leaving, not a
//! proxy), sorted oldest first, each with the shards it hosts or is about
//! to host. A strategy never sees Down, leaving or fenced regions, so it
//! needs no membership knowledge of its own.
//!
//! **App versions** (rolling updates). [`AllocationStrategy::allocate`]
//! sees only the regions of the highest app version among those
//! (`membership::AppVersion`; none is the lowest), so a new or moved shard
//! never lands on an older version. [`AllocationStrategy::rebalance`] is
//! asked twice per round, within one limit of moves in flight: over the
//! newest regions (to even them out), and, while older ones may host too,
//! over all of them, keeping only moves away from older regions. So a
//! region of a new version gets its share from the older ones as a
//! joining region would, and a shard never moves for an older region's
//! sake. With a single version this is the strategy's plain behaviour.
//!
//! ```
//! use std::collections::BTreeSet;
//! use sharding::allocation::{AllocationStrategy, LeastShardAllocation, RegionShards};
//! use sharding::{RegionId, ShardId};
//!
//! let (a, b) = (RegionId::new("a", 1), RegionId::new("b", 2));
//! let a_shards = BTreeSet::from([ShardId(0), ShardId(1)]);
//! let b_shards = BTreeSet::new();
//! let regions = [
//!     RegionShards { region: &a, shards: &a_shards },
//!     RegionShards { region: &b, shards: &b_shards },
//! ];
//! let mut strategy = LeastShardAllocation::default();
//! assert_eq!(strategy.allocate(ShardId(2), None, &regions), Some(b.clone()));
//! ```

mod consistent_hashing;
mod least_shards;

use std::collections::BTreeSet;

pub use consistent_hashing::ConsistentHashing;
pub use least_shards::LeastShardAllocation;

use crate::ids::{RegionId, ShardId};

/// One region that may host, with the shards it hosts (or is starting, or
/// is handing off and still owns).
#[derive(Clone, Copy, Debug)]
pub struct RegionShards<'a> {
    /// The region.
    pub region: &'a RegionId,
    /// Its shards.
    pub shards: &'a BTreeSet<ShardId>,
}

/// Decides where a free shard goes and which shards move to even out the load.
/// Implement it for a policy of your own; it must be deterministic for the
/// same inputs (the property tests rely on that for the built-in ones).
pub trait AllocationStrategy: Send {
    /// The home for the free `shard`, chosen among `regions` (oldest first;
    /// never empty when called). `requester` is the region whose
    /// `GetShardHome` triggered the allocation, if any. `None` leaves the
    /// shard free for now.
    fn allocate(
        &mut self,
        shard: ShardId,
        requester: Option<&RegionId>,
        regions: &[RegionShards<'_>],
    ) -> Option<RegionId>;

    /// Shards to hand off from their current home, so that a later
    /// allocation puts them somewhere better. `in_progress` are shards
    /// already moving.
    fn rebalance(
        &mut self,
        regions: &[RegionShards<'_>],
        in_progress: &BTreeSet<ShardId>,
    ) -> BTreeSet<ShardId>;
}
