//! Named services: typed handlers that peers reach with `tell` and `ask`.
//!
//! A handler is called once per message, in arrival order, on the task that
//! reads the sender's stream: this is what keeps the per-sender order. It must
//! not block; work that takes time belongs in a task it spawns, which answers
//! through the [`Request`]'s responder when done.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::oneshot;

use crate::link::outbox::{Outbox, PushError};
use crate::wire::frame::put_postcard;
use crate::wire::{put_envelope, EnvelopeHeader, RemoteError};

/// What a reply channel carries: a value for local asks, bytes for remote ones.
pub(crate) type LocalReply = oneshot::Sender<Result<Box<dyn Any + Send>, RemoteError>>;

/// One incoming message and, for an ask, the way to answer it.
pub struct Request<M, R> {
    from: CompactString,
    message: M,
    responder: Responder<R>,
    more_buffered: bool,
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

    /// Whether more messages from the same peer were received behind this
    /// one and are being delivered in the same pass (never for a message
    /// from this node): a service may leave work for later until the last
    /// of them, and so do it once per burst rather than once per message.
    pub fn more_buffered(&self) -> bool {
        self.more_buffered
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
    Remote { outbox: Arc<Outbox>, id: u64 },
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
            Some(ReplyTarget::Remote { outbox, id }) => {
                let pushed =
                    outbox.push(|buf, _| put_envelope(buf, &EnvelopeHeader::Reply { id }, &reply));
                match pushed {
                    Ok(()) => {}
                    Err(PushError::Full) => outbox.drop_reply(),
                    Err(PushError::Encode(error)) => {
                        send_failure(&outbox, id, RemoteError::ReplyFailed(error.to_string()))
                    }
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
            Some(ReplyTarget::Remote { outbox, id }) => {
                send_failure(&outbox, id, RemoteError::NoReply)
            }
        }
    }
}

/// Answers ask `id` with `error`.
pub(crate) fn send_failure(outbox: &Outbox, id: u64, error: RemoteError) {
    let pushed = outbox.push(|buf, _| put_postcard(buf, &EnvelopeHeader::Failure { id, error }));
    if pushed.is_err() {
        outbox.drop_reply();
    }
}

/// A service with its types erased, as the registry holds it.
pub(crate) trait ErasedService: Send + Sync {
    /// Delivers a message from the local node; no serialization.
    fn deliver_local(
        &self,
        from: &CompactString,
        message: Box<dyn Any + Send>,
        reply: Option<LocalReply>,
    ) -> Result<(), RemoteError>;

    /// Delivers an encoded message from a peer, `more_buffered` behind it
    /// (see [`Request::more_buffered`]).
    fn deliver_remote(
        &self,
        from: &CompactString,
        body: &[u8],
        reply: Option<ReplyTarget>,
        more_buffered: bool,
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
        from: &CompactString,
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
            from: from.clone(),
            message: *message,
            responder: Responder::new(reply.map(ReplyTarget::Local)),
            more_buffered: false,
        });
        Ok(())
    }

    fn deliver_remote(
        &self,
        from: &CompactString,
        body: &[u8],
        reply: Option<ReplyTarget>,
        more_buffered: bool,
    ) -> Result<(), (RemoteError, Option<ReplyTarget>)> {
        match postcard::from_bytes::<M>(body) {
            Ok(message) => {
                (self.handler)(Request {
                    from: from.clone(),
                    message,
                    responder: Responder::new(reply),
                    more_buffered,
                });
                Ok(())
            }
            Err(error) => Err((RemoteError::MalformedRequest(error.to_string()), reply)),
        }
    }
}
