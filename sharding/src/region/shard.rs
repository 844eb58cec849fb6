//! What a region knows about one shard: where it lives (or that it lives
//! here, and in which state), the messages waiting for it, and the newest
//! coordinator instruction about it.

use std::collections::VecDeque;
use std::time::Instant;

use crate::ids::{Epoch, RegionId, RequestId};
use crate::messages::Delivery;

/// A shard as one region sees it (public view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardStatus {
    /// Home unknown or moving: messages are buffered, `GetShardHome` asked.
    Unknown,
    /// Lives in another region: messages are forwarded there.
    Remote(RegionId),
    /// Runs here under a valid lease: messages are delivered.
    Active,
    /// State here, but paused (lease ran out, or this side would not
    /// survive): messages are buffered until the coordinator confirms.
    Fenced,
    /// `Handoff` received: entities are stopping; messages are buffered.
    Stopping,
}

/// Internal state, with the bookkeeping the public view leaves out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Home {
    Unknown { asked_at: Option<Instant> },
    Remote(RegionId),
    Active,
    Fenced,
    Stopping,
}

impl Home {
    /// The shard's state lives in this region.
    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Home::Active | Home::Fenced | Home::Stopping)
    }

    pub(crate) fn status(&self) -> ShardStatus {
        match self {
            Home::Unknown { .. } => ShardStatus::Unknown,
            Home::Remote(region) => ShardStatus::Remote(region.clone()),
            Home::Active => ShardStatus::Active,
            Home::Fenced => ShardStatus::Fenced,
            Home::Stopping => ShardStatus::Stopping,
        }
    }
}

/// Where a coordinator instruction stands against the newest one seen for
/// the same shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Older than the newest seen: ignore.
    Late,
    /// The newest seen, again: answer again, change nothing.
    Duplicate,
    /// Newer: apply.
    New,
}

/// One shard in one region.
#[derive(Clone, Debug)]
pub(crate) struct ShardEntry<P> {
    pub home: Home,
    pub buffer: VecDeque<Delivery<P>>,
    /// The newest coordinator instruction applied to this shard.
    pub last_instruction: Option<(Epoch, RequestId)>,
}

impl<P> Default for ShardEntry<P> {
    fn default() -> Self {
        Self {
            home: Home::Unknown { asked_at: None },
            buffer: VecDeque::new(),
            last_instruction: None,
        }
    }
}

impl<P> ShardEntry<P> {
    /// Compares an instruction with the newest seen, and records it if newer.
    pub(crate) fn order(&mut self, epoch: Epoch, request_id: RequestId) -> Order {
        let incoming = (epoch, request_id);
        match self.last_instruction {
            Some(last) if incoming < last => Order::Late,
            Some(last) if incoming == last => Order::Duplicate,
            _ => {
                self.last_instruction = Some(incoming);
                Order::New
            }
        }
    }
}
