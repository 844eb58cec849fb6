//! Starting one node instance behind its relay.
//!
//! The node must advertise its relay's address, which therefore exists first.
//! The node's real port is reserved before the node starts and registered in
//! the proxy (by pointing the relay at it), so that the very first packet the
//! node sends is already attributed to its name and obeys the link rules in
//! force, even during a restart inside a partition. Reserving means binding
//! an ephemeral loopback port and letting it go; if someone else takes it in
//! between, the node's bind fails and the launch retries with a new port.

use std::net::{SocketAddr, UdpSocket};

use mesh::{Node, NodeConfig, StartError, TlsSettings};

use super::error::ClusterError;
use crate::proxy::Relay;

/// Attempts before a launch gives up on finding a free port.
const PORT_ATTEMPTS: usize = 8;

/// Reserves an ephemeral loopback UDP port.
pub(crate) fn reserve_port() -> Result<SocketAddr, ClusterError> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).map_err(ClusterError::Port)?;
    socket.local_addr().map_err(ClusterError::Port)
}

/// Starts a node with `config` (seeds and roles already set) behind `relay`:
/// it listens on a fresh loopback port, advertises the relay's address, and
/// the relay forwards to it.
pub(crate) async fn start_behind(
    relay: &Relay,
    mut config: NodeConfig,
    tls: &TlsSettings,
    generation: Option<u64>,
) -> Result<Node, ClusterError> {
    let name = config.name.clone();
    config.advertise = Some(relay.public_addr());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let real = reserve_port()?;
        relay.set_target(real)?;
        config.listen = real;
        let mut builder = Node::builder(&name).config(config.clone()).tls(tls.clone());
        if let Some(generation) = generation {
            builder = builder.generation(generation);
        }
        match builder.start().await {
            Ok(node) => return Ok(node),
            Err(StartError::Bind { error, .. })
                if error.kind() == std::io::ErrorKind::AddrInUse && attempt < PORT_ATTEMPTS =>
            {
                tracing::debug!(node = %name, %real, "reserved port taken meanwhile; retrying");
            }
            Err(source) => return Err(ClusterError::Start { name, source }),
        }
    }
}
