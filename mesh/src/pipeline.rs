//! Pipelined asks: one task keeps many requests to a peer's service in
//! flight and takes their answers as they come (see [`Pipeline`]).
//!
//! Many independent asks ([`PeerRef::ask`](crate::PeerRef::ask)) to one peer get their answers
//! from the stream's reader task, which completes each ask's future: one
//! task more between a reply's packet and its asker than a bare stream has.
//! Tokio runs at most three woken tasks in a row on one worker; the next
//! goes to its queue and wakes another worker, and the extra task is what
//! makes a round of replies and new requests take that fourth step. A
//! pipeline belongs to one task, so while it is the only waiter on its peer
//! it reads its answers off the stream itself (as a lone ask does, see
//! [`crate::link::incoming`]), puts them in its own inbox without waking anyone,
//! and writes the requests its owner sent meanwhile in one go when it waits.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rustc_hash::FxHashMap;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::time::{delay_queue, DelayQueue};

use crate::error::{AskError, SendError};
use crate::link::answers::AnswerReader;
use crate::link::outbox::{PushError, ServiceIds};
use crate::link::pending::{AskFailure, AskOutcome, Inbox};
use crate::link::Link;
use crate::node::Node;
use crate::wire::{put_envelope, EnvelopeHeader};

/// Names one request sent through a [`Pipeline`]; its answer comes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

/// Asks to one service of one peer (or of this node), many in flight from
/// one task: [`Pipeline::send`] requests, and [`Pipeline::next`] answers in
/// the order they arrive, each with its request's [`Ticket`]. Every request
/// ends once: a reply, a remote error, a lost connection, or its timeout.
///
/// For a producer that keeps a window of requests open, this costs less
/// than as many [`PeerRef::ask`](crate::PeerRef::ask) futures (`mesh-bench`'s `ask_c64` against
/// `ask_c64_independent`). Requests are written when the pipeline waits for answers
/// (in [`Pipeline::next`]), on [`Pipeline::flush`], or when it is dropped,
/// so that a burst leaves in one write.
///
/// Dropping the pipeline abandons the answers of the requests in flight.
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn greet_all(node: &mesh::Node) -> Result<(), Box<dyn std::error::Error>> {
/// let mut pipeline = node.peer("n2")?.pipeline::<String, String>("greet", Duration::from_secs(1));
/// for name in ["a", "b", "c"] {
///     pipeline.send(name.to_string()).await?;
/// }
/// while let Some((ticket, answer)) = pipeline.next().await {
///     println!("{ticket:?}: {}", answer?);
/// }
/// # Ok(()) }
/// ```
pub struct Pipeline<M, R> {
    node: Node,
    service: Arc<str>,
    timeout: Duration,
    route: Route<R>,
    _messages: PhantomData<fn(M)>,
}

/// Where a pipeline's requests go.
enum Route<R> {
    /// This node: each request is a local ask (no serialization).
    Local(FuturesUnordered<BoxFuture<'static, (Ticket, Result<R, AskError>)>>),
    Remote(Box<Remote>),
}

/// A pipeline's state for a remote peer.
struct Remote {
    link: Arc<Link>,
    inbox: Arc<Inbox>,
    /// Answers taken from the inbox, not yet returned.
    ready: VecDeque<(u64, AskOutcome)>,
    /// The deadline of every request in flight, by ask id.
    deadlines: DelayQueue<u64>,
    /// Every request in flight, with its key in `deadlines` (`None`: its
    /// deadline passed while its answer was being put in the inbox).
    keys: FxHashMap<u64, Option<delay_queue::Key>>,
    /// Its turn at the stream, under an ask id no ask has.
    reader: AnswerReader,
    /// Whether it counts among its link's waiters (while it has requests
    /// in flight).
    waiting: bool,
}

impl<M, R> Pipeline<M, R>
where
    M: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(
        node: Node,
        link: Option<Arc<Link>>,
        service: &str,
        timeout: Duration,
    ) -> Self {
        let route = match link {
            None => Route::Local(FuturesUnordered::new()),
            Some(link) => Route::Remote(Box::new(Remote {
                link,
                inbox: Arc::default(),
                ready: VecDeque::new(),
                deadlines: DelayQueue::new(),
                keys: FxHashMap::default(),
                reader: AnswerReader::new(node.next_ask_id()),
                waiting: false,
            })),
        };
        Self {
            node,
            service: service.into(),
            timeout,
            route,
            _messages: PhantomData,
        }
    }

    /// Sends one request, and returns the ticket its answer will carry.
    /// Waits only while the peer's outgoing buffer is full.
    pub async fn send(&mut self, message: M) -> Result<Ticket, SendError> {
        self.node.check_running()?;
        let id = self.node.next_ask_id();
        let ticket = Ticket(id);
        let remote = match &mut self.route {
            Route::Local(asks) => {
                let (node, service, timeout) =
                    (self.node.clone(), self.service.clone(), self.timeout);
                asks.push(Box::pin(async move {
                    let services = node.services();
                    let answer = services.ask_local(&service, message, timeout);
                    (ticket, answer.await)
                }));
                return Ok(ticket);
            }
            Route::Remote(remote) => remote,
        };
        let service = &*self.service;
        let outbox = remote.link.outbox();
        let write = |buf: &mut Vec<u8>, ids: &mut ServiceIds| {
            let header = EnvelopeHeader::Ask {
                id,
                service: ids.refer(service),
            };
            put_envelope(buf, &header, &message)
        };
        remote.link.metrics().asks.inc();
        // Registered before the request can leave, and forgotten if it
        // does not (an error, or this send dropped while it waits for room).
        let pending = remote.link.pending();
        pending.insert_piped(id, &remote.inbox);
        let registration = pending.registration(id);
        match outbox.push_unflushed(write) {
            Ok(()) => {}
            Err(PushError::Encode(error)) => return Err(error.into()),
            Err(PushError::Full) => {
                outbox.flush();
                outbox.push_wait(write).await?;
            }
        }
        // Buffered: the pipeline forgets it once it times out or is dropped.
        registration.release();
        let key = remote.deadlines.insert(id, self.timeout);
        remote.keys.insert(id, Some(key));
        if !remote.waiting {
            remote.waiting = true;
            remote.link.start_waiting();
        }
        Ok(ticket)
    }

    /// Writes the requests sent so far without waiting for answers.
    pub fn flush(&self) {
        if let Route::Remote(remote) = &self.route {
            remote.link.outbox().flush();
        }
    }

    /// Requests sent and not yet answered through [`Pipeline::next`].
    pub fn in_flight(&self) -> usize {
        match &self.route {
            Route::Local(asks) => asks.len(),
            Route::Remote(remote) => remote.keys.len(),
        }
    }

    /// The next answer, with its request's ticket; `None` once no request
    /// is in flight.
    pub async fn next(&mut self) -> Option<(Ticket, Result<R, AskError>)> {
        let waiting = Waiting(self);
        std::future::poll_fn(|cx| waiting.0.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Ticket, Result<R, AskError>)>> {
        let remote = match &mut self.route {
            Route::Local(asks) => return asks.poll_next_unpin(cx),
            Route::Remote(remote) => remote,
        };
        let Some((id, outcome)) = ready!(remote.poll_answer(cx)) else {
            return Poll::Ready(None);
        };
        let result = match outcome {
            Some(Ok(bytes)) => {
                postcard::from_bytes(&bytes).map_err(|e| AskError::MalformedReply(e.to_string()))
            }
            Some(Err(AskFailure::Remote(error))) => Err(AskError::Remote(error)),
            Some(Err(AskFailure::ConnectionLost)) => {
                Err(AskError::ConnectionLost(remote.link.name().to_string()))
            }
            None => {
                remote.link.metrics().ask_timeouts.inc();
                Err(AskError::Timeout(self.timeout))
            }
        };
        Poll::Ready(Some((Ticket(id), result)))
    }
}

/// A pipeline waiting in [`Pipeline::next`]. The stream may wake only it
/// while it waits; once it stops waiting (answered, or the wait dropped),
/// the stream is handed back to its reader task, so that what else the peer
/// sends is not left to the pace of the pipeline's owner.
struct Waiting<'a, M, R>(&'a mut Pipeline<M, R>);

impl<M, R> Drop for Waiting<'_, M, R> {
    fn drop(&mut self) {
        if let Route::Remote(remote) = &mut self.0.route {
            remote.reader.leave(&remote.link);
        }
    }
}

impl Remote {
    /// The next ask to end: its id and outcome (`None`: timed out), or
    /// `None` once none is in flight.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Option<(u64, Option<AskOutcome>)>> {
        // Whatever this task reads or finds is returned in this poll: its
        // waker is taken out of the inbox, so that answers it puts there
        // itself do not wake it again.
        self.inbox.forget_waker();
        loop {
            self.inbox.take_into(&mut self.ready);
            while let Some((id, outcome)) = self.ready.pop_front() {
                // An answer to an ask that timed out meanwhile is dropped.
                if let Some(key) = self.keys.remove(&id) {
                    if let Some(key) = key {
                        self.deadlines.remove(&key);
                    }
                    return Poll::Ready(Some(self.ended(id, Some(outcome))));
                }
            }
            if let Poll::Ready(Some(expired)) = self.deadlines.poll_expired(cx) {
                let id = expired.into_inner();
                if self.link.pending().forget(id) {
                    self.keys.remove(&id);
                    return Poll::Ready(Some(self.ended(id, None)));
                }
                // Answered just now: the answer is on its way to the inbox.
                self.keys.insert(id, None);
                continue;
            }
            if self.keys.is_empty() {
                self.stop_waiting();
                return Poll::Ready(None);
            }
            self.link.outbox().flush();
            if self.read_stream(cx) {
                continue;
            }
            self.inbox.register(cx.waker());
            if self.inbox.is_empty() {
                return Poll::Pending;
            }
        }
    }

    /// Ask `id` ended with `outcome`; with none left in flight, the
    /// pipeline no longer counts as waiting on its link.
    fn ended(&mut self, id: u64, outcome: Option<AskOutcome>) -> (u64, Option<AskOutcome>) {
        if self.keys.is_empty() {
            self.stop_waiting();
        }
        (id, outcome)
    }

    /// Reads answers off the stream while this pipeline is the only
    /// waiter on its link; whether it put any in its inbox.
    fn read_stream(&mut self, cx: &mut Context<'_>) -> bool {
        let id = self.reader.id();
        let Some(stream) = self.reader.stream(&self.link) else {
            return false;
        };
        stream.read_answers(self.link.pending(), cx, id);
        !self.inbox.is_empty()
    }

    fn stop_waiting(&mut self) {
        self.reader.leave(&self.link);
        if std::mem::take(&mut self.waiting) {
            self.link.stop_waiting();
        }
    }
}

impl<M, R> Drop for Pipeline<M, R> {
    fn drop(&mut self) {
        let Route::Remote(remote) = &mut self.route else {
            return;
        };
        remote.link.outbox().flush();
        for id in remote.keys.keys() {
            remote.link.pending().forget(*id);
        }
        remote.stop_waiting();
    }
}
