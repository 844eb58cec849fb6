//! Direct heartbeats over QUIC: the request a monitoring node sends and the
//! internal service that answers it at once.
//!
//! A request names the incarnation it is meant for; the answer carries the
//! responder's own id, and only an answer from exactly that incarnation counts
//! (a restarted node with the same name does not keep its predecessor alive).
//! Duplicates and late answers only feed the detector one more sample, which
//! the state machine tolerates.

use std::time::Instant;

use membership::NodeId;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::node::Node;
use crate::service::Request;
use crate::services::ServiceExists;

/// The internal service that answers heartbeat requests. It is registered on
/// every node and removed, with every other service, when the node is downed.
pub const HEARTBEAT_SERVICE: &str = "mesh.heartbeat";

/// A heartbeat answer that arrived: from whom, and when.
pub(crate) type HeartbeatAnswer = (NodeId, Instant);

/// Registers [`HEARTBEAT_SERVICE`] on `node`: it answers with the node's id.
pub(crate) fn register(node: &Node) -> Result<(), ServiceExists> {
    let me = node.id().clone();
    let requests = node.metrics().mesh.heartbeat_requests.clone();
    node.register_service(HEARTBEAT_SERVICE, move |req: Request<NodeId, NodeId>| {
        requests.inc();
        // Answered whatever the addressee: the asker checks the id it gets back.
        req.reply(me.clone());
    })
}

/// Sends one heartbeat request to `to` in a task of its own and reports the
/// answer on `answers`. `addr` (from gossip) lets the first request reach a
/// peer the connection table does not know yet; a known peer keeps its entry.
pub(crate) fn send(
    node: &Node,
    to: NodeId,
    addr: Option<std::net::SocketAddr>,
    answers: &mpsc::UnboundedSender<HeartbeatAnswer>,
) {
    if let Some(addr) = addr {
        node.introduce(&to.name, addr);
    }
    let config = &node.config().membership;
    let timeout = config.heartbeat_interval + config.acceptable_heartbeat_pause;
    let node = node.clone();
    let answers = answers.clone();
    node.metrics().mesh.heartbeats_sent.inc();
    tokio::spawn(async move {
        let answer = node
            .ask::<NodeId, NodeId>(&to.name, HEARTBEAT_SERVICE, to.clone(), timeout)
            .await;
        match answer {
            Ok(from) if from == to => {
                node.metrics().mesh.heartbeat_answers.inc();
                let _ = answers.send((from, Instant::now()));
            }
            Ok(other) => {
                tracing::debug!(node = %node.id(), expected = %to, answered = %other, "heartbeat answered by another incarnation");
            }
            Err(error) => {
                tracing::trace!(node = %node.id(), peer = %to, %error, "heartbeat not answered");
            }
        }
    }.in_current_span());
}
