//! Counters alone on their cache line, for the send and receive paths.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::counter::{Atomic, Counter};

/// An `AtomicU64` alone on its cache line (128 bytes, for CPUs that fetch
/// lines in pairs): a counter written by one thread never slows down
/// another that writes a counter allocated next to it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded(AtomicU64);

impl Padded {
    /// Adds `v`.
    #[inline]
    pub(crate) fn add(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }

    /// The value.
    pub(crate) fn load(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Atomic<u64> for Padded {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    fn inc_by(&self, v: u64) -> u64 {
        self.0.fetch_add(v, Ordering::Relaxed)
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter on the hot path (see [`Padded`]).
pub(crate) type HotCounter = Counter<u64, Padded>;
