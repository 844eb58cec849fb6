//! The shard region: one per entity type per node.
//!
//! - **Routing.** A message for an entity goes to its shard's home: here
//!   (delivered), another region (forwarded as `Deliver`), or unknown
//!   (buffered, `GetShardHome` asked). A region that is not the home
//!   answers `NotHere` with the message, and the sender forgets the stale
//!   home and routes again.
//! - **Leases (rule 1).** A region runs a shard only while it holds a
//!   valid lease from the current coordinator, counted from the moment it
//!   sent the granted request (`Register` or `RenewLease`) on its own clock,
//!   and checked before every delivery. An expired lease fences every shard:
//!   delivery pauses, messages buffer, state stays; the region registers
//!   again and the coordinator confirms (resume) or drops each shard.
//!   [`RegionInput::FenceAll`] is the fast path when the node's side would
//!   not survive the downing strategy.
//! - **Handoff.** `BeginHandoff`: stop routing to the old home, buffer.
//!   `Handoff` (the old home): stop the shard's entities, then `ShardStopped`.
//! - **New coordinator.** A message with a higher epoch makes the region
//!   forget cached homes and register again, reporting what it runs,
//!   what is fenced and what is stopping.
//! - **Proxy-only** regions host nothing and only route.
//!
//! ```
//! use std::time::Instant;
//! use sharding::{Region, RegionEffect, RegionId, RegionInput, ShardingConfig};
//!
//! let now = Instant::now();
//! let mut region: Region<String> =
//!     Region::new(RegionId::new("n1", 1), ShardingConfig::default(), false);
//! // Not registered yet: the message is buffered, nothing is lost.
//! let effects = region.handle(now, RegionInput::Send {
//!     entity: "counter-1".into(), payload: "incr".into(), reply_to: None,
//! });
//! assert!(effects.is_empty());
//! // The tick registers with whoever coordinates.
//! let effects = region.tick(now);
//! assert!(matches!(&effects[..], [RegionEffect::ToCoordinator(_)]));
//! ```

mod io;
mod lease;
mod shard;
mod state;
#[cfg(test)]
mod tests;

pub use io::{RegionEffect, RegionInput, StopReason};
pub use shard::ShardStatus;
pub use state::Region;
