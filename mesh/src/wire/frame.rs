//! Length-prefixed frames: a big-endian `u32` payload length, then the payload.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use quinn::RecvStream;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::io::poll_read_buf;

/// Bytes in the length prefix of every frame.
pub const LENGTH_PREFIX: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The payload is larger than the allowed maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    Oversized {
        /// The announced or attempted payload length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The payload did not decode.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    /// The stream ended or failed.
    #[error("stream error: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// The stream failed.
    #[error("stream error: {0}")]
    Stream(#[from] std::io::Error),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The stream could not be written.
    #[error("stream error: {0}")]
    Write(#[from] quinn::WriteError),
}

/// Appends one frame to `buf`, its payload written by `write_payload`. On error
/// `buf` is left as it was.
pub fn encode_frame_into(
    buf: &mut Vec<u8>,
    max: usize,
    write_payload: impl FnOnce(&mut Vec<u8>) -> postcard::Result<()>,
) -> Result<(), FrameError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; LENGTH_PREFIX]);
    let written = write_payload(buf).map_err(FrameError::from).and_then(|()| {
        let len = buf.len() - start - LENGTH_PREFIX;
        check_len(len, max)?;
        Ok(len)
    });
    match written {
        Ok(len) => {
            buf[start..start + LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
            Ok(())
        }
        Err(error) => {
            buf.truncate(start);
            Err(error)
        }
    }
}

/// Encodes one frame, its payload written by `write_payload`.
pub fn encode_frame(
    max: usize,
    write_payload: impl FnOnce(&mut Vec<u8>) -> postcard::Result<()>,
) -> Result<Vec<u8>, FrameError> {
    let mut frame = Vec::with_capacity(128);
    encode_frame_into(&mut frame, max, write_payload)?;
    Ok(frame)
}

/// Appends the `postcard` encoding of `value` to `buf`.
pub fn put_postcard<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> postcard::Result<()> {
    postcard::to_io(value, buf).map(|_| ())
}

/// Encodes one frame holding the `postcard` encoding of `value`.
pub fn encode_value<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    encode_frame(max, |buf| put_postcard(buf, value))
}

fn check_len(len: usize, max: usize) -> Result<(), FrameError> {
    if len > max || len > u32::MAX as usize {
        return Err(FrameError::Oversized { len, max });
    }
    Ok(())
}

/// Reads frames from a stream, many per read call.
pub struct FrameReader {
    recv: RecvStream,
    buf: BytesMut,
    /// Bytes of `buf` that belong to the frame returned last.
    consumed: usize,
    max: usize,
}

/// Bytes asked of the stream per read.
const READ_CHUNK: usize = 64 * 1024;

impl FrameReader {
    /// A reader of frames of at most `max` bytes from `recv`.
    pub fn new(recv: RecvStream, max: usize) -> Self {
        Self {
            recv,
            buf: BytesMut::new(),
            consumed: 0,
            max,
        }
    }

    /// The next frame's payload, or `None` when the stream ended cleanly
    /// between frames. An oversized length prefix fails before its payload is read.
    pub async fn next(&mut self) -> Result<Option<&[u8]>, FrameError> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await?;
        Ok(self.last())
    }

    /// Like [`FrameReader::next`]; on `Ready(Ok(true))` the frame is
    /// [`FrameReader::last`], on `Ready(Ok(false))` the stream ended. On
    /// `Pending`, the stream wakes `cx` when more arrives.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, FrameError>> {
        self.buf.advance(std::mem::take(&mut self.consumed));
        loop {
            if let Some(len) = announced_len(&self.buf) {
                check_len(len, self.max)?;
                if self.buf.len() >= LENGTH_PREFIX + len {
                    self.consumed = LENGTH_PREFIX + len;
                    return Poll::Ready(Ok(true));
                }
                self.buf.reserve(LENGTH_PREFIX + len - self.buf.len());
            }
            self.buf.reserve(READ_CHUNK);
            if ready!(poll_read_buf(Pin::new(&mut self.recv), cx, &mut self.buf))? == 0 {
                return Poll::Ready(if self.buf.is_empty() {
                    Ok(false)
                } else {
                    Err(FrameError::Truncated)
                });
            }
        }
    }

    /// The payload of the frame returned last, until the next read.
    pub fn last(&self) -> Option<&[u8]> {
        (self.consumed > 0).then(|| &self.buf[LENGTH_PREFIX..self.consumed])
    }

    /// Puts the frame returned last back: the next read returns it again.
    pub fn put_back(&mut self) {
        self.consumed = 0;
    }

    /// Whether [`FrameReader::next`] has a whole frame at hand, without reading.
    pub fn has_frame(&self) -> bool {
        let buffered = &self.buf[self.consumed..];
        announced_len(buffered).is_some_and(|len| buffered.len() >= LENGTH_PREFIX + len)
    }

    /// Asks the peer to stop sending on this stream, with `code`.
    pub fn stop(&mut self, code: quinn::VarInt) {
        let _ = self.recv.stop(code);
    }
}

/// The payload length that `buffered` announces, once its prefix is there.
fn announced_len(buffered: &[u8]) -> Option<usize> {
    let prefix = buffered.first_chunk::<LENGTH_PREFIX>()?;
    Some(u32::from_be_bytes(*prefix) as usize)
}

/// Reads one frame and decodes it as a `T`. A clean end of stream is an error here.
pub async fn read_value<T: DeserializeOwned>(
    recv: &mut RecvStream,
    max: usize,
) -> Result<T, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX];
    recv.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    check_len(len, max)?;
    let mut payload = vec![0; len];
    recv.read_exact(&mut payload).await?;
    Ok(postcard::from_bytes(&payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_payload_length() {
        let frame = encode_value(&("abc", 7u8), 1024).unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let (s, n): (&str, u8) = postcard::from_bytes(&frame[4..]).unwrap();
        assert_eq!((s, n), ("abc", 7));
    }

    #[test]
    fn a_failed_encoding_leaves_the_buffer_as_it_was() {
        let mut buf = b"keep".to_vec();
        assert!(encode_frame_into(&mut buf, 10, |b| put_postcard(b, &[1u8; 100][..])).is_err());
        assert_eq!(buf, b"keep");
        encode_frame_into(&mut buf, 10, |b| put_postcard(b, &7u8)).unwrap();
        assert_eq!(buf, b"keep\0\0\0\x01\x07");
    }

    #[test]
    fn oversized_values_are_refused() {
        let err = encode_value(&vec![1u8; 100], 10).unwrap_err();
        assert!(matches!(err, FrameError::Oversized { max: 10, .. }));
        assert!(encode_value(&vec![1u8; 5], 10).is_ok());
    }
}
