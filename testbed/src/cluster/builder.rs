//! [`ClusterBuilder`]: how many nodes, their configuration, then start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mesh::tls::ClusterCa;
use mesh::NodeConfig;

use super::error::ClusterError;
use super::harness::{Cluster, ConfigSource, Tweak};
use crate::proxy::ProxyNetwork;

/// How long [`ClusterBuilder::start`] waits for the nodes to see each other
/// unless told otherwise.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(15);

/// Builds a [`Cluster`]; see [`Cluster::builder`].
pub struct ClusterBuilder {
    names: Vec<String>,
    template: NodeConfig,
    tweaks: HashMap<String, Vec<Tweak>>,
    seed: u64,
    ca: Option<ClusterCa>,
    start_timeout: Option<Duration>,
}

impl Cluster {
    /// A builder for a cluster: by default three nodes `n1`, `n2`, `n3` with
    /// mesh's default [`NodeConfig`], proxy seed 0, a fresh in-memory CA.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            names: Vec::new(),
            template: NodeConfig::default(),
            tweaks: HashMap::new(),
            seed: 0,
            ca: None,
            start_timeout: Some(DEFAULT_START_TIMEOUT),
        }
        .nodes(3)
    }
}

impl ClusterBuilder {
    /// `n` nodes named `n1` ..= `n{n}`.
    pub fn nodes(mut self, n: usize) -> Self {
        self.names = (1..=n).map(|i| format!("n{i}")).collect();
        self
    }

    /// Nodes with these names, started in this order.
    pub fn names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// The configuration every node starts from. The harness sets `name`,
    /// `listen`, `advertise` and `seeds` itself.
    pub fn config(mut self, template: NodeConfig) -> Self {
        self.template = template;
        self
    }

    /// Changes the configuration of node `name` only (applied after the
    /// template, at every start of that node, in the order given).
    pub fn configure(
        mut self,
        name: &str,
        tweak: impl Fn(&mut NodeConfig) + Send + Sync + 'static,
    ) -> Self {
        self.tweaks
            .entry(name.to_string())
            .or_default()
            .push(Arc::new(tweak));
        self
    }

    /// The roles of node `name`.
    pub fn roles(self, name: &str, roles: &[&str]) -> Self {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        self.configure(name, move |config| config.roles = roles.clone())
    }

    /// The seed of the proxy's randomness (loss, jitter, ...): the same seed,
    /// the same packet fates on each link.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The cluster CA that issues every node's certificate (default: a fresh one).
    pub fn ca(mut self, ca: ClusterCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// How long [`start`](Self::start) waits for every node to see every
    /// other; `None` returns as soon as the nodes are started.
    /// Default [`DEFAULT_START_TIMEOUT`].
    pub fn start_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the relays and the nodes in order (each joining through the
    /// nodes before it), then waits until the cluster has
    /// [converged](Cluster::converged).
    pub async fn start(self) -> Result<Cluster, ClusterError> {
        let ca = match self.ca {
            Some(ca) => ca,
            None => {
                ClusterCa::generate(&self.template.cluster).map_err(|source| ClusterError::Tls {
                    name: "(cluster CA)".into(),
                    source,
                })?
            }
        };
        let configs = ConfigSource {
            template: self.template,
            tweaks: self.tweaks,
        };
        let cluster = Cluster::new(ProxyNetwork::new(self.seed), ca, configs);
        for name in &self.names {
            cluster.add_node(name).await?;
        }
        if let Some(timeout) = self.start_timeout {
            cluster
                .wait_until(timeout, "every node to see every other", Cluster::converged)
                .await?;
        }
        Ok(cluster)
    }
}
