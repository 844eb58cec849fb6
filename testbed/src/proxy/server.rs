//! The proxy as a process: every relay of a [`ProxyConfig`] plus the control
//! API, started and stopped together.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tracing::{error, info};

use super::config::ProxyConfig;
use super::control;
use super::error::ProxyError;
use super::network::ProxyNetwork;
use super::relay::Relay;
use super::task::AbortOnDrop;

/// A running proxy: one relay per configured node and the HTTP control API.
/// Dropping it stops everything.
#[derive(Debug)]
pub struct ProxyServer {
    network: ProxyNetwork,
    relays: Vec<Relay>,
    control_addr: SocketAddr,
    control: AbortOnDrop,
}

impl ProxyServer {
    /// Validates `config`, binds every relay and the control API, and applies
    /// the initial rules. Fails, with nothing left running, if anything cannot
    /// be bound.
    pub async fn start(config: &ProxyConfig) -> Result<Self, ProxyError> {
        config.validate()?;
        let seed = config.seed.unwrap_or_else(rand::random);
        let network = ProxyNetwork::new(seed);
        let mut relays = Vec::with_capacity(config.nodes.len());
        for node in &config.nodes {
            relays.push(
                network
                    .spawn_relay_on(&node.name, node.target, node.listen)
                    .await?,
            );
        }
        for rule in &config.rules {
            network.set_rule(&rule.from, &rule.to, rule.rule.clone())?;
        }
        let bind_error = |source| ProxyError::ControlBind {
            addr: config.control,
            source,
        };
        let listener = TcpListener::bind(config.control)
            .await
            .map_err(bind_error)?;
        let control_addr = listener.local_addr().map_err(bind_error)?;
        let serving = network.clone();
        let control = tokio::spawn(async move {
            if let Err(error) = control::serve(listener, serving).await {
                error!(%error, "control API stopped");
            }
        });
        info!(%control_addr, seed, relays = relays.len(), "proxy started");
        Ok(Self {
            network,
            relays,
            control_addr,
            control: AbortOnDrop(control),
        })
    }

    /// The shared network: rules, counters, registry.
    pub fn network(&self) -> &ProxyNetwork {
        &self.network
    }

    /// The relays, in config order.
    pub fn relays(&self) -> &[Relay] {
        &self.relays
    }

    /// Where the control API listens.
    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    /// Stops the control API and every relay, and waits until their sockets
    /// are closed.
    pub async fn shutdown(self) {
        self.control.abort_and_wait().await;
        for relay in self.relays {
            relay.shutdown().await;
        }
    }
}
