//! Chitchat's transport over the node's QUIC connections.
//!
//! Each gossip message travels on a unidirectional stream of its own (chitchat
//! sizes messages for 64 KiB UDP payloads, more than a QUIC datagram). The
//! sender's address reported to chitchat is its advertise address from the
//! hello, never the UDP source, so replies reach it behind a proxy or NAT.
//! `send` only queues: chitchat awaits it inside its gossip loop.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

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

/// Where chitchat takes the gossip messages the readers received.
pub(crate) type GossipInbox = mpsc::Receiver<(SocketAddr, ChitchatMessage)>;

/// The chitchat transport of one node; it can be opened once.
pub(crate) struct QuicGossip {
    transport: Arc<Transport>,
    inbox: Mutex<Option<GossipInbox>>,
}

impl QuicGossip {
    pub(crate) fn new(transport: Arc<Transport>, inbox: GossipInbox) -> Self {
        Self {
            transport,
            inbox: Mutex::new(Some(inbox)),
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
        }))
    }
}

struct QuicGossipSocket {
    transport: Arc<Transport>,
    inbox: GossipInbox,
    /// Addresses dialed for gossip right now: one dial each at a time.
    dialing: Arc<Mutex<HashSet<SocketAddr>>>,
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
        if !lock(&self.dialing).insert(to) {
            Stats::bump(&stats.gossip_dropped);
            return;
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
