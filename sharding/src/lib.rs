//! Sans-IO cluster sharding (Akka-style): the shard [`Coordinator`], the
//! shard [`Region`], [`AllocationStrategy`]s, leases and handoff. No
//! sockets, no tasks, no clock: time is passed in as [`std::time::Instant`],
//! inputs go in, effects come out (the `quinn-proto` / `raft-rs` shape,
//! DESIGN.md section 2). A thin async driver moves messages between these
//! state machines and the mesh.
//!
//! # Vocabulary
//!
//! An *entity* has an id; its shard is [`shard_id`]`(entity_id,
//! number_of_shards)` (a stable FNV-1a hash). A [`Region`] runs on each node
//! for each entity type and hosts shards; the [`Coordinator`] (a singleton
//! on the member that became Up first) decides which region hosts which shard; a
//! *proxy* region hosts nothing and only routes. A region is identified by
//! its node's [`RegionId`] (`membership::NodeId`): a restarted node is a new
//! region. Every message (see [`messages`]) travels in an [`Envelope`] with
//! the coordinator epoch and the sender's request id.
//!
//! # The guarantees, and where they live
//!
//! 1. **Single writer.** A region delivers to a shard only while it holds a
//!    valid lease, counted from when it *sent* the granted request, checked
//!    before every delivery ([`Region::serves`]); an expired lease fences.
//!    The runtime enforces it again on every poll of an entity's step and
//!    of a daemon worker ([`ShardLease`], on `CLOCK_BOOTTIME`): a step does
//!    not start, and a waiting step is not polled again, once the lease is
//!    lost. The coordinator treats a shard as free only at [`shard_free_at`].
//! 2. **Quorum.** [`CoordinatorInput::Quorum`]: without it the coordinator
//!    allocates, moves and renews nothing; [`RegionInput::FenceAll`] is the
//!    region's fast path.
//! 3. **Recovery from the regions.** A new coordinator (higher [`Epoch`])
//!    rebuilds its table from `Register` reports; unreported shards wait
//!    for [`shard_free_at`] with the previous coordinator's last-seen time.
//! 4. **Idempotent handlers**: the table below; each handler repeats its
//!    line in code.
//! 5. **No silent loss.** Buffers are bounded per shard; overflow is
//!    [`RegionEffect::DeliveryFailed`] with [`DeliveryError::BufferFull`];
//!    `NotHere` carries the message back whole.
//!
//! # Idempotency (rule 4)
//!
//! What each handler does with a message that arrives twice, late (after
//! something newer about the same thing), or from an old coordinator epoch.
//! Coordinator instructions about one shard are ordered by (epoch, request
//! id); a region remembers the newest it applied per shard.
//!
//! | handler | duplicate | late | stale epoch |
//! |---|---|---|---|
//! | coordinator: `Register` | the same `RegisterAck` again, nothing changes | lower request id than one processed: ignored | `CoordinatorStarted` hint only |
//! | (a newer `Register`) | re-registers: confirms, drops or lets wait each reported shard, grants a lease, re-issues pending `HostShard`s with ids newer than the ack | | |
//! | coordinator: `GetShardHome` | answered again from the table, or queued (a set) | same | hint only |
//! | coordinator: `ShardStarted` | ignored (already `Hosted`) | another `HostShard` or moved on: ignored | hint only |
//! | coordinator: `BeginHandoffAck` | ignored (already counted) | for another `BeginHandoff`: ignored | hint only |
//! | coordinator: `ShardStopped` | ignored (already free / allocated again) | not the region waited for: ignored | hint only |
//! | coordinator: `RenewLease` | granted again (the region counts from its own send time; our bound only grows) | same | hint only |
//! | coordinator: any message from an unregistered or lapsed region | `CoordinatorStarted` hint only | same | same |
//! | coordinator: any message from a Down region | ignored (Down is final) | same | same |
//! | coordinator: any message with a *higher* epoch | [`CoordinatorEffect::Superseded`]: this coordinator stops acting | | |
//! | region: any coordinator message | | | (epoch, coordinator node) below the newest seen: ignored; two coordinators that chose one epoch are ordered by their node, and the region follows the higher one only |
//! | region: `CoordinatorStarted` | `Register` again only if not registered (rate-limited) | same | ignored |
//! | region: `RegisterAck` | ignored (consumed) | not our latest `Register`: ignored; per shard older than the newest instruction: ignored | ignored |
//! | region: `ShardHome` | no change | older than the newest instruction for the shard: ignored; naming a region known to be Down: the home stays unknown and is asked again | ignored |
//! | region: `HostShard` | `ShardStarted` again | older than the newest instruction for the shard, or than the `RegisterAck` of the current registration (sent before a lapse): ignored | ignored |
//! | region: `BeginHandoff` | `BeginHandoffAck` again | ignored | ignored |
//! | region: `Handoff` | nothing while stopping; `ShardStopped` again once stopped; for a fenced shard (no lease): dropped without `stopped()`, `ShardStopped` at once | ignored | ignored |
//! | region: `LeaseGranted` | no change (grant consumed) | counted from that renewal's own send time, never shortens; after the lease lapsed: ignored | ignored |
//! | region: `Deliver` | delivered again (at-least-once; entities de-duplicate by idempotency key) | not the home any more: `NotHere` with the message | not checked (routing only) |
//! | region: `NotHere` | the message is routed again | same; `max_hops` bounds loops | not checked |
//! | region: `ShardEntitiesStopped` (driver) | ignored (not stopping) | same | n/a |
//! | membership: `MemberUp` / `MemberLeaving` / `MemberDown` | no change | after Down: ignored (a region remembers Down members, so no later `ShardHome` makes one a home again) | n/a |
//!
//! # Driving the state machines
//!
//! The driver calls `handle` with each input and `tick` every
//! [`ShardingConfig::tick_interval`] (timers are ticks: every deadline,
//! retransmission and lease check is evaluated there), and performs the
//! returned effects in order. [`CoordinatorEffect::Send`] and
//! [`RegionEffect::ToRegion`] go over the mesh; [`RegionEffect::ToCoordinator`]
//! goes to the node that currently hosts the coordinator singleton.
//!
//! What the driver decides around the two state machines (member changes,
//! where the coordinator runs and with which epoch, rule 3's previous
//! grants, quorum, the fencing fast path, daemon keep-alives) is the
//! sans-IO [`TypeCore`]: the async driver and the simulator
//! (`testbed::sim`) run the same decisions.

#![warn(missing_docs)]

pub mod allocation;
mod clock;
mod config;
pub mod coordinator;
mod entity;
mod error;
mod hash;
mod ids;
mod lease;
mod lease_gate;
pub mod messages;
pub mod region;
mod runtime;

pub use allocation::{AllocationStrategy, ConsistentHashing, LeastShardAllocation};
pub use config::{AllocationKind, ShardingConfig};
pub use coordinator::{Coordinator, CoordinatorEffect, CoordinatorInput, ShardState};
pub use entity::{Entity, EntityContext, EntityType};
pub use error::{ConfigError, DeliveryError};
pub use hash::{fnv1a_64, shard_id};
pub use ids::{EntityId, Epoch, RegionId, ReplyTo, RequestId, ShardId};
pub use lease::{shard_free_at, LatestGrant};
pub use lease_gate::ShardLease;
pub use messages::{CoordinatorToRegion, Delivery, Envelope, RegionToCoordinator, RegionToRegion};
pub use region::{Region, RegionEffect, RegionInput, ShardStatus, StopReason};
#[cfg(feature = "fault-injection")]
pub use runtime::hook_points;
pub use runtime::{
    CoordinatorView, DaemonContext, DaemonHandle, DaemonWorker, EntityRef, RegionLease,
    RegionSignal, RegionView, ShardRow, Sharding, ShardingError, TypeAction, TypeCore, TypeView,
};
