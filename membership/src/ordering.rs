//! The deterministic ordering of members and what follows from it.
//!
//! Members order oldest first by `(generation, name)` ([`NodeId`]'s `Ord`), so
//! every node that sees the same members agrees on the oldest one without a
//! vote. A restarted node takes a larger generation and can never become the
//! oldest while the others live.
//!
//! The singleton goes by when members became Up instead (their up-number,
//! then the id; Akka's `upNumber`): a node started early that joined late
//! (it waited out a cut, say) must not take the singleton from a member that
//! has held it all along as soon as it is Up; found by the simulation, where
//! it started a second coordinator under a lower epoch. A member whose
//! up-number has not arrived yet comes last.

use crate::{Member, MemberStatus, NodeId};

/// The oldest member still in the cluster (any status but Down and Removed).
pub fn oldest<'a>(members: impl IntoIterator<Item = &'a Member>) -> Option<NodeId> {
    members
        .into_iter()
        .filter(|m| !m.status.is_gone())
        .map(|m| &m.id)
        .min()
        .cloned()
}

/// Where the singleton for `role` runs (`None`: any member): the `Up` member
/// with that role that became Up first. Unreachability alone never moves it;
/// Down (and leaving) does.
pub fn singleton_host<'a>(
    members: impl IntoIterator<Item = &'a Member>,
    role: Option<&str>,
) -> Option<NodeId> {
    members
        .into_iter()
        .filter(|m| m.status == MemberStatus::Up && m.has_role(role))
        .min_by_key(|m| (m.up_number.unwrap_or(u64::MAX), &m.id))
        .map(|m| m.id.clone())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::Reachability;

    fn member(name: &str, generation: u64, status: MemberStatus, roles: &[&str]) -> Member {
        Member {
            id: NodeId::new(name, generation),
            addr: ([127, 0, 0, 1], 7000).into(),
            status,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            app_version: None,
            up_number: None,
            reachability: Reachability::Reachable,
        }
    }

    #[test]
    fn singleton_on_the_oldest_up_member_with_the_role() {
        let members = [
            member("a", 1, MemberStatus::Down, &["coord"]),
            member("b", 2, MemberStatus::Up, &[]),
            member("c", 3, MemberStatus::Up, &["coord"]),
            member("d", 4, MemberStatus::Up, &["coord"]),
        ];
        assert_eq!(oldest(&members), Some(NodeId::new("b", 2)));
        assert_eq!(singleton_host(&members, None), Some(NodeId::new("b", 2)));
        assert_eq!(
            singleton_host(&members, Some("coord")),
            Some(NodeId::new("c", 3))
        );
        assert_eq!(singleton_host(&members, Some("none")), None);
    }

    #[test]
    fn unreachable_does_not_move_the_singleton_but_leaving_does() {
        let mut members = vec![
            member("a", 1, MemberStatus::Up, &[]),
            member("b", 2, MemberStatus::Up, &[]),
        ];
        members[0].reachability =
            Reachability::from_observers(BTreeSet::from([NodeId::new("b", 2)]));
        assert_eq!(singleton_host(&members, None), Some(NodeId::new("a", 1)));
        members[0].status = MemberStatus::Leaving;
        assert_eq!(singleton_host(&members, None), Some(NodeId::new("b", 2)));
    }

    #[test]
    fn the_singleton_goes_by_when_members_became_up_not_by_generation() {
        let mut members = [
            member("early", 1, MemberStatus::Up, &[]),
            member("host", 2, MemberStatus::Up, &[]),
            member("c", 3, MemberStatus::Up, &[]),
        ];
        // "early" started first but became Up last.
        members[0].up_number = Some(4);
        members[1].up_number = Some(0);
        members[2].up_number = Some(1);
        assert_eq!(singleton_host(&members, None), Some(NodeId::new("host", 2)));
        // Equal up-numbers (admitted together): the id decides.
        members[2].up_number = Some(0);
        assert_eq!(singleton_host(&members, None), Some(NodeId::new("host", 2)));
        // An up-number not gossiped yet comes last.
        members[1].up_number = None;
        assert_eq!(singleton_host(&members, None), Some(NodeId::new("c", 3)));
        assert_eq!(oldest(&members), Some(NodeId::new("early", 1)));
    }

    #[test]
    fn a_restarted_node_is_the_youngest() {
        let members = [
            member("a", 100, MemberStatus::Up, &[]),
            member("b", 200, MemberStatus::Up, &[]),
            member("a", 300, MemberStatus::Up, &[]),
        ];
        assert_eq!(oldest(&members), Some(NodeId::new("a", 100)));
        let restarted_only = [
            member("a", 100, MemberStatus::Down, &[]),
            member("b", 200, MemberStatus::Up, &[]),
            member("a", 300, MemberStatus::Up, &[]),
        ];
        assert_eq!(
            singleton_host(&restarted_only, None),
            Some(NodeId::new("b", 200))
        );
    }
}
