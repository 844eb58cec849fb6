//! The membership part of the [`Node`] API.

use std::future::Future;

use membership::{ordering, Member, MemberEvent, MemberStatus, NodeId};
use tokio::sync::{broadcast, watch};

use super::handle::{Command, NodeExit};
use super::state::{ClusterState, Downed};
use crate::node::Node;

impl Node {
    /// The members as membership sees them, oldest first, this node included
    /// and Removed members left out: status, roles and reachability with the
    /// observers that report it. (Compare [`Node::members`]: chitchat's live
    /// nodes, without status.)
    pub fn cluster_members(&self) -> Vec<Member> {
        self.cluster().members.borrow().clone()
    }

    /// A watch of [`Node::cluster_members`]; it changes whenever a member's
    /// status, roles or reachability does.
    pub fn watch_cluster_members(&self) -> watch::Receiver<Vec<Member>> {
        self.cluster().members.clone()
    }

    /// Member events from now on: `MemberUp`, `MemberLeft`, `MemberExited`,
    /// `MemberDowned`, `MemberRemoved`, `Unreachable`, `Reachable`, `SingletonHostChanged`.
    /// They are sent after [`Node::cluster_members`] reflects them.
    pub fn member_events(&self) -> broadcast::Receiver<MemberEvent> {
        self.cluster().events.subscribe()
    }

    /// Where the singleton for `role` runs (`None`: any role): the oldest
    /// member that is Up and offers the role. Unreachability alone does not
    /// move it; Down and leaving do.
    pub fn singleton_host(&self, role: Option<&str>) -> Option<NodeId> {
        ordering::singleton_host(self.cluster().members.borrow().iter(), role)
    }

    /// The oldest member that is neither Down nor Removed.
    pub fn oldest_member(&self) -> Option<NodeId> {
        ordering::oldest(self.cluster().members.borrow().iter())
    }

    /// Everything membership knows, for the admin API: members, oldest,
    /// singleton hosts, downing settings, the pending decision.
    pub fn cluster_state(&self) -> ClusterState {
        self.cluster().state.borrow().clone()
    }

    /// This node's own status: `Joining` until the cluster admits it, `Up`,
    /// `Leaving`/`Exiting`/`Removed` during [`Node::leave`], or `Down`.
    pub fn self_status(&self) -> MemberStatus {
        *self.cluster().status.borrow()
    }

    /// A watch of [`Node::self_status`].
    pub fn watch_self_status(&self) -> watch::Receiver<MemberStatus> {
        self.cluster().status.clone()
    }

    /// Registers work to finish before this node may leave: on
    /// [`Node::leave`] every handoff runs (concurrently) while the node is
    /// `Leaving`, and the node moves on to `Exiting` once all are done, or
    /// after `membership.leave_handoff_timeout` at the latest. Sharding hands
    /// its shards off here.
    ///
    /// ```no_run
    /// # fn demo(node: &mesh::Node) {
    /// node.on_leave(|| async {
    ///     // hand shards off, move the coordinator away ...
    /// });
    /// # }
    /// ```
    pub fn on_leave<F, Fut>(&self, handoff: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.cluster()
            .handoffs
            .add(Box::new(move || Box::pin(handoff())));
    }

    /// Leaves the cluster gracefully and returns once the node has stopped:
    /// `Leaving` (the [`Node::on_leave`] handoffs run, singletons move away),
    /// `Exiting`, `Removed`; then a gossip round or two so that peers read
    /// `removed`, then [`Node::shutdown`]. Peers never down a leaving node
    /// for going quiet. Returns at once on a stopped node; also returns if
    /// the node is downed or shut down meanwhile.
    pub async fn leave(&self) {
        if self.is_stopped() {
            return;
        }
        let mut exit = self.cluster().exit.clone();
        // A driver that is already finishing has dropped its command
        // receiver: waiting for the exit is all there is to do.
        let _ = self.cluster().commands.send(Command::Leave);
        let _ = exit.wait_for(Option::is_some).await;
    }

    /// An operator's manual Down of the member named `name` (its youngest
    /// incarnation still listed): this node publishes the decision and every
    /// node adopts it (final; the member stops once it learns it). Returns
    /// the member downed, or `None` if no live member has that name.
    pub async fn down_member(&self, name: &str) -> Option<NodeId> {
        let member = self.cluster_state().member_named(name)?.id.clone();
        let (answer, known) = tokio::sync::oneshot::channel();
        self.cluster()
            .commands
            .send(Command::Down(member.clone(), answer))
            .ok()?;
        known.await.unwrap_or(false).then_some(member)
    }

    /// Resolves once the cluster has downed this node and the node has left
    /// the mesh (its services stopped the moment it learned it was Down).
    /// Never resolves if the node stops for another reason (leave, shutdown,
    /// crash); select it with what else ends the program.
    ///
    /// ```no_run
    /// # async fn demo(node: mesh::Node) {
    /// let downed = node.downed().await;
    /// eprintln!("this node was downed by the cluster: {downed}");
    /// std::process::exit(3);
    /// # }
    /// ```
    pub async fn downed(&self) -> Downed {
        let mut exit = self.cluster().exit.clone();
        let downed = match exit.wait_for(Option::is_some).await {
            Ok(exit) => match &*exit {
                Some(NodeExit::Downed(downed)) => Some(downed.clone()),
                _ => None,
            },
            Err(_) => None,
        };
        match downed {
            Some(downed) => downed,
            None => std::future::pending().await,
        }
    }
}
