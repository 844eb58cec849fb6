//! Chitchat's transport over the node's QUIC connections.
//!
//! Each gossip message travels on a unidirectional stream of its own (chitchat
//! sizes messages for 64 KiB UDP payloads, more than a QUIC datagram). The
//! sender's address reported to chitchat is its advertise address from the
//! hello, never the UDP source, so replies reach it behind a proxy or NAT.
//! `send` only queues: chitchat awaits it inside its gossip loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chitchat::transport::{Socket, Transport as ChitchatTransport};
use chitchat::{ChitchatMessage, Serializable};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::Transport;
use crate::stats::Stats;
use crate::sync::lock;
use crate::wire::StreamKind;

/// Gossip messages received and not yet taken by chitchat.
pub(crate) const GOSSIP_INBOX: usize = 1024;

/// A gossip dial holds the next one up for this many gossip intervals at
/// most (1 s with the default 200 ms): longer than a handshake takes on a
/// busy machine (0.5-1.2 s measured with 50 nodes on 2 cores), shorter than
/// the handshake timeout that a dial to a crashed node runs into.
const DIAL_HOLD_ROUNDS: u32 = 5;

/// Where chitchat takes the gossip messages the readers received.
pub(crate) type GossipInbox = mpsc::Receiver<(SocketAddr, ChitchatMessage)>;

/// The chitchat transport of one node; it can be opened once.
pub(crate) struct QuicGossip {
    transport: Arc<Transport>,
    inbox: Mutex<Option<GossipInbox>>,
    interval: Duration,
}

impl QuicGossip {
    /// Gossip over `transport`, received through `inbox`, in rounds of
    /// `interval` (which bounds how long a dial holds up the next, see
    /// [`QuicGossipSocket::send_gossip`]).
    pub(crate) fn new(transport: Arc<Transport>, inbox: GossipInbox, interval: Duration) -> Self {
        Self {
            transport,
            inbox: Mutex::new(Some(inbox)),
            interval,
        }
    }
}

#[async_trait::async_trait]
impl ChitchatTransport for QuicGossip {
    async fn open(&self, _listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inbox = lock(&self.inbox)
            .take()
            .ok_or_else(|| anyhow::anyhow!("the gossip transport is already open"))?;
        Ok(Box::new(QuicGossipSocket {
            transport: self.transport.clone(),
            inbox,
            dialing: Arc::default(),
            hold: self.interval * DIAL_HOLD_ROUNDS,
        }))
    }
}

struct QuicGossipSocket {
    transport: Arc<Transport>,
    inbox: GossipInbox,
    /// Addresses dialed for gossip right now, with when each dial started.
    dialing: Arc<Mutex<HashMap<SocketAddr, Instant>>>,
    /// How long a dial holds up the next one at most.
    hold: Duration,
}

#[async_trait::async_trait]
impl Socket for QuicGossipSocket {
    async fn send(&mut self, to: SocketAddr, message: ChitchatMessage) -> anyhow::Result<()> {
        self.send_gossip(to, message.serialize_to_vec());
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        self.inbox
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("the node is shut down"))
    }
}

impl QuicGossipSocket {
    /// Sends one gossip message to the node advertising `to`, dialing it first
    /// if there is no connection (the message then waits for the dial).
    ///
    /// One gossip dial at a time: chitchat gossips with peers chosen at
    /// random, so in a cluster that starts at once every node would dial
    /// nearly every other within a few rounds, hundreds of TLS handshakes in
    /// flight on a few cores, each then taking a second or more, and a
    /// heartbeat that waits for its connection behind them comes too late.
    /// A message to a peer with no connection while another gossip dial is
    /// in flight is dropped like a lost datagram (chitchat's next rounds
    /// pick other peers). A dial holds the next one up for
    /// [`DIAL_HOLD_ROUNDS`] gossip intervals at most, so that a slow one (to
    /// a crashed node, which lasts the handshake timeout) does not stop
    /// gossip from finding new peers.
    /// Heartbeats and services dial on their own.
    fn send_gossip(&self, to: SocketAddr, bytes: Vec<u8>) {
        let transport = &self.transport;
        // Our own address, e.g. held by a previous incarnation of this node.
        if to == transport.advertise() {
            return;
        }
        let active = transport.link_by_addr(&to).and_then(|link| link.active());
        if let Some(active) = active {
            // Chitchat calls from its own task: run in the node's span.
            tokio::spawn(
                write_gossip(active.conn, bytes).instrument(transport.tasks.span().clone()),
            );
            return;
        }
        let stats = transport.stats();
        {
            let mut dialing = lock(&self.dialing);
            let now = Instant::now();
            if !may_dial(&dialing, to, now, self.hold) {
                Stats::bump(&stats.gossip_dropped);
                return;
            }
            dialing.insert(to, now);
        }
        let (transport, dialing) = (transport.clone(), self.dialing.clone());
        let span = transport.tasks.span().clone();
        tokio::spawn(
            async move {
                let dialed = transport.connect(to, None).await;
                lock(&dialing).remove(&to);
                match dialed {
                    Ok(active) => write_gossip(active.conn, bytes).await,
                    Err(error) => {
                        Stats::bump(&transport.stats().gossip_dropped);
                        tracing::debug!(%to, %error, "gossip dial failed");
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// Whether a gossip dial to `to` may start at `now`, given the gossip dials
/// in flight and when each started: none to `to`, and none other started
/// less than `hold` ago (see [`QuicGossipSocket::send_gossip`]).
fn may_dial(
    dialing: &HashMap<SocketAddr, Instant>,
    to: SocketAddr,
    now: Instant,
    hold: Duration,
) -> bool {
    !dialing.contains_key(&to)
        && dialing
            .values()
            .all(|started| now.duration_since(*started) >= hold)
}

async fn write_gossip(conn: quinn::Connection, bytes: Vec<u8>) {
    let Ok(mut send) = conn.open_uni().await else {
        return;
    };
    if send.write_all(&[StreamKind::Gossip as u8]).await.is_ok()
        && send.write_all(&bytes).await.is_ok()
    {
        let _ = send.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gossip_dial_at_a_time_for_a_while_at_most() {
        let hold = Duration::from_secs(1);
        let (a, b) = (
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 1], 2)),
        );
        let start = Instant::now();
        let mut dialing = HashMap::new();
        assert!(may_dial(&dialing, a, start, hold));
        dialing.insert(a, start);
        let later = start + Duration::from_millis(900);
        assert!(!may_dial(&dialing, b, later, hold), "a dial in flight");
        let after = start + hold;
        assert!(
            may_dial(&dialing, b, after, hold),
            "a slow dial holds up a while"
        );
        assert!(
            !may_dial(&dialing, a, after, hold),
            "never two dials to one peer"
        );
    }
}
