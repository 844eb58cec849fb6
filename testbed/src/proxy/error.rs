//! Errors of the proxy.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::rule::RuleError;

/// Everything the proxy can refuse or fail at. A refused call changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A name that no node registered.
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    /// A node name that cannot be used.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidName {
        /// The refused name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Two nodes cannot share one real address: the relay tells nodes apart by it.
    #[error("address {addr} is already registered to node {owner:?}")]
    AddressTaken {
        /// The contested address.
        addr: SocketAddr,
        /// The node that holds it.
        owner: String,
    },
    /// A node appears on both sides of a partition.
    #[error("node {0:?} is on both sides of the partition")]
    BothSides(String),
    /// The rule is out of range.
    #[error("invalid rule: {0}")]
    InvalidRule(#[from] RuleError),
    /// A relay could not bind its public socket.
    #[error("relay for node {name:?} cannot bind {addr}: {source}")]
    RelayBind {
        /// The relay's node.
        name: String,
        /// The address it tried.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The control API could not bind its listener.
    #[error("control API cannot bind {addr}: {source}")]
    ControlBind {
        /// The address it tried.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The config file could not be read.
    #[error("cannot read config {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("invalid config {path}: {source}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: serde_json::Error,
    },
    /// The config file parsed but does not make sense.
    #[error("invalid config: {0}")]
    ConfigInvalid(String),
}
