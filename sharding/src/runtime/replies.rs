//! The asks of one entity type on this node that wait for an answer.
//!
//! Shared by the driver, which registers each ask and answers local ones,
//! and the mesh service, which completes an answer from another node at
//! once instead of queueing it behind the driver's work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use super::wire::ShardingError;

/// Where an `ask` waits for its answer.
pub(crate) type ReplySender<R> = oneshot::Sender<Result<R, ShardingError>>;

/// Waiting asks by correlation number.
pub(crate) struct Replies<R> {
    waiting: Mutex<FxHashMap<u64, ReplySender<R>>>,
    next: AtomicU64,
}

impl<R> Replies<R> {
    pub(crate) fn new() -> Self {
        Self {
            waiting: Mutex::new(FxHashMap::default()),
            next: AtomicU64::new(0),
        }
    }

    /// Registers an ask; returns the correlation number its answer carries.
    pub(crate) fn expect(&self, reply: ReplySender<R>) -> u64 {
        let correlation = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.waiting().insert(correlation, reply);
        correlation
    }

    /// Answers an ask. An answer nobody waits for any more (timed out, or
    /// a duplicate) is dropped.
    pub(crate) fn complete(&self, correlation: u64, result: Result<R, ShardingError>) {
        let reply = self.waiting().remove(&correlation);
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }

    /// Answers an ask from the answer another node sent.
    pub(crate) fn complete_remote(&self, correlation: u64, result: Result<R, String>) {
        self.complete(correlation, result.map_err(ShardingError::Remote));
    }

    /// Forgets asks whose caller stopped waiting (timed out).
    pub(crate) fn forget_abandoned(&self) {
        self.waiting().retain(|_, reply| !reply.is_closed());
    }

    /// Fails every waiting ask (the driver stops).
    pub(crate) fn fail_all(&self, error: ShardingError) {
        let waiting = std::mem::take(&mut *self.waiting());
        for (_, reply) in waiting {
            let _ = reply.send(Err(error.clone()));
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, FxHashMap<u64, ReplySender<R>>> {
        mesh::sync::lock(&self.waiting)
    }
}
