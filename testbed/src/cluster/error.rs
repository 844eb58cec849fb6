//! Errors of the harness. Their `Debug` form is their readable `Display` form,
//! so a test that ends with `?` or `.unwrap()` prints the full dump of what
//! every node saw instead of an escaped one-line string.

use std::fmt;
use std::time::Duration;

use crate::proxy::ProxyError;

/// A condition did not hold before its deadline.
pub struct WaitTimeout {
    /// What was waited for, as the caller described it.
    pub what: String,
    /// How long it was waited for.
    pub after: Duration,
    /// What every node saw at the deadline ([`Cluster::describe`](super::Cluster::describe)).
    pub dump: String,
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}\n{}",
            self.after, self.what, self.dump
        )
    }
}

impl fmt::Debug for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for WaitTimeout {}

/// Everything the harness can refuse or fail at.
#[derive(thiserror::Error)]
pub enum ClusterError {
    /// A node of that name is already part of the cluster.
    #[error("a node named {0:?} is already part of the cluster")]
    NodeExists(String),
    /// The proxy refused a rule or could not start a relay.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// Credentials could not be issued.
    #[error("TLS for node {name:?}: {source}")]
    Tls {
        /// The node.
        name: String,
        /// The cause.
        source: mesh::tls::TlsError,
    },
    /// No free loopback port could be reserved for a node.
    #[error("cannot reserve a loopback port: {0}")]
    Port(std::io::Error),
    /// A node did not start.
    #[error("node {name:?} did not start: {source}")]
    Start {
        /// The node.
        name: String,
        /// The cause.
        source: mesh::StartError,
    },
    /// A wait (for example the start's wait for convergence) timed out.
    #[error(transparent)]
    Timeout(#[from] WaitTimeout),
}

impl fmt::Debug for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
