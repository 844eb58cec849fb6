//! The [`Node`]: one QUIC endpoint, its peers, its services and its gossip.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use compact_str::CompactString;
use membership::NodeId;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;

use crate::admin::AdminView;
use crate::config::NodeConfig;
use crate::error::StartError;
use crate::gossip::{QuicGossip, GOSSIP_INBOX};
use crate::hooks::Hooks;
use crate::members::{MemberInfo, MembersView};
use crate::peers::PeerTable;
use crate::pending::PendingAsks;
use crate::service::{ErasedService, Request, TypedService};
use crate::socket::{bind_udp, CrashableSocket};
use crate::stats::{NodeStats, Stats};
use crate::sync::{lock, read, write, CacheAligned};
use crate::tls::{transport_config, QuicTls, TlsSettings};
use crate::wire::ErrorCode;

/// A connection to a peer came up or went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A connection to `peer` is active.
    Up {
        /// The peer's identity.
        peer: NodeId,
        /// Its advertise address.
        addr: SocketAddr,
    },
    /// The active connection to `peer` closed and no other took its place.
    Down {
        /// The peer's name.
        peer: String,
        /// Why the connection closed.
        reason: String,
    },
}

/// State shared by the node's tasks.
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    /// `id.name`, shared by every locally sent [`Request`].
    pub(crate) local_name: CompactString,
    pub(crate) config: NodeConfig,
    pub(crate) advertise: SocketAddr,
    pub(crate) insecure: bool,
    pub(crate) endpoint: quinn::Endpoint,
    socket: Arc<CrashableSocket>,
    pub(crate) client_config: quinn::ClientConfig,
    services: RwLock<HashMap<String, Arc<dyn ErasedService>>>,
    /// Bumped on every (un)registration; readers cache services until it moves.
    services_version: CacheAligned<AtomicU64>,
    /// Locked for reading on every send: kept off the cache lines that the
    /// receiving side touches.
    pub(crate) peers: CacheAligned<RwLock<PeerTable>>,
    pub(crate) pending: PendingAsks,
    pub(crate) next_ask: AtomicU64,
    /// Numbers this node's dials (see [`crate::wire::Hello::dial`]).
    pub(crate) next_dial: AtomicU64,
    pub(crate) gossip_inbox: mpsc::Sender<(SocketAddr, chitchat::ChitchatMessage)>,
    pub(crate) dialing: Mutex<HashSet<SocketAddr>>,
    pub(crate) stats: Stats,
    pub(crate) hooks: Hooks,
    pub(crate) admin_views: RwLock<std::collections::BTreeMap<String, AdminView>>,
    pub(crate) events: broadcast::Sender<ConnectionEvent>,
    tasks: Mutex<Vec<AbortHandle>>,
    pub(crate) stopped: AtomicBool,
}

impl Shared {
    /// Spawns a task that stops with the node.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task).abort_handle();
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    pub(crate) fn service(&self, name: &str) -> Option<Arc<dyn ErasedService>> {
        read(&self.services).get(name).cloned()
    }

    /// The current registry version (see [`crate::inbound`]'s service cache).
    pub(crate) fn services_version(&self) -> u64 {
        self.services_version.0.load(Ordering::Acquire)
    }

    /// Stops serving: every service is removed at once, so later messages
    /// get an unknown-service error (used when the cluster downs this node).
    pub(crate) fn close_services(&self) {
        write(&self.services).clear();
        self.services_version.0.fetch_add(1, Ordering::AcqRel);
    }

    fn stop_tasks(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// Builds a [`Node`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let node = mesh::Node::builder("n1")
///     .listen("127.0.0.1:7001".parse()?)
///     .seeds(vec!["127.0.0.1:7002".parse()?])
///     .tls(mesh::TlsSettings::from_dir("certs".as_ref(), "n1")?)
///     .start()
///     .await?;
/// node.shutdown().await;
/// # Ok(()) }
/// ```
pub struct NodeBuilder {
    config: NodeConfig,
    tls: TlsSettings,
    generation: Option<u64>,
}

impl NodeBuilder {
    /// Replaces the whole configuration (the name is kept if `config.name` is empty).
    pub fn config(mut self, config: NodeConfig) -> Self {
        let name = std::mem::take(&mut self.config.name);
        self.config = config;
        if self.config.name.is_empty() {
            self.config.name = name;
        }
        self
    }

    /// UDP address to bind.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self
    }

    /// Address peers should use to reach this node.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.config.advertise = Some(addr);
        self
    }

    /// Nodes to join through.
    pub fn seeds(mut self, seeds: Vec<SocketAddr>) -> Self {
        self.config.seeds = seeds;
        self
    }

    /// Cluster name.
    pub fn cluster(mut self, cluster: &str) -> Self {
        self.config.cluster = cluster.to_string();
        self
    }

    /// Roles of this node.
    pub fn roles(mut self, roles: Vec<String>) -> Self {
        self.config.roles = roles;
        self
    }

    /// TLS mode and credentials (default: insecure dev mode).
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    /// Overrides the generation (default: the start time in ms).
    pub fn generation(mut self, generation: u64) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Binds the endpoint, starts gossip and returns the running node.
    pub async fn start(self) -> Result<Node, StartError> {
        Node::start(self).await
    }
}

/// A running mesh node. Cheap to clone; all clones are the same node.
#[derive(Clone)]
pub struct Node {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    chitchat: Mutex<Option<ChitchatHandle>>,
    members: watch::Receiver<Vec<MemberInfo>>,
    pub(crate) cluster: crate::cluster::ClusterHandle,
}

impl Node {
    /// A builder for a node named `name`.
    pub fn builder(name: &str) -> NodeBuilder {
        NodeBuilder {
            config: NodeConfig {
                name: name.to_string(),
                ..NodeConfig::default()
            },
            tls: TlsSettings::InsecureDev,
            generation: None,
        }
    }

    async fn start(builder: NodeBuilder) -> Result<Node, StartError> {
        let NodeBuilder {
            config,
            tls,
            generation,
        } = builder;
        config.validate()?;
        if tls.is_insecure() {
            tracing::warn!(
                node = %config.name,
                "INSECURE DEV TLS: peers are not authenticated; anyone who can reach this port can join. Never use this outside a local experiment."
            );
        }
        let transport = Arc::new(transport_config(
            config.idle_timeout,
            config.idle_timeout / 5,
        ));
        let quic = QuicTls::new(&tls, &config.name, transport)?;
        let bind_error = |error| StartError::Bind {
            addr: config.listen,
            error,
        };
        let socket = bind_udp(config.listen).map_err(bind_error)?;
        let local = socket.local_addr().map_err(bind_error)?;
        let runtime = Arc::new(quinn::TokioRuntime);
        let socket = CrashableSocket::new(
            quinn::Runtime::wrap_udp_socket(&*runtime, socket).map_err(bind_error)?,
        );
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            Some(quic.server),
            socket.clone(),
            runtime,
        )
        .map_err(bind_error)?;
        let advertise = config.advertise.unwrap_or(local);
        let id = NodeId::new(config.name.clone(), generation.unwrap_or_else(now_millis));
        let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_INBOX);
        let shared = Arc::new(Shared {
            socket,
            local_name: id.name.clone(),
            id: id.clone(),
            advertise,
            insecure: tls.is_insecure(),
            endpoint,
            client_config: quic.client,
            services: RwLock::default(),
            services_version: CacheAligned(AtomicU64::new(0)),
            peers: CacheAligned(RwLock::default()),
            pending: PendingAsks::default(),
            next_ask: AtomicU64::new(1),
            next_dial: AtomicU64::new(1),
            gossip_inbox: gossip_tx,
            dialing: Mutex::default(),
            stats: Stats::default(),
            hooks: Hooks::default(),
            admin_views: RwLock::default(),
            events: broadcast::channel(256).0,
            tasks: Mutex::default(),
            stopped: AtomicBool::new(false),
            config,
        });
        shared.spawn(shared.clone().accept_loop());
        let weak = Arc::downgrade(&shared);
        shared.hooks.set_crash_handler(Arc::new(move || {
            if let Some(shared) = weak.upgrade() {
                crash(&shared);
            }
        }));

        let chitchat = start_gossip(&shared, gossip_rx).await?;
        let members = MembersView::spawn(&shared, &chitchat).await;
        let gossip_state = chitchat.chitchat();
        let (cluster, driver) = crate::cluster::prepare(id.clone(), advertise, &shared.config);
        let node = Node {
            shared,
            inner: Arc::new(NodeInner {
                chitchat: Mutex::new(Some(chitchat)),
                members,
                cluster,
            }),
        };
        if let Err(error) = crate::cluster::start(&node, gossip_state, driver).await {
            node.shutdown().await;
            return Err(error);
        }
        tracing::info!(node = %id, %advertise, listen = %local, "node started");
        Ok(node)
    }

    /// This node's identity.
    pub fn id(&self) -> &NodeId {
        &self.shared.id
    }

    /// The address peers use to reach this node.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.shared.advertise
    }

    /// The address the QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared
            .endpoint
            .local_addr()
            .unwrap_or(self.shared.config.listen)
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    /// The hook registry of this node.
    pub fn hooks(&self) -> &Hooks {
        &self.shared.hooks
    }

    /// Counters of refused and dropped input.
    pub fn stats(&self) -> NodeStats {
        let replies_dropped = read(&self.shared.peers.0).replies_dropped();
        let asks_pending = self.shared.pending.len() as u64;
        self.shared.stats.snapshot(replies_dropped, asks_pending)
    }

    /// Live members as chitchat sees them, this node included, oldest first:
    /// identity, address and roles, no status. For the membership view with
    /// status and reachability see [`Node::cluster_members`].
    pub fn members(&self) -> Vec<MemberInfo> {
        self.inner.members.borrow().clone()
    }

    /// A watch of [`Node::members`]; it changes whenever the member list does.
    pub fn watch_members(&self) -> watch::Receiver<Vec<MemberInfo>> {
        self.inner.members.clone()
    }

    /// Peers with an active connection.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        read(&self.shared.peers.0).connected()
    }

    /// Connection up/down events from now on.
    pub fn connection_events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.shared.events.subscribe()
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
        let mut services = write(&self.shared.services);
        if services.contains_key(name) {
            return Err(ServiceExists(name.to_string()));
        }
        services.insert(name.to_string(), Arc::new(TypedService::new(handler)));
        self.shared
            .services_version
            .0
            .fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Removes service `name`; later messages for it get an unknown-service error.
    pub fn unregister_service(&self, name: &str) {
        write(&self.shared.services).remove(name);
        self.shared
            .services_version
            .0
            .fetch_add(1, Ordering::AcqRel);
    }

    /// Stops the node now: stops gossip, closes every connection with a
    /// goodbye, and waits briefly for the close to reach the peers. The
    /// cluster is not told first, so the others see the node go unreachable
    /// and down it; [`Node::leave`] leaves gracefully (and ends with this).
    pub async fn shutdown(&self) {
        let chitchat = lock(&self.inner.chitchat).take();
        if let Some(chitchat) = chitchat {
            let _ = chitchat.shutdown().await;
        }
        self.shared.stop_tasks();
        self.shared
            .endpoint
            .close(ErrorCode::Shutdown.into(), b"shutdown");
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.shared.endpoint.wait_idle()).await;
        tracing::info!(node = %self.shared.id, "node stopped");
    }

    /// Kills the node as `kill -9` would: no goodbye to any peer, nothing
    /// flushed, every task aborted. For failure tests.
    pub fn crash(&self) {
        if let Some(chitchat) = lock(&self.inner.chitchat).take() {
            chitchat.abort();
        }
        crash(&self.shared);
    }

    /// Starts a gossip round with each of `peers` now, besides chitchat's
    /// regular rounds: a membership change (a Down decision, an observation)
    /// then reaches them in one round trip instead of up to a gossip interval.
    pub(crate) fn gossip_now(&self, peers: &[SocketAddr]) {
        if let Some(chitchat) = lock(&self.inner.chitchat).as_ref() {
            for peer in peers {
                // Fails only when gossip has stopped: nothing to push then.
                let _ = chitchat.gossip(*peer);
            }
        }
    }

    /// Whether the node has been shut down or has crashed.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }
}

/// A service of that name is already registered.
#[derive(Debug, thiserror::Error)]
#[error("service {0:?} is already registered")]
pub struct ServiceExists(pub String);

/// Stops everything at once, as a process kill would: the socket goes silent
/// first (no goodbye reaches anyone), then every task is aborted.
fn crash(shared: &Arc<Shared>) {
    tracing::warn!(node = %shared.id, "crashing");
    shared.socket.kill();
    shared.stop_tasks();
}

async fn start_gossip(
    shared: &Arc<Shared>,
    inbox: crate::gossip::GossipInbox,
) -> Result<ChitchatHandle, StartError> {
    let config = &shared.config;
    let interval = config.gossip_interval;
    let chitchat_config = ChitchatConfig {
        chitchat_id: ChitchatId::new(
            shared.id.name.clone(),
            shared.id.generation,
            shared.advertise,
        ),
        cluster_id: config.cluster.clone(),
        gossip_interval: interval,
        listen_addr: shared.advertise,
        seed_nodes: config.seeds.iter().map(|s| s.to_string()).collect(),
        failure_detector_config: FailureDetectorConfig {
            initial_interval: interval,
            max_interval: interval * 10,
            dead_node_grace_period: Duration::from_secs(60),
            ..FailureDetectorConfig::default()
        },
        marked_for_deletion_grace_period: Duration::from_secs(60),
        catchup_callback: None,
        extra_liveness_predicate: None,
    };
    let transport = QuicGossip::new(shared.clone(), inbox);
    let roles = config.roles.join(",");
    chitchat::spawn_chitchat(
        chitchat_config,
        vec![(crate::members::ROLES_KEY.to_string(), roles)],
        &transport,
    )
    .await
    .map_err(|e| StartError::Gossip(e.to_string()))
}

/// The default generation: the start time in ms, strictly increasing within
/// the process (nodes started in the same millisecond still differ, so the
/// generation orders them and can serve as a singleton's epoch).
fn now_millis() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let previous = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(0);
    now.max(previous + 1)
}
