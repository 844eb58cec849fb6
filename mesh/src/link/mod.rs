//! One peer as this node knows it: a [`Link`] holds the single active
//! connection to it (in its [`outbox::Outbox`]), the frames waiting to be
//! written, the asks waiting for answers and the messages stream their
//! answers come on.
//!
//! Invariant: for each peer name at most one connection is *active*, and both
//! ends pick the same one, by the rule in [`choice`]. A link does no I/O of
//! its own: the transport's tasks dial, write and read for it.

pub(crate) mod answers;
pub(crate) mod choice;
pub(crate) mod conn;
pub(crate) mod incoming;
pub(crate) mod outbox;
pub(crate) mod pending;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use self::conn::ActiveConn;
use self::incoming::Incoming;
use self::outbox::{Offered, Outbox, SentTraffic};
use self::pending::PendingAsks;
use crate::metrics::{LinkMetrics, MeshMetrics};
use crate::sync::lock;

/// Everything known about one peer name.
pub(crate) struct Link {
    name: String,
    addr: Mutex<Option<SocketAddr>>,
    outbox: Arc<Outbox>,
    pending: PendingAsks,
    /// The messages stream from the peer read last: where answers to asks
    /// are expected (see [`Incoming`]).
    incoming: Mutex<Option<Arc<Incoming>>>,
    /// Asks and pipelines waiting for answers from the peer.
    waiters: AtomicUsize,
    /// Signalled when a connection becomes active (the writer waits on it
    /// between dials).
    connected: Notify,
    metrics: LinkMetrics,
}

/// What became of a connection offered to [`Link::offer`].
pub(crate) struct Offer {
    /// The active connection now.
    pub(crate) active: ActiveConn,
    /// The connection that is no longer used: the one replaced, or the one
    /// offered if it lost.
    pub(crate) retired: Option<quinn::Connection>,
    /// Whether the link had no active connection before.
    pub(crate) came_up: bool,
}

impl Link {
    /// A link to `name` with no connection yet; `buffer` bytes of frames may
    /// wait for it, each at most `max_frame`.
    pub(crate) fn new(
        name: &str,
        buffer: usize,
        max_frame: usize,
        metrics: &Arc<MeshMetrics>,
    ) -> Arc<Self> {
        let link_metrics = metrics.link(name);
        Arc::new(Self {
            name: name.to_string(),
            addr: Mutex::new(None),
            outbox: Outbox::new(
                buffer,
                max_frame,
                SentTraffic::new(metrics, name),
                link_metrics.sends_waited.clone(),
            ),
            pending: PendingAsks::default(),
            incoming: Mutex::new(None),
            waiters: AtomicUsize::new(0),
            connected: Notify::new(),
            metrics: link_metrics,
        })
    }

    /// The peer's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The peer's advertise address, once known.
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        *lock(&self.addr)
    }

    /// Records where the peer is dialed; returns the address it replaces.
    pub(crate) fn replace_addr(&self, addr: SocketAddr) -> Option<SocketAddr> {
        lock(&self.addr).replace(addr)
    }

    /// Where frames to the peer wait for the writer.
    pub(crate) fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The asks that wait for the peer's answers.
    pub(crate) fn metrics(&self) -> &LinkMetrics {
        &self.metrics
    }

    pub(crate) fn pending(&self) -> &PendingAsks {
        &self.pending
    }

    /// The active connection, unless it closed.
    pub(crate) fn active(&self) -> Option<ActiveConn> {
        self.outbox.active()
    }

    /// A handshaken connection to the peer, from this node named `me`: it
    /// becomes the active one if the rule of [`choice`] says so.
    pub(crate) fn offer(&self, me: &str, new: ActiveConn) -> Offer {
        let offered = new.clone();
        let replaces = |current: Option<&ActiveConn>, new: &ActiveConn| {
            let current = current.map(ActiveConn::candidate);
            choice::replaces(me, &self.name, current, new.candidate())
        };
        match self.outbox.offer(new, replaces) {
            Offered::Taken { replaced } => {
                self.connected.notify_one();
                Offer {
                    active: offered,
                    came_up: replaced.is_none(),
                    retired: replaced.map(|old| old.conn),
                }
            }
            Offered::Refused { kept } => Offer {
                active: kept,
                came_up: false,
                retired: Some(offered.conn),
            },
        }
    }

    /// Connection `conn` (a `stable_id`) closed. If it was the active one,
    /// the link has none now and every waiting ask fails; whether it was.
    pub(crate) fn closed(&self, conn: usize) -> bool {
        let was_active = self.outbox.closed(conn);
        if was_active {
            self.pending.fail_all();
        }
        was_active
    }

    /// Waits until a connection becomes active (or became active since the
    /// last wait).
    pub(crate) async fn connected(&self) {
        self.connected.notified().await;
    }

    /// The messages stream answers are expected on.
    pub(crate) fn incoming(&self) -> Option<Arc<Incoming>> {
        lock(&self.incoming).clone()
    }

    /// Makes `stream` the one asks expect their answers on, until the
    /// guard drops (its reader ended) or a later stream replaces it.
    pub(crate) fn publish_incoming(&self, stream: &Arc<Incoming>) -> Published<'_> {
        *lock(&self.incoming) = Some(stream.clone());
        Published {
            link: self,
            stream: stream.clone(),
        }
    }

    /// One more ask or pipeline waits for answers. The second of them
    /// hands the stream back to the reader task, which reads for all: the
    /// first may have been left unpolled by its caller while it was the
    /// stream's reader (see [`Incoming::hand_back`]).
    pub(crate) fn start_waiting(&self) {
        if self.waiters.fetch_add(1, Ordering::Relaxed) == 1 {
            if let Some(stream) = self.incoming() {
                stream.hand_back(self.pending());
            }
        }
    }

    /// One ask or pipeline stopped waiting.
    pub(crate) fn stop_waiting(&self) {
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many asks and pipelines wait for answers.
    pub(crate) fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Relaxed)
    }
}

/// A stream published by [`Link::publish_incoming`].
pub(crate) struct Published<'a> {
    link: &'a Link,
    stream: Arc<Incoming>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        let mut incoming = lock(&self.link.incoming);
        if incoming
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &self.stream))
        {
            *incoming = None;
        }
    }
}
