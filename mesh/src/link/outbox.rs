//! The outgoing buffer of one link: senders encode frames straight into it,
//! the peer's writer task takes everything buffered in one swap and writes it
//! with one call. No allocation per message, no channel hop.
//!
//! While the writer task waits for frames it parks its stream here, and a
//! frame that finds it parked is written to it at once by the sender (see
//! [`DIRECT_WRITE_QUIET`]): on a quiet link that saves the hop through the
//! writer task, which would be a large part of a round trip.
//!
//! Order: frames reach the stream in the order they were buffered. A direct
//! write and the writer task both write the buffer from its start, one at a
//! time (the writer takes the stream back before it writes), and a stream
//! is parked only while it is on the link's active connection, so frames
//! are not split between a connection being replaced and its successor.
//!
//! The active connection itself lives here, under the lock that parks the
//! writer's stream: the one place it is kept, so that replacing it and
//! dropping a stream parked on its predecessor are one step.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use super::conn::ActiveConn;
use crate::metrics::{MeshMetrics, Traffic, OTHER, REPLY};
use crate::sync::lock;
use crate::wire::frame::{encode_frame_into, FrameError};
use crate::wire::{ServiceRef, MAX_SERVICE_IDS};

/// Why a frame was not buffered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    #[error("the outgoing buffer is full")]
    Full,
    #[error(transparent)]
    Encode(#[from] FrameError),
}

pub(crate) struct Outbox {
    state: Mutex<Buffered>,
    ready: Notify,
    space: Notify,
    limit: usize,
    max_frame: usize,
    /// Replies dropped because the buffer was full (the asker times out).
    replies_dropped: AtomicU64,
    /// Sends that found the buffer full and waited for room.
    waited: Counter,
}

/// The writer task's open stream and the connection it belongs to (its
/// `stable_id`).
pub(crate) type OpenStream = (usize, quinn::SendStream);

/// How long after a direct write the next frames are left to the writer
/// task: a burst is still written in batches (one stream write, one wake of
/// the connection, for many frames), while a frame on a quiet link, such as
/// an ask or its reply, goes out at once.
const DIRECT_WRITE_QUIET: Duration = Duration::from_micros(20);

/// What became of a connection offered to [`Outbox::offer`].
pub(crate) enum Offered {
    /// It is the active connection now, in place of `replaced`.
    Taken { replaced: Option<ActiveConn> },
    /// `kept` stays the active connection.
    Refused { kept: ActiveConn },
}

/// A hold on an [`Outbox`]'s frames (see [`Outbox::hold`]); a guard, so
/// that a panicking handler cannot leave the frames held.
pub(crate) struct Hold<'a>(&'a Outbox);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

struct Buffered {
    bytes: Vec<u8>,
    frames: u64,
    services: ServiceIds,
    /// The writer task's stream while it waits for frames; only ever one
    /// on `active`, since frames written to a connection being replaced
    /// could arrive after later frames sent on its successor.
    parked: Option<OpenStream>,
    /// The connection frames go to (see [`super::choice`]).
    active: Option<ActiveConn>,
    /// No direct write before this.
    quiet_until: Option<Instant>,
    /// Live [`Hold`]s.
    holds: u32,
    /// Frames were pushed unflushed since the writer was last woken.
    unflushed: bool,
}

impl Buffered {
    /// Writes the buffered frames to the parked stream, unless a direct
    /// write was made less than [`DIRECT_WRITE_QUIET`] ago; whether it
    /// tried. Only what quinn takes without waiting is written, in order;
    /// the rest stays for the writer task.
    #[inline(never)]
    fn write_direct(&mut self) -> bool {
        if self.holds > 0 {
            return false;
        }
        let now = Instant::now();
        if self.quiet_until.is_some_and(|until| now < until) {
            return false;
        }
        self.quiet_until = Some(now + DIRECT_WRITE_QUIET);
        self.write_parked()
    }

    /// Writes what quinn takes without waiting to the parked stream; whether
    /// there was one.
    fn write_parked(&mut self) -> bool {
        let Some((_, stream)) = self.parked.as_mut() else {
            return false;
        };
        // Blocked by flow control, the stream keeps this waker; the writer
        // task, woken by the caller, then writes with its own.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(Ok(written)) = Pin::new(stream).poll_write(&mut cx, &self.bytes) {
            self.bytes.drain(..written);
            if self.bytes.is_empty() {
                self.frames = 0;
            }
        }
        true
    }
}

/// Longer service names are always sent whole, which bounds the frame
/// that opens a stream.
const MAX_NUMBERED_NAME: usize = 256;

/// The numbers this sender gave the services it sends to one peer (see
/// [`ServiceRef`]). A number is kept only once a frame defining it is
/// buffered, so a stream that starts with every number kept so far (the
/// writer's [`Outbox::service_names`]) defines each number before its use.
pub(crate) struct ServiceIds {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    /// The number referred to last: a sender mostly repeats its service.
    last: u32,
    /// What the frame being written referred to, for its counters.
    referred: Referred,
    traffic: SentTraffic,
}

/// The service a frame being written named.
#[derive(Clone, Copy)]
enum Referred {
    /// None: a reply or a failure.
    Nothing,
    Number(u32),
    /// A service sent by name, not numbered.
    Unnumbered,
}

/// The counters of the frames sent to one peer: per numbered service
/// (looked up once, when the number is given), replies, and the rest.
pub(crate) struct SentTraffic {
    metrics: Arc<MeshMetrics>,
    peer: Box<str>,
    by_number: Vec<Traffic>,
    replies: Traffic,
    other: Traffic,
}

impl SentTraffic {
    /// The counters of frames sent to `peer`.
    pub(crate) fn new(metrics: &Arc<MeshMetrics>, peer: &str) -> Self {
        Self {
            by_number: Vec::new(),
            replies: metrics.sent(peer, REPLY),
            other: metrics.sent(peer, OTHER),
            metrics: metrics.clone(),
            peer: peer.into(),
        }
    }
}

impl ServiceIds {
    /// How a frame to `service` names it, numbering it if it is new.
    pub(crate) fn refer<'a>(&mut self, service: &'a str) -> ServiceRef<'a> {
        if self
            .names
            .get(self.last as usize)
            .is_some_and(|last| **last == *service)
        {
            self.referred = Referred::Number(self.last);
            return ServiceRef::Id(self.last);
        }
        if let Some(id) = self.ids.get(service) {
            self.last = *id;
            self.referred = Referred::Number(*id);
            return ServiceRef::Id(*id);
        }
        let id = self.names.len() as u32;
        if id >= MAX_SERVICE_IDS || service.len() > MAX_NUMBERED_NAME {
            self.referred = Referred::Unnumbered;
            return ServiceRef::Name(service);
        }
        self.ids.insert(service.into(), id);
        self.names.push(service.into());
        let traffic = &mut self.traffic;
        traffic
            .by_number
            .push(traffic.metrics.sent(&traffic.peer, service));
        self.last = id;
        self.referred = Referred::Number(id);
        ServiceRef::Define { id, name: service }
    }

    /// Forgets the numbers given after the first `len` (their frame failed).
    fn truncate(&mut self, len: usize) {
        for name in self.names.drain(len.min(self.names.len())..) {
            self.ids.remove(&name);
        }
        self.traffic.by_number.truncate(self.names.len());
    }

    /// Counts a frame of `bytes` just written, by what it referred to.
    #[inline]
    fn count_sent(&mut self, bytes: usize) {
        let traffic = &self.traffic;
        let counters = match std::mem::replace(&mut self.referred, Referred::Nothing) {
            Referred::Nothing => &traffic.replies,
            Referred::Number(id) => &traffic.by_number[id as usize],
            Referred::Unnumbered => &traffic.other,
        };
        counters.record(bytes);
    }
}

impl Outbox {
    /// An outbox of at most `limit` buffered bytes, counting what it sends
    /// in `traffic` and the sends that wait for room in `waited`.
    pub(crate) fn new(
        limit: usize,
        max_frame: usize,
        traffic: SentTraffic,
        waited: Counter,
    ) -> Arc<Self> {
        let state = Buffered {
            bytes: Vec::new(),
            frames: 0,
            services: ServiceIds {
                ids: FxHashMap::default(),
                names: Vec::new(),
                last: 0,
                referred: Referred::Nothing,
                traffic,
            },
            parked: None,
            active: None,
            quiet_until: None,
            holds: 0,
            unflushed: false,
        };
        Arc::new(Self {
            state: Mutex::new(state),
            ready: Notify::new(),
            space: Notify::new(),
            limit,
            max_frame,
            replies_dropped: AtomicU64::new(0),
            waited,
        })
    }

    /// Appends one frame whose payload `write` produces (naming services
    /// through the peer's [`ServiceIds`]), unless the buffer is full.
    /// Inlined so that `write` is built where it runs, not copied: on the
    /// hot path of every send.
    #[inline(always)]
    pub(crate) fn push(
        &self,
        write: impl FnOnce(&mut Vec<u8>, &mut ServiceIds) -> postcard::Result<()>,
    ) -> Result<(), PushError> {
        self.append(true, write)
    }

    /// Like [`Outbox::push`], but the frame is neither written nor the
    /// writer woken: it leaves with the next frame that is, or at the next
    /// [`Outbox::flush`]. For a sender about to send more, which then flushes
    /// once (see [`crate::Pipeline`]).
    #[inline(always)]
    pub(crate) fn push_unflushed(
        &self,
        write: impl FnOnce(&mut Vec<u8>, &mut ServiceIds) -> postcard::Result<()>,
    ) -> Result<(), PushError> {
        self.append(false, write)
    }

    #[inline(always)]
    fn append(
        &self,
        flush: bool,
        write: impl FnOnce(&mut Vec<u8>, &mut ServiceIds) -> postcard::Result<()>,
    ) -> Result<(), PushError> {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        if state.bytes.len() >= self.limit {
            return Err(PushError::Full);
        }
        let was_empty = state.bytes.is_empty();
        let before = state.bytes.len();
        let numbered = state.services.names.len();
        let services = &mut state.services;
        if let Err(error) =
            encode_frame_into(&mut state.bytes, self.max_frame, |buf| write(buf, services))
        {
            state.services.referred = Referred::Nothing;
            state.services.truncate(numbered);
            return Err(error.into());
        }
        state.services.count_sent(state.bytes.len() - before);
        state.frames += 1;
        if !flush {
            state.unflushed = true;
            return Ok(());
        }
        let tried_direct = state.parked.is_some() && state.write_direct();
        // A buffer that was not empty has woken the writer already, unless
        // its frames were pushed unflushed.
        let unwoken = was_empty || std::mem::take(&mut state.unflushed);
        let wake_writer = state.holds == 0 && !state.bytes.is_empty() && (unwoken || tried_direct);
        drop(guard);
        if wake_writer {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Holds frames back while the guard lives: a reader dispatching the
    /// frames it has buffered, whose replies then leave in one write (to
    /// the parked stream, or by the writer task) when the last hold ends.
    pub(crate) fn hold(&self) -> Hold<'_> {
        lock(&self.state).holds += 1;
        Hold(self)
    }

    fn release(&self) {
        lock(&self.state).holds -= 1;
        self.flush();
    }

    /// Sends what is buffered: written to the parked stream as far as quinn
    /// takes it, the rest by the writer task. Not while frames are held.
    pub(crate) fn flush(&self) {
        let mut state = lock(&self.state);
        if state.holds > 0 || state.bytes.is_empty() {
            return;
        }
        state.unflushed = false;
        state.write_parked();
        let wake_writer = !state.bytes.is_empty();
        drop(state);
        if wake_writer {
            self.ready.notify_one();
        }
    }

    /// The active connection, unless it closed.
    pub(crate) fn active(&self) -> Option<ActiveConn> {
        lock(&self.state).active.clone().filter(|a| !a.is_closed())
    }

    /// Makes `new` the active connection if `replaces` says it replaces
    /// the current one (`None` if there is none or it closed); a stream
    /// parked on the replaced connection is dropped (finishing it), so
    /// that no frame goes there directly.
    pub(crate) fn offer(
        &self,
        new: ActiveConn,
        replaces: impl FnOnce(Option<&ActiveConn>, &ActiveConn) -> bool,
    ) -> Offered {
        let mut state = lock(&self.state);
        let current = state.active.take().filter(|a| !a.is_closed());
        if !replaces(current.as_ref(), &new) {
            let kept = current.expect("a connection replaces none");
            state.active = Some(kept.clone());
            return Offered::Refused { kept };
        }
        let id = new.conn.stable_id();
        if state.parked.as_ref().is_some_and(|(on, _)| *on != id) {
            state.parked = None;
        }
        state.active = Some(new);
        Offered::Taken { replaced: current }
    }

    /// Forgets the active connection if it is `conn` (a `stable_id`), which
    /// closed; whether it was.
    pub(crate) fn closed(&self, conn: usize) -> bool {
        let mut state = lock(&self.state);
        let was_active = state
            .active
            .as_ref()
            .is_some_and(|a| a.conn.stable_id() == conn);
        if was_active {
            state.active = None;
            state.parked = None;
        }
        was_active
    }

    /// A reply was dropped: the buffer was full. A peer that does not read
    /// its replies must not make this node buffer without bound, so the
    /// reply is only counted, and the asker times out.
    pub(crate) fn drop_reply(&self) {
        self.replies_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// How many replies were dropped.
    /// Bytes buffered now.
    pub(crate) fn buffered(&self) -> usize {
        lock(&self.state).bytes.len()
    }

    pub(crate) fn replies_dropped(&self) -> u64 {
        self.replies_dropped.load(Ordering::Relaxed)
    }

    /// Every service name numbered so far, by number: what a new stream
    /// must define first.
    pub(crate) fn service_names(&self) -> Vec<Box<str>> {
        lock(&self.state).services.names.clone()
    }

    /// Like [`Outbox::push`], waiting for room while the buffer is full.
    pub(crate) async fn push_wait(
        &self,
        write: impl Fn(&mut Vec<u8>, &mut ServiceIds) -> postcard::Result<()>,
    ) -> Result<(), FrameError> {
        match self.push(&write) {
            Err(PushError::Full) => self.waited.inc(),
            Err(PushError::Encode(error)) => return Err(error),
            Ok(()) => return Ok(()),
        };
        loop {
            // Registered before the next try, so a `take` between the
            // two is not missed.
            let space = self.space.notified();
            match self.push(&write) {
                Err(PushError::Full) => space.await,
                Err(PushError::Encode(error)) => return Err(error),
                Ok(()) => return Ok(()),
            }
        }
    }

    /// Waits until frames are buffered, then moves all of them into `batch`
    /// (which must be empty) and returns how many frames it holds. The
    /// writer's `stream` is parked here meanwhile, for direct writes, and
    /// handed back.
    pub(crate) async fn take(&self, batch: &mut Vec<u8>, stream: &mut Option<OpenStream>) -> u64 {
        {
            let mut state = lock(&self.state);
            let active = state.active.as_ref().map(|a| a.conn.stable_id());
            let current = stream.as_ref().map(|(conn, _)| *conn) == active;
            state.parked = stream.take().filter(|_| current);
        }
        loop {
            {
                let mut state = lock(&self.state);
                if !state.bytes.is_empty() {
                    std::mem::swap(&mut state.bytes, batch);
                    state.unflushed = false;
                    let frames = std::mem::take(&mut state.frames);
                    *stream = state.parked.take();
                    drop(state);
                    self.space.notify_waiters();
                    return frames;
                }
            }
            self.ready.notified().await;
            // Let the tasks that woke us add more before we take: fewer, larger writes.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::loopback_connection;
    use crate::wire::{put_envelope, EnvelopeHeader};
    use futures::FutureExt;

    fn test_outbox(limit: usize) -> Arc<Outbox> {
        let metrics = Arc::new(MeshMetrics::detached());
        Outbox::new(
            limit,
            1024,
            SentTraffic::new(&metrics, "peer"),
            Counter::default(),
        )
    }

    #[test]
    fn frames_count_under_the_service_they_name() {
        let metrics = Arc::new(MeshMetrics::detached());
        let traffic = SentTraffic::new(&metrics, "peer");
        let outbox = Outbox::new(1 << 20, 1024, traffic, Counter::default());
        let tell = |service: &'static str| {
            move |buf: &mut Vec<u8>, ids: &mut ServiceIds| {
                let header = EnvelopeHeader::Tell {
                    service: ids.refer(service),
                };
                put_envelope(buf, &header, &0u8)
            }
        };
        for service in ["a", "a", "b", "a"] {
            outbox.push(tell(service)).unwrap();
        }
        let reply = |buf: &mut Vec<u8>, _: &mut ServiceIds| {
            put_envelope(buf, &EnvelopeHeader::Reply { id: 1 }, &0u8)
        };
        outbox.push(reply).unwrap();
        let sent = |service| metrics.sent("peer", service).messages();
        assert_eq!((sent("a"), sent("b"), sent(REPLY)), (3, 1, 1));
    }

    fn parked_on(outbox: &Outbox) -> Option<usize> {
        lock(&outbox.state).parked.as_ref().map(|(conn, _)| *conn)
    }

    /// Makes `conn` the outbox's active connection, whatever was before.
    fn activate(outbox: &Outbox, conn: &quinn::Connection) {
        let active = ActiveConn {
            conn: conn.clone(),
            id: membership::NodeId::new("peer".to_string(), 1),
            dialer: super::super::choice::Dialer::Me(1),
        };
        outbox.offer(active, |_, _| true);
    }

    #[tokio::test]
    async fn only_a_stream_on_the_active_connection_is_parked() {
        let (conn, _server, _endpoints) = loopback_connection().await;
        let (other, _other_server, _other_endpoints) = loopback_connection().await;
        let id = conn.stable_id();
        let outbox = test_outbox(1 << 20);
        let mut batch = Vec::new();
        let mut stream = Some((id, conn.open_uni().await.unwrap()));

        // Not the active connection: the writer keeps its stream to itself.
        activate(&outbox, &other);
        assert!(outbox
            .take(&mut batch, &mut stream)
            .now_or_never()
            .is_none());
        assert_eq!(parked_on(&outbox), None);

        // The active one: parked while the writer waits, and a frame goes
        // straight to it.
        let mut stream = Some((id, conn.open_uni().await.unwrap()));
        activate(&outbox, &conn);
        {
            let mut take = std::pin::pin!(outbox.take(&mut batch, &mut stream));
            assert!((&mut take).now_or_never().is_none());
            assert_eq!(parked_on(&outbox), Some(id));
            outbox.push(|b, _| put_bytes(b, b"direct")).unwrap();
            assert!(lock(&outbox.state).bytes.is_empty(), "written directly");
            assert!(take.now_or_never().is_none());
        }

        // Replaced: the parked stream is dropped, and frames wait for the
        // writer, which gets no stream back and opens one on the new
        // connection.
        activate(&outbox, &other);
        assert_eq!(parked_on(&outbox), None);
        outbox.push(|b, _| put_bytes(b, b"later")).unwrap();
        let mut stream = None;
        assert_eq!(outbox.take(&mut batch, &mut stream).await, 1);
        assert!(stream.is_none());
        assert_eq!(&batch, b"\0\0\0\x05later");
    }

    #[tokio::test]
    async fn frames_pushed_unflushed_wait_for_a_flush_or_the_next_frame() {
        let (conn, _server, _endpoints) = loopback_connection().await;
        let id = conn.stable_id();
        let outbox = test_outbox(1 << 20);
        activate(&outbox, &conn);
        let mut batch = Vec::new();
        let mut stream = Some((id, conn.open_uni().await.unwrap()));
        let frames = {
            let mut take = std::pin::pin!(outbox.take(&mut batch, &mut stream));
            assert!((&mut take).now_or_never().is_none());

            // Neither written to the parked stream nor handed to the writer...
            outbox.push_unflushed(|b, _| put_bytes(b, b"one")).unwrap();
            outbox.push_unflushed(|b, _| put_bytes(b, b"two")).unwrap();
            assert_eq!(lock(&outbox.state).bytes.len(), 14);
            assert!((&mut take).now_or_never().is_none(), "writer not woken");
            // ...until the flush, which writes both at once.
            outbox.flush();
            assert!(lock(&outbox.state).bytes.is_empty(), "written directly");

            // In the quiet time after a direct write, a frame after an
            // unflushed one wakes the writer for both.
            lock(&outbox.state).quiet_until = Some(Instant::now() + Duration::from_secs(60));
            outbox
                .push_unflushed(|b, _| put_bytes(b, b"three"))
                .unwrap();
            outbox.push(|b, _| put_bytes(b, b"four")).unwrap();
            let woken = tokio::time::timeout(Duration::from_secs(5), take).await;
            woken.expect("the writer woken")
        };
        assert_eq!(frames, 2);
        assert_eq!(&batch, b"\0\0\0\x05three\0\0\0\x04four");
    }

    fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) -> postcard::Result<()> {
        buf.extend_from_slice(bytes);
        Ok(())
    }

    #[tokio::test]
    async fn frames_are_taken_in_order_and_the_limit_holds() {
        let outbox = test_outbox(10);
        outbox
            .push(|b, _| {
                b.extend_from_slice(b"abc");
                Ok(())
            })
            .unwrap();
        outbox
            .push(|b, _| {
                b.extend_from_slice(b"defghij");
                Ok(())
            })
            .unwrap();
        assert!(matches!(outbox.push(|_, _| Ok(())), Err(PushError::Full)));
        let mut batch = Vec::new();
        assert_eq!(outbox.take(&mut batch, &mut None).await, 2);
        assert_eq!(&batch, b"\0\0\0\x03abc\0\0\0\x07defghij");
        assert!(outbox.push(|_, _| Ok(())).is_ok());
    }

    #[test]
    fn a_service_is_numbered_once_its_defining_frame_is_buffered() {
        let outbox = test_outbox(1 << 20);
        let mut seen = Vec::new();
        let mut refer = |name: &'static str, fail: bool| {
            let result = outbox.push(|_, ids| {
                seen.push(format!("{:?}", ids.refer(name)));
                if fail {
                    Err(postcard::Error::SerializeBufferFull)
                } else {
                    Ok(())
                }
            });
            assert_eq!(result.is_ok(), !fail);
        };
        refer("a", false);
        refer("a", false);
        // The frame defining "b" failed: "b" is not numbered, "c" takes 1.
        refer("b", true);
        refer("c", false);
        refer("b", false);
        assert_eq!(
            seen,
            [
                r#"Define { id: 0, name: "a" }"#,
                "Id(0)",
                r#"Define { id: 1, name: "b" }"#,
                r#"Define { id: 1, name: "c" }"#,
                r#"Define { id: 2, name: "b" }"#,
            ]
        );
        let names = outbox.service_names();
        assert_eq!(
            names.iter().map(|n| &**n).collect::<Vec<_>>(),
            ["a", "c", "b"]
        );
    }
}
