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

/// Service numbers a [`StreamKind::Messages`] stream may define.
pub const MAX_SERVICE_IDS: u32 = 1024;

/// How a frame names its target service. A sender numbers the services it
/// sends to a peer; the first frame to a service on a stream defines its
/// number, later ones carry only the number. Invariant: every number a frame
/// uses was defined earlier on the same stream, inline or by the
/// [`EnvelopeHeader::Services`] frame that opens a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceRef<'a> {
    /// By name, without a number (the sender's numbers ran out).
    Name(&'a str),
    /// By name, defining `id` for the rest of the stream.
    Define {
        /// The number later frames use.
        id: u32,
        /// The service's name.
        name: &'a str,
    },
    /// By a number defined earlier on this stream.
    Id(u32),
}

/// The header of a frame on a [`StreamKind::Messages`] stream; the rest of the
/// frame is the body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvelopeHeader<'a> {
    /// One-way message to a service; the body is the message.
    Tell {
        /// Target service.
        #[serde(borrow)]
        service: ServiceRef<'a>,
    },
    /// Request to a service; the body is the request.
    Ask {
        /// Correlation id, unique per sender.
        id: u64,
        /// Target service.
        #[serde(borrow)]
        service: ServiceRef<'a>,
    },
    /// Successful answer to an [`EnvelopeHeader::Ask`]; the body is the reply.
    Reply {
        /// Correlation id of the ask.
        id: u64,
    },
    /// Failed answer to an [`EnvelopeHeader::Ask`]; the body is empty.
    Failure {
        /// Correlation id of the ask.
        id: u64,
        /// What went wrong at the receiver.
        error: RemoteError,
    },
    /// The first frame of a stream from a sender that numbered services
    /// before: `names[i]` is service number `i`. The body is empty.
    Services {
        /// Every service name the sender has numbered, by number.
        #[serde(borrow)]
        names: Vec<&'a str>,
    },
}

/// The bytes `postcard` gives `EnvelopeHeader::Tell { service: ServiceRef::Id(id) }`
/// for `id < 128`: variant 0, variant 2, `id` as a one-byte varint. The
/// header of nearly every frame, so it is written and read without serde.
const TELL_BY_NUMBER: [u8; 2] = [0, 2];

impl<'a> EnvelopeHeader<'a> {
    /// Appends the header's `postcard` encoding.
    pub fn encode(&self, buf: &mut Vec<u8>) -> postcard::Result<()> {
        match self {
            EnvelopeHeader::Tell {
                service: ServiceRef::Id(id @ 0..=0x7f),
            } => {
                buf.extend_from_slice(&TELL_BY_NUMBER);
                buf.push(*id as u8);
                Ok(())
            }
            other => postcard::to_io(other, buf).map(|_| ()),
        }
    }

    /// Decodes the header at the start of `frame`; returns it and the body.
    pub fn decode(frame: &'a [u8]) -> postcard::Result<(Self, &'a [u8])> {
        match Self::tell_by_number(frame) {
            Some((id, body)) => Ok((
                EnvelopeHeader::Tell {
                    service: ServiceRef::Id(id),
                },
                body,
            )),
            None => postcard::take_from_bytes(frame),
        }
    }

    /// The service number and body of a frame that is a tell to a service
    /// number below 128 (nearly every frame), read without building a header.
    pub fn tell_by_number(frame: &[u8]) -> Option<(u32, &[u8])> {
        match frame.split_first_chunk::<3>() {
            Some(([kind, by, id @ 0..=0x7f], body)) if [*kind, *by] == TELL_BY_NUMBER => {
                Some((u32::from(*id), body))
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_header_codec_matches_postcard() {
        let headers = [0, 1, 0x7f, 0x80, 300, MAX_SERVICE_IDS - 1]
            .map(|id| EnvelopeHeader::Tell {
                service: ServiceRef::Id(id),
            })
            .into_iter()
            .chain([
                EnvelopeHeader::Tell {
                    service: ServiceRef::Define { id: 3, name: "x" },
                },
                EnvelopeHeader::Ask {
                    id: 9,
                    service: ServiceRef::Id(2),
                },
                EnvelopeHeader::Reply { id: 7 },
            ]);
        for header in headers {
            let mut ours = Vec::new();
            header.encode(&mut ours).unwrap();
            assert_eq!(ours, postcard::to_stdvec(&header).unwrap(), "{header:?}");
            ours.extend_from_slice(b"body");
            let (decoded, body) = EnvelopeHeader::decode(&ours).unwrap();
            assert_eq!((decoded, body), (header, &b"body"[..]));
        }
    }
}
