//! The wire format between mesh nodes.
//!
//! Every QUIC connection starts with a handshake on the first bidirectional
//! stream: the dialer sends a [`Hello`], the acceptor answers a [`HelloReply`].
//! Both are length-prefixed frames (see [`frame`]) holding `postcard`-encoded
//! values. After the handshake each side opens unidirectional streams whose
//! first byte says what they carry ([`StreamKind`]):
//!
//! - [`StreamKind::Messages`]: one long-lived stream per connection and
//!   direction, a sequence of frames, each an [`EnvelopeHeader`] followed by the
//!   message body (the `postcard` encoding of the service's message type).
//!   Services are named once per stream and numbered after ([`ServiceRef`]).
//! - [`StreamKind::Gossip`]: one stream per chitchat message, which is the rest
//!   of the stream in chitchat's own codec.
//!
//! A frame that is larger than the configured maximum, or that does not decode,
//! closes that stream with an [`ErrorCode`]; the connection and the node live on.

pub mod envelope;
pub mod frame;
mod messages;

pub use envelope::{put_envelope, EnvelopeHeader, ServiceRef, MAX_SERVICE_IDS};
pub use messages::{ErrorCode, Hello, HelloReply, RemoteError, StreamKind, PROTOCOL_VERSION};
