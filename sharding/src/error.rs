//! Errors of this crate. Garbage or stale messages from the network are not
//! errors: handlers ignore them (and say so in a comment); these are what a
//! user or a sender gets to see.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::ShardId;

/// Why a message could not be delivered to its entity. The region hands it
/// back as [`crate::RegionEffect::DeliveryFailed`]; the driver answers the
/// sender with it (rule 5: never a silent drop).
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum DeliveryError {
    /// The shard's buffer is full while its home is unknown, moving or fenced.
    #[error("buffer of {shard} is full ({capacity} messages) while its home is unknown or moving")]
    BufferFull {
        /// The shard.
        shard: ShardId,
        /// The configured `buffer_size`.
        capacity: usize,
    },
    /// The message bounced between regions (`NotHere`) too often.
    #[error("message for {shard} bounced between regions {hops} times")]
    TooManyHops {
        /// The shard.
        shard: ShardId,
        /// How often it was bounced.
        hops: u8,
    },
    /// The entity's handler had started and was stopped before it answered,
    /// because its shard's lease was lost (the shard was fenced, handed off
    /// or dropped): the message may or may not have taken effect. Retry
    /// with the same idempotency key.
    #[error("the handler for an entity of {shard} was interrupted: its shard lost its lease")]
    Interrupted {
        /// The shard.
        shard: ShardId,
    },
    /// The shard number is not below `number_of_shards` (a garbage message).
    #[error("{shard} does not exist (number_of_shards = {number_of_shards})")]
    NoSuchShard {
        /// The shard.
        shard: ShardId,
        /// The configured number of shards.
        number_of_shards: u32,
    },
}

/// The configuration breaks a relation the guarantees rely on.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ConfigError {
    /// `number_of_shards` is 0.
    #[error("number_of_shards must be at least 1")]
    NoShards,
    /// A lease must be renewed more than once per lease.
    #[error("lease_renewal_interval ({renewal:?}) must be above zero and shorter than the lease ({lease:?})")]
    RenewalNotShorterThanLease {
        /// The renewal interval.
        renewal: Duration,
        /// The lease.
        lease: Duration,
    },
    /// `buffer_size` is 0.
    #[error("buffer_size must be at least 1")]
    NoBuffer,
    /// `rebalance_relative_limit` is not within 0..=1.
    #[error("rebalance_relative_limit must be within 0..=1, got {0}")]
    RelativeLimit(f64),
    /// `tick_interval`, `retry_interval` or `daemon_keep_alive_interval` is zero.
    #[error("tick_interval, retry_interval and daemon_keep_alive_interval must be above zero")]
    ZeroInterval,
}
