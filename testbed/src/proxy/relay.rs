//! The relay: a UDP socket that stands in front of one node's real socket.
//!
//! The node advertises the relay's public address. For every distinct source
//! address that sends to it, the relay opens its own upstream socket towards
//! the node (one relay socket per source, like a NAT), so the node sees each
//! peer at one stable address and its replies find their way back: a reply that
//! arrives on a source's upstream socket leaves through the public socket to
//! that source. QUIC handshakes, connections and migration work through it.
//!
//! Each packet is judged by the [`ProxyNetwork`]: source -> node packets by the
//! rule of the link (source name, node name), replies by (node name, source
//! name).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, info, info_span, trace, warn, Instrument};

use super::error::ProxyError;
use super::lane::Lane;
use super::network::{normalize, ProxyNetwork};
use super::task::AbortOnDrop;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// A running relay for one node. Dropping it (or [`shutdown`](Self::shutdown))
/// stops all its tasks; the node's registration and the link rules stay in the
/// network.
#[derive(Debug)]
pub struct Relay {
    network: ProxyNetwork,
    name: String,
    public_addr: SocketAddr,
    target: watch::Sender<SocketAddr>,
    task: AbortOnDrop,
}

impl Relay {
    /// Binds the public socket of `name`'s relay; returns it with its address.
    pub(crate) async fn bind(
        name: &str,
        listen: SocketAddr,
    ) -> Result<(UdpSocket, SocketAddr), ProxyError> {
        let bind_error = |source| ProxyError::RelayBind {
            name: name.to_string(),
            addr: listen,
            source,
        };
        let socket = UdpSocket::bind(listen).await.map_err(bind_error)?;
        let public_addr = socket.local_addr().map_err(bind_error)?;
        Ok((socket, public_addr))
    }

    /// Starts relaying from the public socket (see [`bind`](Self::bind)) to
    /// `target`.
    pub(crate) fn spawn(
        network: ProxyNetwork,
        name: &str,
        target: SocketAddr,
        (socket, public_addr): (UdpSocket, SocketAddr),
    ) -> Self {
        let (target_tx, target_rx) = watch::channel(target);
        let span = info_span!("relay", node = %name);
        span.in_scope(|| info!(%public_addr, %target, "relay started"));
        let task = tokio::spawn(
            run(
                network.clone(),
                Arc::from(name),
                Arc::new(socket),
                target_rx,
            )
            .instrument(span),
        );
        Self {
            network,
            name: name.to_string(),
            public_addr,
            target: target_tx,
            task: AbortOnDrop(task),
        }
    }

    /// The node this relay stands in front of.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the node advertises: where peers send to reach it.
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// The node's real address, where packets are forwarded.
    pub fn target(&self) -> SocketAddr {
        *self.target.borrow()
    }

    /// Points the relay at a new real address (a node restarted on another
    /// port) and registers the node there. Existing flows are closed, so every
    /// peer gets a fresh upstream socket at its next packet.
    pub fn set_target(&self, real_addr: SocketAddr) -> Result<(), ProxyError> {
        self.network.register(&self.name, real_addr)?;
        self.target.send_replace(normalize(real_addr));
        Ok(())
    }

    /// Stops the relay and waits until its public socket and every flow's
    /// socket are closed, so the public address can be bound again at once.
    /// (Dropping a relay stops it too, without waiting.)
    pub async fn shutdown(self) {
        let Self { target, task, .. } = self;
        // The relay task ends, closing its flows, when the target sender goes.
        drop(target);
        task.join().await;
    }
}

/// One source's path through the relay.
struct Flow {
    /// source -> node, out of the flow's upstream socket.
    inbound: Lane,
    /// The inbound lane's driver, the task receiving the node's replies, and
    /// the outbound (node -> source) lane's driver.
    tasks: [AbortOnDrop; 3],
}

impl Flow {
    async fn open(
        network: &ProxyNetwork,
        node: &Arc<str>,
        public: &Arc<UdpSocket>,
        source: SocketAddr,
        target: SocketAddr,
    ) -> io::Result<Self> {
        let any: IpAddr = match target {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let upstream = UdpSocket::bind((any, 0)).await?;
        upstream.connect(target).await?;
        debug!(%source, upstream = %upstream.local_addr()?, "flow opened");
        let upstream = Arc::new(upstream);
        let (inbound, inbound_driver) = Lane::new(upstream.clone(), target);
        let (outbound, outbound_driver) = Lane::new(public.clone(), source);
        let replies = tokio::spawn(
            relay_replies(network.clone(), node.clone(), upstream, outbound, source)
                .in_current_span(),
        );
        Ok(Self {
            inbound,
            tasks: [inbound_driver, AbortOnDrop(replies), outbound_driver],
        })
    }

    /// Stops the flow's tasks and waits until its sockets are closed.
    async fn close(self) {
        for task in self.tasks {
            task.abort_and_wait().await;
        }
    }
}

/// Receives on the public socket and forwards source -> node.
async fn run(
    network: ProxyNetwork,
    node: Arc<str>,
    public: Arc<UdpSocket>,
    mut target: watch::Receiver<SocketAddr>,
) {
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            // A target change or shutdown comes before any packet after it.
            biased;
            changed = target.changed() => {
                if changed.is_err() {
                    // The relay is shutting down.
                    for (_, flow) in flows.drain() {
                        flow.close().await;
                    }
                    debug!("relay stopped");
                    return;
                }
                info!(target = %*target.borrow(), flows = flows.len(), "target moved; flows closed");
                flows.clear();
            }
            received = public.recv_from(&mut buf) => {
                let (len, source) = match received {
                    Ok(received) => received,
                    Err(error) => {
                        debug!(%error, "receive failed");
                        continue;
                    }
                };
                let flow = match flows.entry(source) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => {
                        let target = *target.borrow();
                        match Flow::open(&network, &node, &public, source, target).await {
                            Ok(flow) => entry.insert(flow),
                            Err(error) => {
                                warn!(%source, %error, "cannot open a flow; packet not forwarded");
                                continue;
                            }
                        }
                    }
                };
                let verdict = network.judge_inbound(source, &node);
                flow.inbound.deliver(&buf[..len], verdict).await;
            }
        }
    }
}

/// Receives the node's replies on one flow's upstream socket and sends them
/// node -> source.
async fn relay_replies(
    network: ProxyNetwork,
    node: Arc<str>,
    upstream: Arc<UdpSocket>,
    outbound: Lane,
    source: SocketAddr,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(len) => {
                let verdict = network.judge_outbound(&node, source);
                outbound.deliver(&buf[..len], verdict).await;
            }
            // A node that is down makes the connected socket report ICMP errors.
            Err(error) => trace!(%source, %error, "upstream receive failed"),
        }
    }
}
