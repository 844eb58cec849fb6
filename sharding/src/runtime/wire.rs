//! What the drivers of one entity type send each other over the mesh
//! (service `sharding.<type>`), and the errors callers see.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::DeliveryError;
use crate::ids::{Epoch, RegionId};
use crate::messages::{CoordinatorToRegion, Envelope, RegionToCoordinator, RegionToRegion};

/// One message between the nodes of an entity type.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Wire<M, R> {
    /// For the driver of the receiving node.
    Protocol(Protocol<M>),
    /// The answer to an `ask`, to the asking node: the service handler
    /// completes it there, the driver never sees it.
    Reply {
        correlation: u64,
        result: Result<R, String>,
    },
}

/// An `ask` sent from the caller's task straight to the node where its
/// entity lives (service `sharding.<type>.ask`), as a mesh ask: that node
/// answers through the mesh ask, so the answer reaches the caller the way
/// a plain mesh ask's does (read by the caller itself while it is the only
/// one waiting on that peer, see `mesh::link::incoming`), not through
/// this node's mesh reader and then a wake of the caller. The receiving
/// node registers the ask as its own (its `reply_to`), so an answer from
/// wherever the message ends up (bounced, forwarded) comes back through it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DirectAsk<M> {
    /// What the caller's region would have sent, without a `reply_to`.
    pub(crate) delivery: Envelope<RegionToRegion<M>>,
    /// How long the caller waits: the receiver forgets the ask after it.
    pub(crate) timeout: Duration,
}

/// What the drivers of an entity type on two nodes tell each other.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Protocol<M> {
    /// To the coordinator, wherever it runs now.
    ToCoordinator(Envelope<RegionToCoordinator>),
    /// From the coordinator to one region incarnation.
    ToRegion {
        to: RegionId,
        message: Envelope<CoordinatorToRegion>,
    },
    /// Between regions (entity traffic).
    Region(Envelope<RegionToRegion<M>>),
    /// The coordinator of `epoch` has handed off everything the leaving
    /// region `to` hosted: its node may exit.
    HandedOff { to: RegionId, epoch: Epoch },
}

impl ShardingError {
    /// A mesh send to another node of entity type `entity_type` failed.
    pub(crate) fn from_mesh(entity_type: &str, error: mesh::SendError) -> Self {
        match error {
            mesh::SendError::Backpressure(_) => Self::Backpressure(entity_type.to_string()),
            mesh::SendError::Shutdown => Self::Stopped,
            error => Self::Unreachable(error.to_string()),
        }
    }
}

/// The mesh service of an entity type.
pub(crate) fn service_name(entity_type: &str) -> String {
    format!("sharding.{entity_type}")
}

/// The mesh service that takes [`DirectAsk`]s of an entity type.
pub(crate) fn ask_service_name(entity_type: &str) -> String {
    format!("sharding.{entity_type}.ask")
}

/// The mesh service that answers state queries of an entity type.
pub(crate) fn view_service_name(entity_type: &str) -> String {
    format!("sharding.{entity_type}.view")
}

/// Why a sharded `tell` or `ask` failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShardingError {
    /// The region refused or could not route the message.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// No reply within the deadline (the message may still be handled:
    /// retry with an idempotency key).
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The region's queue is full: slow down.
    #[error("the region of {0:?} is overloaded (its queue is full)")]
    Backpressure(String),
    /// The entity failed (panicked) or the reply could not be carried back.
    #[error("remote failure: {0}")]
    Remote(String),
    /// The message could not be sent to the entity's home.
    #[error("cannot reach the home region: {0}")]
    Unreachable(String),
    /// Sharding on this node has stopped (node shut down, left or downed).
    #[error("sharding has stopped on this node")]
    Stopped,
    /// An entity type of that name is already running on this node.
    #[error("entity type {0:?} is already started")]
    AlreadyStarted(String),
    /// The configuration is invalid.
    #[error("invalid sharding config: {0}")]
    Config(String),
}
