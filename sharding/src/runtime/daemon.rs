//! `ShardedDaemonProcess` (rule 6): N named workers kept running somewhere
//! in the cluster.
//!
//! Built on sharding, as Akka's: worker `i` is entity `"i"` of the entity
//! type `daemon.<name>` (one shard per worker), so a worker runs where its
//! shard lives and moves with it. The coordinator's node sends every worker
//! a keep-alive each `daemon_keep_alive_interval`: a worker that does not
//! run (its shard was free, or its node went Down and the shard was
//! allocated again) starts on the first keep-alive that reaches its new
//! home. A worker runs as its own task while its entity lives and holds
//! its shard's lease: it is not polled again once the lease is lost (at the
//! lease's end on the clock, or when the shard is fenced, handed off or
//! dropped), even while the driver itself is paused, and is aborted when
//! the entity stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;
use tracing::Instrument;

use super::{EntityRef, RegionView, Sharding, ShardingError};
use crate::entity::{Entity, EntityContext};
use crate::lease_gate::{LeaseBound, ShardLease};

pub(crate) type WorkerFn = Arc<dyn Fn(DaemonContext) -> BoxFuture<'static, ()> + Send + Sync>;

/// What a daemon worker knows about itself.
#[derive(Clone, Debug)]
pub struct DaemonContext {
    /// The daemon's name.
    pub name: String,
    /// This worker's index, `0..count`.
    pub index: usize,
    /// How many workers the daemon keeps running.
    pub count: usize,
    /// The lease of the worker's shard on this node: check it right before
    /// acting outside the cluster. The runtime drops the worker the moment
    /// it is lost.
    pub lease: ShardLease,
}

/// The message a daemon worker entity receives.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum DaemonMessage {
    /// From the coordinator side: be running.
    KeepAlive,
}

/// The entity behind one daemon worker (public only because
/// [`DaemonHandle`] names it).
pub struct DaemonWorker {
    name: String,
    index: usize,
    count: usize,
    worker: WorkerFn,
    task: Option<AbortHandle>,
}

impl DaemonWorker {
    pub(crate) fn new(name: &str, id: &str, count: usize, worker: WorkerFn) -> Self {
        Self {
            name: name.trim_start_matches("daemon.").to_string(),
            index: id.parse().unwrap_or(usize::MAX),
            count,
            worker,
            task: None,
        }
    }

    /// Starts the worker's task unless it runs (it may have returned),
    /// bound to the lease of its shard.
    fn ensure_running(&mut self, ctx: &EntityContext) {
        if self.task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        if self.index >= self.count {
            return;
        }
        let lease = ctx.lease().clone();
        let run = (self.worker)(DaemonContext {
            name: self.name.clone(),
            index: self.index,
            count: self.count,
            lease: lease.clone(),
        });
        let bound = LeaseBound::new(run, lease.clone());
        let task = tokio::spawn(
            async move {
                tokio::select! {
                    _ = bound => {}
                    _ = lease.lost() => {}
                }
            }
            .in_current_span(),
        );
        self.task = Some(task.abort_handle());
    }
}

impl Drop for DaemonWorker {
    fn drop(&mut self) {
        Entity::fenced(self);
    }
}

impl Entity for DaemonWorker {
    type Message = DaemonMessage;
    type Reply = ();

    async fn started(&mut self, ctx: &mut EntityContext) {
        self.ensure_running(ctx);
    }

    async fn handle(&mut self, ctx: &mut EntityContext, message: DaemonMessage) {
        match message {
            DaemonMessage::KeepAlive => self.ensure_running(ctx),
        }
    }

    async fn stopped(&mut self, _ctx: &mut EntityContext) {
        Entity::fenced(self);
    }

    /// A fenced worker stops at once (another may start elsewhere); the
    /// first keep-alive after the shard is confirmed starts it again.
    fn fenced(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A running daemon process (see [`Sharding::daemon`]).
#[derive(Clone)]
pub struct DaemonHandle {
    workers: EntityRef<DaemonWorker>,
}

impl DaemonHandle {
    /// This node's region of the daemon: which workers' shards live here.
    pub async fn region_state(&self) -> Result<RegionView, ShardingError> {
        self.workers.region_state().await
    }

    /// Workers running on this node.
    pub async fn running_here(&self) -> Result<usize, ShardingError> {
        Ok(self.region_state().await?.entities)
    }

    /// Starts worker `index` now if it does not run (the keep-alive does the
    /// same on its own).
    pub async fn poke(&self, index: usize, timeout: Duration) -> Result<(), ShardingError> {
        self.workers
            .ask(&index.to_string(), DaemonMessage::KeepAlive, timeout)
            .await
    }
}

impl Sharding {
    /// Keeps `count` workers of daemon `name` running across the cluster
    /// (every node must start the same daemon). `worker` makes worker `i`'s
    /// future; it runs until it returns (then the next keep-alive starts it
    /// again) or until its shard moves.
    pub fn daemon<F, Fut>(
        &self,
        name: &str,
        count: usize,
        worker: F,
    ) -> Result<DaemonHandle, ShardingError>
    where
        F: Fn(DaemonContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let worker: WorkerFn = Arc::new(move |context| Box::pin(worker(context)));
        let workers = self.start_daemon_type(name, count, worker)?;
        Ok(DaemonHandle { workers })
    }
}
