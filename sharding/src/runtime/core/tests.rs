//! The core stepped like raft-rs' `RawNode`: feed a view, read the actions,
//! feed the next view. Each test is one decision.

use std::time::{Duration, Instant};

use membership::{AppVersion, Member, MemberStatus, NodeId, Reachability};

use super::*;

fn id(name: &str, generation: u64) -> NodeId {
    NodeId::new(name, generation)
}

fn member(id: &NodeId, status: MemberStatus) -> Member {
    Member {
        id: id.clone(),
        addr: "127.0.0.1:7000".parse().expect("an address"),
        status,
        roles: Default::default(),
        app_version: None,
        up_number: None,
        reachability: Reachability::default(),
    }
}

fn unreachable(id: &NodeId, by: &NodeId) -> Member {
    Member {
        reachability: Reachability::from_observers([by.clone()].into()),
        ..member(id, MemberStatus::Up)
    }
}

fn ms(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

fn started(actions: &[TypeAction]) -> Option<(Epoch, Option<Instant>)> {
    actions.iter().find_map(|action| match action {
        TypeAction::StartCoordinator {
            epoch,
            previous_grants_until,
        } => Some((*epoch, *previous_grants_until)),
        _ => None,
    })
}

#[test]
fn the_oldest_up_member_starts_the_coordinator_with_its_generation_then_quorum() {
    let t = Instant::now();
    let (a, b) = (id("a", 10), id("b", 20));
    let mut core = TypeCore::new(a.clone(), None, None, t);
    let actions = core.on_cluster(
        t,
        &[member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)],
        true,
        Epoch(0),
    );
    assert_eq!(started(&actions), Some((Epoch(10), None)));
    let start = actions
        .iter()
        .position(|a| matches!(a, TypeAction::StartCoordinator { .. }))
        .expect("starts");
    // Every Up member is announced to the new coordinator, then quorum.
    assert!(
        actions[start + 1..].contains(&TypeAction::Coordinator(CoordinatorInput::MemberUp(
            b.clone(),
            None
        )))
    );
    assert_eq!(
        actions.last(),
        Some(&TypeAction::Coordinator(CoordinatorInput::Quorum(true)))
    );
    assert!(core.coordinator_here());
    // The same view again: nothing to do (duplicates are no-ops).
    let again = core.on_cluster(
        t,
        &[member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)],
        true,
        Epoch(0),
    );
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_younger_node_follows_the_host_and_starts_nothing() {
    let t = Instant::now();
    let (a, b) = (id("a", 10), id("b", 20));
    let mut core = TypeCore::new(b.clone(), None, None, t);
    let actions = core.on_cluster(
        t,
        &[member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)],
        true,
        Epoch(0),
    );
    assert_eq!(started(&actions), None);
    assert_eq!(core.coordinator_host(), Some(&a));
    assert!(!core.coordinator_here());
}

#[test]
fn the_epoch_goes_above_every_epoch_the_region_has_seen() {
    let t = Instant::now();
    let a = id("a", 10);
    let mut core = TypeCore::new(a.clone(), None, None, t);
    let actions = core.on_cluster(t, &[member(&a, MemberStatus::Up)], true, Epoch(41));
    assert_eq!(started(&actions).map(|(epoch, _)| epoch), Some(Epoch(42)));
}

#[test]
fn a_successor_waits_until_the_first_view_that_showed_the_previous_host_unreachable() {
    let t = Instant::now();
    let (a, b) = (id("a", 10), id("b", 20));
    let mut core = TypeCore::new(b.clone(), None, None, t);
    let both_up = [member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)];
    core.on_cluster(t, &both_up, true, Epoch(0));
    // a is seen reachable at 1 s, unreachable at 2 s and 3 s, Down at 4 s:
    // it may have granted leases until the view at 2 s.
    core.on_cluster(ms(t, 1_000), &both_up, true, Epoch(10));
    for at in [2_000, 3_000] {
        let cut = [unreachable(&a, &b), member(&b, MemberStatus::Up)];
        core.on_cluster(ms(t, at), &cut, true, Epoch(10));
    }
    let actions = core.on_cluster(
        ms(t, 4_000),
        &[member(&a, MemberStatus::Down), member(&b, MemberStatus::Up)],
        true,
        Epoch(10),
    );
    assert_eq!(started(&actions), Some((Epoch(20), Some(ms(t, 2_000)))));
    assert!(actions.contains(&TypeAction::Region(RegionSignal::MemberDown(a.clone()))));
    assert!(actions.contains(&TypeAction::Coordinator(CoordinatorInput::MemberDown(a))));
}

#[test]
fn only_this_nodes_own_report_of_the_previous_host_counts() {
    // c reports a unreachable from 2 s on (perhaps stale: c may be cut off
    // and unable to take it back); b itself never does. a may have granted
    // leases until the view that shows it Down.
    let t = Instant::now();
    let (a, b, c) = (id("a", 10), id("b", 20), id("c", 30));
    let mut core = TypeCore::new(b.clone(), None, None, t);
    let up = |id: &NodeId| member(id, MemberStatus::Up);
    core.on_cluster(ms(t, 1_000), &[up(&a), up(&b), up(&c)], true, Epoch(10));
    for at in [2_000, 3_000] {
        let reported = [unreachable(&a, &c), up(&b), up(&c)];
        core.on_cluster(ms(t, at), &reported, true, Epoch(10));
    }
    let actions = core.on_cluster(
        ms(t, 4_000),
        &[member(&a, MemberStatus::Down), up(&b), up(&c)],
        true,
        Epoch(10),
    );
    assert_eq!(started(&actions), Some((Epoch(20), Some(ms(t, 4_000)))));
}

#[test]
fn a_successor_that_was_paused_waits_from_its_first_view_after_the_pause() {
    // b saw a reachable at 1 s, was paused, and its next view, at 9 s, shows
    // a Down: a may have granted leases all that time.
    let t = Instant::now();
    let (a, b) = (id("a", 10), id("b", 20));
    let mut core = TypeCore::new(b.clone(), None, None, t);
    let both_up = [member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)];
    core.on_cluster(ms(t, 1_000), &both_up, true, Epoch(10));
    let actions = core.on_cluster(
        ms(t, 9_000),
        &[member(&a, MemberStatus::Down), member(&b, MemberStatus::Up)],
        true,
        Epoch(10),
    );
    assert_eq!(started(&actions), Some((Epoch(20), Some(ms(t, 9_000)))));
}

#[test]
fn a_coordinator_superseded_and_restarted_here_waits_out_its_own_grants() {
    // Issue 14, hole 5: the restarted coordinator must not start with every
    // shard free while regions hold leases its predecessor here granted.
    let t = Instant::now();
    let a = id("a", 10);
    let mut core = TypeCore::new(a.clone(), None, None, t);
    core.on_cluster(t, &[member(&a, MemberStatus::Up)], true, Epoch(0));
    let stop = core.on_superseded(ms(t, 5_000), Epoch(30));
    assert_eq!(stop, vec![TypeAction::StopCoordinator]);
    assert!(!core.coordinator_here());
    let actions = core.on_cluster(
        ms(t, 5_100),
        &[member(&a, MemberStatus::Up)],
        true,
        Epoch(30),
    );
    assert_eq!(started(&actions), Some((Epoch(31), Some(ms(t, 5_000)))));
    // Superseded twice without running: nothing more to stop.
    assert_eq!(
        core.on_superseded(ms(t, 5_200), Epoch(31)),
        vec![TypeAction::StopCoordinator]
    );
    assert!(core.on_superseded(ms(t, 5_300), Epoch(31)).is_empty());
}

#[test]
fn losing_and_regaining_survival_fences_and_resumes_and_tells_the_coordinator() {
    let t = Instant::now();
    let a = id("a", 10);
    let mut core = TypeCore::new(a.clone(), None, None, t);
    core.on_cluster(t, &[member(&a, MemberStatus::Up)], true, Epoch(0));
    let lost = core.on_cluster(
        ms(t, 100),
        &[member(&a, MemberStatus::Up)],
        false,
        Epoch(10),
    );
    assert_eq!(
        lost,
        vec![
            TypeAction::Region(RegionSignal::FenceAll),
            TypeAction::Coordinator(CoordinatorInput::Quorum(false)),
        ]
    );
    let back = core.on_cluster(ms(t, 200), &[member(&a, MemberStatus::Up)], true, Epoch(10));
    assert_eq!(
        back,
        vec![
            TypeAction::Region(RegionSignal::SideSurvives),
            TypeAction::Coordinator(CoordinatorInput::Quorum(true)),
        ]
    );
}

#[test]
fn a_vanished_member_is_down_for_both_state_machines() {
    let t = Instant::now();
    let (a, b) = (id("a", 10), id("b", 20));
    let mut core = TypeCore::new(a.clone(), None, None, t);
    core.on_cluster(
        t,
        &[member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)],
        true,
        Epoch(0),
    );
    let actions = core.on_cluster(ms(t, 100), &[member(&a, MemberStatus::Up)], true, Epoch(10));
    assert_eq!(
        actions,
        vec![
            TypeAction::Coordinator(CoordinatorInput::MemberDown(b.clone())),
            TypeAction::Region(RegionSignal::MemberDown(b)),
        ]
    );
}

#[test]
fn the_singleton_moving_away_stops_the_coordinator_here() {
    let t = Instant::now();
    let (a, b) = (id("a", 10), id("b", 20));
    let mut core = TypeCore::new(a.clone(), None, None, t);
    core.on_cluster(
        t,
        &[member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)],
        true,
        Epoch(0),
    );
    let actions = core.on_cluster(
        ms(t, 100),
        &[
            member(&a, MemberStatus::Leaving),
            member(&b, MemberStatus::Up),
        ],
        true,
        Epoch(10),
    );
    assert!(actions.contains(&TypeAction::StopCoordinator));
    assert_eq!(core.coordinator_host(), Some(&b));
}

#[test]
fn keep_alives_wait_for_every_up_region_or_one_interval() {
    let t = Instant::now();
    let (a, b) = (id("a", 10), id("b", 20));
    let every = Duration::from_secs(1);
    let workers: Vec<EntityId> = vec!["0".into(), "1".into()];
    let mut core = TypeCore::new(a.clone(), None, Some((every, workers)), t);
    core.on_cluster(
        t,
        &[member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)],
        true,
        Epoch(0),
    );
    // One of two Up regions registered: wait.
    assert!(core.tick(ms(t, 100), 1).is_empty());
    // Both registered: every worker gets a keep-alive, then not again
    // before the interval.
    assert_eq!(core.tick(ms(t, 200), 2).len(), 2);
    assert!(core.tick(ms(t, 300), 2).is_empty());
    assert_eq!(core.tick(ms(t, 1_200), 2).len(), 2);
    // Without a coordinator here, no keep-alives.
    let mut follower = TypeCore::new(b.clone(), None, Some((every, vec!["0".into()])), t);
    follower.on_cluster(
        t,
        &[member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)],
        true,
        Epoch(0),
    );
    assert!(follower.tick(ms(t, 5_000), 2).is_empty());
}

#[test]
fn after_one_interval_keep_alives_go_out_even_if_a_region_never_registers() {
    let t = Instant::now();
    let (a, b) = (id("a", 10), id("b", 20));
    let mut core = TypeCore::new(
        a.clone(),
        None,
        Some((Duration::from_secs(1), vec!["0".into()])),
        t,
    );
    core.on_cluster(
        t,
        &[member(&a, MemberStatus::Up), member(&b, MemberStatus::Up)],
        true,
        Epoch(0),
    );
    assert!(core.tick(ms(t, 900), 1).is_empty());
    assert_eq!(
        core.tick(ms(t, 1_000), 1),
        vec![TypeAction::KeepAlive { worker: "0".into() }]
    );
}

#[test]
fn the_coordinator_hears_each_up_member_with_its_app_version() {
    let t = Instant::now();
    let (a, b, c) = (id("a", 1), id("b", 2), id("c", 3));
    let versioned = |id: &NodeId, status, version: &str| Member {
        app_version: AppVersion::new(version),
        ..member(id, status)
    };
    let mut core = TypeCore::new(a.clone(), None, None, t);
    let actions = core.on_cluster(
        t,
        &[
            versioned(&a, MemberStatus::Up, "1"),
            versioned(&b, MemberStatus::Up, "2"),
            versioned(&c, MemberStatus::Joining, "2"),
        ],
        true,
        Epoch(0),
    );
    let up_b = TypeAction::Coordinator(CoordinatorInput::MemberUp(b.clone(), AppVersion::new("2")));
    assert!(actions.contains(&up_b), "{actions:?}");
    // c is Up later: its version comes with it.
    let actions = core.on_cluster(
        ms(t, 100),
        &[
            versioned(&a, MemberStatus::Up, "1"),
            versioned(&b, MemberStatus::Leaving, "2"),
            versioned(&c, MemberStatus::Up, "2"),
        ],
        true,
        Epoch(0),
    );
    assert_eq!(
        actions,
        vec![
            TypeAction::Coordinator(CoordinatorInput::MemberLeaving(b)),
            TypeAction::Coordinator(CoordinatorInput::MemberUp(c, AppVersion::new("2"))),
        ]
    );
}
