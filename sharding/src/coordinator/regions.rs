//! What the coordinator knows about each region.

use std::time::Instant;

use crate::ids::RequestId;
use crate::messages::CoordinatorToRegion;

/// One region as the coordinator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RegionEntry {
    /// Membership says Up (or Leaving): it should register.
    pub up: bool,
    /// Membership says Leaving: hand its shards off, allocate nothing to it.
    pub leaving: bool,
    /// Membership says Down: final for this incarnation.
    pub down: bool,
    /// Registered in this epoch and its lease has not lapsed.
    pub registered: bool,
    /// Hosts nothing, only routes.
    pub proxy_only: bool,
    /// The highest `Register` request id processed, and the ack sent for it
    /// (sent again, unchanged, for a duplicate).
    pub last_register: Option<(RequestId, RequestId, CoordinatorToRegion)>,
    /// This coordinator's last lease answer (RegisterAck or LeaseGranted).
    pub last_answer: Option<Instant>,
    /// When `CoordinatorStarted` was last sent to it.
    pub started_sent_at: Option<Instant>,
    /// `RegionHandedOff` was emitted.
    pub handed_off_reported: bool,
}

impl RegionEntry {
    /// May be given shards.
    pub fn may_host(&self) -> bool {
        self.registered && !self.down && !self.leaving && !self.proxy_only
    }
}
