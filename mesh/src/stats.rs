//! Counters of what a node refused or dropped, and its pending asks.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters of one node.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) frames_oversized: AtomicU64,
    pub(crate) frames_malformed: AtomicU64,
    pub(crate) messages_malformed: AtomicU64,
    pub(crate) streams_unknown: AtomicU64,
    pub(crate) handshakes_refused: AtomicU64,
    pub(crate) unknown_service: AtomicU64,
    pub(crate) messages_undeliverable: AtomicU64,
    pub(crate) gossip_dropped: AtomicU64,
}

/// A snapshot of a node's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeStats {
    /// Frames larger than the maximum (the stream was closed).
    pub frames_oversized: u64,
    /// Frames whose header did not decode (the stream was closed).
    pub frames_malformed: u64,
    /// Messages whose body did not decode as the service's type (dropped or answered with an error).
    pub messages_malformed: u64,
    /// Streams with an unknown kind byte (closed).
    pub streams_unknown: u64,
    /// Connections refused at the TLS or hello stage.
    pub handshakes_refused: u64,
    /// Messages for a service that is not registered.
    pub unknown_service: u64,
    /// Outgoing messages dropped because the peer could not be reached.
    pub messages_undeliverable: u64,
    /// Gossip messages dropped (no connection yet, or queue full).
    pub gossip_dropped: u64,
    /// Replies dropped because the asking peer's buffer was full.
    pub replies_dropped: u64,
    /// Remote asks waiting for their answer now (a gauge, not a count).
    pub asks_pending: u64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters; `replies_dropped` is kept per peer and summed by the
    /// caller, which also knows `asks_pending`.
    pub(crate) fn snapshot(&self, replies_dropped: u64, asks_pending: u64) -> NodeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NodeStats {
            frames_oversized: get(&self.frames_oversized),
            frames_malformed: get(&self.frames_malformed),
            messages_malformed: get(&self.messages_malformed),
            streams_unknown: get(&self.streams_unknown),
            handshakes_refused: get(&self.handshakes_refused),
            unknown_service: get(&self.unknown_service),
            messages_undeliverable: get(&self.messages_undeliverable),
            gossip_dropped: get(&self.gossip_dropped),
            replies_dropped,
            asks_pending,
        }
    }
}
