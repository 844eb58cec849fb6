//! Reading what a peer sends: its unidirectional streams, their frames, and
//! dispatch to services, pending asks and gossip.

use std::net::SocketAddr;
use std::sync::Arc;

use chitchat::Deserializable;
use membership::NodeId;
use tokio::task::JoinSet;

use crate::node::{AskFailure, Shared};
use crate::service::{failure_frame, send_frame, ReplyTarget};
use crate::stats::Stats;
use crate::wire::frame::{read_frame, FrameError};
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

async fn read_messages(shared: &Arc<Shared>, mut recv: quinn::RecvStream, from: &NodeId) {
    let max = shared.config.max_frame_size;
    let replies = shared.peer(&from.name, None).queue.clone();
    let mut buf = Vec::new();
    loop {
        match read_frame(&mut recv, &mut buf, max).await {
            Ok(true) => {
                if let Err(error) = dispatch(shared, &from.name, &buf, &replies).await {
                    Stats::bump(&shared.stats.frames_malformed);
                    tracing::warn!(peer = %from, %error, "closing stream: malformed frame");
                    let _ = recv.stop(ErrorCode::Malformed.into());
                    return;
                }
            }
            Ok(false) => return,
            Err(error @ FrameError::Oversized { .. }) => {
                Stats::bump(&shared.stats.frames_oversized);
                tracing::warn!(peer = %from, %error, "closing stream: oversized frame");
                let _ = recv.stop(ErrorCode::Oversized.into());
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
    from: &str,
    frame: &[u8],
    replies: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<(), postcard::Error> {
    let (header, body) = postcard::take_from_bytes::<EnvelopeHeader>(frame)?;
    let max_frame = shared.config.max_frame_size;
    match header {
        EnvelopeHeader::Tell { service } => {
            shared.hooks.fire("mesh.before_deliver").await;
            let Some(handler) = shared.service(service) else {
                Stats::bump(&shared.stats.unknown_service);
                tracing::debug!(from, service, "tell to unknown service dropped");
                return Ok(());
            };
            if let Err((error, _)) = handler.deliver_remote(from, body, None) {
                Stats::bump(&shared.stats.messages_malformed);
                tracing::warn!(from, service, %error, "tell dropped");
            }
        }
        EnvelopeHeader::Ask { id, service } => {
            shared.hooks.fire("mesh.before_deliver").await;
            let target = ReplyTarget::Remote {
                queue: replies.clone(),
                id,
                max_frame,
            };
            let failure = match shared.service(service) {
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
                if let Ok(frame) = failure_frame(id, error, max_frame) {
                    send_frame(replies.clone(), frame);
                }
            }
        }
        EnvelopeHeader::Reply { id } => shared.complete_ask(id, Ok(body.to_vec())),
        EnvelopeHeader::Failure { id, error } => {
            shared.complete_ask(id, Err(AskFailure::Remote(error)))
        }
    }
    Ok(())
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
