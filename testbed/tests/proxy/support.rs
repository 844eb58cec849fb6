//! Sockets that record what they receive, and waiting with a deadline.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testbed::proxy::ProxyNetwork;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long any condition in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Polls `condition` until it holds; panics with `what` after [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A received datagram and who sent it.
pub type Datagram = (Vec<u8>, SocketAddr);

/// A node's real socket that records every datagram it receives.
pub struct Peer {
    pub socket: Arc<UdpSocket>,
    received: Arc<Mutex<Vec<Datagram>>>,
    task: JoinHandle<()>,
}

impl Peer {
    pub async fn bind() -> Self {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind loopback"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let socket = socket.clone();
            let received = received.clone();
            async move {
                let mut buf = vec![0u8; 65_535];
                while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                    lock(&received).push((buf[..len].to_vec(), from));
                }
            }
        });
        Self {
            socket,
            received,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound socket")
    }

    pub async fn send(&self, payload: &[u8], to: SocketAddr) {
        self.socket
            .send_to(payload, to)
            .await
            .expect("send on loopback");
    }

    /// Everything received so far, with the sender's address.
    pub fn received(&self) -> Vec<Datagram> {
        lock(&self.received).clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.received).len()
    }

    /// Waits until at least `n` datagrams arrived; returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Datagram> {
        wait_until(&format!("{n} datagrams"), || self.count() >= n).await;
        self.received()
    }

    /// Payloads received so far, read as numbers (see [`send_numbered`]).
    pub fn numbers(&self) -> Vec<u32> {
        lock(&self.received)
            .iter()
            .filter_map(|(payload, _)| payload.as_slice().try_into().ok().map(u32::from_be_bytes))
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

use mesh::sync::lock;

/// Sends `count` datagrams holding 0, 1, 2... from `peer` to `to`, in batches
/// that the relay must have judged (link `from -> relay_node`) before the
/// next, so no kernel buffer overflows and the order at the relay is the send
/// order.
pub async fn send_numbered(
    network: &ProxyNetwork,
    peer: &Peer,
    to: SocketAddr,
    link: (&str, &str),
    count: u32,
) {
    let before = network.link_counters(link.0, link.1).seen();
    for batch in (0..count).collect::<Vec<_>>().chunks(20) {
        for n in batch {
            peer.send(&n.to_be_bytes(), to).await;
        }
        let expected = before + u64::from(batch[batch.len() - 1] + 1);
        wait_until("the relay to judge a batch", || {
            network.link_counters(link.0, link.1).seen() >= expected
        })
        .await;
    }
}

/// Network with node `a` (a plain socket) and node `b` behind a relay.
pub struct Pair {
    pub network: ProxyNetwork,
    pub a: Peer,
    pub b: Peer,
    pub relay_b: testbed::proxy::Relay,
}

impl Pair {
    pub async fn new(seed: u64) -> Self {
        let network = ProxyNetwork::new(seed);
        let a = Peer::bind().await;
        let b = Peer::bind().await;
        network.register("a", a.addr()).expect("register a");
        let relay_b = network
            .spawn_relay("b", b.addr())
            .await
            .expect("relay for b");
        Self {
            network,
            a,
            b,
            relay_b,
        }
    }

    /// a -> b once, so b learns the address under which it sees a; returns it.
    pub async fn open_flow(&self) -> SocketAddr {
        let seen = self.b.count();
        self.a.send(b"hello", self.relay_b.public_addr()).await;
        let received = self.b.wait_for(seen + 1).await;
        received[seen].1
    }
}
