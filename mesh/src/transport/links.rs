//! The links of one node, by peer name and by advertise address.

use std::net::SocketAddr;
use std::sync::Arc;

use membership::NodeId;
use rustc_hash::FxHashMap;

use crate::link::Link;

/// Links by name, and names by advertise address.
#[derive(Default)]
pub(crate) struct Links {
    // Looked up on every send; names are few and come from authenticated peers.
    by_name: FxHashMap<String, Arc<Link>>,
    by_addr: FxHashMap<SocketAddr, String>,
}

impl Links {
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Link>> {
        self.by_name.get(name)
    }

    pub(crate) fn by_addr(&self, addr: &SocketAddr) -> Option<&Arc<Link>> {
        self.by_addr.get(addr).and_then(|name| self.get(name))
    }

    /// Adds `link`, which must be new.
    pub(crate) fn insert(&mut self, link: Arc<Link>) {
        self.by_name.insert(link.name().to_string(), link);
    }

    /// Records that `link` is reached at `addr` (its address changed).
    pub(crate) fn readdress(&mut self, link: &Link, addr: SocketAddr) {
        if let Some(old) = link.replace_addr(addr) {
            self.by_addr.remove(&old);
        }
        self.by_addr.insert(addr, link.name().to_string());
    }

    pub(crate) fn outbox_bytes(&self) -> Vec<(String, usize)> {
        self.by_name
            .iter()
            .map(|(name, link)| (name.clone(), link.outbox().buffered()))
            .collect()
    }

    pub(crate) fn replies_dropped(&self) -> u64 {
        self.by_name
            .values()
            .map(|link| link.outbox().replies_dropped())
            .sum()
    }

    pub(crate) fn asks_pending(&self) -> u64 {
        self.by_name
            .values()
            .map(|link| link.pending().len() as u64)
            .sum()
    }

    pub(crate) fn connected(&self) -> Vec<NodeId> {
        let mut ids: Vec<_> = self
            .by_name
            .values()
            .filter_map(|link| link.active().map(|a| a.id))
            .collect();
        ids.sort();
        ids
    }
}
