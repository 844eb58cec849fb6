//! The values carried in frames.

use std::net::SocketAddr;

use membership::NodeId;
use serde::{Deserialize, Serialize};

/// Version of this wire format; a peer with another version is refused.
pub const PROTOCOL_VERSION: u16 = 3;

/// The dialer's first frame on a new connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the dialer.
    pub protocol_version: u16,
    /// Cluster name; a different cluster is refused.
    pub cluster: String,
    /// The dialer's identity; the name must be in its certificate.
    pub id: NodeId,
    /// Where the dialer can be reached (not the UDP source address).
    pub advertise: SocketAddr,
    /// The dialer's sequence number of this dial (grows per process): of
    /// two connections one node dialed, both ends keep the later one.
    pub dial: u64,
}

/// The acceptor's answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// Accepted; the acceptor's own identity and advertise address.
    Accepted {
        /// The acceptor's identity; the name must be in its certificate.
        id: NodeId,
        /// Where the acceptor can be reached.
        advertise: SocketAddr,
    },
    /// Refused, with the reason (also logged by the acceptor).
    Refused(String),
}

/// The first byte of every unidirectional stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamKind {
    /// A long-lived stream of envelope frames.
    Messages = 1,
    /// One chitchat gossip message.
    Gossip = 2,
}

impl StreamKind {
    /// The kind for a stream's first byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Messages),
            2 => Some(Self::Gossip),
            _ => None,
        }
    }
}

/// An error reported by the receiving node for an ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    /// No service of that name is registered at the receiver.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// The request did not decode as the service's message type.
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The service dropped the request without replying.
    #[error("the service dropped the request without replying")]
    NoReply,
    /// The reply could not be encoded or was too large.
    #[error("reply could not be sent: {0}")]
    ReplyFailed(String),
}

/// QUIC application error codes used when closing streams and connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// Graceful shutdown.
    Shutdown = 0,
    /// The handshake was refused (certificate, name, cluster or version).
    Refused = 1,
    /// A frame exceeded the maximum size.
    Oversized = 2,
    /// A frame did not decode.
    Malformed = 3,
    /// A unidirectional stream started with an unknown kind byte.
    UnknownStream = 4,
    /// A duplicate connection to the same peer was retired.
    Duplicate = 5,
}

impl From<ErrorCode> for quinn::VarInt {
    fn from(code: ErrorCode) -> Self {
        quinn::VarInt::from_u32(code as u32)
    }
}
