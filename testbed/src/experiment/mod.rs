//! Partition experiments on real processes: `testbed run SCENARIO.toml`.
//!
//! - [`scenario`]: the TOML file: nodes, workload, timed faults.
//! - [`demo`]: the service under test, hosted by `testbed node`: a sharded
//!   entity whose state lives in an append-only file per entity ([`store`]).
//! - [`runner`]: starts the node processes behind relays of the fault proxy,
//!   runs clients against every node, applies the faults, records the
//!   [`history`] and samples every node's admin API.
//! - [`checker`]: linearizability per key (Wing-Gong-Lowe, as Porcupine),
//!   the store's evidence, acknowledged writes and recovery.
//! - [`report`]: `report.json` and a self-contained `report.html`.

pub mod checker;
pub mod demo;
pub mod history;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod store;
pub mod synthetic;

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong reading, checking or writing an experiment's files.
#[derive(Debug, Error)]
pub enum ExperimentError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The history breaks its own rules.
    #[error("malformed history: {0}")]
    MalformedHistory(String),
}
