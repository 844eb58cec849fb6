//! What the query APIs and `GET /sharding` show.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One region (this node, one entity type) as it sees itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionView {
    /// The entity type.
    pub entity_type: String,
    /// This node (`name#generation`).
    pub node: String,
    /// Routes only, hosts nothing.
    pub proxy_only: bool,
    /// The highest coordinator epoch seen.
    pub coordinator_epoch: u64,
    /// Registered with that coordinator.
    pub registered: bool,
    /// Time left on the lease in ms (`None`: no lease).
    pub lease_left_ms: Option<u64>,
    /// Shards whose state lives here, with their status and entity count.
    pub shards: Vec<ShardRow>,
    /// Live entities on this node.
    pub entities: usize,
    /// Messages waiting for a shard home or a lease.
    pub buffered: usize,
}

/// One local shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRow {
    /// The shard number.
    pub shard: u32,
    /// `active`, `fenced` or `stopping`.
    pub status: String,
    /// Live entities.
    pub entities: usize,
}

/// The coordinator of one entity type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorView {
    /// The entity type.
    pub entity_type: String,
    /// Where it runs (`name#generation`).
    pub node: String,
    /// Its epoch.
    pub epoch: u64,
    /// Whether its side would survive the downing strategy (it acts only then).
    pub quorum: bool,
    /// Shard number -> the region (`name#generation`) that hosts it.
    pub allocation: BTreeMap<u32, String>,
    /// Every registered region with its shard count and lease.
    pub regions: Vec<RegionLease>,
}

/// A region as the coordinator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionLease {
    /// The region (`name#generation`).
    pub region: String,
    /// Shards allocated to it.
    pub shards: usize,
    /// How long ago the coordinator last granted it a lease, in ms.
    pub last_grant_ms_ago: Option<u64>,
}

/// Everything about one entity type, as `GET /sharding` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeView {
    /// This node's region.
    pub region: RegionView,
    /// The coordinator, asked where it runs (`None`: none reachable now).
    pub coordinator: Option<CoordinatorView>,
}
