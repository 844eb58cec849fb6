//! Seeds from DNS: the addresses of a name's A/AAAA records, each with one
//! port, as a Kubernetes headless service publishes its pods.
//!
//! [`DnsSeeds`] resolves the name; [`Node::follow_dns_seeds`] re-resolves
//! it while the node is alone (no other member in its view) and gossips with
//! every address found, so a node whose peers appear in DNS after it started
//! still joins them. A failed lookup is logged and retried; the node stays up.
//!
//! Behind the cargo feature `dns-seeds` (`mesh-node` enables it), so that an
//! embedder with static seeds does not compile a DNS resolver.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::{ResolverBuilder, TokioResolver};

use crate::Node;

/// A DNS name whose A/AAAA records are the seeds, and the port they listen on.
#[derive(Clone)]
pub struct DnsSeeds {
    name: String,
    port: u16,
    resolver: TokioResolver,
}

/// Why DNS seeds could not be set up or resolved.
#[derive(Debug, thiserror::Error)]
pub enum DnsSeedError {
    /// `NAME:PORT` was malformed.
    #[error(
        "invalid DNS seed {0:?}: expected NAME:PORT, e.g. mesh.default.svc.cluster.local:7001"
    )]
    Invalid(String),
    /// The system's resolver configuration (`/etc/resolv.conf`) could not be read.
    #[error("cannot read the system's DNS configuration: {0}")]
    SystemConfig(NetError),
    /// The lookup failed (no such name, no records, no answer in time).
    #[error("cannot resolve {name}: {error}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What the resolver said.
        error: NetError,
    },
}

impl DnsSeeds {
    /// Seeds from `NAME:PORT`, looked up with the system's resolver
    /// configuration.
    pub fn system(name_port: &str) -> Result<Self, DnsSeedError> {
        let (name, port) = split_name_port(name_port)?;
        let builder = TokioResolver::builder_tokio().map_err(DnsSeedError::SystemConfig)?;
        Self::built(name, port, builder)
    }

    /// Seeds from `NAME:PORT`, looked up at the nameserver `nameserver`
    /// (UDP, then TCP) instead of the system's.
    pub fn with_nameserver(name_port: &str, nameserver: SocketAddr) -> Result<Self, DnsSeedError> {
        let (name, port) = split_name_port(name_port)?;
        let mut server = NameServerConfig::udp_and_tcp(nameserver.ip());
        for connection in &mut server.connections {
            connection.port = nameserver.port();
        }
        let mut config = ResolverConfig::default();
        config.add_name_server(server);
        let builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        Self::built(name, port, builder)
    }

    /// Seeds resolved by `builder`, set not to cache answers.
    fn built(
        name: String,
        port: u16,
        mut builder: ResolverBuilder<TokioRuntimeProvider>,
    ) -> Result<Self, DnsSeedError> {
        fresh_answers(builder.options_mut());
        let resolver = builder.build().map_err(DnsSeedError::SystemConfig)?;
        Ok(Self {
            name,
            port,
            resolver,
        })
    }

    /// The name looked up.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The seeds' addresses now: every A/AAAA record with the port, sorted
    /// and without duplicates.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, DnsSeedError> {
        let lookup = self
            .resolver
            .lookup_ip(self.name.as_str())
            .await
            .map_err(|error| DnsSeedError::Lookup {
                name: self.name.clone(),
                error,
            })?;
        let mut seeds: Vec<SocketAddr> = lookup
            .iter()
            .map(|ip: IpAddr| SocketAddr::new(ip, self.port))
            .collect();
        seeds.sort();
        seeds.dedup();
        Ok(seeds)
    }
}

impl std::fmt::Debug for DnsSeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DnsSeeds({}:{})", self.name, self.port)
    }
}

/// Seeds change as pods come and go: no cached answer outlives a poll, and
/// a lookup gives up within the poll interval.
fn fresh_answers(options: &mut ResolverOpts) {
    options.cache_size = 0;
    options.timeout = Duration::from_secs(2);
    options.attempts = 1;
}

fn split_name_port(name_port: &str) -> Result<(String, u16), DnsSeedError> {
    let invalid = || DnsSeedError::Invalid(name_port.to_string());
    let (name, port) = name_port.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if name.is_empty() || port == 0 || name.contains(':') {
        return Err(invalid());
    }
    Ok((name.to_string(), port))
}

impl Node {
    /// Resolves `seeds` every `every` while this node is alone (no other
    /// member in its view) and gossips with each address found, so that it
    /// joins peers that appear in DNS after it started. Lookup failures are
    /// logged and retried; the polling stops with the node.
    pub fn follow_dns_seeds(&self, seeds: DnsSeeds, every: Duration) {
        let node = self.clone();
        self.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if node.members().iter().any(|m| m.id != *node.id()) {
                    continue;
                }
                match seeds.resolve().await {
                    Ok(found) => {
                        let own = [node.advertise_addr(), node.local_addr()];
                        let peers: Vec<SocketAddr> =
                            found.into_iter().filter(|a| !own.contains(a)).collect();
                        tracing::debug!(node = %node.id(), ?peers, "DNS seeds resolved");
                        node.gossip_now(&peers);
                    }
                    Err(error) => {
                        tracing::warn!(node = %node.id(), %error, "DNS seeds: retrying")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_port_must_have_both() {
        assert_eq!(
            split_name_port("mesh.svc:7001").unwrap(),
            ("mesh.svc".to_string(), 7001)
        );
        for bad in [
            "mesh.svc",
            ":7001",
            "mesh.svc:",
            "mesh.svc:x",
            "mesh.svc:0",
            "a:b:1",
        ] {
            assert!(split_name_port(bad).is_err(), "{bad:?} accepted");
        }
    }
}
