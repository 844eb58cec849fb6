//! Cluster membership on a running node: the thin async driver around the
//! sans-IO [`membership::Membership`].
//!
//! The brain (who is Up, who is unreachable, whom to down) lives in the
//! `membership` crate and never touches a socket or a clock. This module only
//! moves inputs in and effects out, once per
//! [`MembershipConfig::tick_interval`](membership::MembershipConfig::tick_interval)
//! and whenever gossip brings a `member.*` key:
//!
//! - **in**: chitchat's view (every node state it knows, with chitchat's live
//!   set) via `on_gossip`, and the answers to direct heartbeats via
//!   `on_heartbeat`;
//! - **out**: `member.*` keys written to this node's own chitchat state,
//!   heartbeat requests sent over QUIC to the internal service
//!   [`HEARTBEAT_SERVICE`] (each in a task of its own, so a slow or dead peer
//!   never holds up the loop), [`MemberEvent`]s on a broadcast channel, and
//!   watches of the members and of the [`ClusterState`].
//!
//! When the cluster downs this node it stops every service at once, keeps
//! gossiping for [`DOWN_LINGER_ROUNDS`] gossip intervals so that the Down
//! keys reach its side, then leaves the mesh; [`Node::downed`] resolves.
//! [`Node::leave`] walks `Leaving -> Exiting -> Removed`: between the first two
//! it runs the [`Node::on_leave`] handoffs (the extension point for sharding).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use membership::{MemberEvent, MemberStatus};
//! let node = mesh::Node::builder("n1").roles(vec!["coordinator".into()]).start().await?;
//! let mut events = node.member_events();
//! tokio::spawn(async move {
//!     while let Ok(event) = events.recv().await {
//!         if let MemberEvent::MemberDowned(member) = event {
//!             println!("{} is down", member.id);
//!         }
//!     }
//! });
//! // The first node of a cluster admits itself after `seed_self_admit_after`.
//! let mut status = node.watch_self_status();
//! status.wait_for(|s| *s == MemberStatus::Up).await?;
//! assert_eq!(node.singleton_host(Some("coordinator")).as_ref(), Some(node.id()));
//! node.leave().await;
//! # Ok(()) }
//! ```
//!
//! [`Node::downed`]: crate::Node::downed
//! [`Node::leave`]: crate::Node::leave
//! [`Node::on_leave`]: crate::Node::on_leave

mod api;
mod driver;
mod gossip_io;
pub(crate) mod handle;
mod heartbeat;
mod leave;
mod state;

pub use heartbeat::HEARTBEAT_SERVICE;
pub use leave::LeaveHandoff;
pub use membership::{Member, MemberEvent, MemberStatus, PendingDecision};
pub use state::{ClusterState, Downed, DowningSettings};

pub(crate) use driver::{prepare, start};
pub use driver::{DOWN_LINGER_ROUNDS, REMOVED_LINGER_ROUNDS};
