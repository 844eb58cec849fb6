//! Length-prefixed frames: a big-endian `u32` payload length, then the payload.

use quinn::RecvStream;
use serde::{de::DeserializeOwned, Serialize};

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
    /// The stream could not be written.
    #[error("stream error: {0}")]
    Write(#[from] quinn::WriteError),
}

/// Encodes one frame whose payload `write_payload` appends to the vector it is
/// given (one allocation, no copy of the payload).
pub fn encode_frame(
    max: usize,
    write_payload: impl FnOnce(Vec<u8>) -> postcard::Result<Vec<u8>>,
) -> Result<Vec<u8>, FrameError> {
    let mut frame = write_payload(vec![0; LENGTH_PREFIX])?;
    let len = frame.len() - LENGTH_PREFIX;
    check_len(len, max)?;
    frame[..LENGTH_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(frame)
}

/// Encodes one frame holding the `postcard` encoding of `value`.
pub fn encode_value<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    encode_frame(max, |buf| postcard::to_extend(value, buf))
}

fn check_len(len: usize, max: usize) -> Result<(), FrameError> {
    if len > max || len > u32::MAX as usize {
        return Err(FrameError::Oversized { len, max });
    }
    Ok(())
}

/// Reads the next frame's payload into `buf` (replacing its contents).
/// Returns `Ok(false)` when the stream ended cleanly before a new frame began.
pub async fn read_frame(
    recv: &mut RecvStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<bool, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    check_len(len, max)?;
    buf.clear();
    buf.resize(len, 0);
    recv.read_exact(buf).await?;
    Ok(true)
}

/// Reads one frame and decodes it as a `T`. A clean end of stream is an error here.
pub async fn read_value<T: DeserializeOwned>(
    recv: &mut RecvStream,
    max: usize,
) -> Result<T, FrameError> {
    let mut buf = Vec::new();
    if !read_frame(recv, &mut buf, max).await? {
        return Err(FrameError::Read(quinn::ReadExactError::FinishedEarly(0)));
    }
    Ok(postcard::from_bytes(&buf)?)
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
    fn oversized_values_are_refused() {
        let err = encode_value(&vec![1u8; 100], 10).unwrap_err();
        assert!(matches!(err, FrameError::Oversized { max: 10, .. }));
        assert!(encode_value(&vec![1u8; 5], 10).is_ok());
    }
}
