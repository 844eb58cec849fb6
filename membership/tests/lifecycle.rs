//! One `Membership` driven by hand-made gossip: Joining -> Up, the leader's
//! admissions, bootstrap, graceful leave, learning that it is Down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membership::{
    keys, AppVersion, GossipNode, MemberEvent, MemberStatus, Membership, MembershipConfig,
    MembershipEffect, NodeId,
};

fn id(n: u64) -> NodeId {
    NodeId::new(format!("n{n}"), n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn node(n: u64, live: bool, entries: &[(String, &str)]) -> GossipNode {
    GossipNode {
        id: id(n),
        addr: ([127, 0, 0, 1], 7000 + n as u16).into(),
        keys: Arc::new(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        ),
        live,
    }
}

/// A live member `n` that is joining and says nothing else.
fn joining(n: u64) -> GossipNode {
    node(n, true, &[status("joining")])
}

fn status(value: &str) -> (String, &str) {
    (keys::STATUS.to_string(), value)
}

fn admit(n: u64) -> (String, &'static str) {
    (format!("{}{}", keys::ADMIT_PREFIX, id(n)), keys::MARKER)
}

fn down(n: u64) -> (String, &'static str) {
    (format!("{}{}", keys::DOWN_PREFIX, id(n)), keys::MARKER)
}

fn unreachable(n: u64) -> (String, &'static str) {
    (
        format!("{}{}", keys::UNREACHABLE_PREFIX, id(n)),
        keys::MARKER,
    )
}

fn seen_exiting(n: u64) -> (String, &'static str) {
    (
        format!("{}{}", keys::SEEN_EXITING_PREFIX, id(n)),
        keys::MARKER,
    )
}

/// Node 1, Up on its own: the first node of a cluster; and the time.
fn bootstrapped() -> (Membership, Instant) {
    let start = Instant::now();
    let mut m = new_node(1, start);
    m.on_gossip(start, vec![]);
    let mut now = start;
    while m.status() != MemberStatus::Up {
        now += ms(100);
        tick(&mut m, now);
        assert!(now < start + ms(2_000), "bootstraps");
    }
    (m, now)
}

fn new_node(n: u64, start: Instant) -> Membership {
    new_node_with(n, start, MembershipConfig::default())
}

fn new_node_with(n: u64, start: Instant, config: MembershipConfig) -> Membership {
    Membership::new(
        id(n),
        ([127, 0, 0, 1], 7000 + n as u16).into(),
        BTreeSet::new(),
        config,
        start,
    )
}

/// Ticks at `now`, answering every heartbeat request at once.
fn tick(m: &mut Membership, now: Instant) -> Vec<MembershipEffect> {
    let effects = m.tick(now);
    for effect in &effects {
        if let MembershipEffect::SendHeartbeat { to } = effect {
            m.on_heartbeat(now, to);
        }
    }
    effects
}

fn set_keys(effects: &[MembershipEffect]) -> BTreeMap<String, String> {
    effects
        .iter()
        .filter_map(|e| match e {
            MembershipEffect::SetKey { key, value } => Some((key.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

fn deleted_keys(effects: &[MembershipEffect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            MembershipEffect::DeleteKey { key } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn first_tick_publishes_joining_and_roles() {
    let start = Instant::now();
    let mut m = Membership::new(
        id(1),
        ([127, 0, 0, 1], 7001).into(),
        BTreeSet::from(["coord".to_string(), "store".to_string()]),
        MembershipConfig::default(),
        start,
    );
    let effects = m.tick(start);
    let keys = set_keys(&effects);
    assert_eq!(keys[keys::STATUS], "joining");
    assert_eq!(keys[keys::ROLES], "coord,store");
    assert!(
        set_keys(&m.tick(start + ms(100))).is_empty(),
        "no re-publishing"
    );
}

#[test]
fn the_app_version_is_published_and_read_back_on_the_member() {
    let start = Instant::now();
    let version = AppVersion::new("2.1.0");
    let mut m = new_node(1, start).with_app_version(version.clone());
    let keys = set_keys(&m.tick(start));
    assert_eq!(keys[keys::APP_VERSION], "2.1.0");
    assert_eq!(m.member(&id(1)).expect("itself").app_version, version);
    // A peer's version comes from its key; no key: none, the lowest.
    m.on_gossip(
        start,
        vec![
            node(
                2,
                true,
                &[status("up"), (keys::APP_VERSION.to_string(), "2.2")],
            ),
            node(3, true, &[status("up")]),
        ],
    );
    let version_of = |n| m.member(&id(n)).expect("known").app_version.clone();
    assert_eq!(version_of(2), AppVersion::new("2.2"));
    assert_eq!(version_of(3), None);
    let unversioned = set_keys(&new_node(4, start).tick(start));
    assert!(!unversioned.contains_key(keys::APP_VERSION));
}

#[test]
fn a_joining_node_becomes_up_once_admitted() {
    let start = Instant::now();
    let mut m = new_node(2, start);
    tick(&mut m, start);
    let leader = node(1, true, &[status("up")]);
    m.on_gossip(start + ms(100), vec![leader.clone()]);
    for t in (100..3_000).step_by(100) {
        tick(&mut m, start + ms(t));
    }
    assert_eq!(
        m.status(),
        MemberStatus::Joining,
        "an existing cluster must admit it"
    );

    m.on_gossip(
        start + ms(3_000),
        vec![node(1, true, &[status("up"), admit(2)])],
    );
    let effects = tick(&mut m, start + ms(3_000));
    assert_eq!(set_keys(&effects)[keys::STATUS], "up");
    assert!(effects.iter().any(|e| matches!(
        e,
        MembershipEffect::Event(MemberEvent::MemberUp(member)) if member.id == id(2)
    )));
    assert_eq!(m.status(), MemberStatus::Up);
}

/// A joiner that leaves was never a member: it is Removed at once and
/// never says `leaving`, a status that would count it as a member and let
/// it admit other joiners (the simulation's seed 161: two nodes restarted on
/// the minority side of a cut, one left, and admitted the other there).
#[test]
fn a_joining_node_that_leaves_is_removed_at_once() {
    let start = Instant::now();
    let mut m = new_node(2, start);
    m.on_gossip(start, vec![node(1, true, &[status("up")])]);
    tick(&mut m, start);
    let effects = m.leave(start + ms(100));
    assert_eq!(m.status(), MemberStatus::Removed);
    assert_eq!(set_keys(&effects)[keys::STATUS], "removed");
    assert!(effects
        .iter()
        .any(|e| matches!(e, MembershipEffect::SelfRemoved)));
}

#[test]
fn an_admission_by_a_joining_node_does_not_count() {
    let start = Instant::now();
    let mut m = new_node(3, start);
    m.on_gossip(
        start,
        vec![
            node(1, true, &[status("up")]),
            node(2, true, &[status("joining"), admit(3)]),
        ],
    );
    tick(&mut m, start + ms(100));
    assert_eq!(m.status(), MemberStatus::Joining);
}

#[test]
fn the_leader_admits_live_reachable_joining_nodes_and_cleans_up() {
    let (mut m, mut now) = bootstrapped();
    now += ms(100);
    m.on_gossip(now, vec![joining(2), node(3, false, &[status("joining")])]);
    let effects = tick(&mut m, now);
    let admitted = format!("{}{}", keys::ADMIT_PREFIX, id(2));
    assert_eq!(
        set_keys(&effects).get(&admitted).map(String::as_str),
        Some("1")
    );
    let not_live = format!("{}{}", keys::ADMIT_PREFIX, id(3));
    assert!(!set_keys(&effects).contains_key(&not_live));

    now += ms(100);
    m.on_gossip(now, vec![node(2, true, &[status("up")])]);
    let effects = tick(&mut m, now);
    assert!(deleted_keys(&effects).contains(&admitted), "{effects:?}");
}

#[test]
fn the_first_node_admits_itself_only_after_gossip_and_the_delay() {
    let start = Instant::now();
    let mut m = new_node(1, start);
    for t in (0..3_000).step_by(100) {
        tick(&mut m, start + ms(t));
    }
    assert_eq!(
        m.status(),
        MemberStatus::Joining,
        "never gossiped: maybe not alone"
    );

    let mut m = new_node(1, start);
    m.on_gossip(start, vec![]);
    tick(&mut m, start + ms(900));
    assert_eq!(m.status(), MemberStatus::Joining);
    tick(&mut m, start + ms(1_000));
    assert_eq!(m.status(), MemberStatus::Up);
}

#[test]
fn an_older_live_joining_node_bootstraps_first() {
    let start = Instant::now();
    let may_start = (keys::MAY_START.to_string(), keys::MARKER);
    let mut m = new_node(2, start);
    m.on_gossip(
        start,
        vec![node(1, true, &[status("joining"), may_start.clone()])],
    );
    tick(&mut m, start + ms(2_000));
    assert_eq!(m.status(), MemberStatus::Joining);
    // The older one died while joining: it no longer blocks.
    m.on_gossip(
        start + ms(2_100),
        vec![node(1, false, &[status("joining"), may_start])],
    );
    tick(&mut m, start + ms(2_100));
    assert_eq!(m.status(), MemberStatus::Up);
}

/// Processes started in a row may get their start times (generations) in
/// another order: an older joiner that may not start a cluster (it has
/// seeds) does not hold up the one that may, or neither would ever be Up.
#[test]
fn an_older_joiner_that_may_not_start_a_cluster_does_not_block_the_one_that_may() {
    let start = Instant::now();
    let mut m = new_node(2, start);
    m.on_gossip(start, vec![joining(1)]);
    let effects = tick(&mut m, start + ms(2_000));
    assert_eq!(m.status(), MemberStatus::Up);
    assert!(
        !set_keys(&effects).contains_key(keys::MAY_START) || m.status() != MemberStatus::Joining
    );
}

fn bootstrapped_alone(start: Instant) -> (Membership, Instant) {
    let mut m = new_node(1, start);
    m.on_gossip(start, vec![]);
    let now = start + ms(1_000);
    tick(&mut m, now);
    assert_eq!(m.status(), MemberStatus::Up);
    (m, now)
}

#[test]
fn leave_walks_leaving_exiting_removed_with_handoff_done() {
    let start = Instant::now();
    let (mut m, mut now) = bootstrapped_alone(start);
    let effects = m.leave(now);
    assert_eq!(set_keys(&effects)[keys::STATUS], "leaving");
    assert!(effects.iter().any(|e| matches!(
        e,
        MembershipEffect::Event(MemberEvent::MemberLeft(member)) if member.id == id(1)
    )));
    assert_eq!(
        m.singleton_host(None),
        None,
        "a leaving node hosts no singleton"
    );
    assert!(m.leave(now).is_empty(), "leave is idempotent");

    now += ms(500);
    let effects = m.leave_handoff_done(now);
    assert_eq!(set_keys(&effects)[keys::STATUS], "exiting");
    assert_eq!(m.status(), MemberStatus::Exiting);
    assert!(m.monitored().is_empty());

    // Alone, nobody has to acknowledge: Removed at the next tick, after
    // `exiting` was published.
    now += ms(100);
    let effects = tick(&mut m, now);
    assert_eq!(set_keys(&effects)[keys::STATUS], "removed");
    assert_eq!(effects.last(), Some(&MembershipEffect::SelfRemoved));
    assert!(tick(&mut m, now + ms(100)).is_empty(), "finished");
}

/// Node 1, Up among `peers`, has just handed off: it is Exiting.
fn exiting_among(start: Instant, peers: Vec<GossipNode>) -> (Membership, Instant) {
    let (mut m, now) = bootstrapped_alone(start);
    m.on_gossip(now, peers);
    tick(&mut m, now);
    m.leave(now);
    m.leave_handoff_done(now);
    (m, now)
}

#[test]
fn an_exiting_node_is_removed_once_every_live_member_has_seen_it_exiting() {
    let peers = |n2: &[(String, &str)]| {
        vec![
            node(2, true, n2),
            node(3, false, &[status("up")]), // not live: not waited for
        ]
    };
    let (mut m, mut now) = exiting_among(Instant::now(), peers(&[status("up")]));
    for _ in 0..20 {
        now += ms(100);
        tick(&mut m, now);
        assert_eq!(m.status(), MemberStatus::Exiting, "n2 has not seen it yet");
    }
    m.on_gossip(now, peers(&[status("up"), seen_exiting(1)]));
    let effects = tick(&mut m, now + ms(100));
    assert_eq!(set_keys(&effects)[keys::STATUS], "removed");
    assert_eq!(effects.last(), Some(&MembershipEffect::SelfRemoved));
}

#[test]
fn a_member_that_never_acknowledges_holds_an_exit_up_for_exiting_timeout_at_most() {
    let (mut m, now) = exiting_among(Instant::now(), vec![node(2, true, &[status("up")])]);
    let timeout = MembershipConfig::default().exiting_timeout;
    tick(&mut m, now + timeout - ms(1));
    assert_eq!(m.status(), MemberStatus::Exiting);
    let effects = tick(&mut m, now + timeout);
    assert_eq!(effects.last(), Some(&MembershipEffect::SelfRemoved));
}

#[test]
fn a_member_acknowledges_what_it_sees_exiting_and_stops_once_it_is_gone() {
    let start = Instant::now();
    let (mut m, now) = bootstrapped_alone(start);
    m.on_gossip(now, vec![node(2, true, &[status("exiting")])]);
    let effects = tick(&mut m, now);
    assert_eq!(set_keys(&effects)[&seen_exiting(2).0], keys::MARKER);
    m.on_gossip(now + ms(100), vec![node(2, true, &[status("removed")])]);
    let effects = tick(&mut m, now + ms(100));
    assert_eq!(deleted_keys(&effects), [seen_exiting(2).0]);
}

#[test]
fn leave_moves_on_after_the_handoff_timeout() {
    let start = Instant::now();
    let (mut m, now) = bootstrapped_alone(start);
    m.leave(now);
    tick(&mut m, now + ms(9_900));
    assert_eq!(m.status(), MemberStatus::Leaving);
    tick(&mut m, now + ms(10_000));
    assert_eq!(m.status(), MemberStatus::Exiting);
    let effects = tick(&mut m, now + ms(11_000));
    assert_eq!(effects.last(), Some(&MembershipEffect::SelfRemoved));
}

#[test]
fn a_node_that_learns_it_is_down_stops() {
    let start = Instant::now();
    let (mut m, now) = bootstrapped_alone(start);
    m.on_gossip(now, vec![node(2, true, &[status("up"), down(1)])]);
    assert!(!m.would_survive());
    let effects = tick(&mut m, now + ms(100));
    assert_eq!(effects.last(), Some(&MembershipEffect::SelfDown));
    assert!(effects.iter().any(|e| matches!(
        e,
        MembershipEffect::Event(MemberEvent::MemberDowned(member)) if member.id == id(1)
    )));
    assert!(!effects
        .iter()
        .any(|e| matches!(e, MembershipEffect::SendHeartbeat { .. })));
    assert_eq!(m.status(), MemberStatus::Down);
    assert!(tick(&mut m, now + ms(200)).is_empty());
    // Down is final: the key disappearing changes nothing.
    m.on_gossip(now + ms(300), vec![node(2, true, &[status("up")])]);
    assert_eq!(m.status(), MemberStatus::Down);
}

#[test]
fn unreachable_then_reachable_emits_both_events_and_keys() {
    let start = Instant::now();
    let (mut m, mut now) = bootstrapped_alone(start);
    let peer = node(2, true, &[status("up")]);
    m.on_gossip(now, vec![peer.clone()]);
    tick(&mut m, now);
    assert_eq!(m.monitored(), vec![id(2)]);
    // n2 stops answering.
    let observation = format!("{}{}", keys::UNREACHABLE_PREFIX, id(2));
    let mut became_unreachable = None;
    for _ in 0..20 {
        now += ms(100);
        let effects = m.tick(now);
        if set_keys(&effects).contains_key(&observation) {
            assert!(effects.iter().any(|e| matches!(
                e,
                MembershipEffect::Event(MemberEvent::Unreachable { member, observers })
                    if *member == id(2) && *observers == vec![id(1)]
            )));
            became_unreachable = Some(now);
            break;
        }
    }
    assert!(became_unreachable.is_some());
    assert!(!m.member(&id(2)).expect("known").reachability.is_reachable());
    let pending = m.pending_decision().expect("pending");
    assert_eq!(pending.to_down, vec![id(2)]);
    // It answers again before the decision.
    now += ms(100);
    m.on_heartbeat(now, &id(2));
    let effects = m.tick(now);
    assert_eq!(deleted_keys(&effects), vec![observation]);
    assert!(effects
        .iter()
        .any(|e| matches!(e, MembershipEffect::Event(MemberEvent::Reachable(n)) if *n == id(2))));
    assert!(m.pending_decision().is_none());
}

/// Akka's convergence: the leader admits a joiner only once every Up member
/// says it has seen it. A member on the far side of a cut not detected yet
/// cannot have, so a joiner never tips a side it joined during a cut.
#[test]
fn the_leader_admits_a_joiner_only_once_every_up_member_has_seen_it() {
    let (mut m, mut now) = bootstrapped();
    let admitted = format!("{}{}", keys::ADMIT_PREFIX, id(3));
    let joiners = keys::encode_ids([&id(3)]);
    let seen_3 = (keys::SEEN_JOINERS.to_owned(), joiners.as_str());
    now += ms(100);
    m.on_gossip(now, vec![node(2, true, &[status("up")]), joining(3)]);
    let effects = tick(&mut m, now);
    assert!(
        !set_keys(&effects).contains_key(&admitted),
        "n2 has not seen n3"
    );
    let members = sees(&[1, 2, 3]);
    assert_eq!(
        set_keys(&effects)[&members.0],
        members.1,
        "n1 says it sees n3"
    );
    now += ms(100);
    m.on_gossip(
        now,
        vec![node(2, true, &[status("up"), seen_3.clone()]), joining(3)],
    );
    let effects = tick(&mut m, now);
    assert_eq!(set_keys(&effects)[&admitted], keys::MARKER);
}

/// What an Up member of this build publishes it sees: `members` Joining or
/// Up.
fn sees(members: &[u64]) -> (String, String) {
    let ids = members.iter().map(|&n| id(n)).collect::<Vec<_>>();
    (keys::SEEN_MEMBERS.to_owned(), keys::encode_ids(ids.iter()))
}

fn up_seeing(n: u64, members: &[u64]) -> GossipNode {
    let (key, value) = sees(members);
    node(n, true, &[status("up"), (key, value.as_str())])
}

/// A wave of admissions holds while its news spreads: n2, admitted with n3
/// and n4, already sees n3 Up while this leader still sees it joining. They
/// see different joiners but the same members, so the admissions stand.
/// (With the joiners alone compared, each joiner that became Up withdrew the
/// admissions of the others until every view agreed again: 50 nodes were
/// admitted in waves 0.4 s apart.)
#[test]
fn admissions_hold_while_the_admitted_become_up_one_by_one() {
    let (mut m, mut now) = bootstrapped();
    now += ms(100);
    m.on_gossip(
        now,
        vec![up_seeing(2, &[1, 2, 3, 4]), joining(3), joining(4)],
    );
    let published = set_keys(&tick(&mut m, now));
    let members = sees(&[1, 2, 3, 4]);
    assert_eq!(published[&members.0], members.1, "n1 sees the same members");
    for n in [3, 4] {
        assert_eq!(
            published.get(&admit(n).0).map(String::as_str),
            Some(keys::MARKER),
            "n{n} admitted"
        );
    }
}

/// The admissions of a wave go together: n3, admitted with n4, keeps its
/// admission once Up while n4 still joins, and both keys are deleted in one
/// change when n4 is Up too (one change per joiner kept every node's gossip
/// with the leader busy: 100 nodes mostly failed to converge).
#[test]
fn the_admissions_of_a_wave_are_withdrawn_together_once_all_are_up() {
    let (mut m, mut now) = bootstrapped();
    let up = |n| up_seeing(n, &[1, 2, 3, 4]);
    now += ms(100);
    m.on_gossip(
        now,
        vec![up_seeing(2, &[1, 2, 3, 4]), joining(3), joining(4)],
    );
    let published = set_keys(&tick(&mut m, now));
    assert!(published.contains_key(&admit(3).0) && published.contains_key(&admit(4).0));
    now += ms(100);
    m.on_gossip(now, vec![up_seeing(2, &[1, 2, 3, 4]), up(3), joining(4)]);
    let effects = tick(&mut m, now);
    assert!(
        !deleted_keys(&effects).contains(&admit(3).0),
        "n3 is Up, n4 still joins: n3's admission stays"
    );
    now += ms(100);
    m.on_gossip(now, vec![up_seeing(2, &[1, 2, 3, 4]), up(3), up(4)]);
    let mut deleted = deleted_keys(&tick(&mut m, now));
    deleted.retain(|key| key.starts_with(keys::ADMIT_PREFIX));
    deleted.sort();
    assert_eq!(deleted, vec![admit(3).0, admit(4).0], "both at once");
}

/// ... and a member of this build that has not seen a joiner holds every
/// admission back, as one that predates `member.seen-members` does (see
/// above).
#[test]
fn a_member_that_has_not_seen_a_joiner_holds_the_admissions_back() {
    let (mut m, mut now) = bootstrapped();
    now += ms(100);
    m.on_gossip(now, vec![up_seeing(2, &[1, 2, 3]), joining(3), joining(4)]);
    let published = set_keys(&tick(&mut m, now));
    assert!(
        !published
            .keys()
            .any(|key| key.starts_with(keys::ADMIT_PREFIX)),
        "n2 has not seen n4: {published:?}"
    );
}

/// `member.seen-joiners` changes whenever a joiner becomes Up, so it is
/// published only for a member of an older build, which reads nothing else
/// when it admits: not in a cluster of this build, and again once a member
/// that publishes it alone is seen.
#[test]
fn the_joiners_seen_are_published_only_while_an_older_build_is_present() {
    let (mut m, mut now) = bootstrapped();
    let joiners = keys::encode_ids([&id(3)]);
    let joiners_seen =
        |effects: &[MembershipEffect]| set_keys(effects).get(keys::SEEN_JOINERS).cloned();
    now += ms(100);
    m.on_gossip(now, vec![up_seeing(2, &[1, 2, 3]), joining(3)]);
    assert_eq!(joiners_seen(&tick(&mut m, now)), None, "one build");
    now += ms(100);
    let older = (keys::SEEN_JOINERS.to_owned(), joiners.as_str());
    m.on_gossip(now, vec![node(2, true, &[status("up"), older]), joining(3)]);
    assert_eq!(
        joiners_seen(&tick(&mut m, now)),
        Some(joiners.clone()),
        "n2 predates member.seen-members"
    );
}

/// Akka's convergence, the other half: a joiner every Up member has seen is
/// still not admitted while any member is unreachable (the cut came after
/// everyone saw the joiner).
#[test]
fn the_leader_admits_nobody_while_a_member_is_unreachable() {
    let (mut m, mut now) = bootstrapped();
    let admitted = format!("{}{}", keys::ADMIT_PREFIX, id(3));
    let joiners = keys::encode_ids([&id(3)]);
    let seen_3 = (keys::SEEN_JOINERS.to_owned(), joiners.as_str());
    let n2_unreachable = (format!("{}{}", keys::UNREACHABLE_PREFIX, id(2)), "1");
    now += ms(100);
    m.on_gossip(
        now,
        vec![
            node(2, true, &[status("up"), seen_3.clone()]),
            joining(3),
            node(4, true, &[status("up"), seen_3.clone(), n2_unreachable]),
        ],
    );
    let effects = tick(&mut m, now);
    assert!(
        !set_keys(&effects).contains_key(&admitted),
        "n2 is unreachable"
    );
    now += ms(100);
    m.on_gossip(
        now,
        vec![
            node(2, true, &[status("up"), seen_3.clone()]),
            joining(3),
            node(4, true, &[status("up"), seen_3]),
        ],
    );
    let effects = tick(&mut m, now);
    assert_eq!(set_keys(&effects)[&admitted], keys::MARKER);
}

/// A node that may not start a cluster (it was given seeds of an existing
/// one) never admits itself, alone or with other joiners: restarted on the
/// cut-off side of a split, it waits for the cluster instead of starting a
/// second one beside it.
#[test]
fn a_node_that_may_not_start_a_cluster_waits_to_be_admitted() {
    let start = Instant::now();
    let config = MembershipConfig {
        may_start_cluster: false,
        ..MembershipConfig::default()
    };
    let mut m = new_node_with(1, start, config);
    for t in (0..5_000).step_by(100) {
        let now = start + ms(t);
        m.on_gossip(now, vec![joining(2)]);
        tick(&mut m, now);
    }
    assert_eq!(m.status(), MemberStatus::Joining);
}

/// The simulation's seed 2927: a cut comes just as the leader admits two
/// joiners on its side. This node (n2, with n4) never sees them Up, but
/// every Up member had published that it saw them joining, so they may be
/// Up over there: counted, the other side is 3 to this side's 2, and this
/// side downs itself (counting only Up members, it won 2 to 1, and both
/// sides served).
#[test]
fn admissible_joiners_cut_off_count_for_the_other_side() {
    assert_eq!(
        seed_2927_downs(MembershipConfig::default()),
        BTreeSet::from([id(2), id(4)])
    );
}

/// ... with any configuration that validates: this node's own silence
/// about n1, which it monitors but never heard from, would count as contact
/// with n1 if the decision came before its detector gave up (both sides
/// stayed up with Akka's 3 s pause and a 2 s `stable_after`, which
/// `MembershipConfig::validate` refuses).
#[test]
fn a_valid_configuration_waits_for_this_nodes_own_detector() {
    let akka_pause = MembershipConfig {
        acceptable_heartbeat_pause: Duration::from_secs(3),
        ..MembershipConfig::default()
    };
    assert!(akka_pause.validate().is_err());
    let config = MembershipConfig {
        stable_after: akka_pause.first_detection() + ms(1),
        ..akka_pause
    };
    assert!(config.validate().is_ok());
    assert_eq!(seed_2927_downs(config), BTreeSet::from([id(2), id(4)]));
}

/// Who node 2 downs in the scene of the simulator's seed 2927 (above).
fn seed_2927_downs(config: MembershipConfig) -> BTreeSet<NodeId> {
    let start = Instant::now();
    let mut m = new_node_with(2, start, config);
    tick(&mut m, start);
    m.on_gossip(start, vec![node(1, true, &[status("up"), admit(2)])]);
    tick(&mut m, start + ms(100));
    assert_eq!(m.status(), MemberStatus::Up);
    let joiners = keys::encode_ids([id(5), id(6)].iter());
    let seen = (keys::SEEN_JOINERS.to_string(), joiners.as_str());
    let gossip = vec![
        node(1, true, &[status("up"), seen.clone()]),
        node(
            4,
            true,
            &[
                status("up"),
                seen.clone(),
                unreachable(1),
                unreachable(5),
                unreachable(6),
            ],
        ),
        joining(5),
        joining(6),
    ];
    let mut now = start + ms(200);
    m.on_gossip(now, gossip.clone());
    // Only n4 answers this node's heartbeats from now on.
    loop {
        now += ms(100);
        m.on_gossip(now, gossip.clone());
        for effect in m.tick(now) {
            if let MembershipEffect::SendHeartbeat { to } = effect {
                if to == id(4) {
                    m.on_heartbeat(now, &to);
                }
            }
        }
        let downed: BTreeSet<NodeId> = m
            .members()
            .into_iter()
            .filter(|member| member.status == MemberStatus::Down)
            .map(|member| member.id)
            .collect();
        if !downed.is_empty() {
            break downed;
        }
        assert!(now < start + ms(10_000), "no decision: {:?}", m.members());
    }
}
