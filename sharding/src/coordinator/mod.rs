//! The shard coordinator: a singleton (on the member that became Up first) that owns
//! the allocation table of one entity type.
//!
//! - **Allocation.** A region asks `GetShardHome`; a free shard goes where
//!   the [`crate::AllocationStrategy`] says (`HostShard`, then `ShardHome`
//!   to whoever asked once `ShardStarted` arrives).
//! - **Leases (rule 1) and quorum (rule 2).** Regions renew a lease every
//!   `lease_renewal_interval`; the coordinator answers only while
//!   [`CoordinatorInput::Quorum`] is true, and allocates and moves shards
//!   only then. A region that has not renewed for a lease plus margin
//!   ([`crate::shard_free_at`]) has fenced itself: its shards are free.
//! - **Handoff.** `BeginHandoff` to every registered region, all
//!   `BeginHandoffAck`s (a Down or lapsed region counts as acked; after
//!   `handoff_timeout` the rest are not waited for), `Handoff` to the old
//!   home, `ShardStopped`, then the shard is allocated again at once and
//!   every region hears its new home. Triggered by the rebalance strategy
//!   every `rebalance_interval` and by a Leaving member (all its shards).
//! - **Recovery (rule 3).** A new coordinator keeps no log: it sends
//!   `CoordinatorStarted` to every Up member, rebuilds the table from their
//!   `Register` reports, and keeps every unreported shard unallocated until
//!   a previous coordinator's grant has surely run out. Half-done handoffs
//!   are resolved from the reports: a region still running a shard keeps
//!   it (the handoff is abandoned, the rebalance may pick it again); a
//!   region already stopping it completes the handoff (`Handoff` again, then
//!   `ShardStopped`).
//!
//! ```
//! use std::time::Instant;
//! use sharding::{Coordinator, CoordinatorEffect, CoordinatorInput, Envelope, Epoch,
//!                RegionId, RegionToCoordinator, RequestId, ShardId, ShardingConfig};
//!
//! let now = Instant::now();
//! let me = RegionId::new("n1", 1);
//! let mut coordinator = Coordinator::new(me.clone(), Epoch(1), ShardingConfig::default(), now, None);
//! coordinator.handle(now, CoordinatorInput::Quorum(true));
//! let register = Envelope {
//!     epoch: Epoch(1), request_id: RequestId(1), from: me.clone(),
//!     body: RegionToCoordinator::Register {
//!         hosted: vec![], fenced: vec![], handing_off: vec![], proxy_only: false,
//!     },
//! };
//! coordinator.handle(now, CoordinatorInput::Message(register));
//! let ask = Envelope {
//!     epoch: Epoch(1), request_id: RequestId(2), from: me.clone(),
//!     body: RegionToCoordinator::GetShardHome { shard: ShardId(7) },
//! };
//! let effects = coordinator.handle(now, CoordinatorInput::Message(ask));
//! assert!(matches!(&effects[..], [CoordinatorEffect::Send { to, .. }] if *to == me));
//! ```

mod io;
mod regions;
mod state;
mod table;
#[cfg(test)]
mod tests;

pub use io::{CoordinatorEffect, CoordinatorInput};
pub use state::Coordinator;
pub use table::ShardState;
