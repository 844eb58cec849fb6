//! What the state machine hands back to its driver, and the member events
//! derived by comparing two views.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Member, MemberStatus, NodeId};

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipEffect {
    /// Set one of this node's own chitchat keys.
    SetKey {
        /// The key (see [`crate::keys`]).
        key: String,
        /// Its new value.
        value: String,
    },
    /// Delete one of this node's own chitchat keys.
    DeleteKey {
        /// The key.
        key: String,
    },
    /// Send a heartbeat request to `to`; feed its answer to
    /// [`crate::Membership::on_heartbeat`].
    SendHeartbeat {
        /// The monitored peer.
        to: NodeId,
    },
    /// Publish a member event to subscribers.
    Event(MemberEvent),
    /// This node is Down: stop its services at once and leave the mesh. Keep
    /// gossiping for a few gossip intervals first if possible, so that the
    /// Down keys this node published reach its side.
    SelfDown,
    /// This node has left gracefully (Removed): shut down after a gossip round
    /// or two so that peers see `removed`.
    SelfRemoved,
}

/// A change in the cluster, as Akka names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MemberEvent {
    /// The member became Up (or was first seen Up).
    MemberUp(Member),
    /// The member started leaving (Leaving).
    MemberLeft(Member),
    /// The member has handed off and is about to go (Exiting). Every live
    /// member sees this before the leaver is Removed.
    MemberExited(Member),
    /// The member was declared Down.
    MemberDowned(Member),
    /// The member is gone: Removed, or no longer in gossip.
    MemberRemoved(Member),
    /// Some observers report the member unreachable.
    Unreachable {
        /// The member.
        member: NodeId,
        /// Who reports it.
        observers: Vec<NodeId>,
    },
    /// Every observer cleared the member.
    Reachable(NodeId),
    /// The host of the singleton for a role changed.
    SingletonHostChanged {
        /// The role (`None`: any member).
        role: Option<String>,
        /// The new host, if any member qualifies.
        host: Option<NodeId>,
    },
}

/// The events that lead from `before` to `after` (both keyed by id, any status).
pub(crate) fn member_events(
    before: &BTreeMap<NodeId, Member>,
    after: &BTreeMap<NodeId, Member>,
) -> Vec<MemberEvent> {
    let mut events = Vec::new();
    for (id, member) in after {
        let old = before.get(id);
        if old.map(|o| o.status) != Some(member.status) {
            // Gossip may carry `up -> exiting` (or `-> removed`) in one step
            // when the leave handoff was quick: the member still left.
            let skipped_leaving =
                matches!(
                    old.map(|o| o.status),
                    Some(MemberStatus::Joining | MemberStatus::Up)
                ) && matches!(member.status, MemberStatus::Exiting | MemberStatus::Removed);
            if skipped_leaving {
                events.push(MemberEvent::MemberLeft(member.clone()));
            }
            match member.status {
                MemberStatus::Up => events.push(MemberEvent::MemberUp(member.clone())),
                MemberStatus::Leaving => events.push(MemberEvent::MemberLeft(member.clone())),
                MemberStatus::Down => events.push(MemberEvent::MemberDowned(member.clone())),
                MemberStatus::Exiting => events.push(MemberEvent::MemberExited(member.clone())),
                MemberStatus::Removed => events.push(MemberEvent::MemberRemoved(member.clone())),
                MemberStatus::Joining => {}
            }
        }
        let was_reachable = old.is_none_or(|o| o.reachability.is_reachable());
        let is_reachable = member.reachability.is_reachable();
        if was_reachable && !is_reachable {
            events.push(MemberEvent::Unreachable {
                member: id.clone(),
                observers: member.reachability.observers().cloned().collect(),
            });
        } else if !was_reachable && is_reachable && !member.status.is_gone() {
            events.push(MemberEvent::Reachable(id.clone()));
        }
    }
    for (id, member) in before {
        if !after.contains_key(id) && member.status != MemberStatus::Removed {
            let mut gone = member.clone();
            gone.status = MemberStatus::Removed;
            events.push(MemberEvent::MemberRemoved(gone));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reachability;

    fn view(status: MemberStatus) -> BTreeMap<NodeId, Member> {
        let id = NodeId::new("n1", 1);
        let member = Member {
            id: id.clone(),
            addr: ([127, 0, 0, 1], 7000).into(),
            status,
            roles: Default::default(),
            app_version: None,
            up_number: None,
            reachability: Reachability::Reachable,
        };
        BTreeMap::from([(id, member)])
    }

    fn kinds(events: &[MemberEvent]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                MemberEvent::MemberUp(_) => "up",
                MemberEvent::MemberLeft(_) => "left",
                MemberEvent::MemberExited(_) => "exited",
                MemberEvent::MemberDowned(_) => "downed",
                MemberEvent::MemberRemoved(_) => "removed",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn a_leave_seen_past_leaving_still_reports_member_left() {
        use MemberStatus::*;
        let cases = [
            (Up, Leaving, vec!["left"]),
            (Leaving, Exiting, vec!["exited"]),
            (Up, Exiting, vec!["left", "exited"]),
            (Up, Removed, vec!["left", "removed"]),
            (Exiting, Removed, vec!["removed"]),
            (Up, Down, vec!["downed"]),
        ];
        for (before, after, expected) in cases {
            let events = member_events(&view(before), &view(after));
            assert_eq!(kinds(&events), expected, "{before} -> {after}");
        }
    }
}
