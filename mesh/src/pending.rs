//! The remote asks this node waits on, by id, until their answer arrives,
//! their peer's connection is lost, or they give up.

use std::sync::Mutex;

use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::node::lock;
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
    answer: oneshot::Sender<AskOutcome>,
}

impl PendingAsks {
    /// Registers ask `id` to `peer`; its outcome comes through the receiver.
    pub(crate) fn insert(&self, id: u64, peer: &str) -> oneshot::Receiver<AskOutcome> {
        let (answer, receiver) = oneshot::channel();
        let peer = peer.to_string();
        lock(&self.0).insert(id, PendingAsk { peer, answer });
        receiver
    }

    /// Hands ask `id` its outcome. An answer to an ask that already gave up
    /// finds nothing: dropped.
    pub(crate) fn complete(&self, id: u64, outcome: AskOutcome) {
        if let Some(ask) = lock(&self.0).remove(&id) {
            let _ = ask.answer.send(outcome);
        }
    }

    /// Removes ask `id` (it gave up, or took its answer itself).
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.0).remove(&id);
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
                let _ = ask.answer.send(Err(AskFailure::ConnectionLost));
            }
        }
    }
}
