//! Links are directed pairs of node names; each has a rule and counters.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::rule::{LinkRule, Verdict};

/// The name under which packets from a source address that no node registered
/// are counted. Rules cannot target it: such packets always pass.
pub const UNKNOWN_PEER: &str = "?";

/// A directed link between two node names: packets travelling `from` -> `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Link {
    /// Name of the sending node (or [`UNKNOWN_PEER`]).
    pub from: String,
    /// Name of the receiving node (or [`UNKNOWN_PEER`]).
    pub to: String,
}

impl Link {
    /// The link `from` -> `to`.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// What a link did with its packets since the network was created.
///
/// Every packet that reached the relay counts once in `passed` or `dropped`;
/// `delayed`, `duplicated` and `reordered` count passed packets that were also
/// delayed (by more than zero), sent twice, or held back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCounters {
    /// Packets forwarded (a duplicated packet counts once here).
    pub passed: u64,
    /// Packets not forwarded (by `drop` or `loss`).
    pub dropped: u64,
    /// Forwarded packets that waited for a delay.
    pub delayed: u64,
    /// Forwarded packets that were sent twice.
    pub duplicated: u64,
    /// Forwarded packets that were held back behind later ones.
    pub reordered: u64,
}

impl LinkCounters {
    /// Packets that reached the link: `passed + dropped`.
    pub fn seen(&self) -> u64 {
        self.passed + self.dropped
    }

    pub(crate) fn record(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Drop => self.dropped += 1,
            Verdict::Forward(forward) => {
                self.passed += 1;
                self.delayed += u64::from(!forward.delay.is_zero());
                self.duplicated += u64::from(forward.copies > 1);
                self.reordered += u64::from(forward.hold.is_some());
            }
        }
    }
}

/// A link's rule and counters, as listed by
/// [`ProxyNetwork::links`](crate::proxy::ProxyNetwork::links) and `GET /links`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// Sending node.
    pub from: String,
    /// Receiving node.
    pub to: String,
    /// The rule in force.
    pub rule: LinkRule,
    /// What the link did so far.
    pub counters: LinkCounters,
}
