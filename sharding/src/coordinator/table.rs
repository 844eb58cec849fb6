//! The allocation table: the state of every shard, plus the indexes the
//! coordinator needs to answer quickly (shards per region, shards moving).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::ids::{RegionId, RequestId, ShardId};

/// What the coordinator knows about one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardState {
    /// Nobody can be running it: allocate it when wanted.
    Free,
    /// A lease may still cover it: its holder is Down or silent, or (with
    /// `holder: None`) a previous coordinator may have granted it to a
    /// region that has not registered. Free at `free_at` (see
    /// [`crate::shard_free_at`]).
    LeaseRunningOut {
        /// The region that held it, if known.
        holder: Option<RegionId>,
        /// When it becomes free.
        free_at: Instant,
    },
    /// `HostShard` sent; waiting for `ShardStarted`.
    Allocating {
        /// The new home.
        region: RegionId,
        /// The `HostShard` request id (reused by retransmissions).
        host: RequestId,
        /// When it was last sent.
        sent_at: Instant,
    },
    /// Runs at `region`.
    Hosted {
        /// The home.
        region: RegionId,
    },
    /// `BeginHandoff` sent to every region; waiting for their acks.
    BeginningHandoff {
        /// The old home (still running it).
        from: RegionId,
        /// The `BeginHandoff` request id.
        begin: RequestId,
        /// Regions whose ack is missing.
        waiting: BTreeSet<RegionId>,
        /// When the handoff began (for `handoff_timeout`).
        began_at: Instant,
        /// When `BeginHandoff` was last sent.
        sent_at: Instant,
    },
    /// `Handoff` sent to the old home; waiting for `ShardStopped`.
    HandingOff {
        /// The old home (stopping it).
        from: RegionId,
        /// The `Handoff` request id.
        handoff: RequestId,
        /// When it was last sent.
        sent_at: Instant,
    },
}

impl ShardState {
    /// The region that runs (or is about to run, or is still stopping) the shard.
    pub fn owner(&self) -> Option<&RegionId> {
        match self {
            ShardState::Allocating { region, .. } | ShardState::Hosted { region } => Some(region),
            ShardState::BeginningHandoff { from, .. } | ShardState::HandingOff { from, .. } => {
                Some(from)
            }
            ShardState::Free | ShardState::LeaseRunningOut { .. } => None,
        }
    }

    fn is_moving(&self) -> bool {
        matches!(
            self,
            ShardState::BeginningHandoff { .. } | ShardState::HandingOff { .. }
        )
    }
}

/// Every shard's state, indexed by owner.
#[derive(Clone, Debug)]
pub(crate) struct ShardTable {
    slots: Vec<ShardState>,
    by_region: BTreeMap<RegionId, BTreeSet<ShardId>>,
    moving: BTreeSet<ShardId>,
}

impl ShardTable {
    /// `number_of_shards` shards, all in `initial`.
    pub(crate) fn new(number_of_shards: u32, initial: ShardState) -> Self {
        Self {
            slots: vec![initial; number_of_shards as usize],
            by_region: BTreeMap::new(),
            moving: BTreeSet::new(),
        }
    }

    pub(crate) fn get(&self, shard: ShardId) -> Option<&ShardState> {
        self.slots.get(shard.0 as usize)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ShardId, &ShardState)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(index, state)| (ShardId(index as u32), state))
    }

    /// The only way to change a shard: keeps the indexes right.
    pub(crate) fn set(&mut self, shard: ShardId, state: ShardState) {
        let Some(slot) = self.slots.get_mut(shard.0 as usize) else {
            return;
        };
        if let Some(old_owner) = slot.owner() {
            if let Some(set) = self.by_region.get_mut(old_owner) {
                set.remove(&shard);
                if set.is_empty() {
                    self.by_region.remove(old_owner);
                }
            }
        }
        if let Some(owner) = state.owner() {
            self.by_region
                .entry(owner.clone())
                .or_default()
                .insert(shard);
        }
        if state.is_moving() {
            self.moving.insert(shard);
        } else {
            self.moving.remove(&shard);
        }
        *slot = state;
    }

    /// A mutable state for changes that keep the owner (retransmission
    /// times, ack sets). Changing the owner through it would break the index.
    pub(crate) fn get_mut_same_owner(&mut self, shard: ShardId) -> Option<&mut ShardState> {
        self.slots.get_mut(shard.0 as usize)
    }

    /// The shards owned by `region`.
    pub(crate) fn owned_by(&self, region: &RegionId) -> Option<&BTreeSet<ShardId>> {
        self.by_region.get(region)
    }

    /// Shards in a handoff.
    pub(crate) fn moving(&self) -> &BTreeSet<ShardId> {
        &self.moving
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_index_follows_every_change() {
        let mut table = ShardTable::new(4, ShardState::Free);
        let a = RegionId::new("a", 1);
        let b = RegionId::new("b", 2);
        table.set(ShardId(1), ShardState::Hosted { region: a.clone() });
        table.set(ShardId(2), ShardState::Hosted { region: a.clone() });
        assert_eq!(table.owned_by(&a).map(BTreeSet::len), Some(2));
        table.set(
            ShardId(1),
            ShardState::HandingOff {
                from: a.clone(),
                handoff: RequestId(1),
                sent_at: Instant::now(),
            },
        );
        assert!(table.moving().contains(&ShardId(1)));
        table.set(ShardId(1), ShardState::Hosted { region: b.clone() });
        table.set(ShardId(2), ShardState::Free);
        assert_eq!(table.owned_by(&a), None);
        assert_eq!(table.owned_by(&b).map(BTreeSet::len), Some(1));
        assert!(table.moving().is_empty());
        // Out of range: ignored, no panic.
        table.set(ShardId(99), ShardState::Free);
        assert_eq!(table.get(ShardId(99)), None);
    }
}
