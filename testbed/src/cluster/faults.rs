//! Network faults between named nodes: shortcuts over the [`ProxyNetwork`]
//! that also write the timeline. Each takes effect on the next packet; nobody
//! reconnects.
//!
//! [`ProxyNetwork`]: crate::proxy::ProxyNetwork

use serde::{Deserialize, Serialize};

use super::error::ClusterError;
use super::harness::Cluster;
use super::timeline::TimelineEvent;
use crate::proxy::LinkRule;

/// Which directions of a pair of nodes a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// `a` -> `b` and `b` -> `a`.
    Both,
    /// `a` -> `b` only; `b` -> `a` keeps its rule.
    OneWay,
}

impl Cluster {
    /// Cuts every node of `a` from every node of `b`, both ways. Links inside
    /// each side keep their rules. Unknown names, or a name on both sides,
    /// change nothing and fail.
    pub fn partition<A: AsRef<str>, B: AsRef<str>>(
        &self,
        a: &[A],
        b: &[B],
    ) -> Result<(), ClusterError> {
        self.network.partition(a, b)?;
        let a = a.iter().map(|n| n.as_ref().to_string()).collect();
        let b = b.iter().map(|n| n.as_ref().to_string()).collect();
        self.recorder
            .record(None, TimelineEvent::Partition { a, b });
        Ok(())
    }

    /// Drops the packets from `a` to `b`, and from `b` to `a` too for
    /// [`Direction::Both`].
    pub fn blackhole(&self, a: &str, b: &str, direction: Direction) -> Result<(), ClusterError> {
        self.network.blackhole(a, b)?;
        if direction == Direction::Both {
            self.network.blackhole(b, a)?;
        }
        self.recorder.record(
            None,
            TimelineEvent::Blackhole {
                from: a.to_string(),
                to: b.to_string(),
                direction,
            },
        );
        Ok(())
    }

    /// Loses each packet between `a` and `b` (both ways) with probability
    /// `p`, on top of the links' other impairments.
    pub fn loss(&self, a: &str, b: &str, p: f64) -> Result<(), ClusterError> {
        self.amend_both(a, b, |rule| rule.with_loss(p))
    }

    /// Delays each packet between `a` and `b` (both ways) by `ms` ±
    /// `jitter_ms`, on top of the links' other impairments.
    pub fn delay(&self, a: &str, b: &str, ms: u64, jitter_ms: u64) -> Result<(), ClusterError> {
        self.amend_both(a, b, |rule| rule.with_delay(ms, jitter_ms))
    }

    /// Sets the rule of the one link `from` -> `to`, replacing what it had.
    pub fn set_rule(&self, from: &str, to: &str, rule: LinkRule) -> Result<(), ClusterError> {
        self.network.set_rule(from, to, rule.clone())?;
        let (from, to) = (from.to_string(), to.to_string());
        self.recorder
            .record(None, TimelineEvent::Rule { from, to, rule });
        Ok(())
    }

    /// Every link passes again (the counters are kept).
    pub fn heal(&self) {
        self.network.heal();
        self.recorder.record(None, TimelineEvent::Heal);
    }

    /// Changes the rules of `a` -> `b` and `b` -> `a` with `amend`; if either
    /// is refused, neither changes.
    fn amend_both(
        &self,
        a: &str,
        b: &str,
        amend: impl Fn(LinkRule) -> LinkRule,
    ) -> Result<(), ClusterError> {
        let forth = amend(self.network.rule(a, b));
        let back = amend(self.network.rule(b, a));
        forth.validate().map_err(crate::proxy::ProxyError::from)?;
        self.set_rule(a, b, forth)?;
        self.set_rule(b, a, back)
    }
}
