//! A fault-injecting UDP proxy for QUIC nodes.
//!
//! # The idea
//!
//! Every node of an experiment hides behind a [`Relay`]: the node *advertises*
//! the relay's public address, and the relay forwards what it receives to the
//! node's real socket. For each source address the relay opens an upstream
//! socket of its own (like a NAT), so the node sees each peer at one stable
//! address and its replies go back through the relay. Every packet therefore
//! crosses exactly one relay, on the receiving node's side, whichever node
//! opened the connection.
//!
//! All relays of an experiment share one [`ProxyNetwork`]. It knows which real
//! address belongs to which node name, so each packet belongs to a *directed
//! link* `(from, to)` between two names, and each link has a [`LinkRule`]:
//! pass (the default), `drop` (set both ways it is a partition, one way a
//! blackhole), `loss(p)`, `delay(ms, jitter_ms)`, `duplicate(p)` and
//! `reorder(p, window)`, combinable on one link. A new rule applies from the
//! next packet; nobody reconnects. Every link counts what it did
//! ([`LinkCounters`]), and all randomness comes from the network's seed, so a
//! run can be repeated.
//!
//! Packets from an address no node registered belong to [`UNKNOWN_PEER`]:
//! they always pass, and are counted.
//!
//! # Two ways to run it
//!
//! - In-process, as the multi-node harness does: create a [`ProxyNetwork`],
//!   [`spawn_relay`](ProxyNetwork::spawn_relay) per node, then set rules with
//!   [`set_rule`](ProxyNetwork::set_rule), [`partition`](ProxyNetwork::partition),
//!   [`blackhole`](ProxyNetwork::blackhole), [`heal`](ProxyNetwork::heal).
//! - As a process, `testbed proxy --config FILE` ([`ProxyConfig`] describes
//!   the file), driven over HTTP by the JSON [`control`] API.
//!
//! # Example
//!
//! ```
//! use testbed::proxy::{LinkRule, ProxyNetwork};
//! use tokio::net::UdpSocket;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let network = ProxyNetwork::new(42);
//! let a = UdpSocket::bind("127.0.0.1:0").await?; // node a's real socket
//! let b = UdpSocket::bind("127.0.0.1:0").await?; // node b's real socket
//! network.register("a", a.local_addr()?)?;
//! let relay_b = network.spawn_relay("b", b.local_addr()?).await?;
//!
//! // a talks to the address b advertises; b answers whoever it sees.
//! a.send_to(b"ping", relay_b.public_addr()).await?;
//! let mut buf = [0u8; 16];
//! let (_, seen_as) = b.recv_from(&mut buf).await?;
//! b.send_to(b"pong", seen_as).await?;
//! let (len, from) = a.recv_from(&mut buf).await?;
//! assert_eq!((&buf[..len], from), (&b"pong"[..], relay_b.public_addr()));
//!
//! // Faults, by name and direction, from the next packet on.
//! network.set_rule("a", "b", LinkRule::delay(20, 5).with_loss(0.1))?;
//! network.partition(&["a"], &["b"])?;
//! network.heal();
//! assert_eq!(network.link_counters("a", "b").passed, 1);
//! assert_eq!(network.link_counters("b", "a").passed, 1);
//! relay_b.shutdown().await;
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(demo())
//! #     .map_err(|e| e.to_string())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
pub mod control;
mod error;
mod lane;
mod link;
mod network;
mod relay;
mod rule;
mod server;
mod task;

pub use config::{NodeConfig, ProxyConfig, RuleConfig};
pub use error::ProxyError;
pub use lane::REORDER_MAX_HOLD;
pub use link::{Link, LinkCounters, LinkStatus, UNKNOWN_PEER};
pub use network::ProxyNetwork;
pub use relay::Relay;
pub use rule::{
    Delay, Forward, LinkRule, Reorder, RuleError, Verdict, MAX_DELAY_MS, MAX_REORDER_WINDOW,
};
pub use server::ProxyServer;
