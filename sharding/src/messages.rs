//! Every message of the DESIGN.md section 5 table, as serde types.
//!
//! Each message travels in an [`Envelope`] that carries the coordinator
//! epoch the sender knows, the sender's own request id and the sender's
//! region id. Answers name the request they answer in their body
//! (`RegisterAck::register`, `LeaseGranted::renewal`, ...).
//!
//! | from -> to | message |
//! |---|---|
//! | region -> coordinator | [`RegionToCoordinator::Register`] (also the answer to [`CoordinatorToRegion::CoordinatorStarted`]) |
//! | coordinator -> region | [`CoordinatorToRegion::RegisterAck`] |
//! | region -> coordinator | [`RegionToCoordinator::GetShardHome`] |
//! | coordinator -> region | [`CoordinatorToRegion::ShardHome`] / [`CoordinatorToRegion::HostShard`] |
//! | region -> coordinator | [`RegionToCoordinator::ShardStarted`] |
//! | coordinator -> region | [`CoordinatorToRegion::BeginHandoff`] |
//! | region -> coordinator | [`RegionToCoordinator::BeginHandoffAck`] |
//! | coordinator -> old home | [`CoordinatorToRegion::Handoff`] |
//! | old home -> coordinator | [`RegionToCoordinator::ShardStopped`] |
//! | region -> coordinator | [`RegionToCoordinator::RenewLease`] / coordinator -> region [`CoordinatorToRegion::LeaseGranted`] |
//! | region -> region | [`RegionToRegion::Deliver`] / [`RegionToRegion::NotHere`] |

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{EntityId, Epoch, RegionId, ReplyTo, RequestId, ShardId};

/// A message with the facts every receiver checks first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<M> {
    /// The coordinator epoch the sender knows (the coordinator's own epoch
    /// when the coordinator sends).
    pub epoch: Epoch,
    /// The sender's own request id; a retransmission reuses it.
    pub request_id: RequestId,
    /// The sending region (for the coordinator: the node it runs on).
    pub from: RegionId,
    /// The message itself.
    pub body: M,
}

impl<P> Envelope<RegionToRegion<P>> {
    /// Entity traffic between regions. Its request id is always 0: such
    /// messages are neither ordered nor de-duplicated by id (an answer finds
    /// its asker by [`ReplyTo::correlation`]), so anyone who knows the
    /// sending region's id and epoch can build it.
    pub fn entity_traffic(epoch: Epoch, from: RegionId, body: RegionToRegion<P>) -> Self {
        Self {
            epoch,
            request_id: RequestId(0),
            from,
            body,
        }
    }
}

/// Region -> coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegionToCoordinator {
    /// "This is what I run." Sent at start, in answer to
    /// `CoordinatorStarted`, and whenever the region has fenced shards to
    /// resume. A snapshot: the latest one (highest request id) wins.
    Register {
        /// Shards running here under a lease the region believes valid.
        hosted: Vec<ShardId>,
        /// Shards whose state is in memory but paused (lease ran out, or
        /// this node's side would not survive).
        fenced: Vec<ShardId>,
        /// Shards told to `Handoff` whose entities are still stopping.
        handing_off: Vec<ShardId>,
        /// A proxy region hosts nothing, only routes; it registers to learn
        /// about handoffs.
        proxy_only: bool,
    },
    /// The region has a message for a shard whose home it does not know; it
    /// buffers until `ShardHome` or `HostShard`.
    GetShardHome {
        /// The shard.
        shard: ShardId,
    },
    /// The region runs the shard it was told to host.
    ShardStarted {
        /// The shard.
        shard: ShardId,
        /// The request id of the `HostShard` this answers.
        host: RequestId,
    },
    /// The region stopped routing to the shard's old home and buffers.
    BeginHandoffAck {
        /// The shard.
        shard: ShardId,
        /// The request id of the `BeginHandoff` this answers.
        begin: RequestId,
    },
    /// The old home stopped every entity of the shard: it is free.
    ShardStopped {
        /// The shard.
        shard: ShardId,
    },
    /// Please renew my lease; the region counts the new lease from the
    /// moment it sent this (the envelope's request id names it).
    RenewLease,
}

/// Coordinator -> region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinatorToRegion {
    /// A coordinator with the envelope's epoch runs: register with it.
    CoordinatorStarted,
    /// The region is registered in the envelope's epoch and holds a lease
    /// counted from when it sent `register`.
    RegisterAck {
        /// The request id of the `Register` this answers.
        register: RequestId,
        /// The lease duration.
        lease: Duration,
        /// Reported shards the region keeps: resume them.
        confirmed: Vec<ShardId>,
        /// Reported shards that live elsewhere now: drop them.
        drop: Vec<ShardId>,
    },
    /// The home of a shard (answer to `GetShardHome`, or news after a move).
    ShardHome {
        /// The shard.
        shard: ShardId,
        /// The region that runs it.
        home: RegionId,
    },
    /// Run this shard (the receiver is its new home); answer `ShardStarted`.
    HostShard {
        /// The shard.
        shard: ShardId,
    },
    /// The shard is about to move: stop routing to its old home and buffer;
    /// answer `BeginHandoffAck`.
    BeginHandoff {
        /// The shard.
        shard: ShardId,
    },
    /// (To the old home.) Stop the entities of the shard; answer
    /// `ShardStopped` when they are stopped.
    Handoff {
        /// The shard.
        shard: ShardId,
    },
    /// The renewal `renewal` is granted: the lease runs `lease` from when
    /// the region sent it.
    LeaseGranted {
        /// The request id of the `RenewLease` this answers.
        renewal: RequestId,
        /// The lease duration.
        lease: Duration,
    },
}

/// A message for an entity on its way to the entity's home.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery<P> {
    /// The entity's shard.
    pub shard: ShardId,
    /// The entity.
    pub entity: EntityId,
    /// The user's message.
    pub payload: P,
    /// Where the answer or an error goes; `None` for a `tell` whose sender
    /// does not wait.
    pub reply_to: Option<ReplyTo>,
    /// How often it has been bounced with `NotHere` so far.
    pub hops: u8,
}

/// Region -> region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegionToRegion<P> {
    /// Deliver to the entity; the receiver believes to be its home.
    Deliver(Delivery<P>),
    /// "The shard does not live here": the message comes back whole, so the
    /// sender refreshes its home cache and routes it again (nothing is lost).
    NotHere(Delivery<P>),
}

impl<P> RegionToRegion<P> {
    /// For logs: the kind, entity and asker, without the payload.
    pub fn kind(&self) -> (&'static str, &str, Option<u64>) {
        match self {
            RegionToRegion::Deliver(d) => (
                "deliver",
                &d.entity,
                d.reply_to.as_ref().map(|r| r.correlation),
            ),
            RegionToRegion::NotHere(d) => (
                "not-here",
                &d.entity,
                d.reply_to.as_ref().map(|r| r.correlation),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_through_serde() {
        let message = Envelope {
            epoch: Epoch(7),
            request_id: RequestId(3),
            from: RegionId::new("a", 1),
            body: RegionToCoordinator::Register {
                hosted: vec![ShardId(1)],
                fenced: vec![ShardId(2)],
                handing_off: vec![],
                proxy_only: false,
            },
        };
        let json = serde_json::to_string(&message).expect("serializes");
        let back: Envelope<RegionToCoordinator> = serde_json::from_str(&json).expect("reads");
        assert_eq!(back, message);

        let deliver = RegionToRegion::Deliver(Delivery {
            shard: ShardId(4),
            entity: "e".into(),
            payload: vec![1u8, 2],
            reply_to: Some(ReplyTo {
                node: RegionId::new("b", 2),
                correlation: 9,
            }),
            hops: 0,
        });
        let json = serde_json::to_string(&deliver).expect("serializes");
        let back: RegionToRegion<Vec<u8>> = serde_json::from_str(&json).expect("reads");
        assert_eq!(back, deliver);
    }
}
