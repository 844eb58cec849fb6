//! The in-process multi-node harness: our counterpart of Akka's multi-node
//! testkit.
//!
//! # The idea
//!
//! A [`Cluster`] runs N real mesh nodes in the test's process, on loopback,
//! with mutual TLS from an in-memory CA. Every node sits behind its own relay
//! of one [`ProxyNetwork`](crate::proxy::ProxyNetwork): it binds a real port
//! but *advertises* the relay's address, so every packet between two nodes
//! crosses the proxy, where faults are injected per directed pair of node
//! names. The relay address stays when a node restarts (on a new real port,
//! with a new generation), so peers find the new incarnation where the old one
//! was.
//!
//! The harness acts by name: [`partition`](Cluster::partition),
//! [`blackhole`](Cluster::blackhole), [`loss`](Cluster::loss),
//! [`delay`](Cluster::delay), [`heal`](Cluster::heal),
//! [`crash`](Cluster::crash) (no goodbye), [`restart`](Cluster::restart)
//! (new generation), [`leave`](Cluster::leave) (graceful), and
//! [`hooks`](Cluster::hooks) to arm a named hook point on one node. Every
//! node answers a built-in probe service, so [`ping`](Cluster::ping) checks a
//! pair without a service of the test's own.
//!
//! Conditions are awaited with [`wait_until`](Cluster::wait_until), never with
//! fixed sleeps. A timeout fails with [`describe`](Cluster::describe)'s dump:
//! what every node's gossip sees, whom it is connected to, its counters, the
//! proxy's rules and link counters, and the end of the [`Timeline`] of what
//! the harness did and what the nodes reported.
//!
//! [`Cluster`]'s documentation has a complete partition test.

mod builder;
mod describe;
mod error;
mod faults;
mod harness;
mod launch;
mod probe;
mod timeline;
mod wait;

pub use builder::{ClusterBuilder, DEFAULT_START_TIMEOUT};
pub use error::{ClusterError, WaitTimeout};
pub use faults::Direction;
pub use harness::{Cluster, NodeState};
pub use probe::PROBE_SERVICE;
pub use timeline::{Timeline, TimelineEntry, TimelineEvent};
pub use wait::POLL;
