//! The member model: lifecycle status, reachability flag, and the rules that
//! move a member from one status to the next.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{AppVersion, NodeId};

/// Where a member is in its life (Akka's lifecycle, trimmed):
///
/// ```text
/// Joining -> Up -> Leaving -> Exiting -> Removed
///    \________\______\__________\-----> Down   (from any state, final)
/// ```
///
/// A node publishes its own `Joining`, `Up`, `Leaving`, `Exiting` and
/// `Removed`; `Down` is decided by others (the split-brain resolver) and is
/// final for that generation. Unreachability is not a status: see
/// [`Reachability`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Announced itself, not yet admitted by the cluster.
    Joining,
    /// A full member: may host singletons and shards.
    Up,
    /// Leaving gracefully: its services hand off.
    Leaving,
    /// Handoff done; about to be removed.
    Exiting,
    /// Declared dead by the cluster; final for this generation.
    Down,
    /// Gone gracefully.
    Removed,
}

impl MemberStatus {
    /// Whether the lifecycle allows `self -> next`. Staying put is allowed;
    /// `Down` is reachable from everywhere except `Removed`, and nothing leaves
    /// `Down` or `Removed`.
    pub fn can_move_to(self, next: MemberStatus) -> bool {
        use MemberStatus::*;
        if self == next {
            return true;
        }
        match (self, next) {
            (Down | Removed, _) => false,
            (_, Down) => true,
            (Joining, Up | Leaving) => true,
            (Up, Leaving) => true,
            (Leaving, Exiting) => true,
            (Exiting, Removed) => true,
            _ => false,
        }
    }

    /// Down or Removed: no longer part of the cluster.
    pub fn is_gone(self) -> bool {
        matches!(self, MemberStatus::Down | MemberStatus::Removed)
    }

    /// The statuses that are monitored by heartbeats and can be downed:
    /// `Joining`, `Up`, `Leaving`. An `Exiting` member is about to go quietly.
    pub fn is_monitored(self) -> bool {
        matches!(
            self,
            MemberStatus::Joining | MemberStatus::Up | MemberStatus::Leaving
        )
    }

    /// The statuses counted by the downing strategies: `Up`, `Leaving`.
    pub fn is_counted(self) -> bool {
        matches!(self, MemberStatus::Up | MemberStatus::Leaving)
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            MemberStatus::Joining => "joining",
            MemberStatus::Up => "up",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Exiting => "exiting",
            MemberStatus::Down => "down",
            MemberStatus::Removed => "removed",
        };
        f.write_str(text)
    }
}

/// A flag on a member, not a status: reachable, or unreachable according to
/// the listed observers (non-down members whose failure detector gave up on
/// it). Reachable again once every observer has cleared it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reachability {
    /// No observer reports it.
    #[default]
    Reachable,
    /// At least one observer reports it.
    Unreachable {
        /// Who currently says so.
        observers: BTreeSet<NodeId>,
    },
}

impl Reachability {
    /// From the set of observers that report the member (empty = reachable).
    pub fn from_observers(observers: BTreeSet<NodeId>) -> Self {
        if observers.is_empty() {
            Reachability::Reachable
        } else {
            Reachability::Unreachable { observers }
        }
    }

    /// No observer reports the member.
    pub fn is_reachable(&self) -> bool {
        matches!(self, Reachability::Reachable)
    }

    /// The observers that report the member (empty when reachable).
    pub fn observers(&self) -> impl Iterator<Item = &NodeId> {
        let set = match self {
            Reachability::Reachable => None,
            Reachability::Unreachable { observers } => Some(observers),
        };
        set.into_iter().flatten()
    }
}

/// One member of the cluster as seen by this node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Which incarnation of which node.
    pub id: NodeId,
    /// The advertise address peers use to reach it.
    pub addr: SocketAddr,
    /// Lifecycle status.
    pub status: MemberStatus,
    /// Roles it offers (e.g. which entity types it hosts).
    pub roles: BTreeSet<String>,
    /// The version of the application it runs (`None`: it gossips none,
    /// the lowest of all).
    pub app_version: Option<AppVersion>,
    /// Its place in the order members became Up (`None`: not Up yet, or
    /// not gossiped yet); see [`crate::ordering`].
    pub up_number: Option<u64>,
    /// Whether some observer reports it unreachable.
    pub reachability: Reachability,
}

impl Member {
    /// Whether the member offers `role` (`None` matches every member).
    pub fn has_role(&self, role: Option<&str>) -> bool {
        role.is_none_or(|role| self.roles.contains(role))
    }
}

#[cfg(test)]
mod tests {
    use super::MemberStatus::*;
    use super::*;

    #[test]
    fn lifecycle_moves_forward_only() {
        assert!(Joining.can_move_to(Up));
        assert!(Up.can_move_to(Leaving));
        assert!(Leaving.can_move_to(Exiting));
        assert!(Exiting.can_move_to(Removed));
        assert!(!Up.can_move_to(Joining));
        assert!(!Exiting.can_move_to(Up));
        assert!(!Up.can_move_to(Removed));
    }

    #[test]
    fn down_from_anywhere_and_final() {
        for status in [Joining, Up, Leaving, Exiting] {
            assert!(status.can_move_to(Down), "{status} -> down");
        }
        for next in [Joining, Up, Leaving, Exiting, Removed] {
            assert!(!Down.can_move_to(next), "down -> {next}");
        }
        assert!(!Removed.can_move_to(Down));
    }

    #[test]
    fn reachability_is_empty_observers() {
        assert!(Reachability::from_observers(BTreeSet::new()).is_reachable());
        let r = Reachability::from_observers([NodeId::new("a", 1)].into());
        assert!(!r.is_reachable());
        assert_eq!(r.observers().count(), 1);
    }
}
