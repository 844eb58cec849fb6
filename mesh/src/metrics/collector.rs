//! The series read from the node's state at each scrape: what the node
//! refused, what waits for each peer, and membership.

use std::time::Instant;

use membership::MemberStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::node::WeakNode;

/// Bucket bounds of `membership_phi` (Akka's default threshold is 8).
const PHI_BUCKETS: &[f64] = &[0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 16.0, 32.0];

/// A phi above this counts as this in the histogram's sum, which stays
/// finite for a peer that never answered.
const PHI_CAP: f64 = 1000.0;

const STATUSES: [MemberStatus; 6] = [
    MemberStatus::Joining,
    MemberStatus::Up,
    MemberStatus::Leaving,
    MemberStatus::Exiting,
    MemberStatus::Down,
    MemberStatus::Removed,
];

/// Encodes the node's state-derived series; holds the node weakly (the node
/// owns the registry that owns this).
pub(crate) struct NodeCollector(pub(crate) WeakNode);

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Fmt {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge<V>(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: V) -> Fmt
where
    ConstGauge<V>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

type Fmt = Result<(), std::fmt::Error>;

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Fmt {
        let Some(node) = self.0.upgrade() else {
            return Ok(());
        };
        let e = &mut encoder;
        let stats = node.stats();
        let mut rejected = e.encode_descriptor(
            "mesh_frames_rejected",
            "Frames and streams refused: the stream or message was dropped",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("oversized", stats.frames_oversized),
            ("malformed", stats.frames_malformed),
            ("malformed_message", stats.messages_malformed),
            ("unknown_stream", stats.streams_unknown),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(value).encode(rejected.encode_family(&labels)?)?;
        }
        counter(
            e,
            "mesh_handshakes_refused",
            "Connections refused at the TLS or hello stage",
            stats.handshakes_refused,
        )?;
        counter(
            e,
            "mesh_unknown_service",
            "Messages for a service not registered here",
            stats.unknown_service,
        )?;
        counter(
            e,
            "mesh_messages_undeliverable",
            "Outgoing messages dropped: the peer could not be reached",
            stats.messages_undeliverable,
        )?;
        counter(
            e,
            "mesh_gossip_dropped",
            "Gossip messages dropped",
            stats.gossip_dropped,
        )?;
        counter(
            e,
            "mesh_replies_dropped",
            "Replies dropped: the asking peer's buffer was full",
            stats.replies_dropped,
        )?;
        gauge(
            e,
            "mesh_asks_pending",
            "Remote asks waiting for their answer",
            stats.asks_pending as i64,
        )?;

        let mut outbox = e.encode_descriptor(
            "mesh_outbox_bytes",
            "Bytes of frames waiting to be written to a peer",
            None,
            MetricType::Gauge,
        )?;
        for (peer, bytes) in node.outbox_bytes() {
            let labels = [("peer", peer.as_str())];
            ConstGauge::new(bytes as i64).encode(outbox.encode_family(&labels)?)?;
        }

        let state = node.cluster_state();
        let mut members = e.encode_descriptor(
            "membership_members",
            "Members this node sees, by status",
            None,
            MetricType::Gauge,
        )?;
        for status in STATUSES {
            let count = state.members.iter().filter(|m| m.status == status).count();
            let status = status.to_string();
            let labels = [("status", status.as_str())];
            ConstGauge::new(count as i64).encode(members.encode_family(&labels)?)?;
        }
        let unreachable = state
            .members
            .iter()
            .filter(|m| !m.reachability.is_reachable())
            .count();
        gauge(
            e,
            "membership_unreachable_members",
            "Members some observer reports unreachable",
            unreachable as i64,
        )?;
        let pending = state.pending_decision.as_ref();
        gauge(
            e,
            "membership_downing_pending",
            "1 while a split-brain decision is pending",
            i64::from(pending.is_some()),
        )?;
        let decide_in = pending.map_or(0.0, |p| {
            p.decide_at
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
        });
        gauge(
            e,
            "membership_downing_decide_in_seconds",
            "Time left before the pending split-brain decision is taken (0 if none)",
            decide_in,
        )?;

        let phis = node.metrics().mesh.phis();
        // Per bucket: the encoder makes them cumulative.
        let mut lower = f64::NEG_INFINITY;
        let buckets: Vec<(f64, u64)> = PHI_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|bound| {
                let (from, to) = (std::mem::replace(&mut lower, bound), bound);
                let count = phis
                    .iter()
                    .filter(|phi| **phi > from && **phi <= to)
                    .count();
                (bound, count as u64)
            })
            .collect();
        let count = phis.len() as u64;
        let sum = phis.iter().map(|phi| phi.min(PHI_CAP)).sum();
        let phi = e.encode_descriptor(
            "membership_phi",
            "The current phi of every peer this node monitors, at this scrape",
            None,
            MetricType::Histogram,
        )?;
        let mut phi = phi;
        phi.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}
