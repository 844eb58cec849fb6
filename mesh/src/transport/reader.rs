//! Reading what a peer sends: its unidirectional streams, their frames, and
//! dispatch to services, pending asks and gossip.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{ready, Poll};

use chitchat::Deserializable;
use compact_str::CompactString;
use membership::NodeId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::hooks::Hooks;
use crate::link::incoming::Incoming;
use crate::link::outbox::Outbox;
use crate::link::pending::answer;
use crate::link::Link;
use crate::metrics::{MeshMetrics, Traffic, OTHER, REPLY};
use crate::service::{send_failure, ErasedService, ReplyTarget};
use crate::services::Services;
use crate::stats::Stats;
use crate::wire::frame::{FrameError, FrameReader};
use crate::wire::{
    EnvelopeHeader, ErrorCode, RemoteError, ServiceRef, StreamKind, MAX_SERVICE_IDS,
};

/// Largest gossip message accepted (chitchat sizes them for 64 KiB datagrams).
const MAX_GOSSIP: usize = 1024 * 1024;

/// Gossip messages received, with the sender's advertise address, for chitchat.
pub(crate) type GossipSender = mpsc::Sender<(SocketAddr, chitchat::ChitchatMessage)>;

/// Where what peers send goes: all a reader task knows of its node.
pub(crate) struct Dispatch {
    pub(crate) services: Arc<Services>,
    pub(crate) gossip: GossipSender,
    pub(crate) hooks: Hooks,
    pub(crate) stats: Arc<Stats>,
    /// Counters of what peers send.
    pub(crate) metrics: Arc<MeshMetrics>,
    /// Larger frames close their stream.
    pub(crate) max_frame: usize,
}

/// Serves every stream the peer of `link` opens on `conn` until it closes.
/// Stream tasks live in a `JoinSet`, so aborting this task stops them all.
pub(crate) async fn run_reader(
    dispatch: Arc<Dispatch>,
    link: Arc<Link>,
    conn: quinn::Connection,
    from: NodeId,
    advertise: SocketAddr,
) {
    let mut streams = JoinSet::new();
    while let Ok(recv) = conn.accept_uni().await {
        let stream = read_stream(
            dispatch.clone(),
            link.clone(),
            recv,
            from.clone(),
            advertise,
        );
        streams.spawn(stream);
        while streams.try_join_next().is_some() {}
    }
}

async fn read_stream(
    dispatch: Arc<Dispatch>,
    link: Arc<Link>,
    mut recv: quinn::RecvStream,
    from: NodeId,
    advertise: SocketAddr,
) {
    let mut kind = [0u8; 1];
    if recv.read_exact(&mut kind).await.is_err() {
        return;
    }
    match StreamKind::from_byte(kind[0]) {
        Some(StreamKind::Messages) => read_messages(&dispatch, &link, recv, &from).await,
        Some(StreamKind::Gossip) => read_gossip(&dispatch, recv, &from, advertise).await,
        None => {
            Stats::bump(&dispatch.stats.streams_unknown);
            tracing::warn!(peer = %from, kind = kind[0], "closing stream of unknown kind");
            let _ = recv.stop(ErrorCode::UnknownStream.into());
        }
    }
}

async fn read_messages(dispatch: &Dispatch, link: &Link, recv: quinn::RecvStream, from: &NodeId) {
    let task = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    let stream = Incoming::new(FrameReader::new(recv, dispatch.max_frame), task);
    let _published = link.publish_incoming(&stream);
    let replies = link.outbox();
    let sender = from.name.clone();
    let mut services = StreamServices::new(ReceivedTraffic::new(&dispatch.metrics, &sender));
    // Set once the hook point fired for the frame at the stream's head.
    let mut hook_fired = false;
    loop {
        let step = poll_fn(|cx| {
            let mut core = stream.lock();
            // Frames already buffered are dispatched under a hold on the
            // replies, which then leave in one write: no wake of the writer
            // task per reply. The hold never lasts over a return.
            let mut held = None;
            loop {
                if !core.frames.has_frame() {
                    held = None;
                }
                let error = match ready!(core.poll_next(cx, None)) {
                    Ok(true) => {
                        let frame = core.frames.last().expect("a frame was read");
                        // The hook point sees tells and asks before their
                        // handler, outside this poll.
                        if !std::mem::take(&mut hook_fired)
                            && dispatch.hooks.any_armed()
                            && delivers_to_a_service(frame)
                        {
                            core.frames.put_back();
                            return Poll::Ready(Step::FireHook);
                        }
                        held.get_or_insert_with(|| replies.hold());
                        let more = core.frames.has_frame();
                        match deliver(dispatch, &sender, link, frame, more, &mut services) {
                            Ok(()) => continue,
                            Err(error) => {
                                Stats::bump(&dispatch.stats.frames_malformed);
                                tracing::warn!(peer = %from, %error, "closing stream: malformed frame");
                                ErrorCode::Malformed
                            }
                        }
                    }
                    Ok(false) => return Poll::Ready(Step::Ended),
                    Err(error @ FrameError::Oversized { .. }) => {
                        Stats::bump(&dispatch.stats.frames_oversized);
                        tracing::warn!(peer = %from, %error, "closing stream: oversized frame");
                        ErrorCode::Oversized
                    }
                    Err(_) => return Poll::Ready(Step::Ended),
                };
                core.frames.stop(error.into());
                return Poll::Ready(Step::Ended);
            }
        })
        .await;
        match step {
            Step::FireHook => {
                dispatch.hooks.fire(BEFORE_DELIVER).await;
                hook_fired = true;
            }
            Step::Ended => return,
        }
    }
}

/// Why the reader task stopped reading its stream for now.
enum Step {
    /// The frame at the head is a tell or an ask, and the hook point is armed.
    FireHook,
    /// The stream ended, failed, or was closed for a bad frame.
    Ended,
}

/// Why a frame breaks its stream (a bad body is only that message's problem).
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("bad header: {0}")]
    Header(#[from] postcard::Error),
    #[error("service number {0} was not defined on this stream")]
    UndefinedService(u32),
    #[error("service number {id} defined as {name:?}, then again as another name or out of range")]
    Redefined { id: u32, name: String },
}

/// The hook point fired before a tell or ask reaches its service.
const BEFORE_DELIVER: &str = "mesh.before_deliver";

/// Whether `frame` is a tell or an ask (not an answer or a definition).
fn delivers_to_a_service(frame: &[u8]) -> bool {
    matches!(
        EnvelopeHeader::decode(frame),
        Ok((
            EnvelopeHeader::Tell { .. }
                | EnvelopeHeader::Ask { .. }
                | EnvelopeHeader::TracedAsk { .. },
            _
        ))
    )
}

/// Handles one envelope frame from `from`, whose `link` takes the replies,
/// with `more` frames buffered behind it.
fn deliver(
    dispatch: &Dispatch,
    from: &CompactString,
    link: &Link,
    frame: &[u8],
    more: bool,
    services: &mut StreamServices,
) -> Result<(), StreamError> {
    let replies = link.outbox();
    let bytes = frame.len();
    if let Some((id, body)) = EnvelopeHeader::tell_by_number(frame) {
        let service = services.resolve_number(&dispatch.services, id, bytes)?;
        deliver_tell(dispatch, from, service, body, more);
        return Ok(());
    }
    let (header, body) = EnvelopeHeader::decode(frame)?;
    match header {
        EnvelopeHeader::Tell { service } => {
            let service = services.resolve(&dispatch.services, service, bytes)?;
            deliver_tell(dispatch, from, service, body, more);
        }
        EnvelopeHeader::Ask { id, service } => {
            let service = services.resolve(&dispatch.services, service, bytes)?;
            deliver_ask(dispatch, from, replies, service, id, body, more);
        }
        EnvelopeHeader::TracedAsk {
            id,
            service,
            context,
        } => {
            let service = services.resolve(&dispatch.services, service, bytes)?;
            // The handler runs inside a span that continues the caller's trace.
            #[cfg(feature = "otel")]
            let _span = crate::otel::handler_span(id, &context).entered();
            // Without `otel`: served as a plain ask.
            #[cfg(not(feature = "otel"))]
            let _ = context;
            deliver_ask(dispatch, from, replies, service, id, body, more);
        }
        EnvelopeHeader::Reply { .. } | EnvelopeHeader::Failure { .. } => {
            services.traffic.replies.record(bytes);
            if let Some((id, outcome)) = answer(header, body) {
                link.pending().complete(id, outcome);
            }
        }
        EnvelopeHeader::Services { names } => {
            for (id, name) in (0u32..).zip(names) {
                services.define(id, name)?;
            }
        }
    }
    Ok(())
}

/// Hands ask `id` to its service; an ask to an unknown service or one that
/// does not decode is answered with a failure and counted.
fn deliver_ask(
    dispatch: &Dispatch,
    from: &CompactString,
    replies: &Arc<Outbox>,
    (name, handler): (&str, Option<&Handler>),
    id: u64,
    body: &[u8],
    more: bool,
) {
    let target = ReplyTarget::Remote {
        outbox: replies.clone(),
        id,
    };
    let failure = match handler {
        None => {
            Stats::bump(&dispatch.stats.unknown_service);
            Some(RemoteError::UnknownService(name.to_string()))
        }
        Some(handler) => match handler.deliver_remote(from, body, Some(target), more) {
            Ok(()) => None,
            Err((error, _)) => {
                Stats::bump(&dispatch.stats.messages_malformed);
                Some(error)
            }
        },
    };
    if let Some(error) = failure {
        send_failure(replies, id, error);
    }
}

/// Hands a tell to its service; a tell to an unknown service or one that
/// does not decode is dropped and counted.
fn deliver_tell(
    dispatch: &Dispatch,
    from: &CompactString,
    (name, handler): (&str, Option<&Handler>),
    body: &[u8],
    more: bool,
) {
    let Some(handler) = handler else {
        Stats::bump(&dispatch.stats.unknown_service);
        tracing::debug!(%from, service = name, "tell to unknown service dropped");
        return;
    };
    if let Err((error, _)) = handler.deliver_remote(from, body, None, more) {
        Stats::bump(&dispatch.stats.messages_malformed);
        tracing::warn!(%from, service = name, %error, "tell dropped");
    }
}

/// A service's handler, as the registry held it.
type Handler = Arc<dyn ErasedService>;

/// The services one stream has numbered (see [`ServiceRef`]), each with
/// its handler as of a registry version: a lookup by number per message,
/// no string compared or registry locked.
struct StreamServices {
    numbered: Vec<Service>,
    /// The last service named in full (not numbered).
    named: Option<Service>,
    traffic: ReceivedTraffic,
}

/// The counters of frames received from one peer: a service registered
/// here counts under its name, anything else under [`OTHER`], so that a
/// peer cannot grow the label set.
struct ReceivedTraffic {
    metrics: Arc<MeshMetrics>,
    peer: CompactString,
    replies: Traffic,
    other: Traffic,
}

impl ReceivedTraffic {
    fn new(metrics: &Arc<MeshMetrics>, peer: &CompactString) -> Self {
        Self {
            replies: metrics.received(peer, REPLY),
            other: metrics.received(peer, OTHER),
            metrics: metrics.clone(),
            peer: peer.clone(),
        }
    }
}

/// One service a stream addresses.
struct Service {
    name: Box<str>,
    /// The registry version of the lookup, its result (`None`: unknown)
    /// and the service's counters.
    lookup: Option<(u64, Option<Handler>, Traffic)>,
}

impl Service {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            lookup: None,
        }
    }

    /// Its name and handler, looked up again if the registry changed;
    /// counts a frame of `bytes` for it.
    fn resolve(
        &mut self,
        registry: &Services,
        traffic: &ReceivedTraffic,
        bytes: usize,
    ) -> (&str, Option<&Handler>) {
        let version = registry.version();
        if self.lookup.as_ref().is_none_or(|(v, _, _)| *v != version) {
            let handler = registry.get(&self.name);
            let counters = match handler {
                Some(_) => traffic.metrics.received(&traffic.peer, &self.name),
                None => traffic.other.clone(),
            };
            self.lookup = Some((version, handler, counters));
        }
        let (_, handler, counters) = self.lookup.as_ref().expect("looked up above");
        counters.record(bytes);
        (&self.name, handler.as_ref())
    }
}

impl StreamServices {
    fn new(traffic: ReceivedTraffic) -> Self {
        Self {
            numbered: Vec::new(),
            named: None,
            traffic,
        }
    }

    fn define(&mut self, id: u32, name: &str) -> Result<(), StreamError> {
        let index = id as usize;
        let redefined = || StreamError::Redefined {
            id,
            name: name.to_string(),
        };
        if id >= MAX_SERVICE_IDS || index > self.numbered.len() {
            return Err(redefined());
        }
        match self.numbered.get(index) {
            Some(known) if *known.name == *name => Ok(()),
            Some(_) => Err(redefined()),
            None => {
                self.numbered.push(Service::new(name));
                Ok(())
            }
        }
    }

    /// The service's name and its handler (`None`: not registered here).
    fn resolve(
        &mut self,
        registry: &Services,
        service: ServiceRef<'_>,
        bytes: usize,
    ) -> Result<(&str, Option<&Handler>), StreamError> {
        let service = match service {
            ServiceRef::Id(id) => return self.resolve_number(registry, id, bytes),
            ServiceRef::Name(name) => {
                if self.named.as_ref().is_none_or(|named| *named.name != *name) {
                    self.named = Some(Service::new(name));
                }
                self.named.as_mut().expect("set above")
            }
            ServiceRef::Define { id, name } => {
                self.define(id, name)?;
                &mut self.numbered[id as usize]
            }
        };
        Ok(service.resolve(registry, &self.traffic, bytes))
    }

    /// Like [`Self::resolve`] for a service this stream numbered.
    fn resolve_number(
        &mut self,
        registry: &Services,
        id: u32,
        bytes: usize,
    ) -> Result<(&str, Option<&Handler>), StreamError> {
        let service = self
            .numbered
            .get_mut(id as usize)
            .ok_or(StreamError::UndefinedService(id))?;
        Ok(service.resolve(registry, &self.traffic, bytes))
    }
}

async fn read_gossip(
    dispatch: &Dispatch,
    mut recv: quinn::RecvStream,
    from: &NodeId,
    advertise: SocketAddr,
) {
    let bytes = match recv.read_to_end(MAX_GOSSIP).await {
        Ok(bytes) => bytes,
        Err(quinn::ReadToEndError::TooLong) => {
            Stats::bump(&dispatch.stats.frames_oversized);
            tracing::warn!(peer = %from, "closing oversized gossip stream");
            let _ = recv.stop(ErrorCode::Oversized.into());
            return;
        }
        Err(_) => return,
    };
    match chitchat::ChitchatMessage::deserialize(&mut &bytes[..]) {
        Ok(message) => {
            if dispatch.gossip.try_send((advertise, message)).is_err() {
                Stats::bump(&dispatch.stats.gossip_dropped);
            }
        }
        Err(error) => {
            Stats::bump(&dispatch.stats.frames_malformed);
            tracing::warn!(peer = %from, %error, "malformed gossip message");
        }
    }
}
