//! The node's metrics, served as Prometheus text on `GET /metrics` (see
//! [`crate::admin`]).
//!
//! One [`Metrics`] registry per [`crate::Node`] ([`crate::Node::metrics`]),
//! built on [`prometheus_client`] (re-exported, so that a library adding its
//! own series uses the same version). Mesh registers:
//!
//! - traffic: `mesh_messages_sent_total`, `mesh_bytes_sent_total`,
//!   `mesh_messages_received_total`, `mesh_bytes_received_total`, labelled
//!   `peer` and `service` (replies as service `(reply)`, services not
//!   registered here as `(unknown)`, so that a peer cannot grow the label
//!   set);
//! - asks: `mesh_asks_total`, `mesh_ask_timeouts_total` and the histogram
//!   `mesh_ask_duration_seconds` (asks made with `ask`; pipelined asks count
//!   in the first two only), by `peer`;
//! - `mesh_connections_up_total`, `mesh_connections_down_total` by `peer`;
//! - backpressure: `mesh_sends_waited_total` (sends that found the peer's
//!   buffer full and waited), `mesh_sends_refused_total` (tells refused
//!   with `Backpressure`), and the gauge `mesh_outbox_bytes` (what waits
//!   for each peer now);
//! - what the node refused: `mesh_frames_rejected_total{reason}`,
//!   `mesh_handshakes_refused_total`, `mesh_unknown_service_total`,
//!   `mesh_messages_undeliverable_total`, `mesh_gossip_dropped_total`,
//!   `mesh_replies_dropped_total`, and the gauge `mesh_asks_pending`;
//! - membership, read from the membership state at each scrape:
//!   `membership_members{status}`, `membership_unreachable_members`,
//!   `membership_downing_pending` (1 while a split-brain decision is
//!   pending), `membership_downing_decide_in_seconds`,
//!   `membership_heartbeats_sent_total`,
//!   `membership_heartbeat_answers_total`,
//!   `membership_heartbeat_requests_total`, and the histogram
//!   `membership_phi` of the current phi of every monitored peer.
//!
//! Labels stay bounded: peers by name (bounded by the cluster), services by
//! registered name. Recording on the send and receive paths is atomics
//! only: the counters of a (peer, service) pair are looked up once per link
//! and service, not per message, and each counter of those paths sits on a
//! cache line of its own (nodes in one process, or a sender and a receiver
//! on two cores, never write to a shared line).
//!
//! A library adds its series with [`Metrics::register`] or, for values read
//! at scrape time, [`Metrics::register_collector`]:
//!
//! ```no_run
//! # fn demo(node: &mesh::Node) {
//! use mesh::metrics::prometheus_client::metrics::counter::Counter;
//! let handled: Counter = Counter::default();
//! node.metrics().register("orders_handled", "Orders handled", handled.clone());
//! handled.inc();
//! # }
//! ```

mod collector;
mod histogram;
mod padded;

use std::sync::{Arc, Mutex};

pub use prometheus_client;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Metric, Registry};

pub(crate) use self::collector::NodeCollector;
pub use self::histogram::{DurationHistogram, LATENCY_BUCKETS, RECOVERY_BUCKETS};
use self::padded::HotCounter;
use crate::sync::lock;

/// The metrics registry of one node. Obtained with [`crate::Node::metrics`].
pub struct Metrics {
    registry: Mutex<Registry>,
    pub(crate) mesh: Arc<MeshMetrics>,
}

impl Metrics {
    /// A registry holding mesh's own series.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let mesh = Arc::new(MeshMetrics::register(&mut registry));
        Self {
            registry: Mutex::new(registry),
            mesh,
        }
    }

    /// Adds `metric` under `name` (a counter gets the suffix `_total`). The
    /// caller keeps a clone of the metric and records into it; labels must
    /// stay bounded (no entity ids).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        lock(&self.registry).register(name, help, metric);
    }

    /// Adds a collector, which encodes its series at every scrape: for
    /// values best read from state when asked (gauges of sizes, counts).
    pub fn register_collector(&self, collector: impl Collector) {
        lock(&self.registry).register_collector(Box::new(collector));
    }

    /// Every series, in the OpenMetrics text format that Prometheus reads.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &lock(&self.registry));
        text
    }
}

/// Labels of a per-peer series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PeerLabels {
    peer: String,
}

/// Labels of a per-peer, per-service series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    peer: String,
    service: String,
}

/// The service label of replies and failures.
pub(crate) const REPLY: &str = "(reply)";
/// The service label of messages for a service not registered here, or
/// sent unnumbered.
pub(crate) const OTHER: &str = "(unknown)";

/// Mesh's own series, recorded by the transport.
pub(crate) struct MeshMetrics {
    messages_sent: Family<ServiceLabels, HotCounter>,
    bytes_sent: Family<ServiceLabels, HotCounter>,
    messages_received: Family<ServiceLabels, HotCounter>,
    bytes_received: Family<ServiceLabels, HotCounter>,
    asks: Family<PeerLabels, HotCounter>,
    ask_timeouts: Family<PeerLabels, HotCounter>,
    ask_duration: Family<PeerLabels, DurationHistogram, fn() -> DurationHistogram>,
    connections_up: Family<PeerLabels, Counter>,
    connections_down: Family<PeerLabels, Counter>,
    sends_waited: Family<PeerLabels, Counter>,
    sends_refused: Family<PeerLabels, Counter>,
    pub(crate) heartbeats_sent: Counter,
    pub(crate) heartbeat_answers: Counter,
    pub(crate) heartbeat_requests: Counter,
    /// The phi of each monitored peer at the membership driver's last step.
    phis: Mutex<Vec<f64>>,
}

fn latency_histogram() -> DurationHistogram {
    DurationHistogram::new(LATENCY_BUCKETS)
}

impl MeshMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            messages_sent: Family::default(),
            bytes_sent: Family::default(),
            messages_received: Family::default(),
            bytes_received: Family::default(),
            asks: Family::default(),
            ask_timeouts: Family::default(),
            ask_duration: Family::new_with_constructor(latency_histogram as fn() -> _),
            connections_up: Family::default(),
            connections_down: Family::default(),
            sends_waited: Family::default(),
            sends_refused: Family::default(),
            heartbeats_sent: Counter::default(),
            heartbeat_answers: Counter::default(),
            heartbeat_requests: Counter::default(),
            phis: Mutex::default(),
        };
        let m = &metrics;
        registry.register(
            "mesh_messages_sent",
            "Frames sent, by peer and service",
            m.messages_sent.clone(),
        );
        registry.register(
            "mesh_bytes_sent",
            "Bytes of frames sent, by peer and service",
            m.bytes_sent.clone(),
        );
        registry.register(
            "mesh_messages_received",
            "Frames received, by peer and service",
            m.messages_received.clone(),
        );
        registry.register(
            "mesh_bytes_received",
            "Bytes of frames received, by peer and service",
            m.bytes_received.clone(),
        );
        registry.register("mesh_asks", "Asks sent to a peer", m.asks.clone());
        registry.register(
            "mesh_ask_timeouts",
            "Asks to a peer that timed out",
            m.ask_timeouts.clone(),
        );
        registry.register(
            "mesh_ask_duration_seconds",
            "Time from an ask to its answer",
            m.ask_duration.clone(),
        );
        registry.register(
            "mesh_connections_up",
            "Connections to a peer that came up",
            m.connections_up.clone(),
        );
        registry.register(
            "mesh_connections_down",
            "Connections to a peer that went down",
            m.connections_down.clone(),
        );
        registry.register(
            "mesh_sends_waited",
            "Sends that found the peer's buffer full and waited",
            m.sends_waited.clone(),
        );
        registry.register(
            "mesh_sends_refused",
            "Tells refused because the peer's buffer was full",
            m.sends_refused.clone(),
        );
        registry.register(
            "membership_heartbeats_sent",
            "Heartbeat requests sent",
            m.heartbeats_sent.clone(),
        );
        registry.register(
            "membership_heartbeat_answers",
            "Heartbeat answers received",
            m.heartbeat_answers.clone(),
        );
        registry.register(
            "membership_heartbeat_requests",
            "Heartbeat requests answered",
            m.heartbeat_requests.clone(),
        );
        metrics
    }

    /// Series in no registry, for unit tests.
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        Self::register(&mut Registry::default())
    }

    /// Keeps the phi of each monitored peer, for the next scrape.
    pub(crate) fn record_phis(&self, phis: impl Iterator<Item = f64>) {
        let mut kept = lock(&self.phis);
        kept.clear();
        kept.extend(phis);
    }

    /// The phis last recorded.
    pub(crate) fn phis(&self) -> Vec<f64> {
        lock(&self.phis).clone()
    }

    /// The per-peer series of the link to `peer`.
    pub(crate) fn link(&self, peer: &str) -> LinkMetrics {
        let labels = PeerLabels {
            peer: peer.to_string(),
        };
        LinkMetrics {
            asks: self.asks.get_or_create_owned(&labels),
            ask_timeouts: self.ask_timeouts.get_or_create_owned(&labels),
            ask_duration: self.ask_duration.get_or_create_owned(&labels),
            sends_waited: self.sends_waited.get_or_create_owned(&labels),
            sends_refused: self.sends_refused.get_or_create_owned(&labels),
        }
    }

    /// Frames sent to `service` on `peer`.
    pub(crate) fn sent(&self, peer: &str, service: &str) -> Traffic {
        Traffic::of(&self.messages_sent, &self.bytes_sent, peer, service)
    }

    /// Frames received from `peer` for `service`.
    pub(crate) fn received(&self, peer: &str, service: &str) -> Traffic {
        Traffic::of(&self.messages_received, &self.bytes_received, peer, service)
    }

    /// A connection to `peer` came up.
    pub(crate) fn connection_up(&self, peer: &str) {
        let labels = PeerLabels {
            peer: peer.to_string(),
        };
        self.connections_up.get_or_create(&labels).inc();
    }

    /// The active connection to `peer` went down.
    pub(crate) fn connection_down(&self, peer: &str) {
        let labels = PeerLabels {
            peer: peer.to_string(),
        };
        self.connections_down.get_or_create(&labels).inc();
    }
}

/// The per-peer series of one link, looked up once when the link is made.
pub(crate) struct LinkMetrics {
    pub(crate) asks: HotCounter,
    pub(crate) ask_timeouts: HotCounter,
    pub(crate) ask_duration: DurationHistogram,
    pub(crate) sends_waited: Counter,
    pub(crate) sends_refused: Counter,
}

/// The message and byte counters of one (peer, service) pair in one
/// direction.
#[derive(Clone)]
pub(crate) struct Traffic {
    messages: HotCounter,
    bytes: HotCounter,
}

impl Traffic {
    fn of(
        messages: &Family<ServiceLabels, HotCounter>,
        bytes: &Family<ServiceLabels, HotCounter>,
        peer: &str,
        service: &str,
    ) -> Self {
        let labels = ServiceLabels {
            peer: peer.to_string(),
            service: service.to_string(),
        };
        Self {
            messages: messages.get_or_create_owned(&labels),
            bytes: bytes.get_or_create_owned(&labels),
        }
    }

    /// Frames counted so far.
    #[cfg(test)]
    pub(crate) fn messages(&self) -> u64 {
        self.messages.get()
    }

    /// One frame of `bytes` bytes.
    #[inline]
    pub(crate) fn record(&self, bytes: usize) {
        self.messages.inc();
        self.bytes.inc_by(bytes as u64);
    }
}
