//! Snapshots the driver publishes: the cluster as this node sees it, and why
//! this node was downed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use membership::{
    ordering, DowningStrategy, Member, MemberStatus, Membership, MembershipConfig, NodeId,
    PendingDecision,
};
use serde::Serialize;

/// The downing settings in force, as the admin API shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DowningSettings {
    /// The split-brain strategy (flattened: `"strategy": "keep-majority"`).
    #[serde(flatten)]
    pub strategy: DowningStrategy,
    /// How long the unreachable set must hold still before a decision.
    #[serde(with = "membership::duration::human")]
    pub stable_after: Duration,
    /// The bound after which an unstable view downs everyone (`"off"`: never).
    #[serde(with = "membership::duration::human_opt")]
    pub down_all_when_unstable: Option<Duration>,
}

impl DowningSettings {
    pub(crate) fn from_config(config: &MembershipConfig) -> Self {
        Self {
            strategy: config.downing.clone(),
            stable_after: config.stable_after,
            down_all_when_unstable: config.down_all_when_unstable,
        }
    }
}

/// The cluster as this node sees it, refreshed on every driver tick.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterState {
    /// This node.
    pub self_id: NodeId,
    /// This node's own status (`Down` once the cluster has downed it).
    pub self_status: MemberStatus,
    /// The members, oldest first, Removed ones left out.
    pub members: Vec<Member>,
    /// Departed incarnations still in gossip (Removed after a leave, or
    /// after a Down every member has seen), oldest first.
    pub departed: Vec<Member>,
    /// The oldest member that is neither Down nor Removed.
    pub oldest: Option<NodeId>,
    /// Where a singleton for any role runs: the member that became Up first.
    pub singleton_host: Option<NodeId>,
    /// Where the singleton of each role offered by some member runs.
    pub singleton_hosts: BTreeMap<String, Option<NodeId>>,
    /// The downing strategy and its timers.
    pub downing: DowningSettings,
    /// What the split-brain resolver would decide and when, if a member is
    /// unreachable. `decide_at` is exact; `decide_in` was computed at the tick.
    pub pending_decision: Option<PendingDecision>,
    /// The peers this node sends heartbeats to.
    pub monitored: Vec<NodeId>,
    /// Whether this node's side would survive if the pending decision were
    /// taken now.
    pub would_survive: bool,
}

impl ClusterState {
    /// Reads everything the admin API and [`crate::Node`] need from the brain.
    pub(crate) fn of(membership: &Membership) -> Self {
        let members = membership.members();
        let mut singleton_hosts = BTreeMap::new();
        for role in members.iter().flat_map(|m| m.roles.iter()) {
            if !singleton_hosts.contains_key(role) {
                let host = ordering::singleton_host(&members, Some(role));
                singleton_hosts.insert(role.clone(), host);
            }
        }
        Self {
            self_id: membership.self_id().clone(),
            self_status: membership.status(),
            oldest: membership.oldest(),
            singleton_host: membership.singleton_host(None),
            singleton_hosts,
            downing: DowningSettings::from_config(membership.config()),
            pending_decision: membership.pending_decision(),
            monitored: membership.monitored(),
            would_survive: membership.would_survive(),
            departed: membership.departed(),
            members,
        }
    }

    /// One member by name (any generation still listed; the youngest wins).
    pub fn member_named(&self, name: &str) -> Option<&Member> {
        self.members.iter().rev().find(|m| m.id.name == name)
    }
}

/// Why this node was downed, for the log line and the exit of `mesh-node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downed {
    /// This node.
    pub id: NodeId,
    /// The members whose Down decision named this node (possibly itself,
    /// when its own side lost).
    pub decided_by: Vec<NodeId>,
    /// A younger incarnation of the same name, if one superseded this node.
    pub superseded_by: Option<NodeId>,
    /// The members this node saw as unreachable when it learned it was Down.
    pub unreachable: Vec<NodeId>,
}

impl fmt::Display for Downed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is Down", self.id)?;
        if let Some(younger) = &self.superseded_by {
            write!(f, ", superseded by the younger incarnation {younger}")?;
        }
        if !self.decided_by.is_empty() {
            write!(f, ", decided by {}", join(&self.decided_by))?;
        }
        if !self.unreachable.is_empty() {
            write!(
                f,
                " (unreachable from here at the time: {})",
                join(&self.unreachable)
            )?;
        }
        if self.decided_by.is_empty() && self.superseded_by.is_none() {
            write!(f, " (the deciding member's key is no longer in gossip)")?;
        }
        Ok(())
    }
}

fn join(ids: &[NodeId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downed_reads_as_one_line() {
        let downed = Downed {
            id: NodeId::new("n3", 3),
            decided_by: vec![NodeId::new("n1", 1)],
            superseded_by: None,
            unreachable: vec![NodeId::new("n1", 1), NodeId::new("n2", 2)],
        };
        assert_eq!(
            downed.to_string(),
            "n3#3 is Down, decided by n1#1 (unreachable from here at the time: n1#1, n2#2)"
        );
    }

    #[test]
    fn downing_settings_serialize_flat() {
        let settings = DowningSettings::from_config(&MembershipConfig::default());
        let json = serde_json::to_value(&settings).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "strategy": "keep-majority",
                "stable_after": "2000ms",
                "down_all_when_unstable": "4000ms"
            })
        );
    }
}
