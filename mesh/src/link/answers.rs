//! A waiter's turn at reading its link's messages stream for answers (see
//! [`super::incoming`]).

use std::sync::Arc;

use super::incoming::Incoming;
use super::Link;

/// One waiter's turn at reading its link's stream for answers: a lone ask
/// (`Answer` in `send.rs`) or a [`crate::Pipeline`], named by `id`. It
/// reads only while it is the only waiter on its link, and hands the stream
/// back to the reader task when it stops.
pub(crate) struct AnswerReader {
    id: u64,
    /// The stream this waiter read last, which may still wake it.
    reading: Option<Arc<Incoming>>,
}

impl AnswerReader {
    pub(crate) fn new(id: u64) -> Self {
        Self { id, reading: None }
    }

    /// The name under which this waiter reads the stream.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The stream to read, while this waiter is alone on `link`; with
    /// company it leaves the stream to the reader task.
    pub(crate) fn stream(&mut self, link: &Link) -> Option<&Arc<Incoming>> {
        if link.waiters() > 1 {
            self.leave(link);
            return None;
        }
        if self.reading.is_none() {
            self.reading = link.incoming();
        }
        self.reading.as_ref()
    }

    /// Stops reading the stream (see [`Incoming::leave`]).
    pub(crate) fn leave(&mut self, link: &Link) {
        if let Some(stream) = self.reading.take() {
            stream.leave(link.pending(), self.id);
        }
    }

    /// Forgets the stream once the waiter took its own answer, which left
    /// the stream to others already.
    pub(crate) fn answered(&mut self) {
        self.reading = None;
    }
}
