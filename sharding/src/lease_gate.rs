//! Rule 1 at the moment of every poll: the gate that entity steps and
//! daemon workers pass through.
//!
//! The region decides which shards it may run; the driver publishes that
//! here (per shard: open or closed) with the end of the region's lease. A
//! step of an entity, or a daemon worker, is polled only while its shard's
//! gate is open *and* a fresh read of the clock is before the lease's end.
//! So a pause anywhere (inside a delivery round, in a handler's await,
//! a stopped process) can delay the driver's bookkeeping but never lets
//! work of a shard run past its lease: the next poll finds the gate shut.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::clock;
use crate::ids::ShardId;

/// The gates of every shard of one region.
pub(crate) struct Gates {
    /// The zero of `lease_until`.
    base: Instant,
    /// The end of the region's lease, in nanoseconds after `base`; 0: none.
    lease_until: AtomicU64,
    open: Box<[AtomicBool]>,
    /// Woken when a gate closes or the lease is cut short.
    closed: Notify,
}

impl Gates {
    pub(crate) fn new(number_of_shards: u32) -> Arc<Self> {
        Arc::new(Self {
            base: clock::now(),
            lease_until: AtomicU64::new(0),
            open: (0..number_of_shards)
                .map(|_| AtomicBool::new(false))
                .collect(),
            closed: Notify::new(),
        })
    }

    /// The lease of the region now ends at `until` (`None`: it holds none).
    pub(crate) fn set_lease(&self, until: Option<Instant>) {
        let nanos = until.map_or(0, |until| {
            // An instant before `base` is a lease that already ended.
            let after = until.saturating_duration_since(self.base).as_nanos();
            u64::try_from(after).unwrap_or(u64::MAX).max(1)
        });
        let before = self.lease_until.swap(nanos, Ordering::SeqCst);
        if nanos < before {
            self.closed.notify_waiters();
        }
    }

    /// Opens or closes the gate of `shard`; true if it changed.
    pub(crate) fn set_open(&self, shard: ShardId, open: bool) -> bool {
        let Some(gate) = self.open.get(shard.0 as usize) else {
            return false;
        };
        let was = gate.swap(open, Ordering::SeqCst);
        if was && !open {
            self.closed.notify_waiters();
        }
        was != open
    }

    /// Whether work of `shard` may run at this very moment (a fresh clock read).
    pub(crate) fn runs(&self, shard: ShardId) -> bool {
        self.valid_until(shard)
            .is_some_and(|until| clock::now() < until)
    }

    fn valid_until(&self, shard: ShardId) -> Option<Instant> {
        let open = self
            .open
            .get(shard.0 as usize)
            .is_some_and(|gate| gate.load(Ordering::SeqCst));
        let nanos = self.lease_until.load(Ordering::SeqCst);
        (open && nanos > 0).then(|| self.base + Duration::from_nanos(nanos))
    }

    /// The lease of one shard, as its work sees it.
    pub(crate) fn lease(self: &Arc<Self>, shard: ShardId) -> ShardLease {
        ShardLease {
            gates: self.clone(),
            shard,
        }
    }
}

/// The lease under which a shard's entities and daemon workers run (rule 1),
/// as they see it: from [`crate::EntityContext::lease`] and
/// [`crate::DaemonContext::lease`].
///
/// Work that acts outside the cluster (a write to a database, a call to
/// another service) can check [`ShardLease::is_valid`] right before it acts,
/// or race its work against [`ShardLease::lost`]. The runtime enforces the
/// same rule on its own side: a step of an entity is not polled again once
/// the lease is lost, and a daemon worker is dropped at that moment.
#[derive(Clone)]
pub struct ShardLease {
    gates: Arc<Gates>,
    shard: ShardId,
}

impl std::fmt::Debug for ShardLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardLease")
            .field("shard", &self.shard)
            .field("valid_until", &self.valid_until())
            .finish()
    }
}

impl ShardLease {
    /// The shard this lease is for.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Whether this node may run the shard at this moment: it holds the
    /// shard, its region holds a lease, and the clock, read now, is before
    /// the lease's end.
    pub fn is_valid(&self) -> bool {
        self.gates.runs(self.shard)
    }

    /// The end of the lease on this node's monotonic clock, or `None` while
    /// the shard is fenced, handed off or dropped. It moves forward with
    /// every renewal.
    pub fn valid_until(&self) -> Option<Instant> {
        self.gates.valid_until(self.shard)
    }

    /// Resolves once the lease is lost: at its end on the clock, or when the
    /// shard is fenced, handed off or dropped, whichever comes first.
    /// Renewals push it on.
    pub async fn lost(&self) {
        loop {
            let closed = self.gates.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            let Some(until) = self.valid_until() else {
                return;
            };
            let Some(left) = until
                .checked_duration_since(clock::now())
                .filter(|d| !d.is_zero())
            else {
                return;
            };
            // A timer on tokio's clock for the time left on the lease clock;
            // the loop checks the lease clock again when it fires.
            tokio::select! {
                _ = tokio::time::sleep(left) => {}
                _ = closed => {}
            }
        }
    }
}

/// A future that is polled only while its shard's lease holds; once it is
/// lost, the future is never polled again and resolves to `None`.
pub(crate) struct LeaseBound<F> {
    inner: F,
    lease: ShardLease,
}

impl<F: Future + Unpin> LeaseBound<F> {
    pub(crate) fn new(inner: F, lease: ShardLease) -> Self {
        Self { inner, lease }
    }
}

impl<F: Future + Unpin> Future for LeaseBound<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.lease.is_valid() {
            return Poll::Ready(None);
        }
        Pin::new(&mut this.inner).poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_runs_only_while_open_and_before_the_lease_ends() {
        let gates = Gates::new(4);
        let lease = gates.lease(ShardId(2));
        assert!(!lease.is_valid(), "closed and no lease");
        gates.set_lease(Some(clock::now() + Duration::from_secs(10)));
        assert!(!lease.is_valid(), "a lease, but the gate is closed");
        assert!(gates.set_open(ShardId(2), true));
        assert!(lease.is_valid());
        assert!(!gates.lease(ShardId(1)).is_valid(), "one gate per shard");
        gates.set_lease(Some(clock::now() - Duration::from_millis(1)));
        assert!(!lease.is_valid(), "the lease ended");
        gates.set_lease(Some(clock::now() + Duration::from_secs(10)));
        assert!(gates.set_open(ShardId(2), false));
        assert!(!lease.is_valid());
        assert_eq!(lease.valid_until(), None);
        assert!(!gates.set_open(ShardId(9), true), "no such shard");
    }

    #[tokio::test]
    async fn lost_resolves_no_earlier_than_the_lease_end_and_follows_renewals() {
        let gates = Gates::new(1);
        let lease = gates.lease(ShardId(0));
        gates.set_open(ShardId(0), true);
        let start = clock::now();
        gates.set_lease(Some(start + Duration::from_millis(100)));
        let renewed = start + Duration::from_millis(300);
        let renew = {
            let gates = gates.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                gates.set_lease(Some(renewed));
            }
        };
        tokio::join!(lease.lost(), renew);
        assert!(clock::now() >= renewed, "lost before the renewed end");
        assert!(!lease.is_valid());
    }

    #[tokio::test]
    async fn lost_resolves_when_the_gate_closes() {
        let gates = Gates::new(1);
        let lease = gates.lease(ShardId(0));
        gates.set_open(ShardId(0), true);
        gates.set_lease(Some(clock::now() + Duration::from_secs(60)));
        let close = async {
            tokio::task::yield_now().await;
            gates.set_open(ShardId(0), false);
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            tokio::join!(lease.lost(), close)
        })
        .await
        .expect("lost() resolves when the gate closes");
    }

    #[test]
    fn a_lease_bound_future_is_not_polled_after_the_lease() {
        let gates = Gates::new(1);
        gates.set_open(ShardId(0), true);
        gates.set_lease(Some(clock::now() + Duration::from_secs(60)));
        let polls = std::cell::Cell::new(0);
        let inner = std::future::poll_fn(|_| {
            polls.set(polls.get() + 1);
            Poll::<()>::Pending
        });
        let inner = std::pin::pin!(inner);
        let mut bound = std::pin::pin!(LeaseBound::new(inner, gates.lease(ShardId(0))));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(bound.as_mut().poll(&mut cx).is_pending());
        gates.set_lease(Some(clock::now() - Duration::from_millis(1)));
        assert_eq!(bound.as_mut().poll(&mut cx), Poll::Ready(None));
        assert_eq!(polls.get(), 1);
    }
}
