//! The extension point of a graceful leave: work that must finish between
//! `Leaving` and `Exiting` (sharding hands its shards off and moves its
//! coordinator away here).

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

/// One piece of handoff work, started when this node begins to leave.
/// Membership moves on to `Exiting` once every handoff has finished, or after
/// `leave_handoff_timeout` at the latest.
pub type LeaveHandoff = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The handoffs registered with [`crate::Node::on_leave`], taken once.
#[derive(Clone, Default)]
pub(crate) struct LeaveHandoffs(Arc<Mutex<Vec<LeaveHandoff>>>);

impl LeaveHandoffs {
    pub(crate) fn add(&self, handoff: LeaveHandoff) {
        crate::sync::lock(&self.0).push(handoff);
    }

    /// Runs every registered handoff concurrently until all are done. A
    /// handoff registered later (during the leave) is not waited for.
    pub(crate) async fn run_all(&self) {
        let handoffs: Vec<LeaveHandoff> = std::mem::take(&mut *crate::sync::lock(&self.0));
        futures::future::join_all(handoffs.into_iter().map(|handoff| handoff())).await;
    }
}
