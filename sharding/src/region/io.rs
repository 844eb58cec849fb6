//! What goes into a region and what comes out.

use crate::error::DeliveryError;
use crate::ids::{EntityId, RegionId, ReplyTo, ShardId};
use crate::messages::{
    CoordinatorToRegion, Delivery, Envelope, RegionToCoordinator, RegionToRegion,
};

/// One input for [`crate::Region::handle`]. `P` is the user's message type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionInput<P> {
    /// A local sender's message for an entity (`tell` or `ask`).
    Send {
        /// The entity.
        entity: EntityId,
        /// The message.
        payload: P,
        /// Where the answer or an error goes (`None` for a plain `tell`).
        reply_to: Option<ReplyTo>,
    },
    /// A message from another region.
    FromRegion(Envelope<RegionToRegion<P>>),
    /// A message from the coordinator.
    FromCoordinator(Envelope<CoordinatorToRegion>),
    /// The driver finished stopping every entity of a shard after
    /// [`RegionEffect::StopShard`] with [`StopReason::Handoff`].
    ShardEntitiesStopped {
        /// The shard.
        shard: ShardId,
    },
    /// Membership: that member is Down; forget it as a home.
    MemberDown(RegionId),
    /// Fast path of rule 1: this node's side would not survive the downing
    /// strategy (it sees a majority unreachable). Every shard is fenced at
    /// once, long before the lease runs out.
    FenceAll,
    /// This node's side would survive again: re-register to resume the
    /// fenced shards (the coordinator confirms or drops each).
    SideSurvives,
}

/// Why the entities of a shard are stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `Handoff`: stop them, then feed [`RegionInput::ShardEntitiesStopped`].
    Handoff,
    /// The coordinator said the shard lives elsewhere now: discard the
    /// paused entities (nothing to report back).
    Dropped,
}

/// Something the driver must do for the region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionEffect<P> {
    /// Send to the current coordinator.
    ToCoordinator(Envelope<RegionToCoordinator>),
    /// Send to another region.
    ToRegion {
        /// The region.
        to: RegionId,
        /// The message.
        message: Envelope<RegionToRegion<P>>,
    },
    /// Hand the message to the local entity, starting it if it does not run.
    DeliverLocal(Delivery<P>),
    /// Stop every entity of a local shard.
    StopShard {
        /// The shard.
        shard: ShardId,
        /// Why.
        reason: StopReason,
    },
    /// The message cannot be delivered: tell `reply_to` (or the local
    /// caller; never drop it silently).
    DeliveryFailed {
        /// The shard.
        shard: ShardId,
        /// The entity.
        entity: EntityId,
        /// Who waits for an answer.
        reply_to: Option<ReplyTo>,
        /// Why.
        error: DeliveryError,
    },
}
