//! Sending: `tell` and `ask`, by peer name or through a [`PeerRef`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::oneshot;

use crate::error::{AskError, SendError};
use crate::link::answers::AnswerReader;
use crate::link::outbox::{PushError, ServiceIds};
use crate::link::pending::{AskFailure, AskOutcome};
use crate::link::Link;
use crate::node::Node;
use crate::pipeline::Pipeline;
use crate::wire::{put_envelope, EnvelopeHeader};

/// A handle on one peer (or on this node) for repeated sends, with no lookup
/// per message. Cheap to clone. It stays valid across reconnects and restarts
/// of the peer: it names the peer, not a connection.
#[derive(Clone)]
pub struct PeerRef {
    node: Node,
    name: Arc<str>,
    /// `None` for this node itself: delivered without serialization.
    link: Option<Arc<Link>>,
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
        self.node.check_running()?;
        match &self.link {
            None => self.node.services().tell_local(service, message),
            Some(link) => tell_remote(link, &self.name, service, &message),
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
        self.node.check_running()?;
        let Some(link) = &self.link else {
            return self.node.services().tell_local(service, message);
        };
        let outbox = link.outbox();
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
        Pipeline::new(self.node.clone(), self.link.clone(), service, timeout)
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
        self.node.check_running()?;
        match &self.link {
            None => {
                let services = self.node.services();
                services.ask_local(service, message, timeout).await
            }
            Some(link) => ask_remote(&self.node, link, service, message, timeout).await,
        }
    }
}

impl Node {
    /// A handle for sending to `peer` (which may be this node) without a
    /// lookup per message. Fails if no member of that name is known.
    pub fn peer(&self, peer: &str) -> Result<PeerRef, SendError> {
        let link = if peer == self.id().name {
            None
        } else {
            Some(self.with_link(peer, Arc::clone)?)
        };
        Ok(PeerRef {
            node: self.clone(),
            name: peer.into(),
            link,
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
        self.check_running()?;
        if peer == self.id().name {
            return self.services().tell_local(service, message);
        }
        self.with_link(peer, |link| tell_remote(link, peer, service, &message))?
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
    link: &Link,
    peer: &str,
    service: &str,
    message: &M,
) -> Result<(), SendError> {
    link.outbox()
        .push(|buf, ids| put_tell(buf, ids, service, message))
        .map_err(|error| match error {
            PushError::Full => {
                link.metrics().sends_refused.inc();
                SendError::Backpressure(peer.to_string())
            }
            PushError::Encode(error) => SendError::Encode(error),
        })
}

async fn ask_remote<M, R>(
    node: &Node,
    link: &Link,
    service: &str,
    message: M,
    timeout: Duration,
) -> Result<R, AskError>
where
    M: Serialize,
    R: DeserializeOwned,
{
    // The remote handler's span continues this one (feature `otel`).
    #[cfg(feature = "otel")]
    let span = tracing::info_span!("mesh.ask", peer = link.name(), service);
    #[cfg(feature = "otel")]
    let trace = crate::otel::context_of(&span);
    let id = node.next_ask_id();
    let metrics = link.metrics();
    metrics.asks.inc();
    let started = Instant::now();
    let pending = link.pending();
    let answer = pending.insert(id);
    let registration = pending.registration(id);
    let outcome = tokio::time::timeout(timeout, async {
        link.outbox()
            .push_wait(|buf, ids| {
                let service = ids.refer(service);
                #[cfg(feature = "otel")]
                if !trace.is_empty() {
                    let context = trace.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                    let header = EnvelopeHeader::TracedAsk {
                        id,
                        service,
                        context: context.collect(),
                    };
                    return put_envelope(buf, &header, &message);
                }
                put_envelope(buf, &EnvelopeHeader::Ask { id, service }, &message)
            })
            .await
            .map_err(SendError::from)?;
        Answer::new(link, id, answer)
            .await
            .map_err(|_| AskError::ConnectionLost(link.name().to_string()))
    })
    .await
    .map_err(|_| {
        metrics.ask_timeouts.inc();
        AskError::Timeout(timeout)
    })??;
    registration.release();
    metrics.ask_duration.observe(started.elapsed());
    let bytes = match outcome {
        Ok(bytes) => bytes,
        Err(AskFailure::Remote(error)) => return Err(AskError::Remote(error)),
        Err(AskFailure::ConnectionLost) => {
            return Err(AskError::ConnectionLost(link.name().to_string()))
        }
    };
    postcard::from_bytes(&bytes).map_err(|e| AskError::MalformedReply(e.to_string()))
}

/// The answer to a remote ask: from the reader task or, while it is
/// the only ask waiting on its peer, read from the peer's stream by the ask
/// itself (see [`AnswerReader`]). With more asks in flight their answers come in
/// batches, which the reader task takes in one pass at no cost to the askers.
struct Answer<'a> {
    link: &'a Link,
    answer: oneshot::Receiver<AskOutcome>,
    reader: AnswerReader,
}

impl<'a> Answer<'a> {
    fn new(link: &'a Link, id: u64, answer: oneshot::Receiver<AskOutcome>) -> Self {
        link.start_waiting();
        Self {
            link,
            answer,
            reader: AnswerReader::new(id),
        }
    }
}

impl Future for Answer<'_> {
    type Output = Result<AskOutcome, oneshot::error::RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let link = this.link;
        if let Poll::Ready(answer) = Pin::new(&mut this.answer).poll(cx) {
            this.reader.leave(link);
            return Poll::Ready(answer);
        }
        let id = this.reader.id();
        let Some(stream) = this.reader.stream(link) else {
            return Poll::Pending;
        };
        match stream.take_answers(link.pending(), cx, id, &mut this.answer) {
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
        self.reader.leave(self.link);
        self.link.stop_waiting();
    }
}
