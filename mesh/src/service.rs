//! Named services: typed handlers that peers reach with `tell` and `ask`.
//!
//! A handler is called once per message, in arrival order, on the task that
//! reads the sender's stream: this is what keeps the per-sender order. It must
//! not block; work that takes time belongs in a task it spawns, which answers
//! through the [`Request`]'s responder when done.

use std::any::Any;
use std::marker::PhantomData;

use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::wire::frame::encode_frame;
use crate::wire::{EnvelopeHeader, RemoteError};

/// What a reply channel carries: a value for local asks, bytes for remote ones.
pub(crate) type LocalReply = oneshot::Sender<Result<Box<dyn Any + Send>, RemoteError>>;

/// One incoming message and, for an ask, the way to answer it.
pub struct Request<M, R> {
    from: String,
    message: M,
    responder: Responder<R>,
}

impl<M, R: Serialize + Send + 'static> Request<M, R> {
    /// The name of the sending node.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// The message.
    pub fn message(&self) -> &M {
        &self.message
    }

    /// Whether the sender waits for a reply (an ask) or not (a tell).
    pub fn expects_reply(&self) -> bool {
        self.responder.target.is_some()
    }

    /// Answers the ask (does nothing for a tell).
    pub fn reply(self, reply: R) {
        self.responder.reply(reply);
    }

    /// The message and the responder, to answer later from another task.
    pub fn into_parts(self) -> (M, Responder<R>) {
        (self.message, self.responder)
    }
}

/// Answers one ask. Dropping it unanswered sends the asker an error at once.
pub struct Responder<R> {
    target: Option<ReplyTarget>,
    _reply: PhantomData<fn(R)>,
}

pub(crate) enum ReplyTarget {
    Local(LocalReply),
    Remote {
        queue: mpsc::Sender<Vec<u8>>,
        id: u64,
        max_frame: usize,
    },
}

impl<R: Serialize + Send + 'static> Responder<R> {
    pub(crate) fn new(target: Option<ReplyTarget>) -> Self {
        Self {
            target,
            _reply: PhantomData,
        }
    }

    /// Sends the reply.
    pub fn reply(mut self, reply: R) {
        match self.target.take() {
            None => {}
            Some(ReplyTarget::Local(tx)) => {
                let _ = tx.send(Ok(Box::new(reply)));
            }
            Some(ReplyTarget::Remote {
                queue,
                id,
                max_frame,
            }) => {
                let frame = encode_frame(max_frame, |buf| {
                    let buf = postcard::to_extend(&EnvelopeHeader::Reply { id }, buf)?;
                    postcard::to_extend(&reply, buf)
                })
                .or_else(|error| {
                    failure_frame(id, RemoteError::ReplyFailed(error.to_string()), max_frame)
                });
                if let Some(frame) = frame.ok() {
                    send_frame(queue, frame);
                }
            }
        }
    }
}

impl<R> Drop for Responder<R> {
    fn drop(&mut self) {
        match self.target.take() {
            None => {}
            Some(ReplyTarget::Local(tx)) => {
                let _ = tx.send(Err(RemoteError::NoReply));
            }
            Some(ReplyTarget::Remote {
                queue,
                id,
                max_frame,
            }) => {
                if let Ok(frame) = failure_frame(id, RemoteError::NoReply, max_frame) {
                    send_frame(queue, frame);
                }
            }
        }
    }
}

pub(crate) fn failure_frame(
    id: u64,
    error: RemoteError,
    max_frame: usize,
) -> Result<Vec<u8>, crate::wire::frame::FrameError> {
    encode_frame(max_frame, |buf| {
        postcard::to_extend(&EnvelopeHeader::Failure { id, error }, buf)
    })
}

/// Queues a frame for a peer, waiting for room in a task if the queue is full.
pub(crate) fn send_frame(queue: mpsc::Sender<Vec<u8>>, frame: Vec<u8>) {
    if let Err(mpsc::error::TrySendError::Full(frame)) = queue.try_send(frame) {
        tokio::spawn(async move {
            let _ = queue.send(frame).await;
        });
    }
}

/// A service with its types erased, as the registry holds it.
pub(crate) trait ErasedService: Send + Sync {
    /// Delivers a message from the local node; no serialization.
    fn deliver_local(
        &self,
        from: &str,
        message: Box<dyn Any + Send>,
        reply: Option<LocalReply>,
    ) -> Result<(), RemoteError>;

    /// Delivers an encoded message from a peer.
    fn deliver_remote(
        &self,
        from: &str,
        body: &[u8],
        reply: Option<ReplyTarget>,
    ) -> Result<(), (RemoteError, Option<ReplyTarget>)>;
}

pub(crate) struct TypedService<M, R, F> {
    handler: F,
    _types: PhantomData<fn(M) -> R>,
}

impl<M, R, F> TypedService<M, R, F> {
    pub(crate) fn new(handler: F) -> Self {
        Self {
            handler,
            _types: PhantomData,
        }
    }
}

impl<M, R, F> ErasedService for TypedService<M, R, F>
where
    M: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(Request<M, R>) + Send + Sync + 'static,
{
    fn deliver_local(
        &self,
        from: &str,
        message: Box<dyn Any + Send>,
        reply: Option<LocalReply>,
    ) -> Result<(), RemoteError> {
        let message = message.downcast::<M>().map_err(|_| {
            RemoteError::MalformedRequest(format!(
                "message is not a {}",
                std::any::type_name::<M>()
            ))
        })?;
        (self.handler)(Request {
            from: from.to_string(),
            message: *message,
            responder: Responder::new(reply.map(ReplyTarget::Local)),
        });
        Ok(())
    }

    fn deliver_remote(
        &self,
        from: &str,
        body: &[u8],
        reply: Option<ReplyTarget>,
    ) -> Result<(), (RemoteError, Option<ReplyTarget>)> {
        match postcard::from_bytes::<M>(body) {
            Ok(message) => {
                (self.handler)(Request {
                    from: from.to_string(),
                    message,
                    responder: Responder::new(reply),
                });
                Ok(())
            }
            Err(error) => Err((RemoteError::MalformedRequest(error.to_string()), reply)),
        }
    }
}
