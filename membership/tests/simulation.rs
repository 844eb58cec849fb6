//! Five `Membership` instances wired together without a network: crash,
//! partitions, cut links, graceful leave and restart, in virtual time.

mod common;

use std::time::Duration;

use common::{id, Sim};
use membership::{MemberEvent, MemberStatus, NodeId};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn five_nodes_started_together_bootstrap_through_the_oldest() {
    let mut sim = Sim::with_nodes(5);
    let took = sim.converge();
    assert!(took <= secs(2.0), "took {took:?}");
    for node in sim.running() {
        let m = &sim.nodes[&node].membership;
        assert_eq!(m.oldest(), Some(id(1)));
        assert_eq!(m.singleton_host(None), Some(id(1)));
        assert_eq!(
            m.monitored().len(),
            4,
            "small cluster: everyone watches everyone"
        );
        assert!(m.would_survive());
        assert!(m.pending_decision().is_none());
    }
}

/// Runs until every survivor sees `crashed` Down; returns the slowest time.
fn crash_to_down_everywhere(sim: &mut Sim, crashed: &NodeId) -> Duration {
    let survivors: Vec<NodeId> = sim.running().into_iter().filter(|n| n != crashed).collect();
    sim.crash(crashed);
    sim.run_until(secs(10.0), |sim| {
        survivors
            .iter()
            .all(|s| sim.status_seen_by(s, crashed) == Some(MemberStatus::Down))
    })
    .expect("every survivor marks the crashed node Down")
}

#[test]
fn a_crashed_node_is_down_on_every_survivor_within_3_5_s() {
    let mut sim = Sim::with_nodes(5);
    sim.converge();
    sim.run_for(secs(3.0));
    let took = crash_to_down_everywhere(&mut sim, &id(4));
    assert!(took <= secs(3.5), "crash -> Down took {took:?}");
    for survivor in [1, 2, 3, 5].map(id) {
        let node = &sim.nodes[&survivor];
        assert!(node.running, "{survivor} survives");
        assert_eq!(node.membership.status(), MemberStatus::Up);
        assert!(node.events.iter().any(
            |(_, e)| matches!(e, MemberEvent::Unreachable { member, .. } if *member == id(4))
        ));
        assert!(node
            .events
            .iter()
            .any(|(_, e)| matches!(e, MemberEvent::MemberDowned(m) if m.id == id(4))));
        assert_eq!(node.membership.monitored().len(), 3);
    }
}

#[test]
fn a_crashed_oldest_node_moves_the_singleton_after_down() {
    let mut sim = Sim::with_nodes(5);
    sim.converge();
    sim.run_for(secs(3.0));
    sim.crash(&id(1));
    // Unreachable alone does not move the singleton.
    sim.run_for(secs(2.0));
    assert_eq!(
        sim.nodes[&id(3)].membership.singleton_host(None),
        Some(id(1))
    );
    let took = sim
        .run_until(secs(5.0), |sim| {
            [2, 3, 4, 5]
                .map(id)
                .iter()
                .all(|s| sim.nodes[s].membership.singleton_host(None) == Some(id(2)))
        })
        .expect("singleton moves to n2");
    assert!(sim.elapsed() > took);
    let events = &sim.nodes[&id(5)].events;
    assert!(events.iter().any(|(_, e)| matches!(
        e,
        MemberEvent::SingletonHostChanged { role: None, host: Some(h) } if *h == id(2)
    )));
}

#[test]
fn minority_of_a_2_3_partition_downs_itself_and_the_majority_goes_on() {
    let mut sim = Sim::with_nodes(5);
    sim.converge();
    sim.run_for(secs(3.0));
    let minority = [id(1), id(2)];
    let majority = [id(3), id(4), id(5)];
    sim.partition(&minority, &majority);
    sim.run_until(secs(10.0), |sim| {
        minority.iter().all(|n| sim.nodes[n].self_down_at.is_some())
            && majority.iter().all(|observer| {
                minority
                    .iter()
                    .all(|n| sim.status_seen_by(observer, n) == Some(MemberStatus::Down))
            })
    })
    .expect("minority downs itself, majority downs the minority");
    sim.run_for(secs(5.0));
    for node in &majority {
        let m = &sim.nodes[node].membership;
        assert!(sim.nodes[node].running, "{node} goes on");
        assert_eq!(m.status(), MemberStatus::Up);
        assert_eq!(m.singleton_host(None), Some(id(3)));
        assert!(m.would_survive());
        assert!(m.pending_decision().is_none());
        let up: Vec<NodeId> = m
            .members()
            .into_iter()
            .filter(|x| x.status == MemberStatus::Up)
            .map(|x| x.id)
            .collect();
        assert_eq!(up, majority.to_vec());
    }
    for node in &minority {
        assert!(!sim.nodes[node].running);
    }
}

#[test]
fn the_minority_knows_it_would_not_survive_before_the_decision() {
    let mut sim = Sim::with_nodes(5);
    sim.converge();
    sim.run_for(secs(3.0));
    sim.partition(&[id(1), id(2)], &[id(3), id(4), id(5)]);
    sim.run_for(secs(1.6));
    let n1 = &sim.nodes[&id(1)].membership;
    assert!(!n1.would_survive());
    let pending = n1.pending_decision().expect("a decision is pending");
    assert_eq!(pending.decider, id(1));
    assert!(pending.decide_in > Duration::ZERO);
    assert!(sim.nodes[&id(4)].membership.would_survive());
}

#[test]
fn a_cut_link_between_two_members_downs_both_ends_only() {
    let mut sim = Sim::with_nodes(5);
    sim.converge();
    sim.run_for(secs(3.0));
    sim.cut(&id(2), &id(4));
    sim.run_until(secs(10.0), |sim| {
        sim.nodes[&id(2)].self_down_at.is_some() && sim.nodes[&id(4)].self_down_at.is_some()
    })
    .expect("both ends of the cut link are downed");
    sim.run_for(secs(5.0));
    for node in [1, 3, 5].map(id) {
        let m = &sim.nodes[&node].membership;
        assert!(sim.nodes[&node].running);
        assert_eq!(m.status(), MemberStatus::Up);
        for gone in [2, 4].map(id) {
            assert!(m.member(&gone).is_some_and(|x| x.status.is_gone()));
        }
    }
}

/// Issue 19: a Down member is Removed (out of the member list, and a
/// `MemberRemoved` event) once every Up, reachable member has seen it Down
/// and `down_removal_after` has passed; the departed list still has it.
#[test]
fn a_down_member_is_removed_once_everyone_has_seen_the_decision() {
    let mut sim = Sim::with_nodes(4);
    sim.converge();
    sim.run_for(secs(2.0));
    let survivors = [1, 2, 3].map(id);
    let downed = crash_to_down_everywhere(&mut sim, &id(4));
    let removed = sim
        .run_until(secs(10.0), |sim| {
            survivors.iter().all(|s| {
                sim.nodes[s]
                    .membership
                    .members()
                    .iter()
                    .all(|m| m.id != id(4))
            })
        })
        .expect("n4 leaves every member list");
    let delay = membership::MembershipConfig::default().down_removal_after;
    assert!(
        removed >= delay && removed <= delay + secs(2.0),
        "removed {removed:?} after the Down ({downed:?})"
    );
    for survivor in &survivors {
        let node = &sim.nodes[survivor];
        assert!(node
            .events
            .iter()
            .any(|(_, e)| matches!(e, MemberEvent::MemberRemoved(m) if m.id == id(4))));
        assert!(node.membership.departed().iter().any(|m| m.id == id(4)));
    }
}

#[test]
fn graceful_leave_walks_to_removed_and_nobody_downs_it() {
    let mut sim = Sim::with_nodes(5);
    sim.converge();
    sim.run_for(secs(1.0));
    let now = sim.now;
    let effects = sim
        .nodes
        .get_mut(&id(1))
        .map(|n| n.membership.leave(now))
        .unwrap_or_default();
    sim.apply(&id(1), effects);
    sim.run_for(secs(1.0));
    assert_eq!(
        sim.status_seen_by(&id(3), &id(1)),
        Some(MemberStatus::Leaving)
    );
    assert_eq!(
        sim.nodes[&id(3)].membership.singleton_host(None),
        Some(id(2)),
        "the singleton moves away from a leaving node"
    );
    let now = sim.now;
    let effects = sim
        .nodes
        .get_mut(&id(1))
        .map(|n| n.membership.leave_handoff_done(now))
        .unwrap_or_default();
    sim.apply(&id(1), effects);
    sim.run_until(secs(5.0), |sim| sim.nodes[&id(1)].self_removed_at.is_some())
        .expect("n1 reaches Removed");
    sim.run_for(secs(10.0));
    for node in [2, 3, 4, 5].map(id) {
        let n = &sim.nodes[&node];
        assert!(n.running);
        assert!(n.membership.members().iter().all(|m| m.id != id(1)));
        assert!(!n
            .events
            .iter()
            .any(|(_, e)| matches!(e, MemberEvent::MemberDowned(_))));
        assert!(n
            .events
            .iter()
            .any(|(_, e)| matches!(e, MemberEvent::MemberLeft(m) if m.id == id(1))));
        assert!(
            n.events
                .iter()
                .any(|(_, e)| matches!(e, MemberEvent::MemberExited(m) if m.id == id(1))),
            "every member saw n1 Exiting before it was Removed"
        );
        assert!(n
            .events
            .iter()
            .any(|(_, e)| matches!(e, MemberEvent::MemberRemoved(m) if m.id == id(1))));
    }
}

#[test]
fn a_restarted_node_rejoins_as_a_new_generation_and_is_never_the_oldest() {
    let mut sim = Sim::with_nodes(5);
    sim.converge();
    sim.run_for(secs(1.0));
    sim.crash(&id(1));
    sim.run_for(secs(1.0));
    let reborn = NodeId::new("n1", 100);
    sim.start_node(reborn.clone());
    sim.run_until(secs(10.0), |sim| {
        sim.status_seen_by(&id(3), &reborn) == Some(MemberStatus::Up)
            && sim.status_seen_by(&id(3), &id(1)) == Some(MemberStatus::Down)
    })
    .expect("the new incarnation is Up, the old one Down");
    let m = &sim.nodes[&id(3)].membership;
    assert_eq!(m.oldest(), Some(id(2)));
    assert_eq!(m.singleton_host(None), Some(id(2)));
    assert_eq!(sim.nodes[&reborn].membership.status(), MemberStatus::Up);
}

/// The sides of a cut whose running members still serve: Up, not Down in
/// their own view, and expecting to survive the downing strategy.
fn serving_sides(sim: &Sim, sides: &[&[NodeId]]) -> Vec<usize> {
    sides
        .iter()
        .enumerate()
        .filter(|(_, side)| {
            side.iter().any(|node| {
                let n = &sim.nodes[node];
                n.running
                    && n.membership.status() == MemberStatus::Up
                    && n.membership.would_survive()
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// Issue 14, hole 1: a node (or a restarted incarnation) that joins one half
/// of a 2|2 cut must not be admitted Up there and tip that half into a
/// false 3:2 majority while the other half holds the oldest member.
fn joiner_during_a_two_two_cut_never_makes_two_serving_sides(restart: bool) {
    let (mut sim, joiner) = if restart {
        // n5 crashes, is downed and removed (everyone has acknowledged the
        // Down: until then keep-majority counts it against either side);
        // its new incarnation joins during the cut.
        let mut sim = Sim::with_nodes(5);
        sim.converge();
        sim.run_for(secs(2.0));
        sim.crash(&id(5));
        sim.run_until(secs(20.0), |sim| {
            (1..=4).all(|n| sim.status_seen_by(&id(n), &id(5)) == Some(MemberStatus::Removed))
        })
        .expect("the crashed n5 is downed and removed");
        (sim, NodeId::new("n5", 50))
    } else {
        let mut sim = Sim::with_nodes(4);
        sim.converge();
        sim.run_for(secs(2.0));
        (sim, id(5))
    };
    let left = [id(1), id(2)];
    let right = [id(3), id(4), joiner.clone()];
    sim.partition(&left, &right);
    sim.start_node(joiner.clone());
    let sides: [&[NodeId]; 2] = [&left, &right];
    // Both sides serve until the cut is detected and has been stable for
    // `stable_after` (the leases cover that time); from then on one side.
    sim.run_for(secs(5.0));
    for _ in 0..150 {
        sim.step();
        let serving = serving_sides(&sim, &sides);
        assert!(
            serving.len() <= 1,
            "both sides serve at {:?}; joiner {joiner} is {:?} as n3 sees it",
            sim.elapsed(),
            sim.status_seen_by(&id(3), &joiner)
        );
    }
    assert_eq!(
        serving_sides(&sim, &sides),
        vec![0],
        "the side of the oldest serves"
    );
}

#[test]
fn a_node_joining_one_half_of_a_two_two_cut_waits_for_convergence() {
    joiner_during_a_two_two_cut_never_makes_two_serving_sides(false);
}

#[test]
fn a_restarted_incarnation_joining_during_a_cut_waits_for_convergence() {
    joiner_during_a_two_two_cut_never_makes_two_serving_sides(true);
}

/// A node that joins through members which were just downed (the losing
/// side of a split) sees only Down members: it must wait to be admitted,
/// never start a cluster of its own beside the surviving side.
#[test]
fn a_node_joining_through_a_downed_side_never_starts_its_own_cluster() {
    let mut sim = Sim::with_nodes(4);
    sim.converge();
    sim.run_for(secs(2.0));
    let (left, right) = ([id(1), id(2)], [id(3), id(4), id(5)]);
    sim.partition(&left, &right);
    sim.run_until(secs(10.0), |sim| {
        sim.nodes[&id(3)].self_down_at.is_some() && sim.nodes[&id(4)].self_down_at.is_some()
    })
    .expect("the side without the oldest member downs itself");
    // n5 starts while the downed n3 and n4 still gossip their last state.
    sim.start_node(id(5));
    for _ in 0..100 {
        sim.step();
        assert_eq!(
            sim.nodes[&id(5)].membership.status(),
            MemberStatus::Joining,
            "n5 admitted itself at {:?}",
            sim.elapsed()
        );
    }
}

/// A node started before the others (lower generation) that joins late,
/// e.g. after waiting out a cut, is the oldest member but not the singleton
/// host: the singleton stays with the member that became Up first.
#[test]
fn a_node_started_earlier_that_joins_later_does_not_take_the_singleton() {
    let mut sim = Sim::with_nodes(3);
    sim.converge();
    let early = NodeId::new("n0", 0);
    sim.start_node(early.clone());
    sim.run_until(secs(10.0), |sim| {
        sim.running()
            .iter()
            .all(|n| sim.status_seen_by(n, &early) == Some(MemberStatus::Up))
    })
    .expect("the late joiner is Up everywhere");
    sim.run_for(secs(1.0));
    for node in sim.running() {
        let m = &sim.nodes[&node].membership;
        assert_eq!(m.oldest(), Some(early.clone()), "seen by {node}");
        assert_eq!(m.singleton_host(None), Some(id(1)), "seen by {node}");
    }
}
