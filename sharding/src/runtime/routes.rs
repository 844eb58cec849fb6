//! The region's remote shard homes, shared with the callers of one entity
//! type on this node so that a `tell` or `ask` to a shard that lives on
//! another node goes there from the caller's task, without a hop through
//! the driver.
//!
//! The driver stays the only writer of routing state: after each round of
//! work it republishes [`Region::remote_homes`] when
//! [`Region::homes_version`] changed. A caller that finds its shard here
//! sends what the region would have sent ([`Envelope::entity_traffic`]);
//! a stale home answers `NotHere` to the region, as for any message in
//! flight when a shard moves.
//!
//! Order: messages a caller handed to the driver must not be overtaken by
//! its next one sent directly. `queued` counts local sends the driver has
//! not routed yet; the direct way is taken only when it is zero. The driver
//! publishes before it lowers the count, so a caller that finds zero also
//! finds the homes as the round that took its earlier sends left them:
//! each of those is then in an outbox, or buffered in the region for a
//! shard whose home is not in the table, whose later sends therefore take
//! the driver's way too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use mesh::{Node, PeerRef};
use rustc_hash::FxHashMap;

use crate::ids::{Epoch, RegionId, ShardId};
use crate::region::Region;

/// Where callers may send directly.
#[derive(Default)]
pub(crate) struct Routes {
    table: RwLock<Table>,
    /// Local sends handed to the driver that it has not routed yet.
    queued: AtomicUsize,
}

#[derive(Default)]
struct Table {
    /// The region version published (`None`: nothing, or stopped).
    version: Option<u64>,
    homes: FxHashMap<ShardId, PeerRef>,
    /// The sending region and its epoch, as its envelopes carry them.
    sender: Option<(RegionId, Epoch)>,
}

/// What a caller needs to send to a shard's home as its region would.
pub(crate) struct Forward<'a> {
    /// The home's node.
    pub(crate) home: &'a PeerRef,
    /// This region.
    pub(crate) from: &'a RegionId,
    /// This region's coordinator epoch.
    pub(crate) epoch: Epoch,
}

impl Routes {
    /// Republishes the remote homes of `region` if they may have changed.
    pub(crate) fn publish<P>(&self, region: &Region<P>, node: &Node) {
        let version = region.homes_version();
        if self.read().version == Some(version) {
            return;
        }
        let homes = region
            .remote_homes()
            .filter_map(|(shard, home)| Some((shard, node.peer(&home.name).ok()?)))
            .collect();
        *mesh::sync::write(&self.table) = Table {
            version: Some(version),
            homes,
            sender: Some((region.id().clone(), region.coordinator_epoch())),
        };
    }

    /// The driver stopped: every send goes its way (and finds it closed).
    pub(crate) fn clear(&self) {
        *mesh::sync::write(&self.table) = Table::default();
    }

    /// Runs `send` on `message` with the home of `shard` if a caller may
    /// send there directly now; gives `message` back if it must go through
    /// the driver.
    pub(crate) fn forward<M, T>(
        &self,
        shard: ShardId,
        message: M,
        send: impl FnOnce(Forward<'_>, M) -> T,
    ) -> Result<T, M> {
        if self.queued.load(Ordering::Acquire) != 0 {
            return Err(message);
        }
        let table = self.read();
        let (Some(home), Some((from, epoch))) = (table.homes.get(&shard), table.sender.as_ref())
        else {
            return Err(message);
        };
        let to = Forward {
            home,
            from,
            epoch: *epoch,
        };
        Ok(send(to, message))
    }

    /// A local send is about to be handed to the driver.
    pub(crate) fn enqueue(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// `sends` handed to the driver are routed (or were never queued).
    pub(crate) fn routed(&self, sends: usize) {
        if sends > 0 {
            self.queued.fetch_sub(sends, Ordering::AcqRel);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        mesh::sync::read(&self.table)
    }
}
