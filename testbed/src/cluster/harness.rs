//! The [`Cluster`] itself: its nodes, their relays, and the lifecycle
//! operations (add, crash, restart, leave).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mesh::tls::ClusterCa;
use mesh::{HookAction, Hooks, Node, NodeConfig, NodeId, TlsSettings};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::error::ClusterError;
use super::launch::{reserve_port, start_behind};
use super::probe;
use super::timeline::{Recorder, Timeline, TimelineEvent};
use crate::proxy::{ProxyNetwork, Relay};

/// Changes one node's configuration (see [`ClusterBuilder::configure`](super::ClusterBuilder::configure)).
pub(crate) type Tweak = Arc<dyn Fn(&mut NodeConfig) + Send + Sync>;

/// What a node of the cluster is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Started and not stopped since.
    Running,
    /// Killed by [`Cluster::crash`]: silent, its view frozen.
    Crashed,
    /// Stopped by [`Cluster::leave`].
    Left,
}

impl NodeState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Crashed => "crashed",
            Self::Left => "left",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One node name of the cluster: its relay (stable across restarts) and its
/// current instance.
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) relay: Arc<Relay>,
    pub(crate) node: Node,
    pub(crate) state: NodeState,
    tls: TlsSettings,
    follower: Follower,
}

/// The task recording one node instance's events; stops with it.
struct Follower(JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How node configurations are made: the template plus per-node tweaks.
pub(crate) struct ConfigSource {
    pub(crate) template: NodeConfig,
    pub(crate) tweaks: HashMap<String, Vec<Tweak>>,
}

impl ConfigSource {
    /// The configuration of `name`, joining through `seeds`. Listen and
    /// advertise addresses are set at launch.
    fn config_for(&self, name: &str, seeds: Vec<std::net::SocketAddr>) -> NodeConfig {
        let mut config = self.template.clone();
        for tweak in self.tweaks.get(name).into_iter().flatten() {
            tweak(&mut config);
        }
        config.name = name.to_string();
        config.seeds = seeds;
        config
    }
}

/// N in-process mesh nodes, each behind its own relay of one [`ProxyNetwork`].
///
/// See the [module documentation](super) for the idea. Every
/// method takes `&self`: a cluster can be shared (for example in an `Arc`)
/// between the test and a workload task. Methods that take a node name panic
/// if no node of that name was ever started: names are the test's own input.
/// Dropping the cluster crashes every node still running and stops the relays.
///
/// # Example: a partition test in ten lines
///
/// ```no_run
/// use std::time::Duration;
/// use testbed::Cluster;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let ask = Duration::from_millis(300);
/// let cluster = Cluster::builder().nodes(3).start().await?; // all see each other
/// cluster.partition(&["n1"], &["n2", "n3"])?;
/// assert!(cluster.ping("n1", "n2", ask).await.is_err());
/// assert!(cluster.ping("n2", "n3", ask).await.is_ok());
/// cluster.heal();
/// cluster
///     .wait_until_async(Duration::from_secs(10), "n1 to reach n2 again", |c| async move {
///         c.ping("n1", "n2", ask).await.is_ok()
///     })
///     .await?;
/// println!("{}", cluster.timeline());
/// # Ok(())
/// # }
/// ```
pub struct Cluster {
    pub(crate) network: ProxyNetwork,
    ca: ClusterCa,
    configs: ConfigSource,
    pub(crate) recorder: Recorder,
    slots: Mutex<Vec<Slot>>,
}

impl Cluster {
    pub(crate) fn new(network: ProxyNetwork, ca: ClusterCa, configs: ConfigSource) -> Self {
        Self {
            network,
            ca,
            configs,
            recorder: Recorder::new(),
            slots: Mutex::default(),
        }
    }

    /// Starts a new node named `name`, joining through every node started
    /// before it, behind a new relay.
    pub async fn add_node(&self, name: &str) -> Result<Node, ClusterError> {
        self.add_node_cut_from(name, &[] as &[&str]).await
    }

    /// Starts a new node named `name` whose links to every node of
    /// `cut_from` are cut before it sends its first packet: a node that
    /// joins one side of a partition.
    pub async fn add_node_cut_from<S: AsRef<str>>(
        &self,
        name: &str,
        cut_from: &[S],
    ) -> Result<Node, ClusterError> {
        if self.lock().iter().any(|slot| slot.name == name) {
            return Err(ClusterError::NodeExists(name.to_string()));
        }
        let tls = TlsSettings::issued_by(&self.ca, name).map_err(|source| ClusterError::Tls {
            name: name.to_string(),
            source,
        })?;
        let relay = Arc::new(self.network.spawn_relay(name, reserve_port()?).await?);
        if !cut_from.is_empty() {
            self.partition(&[name], cut_from)?;
        }
        let config = self.configs.config_for(name, self.seeds_for(name));
        let node = start_behind(&relay, config, &tls, None).await?;
        let follower = self.started(&node);
        self.lock().push(Slot {
            name: name.to_string(),
            relay,
            node: node.clone(),
            state: NodeState::Running,
            tls,
            follower,
        });
        Ok(node)
    }

    /// Kills node `name` as `kill -9` would ([`Node::crash`]): no goodbye,
    /// nothing flushed, its socket silent. Its relay stays, so peers keep
    /// sending into the void. Crashing a stopped node does nothing.
    pub fn crash(&self, name: &str) {
        let mut slots = self.lock();
        let slot = slot_mut(&mut slots, name);
        if slot.state == NodeState::Running {
            slot.node.crash();
            slot.state = NodeState::Crashed;
            slot.follower.0.abort();
            self.recorder.record(Some(name), TimelineEvent::Crashed);
        }
    }

    /// Node `name` leaves the cluster gracefully ([`Node::leave`]: Leaving,
    /// handoffs, Exiting, Removed, then a goodbye to every peer) and stops.
    /// Leaving a stopped node does nothing.
    pub async fn leave(&self, name: &str) {
        let node = {
            let mut slots = self.lock();
            let slot = slot_mut(&mut slots, name);
            if slot.state != NodeState::Running {
                return;
            }
            slot.state = NodeState::Left;
            slot.follower.0.abort();
            slot.node.clone()
        };
        node.leave().await;
        self.recorder.record(Some(name), TimelineEvent::Left);
    }

    /// Starts node `name` again: same name and advertised (relay) address, a
    /// new real port, and a generation strictly larger than the last one.
    /// A running node is crashed first. Hooks armed on the old instance do
    /// not carry over. Returns the new instance.
    pub async fn restart(&self, name: &str) -> Result<Node, ClusterError> {
        self.crash(name);
        let (relay, tls, old) = {
            let slots = self.lock();
            let slot = slot_ref(&slots, name);
            (slot.relay.clone(), slot.tls.clone(), slot.node.id().clone())
        };
        let generation = now_millis().max(old.generation + 1);
        let config = self.configs.config_for(name, self.seeds_for(name));
        let node = start_behind(&relay, config, &tls, Some(generation)).await?;
        let follower = self.started(&node);
        let mut slots = self.lock();
        let slot = slot_mut(&mut slots, name);
        slot.node = node.clone();
        slot.state = NodeState::Running;
        slot.follower = follower;
        Ok(node)
    }

    /// The current instance of node `name` (possibly crashed or left).
    ///
    /// # Panics
    /// If no node of that name was ever started.
    pub fn node(&self, name: &str) -> Node {
        slot_ref(&self.lock(), name).node.clone()
    }

    /// Like [`node`](Self::node), without panicking.
    pub fn try_node(&self, name: &str) -> Option<Node> {
        let slots = self.lock();
        slots
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.node.clone())
    }

    /// What node `name` is doing.
    ///
    /// # Panics
    /// If no node of that name was ever started.
    pub fn state(&self, name: &str) -> NodeState {
        slot_ref(&self.lock(), name).state
    }

    /// The identity of node `name`'s current instance.
    ///
    /// # Panics
    /// If no node of that name was ever started.
    pub fn id(&self, name: &str) -> NodeId {
        slot_ref(&self.lock(), name).node.id().clone()
    }

    /// The hook registry of node `name`'s current instance, to arm a named
    /// hook point on that node only. [`arm_hook`](Self::arm_hook) does the
    /// same and records it in the timeline.
    ///
    /// # Panics
    /// If no node of that name was ever started.
    pub fn hooks(&self, name: &str) -> Hooks {
        slot_ref(&self.lock(), name).node.hooks().clone()
    }

    /// Arms `point` on node `name` with `action` (every pass), and records it.
    ///
    /// # Panics
    /// If no node of that name was ever started.
    pub fn arm_hook(&self, name: &str, point: &str, action: HookAction) {
        let event = TimelineEvent::HookArmed {
            point: point.to_string(),
            action: format!("{action:?}"),
        };
        self.hooks(name).arm(point, action);
        self.recorder.record(Some(name), event);
    }

    /// Every node name, in the order the nodes were added.
    pub fn names(&self) -> Vec<String> {
        self.lock().iter().map(|s| s.name.clone()).collect()
    }

    /// The names of the running nodes, in the order they were added.
    pub fn running(&self) -> Vec<String> {
        let slots = self.lock();
        slots
            .iter()
            .filter(|s| s.state == NodeState::Running)
            .map(|s| s.name.clone())
            .collect()
    }

    /// The address node `name` advertises: its relay's, stable across restarts.
    ///
    /// # Panics
    /// If no node of that name was ever started.
    pub fn advertise_addr(&self, name: &str) -> std::net::SocketAddr {
        slot_ref(&self.lock(), name).relay.public_addr()
    }

    /// The proxy network behind the harness, for rules the harness has no
    /// shortcut for and for its counters.
    pub fn network(&self) -> &ProxyNetwork {
        &self.network
    }

    /// The timeline so far.
    pub fn timeline(&self) -> Timeline {
        self.recorder.snapshot()
    }

    /// Adds a note of the test to the timeline ("workload started", ...).
    pub fn note(&self, text: impl Into<String>) {
        let text = text.into();
        self.recorder.record(None, TimelineEvent::Note { text });
    }

    /// Asks node `to`'s built-in probe service from node `from` and returns
    /// the identity that answered: the cheapest way to check that a pair of
    /// nodes can talk, through the proxy, both ways.
    ///
    /// # Panics
    /// If no node named `from` was ever started.
    pub async fn ping(
        &self,
        from: &str,
        to: &str,
        timeout: Duration,
    ) -> Result<NodeId, mesh::AskError> {
        probe::ping(&self.node(from), to, timeout).await
    }

    /// Seeds for node `name`: the relays of every other node, in order.
    fn seeds_for(&self, name: &str) -> Vec<std::net::SocketAddr> {
        let slots = self.lock();
        slots
            .iter()
            .filter(|s| s.name != name)
            .map(|s| s.relay.public_addr())
            .collect()
    }

    /// What every fresh instance gets: the probe service, a follower, an entry.
    fn started(&self, node: &Node) -> Follower {
        probe::register(node);
        let name = node.id().name.clone();
        self.recorder.record(
            Some(&name),
            TimelineEvent::Started {
                id: node.id().to_string(),
                advertise: node.advertise_addr(),
                real: node.local_addr(),
            },
        );
        Follower(self.recorder.follow(node))
    }

    /// The slots, for the other modules of the harness.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        mesh::sync::lock(&self.slots)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for slot in self.lock().iter_mut() {
            if slot.state == NodeState::Running {
                slot.node.crash();
            }
        }
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn slot_ref<'a>(slots: &'a [Slot], name: &str) -> &'a Slot {
    match slots.iter().find(|s| s.name == name) {
        Some(slot) => slot,
        None => unknown(slots, name),
    }
}

fn slot_mut<'a>(slots: &'a mut [Slot], name: &str) -> &'a mut Slot {
    let names: Vec<String> = slots.iter().map(|s| s.name.clone()).collect();
    match slots.iter_mut().find(|s| s.name == name) {
        Some(slot) => slot,
        None => panic!("no node named {name:?} in the cluster (nodes: {names:?})"),
    }
}

fn unknown(slots: &[Slot], name: &str) -> ! {
    let names: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
    panic!("no node named {name:?} in the cluster (nodes: {names:?})")
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
