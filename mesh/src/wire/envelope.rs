//! What a frame on a messages stream holds: an [`EnvelopeHeader`] naming its
//! service or the ask it answers, then the body, each encoded with `postcard`.

use serde::{Deserialize, Serialize};

use super::frame::put_postcard;
use super::messages::RemoteError;

/// Service numbers a [`StreamKind::Messages`](super::StreamKind::Messages) stream may define.
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

/// The header of a frame on a [`StreamKind::Messages`](super::StreamKind::Messages) stream; the rest of the
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
    /// An [`EnvelopeHeader::Ask`] made inside a traced span, with its W3C
    /// trace context: only a node built with the `otel` feature sends it
    /// (the last variant, so the encoding of the others does not change);
    /// a node without the feature serves it as a plain ask.
    TracedAsk {
        /// Correlation id, unique per sender.
        id: u64,
        /// Target service.
        #[serde(borrow)]
        service: ServiceRef<'a>,
        /// The caller's trace context: `traceparent` and, if any,
        /// `tracestate`, as W3C header name and value.
        #[serde(borrow)]
        context: Vec<(&'a str, &'a str)>,
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

/// Appends one envelope's payload: the header, then the message body.
pub fn put_envelope<M: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    header: &EnvelopeHeader<'_>,
    message: &M,
) -> postcard::Result<()> {
    header.encode(buf)?;
    put_postcard(buf, message)
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
                EnvelopeHeader::TracedAsk {
                    id: 9,
                    service: ServiceRef::Id(2),
                    context: vec![(
                        "traceparent",
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    )],
                },
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
