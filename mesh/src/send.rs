//! Sending: `tell` and `ask`, by peer name or through a [`PeerRef`].

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::oneshot;

use crate::error::{AskError, SendError};
use crate::incoming::AnswerReader;
use crate::node::{Node, Shared};
use crate::outbox::{Outbox, PushError, ServiceIds};
use crate::peers::Peer;
use crate::pending::{AskFailure, AskOutcome};
use crate::pipeline::Pipeline;
use crate::sync::read;
use crate::wire::{put_envelope, EnvelopeHeader, RemoteError};

/// A handle on one peer (or on this node) for repeated sends, with no lookup
/// per message. Cheap to clone. It stays valid across reconnects and restarts
/// of the peer: it names the peer, not a connection.
#[derive(Clone)]
pub struct PeerRef {
    shared: Arc<Shared>,
    name: Arc<str>,
    /// `None` for this node itself: delivered without serialization.
    peer: Option<Arc<Peer>>,
}

impl PeerRef {
    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Like [`Node::tell`].
    pub fn tell<M: Serialize + Send + 'static>(
        &self,
        service: &str,
        message: M,
    ) -> Result<(), SendError> {
        self.shared.check_running()?;
        match &self.peer {
            None => self.shared.tell_local(service, message),
            Some(peer) => tell_remote(&peer.outbox, &self.name, service, &message),
        }
    }

    /// Like [`PeerRef::tell`], but waits for room in the peer's outgoing
    /// buffer instead of failing with [`SendError::Backpressure`]: the way for
    /// a producer to run at the speed of the network.
    pub async fn tell_wait<M: Serialize + Send + 'static>(
        &self,
        service: &str,
        message: M,
    ) -> Result<(), SendError> {
        self.shared.check_running()?;
        let Some(peer) = &self.peer else {
            return self.shared.tell_local(service, message);
        };
        let outbox = &peer.outbox;
        let write = |buf: &mut Vec<u8>, ids: &mut ServiceIds| put_tell(buf, ids, service, &message);
        // Mostly there is room: no waiting state is built for that.
        match outbox.push(write) {
            Ok(()) => Ok(()),
            Err(PushError::Encode(error)) => Err(error.into()),
            Err(PushError::Full) => Ok(outbox.push_wait(write).await?),
        }
    }

    /// A [`Pipeline`] of asks to `service` on this peer, each answered
    /// within `timeout`: many requests in flight from one task.
    pub fn pipeline<M, R>(&self, service: &str, timeout: Duration) -> Pipeline<M, R>
    where
        M: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        Pipeline::new(self.shared.clone(), self.peer.clone(), service, timeout)
    }

    /// Like [`Node::ask`].
    pub async fn ask<M, R>(
        &self,
        service: &str,
        message: M,
        timeout: Duration,
    ) -> Result<R, AskError>
    where
        M: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        self.shared.check_running()?;
        match &self.peer {
            None => self.shared.ask_local(service, message, timeout).await,
            Some(peer) => {
                self.shared
                    .ask_remote(peer, service, message, timeout)
                    .await
            }
        }
    }
}

impl Node {
    /// A handle for sending to `peer` (which may be this node) without a
    /// lookup per message. Fails if no member of that name is known.
    pub fn peer(&self, peer: &str) -> Result<PeerRef, SendError> {
        let remote = if peer == self.shared.id.name {
            None
        } else {
            Some(self.with_peer(peer, Arc::clone)?)
        };
        Ok(PeerRef {
            shared: self.shared.clone(),
            name: peer.into(),
            peer: remote,
        })
    }

    /// Sends a one-way message to `service` on node `peer`. Messages from this
    /// node to one peer arrive in send order while nothing fails.
    pub fn tell<M: Serialize + Send + 'static>(
        &self,
        peer: &str,
        service: &str,
        message: M,
    ) -> Result<(), SendError> {
        self.shared.check_running()?;
        if peer == self.shared.id.name {
            return self.shared.tell_local(service, message);
        }
        self.with_peer(peer, |remote| {
            tell_remote(&remote.outbox, peer, service, &message)
        })?
    }

    /// Sends a request to `service` on node `peer` and waits up to `timeout`
    /// for the reply. Always ends: a reply, a remote error, or a timeout.
    pub async fn ask<M, R>(
        &self,
        peer: &str,
        service: &str,
        message: M,
        timeout: Duration,
    ) -> Result<R, AskError>
    where
        M: Serialize + Send + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        self.peer(peer)?.ask(service, message, timeout).await
    }

    /// Runs `f` on `peer` without cloning anything on the hot path.
    fn with_peer<T>(&self, peer: &str, f: impl FnOnce(&Arc<Peer>) -> T) -> Result<T, SendError> {
        if let Some(peer) = read(&self.shared.peers.0).get_ref(peer) {
            return Ok(f(peer));
        }
        let addr = self
            .members()
            .into_iter()
            .find(|m| m.id.name == peer)
            .map(|m| m.addr)
            .ok_or_else(|| SendError::UnknownPeer(peer.to_string()))?;
        Ok(f(&self.shared.peer(peer, Some(addr))))
    }
}

/// Appends one tell to `service`, named through the peer's numbers.
fn put_tell<M: Serialize>(
    buf: &mut Vec<u8>,
    ids: &mut ServiceIds,
    service: &str,
    message: &M,
) -> postcard::Result<()> {
    let header = EnvelopeHeader::Tell {
        service: ids.refer(service),
    };
    put_envelope(buf, &header, message)
}

fn tell_remote<M: Serialize>(
    outbox: &Outbox,
    peer: &str,
    service: &str,
    message: &M,
) -> Result<(), SendError> {
    outbox
        .push(|buf, ids| put_tell(buf, ids, service, message))
        .map_err(|error| match error {
            PushError::Full => SendError::Backpressure(peer.to_string()),
            PushError::Encode(error) => SendError::Encode(error),
        })
}

impl Shared {
    pub(crate) fn check_running(&self) -> Result<(), SendError> {
        if self.stopped.load(Ordering::Relaxed) {
            Err(SendError::Shutdown)
        } else {
            Ok(())
        }
    }

    fn tell_local<M: Send + 'static>(&self, service: &str, message: M) -> Result<(), SendError> {
        let handler = self
            .service(service)
            .ok_or_else(|| SendError::UnknownService(service.to_string()))?;
        handler.deliver_local(&self.local_name, Box::new(message), None)?;
        Ok(())
    }

    pub(crate) async fn ask_local<M, R>(
        &self,
        service: &str,
        message: M,
        timeout: Duration,
    ) -> Result<R, AskError>
    where
        M: Send + 'static,
        R: Send + 'static,
    {
        let handler = self
            .service(service)
            .ok_or_else(|| AskError::Remote(RemoteError::UnknownService(service.to_string())))?;
        let (reply, rx) = oneshot::channel();
        handler
            .deliver_local(&self.local_name, Box::new(message), Some(reply))
            .map_err(AskError::Remote)?;
        let reply: Box<dyn Any + Send> = tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| AskError::Timeout(timeout))?
            .map_err(|_| AskError::Remote(RemoteError::NoReply))?
            .map_err(AskError::Remote)?;
        reply.downcast::<R>().map(|r| *r).map_err(|_| {
            AskError::MalformedReply(format!("reply is not a {}", std::any::type_name::<R>()))
        })
    }

    async fn ask_remote<M, R>(
        &self,
        peer: &Peer,
        service: &str,
        message: M,
        timeout: Duration,
    ) -> Result<R, AskError>
    where
        M: Serialize,
        R: DeserializeOwned,
    {
        let id = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let answer = self.pending.insert(id, &peer.name);
        let registration = self.pending.registration(id);
        let outcome = tokio::time::timeout(timeout, async {
            peer.outbox
                .push_wait(|buf, ids| {
                    let header = EnvelopeHeader::Ask {
                        id,
                        service: ids.refer(service),
                    };
                    put_envelope(buf, &header, &message)
                })
                .await
                .map_err(SendError::from)?;
            Answer::new(self, peer, id, answer)
                .await
                .map_err(|_| AskError::ConnectionLost(peer.name.clone()))
        })
        .await
        .map_err(|_| AskError::Timeout(timeout))??;
        registration.release();
        let bytes = match outcome {
            Ok(bytes) => bytes,
            Err(AskFailure::Remote(error)) => return Err(AskError::Remote(error)),
            Err(AskFailure::ConnectionLost) => {
                return Err(AskError::ConnectionLost(peer.name.clone()))
            }
        };
        postcard::from_bytes(&bytes).map_err(|e| AskError::MalformedReply(e.to_string()))
    }
}

/// The answer to a remote ask: from the reader task or, while it is
/// the only ask waiting on its peer, read from the peer's stream by the ask
/// itself (see [`AnswerReader`]). With more asks in flight their answers come in
/// batches, which the reader task takes in one pass at no cost to the askers.
struct Answer<'a> {
    shared: &'a Shared,
    peer: &'a Peer,
    answer: oneshot::Receiver<AskOutcome>,
    reader: AnswerReader,
}

impl<'a> Answer<'a> {
    fn new(
        shared: &'a Shared,
        peer: &'a Peer,
        id: u64,
        answer: oneshot::Receiver<AskOutcome>,
    ) -> Self {
        peer.asks_waiting.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            peer,
            answer,
            reader: AnswerReader::new(id),
        }
    }
}

impl Future for Answer<'_> {
    type Output = Result<AskOutcome, oneshot::error::RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let pending = &this.shared.pending;
        if let Poll::Ready(answer) = Pin::new(&mut this.answer).poll(cx) {
            this.reader.leave(pending);
            return Poll::Ready(answer);
        }
        let id = this.reader.id();
        let Some(stream) = this.reader.stream(this.peer, pending) else {
            return Poll::Pending;
        };
        match stream.take_answers(pending, cx, id, &mut this.answer) {
            Some(answer) => {
                this.reader.answered();
                Poll::Ready(Ok(answer))
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        self.reader.leave(&self.shared.pending);
        self.peer.asks_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}
