//! The node's QUIC transport: one endpoint on one UDP socket, the [`Link`]s
//! to its peers, and the tasks that move bytes: accepting and dialing
//! connections ([`dial`]), a writer per link ([`writer`]), a reader per
//! connection ([`reader`]), and chitchat's gossip carried over the same
//! connections ([`gossip`]).
//!
//! Every handshaken connection, dialed or accepted, is offered to its link,
//! which keeps one active (see [`crate::link::choice`]). A connection that
//! loses, or that a newer one replaces, is closed after a grace period so
//! that frames already in flight on it are still read.

pub(crate) mod dial;
pub(crate) mod gossip;
mod links;
pub(crate) mod reader;
pub(crate) mod socket;
pub(crate) mod writer;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use membership::NodeId;
use tokio::sync::broadcast;
use tracing::Instrument;

use self::dial::{DialError, Handshaken, Handshakes};
use self::links::Links;
use self::reader::{run_reader, Dispatch};
use self::socket::CrashableSocket;
use self::writer::{run_writer, Backoff};
use crate::link::conn::ActiveConn;
use crate::link::Link;
use crate::metrics::MeshMetrics;
use crate::stats::Stats;
use crate::sync::{read, write, CacheAligned};
use crate::tasks::Tasks;
use crate::wire::ErrorCode;

/// How long a retired duplicate connection stays open for frames in flight.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

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

/// The size limits of every link.
#[derive(Clone, Copy)]
pub(crate) struct LinkLimits {
    /// Bytes of frames that may wait for a peer.
    pub(crate) buffer: usize,
    /// Largest frame sent or accepted.
    pub(crate) max_frame: usize,
    pub(crate) backoff: Backoff,
}

/// The transport of one node.
pub(crate) struct Transport {
    handshakes: Handshakes,
    socket: Arc<CrashableSocket>,
    /// Locked for reading on every send: kept off the cache lines that the
    /// receiving side touches.
    links: CacheAligned<RwLock<Links>>,
    limits: LinkLimits,
    dispatch: Arc<Dispatch>,
    events: broadcast::Sender<ConnectionEvent>,
    tasks: Arc<Tasks>,
    metrics: Arc<MeshMetrics>,
}

impl Transport {
    /// The transport over `handshakes`' endpoint, which runs on `socket`;
    /// starts accepting connections.
    pub(crate) fn start(
        handshakes: Handshakes,
        socket: Arc<CrashableSocket>,
        limits: LinkLimits,
        dispatch: Arc<Dispatch>,
        tasks: Arc<Tasks>,
        metrics: Arc<MeshMetrics>,
    ) -> Arc<Self> {
        let transport = Arc::new(Self {
            handshakes,
            socket,
            links: CacheAligned(RwLock::default()),
            limits,
            dispatch,
            events: broadcast::channel(256).0,
            tasks,
            metrics,
        });
        transport.tasks.spawn(transport.clone().accept_loop());
        transport
    }

    /// This node's identity.
    pub(crate) fn id(&self) -> &NodeId {
        self.handshakes.id()
    }

    /// Where peers reach this node.
    pub(crate) fn advertise(&self) -> SocketAddr {
        self.handshakes.advertise()
    }

    /// The node's counters.
    pub(crate) fn stats(&self) -> &Arc<Stats> {
        &self.dispatch.stats
    }

    /// The address the endpoint is bound to.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.handshakes.endpoint.local_addr()
    }

    /// Runs `f` on the link to `name`, cloning nothing (on the path of every
    /// send); hands `f` back if there is no such link.
    pub(crate) fn with_link<T, F>(&self, name: &str, f: F) -> Result<T, F>
    where
        F: FnOnce(&Arc<Link>) -> T,
    {
        match read(&self.links.0).get(name) {
            Some(link) => Ok(f(link)),
            None => Err(f),
        }
    }

    /// The link to the node that advertises `addr`.
    pub(crate) fn link_by_addr(&self, addr: &SocketAddr) -> Option<Arc<Link>> {
        read(&self.links.0).by_addr(addr).cloned()
    }

    /// The link to `name`, created (with its writer task) if new. A known
    /// `addr` updates where it is dialed.
    pub(crate) fn link(self: &Arc<Self>, name: &str, addr: Option<SocketAddr>) -> Arc<Link> {
        if let Some(link) = read(&self.links.0).get(name) {
            if addr.is_none() || addr == link.addr() {
                return link.clone();
            }
        }
        let mut links = write(&self.links.0);
        let link = match links.get(name) {
            Some(link) => link.clone(),
            None => {
                let link = Link::new(
                    name,
                    self.limits.buffer,
                    self.limits.max_frame,
                    &self.metrics,
                );
                links.insert(link.clone());
                self.spawn_writer(&link);
                link
            }
        };
        if let Some(addr) = addr.filter(|addr| link.addr() != Some(*addr)) {
            links.readdress(&link, addr);
        }
        link
    }

    fn spawn_writer(self: &Arc<Self>, link: &Arc<Link>) {
        let (transport, dialed) = (self.clone(), link.clone());
        let connect = move || {
            let (transport, link) = (transport.clone(), dialed.clone());
            async move {
                let addr = link.addr().ok_or(DialError::NoAddress)?;
                let active = transport.connect(addr, Some(link.name())).await?;
                Ok(active.conn)
            }
        };
        let stats = self.stats().clone();
        let writer = run_writer(link.clone(), self.limits.backoff, stats, connect);
        self.tasks.spawn(writer);
    }

    /// Dials `addr`, exchanges hellos and registers the connection; returns
    /// the link's active connection then. `expected` is the peer's name,
    /// when known; another name is refused.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        addr: SocketAddr,
        expected: Option<&str>,
    ) -> Result<ActiveConn, DialError> {
        let handshaken = self.handshakes.dial(addr, expected).await?;
        Ok(self.register(handshaken))
    }

    /// Accepts connections until the endpoint closes.
    async fn accept_loop(self: Arc<Self>) {
        while let Some(incoming) = self.handshakes.endpoint.accept().await {
            let transport = self.clone();
            self.tasks.spawn(async move {
                let remote = incoming.remote_address();
                match transport.handshakes.accept(incoming).await {
                    Ok(handshaken) => {
                        transport.register(handshaken);
                    }
                    Err(reason) => {
                        Stats::bump(&transport.stats().handshakes_refused);
                        tracing::warn!(%remote, %reason, "refused incoming connection");
                    }
                }
            });
        }
    }

    /// Offers a handshaken connection to its link, serves what the peer
    /// sends on it, and watches it close; returns the link's active
    /// connection.
    fn register(self: &Arc<Self>, handshaken: Handshaken) -> ActiveConn {
        let Handshaken {
            conn,
            id,
            advertise,
            dialer,
        } = handshaken;
        let link = self.link(&id.name, Some(advertise));
        let new = ActiveConn {
            conn: conn.clone(),
            id: id.clone(),
            dialer,
        };
        let offer = link.offer(&self.id().name, new);
        if let Some(retired) = offer.retired {
            retire(retired);
        }
        if offer.came_up {
            tracing::info!(peer = %id, %advertise, "connection up");
            self.metrics.connection_up(&id.name);
            let _ = self.events.send(ConnectionEvent::Up {
                peer: id.clone(),
                addr: advertise,
            });
        }
        let reader = run_reader(
            self.dispatch.clone(),
            link.clone(),
            conn.clone(),
            id,
            advertise,
        );
        self.tasks.spawn(reader);
        self.tasks.spawn(self.clone().watch_closed(link, conn));
        offer.active
    }

    /// Tells the link when `conn` closes, and everyone if it was the active one.
    async fn watch_closed(self: Arc<Self>, link: Arc<Link>, conn: quinn::Connection) {
        let reason = conn.closed().await;
        if link.closed(conn.stable_id()) {
            tracing::info!(peer = %link.name(), %reason, "connection down");
            self.metrics.connection_down(link.name());
            let _ = self.events.send(ConnectionEvent::Down {
                peer: link.name().to_string(),
                reason: reason.to_string(),
            });
        }
    }

    /// Connection up/down events from now on.
    pub(crate) fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.events.subscribe()
    }

    /// Peers with an active connection.
    pub(crate) fn connected(&self) -> Vec<NodeId> {
        read(&self.links.0).connected()
    }

    /// Bytes waiting to be written, per peer.
    pub(crate) fn outbox_bytes(&self) -> Vec<(String, usize)> {
        read(&self.links.0).outbox_bytes()
    }

    /// Replies dropped on every link, and asks waiting on every link.
    pub(crate) fn link_counts(&self) -> (u64, u64) {
        let links = read(&self.links.0);
        (links.replies_dropped(), links.asks_pending())
    }

    /// Closes every connection with a goodbye and waits briefly for the
    /// close to reach the peers.
    pub(crate) async fn close(&self) {
        let endpoint = &self.handshakes.endpoint;
        endpoint.close(ErrorCode::Shutdown.into(), b"shutdown");
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    }

    /// Silences the socket, as a process kill would: nothing leaves,
    /// nothing arrives, no goodbye reaches anyone.
    pub(crate) fn kill(&self) {
        self.socket.kill();
    }
}

fn retire(conn: quinn::Connection) {
    tokio::spawn(
        async move {
            tokio::time::sleep(RETIRE_GRACE).await;
            conn.close(ErrorCode::Duplicate.into(), b"duplicate connection");
        }
        .in_current_span(),
    );
}
