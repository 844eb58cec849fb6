//! The probe service every node of a cluster runs: it answers an ask with the
//! identity of the instance that received it, so a test can check that two
//! nodes talk (and which incarnation answered) without a service of its own.

use std::time::Duration;

use mesh::{AskError, Node, NodeId, Request};

/// The name of the probe service.
pub const PROBE_SERVICE: &str = "testbed.probe";

/// Registers the probe service on a fresh node instance.
pub(crate) fn register(node: &Node) {
    let id = node.id().clone();
    // A fresh instance has no services yet, so the name cannot be taken.
    let _ = node.register_service(PROBE_SERVICE, move |req: Request<(), NodeId>| {
        req.reply(id.clone());
    });
}

/// Asks `to`'s probe service from `from`.
pub(crate) async fn ping(from: &Node, to: &str, timeout: Duration) -> Result<NodeId, AskError> {
    from.ask(to, PROBE_SERVICE, (), timeout).await
}
