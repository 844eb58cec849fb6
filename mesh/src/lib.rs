//! A mesh node: QUIC with mutual TLS, named services with `tell` and `ask`, and
//! chitchat gossip carried over the same QUIC connections.
//!
//! Every node has one QUIC endpoint and at most one active connection per peer;
//! gossip, heartbeats and service messages share it, so a cut link cuts them all.
//! Peers are known by the name in their certificate and the advertise address
//! they announce, never by UDP source address.
//!
//! Every node runs membership ([`cluster`]): direct heartbeats, per-observer
//! reachability, split-brain downing and the singleton host, driven from the
//! sans-IO `membership` crate, exposed as [`Node::cluster_members`],
//! [`Node::member_events`], [`Node::leave`] and [`Node::downed`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! let a = mesh::Node::builder("a").start().await?;
//! let b = mesh::Node::builder("b").seeds(vec![a.advertise_addr()]).start().await?;
//! a.register_service("greet", |req: mesh::Request<String, String>| {
//!     let answer = format!("hello {}", req.message());
//!     req.reply(answer);
//! })?;
//! // once b has seen a through gossip:
//! let answer: String = b.ask("a", "greet", "b".to_string(), Duration::from_secs(1)).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod admin;
mod builder;
pub mod cluster;
pub mod config;
mod error;
pub mod hooks;
mod link;
#[cfg(feature = "logging")]
pub mod logging;
mod members;
pub mod metrics;
mod node;
#[cfg(feature = "otel")]
mod otel;
mod pipeline;
pub mod process;
#[cfg(feature = "dns-seeds")]
pub mod seeds;
mod send;
pub mod service;
mod services;
mod stats;
pub mod sync;
mod tasks;
#[cfg(test)]
mod testing;
pub mod tls;
mod transport;
mod views;
pub mod wire;

pub use builder::NodeBuilder;
pub use cluster::{ClusterState, Downed};
pub use config::NodeConfig;
pub use error::{AskError, SendError, StartError};
pub use hooks::{HookAction, Hooks};
pub use members::MemberInfo;
pub use membership::{AppVersion, Member, MemberEvent, MemberStatus, MembershipConfig, NodeId};
pub use node::Node;
pub use pipeline::{Pipeline, Ticket};
#[cfg(feature = "dns-seeds")]
pub use seeds::{DnsSeedError, DnsSeeds};
pub use send::PeerRef;
pub use service::{Request, Responder};
pub use services::ServiceExists;
pub use stats::NodeStats;
pub use tls::TlsSettings;
pub use transport::socket::bind_udp;
pub use transport::ConnectionEvent;
