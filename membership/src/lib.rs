//! Sans-IO cluster membership: who is in the cluster, who is reachable, who is
//! down, and which member is the oldest. No sockets, no tasks, no clock: time
//! is passed in, effects are handed back (the `quinn-proto` / `raft-rs` shape).
//!
//! # The model
//!
//! - A [`Member`] has a [`MemberStatus`] (Akka's lifecycle, trimmed:
//!   `Joining -> Up -> Leaving -> Exiting -> Removed`, and `Down` from any
//!   state, final for that generation) and a [`Reachability`] flag listing the
//!   observers that currently report it unreachable.
//! - Each node watches its [`MembershipConfig::monitored_ring_size`]
//!   successors on the ring of members ordered by [`NodeId`] ([`ring`]) with
//!   direct heartbeats and a phi-accrual detector ([`phi`]), and publishes
//!   what it gives up on as its own chitchat keys ([`keys`]). A member is
//!   unreachable while any observer that is not Down says so
//!   ([`reachability`]).
//! - The oldest member of each side runs the split-brain resolver
//!   ([`downing`]) once the view has been stable for `stable_after`, publishes
//!   its Down decisions as its own keys, and every node adopts the union.
//! - Each member gossips its roles and its [`AppVersion`] (the version of
//!   the application it runs; a rolling update prefers the newest).
//! - [`ordering`]: oldest first by `(generation, name)`; a role's singleton runs
//!   on the member that became Up first.
//!
//! # Joining -> Up
//!
//! Each node writes only its own keys, so admission is two-step:
//! 1. The **leader** (the oldest member that is Up or Leaving and that nobody
//!    reports unreachable) publishes `member.admit.<id>` for every joining
//!    member that chitchat considers live and nobody reports unreachable.
//! 2. A joining node that sees itself admitted by any Up (or Leaving) member
//!    publishes `member.status = up`. The leader deletes its admit key once
//!    the member is no longer Joining.
//!
//! The first node of a cluster has nobody to admit it: a joining node that has
//! received gossip at least once, has been running for
//! [`MembershipConfig::seed_self_admit_after`], and sees no member that is Up
//! (or Leaving/Exiting) and no older live joining node, admits itself. Nodes
//! started together therefore bootstrap through the oldest of them.
//!
//! # Graceful leave
//!
//! [`Membership::leave`] publishes `Leaving` (the singleton moves; services hand
//! off); [`Membership::leave_handoff_done`], or `leave_handoff_timeout`, moves
//! to `Exiting`. Every other member acknowledges that it saw `Exiting` with a
//! key of its own; once every live member has (or after `exiting_timeout`),
//! the node publishes `Removed` and the driver gets
//! [`MembershipEffect::SelfRemoved`]. Exiting and Removed members are
//! not monitored, so peers never down a node for leaving.
//!
//! # Driving it
//!
//! The driver (in `mesh`) owns the network and calls:
//! - [`Membership::on_gossip`] with every node gossip knows (each a plain
//!   [`GossipNode`], see [`GossipNode::from_key_values`]) after each gossip round;
//! - [`Membership::on_heartbeat`] when a heartbeat answer arrives;
//! - [`Membership::tick`] every [`MembershipConfig::tick_interval`], and
//!   performs the returned [`MembershipEffect`]s: set/delete its own chitchat
//!   keys, send heartbeat requests, publish events, stop on `SelfDown`.
//!
//! ```
//! use std::collections::BTreeSet;
//! use std::time::{Duration, Instant};
//! use membership::{Membership, MembershipConfig, MembershipEffect, MemberStatus, NodeId};
//!
//! let start = Instant::now();
//! let me = NodeId::new("n1", 1_700_000_000_000);
//! let mut node = Membership::new(
//!     me.clone(),
//!     "127.0.0.1:7000".parse().unwrap(),
//!     BTreeSet::from(["coordinator".to_string()]),
//!     MembershipConfig::default(),
//!     start,
//! );
//! let mut now = start;
//! for _ in 0..20 {
//!     // The driver would pass chitchat's view here; alone, it only sees itself.
//!     node.on_gossip(now, Vec::new());
//!     for effect in node.tick(now) {
//!         match effect {
//!             MembershipEffect::SetKey { key, value } => { /* chitchat: set own key */ }
//!             MembershipEffect::DeleteKey { key } => { /* chitchat: delete own key */ }
//!             MembershipEffect::SendHeartbeat { to } => { /* QUIC: heartbeat request */ }
//!             MembershipEffect::Event(event) => { /* to subscribers */ }
//!             MembershipEffect::SelfDown | MembershipEffect::SelfRemoved => { /* stop */ }
//!         }
//!     }
//!     now += node.config().tick_interval();
//! }
//! // The first node of a cluster admits itself and hosts the singletons.
//! assert_eq!(node.status(), MemberStatus::Up);
//! assert_eq!(node.singleton_host(Some("coordinator")), Some(me));
//! assert!(node.would_survive());
//! ```

#![warn(missing_docs)]

mod app_version;
mod config;
pub mod downing;
pub mod duration;
mod error;
mod events;
mod gossip_view;
pub mod keys;
mod member;
pub mod monitor;
mod node_id;
pub mod ordering;
pub mod phi;
pub mod reachability;
pub mod ring;
mod state;

pub use app_version::AppVersion;
pub use config::MembershipConfig;
pub use downing::{Decision, DowningStrategy, PendingDecision};
pub use error::{ConfigError, DurationError, KeyError};
pub use events::{MemberEvent, MembershipEffect};
pub use gossip_view::{GossipNode, GossipView};
pub use member::{Member, MemberStatus, Reachability};
pub use node_id::NodeId;
pub use state::Membership;
