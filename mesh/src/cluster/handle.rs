//! What a [`crate::Node`] holds of its driver: the receiving ends of the
//! driver's outputs and the way to send it commands.

use membership::{Member, MemberEvent, MemberStatus, Membership, NodeId};
use tokio::sync::{broadcast, mpsc, watch};

use super::leave::LeaveHandoffs;
use super::state::{ClusterState, Downed};

/// How many member events a slow subscriber may fall behind before it misses
/// some (it then gets `RecvError::Lagged` and should re-read the members).
const EVENT_BUFFER: usize = 1024;

/// How the node left the cluster.
#[derive(Clone, Debug)]
pub(crate) enum NodeExit {
    /// Gracefully: Leaving, Exiting, Removed, then shut down.
    Left,
    /// The cluster downed it; it stopped its services and shut down.
    Downed(Downed),
}

/// Requests to the driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// Start a graceful leave (again: ignored).
    Leave,
    /// Every leave handoff has finished.
    HandoffDone,
    /// An operator downs a member; the answer says whether it was known.
    Down(NodeId, tokio::sync::oneshot::Sender<bool>),
}

/// The node's side of the driver.
pub(crate) struct ClusterHandle {
    pub(crate) members: watch::Receiver<Vec<Member>>,
    pub(crate) state: watch::Receiver<ClusterState>,
    pub(crate) status: watch::Receiver<MemberStatus>,
    pub(crate) exit: watch::Receiver<Option<NodeExit>>,
    pub(crate) events: broadcast::Sender<MemberEvent>,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) handoffs: LeaveHandoffs,
}

/// The driver's side: where it publishes, and where commands arrive.
pub(crate) struct Outputs {
    pub(crate) members: watch::Sender<Vec<Member>>,
    pub(crate) state: watch::Sender<ClusterState>,
    pub(crate) status: watch::Sender<MemberStatus>,
    pub(crate) exit: watch::Sender<Option<NodeExit>>,
    pub(crate) events: broadcast::Sender<MemberEvent>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    /// For the driver's own tasks (the handoff runner) to report back.
    pub(crate) command_tx: mpsc::UnboundedSender<Command>,
    pub(crate) handoffs: LeaveHandoffs,
}

impl ClusterHandle {
    /// Both ends, starting from what `membership` shows before its first tick.
    pub(crate) fn channels(membership: &Membership) -> (ClusterHandle, Outputs) {
        let state = ClusterState::of(membership);
        let (members_tx, members) = watch::channel(state.members.clone());
        let (status_tx, status) = watch::channel(state.self_status);
        let (state_tx, state) = watch::channel(state);
        let (exit_tx, exit) = watch::channel(None);
        let events = broadcast::channel(EVENT_BUFFER).0;
        let (command_tx, commands) = mpsc::unbounded_channel();
        let handoffs = LeaveHandoffs::default();
        let handle = ClusterHandle {
            members,
            state,
            status,
            exit,
            events: events.clone(),
            commands: command_tx.clone(),
            handoffs: handoffs.clone(),
        };
        let outputs = Outputs {
            members: members_tx,
            state: state_tx,
            status: status_tx,
            exit: exit_tx,
            events,
            commands,
            command_tx,
            handoffs,
        };
        (handle, outputs)
    }
}
