//! Reading what a peer sends: its unidirectional streams, their frames, and
//! dispatch to services, pending asks and gossip.

use std::net::SocketAddr;
use std::sync::Arc;

use chitchat::Deserializable;
use membership::NodeId;
use tokio::task::JoinSet;

use crate::node::{AskFailure, Shared};
use crate::outbox::Outbox;
use crate::service::{send_failure, ErasedService, ReplyTarget};
use crate::stats::Stats;
use crate::wire::frame::{FrameError, FrameReader};
use crate::wire::{EnvelopeHeader, ErrorCode, RemoteError, StreamKind};

/// Largest gossip message accepted (chitchat sizes them for 64 KiB datagrams).
const MAX_GOSSIP: usize = 1024 * 1024;

/// Serves every stream the peer opens on `conn` until it closes. Stream tasks
/// live in a `JoinSet`, so aborting this task stops them all.
pub(crate) async fn run_reader(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    from: NodeId,
    advertise: SocketAddr,
) {
    let mut streams = JoinSet::new();
    while let Ok(recv) = conn.accept_uni().await {
        streams.spawn(read_stream(shared.clone(), recv, from.clone(), advertise));
        while streams.try_join_next().is_some() {}
    }
}

async fn read_stream(
    shared: Arc<Shared>,
    mut recv: quinn::RecvStream,
    from: NodeId,
    advertise: SocketAddr,
) {
    let mut kind = [0u8; 1];
    if recv.read_exact(&mut kind).await.is_err() {
        return;
    }
    match StreamKind::from_byte(kind[0]) {
        Some(StreamKind::Messages) => read_messages(&shared, recv, &from).await,
        Some(StreamKind::Gossip) => read_gossip(&shared, recv, &from, advertise).await,
        None => {
            Stats::bump(&shared.stats.streams_unknown);
            tracing::warn!(peer = %from, kind = kind[0], "closing stream of unknown kind");
            let _ = recv.stop(ErrorCode::UnknownStream.into());
        }
    }
}

async fn read_messages(shared: &Arc<Shared>, recv: quinn::RecvStream, from: &NodeId) {
    let mut frames = FrameReader::new(recv, shared.config.max_frame_size);
    let replies = shared.peer(&from.name, None).outbox.clone();
    let sender: Arc<str> = from.name.as_str().into();
    let mut services = ServiceCache::default();
    loop {
        match frames.next().await {
            Ok(Some(frame)) => {
                if let Err(error) = dispatch(shared, &sender, frame, &replies, &mut services).await
                {
                    Stats::bump(&shared.stats.frames_malformed);
                    tracing::warn!(peer = %from, %error, "closing stream: malformed frame");
                    frames.stop(ErrorCode::Malformed.into());
                    return;
                }
            }
            Ok(None) => return,
            Err(error @ FrameError::Oversized { .. }) => {
                Stats::bump(&shared.stats.frames_oversized);
                tracing::warn!(peer = %from, %error, "closing stream: oversized frame");
                frames.stop(ErrorCode::Oversized.into());
                return;
            }
            Err(_) => return,
        }
    }
}

/// Handles one envelope frame. Only a header that does not decode is an error
/// of the stream; a bad body is that message's problem alone.
async fn dispatch(
    shared: &Arc<Shared>,
    from: &Arc<str>,
    frame: &[u8],
    replies: &Arc<Outbox>,
    services: &mut ServiceCache,
) -> Result<(), postcard::Error> {
    let (header, body) = postcard::take_from_bytes::<EnvelopeHeader>(frame)?;
    match header {
        EnvelopeHeader::Tell { service } => {
            shared.hooks.fire("mesh.before_deliver").await;
            let Some(handler) = services.get(shared, service) else {
                Stats::bump(&shared.stats.unknown_service);
                tracing::debug!(%from, service, "tell to unknown service dropped");
                return Ok(());
            };
            if let Err((error, _)) = handler.deliver_remote(from, body, None) {
                Stats::bump(&shared.stats.messages_malformed);
                tracing::warn!(%from, service, %error, "tell dropped");
            }
        }
        EnvelopeHeader::Ask { id, service } => {
            shared.hooks.fire("mesh.before_deliver").await;
            let target = ReplyTarget::Remote {
                outbox: replies.clone(),
                id,
            };
            let failure = match services.get(shared, service) {
                None => {
                    Stats::bump(&shared.stats.unknown_service);
                    Some(RemoteError::UnknownService(service.to_string()))
                }
                Some(handler) => match handler.deliver_remote(from, body, Some(target)) {
                    Ok(()) => None,
                    Err((error, _)) => {
                        Stats::bump(&shared.stats.messages_malformed);
                        Some(error)
                    }
                },
            };
            if let Some(error) = failure {
                send_failure(replies, id, error);
            }
        }
        EnvelopeHeader::Reply { id } => shared.complete_ask(id, Ok(body.to_vec())),
        EnvelopeHeader::Failure { id, error } => {
            shared.complete_ask(id, Err(AskFailure::Remote(error)))
        }
    }
    Ok(())
}

/// The service a stream addressed last: most streams carry one service, so
/// this saves a registry lookup per message. Valid while the registry version holds.
#[derive(Default)]
struct ServiceCache {
    last: Option<(u64, String, Arc<dyn ErasedService>)>,
}

impl ServiceCache {
    fn get(&mut self, shared: &Shared, name: &str) -> Option<Arc<dyn ErasedService>> {
        let version = shared.services_version();
        if let Some((v, cached, handler)) = &self.last {
            if *v == version && cached == name {
                return Some(handler.clone());
            }
        }
        let handler = shared.service(name)?;
        self.last = Some((version, name.to_string(), handler.clone()));
        Some(handler)
    }
}

async fn read_gossip(
    shared: &Arc<Shared>,
    mut recv: quinn::RecvStream,
    from: &NodeId,
    advertise: SocketAddr,
) {
    let bytes = match recv.read_to_end(MAX_GOSSIP).await {
        Ok(bytes) => bytes,
        Err(quinn::ReadToEndError::TooLong) => {
            Stats::bump(&shared.stats.frames_oversized);
            tracing::warn!(peer = %from, "closing oversized gossip stream");
            let _ = recv.stop(ErrorCode::Oversized.into());
            return;
        }
        Err(_) => return,
    };
    match chitchat::ChitchatMessage::deserialize(&mut &bytes[..]) {
        Ok(message) => {
            if shared.gossip_inbox.try_send((advertise, message)).is_err() {
                Stats::bump(&shared.stats.gossip_dropped);
            }
        }
        Err(error) => {
            Stats::bump(&shared.stats.frames_malformed);
            tracing::warn!(peer = %from, %error, "malformed gossip message");
        }
    }
}
