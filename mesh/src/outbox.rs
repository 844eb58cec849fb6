//! The outgoing buffer of one peer: senders encode frames straight into it,
//! the peer's writer task takes everything buffered in one swap and writes it
//! with one call. No allocation per message, no channel hop.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::node::lock;
use crate::wire::frame::{encode_frame_into, FrameError};

/// Why a frame was not buffered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    #[error("the outgoing buffer is full")]
    Full,
    #[error(transparent)]
    Encode(#[from] FrameError),
}

pub(crate) struct Outbox {
    state: Mutex<Buffered>,
    ready: Notify,
    space: Notify,
    limit: usize,
    max_frame: usize,
    /// Replies dropped because the buffer was full (the asker times out).
    pub(crate) replies_dropped: AtomicU64,
}

#[derive(Default)]
struct Buffered {
    bytes: Vec<u8>,
    frames: u64,
}

impl Outbox {
    pub(crate) fn new(limit: usize, max_frame: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            ready: Notify::new(),
            space: Notify::new(),
            limit,
            max_frame,
            replies_dropped: AtomicU64::new(0),
        })
    }

    /// Appends one frame whose payload `write` produces, unless the buffer is full.
    pub(crate) fn push(
        &self,
        write: impl FnOnce(&mut Vec<u8>) -> postcard::Result<()>,
    ) -> Result<(), PushError> {
        let mut state = lock(&self.state);
        if state.bytes.len() >= self.limit {
            return Err(PushError::Full);
        }
        let was_empty = state.bytes.is_empty();
        encode_frame_into(&mut state.bytes, self.max_frame, write)?;
        state.frames += 1;
        drop(state);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Like [`Outbox::push`], waiting for room while the buffer is full.
    pub(crate) async fn push_wait(
        &self,
        write: impl Fn(&mut Vec<u8>) -> postcard::Result<()>,
    ) -> Result<(), FrameError> {
        loop {
            let space = self.space.notified();
            match self.push(&write) {
                Err(PushError::Full) => space.await,
                Err(PushError::Encode(error)) => return Err(error),
                Ok(()) => return Ok(()),
            }
        }
    }

    /// Waits until frames are buffered, then moves all of them into `batch`
    /// (which must be empty) and returns how many frames it holds.
    pub(crate) async fn take(&self, batch: &mut Vec<u8>) -> u64 {
        loop {
            {
                let mut state = lock(&self.state);
                if !state.bytes.is_empty() {
                    std::mem::swap(&mut state.bytes, batch);
                    let frames = std::mem::take(&mut state.frames);
                    drop(state);
                    self.space.notify_waiters();
                    return frames;
                }
            }
            self.ready.notified().await;
            // Let the tasks that woke us add more before we take: fewer, larger writes.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_taken_in_order_and_the_limit_holds() {
        let outbox = Outbox::new(10, 1024);
        outbox
            .push(|b| {
                b.extend_from_slice(b"abc");
                Ok(())
            })
            .unwrap();
        outbox
            .push(|b| {
                b.extend_from_slice(b"defghij");
                Ok(())
            })
            .unwrap();
        assert!(matches!(outbox.push(|_| Ok(())), Err(PushError::Full)));
        let mut batch = Vec::new();
        assert_eq!(outbox.take(&mut batch).await, 2);
        assert_eq!(&batch, b"\0\0\0\x03abc\0\0\0\x07defghij");
        assert!(outbox.push(|_| Ok(())).is_ok());
    }
}
