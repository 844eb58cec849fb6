//! The [`Node`]: what a running node is made of, and its public face.
//!
//! A node composes parts that each own one concern: the [`Transport`] (the
//! endpoint and the links to peers), the [`Services`] registry, the hook
//! registry, chitchat's handle, the member list and the membership driver's
//! handle. `NodeBuilder` (in `builder.rs`) assembles them; sending
//! (`send.rs`, `pipeline.rs`), membership (`cluster/`) and the admin API
//! (`admin.rs`) use the node through the methods here; the ones that make
//! up their part of the public API (`Node::tell`, `Node::leave`, ...) are
//! defined beside them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use chitchat::ChitchatHandle;
use membership::NodeId;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{broadcast, watch};

use crate::cluster::handle::ClusterHandle;
use crate::config::NodeConfig;
use crate::error::SendError;
use crate::hooks::Hooks;
use crate::link::Link;
use crate::members::MemberInfo;
use crate::metrics::Metrics;
use crate::service::{Request, TypedService};
use crate::services::{ServiceExists, Services};
use crate::stats::NodeStats;
use crate::sync::lock;
use crate::tasks::Tasks;
use crate::transport::{ConnectionEvent, Transport};
use crate::views::{AdminView, AdminViews, ReadinessCheck, ReadinessChecks};

/// A running mesh node. Cheap to clone; all clones are the same node.
#[derive(Clone)]
pub struct Node {
    parts: Arc<NodeParts>,
}

/// What a node is made of; assembled once by the builder.
pub(crate) struct NodeParts {
    pub(crate) config: NodeConfig,
    pub(crate) transport: Arc<Transport>,
    pub(crate) services: Arc<Services>,
    pub(crate) hooks: Hooks,
    pub(crate) tasks: Arc<Tasks>,
    pub(crate) admin_views: AdminViews,
    pub(crate) readiness: ReadinessChecks,
    /// Numbers this node's remote asks (and pipelines, see
    /// [`crate::link::answers::AnswerReader`]).
    pub(crate) next_ask: AtomicU64,
    pub(crate) chitchat: Mutex<Option<ChitchatHandle>>,
    pub(crate) members: watch::Receiver<Vec<MemberInfo>>,
    pub(crate) cluster: ClusterHandle,
    pub(crate) metrics: Metrics,
}

/// A [`Node`] that does not keep it alive (held by what the node owns).
pub(crate) struct WeakNode(Weak<NodeParts>);

impl WeakNode {
    /// The node, unless it was dropped.
    pub(crate) fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|parts| Node { parts })
    }
}

impl From<NodeParts> for Node {
    fn from(parts: NodeParts) -> Self {
        Self {
            parts: Arc::new(parts),
        }
    }
}

impl Node {
    /// This node's identity.
    pub fn id(&self) -> &NodeId {
        self.parts.transport.id()
    }

    /// The address peers use to reach this node.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.parts.transport.advertise()
    }

    /// The address the QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.parts
            .transport
            .local_addr()
            .unwrap_or(self.parts.config.listen)
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.parts.config
    }

    /// The hook registry of this node.
    pub fn hooks(&self) -> &Hooks {
        &self.parts.hooks
    }

    /// The span that carries this node's name (`node{node=name#generation}`):
    /// every task the node spawns runs inside it. A library that spawns
    /// tasks for the node (sharding does) instruments them with it, so that
    /// a multi-node log can be filtered by node.
    ///
    /// ```no_run
    /// # fn demo(node: &mesh::Node) {
    /// use tracing::Instrument;
    /// tokio::spawn(async { tracing::info!("runs as part of the node") }.instrument(node.span().clone()));
    /// # }
    /// ```
    pub fn span(&self) -> &tracing::Span {
        self.parts.tasks.span()
    }

    /// The node's metrics registry, served on `GET /metrics` (see
    /// [`crate::metrics`]); other libraries add their series to it.
    pub fn metrics(&self) -> &Metrics {
        &self.parts.metrics
    }

    /// A handle that does not keep the node alive.
    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.parts))
    }

    /// Bytes waiting to be written, per peer.
    pub(crate) fn outbox_bytes(&self) -> Vec<(String, usize)> {
        self.parts.transport.outbox_bytes()
    }

    /// Counters of refused and dropped input.
    pub fn stats(&self) -> NodeStats {
        let transport = &self.parts.transport;
        let (replies_dropped, asks_pending) = transport.link_counts();
        transport.stats().snapshot(replies_dropped, asks_pending)
    }

    /// Live members as chitchat sees them, this node included, oldest first:
    /// identity, address and roles, no status. For the membership view with
    /// status and reachability see [`Node::cluster_members`].
    pub fn members(&self) -> Vec<MemberInfo> {
        self.parts.members.borrow().clone()
    }

    /// A watch of [`Node::members`]; it changes whenever the member list does.
    pub fn watch_members(&self) -> watch::Receiver<Vec<MemberInfo>> {
        self.parts.members.clone()
    }

    /// Peers with an active connection.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        self.parts.transport.connected()
    }

    /// Connection up/down events from now on.
    pub fn connection_events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.parts.transport.events()
    }

    /// Registers service `name`. The handler is called for every message in
    /// arrival order and must not block (see [`crate::service`]).
    ///
    /// ```no_run
    /// # fn demo(node: &mesh::Node) {
    /// node.register_service("echo", |req: mesh::Request<String, String>| {
    ///     let text = req.message().clone();
    ///     req.reply(text);
    /// })
    /// .unwrap();
    /// # }
    /// ```
    pub fn register_service<M, R, F>(&self, name: &str, handler: F) -> Result<(), ServiceExists>
    where
        M: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(Request<M, R>) + Send + Sync + 'static,
    {
        let service = Arc::new(TypedService::new(handler));
        self.parts.services.register(name, service)
    }

    /// Removes service `name`; later messages for it get an unknown-service error.
    pub fn unregister_service(&self, name: &str) {
        self.parts.services.unregister(name);
    }

    /// Stops the node now: stops gossip, closes every connection with a
    /// goodbye, and waits briefly for the close to reach the peers. The
    /// cluster is not told first, so the others see the node go unreachable
    /// and down it; [`Node::leave`] leaves gracefully (and ends with this).
    pub async fn shutdown(&self) {
        let chitchat = lock(&self.parts.chitchat).take();
        if let Some(chitchat) = chitchat {
            let _ = chitchat.shutdown().await;
        }
        self.parts.tasks.stop();
        self.parts.transport.close().await;
        tracing::info!(node = %self.id(), "node stopped");
    }

    /// Kills the node as `kill -9` would: no goodbye to any peer, nothing
    /// flushed, every task aborted. For failure tests (cargo feature
    /// `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub fn crash(&self) {
        if let Some(chitchat) = lock(&self.parts.chitchat).take() {
            chitchat.abort();
        }
        crash(&self.parts.transport, &self.parts.tasks);
    }

    /// Whether the node has been shut down or has crashed.
    pub fn is_stopped(&self) -> bool {
        self.parts.tasks.stopped()
    }

    /// Starts a gossip round with each of `peers` now, besides chitchat's
    /// regular rounds: a membership change (a Down decision, an observation)
    /// then reaches them in one round trip instead of up to a gossip interval.
    pub(crate) fn gossip_now(&self, peers: &[SocketAddr]) {
        if let Some(chitchat) = lock(&self.parts.chitchat).as_ref() {
            for peer in peers {
                // Fails only when gossip has stopped: nothing to push then.
                let _ = chitchat.gossip(*peer);
            }
        }
    }

    /// Spawns a task that stops with the node.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.parts.tasks.spawn(task);
    }

    /// Serves `GET /{name}` on the admin API (see [`crate::admin`]) with
    /// the JSON that `view` produces at each request (a later registration
    /// of the same name replaces the earlier one). The fixed routes
    /// (`health`, `alive`, `ready`, `members`, `cluster`, `stats`, `metrics`) cannot
    /// be replaced.
    pub fn register_admin_view<F, Fut>(&self, name: &str, view: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = serde_json::Value> + Send + 'static,
    {
        let view: AdminView = Arc::new(move || Box::pin(view()));
        self.parts.admin_views.insert(name, view);
    }

    /// Adds `check` to `GET /ready` (see [`crate::admin`]): the node is
    /// ready while it is Up and every check answers `Ok` (a later
    /// registration of the same name replaces the earlier one). Sharding
    /// registers one per entity type: its region is registered with a
    /// coordinator.
    pub fn register_readiness<F, Fut>(&self, name: &str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: ReadinessCheck = Arc::new(move || Box::pin(check()));
        self.parts.readiness.insert(name, check);
    }

    /// Fails with [`SendError::Shutdown`] once the node stopped.
    pub(crate) fn check_running(&self) -> Result<(), SendError> {
        if self.parts.tasks.stopped() {
            Err(SendError::Shutdown)
        } else {
            Ok(())
        }
    }

    /// The services registered here.
    pub(crate) fn services(&self) -> &Services {
        &self.parts.services
    }

    /// Stops serving: every service is removed at once, so later messages
    /// get an unknown-service error (used when the cluster downs this node).
    pub(crate) fn close_services(&self) {
        self.parts.services.close();
    }

    /// A fresh ask id.
    pub(crate) fn next_ask_id(&self) -> u64 {
        self.parts.next_ask.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` on the link to `peer`, created if a member of that name is
    /// known; cloning nothing on the path of every send.
    pub(crate) fn with_link<T>(
        &self,
        peer: &str,
        f: impl FnOnce(&Arc<Link>) -> T,
    ) -> Result<T, SendError> {
        let transport = &self.parts.transport;
        let f = match transport.with_link(peer, f) {
            Ok(done) => return Ok(done),
            Err(f) => f,
        };
        let addr = self
            .members()
            .into_iter()
            .find(|m| m.id.name == peer)
            .map(|m| m.addr)
            .ok_or_else(|| SendError::UnknownPeer(peer.to_string()))?;
        Ok(f(&transport.link(peer, Some(addr))))
    }

    /// Makes `peer` reachable at `addr` unless a link to it exists already
    /// (which keeps its address).
    pub(crate) fn introduce(&self, peer: &str, addr: SocketAddr) {
        let transport = &self.parts.transport;
        if transport.with_link(peer, |_| ()).is_err() {
            transport.link(peer, Some(addr));
        }
    }

    /// The admin view named `name`.
    pub(crate) fn admin_view(&self, name: &str) -> Option<AdminView> {
        self.parts.admin_views.get(name)
    }

    /// Every registered readiness check, by name.
    pub(crate) fn readiness_checks(&self) -> Vec<(String, ReadinessCheck)> {
        self.parts.readiness.all()
    }

    /// The node's side of the membership driver.
    pub(crate) fn cluster(&self) -> &ClusterHandle {
        &self.parts.cluster
    }
}

/// Stops everything at once, as a process kill would: the socket goes silent
/// first (no goodbye reaches anyone), then every task is aborted.
pub(crate) fn crash(transport: &Transport, tasks: &Tasks) {
    tracing::warn!(node = %transport.id(), "crashing");
    transport.kill();
    tasks.stop();
}
