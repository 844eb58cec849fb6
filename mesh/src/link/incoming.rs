//! A peer's messages stream as this node reads it, shared by the stream's
//! reader task and the asks that wait for answers on it.
//!
//! The reader task serves every frame. An ask still waiting for its answer
//! may also read the stream itself: it takes the answers (replies and
//! failures) at the stream's head and completes their asks, its own
//! included. The connection then wakes the asker directly, not a reader
//! task that wakes the asker: one task less between a reply's packet and
//! the code waiting for it, which on a multi-threaded runtime is the
//! difference between staying on one worker and waking another. Only an
//! ask alone in flight to its peer does this (see [`super::answers`]):
//! many asks get their answers in batches, which the reader task takes in
//! one pass, and askers taking turns at the stream would cost them more.
//! A [`crate::Pipeline`] counts as one ask: while it is alone it reads the
//! answers to all its requests, which it puts in its own inbox.
//!
//! Invariants:
//! - Frames are taken strictly in order, one reader at a time (the lock).
//!   An ask takes only answers, and stops at the first frame that is not
//!   one, which it leaves for the reader task; so everything a peer sent
//!   before an answer has been delivered when the answer is seen.
//! - The stream wakes one waker: that of whoever last found it empty. An
//!   ask that leaves while its waker is the one registered (answered by
//!   someone else, timed out, or dropped) registers the reader task's in its
//!   place, so the stream is never left without a reader to wake.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::oneshot;

use super::pending::{answer, AskOutcome, PendingAsks};
use crate::sync::lock;
use crate::wire::frame::{FrameError, FrameReader};
use crate::wire::EnvelopeHeader;

/// One messages stream from a peer.
pub(crate) struct Incoming {
    core: Mutex<Core>,
}

/// The stream and who will be woken when it has more.
pub(crate) struct Core {
    pub(crate) frames: FrameReader,
    /// The reader task's waker.
    task: Waker,
    /// The ask whose waker the stream holds, if not the reader task's.
    registered_ask: Option<u64>,
}

impl Incoming {
    /// The stream read through `frames`, served by the task that `task` wakes.
    pub(crate) fn new(frames: FrameReader, task: Waker) -> Arc<Self> {
        Arc::new(Self {
            core: Mutex::new(Core {
                frames,
                task,
                registered_ask: None,
            }),
        })
    }

    /// For the reader task: the stream, to read every frame from.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        lock(&self.core)
    }

    /// For ask `id`, still waiting on `answer`: takes the answers at the
    /// stream's head, unless someone else is reading. Returns the ask's own
    /// answer if it was among them; if not, the stream wakes `cx` when more
    /// arrives (until another reader finds it empty).
    pub(crate) fn take_answers(
        &self,
        pending: &PendingAsks,
        cx: &mut Context<'_>,
        id: u64,
        answer: &mut oneshot::Receiver<AskOutcome>,
    ) -> Option<AskOutcome> {
        let mut core = self.core.try_lock().ok()?;
        core.take_answers(pending, Some((cx, id, Some(answer))))
    }

    /// Like [`Incoming::take_answers`], for a pipeline's asks, whose
    /// answers go to its inbox like any other (see [`crate::Pipeline`]);
    /// `reader` names the pipeline as the stream's reader.
    pub(crate) fn read_answers(&self, pending: &PendingAsks, cx: &mut Context<'_>, reader: u64) {
        if let Ok(mut core) = self.core.try_lock() {
            core.take_answers(pending, Some((cx, reader, None)));
        }
    }

    /// Whichever ask the stream would wake, it wakes the reader task
    /// instead, after the answers at its head are taken: for a second
    /// waiter, which must not depend on the first being polled again.
    pub(crate) fn hand_back(&self, pending: &PendingAsks) {
        let mut core = lock(&self.core);
        if core.registered_ask.is_some() {
            core.take_answers(pending, None);
        }
    }

    /// Ask `id` no longer waits: if the stream would wake it, it wakes the
    /// reader task instead.
    pub(crate) fn leave(&self, pending: &PendingAsks, id: u64) {
        let mut core = lock(&self.core);
        if core.registered_ask == Some(id) {
            core.take_answers(pending, None);
        }
    }
}

impl Core {
    /// Reads the next frame, as the reader task or as ask `asker`. On
    /// `Pending` the stream wakes `cx`, which must be that reader's.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        asker: Option<u64>,
    ) -> Poll<Result<bool, FrameError>> {
        let polled = self.frames.poll_next(cx);
        if polled.is_pending() {
            self.registered_ask = asker;
        }
        polled
    }

    /// Takes answers from the stream's head, completing their asks, until
    /// it is empty or holds a frame for the reader task. With an `asker`
    /// (its context, id and, for a single ask, its receiver), the stream
    /// wakes the asker while it still waits, and a single ask's own answer
    /// is returned rather than sent; once answered, or without an asker,
    /// the stream wakes the reader task.
    fn take_answers(
        &mut self,
        pending: &PendingAsks,
        mut asker: Option<(
            &mut Context<'_>,
            u64,
            Option<&mut oneshot::Receiver<AskOutcome>>,
        )>,
    ) -> Option<AskOutcome> {
        let task = self.task.clone();
        let mut task_cx = Context::from_waker(&task);
        let mut own = None;
        loop {
            let polled = match asker.as_mut() {
                Some((cx, id, _)) if own.is_none() => self.poll_next(cx, Some(*id)),
                _ => self.poll_next(&mut task_cx, None),
            };
            let answer = match polled {
                Poll::Pending => return own,
                Poll::Ready(Ok(true)) => self.frames.last().and_then(answer_in),
                Poll::Ready(_) => None,
            };
            let Some((id, outcome)) = answer else {
                // A frame (or the end) for the reader task to serve.
                self.frames.put_back();
                self.registered_ask = None;
                task.wake();
                return own;
            };
            match asker.as_mut() {
                Some((_, own_id, Some(receiver))) if *own_id == id => {
                    // Closed first, so that dropping the sender does not
                    // wake the task that is running this.
                    receiver.close();
                    pending.forget(id);
                    own = Some(outcome);
                }
                _ => pending.complete(id, outcome),
            }
        }
    }
}

/// The ask a frame answers and how, if it is an answer.
fn answer_in(frame: &[u8]) -> Option<(u64, AskOutcome)> {
    let (header, body) = EnvelopeHeader::decode(frame).ok()?;
    answer(header, body)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::testing::loopback_connection;
    use crate::wire::frame::encode_frame;
    use crate::wire::put_envelope;
    use crate::wire::ServiceRef;

    /// A waker that counts how often it was woken.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Wakes {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn frame(header: EnvelopeHeader<'_>, body: u32) -> Vec<u8> {
        encode_frame(1024, |buf| put_envelope(buf, &header, &body)).unwrap()
    }

    fn reply(id: u64) -> Vec<u8> {
        frame(EnvelopeHeader::Reply { id }, id as u32 * 10)
    }

    fn tell() -> Vec<u8> {
        let service = ServiceRef::Name("svc");
        frame(EnvelopeHeader::Tell { service }, 7)
    }

    /// A stream from a loopback peer, read through an [`Incoming`], with
    /// ask 1 waiting on it as the reader the stream wakes.
    struct WaitingAsk {
        send: quinn::SendStream,
        incoming: Arc<Incoming>,
        pending: PendingAsks,
        own: oneshot::Receiver<AskOutcome>,
        /// Wakes of the reader task, and of the ask.
        task: Arc<Wakes>,
        asker: Arc<Wakes>,
        _open: (quinn::Connection, quinn::Connection, [quinn::Endpoint; 2]),
    }

    impl WaitingAsk {
        async fn new() -> Self {
            let (client, server, endpoints) = loopback_connection().await;
            let mut send = client.open_uni().await.unwrap();
            send.write_all(&tell()).await.unwrap();
            let recv = server.accept_uni().await.unwrap();
            let task = Arc::new(Wakes::default());
            let incoming = Incoming::new(FrameReader::new(recv, 1024), Waker::from(task.clone()));
            // The first frame only opened the stream.
            let opened = std::future::poll_fn(|cx| incoming.lock().poll_next(cx, None)).await;
            assert!(opened.unwrap());
            let pending = PendingAsks::default();
            let own = pending.insert(1);
            let mut ask = Self {
                send,
                incoming,
                pending,
                own,
                task,
                asker: Arc::new(Wakes::default()),
                _open: (client, server, endpoints),
            };
            assert!(ask.take_answers().is_none(), "nothing sent yet");
            ask
        }

        fn take_answers(&mut self) -> Option<AskOutcome> {
            let waker = Waker::from(self.asker.clone());
            let mut cx = Context::from_waker(&waker);
            self.incoming
                .take_answers(&self.pending, &mut cx, 1, &mut self.own)
        }
    }

    #[tokio::test]
    async fn an_ask_takes_the_answers_at_the_head_up_to_a_frame_for_the_reader() {
        let mut ask = WaitingAsk::new().await;
        let mut before = ask.pending.insert(2);
        let mut after = ask.pending.insert(3);

        let frames = [reply(2), reply(1), tell(), reply(3)].concat();
        ask.send.write_all(&frames).await.unwrap();
        let mut answer = None;
        while answer.is_none() {
            let wakes = ask.asker.count();
            until("the stream to wake the asker", || ask.asker.count() > wakes).await;
            answer = ask.take_answers();
        }
        let body = answer.unwrap().ok().expect("a reply");
        assert_eq!(postcard::from_bytes::<u32>(&body).unwrap(), 10);
        assert!(
            matches!(before.try_recv(), Ok(Ok(_))),
            "answered in passing"
        );
        assert!(after.try_recv().is_err(), "behind a frame for the reader");
        assert_eq!(ask.task.count(), 1, "the reader task woken for its frame");

        let mut core = ask.incoming.lock();
        let mut task_cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            core.poll_next(&mut task_cx, None),
            Poll::Ready(Ok(true))
        ));
        let head = core.frames.last().unwrap();
        let (header, _) = EnvelopeHeader::decode(head).unwrap();
        assert!(matches!(header, EnvelopeHeader::Tell { .. }), "{header:?}");
    }

    #[tokio::test]
    async fn an_ask_that_leaves_hands_the_stream_back_to_the_reader_task() {
        let mut ask = WaitingAsk::new().await;
        ask.incoming.leave(&ask.pending, 1);

        ask.send.write_all(&tell()).await.unwrap();
        let task = ask.task.clone();
        until("the stream to wake the reader task", || task.count() > 0).await;
        assert_eq!(ask.asker.count(), 0, "the ask that left is not woken");
    }
}
