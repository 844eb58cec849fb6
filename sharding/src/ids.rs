//! The small identifiers every sharding message carries.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of an entity, chosen by the user (`"counter-42"`). Ids up to 24
/// bytes are kept inline: sending to an entity allocates nothing for its id.
pub type EntityId = compact_str::CompactString;

/// A region is identified by the [`membership::NodeId`] of its node: a
/// restarted node is a new incarnation and therefore a new region, which is
/// what makes "Down is final" safe for shard homes.
pub type RegionId = membership::NodeId;

/// A shard: `shard_id(entity_id, number_of_shards)` (see [`crate::shard_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// The incarnation number of the coordinator singleton. A new coordinator
/// has a strictly higher epoch than every earlier one; `Epoch(0)` means "no
/// coordinator known yet" and is never used by a coordinator.
///
/// The driver picks it: the generation of the coordinator's node works,
/// because the singleton always moves to a younger node (DESIGN.md sections
/// 3 and 4), raised above [`crate::Region::coordinator_epoch`] of the local
/// region if that is somehow higher.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch-{}", self.0)
    }
}

/// A sender's own, strictly increasing message counter. A retransmission of
/// the same request reuses its id, so a receiver can tell a duplicate from
/// a new request. Answers name the request they answer in their body.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RequestId(pub u64);

/// Where the answer (or the error) for a delivered message goes: a node and
/// a correlation id that the sender's driver understands.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplyTo {
    /// The node of the asking party.
    pub node: RegionId,
    /// The asking party's correlation id.
    pub correlation: u64,
}
