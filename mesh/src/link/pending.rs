//! The asks sent over one link that wait for their answer, by id, until it
//! arrives, the link's connection is lost, or they give up.

use std::sync::{Arc, Mutex};

use futures::task::AtomicWaker;
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::sync::lock;
use crate::wire::{EnvelopeHeader, RemoteError};

/// Why a remote ask got no reply body.
pub(crate) enum AskFailure {
    Remote(RemoteError),
    ConnectionLost,
}

/// How a remote ask ended: the reply's body, or why there is none.
pub(crate) type AskOutcome = Result<Vec<u8>, AskFailure>;

/// The ask that `header` answers and how, if it is an answer.
pub(crate) fn answer(header: EnvelopeHeader<'_>, body: &[u8]) -> Option<(u64, AskOutcome)> {
    match header {
        EnvelopeHeader::Reply { id } => Some((id, Ok(body.to_vec()))),
        EnvelopeHeader::Failure { id, error } => Some((id, Err(AskFailure::Remote(error)))),
        _ => None,
    }
}

/// The waiting asks of one link.
#[derive(Default)]
pub(crate) struct PendingAsks(Mutex<FxHashMap<u64, Waiter>>);

/// Where an ask's outcome goes.
enum Waiter {
    /// A single ask's future.
    One(oneshot::Sender<AskOutcome>),
    /// The inbox of the [`crate::Pipeline`] that sent it.
    Pipeline(Arc<Inbox>),
}

impl Waiter {
    fn deliver(self, id: u64, outcome: AskOutcome) {
        match self {
            Self::One(answer) => {
                let _ = answer.send(outcome);
            }
            Self::Pipeline(inbox) => inbox.put(id, outcome),
        }
    }
}

impl PendingAsks {
    /// Registers ask `id`; its outcome comes through the receiver.
    pub(crate) fn insert(&self, id: u64) -> oneshot::Receiver<AskOutcome> {
        let (answer, receiver) = oneshot::channel();
        lock(&self.0).insert(id, Waiter::One(answer));
        receiver
    }

    /// Registers ask `id`, sent by a pipeline: its outcome goes to the
    /// pipeline's `inbox`.
    pub(crate) fn insert_piped(&self, id: u64, inbox: &Arc<Inbox>) {
        lock(&self.0).insert(id, Waiter::Pipeline(inbox.clone()));
    }

    /// Hands ask `id` its outcome. An answer to an ask that already gave up
    /// finds nothing: dropped.
    pub(crate) fn complete(&self, id: u64, outcome: AskOutcome) {
        let waiter = lock(&self.0).remove(&id);
        if let Some(waiter) = waiter {
            waiter.deliver(id, outcome);
        }
    }

    /// Removes ask `id` (it gave up, or took its answer itself); whether it
    /// was still waiting.
    pub(crate) fn forget(&self, id: u64) -> bool {
        lock(&self.0).remove(&id).is_some()
    }

    /// A guard that forgets ask `id` when dropped, unless released (see
    /// [`Registration::release`]): an ask that gives up, fails to send or
    /// is dropped by its caller leaves nothing behind.
    pub(crate) fn registration(&self, id: u64) -> Registration<'_> {
        Registration {
            pending: self,
            id: Some(id),
        }
    }

    /// How many asks wait.
    pub(crate) fn len(&self) -> usize {
        lock(&self.0).len()
    }

    /// Fails every ask: the link's connection is lost, their answers can no
    /// longer arrive.
    pub(crate) fn fail_all(&self) {
        let lost = std::mem::take(&mut *lock(&self.0));
        for (id, waiter) in lost {
            waiter.deliver(id, Err(AskFailure::ConnectionLost));
        }
    }
}

/// See [`PendingAsks::registration`].
pub(crate) struct Registration<'a> {
    pending: &'a PendingAsks,
    id: Option<u64>,
}

impl Registration<'_> {
    /// Stops guarding the ask: its outcome came (which removed it), or
    /// another owner forgets it.
    pub(crate) fn release(mut self) {
        self.id = None;
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.pending.forget(id);
        }
    }
}

/// Where the answers to a pipeline's asks are put, by whoever reads them.
#[derive(Default)]
pub(crate) struct Inbox {
    answers: Mutex<Vec<(u64, AskOutcome)>>,
    waker: AtomicWaker,
}

impl Inbox {
    /// Puts the outcome of ask `id`, waking the pipeline if it waits.
    pub(crate) fn put(&self, id: u64, outcome: AskOutcome) {
        lock(&self.answers).push((id, outcome));
        self.waker.wake();
    }

    /// Moves every answer put so far to the end of `ready`.
    pub(crate) fn take_into(&self, ready: &mut std::collections::VecDeque<(u64, AskOutcome)>) {
        ready.extend(lock(&self.answers).drain(..));
    }

    /// Whether no answer waits.
    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.answers).is_empty()
    }

    /// The pipeline's task no longer needs waking for what it put itself.
    pub(crate) fn forget_waker(&self) {
        drop(self.waker.take());
    }

    /// Wakes `waker` at the next answer put.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }
}
