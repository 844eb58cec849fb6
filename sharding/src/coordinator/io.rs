//! What goes into the coordinator and what comes out.

use membership::AppVersion;

use crate::ids::{Epoch, RegionId};
use crate::messages::{CoordinatorToRegion, Envelope, RegionToCoordinator};

/// One input for [`crate::Coordinator::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorInput {
    /// A message from a region (its envelope names the sender).
    Message(Envelope<RegionToCoordinator>),
    /// Membership: the member is Up (also for every member already Up when
    /// the coordinator starts), with the app version it gossips (`None`:
    /// none, the lowest). A region on it should register. New and moved
    /// shards go to the regions of the highest version only.
    MemberUp(RegionId, Option<AppVersion>),
    /// Membership: the member is Leaving (or Exiting); its shards are
    /// handed off, and it is given none from now on.
    MemberLeaving(RegionId),
    /// Membership: the member is Down (or Removed). Final for that
    /// incarnation; its shards are free once its lease has surely run out.
    MemberDown(RegionId),
    /// Whether the coordinator's side of the cluster would survive the
    /// downing strategy (rule 2). Without it the coordinator allocates
    /// nothing, starts no handoff and renews no lease. A new coordinator
    /// starts without quorum until told.
    Quorum(bool),
}

/// Something the driver must do for the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorEffect {
    /// Send a message to a region.
    Send {
        /// The region.
        to: RegionId,
        /// The message.
        message: Envelope<CoordinatorToRegion>,
    },
    /// A Leaving region hosts nothing any more: its node may exit
    /// (`Membership::leave_handoff_done`). Emitted once per region.
    RegionHandedOff {
        /// The region.
        region: RegionId,
    },
    /// A region knows a newer coordinator epoch: this coordinator is stale,
    /// has stopped acting, and should be shut down.
    Superseded {
        /// The newer epoch.
        by: Epoch,
    },
}
