//! The testbed: where the mesh's failure stories become tests.
//!
//! - [`proxy`]: a fault-injecting UDP proxy that stands in front of every
//!   node's QUIC socket, with rules per directed pair of nodes (drop, loss,
//!   delay, duplicate, reorder), seeded randomness and per-link counters. It
//!   runs in-process or as the `testbed proxy` process with a JSON control API.
//! - [`cluster`]: the in-process multi-node harness, [`Cluster`]: N mesh
//!   nodes behind the proxy, faults by node name, crash/restart/leave, waits
//!   with deadlines that fail with every node's view, and a timeline.
//! - [`rollout`]: a rolling update of an in-process cluster under load
//!   (leave, restart with a higher app version, node after node), with the
//!   rules it must keep checked on the way; [`load`] is the entity it asks.
//! - [`sim`]: the deterministic simulation: every node's production cores
//!   in virtual time under a seeded nemesis, invariants after every step,
//!   replay from a seed and shrinking.

#![warn(missing_docs)]

pub mod cluster;
pub mod experiment;
pub mod load;
pub mod proxy;
pub mod rollout;
pub mod sim;

pub use cluster::{Cluster, Direction};
