//! Waiting for a condition with a deadline, never with a fixed sleep: the
//! condition is polled every [`POLL`] until it holds or the deadline passes,
//! and a timeout carries the dump of what every node saw.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use mesh::NodeId;
use tokio::time::Instant;

use super::error::WaitTimeout;
use super::harness::{Cluster, NodeState};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(20);

impl Cluster {
    /// Polls `condition` until it holds; after `deadline` fails with `what`
    /// and [`describe`](Self::describe)'s dump of every node's view.
    ///
    /// ```no_run
    /// # async fn demo(cluster: &testbed::Cluster) -> Result<(), testbed::cluster::WaitTimeout> {
    /// use std::time::Duration;
    /// cluster
    ///     .wait_until(Duration::from_secs(5), "n1 alone", |c| c.node("n1").members().len() == 1)
    ///     .await
    /// # }
    /// ```
    pub async fn wait_until(
        &self,
        deadline: Duration,
        what: &str,
        mut condition: impl FnMut(&Cluster) -> bool,
    ) -> Result<(), WaitTimeout> {
        let give_up = Instant::now() + deadline;
        loop {
            if condition(self) {
                return Ok(());
            }
            if Instant::now() >= give_up {
                return Err(self.timed_out(deadline, what));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Like [`wait_until`](Self::wait_until) for a condition that must await
    /// (an ask, say). Each evaluation should be bounded by its own timeout,
    /// shorter than `deadline`.
    ///
    /// ```no_run
    /// # async fn demo(cluster: &testbed::Cluster) -> Result<(), testbed::cluster::WaitTimeout> {
    /// use std::time::Duration;
    /// let ask = Duration::from_millis(300);
    /// cluster
    ///     .wait_until_async(Duration::from_secs(10), "n1 reaches n2", |c| async move {
    ///         c.ping("n1", "n2", ask).await.is_ok()
    ///     })
    ///     .await
    /// # }
    /// ```
    pub async fn wait_until_async<'a, F, Fut>(
        &'a self,
        deadline: Duration,
        what: &str,
        mut condition: F,
    ) -> Result<(), WaitTimeout>
    where
        F: FnMut(&'a Cluster) -> Fut,
        Fut: Future<Output = bool> + 'a,
    {
        let give_up = Instant::now() + deadline;
        loop {
            if condition(self).await {
                return Ok(());
            }
            if Instant::now() >= give_up {
                return Err(self.timed_out(deadline, what));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether every running node's gossip view lists exactly the running
    /// nodes, in their current incarnations (no crashed or left node, no old
    /// generation).
    pub fn converged(&self) -> bool {
        let running: Vec<(mesh::Node, NodeId)> = self
            .lock()
            .iter()
            .filter(|slot| slot.state == NodeState::Running)
            .map(|slot| (slot.node.clone(), slot.node.id().clone()))
            .collect();
        let expected: BTreeSet<&NodeId> = running.iter().map(|(_, id)| id).collect();
        running.iter().all(|(node, _)| {
            let members = node.members();
            members.len() == expected.len() && members.iter().all(|m| expected.contains(&m.id))
        })
    }

    fn timed_out(&self, deadline: Duration, what: &str) -> WaitTimeout {
        WaitTimeout {
            what: what.to_string(),
            after: deadline,
            dump: self.describe(),
        }
    }
}
