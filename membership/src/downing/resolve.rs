//! One resolution of one view: who is unreachable, who is indirectly
//! connected, who decides, and whom the decision downs.
//!
//! Follows Akka's split-brain resolver:
//! - Only members that are `Joining`, `Up` or `Leaving` take part; `Up` and
//!   `Leaving` are counted by the strategies, `Joining` members are downed
//!   along with their side.
//! - **Indirectly connected** members are unreachable from some observers but
//!   still in touch with the cluster: (a) an observer that is itself
//!   unreachable (a cut link between two members makes each report the other),
//!   and (b) an unreachable member that a reachable member monitoring it does
//!   not report (Akka: the subject has seen the current gossip), together with
//!   the observers that report it. They are downed: if they are the only
//!   unreachable members, only they are; otherwise the strategy weighs the
//!   cleanly unreachable members against the rest (the observations involving
//!   indirectly connected members are suspicious and left out, as in Akka) and
//!   the indirectly connected are downed whatever it decides: all of them by
//!   a winning side, only those of its own side by a losing one (see down
//!   all below).
//! - The deciding node is the oldest counted member of its side: the members
//!   nobody reports, plus itself (Akka's leader rule).
//! - **Down all** downs the decider's own side (itself and the members
//!   nobody reports), not the members it cannot reach. In Akka a side's
//!   decision cannot reach the other side either (the other side quarantines
//!   a member it downed), and the other side decides for itself. Here Down
//!   decisions are gossiped and final, so a down-all taken on a cut-off
//!   minority would, once the cut heals, down a majority that had already
//!   resolved the split and survived (found by the simulation: the whole
//!   cluster went down after a 1|4 cut, and none of it came back).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::strategy::{Decision, DowningStrategy, Split};
use crate::{ring, Member, MemberStatus, NodeId};

/// What the strategy decides for the current view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The oldest counted member of the resolving node's side: the one that acts.
    pub decider: NodeId,
    /// What the strategy decided.
    pub decision: Decision,
    /// The members the decision downs.
    pub to_down: BTreeSet<NodeId>,
    /// Members reported unreachable (by a counting observer).
    pub unreachable: BTreeSet<NodeId>,
    /// Members unreachable from some observers but reachable from others.
    pub indirectly_connected: BTreeSet<NodeId>,
}

/// Resolves the view `members` (every member this node knows, any status)
/// from the point of view of `self_id`, with `strategy` and a monitoring ring
/// of `ring_size` successors. `None` when no member is unreachable or when
/// this node's side has no counted member to decide.
pub fn resolve(
    strategy: &DowningStrategy,
    self_id: &NodeId,
    members: &[Member],
    ring_size: usize,
) -> Option<Resolution> {
    let taking_part: BTreeMap<&NodeId, &Member> = members
        .iter()
        .filter(|m| m.status.is_monitored())
        .map(|m| (&m.id, m))
        .collect();
    let observers_of: BTreeMap<&NodeId, BTreeSet<&NodeId>> = taking_part
        .iter()
        .filter(|(_, m)| !m.reachability.is_reachable())
        .map(|(id, m)| (*id, m.reachability.observers().collect()))
        .collect();
    if observers_of.is_empty() {
        return None;
    }
    let unreachable: BTreeSet<NodeId> = observers_of.keys().map(|id| (*id).clone()).collect();
    let indirectly_connected = indirectly_connected(&taking_part, &observers_of, ring_size);

    let decider = taking_part
        .values()
        .filter(|m| m.status.is_counted())
        .find(|m| !unreachable.contains(&m.id) || m.id == *self_id)?
        .id
        .clone();

    // What this node itself cannot reach: first-hand, never suspicious.
    let cut_off_from_me: BTreeSet<NodeId> = observers_of
        .iter()
        .filter(|(_, observers)| observers.contains(self_id))
        .map(|(subject, _)| (*subject).clone())
        .collect();
    // The other side: every member that this node or an observer which is
    // not itself indirectly connected reports (Akka drops only the
    // suspicious observations, not the members they concern). An indirectly
    // connected member that such an observer reports is on the other side
    // too: counting it as reachable here let a lone node cut off right after
    // a crash believe it held the majority.
    let other_side: BTreeSet<NodeId> = observers_of
        .iter()
        .filter(|(_, observers)| {
            observers
                .iter()
                .any(|observer| !indirectly_connected.contains(*observer))
        })
        .map(|(subject, _)| (*subject).clone())
        .chain(cut_off_from_me.iter().cloned())
        .collect();
    let decision = if indirectly_connected.is_empty() {
        strategy.decide(&split(members, &taking_part, &unreachable))
    } else if unreachable.is_subset(&indirectly_connected)
        && indirectly_connected.is_disjoint(&cut_off_from_me)
    {
        // Flaky links inside a cluster this node still reaches whole.
        // Members it cannot reach itself make it a side of a cut instead,
        // which the strategy weighs: downing them and staying up, a node cut
        // off alone survived with the majority downed by its hand, while the
        // majority downed it (found by the simulation).
        Decision::DownIndirectlyConnected
    } else {
        match strategy.decide(&split(members, &taking_part, &other_side)) {
            Decision::DownReachable => Decision::DownReachableAndIndirectlyConnected,
            other => other,
        }
    };

    let downable: BTreeSet<NodeId> = taking_part.keys().map(|id| (*id).clone()).collect();
    let own_side = || downable.difference(&unreachable).cloned();

    let to_down: BTreeSet<NodeId> = match decision {
        Decision::DownUnreachable => downable
            .iter()
            .filter(|id| unreachable.contains(*id) || indirectly_connected.contains(*id))
            .cloned()
            .collect(),
        Decision::DownReachable => own_side().collect(),
        Decision::DownAll => down_all(&downable, &unreachable, self_id),
        Decision::DownIndirectlyConnected => downable
            .intersection(&indirectly_connected)
            .cloned()
            .collect(),
        // Only the indirectly connected members of this side: those on the
        // other side are for the other side to decide about, as with down-all
        // (found by the simulation: a node cut off alone, which had heard a
        // paused member reported by the others, counted the whole majority
        // as indirectly connected and downed it with itself).
        Decision::DownReachableAndIndirectlyConnected => own_side()
            .chain(indirectly_connected.difference(&other_side).cloned())
            .collect(),
    };

    Some(Resolution {
        decider,
        decision,
        to_down,
        unreachable,
        indirectly_connected,
    })
}

/// What down-all downs: `self_id` and the members of `taking_part` that
/// nobody reports unreachable (its own side; see the module documentation).
pub(crate) fn down_all(
    taking_part: &BTreeSet<NodeId>,
    unreachable: &BTreeSet<NodeId>,
    self_id: &NodeId,
) -> BTreeSet<NodeId> {
    taking_part
        .difference(unreachable)
        .chain([self_id])
        .cloned()
        .collect()
}

fn split(
    members: &[Member],
    taking_part: &BTreeMap<&NodeId, &Member>,
    other_side: &BTreeSet<NodeId>,
) -> Split {
    let mut split = Split {
        downed: members
            .iter()
            .filter(|m| m.status == MemberStatus::Down)
            .map(|m| m.id.clone())
            .collect(),
        ..Split::default()
    };
    for (id, member) in taking_part {
        if !member.status.is_counted() {
            continue;
        }
        if other_side.contains(*id) {
            split.unreachable.insert((*id).clone());
        } else {
            split.reachable.insert((*id).clone());
        }
    }
    split
}

fn indirectly_connected(
    taking_part: &BTreeMap<&NodeId, &Member>,
    observers_of: &BTreeMap<&NodeId, BTreeSet<&NodeId>>,
    ring_size: usize,
) -> BTreeSet<NodeId> {
    let mut result = BTreeSet::new();
    // (a) observers that are themselves unreachable: the two ends of a cut link.
    for observers in observers_of.values() {
        for observer in observers {
            if observers_of.contains_key(*observer) {
                result.insert((*observer).clone());
            }
        }
    }
    // (b) a reachable member that watches the subject does not report it.
    // Only a counted (Up or Leaving) monitor vouches by its silence: a
    // joining one may not have seen the subject yet (it joined during the
    // cut), and taking its silence for contact would down the other side.
    let ring: BTreeSet<NodeId> = taking_part.keys().map(|id| (*id).clone()).collect();
    let counted = |id: &NodeId| taking_part.get(id).is_some_and(|m| m.status.is_counted());
    for (subject, observers) in observers_of {
        let still_in_touch = ring::monitors_of(&ring, subject, ring_size)
            .iter()
            .any(|monitor| {
                counted(monitor)
                    && !observers_of.contains_key(monitor)
                    && !observers.contains(monitor)
            });
        if still_in_touch {
            result.insert((*subject).clone());
        }
    }
    result
}

#[cfg(test)]
mod tests {
    //! The resolver table of the issue: each case is a view (who reports whom)
    //! and the set of members that must be downed, whoever computes it.

    use super::*;
    use crate::{MemberStatus, Reachability};

    fn id(n: u64) -> NodeId {
        NodeId::new(format!("n{n}"), n)
    }

    /// `n` Up members n1..=n<n> (n1 oldest) and `reports` as (observer, subject).
    fn view(n: u64, reports: &[(u64, u64)]) -> Vec<Member> {
        (1..=n)
            .map(|i| {
                let observers: BTreeSet<NodeId> = reports
                    .iter()
                    .filter(|(_, subject)| *subject == i)
                    .map(|(observer, _)| id(*observer))
                    .collect();
                Member {
                    id: id(i),
                    addr: ([127, 0, 0, 1], 7000 + i as u16).into(),
                    status: MemberStatus::Up,
                    roles: BTreeSet::new(),
                    app_version: None,
                    up_number: None,
                    reachability: Reachability::from_observers(observers),
                }
            })
            .collect()
    }

    /// Every member of `a` reports every member of `b` and vice versa, as far
    /// as `visible_observers` published it.
    fn partition(a: &[u64], b: &[u64], visible_observers: &[u64]) -> Vec<(u64, u64)> {
        let mut reports = Vec::new();
        for x in a {
            for y in b {
                if visible_observers.contains(x) {
                    reports.push((*x, *y));
                }
                if visible_observers.contains(y) {
                    reports.push((*y, *x));
                }
            }
        }
        reports
    }

    fn ids(gens: &[u64]) -> BTreeSet<NodeId> {
        gens.iter().map(|g| id(*g)).collect()
    }

    struct Case {
        name: &'static str,
        strategy: DowningStrategy,
        members: u64,
        reports: Vec<(u64, u64)>,
        resolver: u64,
        decider: u64,
        decision: Decision,
        to_down: &'static [u64],
    }

    fn keep_majority() -> DowningStrategy {
        DowningStrategy::KeepMajority
    }

    /// The simulation's seed 99: n1's side downed n3 just before a second
    /// cut put n3 with n4 and n5, who never heard of that Down. n1's side
    /// {n1, n2} must not win a 2:2 tie on the oldest member: for the other
    /// side n3 is Up and one of its own, 3:2.
    #[test]
    fn a_member_downed_just_before_a_second_cut_counts_against_the_deciding_side() {
        let mut members = view(5, &partition(&[1, 2], &[4, 5], &[1, 2]));
        members[2].status = MemberStatus::Down;
        let resolution =
            resolve(&DowningStrategy::KeepMajority, &id(1), &members, 5).expect("a resolution");
        assert_eq!(resolution.decision, Decision::DownReachable);
        assert_eq!(resolution.to_down, [id(1), id(2)].into());
        let other_side = view(5, &partition(&[1, 2], &[3, 4, 5], &[3, 4, 5]));
        let resolution =
            resolve(&DowningStrategy::KeepMajority, &id(3), &other_side, 5).expect("a resolution");
        assert_eq!(resolution.decision, Decision::DownUnreachable);
    }

    /// The simulation's seed 2: n1 paused and every other member reported
    /// it; then n4 was cut off alone. n2, n3 and n5 report n1 and n4 reports
    /// them, so for n4 they are indirectly connected. n4's side loses and it
    /// downs itself only: the majority is the other side's to decide about
    /// (downed from here, it went down once the cut healed).
    #[test]
    fn a_losing_side_downs_no_indirectly_connected_member_of_the_other_side() {
        let reports = [(2, 1), (3, 1), (5, 1), (4, 1), (4, 2), (4, 3), (4, 5)];
        let members = view(5, &reports);
        let resolution =
            resolve(&DowningStrategy::KeepMajority, &id(4), &members, 5).expect("a resolution");
        assert_eq!(
            resolution.decision,
            Decision::DownReachableAndIndirectlyConnected
        );
        assert_eq!(resolution.indirectly_connected, ids(&[2, 3, 5]));
        assert_eq!(resolution.to_down, ids(&[4]));
    }

    /// The simulation's seed 935: three cuts in a row left n4 cut off from
    /// everyone, n4 still reporting n1 and n2 (from the first cut), and n5
    /// cut off alone. Every member n5 hears of is indirectly connected, but
    /// n5 reaches none of them itself: it is a side of one, and downs itself
    /// (downing them, it stayed up alone while they downed it).
    #[test]
    fn a_node_that_reaches_no_indirectly_connected_member_is_a_side_of_a_cut() {
        let reports = [
            (4, 1),
            (4, 2),
            (1, 4),
            (2, 4),
            (3, 4),
            (5, 4),
            (5, 1),
            (5, 2),
            (5, 3),
        ];
        let members = view(5, &reports);
        let resolution =
            resolve(&DowningStrategy::KeepMajority, &id(5), &members, 5).expect("a resolution");
        assert_eq!(resolution.indirectly_connected, ids(&[1, 2, 3, 4]));
        assert_eq!(resolution.to_down, ids(&[5]));
    }

    #[test]
    fn resolver_table() {
        use Decision::*;
        let cases = vec![
            Case {
                name: "3|2 seen from the majority: the minority goes",
                strategy: keep_majority(),
                members: 5,
                reports: partition(&[3, 4, 5], &[1, 2], &[3, 4, 5]),
                resolver: 4,
                decider: 3,
                decision: DownUnreachable,
                to_down: &[1, 2],
            },
            Case {
                name: "3|2 seen from the minority: it downs itself",
                strategy: keep_majority(),
                members: 5,
                reports: partition(&[1, 2], &[3, 4, 5], &[1, 2]),
                resolver: 2,
                decider: 1,
                decision: DownReachable,
                to_down: &[1, 2],
            },
            Case {
                name: "2|2 tie, side with the oldest: it survives",
                strategy: keep_majority(),
                members: 4,
                reports: partition(&[1, 3], &[2, 4], &[1, 3]),
                resolver: 3,
                decider: 1,
                decision: DownUnreachable,
                to_down: &[2, 4],
            },
            Case {
                name: "2|2 tie, side without the oldest: it downs itself",
                strategy: keep_majority(),
                members: 4,
                reports: partition(&[1, 3], &[2, 4], &[2, 4]),
                resolver: 4,
                decider: 2,
                decision: DownReachable,
                to_down: &[2, 4],
            },
            Case {
                name: "1|4: the crashed or isolated node is downed",
                strategy: keep_majority(),
                members: 5,
                reports: partition(&[1, 2, 3, 4], &[5], &[1, 2, 3, 4]),
                resolver: 1,
                decider: 1,
                decision: DownUnreachable,
                to_down: &[5],
            },
            Case {
                name: "1|4 seen from the isolated oldest node: it downs itself",
                strategy: keep_majority(),
                members: 5,
                reports: partition(&[1], &[2, 3, 4, 5], &[1]),
                resolver: 1,
                decider: 1,
                decision: DownReachable,
                to_down: &[1],
            },
            Case {
                name: "link n1-n3 cut, both report each other: both indirectly connected",
                strategy: keep_majority(),
                members: 5,
                reports: vec![(1, 3), (3, 1)],
                resolver: 5,
                decider: 2,
                decision: DownIndirectlyConnected,
                to_down: &[1, 3],
            },
            Case {
                name: "link n1-n3 cut, seen from n1 itself (it cannot reach n3: a side of one \
                       link, weighed by the strategy): the same members go",
                strategy: keep_majority(),
                members: 5,
                reports: vec![(1, 3), (3, 1)],
                resolver: 1,
                decider: 1,
                decision: DownUnreachable,
                to_down: &[1, 3],
            },
            Case {
                name: "n4 cut from observer n2 only (one way): n4 indirectly connected",
                strategy: keep_majority(),
                members: 5,
                reports: vec![(2, 4)],
                resolver: 1,
                decider: 1,
                decision: DownIndirectlyConnected,
                to_down: &[4],
            },
            Case {
                name: "n5 crashed and link n1-n3 cut: majority downs n5 and the cut pair",
                strategy: keep_majority(),
                members: 5,
                reports: {
                    let mut r = partition(&[1, 2, 3, 4], &[5], &[1, 2, 3, 4]);
                    r.extend([(1, 3), (3, 1)]);
                    r
                },
                resolver: 2,
                decider: 2,
                decision: DownUnreachable,
                to_down: &[1, 3, 5],
            },
            Case {
                name: "static-quorum 3 of 5, side of 3 survives",
                strategy: DowningStrategy::StaticQuorum { quorum_size: 3 },
                members: 5,
                reports: partition(&[1, 2, 3], &[4, 5], &[1, 2, 3]),
                resolver: 1,
                decider: 1,
                decision: DownUnreachable,
                to_down: &[4, 5],
            },
            Case {
                name: "static-quorum 4 of 5, side of 3 downs itself",
                strategy: DowningStrategy::StaticQuorum { quorum_size: 4 },
                members: 5,
                reports: partition(&[1, 2, 3], &[4, 5], &[1, 2, 3]),
                resolver: 2,
                decider: 1,
                decision: DownReachable,
                to_down: &[1, 2, 3],
            },
            Case {
                name: "static-quorum 2 with 5 members: too many, down all",
                strategy: DowningStrategy::StaticQuorum { quorum_size: 2 },
                members: 5,
                reports: partition(&[1, 2, 3], &[4, 5], &[1, 2, 3]),
                resolver: 1,
                decider: 1,
                decision: DownAll,
                to_down: &[1, 2, 3],
            },
            Case {
                name: "keep-oldest: minority with the oldest survives",
                strategy: DowningStrategy::KeepOldest {
                    down_if_alone: true,
                },
                members: 5,
                reports: partition(&[1, 2], &[3, 4, 5], &[3, 4, 5]),
                resolver: 3,
                decider: 3,
                decision: DownReachable,
                to_down: &[3, 4, 5],
            },
            Case {
                name: "keep-oldest, down_if_alone: the lone oldest is downed",
                strategy: DowningStrategy::KeepOldest {
                    down_if_alone: true,
                },
                members: 5,
                reports: partition(&[1], &[2, 3, 4, 5], &[2, 3, 4, 5]),
                resolver: 2,
                decider: 2,
                decision: DownUnreachable,
                to_down: &[1],
            },
            Case {
                name: "keep-oldest without down_if_alone: the lone oldest wins",
                strategy: DowningStrategy::KeepOldest {
                    down_if_alone: false,
                },
                members: 5,
                reports: partition(&[1], &[2, 3, 4, 5], &[2, 3, 4, 5]),
                resolver: 2,
                decider: 2,
                decision: DownReachable,
                to_down: &[2, 3, 4, 5],
            },
            Case {
                name: "down-all on a 4|1 split: the four down their side",
                strategy: DowningStrategy::DownAll,
                members: 5,
                reports: partition(&[1, 2, 3, 4], &[5], &[1, 2, 3, 4]),
                resolver: 1,
                decider: 1,
                decision: DownAll,
                to_down: &[1, 2, 3, 4],
            },
            Case {
                name: "down-all on a 4|1 split: the lone node downs itself only",
                strategy: DowningStrategy::DownAll,
                members: 5,
                reports: partition(&[1, 2, 3, 4], &[5], &[5]),
                resolver: 5,
                decider: 5,
                decision: DownAll,
                to_down: &[5],
            },
        ];
        for case in cases {
            let members = view(case.members, &case.reports);
            let resolution = resolve(&case.strategy, &id(case.resolver), &members, 5)
                .unwrap_or_else(|| panic!("{}: no resolution", case.name));
            assert_eq!(resolution.decider, id(case.decider), "{}", case.name);
            assert_eq!(resolution.decision, case.decision, "{}", case.name);
            assert_eq!(resolution.to_down, ids(case.to_down), "{}", case.name);
        }
    }

    /// Found by the simulation: n3 crashes (everyone reports it), then a cut
    /// isolates n5 before n3 is downed. n5's own side is n5 alone: the
    /// others, though observers of n3 that n5 cannot reach, are on the other
    /// side, so n5 downs itself; the majority downs n3 and n5.
    #[test]
    fn a_lone_node_cut_off_right_after_a_crash_is_not_a_majority() {
        let crash = [(1, 3), (2, 3), (4, 3), (5, 3)];
        let lone_view: Vec<(u64, u64)> =
            crash.into_iter().chain([(5, 1), (5, 2), (5, 4)]).collect();
        let members = view(5, &lone_view);
        let r = resolve(&DowningStrategy::KeepMajority, &id(5), &members, 5).expect("resolves");
        assert!(r.to_down.contains(&id(5)), "the lone node goes: {r:?}");
        let majority_view: Vec<(u64, u64)> =
            crash.into_iter().chain([(1, 5), (2, 5), (4, 5)]).collect();
        let members = view(5, &majority_view);
        let r = resolve(&DowningStrategy::KeepMajority, &id(1), &members, 5).expect("resolves");
        assert_eq!(r.to_down, ids(&[3, 5]), "{r:?}");
    }

    #[test]
    fn nothing_to_resolve_when_all_reachable() {
        let members = view(5, &[]);
        assert_eq!(
            resolve(&DowningStrategy::KeepMajority, &id(1), &members, 5),
            None
        );
    }

    #[test]
    fn a_clean_partition_in_a_large_ring_is_not_indirectly_connected() {
        let a: Vec<u64> = (1..=4).collect();
        let b: Vec<u64> = (5..=10).collect();
        // Each node watches 3 successors, walking past unreachable ones; only
        // watchers report. n4 is watched only by n1..n3 on the ring, so it is
        // found by n10 walking past them.
        let all: BTreeSet<NodeId> = (1..=10).map(id).collect();
        let side_a = ids(&a);
        let reports: Vec<(u64, u64)> = partition(&a, &b, &b)
            .into_iter()
            .filter(|(o, s)| ring::watched(&all, &id(*o), 3, &side_a).contains(&id(*s)))
            .collect();
        assert!(reports.contains(&(10, 4)));
        let members = view(10, &reports);
        let r = resolve(&DowningStrategy::KeepMajority, &id(5), &members, 3).expect("resolves");
        assert!(r.indirectly_connected.is_empty(), "{r:?}");
        assert_eq!(r.to_down, ids(&a));
    }

    #[test]
    fn joining_members_are_downed_with_their_side_but_not_counted() {
        // n6 joins on the minority side; n7 joins on the majority side.
        let mut reports = partition(&[1, 2, 3, 7], &[4, 5, 6], &[1, 2, 3, 7]);
        reports.retain(|(_, subject)| *subject != 6);
        let mut members = view(5, &reports);
        for (n, observers) in [(6, ids(&[1, 2, 3, 7])), (7, BTreeSet::new())] {
            members.push(Member {
                id: id(n),
                addr: ([127, 0, 0, 1], 7100).into(),
                status: MemberStatus::Joining,
                roles: BTreeSet::new(),
                app_version: None,
                up_number: None,
                reachability: Reachability::from_observers(observers),
            });
        }
        let r = resolve(&DowningStrategy::KeepMajority, &id(1), &members, 10).expect("resolves");
        assert_eq!(r.decision, Decision::DownUnreachable);
        assert_eq!(r.to_down, ids(&[4, 5, 6]));
    }

    #[test]
    fn a_joining_node_never_decides() {
        let mut members = view(2, &[(3, 1), (3, 2)]);
        members.push(Member {
            id: id(3),
            addr: ([127, 0, 0, 1], 7100).into(),
            status: MemberStatus::Joining,
            roles: BTreeSet::new(),
            app_version: None,
            up_number: None,
            reachability: Reachability::Reachable,
        });
        assert_eq!(
            resolve(&DowningStrategy::KeepMajority, &id(3), &members, 5),
            None
        );
    }
}
