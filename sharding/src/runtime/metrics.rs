//! Sharding's series in the node's metrics registry (see
//! [`mesh::metrics`]), labelled by entity type only, never by entity id:
//!
//! - gauges, set by the driver every tick: `sharding_shards` (shards whose
//!   state lives in this region), `sharding_entities`,
//!   `sharding_buffered_messages`, `sharding_coordinator_epoch` (the
//!   highest epoch the region has seen);
//! - `sharding_handoffs_started_total`, `sharding_handoffs_done_total` and
//!   `sharding_handoff_duration_seconds` (from the coordinator's
//!   `BeginHandoff` to its `HostShard` for the new home), counted where
//!   the coordinator runs;
//! - `sharding_lease_renewals_total` (renewals the region asked for),
//!   `sharding_lease_expiries_total` (the region's lease ran out),
//!   `sharding_shards_fenced_total` (shards that stopped running because
//!   they were fenced);
//! - `sharding_coordinator_epoch_changes_total`,
//!   `sharding_passivations_total`;
//! - `sharding_failover_seconds`: from the moment this node's coordinator
//!   sees a member Down to the moment it has allocated every shard that
//!   member hosted to another region. Measured by a coordinator that
//!   survives the member; when the downed member ran the coordinator, its
//!   successor does not know which shards the member hosted, and that
//!   failover is not measured.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use mesh::metrics::{DurationHistogram, Metrics, RECOVERY_BUCKETS};
use mesh::Node;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::{RegionId, ShardId};

/// The label of every sharding series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    entity_type: String,
}

type Histograms = Family<TypeLabels, DurationHistogram, fn() -> DurationHistogram>;

fn recovery_histogram() -> DurationHistogram {
    DurationHistogram::new(RECOVERY_BUCKETS)
}

/// Sharding's series of one node, registered once in its registry.
pub(crate) struct ShardingMetrics {
    shards: Family<TypeLabels, Gauge>,
    entities: Family<TypeLabels, Gauge>,
    buffered: Family<TypeLabels, Gauge>,
    epoch: Family<TypeLabels, Gauge>,
    handoffs_started: Family<TypeLabels, Counter>,
    handoffs_done: Family<TypeLabels, Counter>,
    handoff_duration: Histograms,
    lease_renewals: Family<TypeLabels, Counter>,
    lease_expiries: Family<TypeLabels, Counter>,
    fences: Family<TypeLabels, Counter>,
    epoch_changes: Family<TypeLabels, Counter>,
    passivations: Family<TypeLabels, Counter>,
    failover: Histograms,
}

impl ShardingMetrics {
    /// Registers sharding's series in `node`'s registry.
    pub(crate) fn register(node: &Node) -> Self {
        let metrics = Self::new();
        metrics.register_in(node.metrics());
        metrics
    }

    /// The series, in no registry yet.
    fn new() -> Self {
        let histograms = || Histograms::new_with_constructor(recovery_histogram as fn() -> _);
        Self {
            shards: Family::default(),
            entities: Family::default(),
            buffered: Family::default(),
            epoch: Family::default(),
            handoffs_started: Family::default(),
            handoffs_done: Family::default(),
            handoff_duration: histograms(),
            lease_renewals: Family::default(),
            lease_expiries: Family::default(),
            fences: Family::default(),
            epoch_changes: Family::default(),
            passivations: Family::default(),
            failover: histograms(),
        }
    }

    /// Adds every series to `registry`.
    fn register_in(&self, registry: &Metrics) {
        let m = self;
        registry.register(
            "sharding_shards",
            "Shards whose state lives in this region",
            m.shards.clone(),
        );
        registry.register(
            "sharding_entities",
            "Live entities in this region",
            m.entities.clone(),
        );
        registry.register(
            "sharding_buffered_messages",
            "Messages waiting in this region for a shard home or a lease",
            m.buffered.clone(),
        );
        registry.register(
            "sharding_coordinator_epoch",
            "The highest coordinator epoch this region has seen",
            m.epoch.clone(),
        );
        registry.register(
            "sharding_handoffs_started",
            "Handoffs this node's coordinator began",
            m.handoffs_started.clone(),
        );
        registry.register(
            "sharding_handoffs_done",
            "Handed-off shards this node's coordinator allocated to their new home",
            m.handoffs_done.clone(),
        );
        registry.register(
            "sharding_handoff_duration_seconds",
            "From BeginHandoff to HostShard at the new home",
            m.handoff_duration.clone(),
        );
        registry.register(
            "sharding_lease_renewals",
            "Lease renewals this region asked for",
            m.lease_renewals.clone(),
        );
        registry.register(
            "sharding_lease_expiries",
            "Times this region's lease ran out",
            m.lease_expiries.clone(),
        );
        registry.register(
            "sharding_shards_fenced",
            "Shards that stopped running here because they were fenced",
            m.fences.clone(),
        );
        registry.register(
            "sharding_coordinator_epoch_changes",
            "Changes of the coordinator epoch this region follows",
            m.epoch_changes.clone(),
        );
        registry.register(
            "sharding_passivations",
            "Idle entities passivated",
            m.passivations.clone(),
        );
        registry.register(
            "sharding_failover_seconds",
            "From a member's Down to all of its shards allocated to other regions",
            m.failover.clone(),
        );
    }

    /// The series of `entity_type`, looked up once.
    pub(crate) fn of_type(&self, entity_type: &str) -> TypeMetrics {
        let labels = TypeLabels {
            entity_type: entity_type.to_string(),
        };
        TypeMetrics {
            shards: self.shards.get_or_create_owned(&labels),
            entities: self.entities.get_or_create_owned(&labels),
            buffered: self.buffered.get_or_create_owned(&labels),
            epoch: self.epoch.get_or_create_owned(&labels),
            handoffs_started: self.handoffs_started.get_or_create_owned(&labels),
            handoffs_done: self.handoffs_done.get_or_create_owned(&labels),
            handoff_duration: self.handoff_duration.get_or_create_owned(&labels),
            lease_renewals: self.lease_renewals.get_or_create_owned(&labels),
            lease_expiries: self.lease_expiries.get_or_create_owned(&labels),
            fences: self.fences.get_or_create_owned(&labels),
            epoch_changes: self.epoch_changes.get_or_create_owned(&labels),
            passivations: self.passivations.get_or_create_owned(&labels),
            failover: self.failover.get_or_create_owned(&labels),
            handoffs: BTreeMap::new(),
            failovers: BTreeMap::new(),
            lease_live: false,
        }
    }
}

/// The series of one entity type on one node, and what the driver tracks
/// to measure durations.
pub(crate) struct TypeMetrics {
    pub(crate) shards: Gauge,
    pub(crate) entities: Gauge,
    pub(crate) buffered: Gauge,
    epoch: Gauge,
    handoffs_started: Counter,
    handoffs_done: Counter,
    handoff_duration: DurationHistogram,
    pub(crate) lease_renewals: Counter,
    lease_expiries: Counter,
    pub(crate) fences: Counter,
    epoch_changes: Counter,
    pub(crate) passivations: Counter,
    failover: DurationHistogram,
    /// Shards this node's coordinator began handing off, since when.
    handoffs: BTreeMap<ShardId, Instant>,
    /// Down members whose shards this node's coordinator still has to
    /// allocate elsewhere: since when, and which shards.
    failovers: BTreeMap<RegionId, (Instant, BTreeSet<ShardId>)>,
    /// The region held a valid lease at the last tick.
    lease_live: bool,
}

impl TypeMetrics {
    /// The region follows coordinator `epoch` and its lease is valid or
    /// not (`lease_live`); counts the changes.
    pub(crate) fn region_state(&mut self, epoch: u64, lease_live: bool) {
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        if self.epoch.set(epoch) != epoch {
            self.epoch_changes.inc();
        }
        if std::mem::replace(&mut self.lease_live, lease_live) && !lease_live {
            self.lease_expiries.inc();
        }
    }

    /// The coordinator here began handing off `shard` (once per shard,
    /// whatever the number of regions told).
    pub(crate) fn handoff_begun(&mut self, shard: ShardId, now: Instant) {
        if let std::collections::btree_map::Entry::Vacant(entry) = self.handoffs.entry(shard) {
            entry.insert(now);
            self.handoffs_started.inc();
        }
    }

    /// The coordinator here told a region to host `shard`: a handoff or a
    /// failover of it may be done.
    pub(crate) fn shard_allocated(&mut self, shard: ShardId, now: Instant) {
        if let Some(begun) = self.handoffs.remove(&shard) {
            self.handoffs_done.inc();
            self.handoff_duration
                .observe(now.saturating_duration_since(begun));
        }
        let failover = &self.failover;
        self.failovers.retain(|_, (down_at, shards)| {
            shards.remove(&shard);
            let done = shards.is_empty();
            if done {
                failover.observe(now.saturating_duration_since(*down_at));
            }
            !done
        });
    }

    /// The coordinator here sees `member` Down while it allocates
    /// `shards` to it: the failover clock starts (once per member; a
    /// member whose shards are all elsewhere already is not measured).
    pub(crate) fn member_down(
        &mut self,
        member: &RegionId,
        shards: BTreeSet<ShardId>,
        now: Instant,
    ) {
        if !shards.is_empty() && !self.failovers.contains_key(member) {
            self.failovers.insert(member.clone(), (now, shards));
        }
    }

    /// The coordinator stopped here: what it had begun is not measured.
    pub(crate) fn coordinator_stopped(&mut self) {
        self.handoffs.clear();
        self.failovers.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use membership::NodeId;
    use prometheus_client::registry::Registry;

    use super::*;

    fn encoded(metrics: &ShardingMetrics) -> String {
        let mut registry = Registry::default();
        registry.register("handoff", "", metrics.handoff_duration.clone());
        registry.register("failover", "", metrics.failover.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn failover_ends_when_the_last_shard_of_the_down_member_is_allocated() {
        let metrics = ShardingMetrics::new();
        let mut counter = metrics.of_type("counter");
        let t0 = Instant::now();
        let down = NodeId::new("b".to_string(), 1);
        counter.member_down(&down, [ShardId(1), ShardId(2)].into(), t0);
        // Seen Down again at the next tick: the clock keeps its start.
        counter.member_down(
            &down,
            [ShardId(1), ShardId(2)].into(),
            t0 + Duration::from_secs(1),
        );
        counter.shard_allocated(ShardId(1), t0 + Duration::from_secs(1));
        assert!(encoded(&metrics).contains("failover_count{entity_type=\"counter\"} 0\n"));
        counter.shard_allocated(ShardId(2), t0 + Duration::from_secs(2));
        let text = encoded(&metrics);
        assert!(
            text.contains("failover_count{entity_type=\"counter\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("failover_sum{entity_type=\"counter\"} 2.0\n"),
            "{text}"
        );
        // Its shards are elsewhere now: a later tick starts no new clock.
        counter.member_down(&down, BTreeSet::new(), t0 + Duration::from_secs(3));
        assert!(counter.failovers.is_empty());
    }

    #[test]
    fn a_handoff_is_timed_once_from_its_first_begin() {
        let metrics = ShardingMetrics::new();
        let mut counter = metrics.of_type("counter");
        let t0 = Instant::now();
        counter.handoff_begun(ShardId(3), t0);
        counter.handoff_begun(ShardId(3), t0 + Duration::from_millis(10));
        counter.shard_allocated(ShardId(3), t0 + Duration::from_millis(500));
        counter.shard_allocated(ShardId(3), t0 + Duration::from_millis(900));
        let text = encoded(&metrics);
        assert!(
            text.contains("handoff_count{entity_type=\"counter\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("handoff_sum{entity_type=\"counter\"} 0.5\n"),
            "{text}"
        );
        assert_eq!(counter.handoffs_started.get(), 1);
        assert_eq!(counter.handoffs_done.get(), 1);
    }
}
