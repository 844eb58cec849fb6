//! A node as an operating-system process: stop on SIGINT or SIGTERM by
//! leaving the cluster gracefully, and exit with [`EXIT_DOWNED`] when the
//! cluster downs the node, so that an orchestrator restarts it as a new
//! incarnation. `mesh-node` and the examples run their nodes through
//! [`serve_until_stopped`].
//!
//! ```no_run
//! # async fn demo(node: mesh::Node) -> std::io::Result<std::process::ExitCode> {
//! let stop = async { mesh::process::signal().await.map(|()| "signal received") };
//! mesh::process::serve_until_stopped(&node, stop).await
//! # }
//! ```

use std::future::Future;
use std::process::ExitCode;

use membership::MemberStatus;

use crate::Node;

/// Exit code of a node process that the cluster downed (2 is bad input).
pub const EXIT_DOWNED: u8 = 3;

/// Resolves on the next SIGINT or SIGTERM.
pub async fn signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Runs until `stop` resolves (with the reason to log) or the cluster downs
/// the node. On `stop` the node leaves gracefully (its shards and
/// singletons move first); a signal during the leave stops it at once.
/// Returns the process's exit code: success after a leave,
/// [`EXIT_DOWNED`] when downed (before or during the leave).
pub async fn serve_until_stopped<F>(node: &Node, stop: F) -> std::io::Result<ExitCode>
where
    F: Future<Output = std::io::Result<&'static str>>,
{
    tokio::select! {
        reason = stop => {
            let reason = reason?;
            tracing::info!(node = %node.id(), "{reason}, leaving the cluster (a second signal stops at once)");
            tokio::select! {
                () = node.leave() => {}
                second = signal() => {
                    second?;
                    tracing::warn!(node = %node.id(), "second signal, stopping without finishing the leave");
                    node.shutdown().await;
                }
            }
            if node.self_status() == MemberStatus::Down {
                tracing::error!(node = %node.id(), "this node was downed by the cluster while leaving");
                return Ok(ExitCode::from(EXIT_DOWNED));
            }
            tracing::info!(node = %node.id(), "left the cluster");
            Ok(ExitCode::SUCCESS)
        }
        downed = node.downed() => {
            tracing::error!(node = %node.id(), "this node was downed by the cluster: {downed}; exiting");
            Ok(ExitCode::from(EXIT_DOWNED))
        }
    }
}
