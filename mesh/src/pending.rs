//! The remote asks this node waits on, by id, until their answer arrives,
//! their peer's connection is lost, or they give up.

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::pipeline::Inbox;
use crate::sync::lock;
use crate::wire::RemoteError;

/// Why a remote ask got no reply body.
pub(crate) enum AskFailure {
    Remote(RemoteError),
    ConnectionLost,
}

/// How a remote ask ended: the reply's body, or why there is none.
pub(crate) type AskOutcome = Result<Vec<u8>, AskFailure>;

/// The waiting asks.
#[derive(Default)]
pub(crate) struct PendingAsks(Mutex<FxHashMap<u64, PendingAsk>>);

struct PendingAsk {
    peer: String,
    answer: Waiter,
}

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
    /// Registers ask `id` to `peer`; its outcome comes through the receiver.
    pub(crate) fn insert(&self, id: u64, peer: &str) -> oneshot::Receiver<AskOutcome> {
        let (answer, receiver) = oneshot::channel();
        self.insert_waiter(id, peer, Waiter::One(answer));
        receiver
    }

    /// Registers ask `id` to `peer`, sent by a pipeline: its outcome goes
    /// to the pipeline's `inbox`.
    pub(crate) fn insert_piped(&self, id: u64, peer: &str, inbox: &Arc<Inbox>) {
        self.insert_waiter(id, peer, Waiter::Pipeline(inbox.clone()));
    }

    fn insert_waiter(&self, id: u64, peer: &str, answer: Waiter) {
        let peer = peer.to_string();
        lock(&self.0).insert(id, PendingAsk { peer, answer });
    }

    /// Hands ask `id` its outcome. An answer to an ask that already gave up
    /// finds nothing: dropped.
    pub(crate) fn complete(&self, id: u64, outcome: AskOutcome) {
        let ask = lock(&self.0).remove(&id);
        if let Some(ask) = ask {
            ask.answer.deliver(id, outcome);
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

    /// Fails every ask to `peer`: its answers can no longer arrive.
    pub(crate) fn fail_peer(&self, peer: &str) {
        let mut pending = lock(&self.0);
        let lost: Vec<u64> = pending
            .iter()
            .filter(|(_, ask)| ask.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(ask) = pending.remove(&id) {
                ask.answer.deliver(id, Err(AskFailure::ConnectionLost));
            }
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
