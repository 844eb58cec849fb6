//! Errors of the node API.

use crate::wire::frame::FrameError;
use crate::wire::RemoteError;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {error}")]
    Bind {
        /// The listen address.
        addr: std::net::SocketAddr,
        /// The cause.
        error: std::io::Error,
    },
    /// Gossip could not start.
    #[error("gossip failed to start: {0}")]
    Gossip(String),
    /// The membership driver could not start.
    #[error("membership failed to start: {0}")]
    Membership(String),
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No member of that name is known.
    #[error("unknown peer {0:?}")]
    UnknownPeer(String),
    /// The local service does not exist.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// The message could not be encoded or exceeds the maximum frame size.
    #[error(transparent)]
    Encode(#[from] FrameError),
    /// The peer's outgoing queue is full.
    #[error("the queue to {0:?} is full")]
    Backpressure(String),
    /// The local service refused the message (wrong type).
    #[error(transparent)]
    Rejected(#[from] RemoteError),
    /// The node is shutting down.
    #[error("the node is shut down")]
    Shutdown,
}

/// Why an ask did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The request could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// No reply within the deadline.
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    /// The receiver answered with an error (for example an unknown service).
    #[error("remote error: {0}")]
    Remote(RemoteError),
    /// The connection to the peer was lost before the reply arrived.
    #[error("connection to {0:?} lost before the reply arrived")]
    ConnectionLost(String),
    /// The reply did not decode as the expected type.
    #[error("malformed reply: {0}")]
    MalformedReply(String),
}
