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
