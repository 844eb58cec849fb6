//! Connections to peers: one active QUIC connection per peer, a bounded queue of
//! outgoing frames per peer, and the writer task that batches the queue onto one
//! long-lived stream.
//!
//! Invariant: for each peer name at most one connection is *active*, and both
//! ends pick the same one. A duplicate of the same incarnation (both nodes
//! dialed at once) keeps the connection dialed by the node with the smaller
//! name; a connection to a newer incarnation (larger generation) replaces the
//! old one; of two connections the same node dialed, the later dial (numbered
//! in its hello) wins. Both ends compute the same [`rank`] whatever order the
//! handshakes finished in at each end. A retired
//! connection is closed after a grace period so frames already in flight on it
//! are still read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use membership::NodeId;
use rustc_hash::FxHashMap;
use tokio::sync::watch;

use crate::incoming::Incoming;
use crate::outbox::{OpenStream, Outbox};

use crate::node::Shared;
use crate::wire::frame::{encode_frame_into, put_postcard};
use crate::wire::{EnvelopeHeader, ErrorCode, StreamKind};

/// How long a retired duplicate connection stays open for frames in flight.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// The connection currently used to send to a peer.
#[derive(Clone)]
pub(crate) struct ActiveConn {
    pub(crate) conn: quinn::Connection,
    pub(crate) id: NodeId,
    pub(crate) dialer: Dialer,
}

/// Which end dialed a connection, with the dialer's number for the dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialer {
    Me(u64),
    Peer(u64),
}

/// Everything known about one peer name.
pub(crate) struct Peer {
    pub(crate) name: String,
    pub(crate) outbox: Arc<Outbox>,
    addr: std::sync::Mutex<Option<SocketAddr>>,
    active: watch::Sender<Option<ActiveConn>>,
    /// The messages stream from the peer read last: where answers to asks
    /// are expected (see [`Incoming`]).
    incoming: std::sync::Mutex<Option<Arc<Incoming>>>,
    /// Asks to the peer waiting for their answer.
    pub(crate) asks_waiting: std::sync::atomic::AtomicUsize,
}

impl Peer {
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        *crate::sync::lock(&self.addr)
    }

    pub(crate) fn active(&self) -> Option<ActiveConn> {
        self.active
            .borrow()
            .clone()
            .filter(|a| a.conn.close_reason().is_none())
    }

    pub(crate) fn incoming(&self) -> Option<Arc<Incoming>> {
        crate::sync::lock(&self.incoming).clone()
    }

    /// Makes `stream` the one asks expect their answers on, until the
    /// guard drops (its reader ended) or a later stream replaces it.
    pub(crate) fn publish_incoming(&self, stream: &Arc<Incoming>) -> Published<'_> {
        *crate::sync::lock(&self.incoming) = Some(stream.clone());
        Published {
            peer: self,
            stream: stream.clone(),
        }
    }
}

/// A stream published by [`Peer::publish_incoming`].
pub(crate) struct Published<'a> {
    peer: &'a Peer,
    stream: Arc<Incoming>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        let mut incoming = crate::sync::lock(&self.peer.incoming);
        if incoming
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &self.stream))
        {
            *incoming = None;
        }
    }
}

/// Peers by name, and names by advertise address.
#[derive(Default)]
pub(crate) struct PeerTable {
    // Looked up on every send; names are few and come from authenticated peers.
    by_name: FxHashMap<String, Arc<Peer>>,
    by_addr: FxHashMap<SocketAddr, String>,
}

impl PeerTable {
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Peer>> {
        self.by_name.get(name).cloned()
    }

    pub(crate) fn get_ref(&self, name: &str) -> Option<&Arc<Peer>> {
        self.by_name.get(name)
    }

    pub(crate) fn by_addr(&self, addr: &SocketAddr) -> Option<Arc<Peer>> {
        self.by_addr.get(addr).and_then(|name| self.get(name))
    }

    pub(crate) fn replies_dropped(&self) -> u64 {
        self.by_name
            .values()
            .map(|p| {
                p.outbox
                    .replies_dropped
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    }

    pub(crate) fn connected(&self) -> Vec<NodeId> {
        let mut ids: Vec<_> = self
            .by_name
            .values()
            .filter_map(|p| p.active().map(|a| a.id))
            .collect();
        ids.sort();
        ids
    }
}

impl Shared {
    /// The peer named `name`, created (with its writer task) if new. A known
    /// `addr` updates where it is dialed.
    pub(crate) fn peer(self: &Arc<Self>, name: &str, addr: Option<SocketAddr>) -> Arc<Peer> {
        if let Some(peer) = crate::sync::read(&self.peers.0).get(name) {
            if addr.is_none() || addr == peer.addr() {
                return peer;
            }
        }
        let mut table = crate::sync::write(&self.peers.0);
        let peer = match table.by_name.get(name) {
            Some(peer) => peer.clone(),
            None => {
                let peer = Arc::new(Peer {
                    name: name.to_string(),
                    outbox: Outbox::new(self.config.peer_buffer, self.config.max_frame_size),
                    addr: std::sync::Mutex::new(None),
                    active: watch::Sender::new(None),
                    incoming: std::sync::Mutex::new(None),
                    asks_waiting: std::sync::atomic::AtomicUsize::new(0),
                });
                table.by_name.insert(name.to_string(), peer.clone());
                self.spawn(run_writer(self.clone(), peer.clone()));
                peer
            }
        };
        if let Some(addr) = addr {
            let mut current = crate::sync::lock(&peer.addr);
            if *current != Some(addr) {
                if let Some(old) = current.replace(addr) {
                    table.by_addr.remove(&old);
                }
                table.by_addr.insert(addr, name.to_string());
            }
        }
        peer
    }

    /// Makes a freshly handshaken connection known; see the module doc for
    /// which connection stays active.
    pub(crate) fn register_connection(
        self: &Arc<Self>,
        conn: quinn::Connection,
        id: NodeId,
        advertise: SocketAddr,
        dialer: Dialer,
    ) -> ActiveConn {
        let peer = self.peer(&id.name, Some(advertise));
        let new = ActiveConn {
            conn: conn.clone(),
            id: id.clone(),
            dialer,
        };
        let current = peer.active();
        let keep_new = match &current {
            None => true,
            Some(cur) if cur.id.generation != id.generation => id.generation > cur.id.generation,
            Some(cur) => {
                rank(&self.id.name, &id.name, dialer) > rank(&self.id.name, &id.name, cur.dialer)
            }
        };
        let winner = if keep_new {
            peer.outbox.set_active(Some(conn.stable_id()));
            peer.active.send_replace(Some(new.clone()));
            if let Some(old) = current.clone() {
                retire(old.conn);
            }
            new
        } else {
            retire(conn.clone());
            current.clone().unwrap_or(new)
        };
        if current.is_none() && keep_new {
            tracing::info!(peer = %id, %advertise, "connection up");
            let _ = self.events.send(crate::node::ConnectionEvent::Up {
                peer: id.clone(),
                addr: advertise,
            });
        }
        self.spawn(crate::inbound::run_reader(
            self.clone(),
            conn.clone(),
            id.clone(),
            advertise,
        ));
        self.spawn(watch_closed(self.clone(), peer, conn));
        winner
    }
}

/// The order both ends agree on between two connections of one pair (seen
/// from `me`, to `peer`): a connection dialed by the node with the smaller
/// name wins; of two dialed by the same node, the later dial wins.
fn rank(me: &str, peer: &str, dialer: Dialer) -> (bool, u64) {
    let smaller_is_me = me < peer;
    match dialer {
        Dialer::Me(dial) => (smaller_is_me, dial),
        Dialer::Peer(dial) => (!smaller_is_me, dial),
    }
}

fn retire(conn: quinn::Connection) {
    tokio::spawn(async move {
        tokio::time::sleep(RETIRE_GRACE).await;
        conn.close(ErrorCode::Duplicate.into(), b"duplicate connection");
    });
}

/// Clears the peer's active connection when it closes, if it is still the active one.
async fn watch_closed(shared: Arc<Shared>, peer: Arc<Peer>, conn: quinn::Connection) {
    let reason = conn.closed().await;
    let was_active = peer.active.send_if_modified(|active| {
        let is_this = active
            .as_ref()
            .is_some_and(|a| a.conn.stable_id() == conn.stable_id());
        if is_this {
            *active = None;
            peer.outbox.set_active(None);
        }
        is_this
    });
    if was_active {
        tracing::info!(peer = %peer.name, %reason, "connection down");
        shared.pending.fail_peer(&peer.name);
        let _ = shared.events.send(crate::node::ConnectionEvent::Down {
            peer: peer.name.clone(),
            reason: reason.to_string(),
        });
    }
}

/// Moves frames from the peer's outbox onto its active connection, in order,
/// everything buffered in one write. Dials when there is no connection.
async fn run_writer(shared: Arc<Shared>, peer: Arc<Peer>) {
    let mut active_rx = peer.active.subscribe();
    let mut stream: Option<OpenStream> = None;
    let mut backoff = shared.config.reconnect_min;
    let mut batch = Vec::new();
    loop {
        batch.clear();
        let frames = peer.outbox.take(&mut batch, &mut stream).await;
        let mut written = false;
        for _attempt in 0..2 {
            let conn = match peer.active() {
                Some(active) => active.conn,
                None => match dial_peer(&shared, &peer).await {
                    Ok(active) => active.conn,
                    Err(error) => {
                        tracing::debug!(peer = %peer.name, %error, ?backoff, "dial failed");
                        shared.pending.fail_peer(&peer.name);
                        active_rx.mark_unchanged();
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = active_rx.changed() => {}
                        }
                        backoff = (backoff * 2).min(shared.config.reconnect_max);
                        break;
                    }
                },
            };
            backoff = shared.config.reconnect_min;
            if stream.as_ref().map(|(id, _)| *id) != Some(conn.stable_id()) {
                stream = open_messages_stream(&conn, &peer.outbox)
                    .await
                    .map(|s| (conn.stable_id(), s));
            }
            if let Some((_, send)) = stream.as_mut() {
                if send.write_all(&batch).await.is_ok() {
                    written = true;
                    break;
                }
            }
            stream = None;
        }
        if !written {
            shared
                .stats
                .messages_undeliverable
                .fetch_add(frames, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

async fn dial_peer(
    shared: &Arc<Shared>,
    peer: &Peer,
) -> Result<ActiveConn, crate::handshake::DialError> {
    let addr = peer.addr().ok_or(crate::handshake::DialError::NoAddress)?;
    shared.dial(addr, Some(&peer.name)).await
}

/// Opens a messages stream that defines every service number `outbox`
/// gave so far: the frames about to be written may use any of them.
async fn open_messages_stream(
    conn: &quinn::Connection,
    outbox: &Outbox,
) -> Option<quinn::SendStream> {
    let mut send = conn.open_uni().await.ok()?;
    let mut start = vec![StreamKind::Messages as u8];
    let names = outbox.service_names();
    if !names.is_empty() {
        let names = names.iter().map(|name| &**name).collect();
        let header = EnvelopeHeader::Services { names };
        // At most 1024 names (`MAX_SERVICE_IDS`) of at most 256 bytes each.
        encode_frame_into(&mut start, usize::MAX, |buf| put_postcard(buf, &header)).ok()?;
    }
    send.write_all(&start).await.ok()?;
    Some(send)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection as both ends see it: who dialed it, with which number.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Conn {
        dialer_is_a: bool,
        dial: u64,
    }

    fn seen_from(conn: Conn, me_is_a: bool) -> Dialer {
        if conn.dialer_is_a == me_is_a {
            Dialer::Me(conn.dial)
        } else {
            Dialer::Peer(conn.dial)
        }
    }

    /// The connection an end keeps after registering `order` one by one.
    fn winner(order: &[Conn], me_is_a: bool) -> Conn {
        let (me, peer) = if me_is_a { ("a", "b") } else { ("b", "a") };
        let mut active: Option<Conn> = None;
        for conn in order {
            let keep_new = active.is_none_or(|cur| {
                rank(me, peer, seen_from(*conn, me_is_a)) > rank(me, peer, seen_from(cur, me_is_a))
            });
            if keep_new {
                active = Some(*conn);
            }
        }
        active.expect("one registered")
    }

    #[test]
    fn both_ends_keep_the_same_connection_whatever_the_order() {
        // a dialed twice (a redial racing the first), b once, all at once:
        // each end finishes the handshakes in its own order.
        let conns = [
            Conn {
                dialer_is_a: true,
                dial: 1,
            },
            Conn {
                dialer_is_a: true,
                dial: 2,
            },
            Conn {
                dialer_is_a: false,
                dial: 7,
            },
        ];
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for at_a in &orders {
            for at_b in &orders {
                let a = winner(&at_a.map(|i| conns[i]), true);
                let b = winner(&at_b.map(|i| conns[i]), false);
                assert_eq!(a, b, "a saw {at_a:?}, b saw {at_b:?}");
                assert_eq!(a, conns[1]);
            }
        }
    }
}
