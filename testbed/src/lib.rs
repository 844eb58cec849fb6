//! The testbed: where the mesh's failure stories become tests.
//!
//! - [`proxy`]: a fault-injecting UDP proxy that stands in front of every
//!   node's QUIC socket, with rules per directed pair of nodes (drop, loss,
//!   delay, duplicate, reorder), seeded randomness and per-link counters. It
//!   runs in-process or as the `testbed proxy` process with a JSON control API.
//!
//! The multi-node harness (`Cluster`) is built on top of [`proxy`].

#![warn(missing_docs)]

pub mod proxy;
