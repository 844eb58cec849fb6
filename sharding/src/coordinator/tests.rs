//! Unit tests of the coordinator, one behaviour each.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use membership::AppVersion;

use super::*;
use crate::config::ShardingConfig;
use crate::ids::{Epoch, RegionId, RequestId, ShardId};
use crate::messages::{CoordinatorToRegion, Envelope, RegionToCoordinator};

const EPOCH: Epoch = Epoch(5);

struct Fixture {
    coordinator: Coordinator,
    t0: Instant,
    next_id: u64,
}

fn region(name: &str) -> RegionId {
    RegionId::new(name, 1)
}

fn config(shards: u32) -> ShardingConfig {
    ShardingConfig {
        number_of_shards: shards,
        ..ShardingConfig::default()
    }
}

impl Fixture {
    fn new(shards: u32) -> Self {
        Self::with_previous(shards, None)
    }

    fn with_previous(shards: u32, previous: Option<Duration>) -> Self {
        let t0 = Instant::now();
        let mut coordinator = Coordinator::new(
            region("coord"),
            EPOCH,
            config(shards),
            t0,
            previous.map(|d| t0 + d),
        );
        coordinator.handle(t0, CoordinatorInput::Quorum(true));
        Self {
            coordinator,
            t0,
            next_id: 0,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn send(&mut self, ms: u64, from: &RegionId, body: RegionToCoordinator) -> Vec<Sent> {
        self.next_id += 1;
        let message = Envelope {
            epoch: EPOCH,
            request_id: RequestId(self.next_id),
            from: from.clone(),
            body,
        };
        let now = self.at(ms);
        sent(
            self.coordinator
                .handle(now, CoordinatorInput::Message(message)),
        )
    }

    fn register(
        &mut self,
        ms: u64,
        from: &RegionId,
        hosted: &[u32],
        fenced: &[u32],
        stopping: &[u32],
    ) -> Vec<Sent> {
        let ids = |list: &[u32]| list.iter().copied().map(ShardId).collect();
        let body = RegionToCoordinator::Register {
            hosted: ids(hosted),
            fenced: ids(fenced),
            handing_off: ids(stopping),
            proxy_only: false,
        };
        self.send(ms, from, body)
    }

    fn tick(&mut self, ms: u64) -> Vec<Sent> {
        let now = self.at(ms);
        sent(self.coordinator.tick(now))
    }

    /// Asks for a shard's home and confirms the start; returns the home.
    fn allocate(&mut self, ms: u64, asker: &RegionId, shard: u32) -> RegionId {
        let effects = self.send(
            ms,
            asker,
            RegionToCoordinator::GetShardHome {
                shard: ShardId(shard),
            },
        );
        let (home, host) = effects
            .iter()
            .find_map(|(to, id, body)| match body {
                CoordinatorToRegion::HostShard { .. } => Some((to.clone(), *id)),
                _ => None,
            })
            .expect("HostShard sent");
        let started = RegionToCoordinator::ShardStarted {
            shard: ShardId(shard),
            host,
        };
        self.send(ms, &home, started);
        home
    }

    fn state(&self, shard: u32) -> ShardState {
        self.coordinator
            .shard_state(ShardId(shard))
            .cloned()
            .expect("shard exists")
    }
}

type Sent = (RegionId, RequestId, CoordinatorToRegion);

fn sent(effects: Vec<CoordinatorEffect>) -> Vec<Sent> {
    effects
        .into_iter()
        .filter_map(|effect| match effect {
            CoordinatorEffect::Send { to, message } => Some((to, message.request_id, message.body)),
            _ => None,
        })
        .collect()
}

fn bodies_to(effects: &[Sent], to: &RegionId) -> Vec<CoordinatorToRegion> {
    effects
        .iter()
        .filter(|(target, _, _)| target == to)
        .map(|(_, _, body)| body.clone())
        .collect()
}

#[test]
fn allocates_on_request_and_answers_once_started() {
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::new(10);
    f.register(0, &a, &[], &[], &[]);
    f.register(0, &b, &[], &[], &[]);
    let effects = f.send(
        1,
        &b,
        RegionToCoordinator::GetShardHome { shard: ShardId(3) },
    );
    let (home, host) = match &effects[..] {
        [(to, id, CoordinatorToRegion::HostShard { shard: ShardId(3) })] => (to.clone(), *id),
        other => panic!("expected one HostShard, got {other:?}"),
    };
    // Least shards, oldest first on ties: "a" (both generation 1, "a" < "b").
    assert_eq!(home, a);
    let effects = f.send(
        2,
        &a,
        RegionToCoordinator::ShardStarted {
            shard: ShardId(3),
            host,
        },
    );
    assert_eq!(
        bodies_to(&effects, &b),
        vec![CoordinatorToRegion::ShardHome {
            shard: ShardId(3),
            home: a.clone()
        }]
    );
    assert_eq!(
        f.coordinator.allocation(),
        BTreeMap::from([(ShardId(3), a)])
    );
}

#[test]
fn without_quorum_it_allocates_registers_and_renews_nothing() {
    let a = region("a");
    let mut f = Fixture::new(10);
    f.register(0, &a, &[], &[], &[]);
    f.coordinator
        .handle(f.at(1), CoordinatorInput::Quorum(false));
    assert!(f
        .send(
            2,
            &a,
            RegionToCoordinator::GetShardHome { shard: ShardId(1) }
        )
        .is_empty());
    assert!(f.send(3, &a, RegionToCoordinator::RenewLease).is_empty());
    assert!(f.register(4, &region("b"), &[], &[], &[]).is_empty());
    // Quorum back: the queued request is served.
    let effects = sent(
        f.coordinator
            .handle(f.at(5), CoordinatorInput::Quorum(true)),
    );
    assert!(matches!(
        &effects[..],
        [(_, _, CoordinatorToRegion::HostShard { shard: ShardId(1) })]
    ));
}

#[test]
fn a_stale_epoch_only_gets_a_hint() {
    let a = region("a");
    let mut f = Fixture::new(10);
    f.register(0, &a, &[], &[], &[]);
    let before = f.coordinator.allocation();
    let message = Envelope {
        epoch: Epoch(4),
        request_id: RequestId(99),
        from: a.clone(),
        body: RegionToCoordinator::GetShardHome { shard: ShardId(1) },
    };
    let effects = sent(
        f.coordinator
            .handle(f.at(1), CoordinatorInput::Message(message)),
    );
    assert!(matches!(
        &effects[..],
        [(_, _, CoordinatorToRegion::CoordinatorStarted)]
    ));
    assert_eq!(f.coordinator.allocation(), before);
    assert_eq!(f.state(1), ShardState::Free);
}

#[test]
fn a_newer_epoch_supersedes_the_coordinator() {
    let a = region("a");
    let mut f = Fixture::new(10);
    let message = Envelope {
        epoch: Epoch(6),
        request_id: RequestId(1),
        from: a.clone(),
        body: RegionToCoordinator::RenewLease,
    };
    let effects = f
        .coordinator
        .handle(f.at(1), CoordinatorInput::Message(message));
    assert_eq!(
        effects,
        vec![CoordinatorEffect::Superseded { by: Epoch(6) }]
    );
    assert!(f.coordinator.is_superseded());
    assert!(f.register(2, &a, &[], &[], &[]).is_empty());
    assert!(f.tick(10_000).is_empty());
}

#[test]
fn a_duplicate_register_gets_the_same_ack_and_a_late_one_nothing() {
    let a = region("a");
    let mut f = Fixture::new(10);
    let register = |id| Envelope {
        epoch: EPOCH,
        request_id: RequestId(id),
        from: a.clone(),
        body: RegionToCoordinator::Register {
            hosted: vec![ShardId(1)],
            fenced: vec![],
            handing_off: vec![],
            proxy_only: false,
        },
    };
    let first = f
        .coordinator
        .handle(f.at(0), CoordinatorInput::Message(register(10)));
    let again = f
        .coordinator
        .handle(f.at(5), CoordinatorInput::Message(register(10)));
    assert_eq!(first, again);
    assert!(f
        .coordinator
        .handle(f.at(6), CoordinatorInput::Message(register(9)))
        .is_empty());
}

#[test]
fn unknown_or_garbage_shards_are_ignored_without_panic() {
    let a = region("a");
    let mut f = Fixture::new(10);
    f.register(0, &a, &[99, 1], &[4_000_000], &[77]);
    assert!(f
        .send(
            1,
            &a,
            RegionToCoordinator::GetShardHome { shard: ShardId(10) }
        )
        .is_empty());
    f.send(
        1,
        &a,
        RegionToCoordinator::ShardStopped {
            shard: ShardId(u32::MAX),
        },
    );
    assert_eq!(
        f.coordinator.allocation(),
        BTreeMap::from([(ShardId(1), a)])
    );
}

#[test]
fn recovery_rebuilds_from_reports_and_waits_for_unreported_shards() {
    // The previous coordinator was last seen at 0 ms: its grants surely ran
    // out at 3.3 s.
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::with_previous(6, Some(Duration::ZERO));
    let ack_a = f.register(100, &a, &[0], &[1], &[2]);
    let ack_b = f.register(100, &b, &[3], &[], &[]);
    // a runs 0: kept; 1 is fenced under an unknown grant: dropped (another
    // home may have written since its lease lapsed; kept waiting, it could be
    // given the shard again after that home wrote); 2 is stopping: Handoff.
    assert!(
        bodies_to(&ack_a, &a).contains(&CoordinatorToRegion::RegisterAck {
            register: RequestId(1),
            lease: Duration::from_secs(3),
            confirmed: vec![ShardId(0)],
            drop: vec![ShardId(1)],
        })
    );
    assert!(bodies_to(&ack_a, &a).contains(&CoordinatorToRegion::Handoff { shard: ShardId(2) }));
    assert!(matches!(
        &ack_b[..],
        [(_, _, CoordinatorToRegion::RegisterAck { .. })]
    ));
    assert!(matches!(
        f.state(1),
        ShardState::LeaseRunningOut { holder: None, .. }
    ));
    assert!(matches!(f.state(4), ShardState::LeaseRunningOut { .. }));
    // Asking for unreported shard 4 before the grant ran out: queued.
    assert!(f
        .send(
            200,
            &b,
            RegionToCoordinator::GetShardHome { shard: ShardId(4) }
        )
        .is_empty());
    f.tick(3_299);
    assert!(matches!(f.state(4), ShardState::LeaseRunningOut { .. }));
    let effects = f.tick(3_300);
    assert!(effects
        .iter()
        .any(|(_, _, body)| *body == CoordinatorToRegion::HostShard { shard: ShardId(4) }));
    // Once the shard is free the fenced copy is dropped as well.
    let again = f.register(3_400, &a, &[0], &[1], &[]);
    assert!(bodies_to(&again, &a).iter().any(|body| matches!(
        body,
        CoordinatorToRegion::RegisterAck { confirmed, drop, .. }
            if drop == &vec![ShardId(1)] && !confirmed.contains(&ShardId(1))
    )));
}

#[test]
fn recovery_is_immediate_when_there_was_no_previous_coordinator() {
    let f = Fixture::new(3);
    assert_eq!(f.state(0), ShardState::Free);
}

#[test]
fn a_down_region_keeps_its_shards_until_its_lease_has_surely_run_out() {
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::new(4);
    f.register(0, &a, &[], &[], &[]);
    f.allocate(0, &a, 0);
    f.register(0, &b, &[], &[], &[]);
    f.send(1_000, &a, RegionToCoordinator::RenewLease); // last answer at 1.0 s
    f.coordinator
        .handle(f.at(1_500), CoordinatorInput::MemberDown(a.clone()));
    assert!(matches!(f.state(0), ShardState::LeaseRunningOut { .. }));
    for ms in [1_000, 2_000, 3_000, 4_000] {
        f.send(ms, &b, RegionToCoordinator::RenewLease);
    }
    f.tick(4_299);
    assert!(matches!(f.state(0), ShardState::LeaseRunningOut { .. }));
    // 1.0 s + 3 s lease + 0.3 s margin: free, and re-homed at once on b.
    let effects = f.tick(4_300);
    assert_eq!(
        bodies_to(&effects, &b),
        vec![CoordinatorToRegion::HostShard { shard: ShardId(0) }]
    );
    // A Down region's later messages change nothing.
    assert!(f.register(4_400, &a, &[0], &[], &[]).is_empty());
}

#[test]
fn a_silent_region_lapses_and_its_shards_move() {
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::new(4);
    f.register(0, &a, &[], &[], &[]);
    f.allocate(0, &a, 0);
    f.register(0, &b, &[], &[], &[]);
    // b renews, a is silent from 0 on.
    for ms in [1_000, 2_000, 3_000] {
        f.send(ms, &b, RegionToCoordinator::RenewLease);
        f.tick(ms);
    }
    assert!(matches!(f.state(0), ShardState::Hosted { .. }));
    let effects = f.tick(3_300);
    assert_eq!(
        bodies_to(&effects, &b),
        vec![CoordinatorToRegion::HostShard { shard: ShardId(0) }]
    );
    // a comes back: its renewal gets a hint, its fenced shard is dropped.
    let hint = f.send(3_400, &a, RegionToCoordinator::RenewLease);
    assert!(matches!(
        &hint[..],
        [(_, _, CoordinatorToRegion::CoordinatorStarted)]
    ));
    let ack = f.register(3_500, &a, &[], &[0], &[]);
    assert!(bodies_to(&ack, &a).iter().any(|body| matches!(
        body,
        CoordinatorToRegion::RegisterAck { drop, .. } if drop == &vec![ShardId(0)]
    )));
}

#[test]
fn handoff_runs_begin_acks_handoff_stopped_and_allocates_again() {
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::new(4);
    f.register(0, &a, &[], &[], &[]);
    for shard in 0..4 {
        f.allocate(0, &a, shard);
    }
    f.register(0, &b, &[], &[], &[]);
    for ms in (1_000..=10_000).step_by(1_000) {
        f.send(ms, &a, RegionToCoordinator::RenewLease);
        f.send(ms, &b, RegionToCoordinator::RenewLease);
    }
    // Rebalance after 10 s: 4 on a, 0 on b; limit max(1, 0.1 * 4) = 1 shard.
    let effects = f.tick(10_000);
    let begins: Vec<&Sent> = effects
        .iter()
        .filter(|(_, _, body)| matches!(body, CoordinatorToRegion::BeginHandoff { .. }))
        .collect();
    assert_eq!(begins.len(), 2, "to both registered regions");
    let (_, begin, CoordinatorToRegion::BeginHandoff { shard }) = begins[0].clone() else {
        unreachable!()
    };
    assert!(f
        .send(
            10_001,
            &a,
            RegionToCoordinator::BeginHandoffAck { shard, begin }
        )
        .is_empty());
    // Duplicate ack: nothing.
    assert!(f
        .send(
            10_001,
            &a,
            RegionToCoordinator::BeginHandoffAck { shard, begin }
        )
        .is_empty());
    let effects = f.send(
        10_002,
        &b,
        RegionToCoordinator::BeginHandoffAck { shard, begin },
    );
    assert_eq!(
        bodies_to(&effects, &a),
        vec![CoordinatorToRegion::Handoff { shard }]
    );
    let effects = f.send(10_003, &a, RegionToCoordinator::ShardStopped { shard });
    assert_eq!(
        bodies_to(&effects, &b),
        vec![CoordinatorToRegion::HostShard { shard }]
    );
    let host = effects[0].1;
    let effects = f.send(
        10_004,
        &b,
        RegionToCoordinator::ShardStarted { shard, host },
    );
    // Every other region hears the new home.
    assert_eq!(
        bodies_to(&effects, &a),
        vec![CoordinatorToRegion::ShardHome {
            shard,
            home: b.clone()
        }]
    );
    // Late ShardStopped: ignored.
    assert!(f
        .send(10_005, &a, RegionToCoordinator::ShardStopped { shard })
        .is_empty());
    assert_eq!(f.coordinator.allocation().get(&shard), Some(&b));
}

#[test]
fn a_down_region_counts_as_acked() {
    let (a, b, c) = (region("a"), region("b"), region("c"));
    let mut f = Fixture::new(2);
    f.register(0, &a, &[], &[], &[]);
    f.allocate(0, &a, 0);
    f.register(0, &b, &[], &[], &[]);
    f.register(0, &c, &[], &[], &[]);
    f.coordinator
        .handle(f.at(1), CoordinatorInput::MemberLeaving(a.clone()));
    let ShardState::BeginningHandoff { begin, .. } = f.state(0) else {
        panic!("handoff began: {:?}", f.state(0));
    };
    f.send(
        2,
        &a,
        RegionToCoordinator::BeginHandoffAck {
            shard: ShardId(0),
            begin,
        },
    );
    f.send(
        2,
        &b,
        RegionToCoordinator::BeginHandoffAck {
            shard: ShardId(0),
            begin,
        },
    );
    let effects = sent(
        f.coordinator
            .handle(f.at(3), CoordinatorInput::MemberDown(c)),
    );
    assert_eq!(
        bodies_to(&effects, &a),
        vec![CoordinatorToRegion::Handoff { shard: ShardId(0) }]
    );
}

#[test]
fn a_leaving_region_hands_off_everything_then_is_reported() {
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::new(3);
    f.register(0, &a, &[], &[], &[]);
    f.allocate(0, &a, 0);
    f.register(0, &b, &[], &[], &[]);
    let effects = f
        .coordinator
        .handle(f.at(1), CoordinatorInput::MemberLeaving(a.clone()));
    assert!(!effects.is_empty());
    let ShardState::BeginningHandoff { begin, .. } = f.state(0) else {
        panic!("handoff began");
    };
    for r in [&a, &b] {
        f.send(
            2,
            r,
            RegionToCoordinator::BeginHandoffAck {
                shard: ShardId(0),
                begin,
            },
        );
    }
    let effects = f.send(
        3,
        &a,
        RegionToCoordinator::ShardStopped { shard: ShardId(0) },
    );
    assert_eq!(
        bodies_to(&effects, &b),
        vec![CoordinatorToRegion::HostShard { shard: ShardId(0) }]
    );
    let done = f.coordinator.tick(f.at(4));
    assert!(done.contains(&CoordinatorEffect::RegionHandedOff { region: a.clone() }));
    assert!(!f
        .coordinator
        .tick(f.at(5))
        .contains(&CoordinatorEffect::RegionHandedOff { region: a }));
}

#[test]
fn a_leaving_region_is_not_reported_handed_off_before_it_registered() {
    // A new coordinator hears "a is leaving" before a's Register: it does
    // not know yet what a hosts, so it must not say "a hosts nothing".
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::with_previous(2, Some(Duration::ZERO));
    f.register(0, &b, &[], &[], &[]);
    let early = f
        .coordinator
        .handle(f.at(1), CoordinatorInput::MemberLeaving(a.clone()));
    let reported = CoordinatorEffect::RegionHandedOff { region: a.clone() };
    assert!(!early.contains(&reported));
    assert!(!f.coordinator.tick(f.at(2)).contains(&reported));
    f.register(3, &a, &[0], &[], &[]);
    let effects = sent(f.coordinator.tick(f.at(4)));
    assert_eq!(
        bodies_to(&effects, &b),
        vec![CoordinatorToRegion::BeginHandoff { shard: ShardId(0) }]
    );
}

#[test]
fn recovery_keeps_a_half_done_handoff_where_the_shard_still_runs() {
    // The old coordinator sent BeginHandoff for shard 0 (at a) and died; a
    // still runs it, b buffers. The new coordinator keeps it at a.
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::with_previous(2, Some(Duration::ZERO));
    f.register(10, &a, &[0], &[], &[]);
    f.register(10, &b, &[], &[], &[]);
    let effects = f.send(
        20,
        &b,
        RegionToCoordinator::GetShardHome { shard: ShardId(0) },
    );
    assert_eq!(
        bodies_to(&effects, &b),
        vec![CoordinatorToRegion::ShardHome {
            shard: ShardId(0),
            home: a
        }]
    );
}

#[test]
fn retransmits_unanswered_host_shard_with_the_same_request_id() {
    let a = region("a");
    let mut f = Fixture::new(2);
    f.register(0, &a, &[], &[], &[]);
    let first = f.send(
        0,
        &a,
        RegionToCoordinator::GetShardHome { shard: ShardId(1) },
    );
    f.send(400, &a, RegionToCoordinator::RenewLease);
    let again = f.tick(500);
    let host = |effects: &[Sent]| {
        effects
            .iter()
            .find(|(_, _, body)| matches!(body, CoordinatorToRegion::HostShard { .. }))
            .map(|(_, id, _)| *id)
    };
    assert!(host(&first).is_some());
    assert_eq!(host(&first), host(&again));
}

#[test]
fn ten_thousand_shards_over_ten_regions_through_the_coordinator_are_even() {
    let regions: Vec<RegionId> = (0..10).map(|i| region(&format!("r{i}"))).collect();
    let mut f = Fixture::new(10_000);
    for r in &regions {
        f.register(0, r, &[], &[], &[]);
    }
    for shard in 0..10_000u32 {
        let asker = regions[shard as usize % 10].clone();
        f.allocate(1, &asker, shard);
    }
    let mut counts: BTreeMap<RegionId, usize> = BTreeMap::new();
    for home in f.coordinator.allocation().values() {
        *counts.entry(home.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 10);
    assert!(counts.values().all(|&n| n == 1_000), "{counts:?}");
}

#[test]
fn a_re_registering_region_gets_pending_host_shards_again_with_newer_ids() {
    let a = region("a");
    let mut f = Fixture::new(4);
    f.register(0, &a, &[], &[], &[]);
    let first = f.send(
        0,
        &a,
        RegionToCoordinator::GetShardHome { shard: ShardId(2) },
    );
    let (_, first_host, _) = first[0].clone();
    // a registers again before the HostShard reached it.
    let effects = f.register(100, &a, &[], &[], &[]);
    let ack_id = effects
        .iter()
        .find(|(_, _, body)| matches!(body, CoordinatorToRegion::RegisterAck { .. }))
        .map(|(_, id, _)| *id)
        .expect("ack");
    let again = effects
        .iter()
        .find(|(_, _, body)| *body == CoordinatorToRegion::HostShard { shard: ShardId(2) })
        .map(|(_, id, _)| *id)
        .expect("HostShard re-issued");
    assert!(again > ack_id && again > first_host);
    // Only the re-issued one is expected now.
    let stale = f.send(
        101,
        &a,
        RegionToCoordinator::ShardStarted {
            shard: ShardId(2),
            host: first_host,
        },
    );
    assert!(stale.is_empty());
    assert!(matches!(f.state(2), ShardState::Allocating { .. }));
    f.send(
        102,
        &a,
        RegionToCoordinator::ShardStarted {
            shard: ShardId(2),
            host: again,
        },
    );
    assert_eq!(f.state(2), ShardState::Hosted { region: a });
}

// ----- rolling updates: app versions, and leaving regions ---------------

fn version(text: &str) -> Option<AppVersion> {
    AppVersion::new(text)
}

impl Fixture {
    /// `region` is Up with `app_version`, and registers hosting nothing.
    fn up(&mut self, ms: u64, region: &RegionId, app_version: Option<AppVersion>) {
        let input = CoordinatorInput::MemberUp(region.clone(), app_version);
        self.coordinator.handle(self.at(ms), input);
        self.register(ms, region, &[], &[], &[]);
    }

    /// Every region renews its lease at `ms`, then the coordinator ticks.
    fn renew_and_tick(&mut self, ms: u64, regions: &[&RegionId]) -> Vec<Sent> {
        for region in regions {
            self.send(ms, region, RegionToCoordinator::RenewLease);
        }
        self.tick(ms)
    }

    /// Answers every `BeginHandoff`, `Handoff` and `HostShard` in
    /// `effects` (and in what the answers cause) as the regions would;
    /// returns every `HostShard` sent meanwhile.
    fn complete_moves(&mut self, ms: u64, mut effects: Vec<Sent>) -> Vec<(RegionId, ShardId)> {
        let mut hosted = Vec::new();
        while let Some((to, id, body)) = effects.pop() {
            let answer = match body {
                CoordinatorToRegion::BeginHandoff { shard } => {
                    RegionToCoordinator::BeginHandoffAck { shard, begin: id }
                }
                CoordinatorToRegion::Handoff { shard } => {
                    RegionToCoordinator::ShardStopped { shard }
                }
                CoordinatorToRegion::HostShard { shard } => {
                    hosted.push((to.clone(), shard));
                    RegionToCoordinator::ShardStarted { shard, host: id }
                }
                _ => continue,
            };
            effects.extend(self.send(ms, &to, answer));
        }
        hosted
    }

    /// How many shards each region hosts.
    fn counts(&self) -> BTreeMap<RegionId, usize> {
        let mut counts = BTreeMap::new();
        for region in self.coordinator.allocation().into_values() {
            *counts.entry(region).or_default() += 1;
        }
        counts
    }
}

#[test]
fn new_shards_go_only_to_the_regions_of_the_highest_version() {
    let (old, none, new_a, new_b) = (region("a"), region("b"), region("c"), region("d"));
    let mut f = Fixture::new(12);
    f.up(0, &old, version("1.9"));
    f.up(0, &none, None);
    f.up(0, &new_a, version("1.10"));
    f.up(0, &new_b, version("1.10"));
    for shard in 0..6 {
        let home = f.allocate(1, &old, shard);
        assert!(home == new_a || home == new_b, "shard {shard} to {home}");
    }
    // Least shards among the newest: three each.
    assert_eq!(
        f.counts(),
        BTreeMap::from([(new_a.clone(), 3), (new_b.clone(), 3)])
    );
    // Once the newest leave, the next highest version is the newest.
    for gone in [&new_a, &new_b] {
        f.coordinator
            .handle(f.at(2), CoordinatorInput::MemberLeaving(gone.clone()));
    }
    assert_eq!(f.allocate(3, &none, 6), old, "1.9 is above no version");
}

#[test]
fn rebalance_moves_shards_from_older_regions_to_the_newest_only() {
    let (a, b, c) = (region("a"), region("b"), region("c"));
    let mut f = Fixture::new(30);
    f.up(0, &a, version("1"));
    f.up(0, &b, version("1"));
    for shard in 0..30 {
        f.allocate(0, &a, shard);
    }
    // c, of version 2, joins: it takes its fair share (10) from a and b,
    // as a joining region would, and nothing else moves.
    f.up(100, &c, version("2"));
    let mut moved = Vec::new();
    for ms in (1_000..=20_000).step_by(500) {
        let effects = f.renew_and_tick(ms, &[&a, &b, &c]);
        moved.extend(f.complete_moves(ms, effects));
    }
    assert!(moved.iter().all(|(to, _)| *to == c), "{moved:?}");
    assert_eq!(f.counts()[&c], 10, "{:?}", f.counts());
    assert_eq!(moved.len(), 10);
}

#[test]
fn rebalance_never_moves_a_shard_onto_an_older_region() {
    let (a, b, c) = (region("a"), region("b"), region("c"));
    let mut f = Fixture::new(30);
    f.up(0, &c, version("2"));
    for shard in 0..30 {
        f.allocate(0, &c, shard);
    }
    // Older regions join (say, restarted before their upgrade): all 30
    // shards stay on c, although plain least-shards would move 20.
    f.up(100, &a, version("1"));
    f.up(100, &b, None);
    for ms in (1_000..=20_000).step_by(500) {
        let effects = f.renew_and_tick(ms, &[&a, &b, &c]);
        let moves: Vec<&Sent> = effects
            .iter()
            .filter(|(_, _, body)| matches!(body, CoordinatorToRegion::BeginHandoff { .. }))
            .collect();
        assert!(moves.is_empty(), "at {ms} ms: {moves:?}");
    }
    assert_eq!(f.counts(), BTreeMap::from([(c.clone(), 30)]));
    // A second region of version 2 gets its share from c: the newest
    // even out among themselves.
    let d = region("d");
    f.up(20_100, &d, version("2"));
    let mut moved = Vec::new();
    for ms in (21_000..=40_000).step_by(500) {
        let effects = f.renew_and_tick(ms, &[&a, &b, &c, &d]);
        moved.extend(f.complete_moves(ms, effects));
    }
    assert!(moved.iter().all(|(to, _)| *to == d), "{moved:?}");
    assert_eq!(f.counts(), BTreeMap::from([(c, 15), (d, 15)]));
}

#[test]
fn a_leaving_region_receives_no_new_moved_or_rebalanced_shard() {
    let (a, b, c) = (region("a"), region("b"), region("c"));
    let mut f = Fixture::new(20);
    for r in [&a, &b, &c] {
        f.up(0, r, version("3"));
    }
    for shard in 0..10 {
        f.allocate(0, &b, shard);
    }
    // a hosts nothing, so least-shards would pick it for everything.
    f.coordinator
        .handle(f.at(1), CoordinatorInput::MemberLeaving(a.clone()));
    let mut hosted = Vec::new();
    for shard in 10..20 {
        let effects = f.send(
            2,
            &a,
            RegionToCoordinator::GetShardHome {
                shard: ShardId(shard),
            },
        );
        hosted.extend(f.complete_moves(2, effects));
    }
    // Rebalance rounds: b's and c's shards even out, never onto a.
    for ms in (1_000..=30_000).step_by(500) {
        let effects = f.renew_and_tick(ms, &[&a, &b, &c]);
        hosted.extend(f.complete_moves(ms, effects));
    }
    assert!(hosted.iter().all(|(to, _)| *to != a), "{hosted:?}");
    assert_eq!(f.counts(), BTreeMap::from([(b, 10), (c, 10)]));
}

#[test]
fn a_shard_still_being_allocated_to_a_region_that_begins_to_leave_is_taken_back() {
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::new(4);
    f.up(0, &a, version("1"));
    f.up(0, &b, version("1"));
    let effects = f.send(
        1,
        &b,
        RegionToCoordinator::GetShardHome { shard: ShardId(0) },
    );
    assert_eq!(
        bodies_to(&effects, &a),
        vec![CoordinatorToRegion::HostShard { shard: ShardId(0) }]
    );
    // a begins to leave before it answered: the coordinator takes the
    // shard back with a Handoff instead of repeating the HostShard.
    let effects = sent(
        f.coordinator
            .handle(f.at(2), CoordinatorInput::MemberLeaving(a.clone())),
    );
    assert_eq!(
        bodies_to(&effects, &a),
        vec![CoordinatorToRegion::Handoff { shard: ShardId(0) }]
    );
    let retries = f.renew_and_tick(2_000, &[&a, &b]);
    assert!(
        !bodies_to(&retries, &a).contains(&CoordinatorToRegion::HostShard { shard: ShardId(0) }),
        "{retries:?}"
    );
    let effects = f.send(
        2_001,
        &a,
        RegionToCoordinator::ShardStopped { shard: ShardId(0) },
    );
    assert_eq!(
        f.complete_moves(2_001, effects),
        vec![(b.clone(), ShardId(0))]
    );
    assert!(f
        .coordinator
        .tick(f.at(2_002))
        .contains(&CoordinatorEffect::RegionHandedOff { region: a }));
}

#[test]
fn a_leaving_home_that_lost_track_of_its_shard_is_not_told_to_host_it_again() {
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::new(4);
    f.up(0, &a, version("1"));
    f.up(0, &b, version("1"));
    assert_eq!(f.allocate(0, &b, 0), a);
    // a begins to leave while this side has no quorum (no handoff starts),
    // then quorum is back and a asks where its own shard lives.
    f.coordinator
        .handle(f.at(1), CoordinatorInput::Quorum(false));
    f.coordinator
        .handle(f.at(2), CoordinatorInput::MemberLeaving(a.clone()));
    f.coordinator
        .handle(f.at(3), CoordinatorInput::Quorum(true));
    let effects = f.send(
        4,
        &a,
        RegionToCoordinator::GetShardHome { shard: ShardId(0) },
    );
    assert!(effects.is_empty(), "{effects:?}");
    // The next tick hands it off; a hears the new home like any requester.
    let effects = f.tick(5);
    let moved = f.complete_moves(5, effects);
    assert_eq!(moved, vec![(b.clone(), ShardId(0))]);
    assert_eq!(f.coordinator.allocation()[&ShardId(0)], b);
}

#[test]
fn a_new_coordinator_asks_a_leaving_region_to_register_at_once() {
    // The coordinator moves because its node began to leave: the new one
    // must hear that region's shards to hand them off.
    let (a, b) = (region("a"), region("b"));
    let mut f = Fixture::with_previous(2, Some(Duration::ZERO));
    let effects = sent(
        f.coordinator
            .handle(f.at(0), CoordinatorInput::MemberLeaving(a.clone())),
    );
    assert_eq!(
        bodies_to(&effects, &a),
        vec![CoordinatorToRegion::CoordinatorStarted]
    );
    // Asked again while it does not answer, like an Up region.
    let retries = f.tick(600);
    assert_eq!(
        bodies_to(&retries, &a),
        vec![CoordinatorToRegion::CoordinatorStarted]
    );
    f.up(700, &b, None);
    f.register(700, &a, &[0], &[], &[]);
    let effects = f.tick(800);
    assert_eq!(
        bodies_to(&effects, &b),
        vec![CoordinatorToRegion::BeginHandoff { shard: ShardId(0) }]
    );
}

#[test]
fn both_rebalance_steps_share_one_limit_of_moves_in_flight() {
    let (a, c, d) = (region("a"), region("c"), region("d"));
    let mut f = Fixture::new(40);
    f.up(0, &a, version("1"));
    for shard in 0..20 {
        f.allocate(0, &a, shard);
    }
    f.up(0, &c, version("2"));
    for shard in 20..40 {
        f.allocate(0, &c, shard);
    }
    // d (version 2) joins: c gives it its excess and a gives its own to
    // the newest; never more than max(1, min(0.1 * 40, 20)) = 4 at once.
    f.up(100, &d, version("2"));
    let mut moved = Vec::new();
    for ms in (1_000..=40_000).step_by(500) {
        let effects = f.renew_and_tick(ms, &[&a, &c, &d]);
        let moving: BTreeSet<ShardId> = effects
            .iter()
            .filter_map(|(_, _, body)| match body {
                CoordinatorToRegion::BeginHandoff { shard } => Some(*shard),
                _ => None,
            })
            .collect();
        assert!(moving.len() <= 4, "at {ms} ms: {moving:?}");
        moved.extend(f.complete_moves(ms, effects));
    }
    assert!(moved.iter().all(|(to, _)| *to != a), "{moved:?}");
    let counts = f.counts();
    assert!(counts[&a] < 20, "a gave shards to the newest: {counts:?}");
    assert!(counts[&c].abs_diff(counts[&d]) <= 1, "{counts:?}");
}
