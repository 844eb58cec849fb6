//! Errors of this crate. Values read from gossip that fail to decode are
//! skipped by the caller, never turned into a panic.

use thiserror::Error;

/// A chitchat key or value of the membership schema could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The text is not a `name#generation` node id.
    #[error("not a node id (expected name#generation): {0:?}")]
    BadNodeId(String),
    /// The text is not one of the lifecycle statuses a node publishes.
    #[error("not a member status: {0:?}")]
    BadStatus(String),
}

/// A duration in the configuration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a duration (expected e.g. \"200ms\", \"2s\", \"1m\"): {0:?}")]
pub struct DurationError(pub String);

/// A membership configuration that would break a guarantee.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `stable_after` is not longer than a node takes to find a newly
    /// monitored peer that never answers unreachable (see
    /// [`MembershipConfig::first_detection`](crate::MembershipConfig::first_detection)).
    #[error(
        "stable_after ({stable_after:?}) must be longer than the {detection:?} a node \
         takes to find a newly monitored peer that never answers unreachable \
         (heartbeat_interval, acceptable_heartbeat_pause and phi_threshold set it): \
         otherwise a node that joined one side of a cut takes its own silence for \
         contact, and its side stays up beside the majority"
    )]
    DetectionSlowerThanDecision {
        /// The configured `stable_after`.
        stable_after: std::time::Duration,
        /// How long a silent new peer takes to be found unreachable.
        detection: std::time::Duration,
    },
}
