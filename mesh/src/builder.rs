//! Starting a [`Node`]: binding the endpoint, then gossip, the member list and
//! membership, each given the parts it needs.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use membership::{keys, NodeId};
use tokio::sync::mpsc;

use crate::config::NodeConfig;
use crate::error::StartError;
use crate::hooks::Hooks;
use crate::members::spawn_members_view;
use crate::metrics::{Metrics, NodeCollector};
use crate::node::{crash, Node, NodeParts};
use crate::services::Services;
use crate::stats::Stats;
use crate::tasks::Tasks;
use crate::tls::{transport_config, QuicTls, TlsSettings};
use crate::transport::dial::Handshakes;
use crate::transport::gossip::{GossipInbox, QuicGossip, GOSSIP_INBOX};
use crate::transport::reader::Dispatch;
use crate::transport::socket::{bind_udp, CrashableSocket};
use crate::transport::writer::Backoff;
use crate::transport::{LinkLimits, Transport};
use crate::views::{AdminViews, ReadinessChecks};

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

    /// The version of the application this node runs (see
    /// [`NodeConfig::app_version`]).
    pub fn app_version(mut self, version: Option<membership::AppVersion>) -> Self {
        self.config.app_version = version;
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
        start(self).await
    }
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
}

/// Binds the endpoint, starts the transport, gossip, the member list and
/// membership, and returns the running node.
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
    let quic_transport = Arc::new(transport_config(
        config.idle_timeout,
        config.idle_timeout / 5,
    ));
    let quic = QuicTls::new(&tls, &config.name, quic_transport)?;
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
    let roles: BTreeSet<String> = config.roles.iter().cloned().collect();

    let stats = Arc::new(Stats::default());
    let services = Arc::new(Services::new(id.name.clone()));
    let hooks = Hooks::default();
    let metrics = Metrics::new();
    let tasks = Arc::new(Tasks::new(tracing::info_span!("node", node = %id)));
    let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_INBOX);
    let dispatch = Arc::new(Dispatch {
        services: services.clone(),
        gossip: gossip_tx,
        hooks: hooks.clone(),
        stats: stats.clone(),
        metrics: metrics.mesh.clone(),
        max_frame: config.max_frame_size,
    });
    let me = (id.clone(), advertise, config.cluster.clone());
    let handshakes = Handshakes::new(endpoint, quic.client, me, tls.is_insecure(), stats);
    let limits = LinkLimits {
        buffer: config.peer_buffer,
        max_frame: config.max_frame_size,
        backoff: Backoff {
            min: config.reconnect_min,
            max: config.reconnect_max,
        },
    };
    let transport = Transport::start(
        handshakes,
        socket,
        limits,
        dispatch,
        tasks.clone(),
        metrics.mesh.clone(),
    );
    let weak = Arc::downgrade(&transport);
    let crashed = tasks.clone();
    hooks.set_crash_handler(Arc::new(move || {
        if let Some(transport) = weak.upgrade() {
            crash(&transport, &crashed);
        }
    }));

    let chitchat = start_gossip(&transport, &config, &roles, gossip_rx).await?;
    let members = spawn_members_view(&transport, &tasks, &chitchat, &roles).await;
    let gossip_state = chitchat.chitchat();
    let mut membership = config.membership.clone();
    membership.may_start_cluster &=
        config.seeds.is_empty() || config.seeds.first() == Some(&advertise);
    let (cluster, driver) = crate::cluster::prepare(
        id.clone(),
        advertise,
        roles,
        config.app_version.clone(),
        membership,
    );
    let node = Node::from(NodeParts {
        config,
        transport,
        services,
        hooks,
        tasks,
        admin_views: AdminViews::default(),
        readiness: ReadinessChecks::default(),
        next_ask: AtomicU64::new(1),
        chitchat: Mutex::new(Some(chitchat)),
        members,
        cluster,
        metrics,
    });
    node.metrics()
        .register_collector(NodeCollector(node.downgrade()));
    if let Err(error) = crate::cluster::start(&node, gossip_state, driver).await {
        node.shutdown().await;
        return Err(error);
    }
    tracing::info!(node = %id, %advertise, listen = %local, "node started");
    Ok(node)
}

/// Starts chitchat over `transport`, with this node's roles as its first key
/// (membership's `member.roles`: the one place roles are gossiped).
async fn start_gossip(
    transport: &Arc<Transport>,
    config: &NodeConfig,
    roles: &BTreeSet<String>,
    inbox: GossipInbox,
) -> Result<ChitchatHandle, StartError> {
    let interval = config.gossip_interval;
    let (id, advertise) = (transport.id(), transport.advertise());
    let chitchat_config = ChitchatConfig {
        chitchat_id: ChitchatId::new(id.name.clone(), id.generation, advertise),
        cluster_id: config.cluster.clone(),
        gossip_interval: interval,
        listen_addr: advertise,
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
    let gossip = QuicGossip::new(transport.clone(), inbox, interval);
    chitchat::spawn_chitchat(
        chitchat_config,
        vec![(keys::ROLES.to_string(), keys::encode_roles(roles))],
        &gossip,
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
