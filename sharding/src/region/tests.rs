//! Unit tests of the region, one behaviour each.

use std::time::{Duration, Instant};

use super::*;
use crate::config::ShardingConfig;
use crate::error::DeliveryError;
use crate::hash::shard_id;
use crate::ids::{EntityId, Epoch, RegionId, ReplyTo, RequestId, ShardId};
use crate::messages::{
    CoordinatorToRegion, Delivery, Envelope, RegionToCoordinator, RegionToRegion,
};

const EPOCH: Epoch = Epoch(5);
const SHARDS: u32 = 10;

struct Fixture {
    region: Region<u32>,
    t0: Instant,
    coordinator_id: u64,
}

fn me() -> RegionId {
    RegionId::new("me", 1)
}

fn other() -> RegionId {
    RegionId::new("other", 1)
}

/// An entity living in `shard`.
fn entity_in(shard: u32) -> EntityId {
    (0..)
        .map(|i| EntityId::from(format!("e{i}")))
        .find(|id| shard_id(id, SHARDS) == ShardId(shard))
        .expect("some id hashes to every shard")
}

impl Fixture {
    fn new(proxy_only: bool) -> Self {
        let config = ShardingConfig {
            number_of_shards: SHARDS,
            buffer_size: 3,
            ..ShardingConfig::default()
        };
        Self {
            region: Region::new(me(), config, proxy_only),
            t0: Instant::now(),
            coordinator_id: 100,
        }
    }

    /// Registered at `t0` with a lease until 3 s.
    fn registered() -> Self {
        let mut f = Self::new(false);
        f.coordinator(0, CoordinatorToRegion::CoordinatorStarted);
        let register = f.last_register_id();
        f.ack(0, register, &[], &[]);
        assert!(f.region.is_registered());
        f
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn coordinator(&mut self, ms: u64, body: CoordinatorToRegion) -> Vec<RegionEffect<u32>> {
        self.coordinator_id += 1;
        let id = RequestId(self.coordinator_id);
        self.coordinator_with(ms, EPOCH, id, body)
    }

    fn coordinator_with(
        &mut self,
        ms: u64,
        epoch: Epoch,
        id: RequestId,
        body: CoordinatorToRegion,
    ) -> Vec<RegionEffect<u32>> {
        self.coordinator_on(RegionId::new("coord", 1), ms, epoch, id, body)
    }

    /// A message from the coordinator running on node `from`.
    fn coordinator_on(
        &mut self,
        from: RegionId,
        ms: u64,
        epoch: Epoch,
        id: RequestId,
        body: CoordinatorToRegion,
    ) -> Vec<RegionEffect<u32>> {
        let message = Envelope {
            epoch,
            request_id: id,
            from,
            body,
        };
        let now = self.at(ms);
        self.region
            .handle(now, RegionInput::FromCoordinator(message))
    }

    fn ack(
        &mut self,
        ms: u64,
        register: RequestId,
        confirmed: &[u32],
        drop: &[u32],
    ) -> Vec<RegionEffect<u32>> {
        let body = CoordinatorToRegion::RegisterAck {
            register,
            lease: Duration::from_secs(3),
            confirmed: confirmed.iter().copied().map(ShardId).collect(),
            drop: drop.iter().copied().map(ShardId).collect(),
        };
        self.coordinator(ms, body)
    }

    fn send(&mut self, ms: u64, shard: u32, payload: u32) -> Vec<RegionEffect<u32>> {
        let input = RegionInput::Send {
            entity: entity_in(shard),
            payload,
            reply_to: Some(ReplyTo {
                node: me(),
                correlation: u64::from(payload),
            }),
        };
        let now = self.at(ms);
        self.region.handle(now, input)
    }

    fn last_register_id(&self) -> RequestId {
        self.region.last_register.expect("a Register was sent").0
    }

    fn host(&mut self, ms: u64, shard: u32) -> Vec<RegionEffect<u32>> {
        self.coordinator(
            ms,
            CoordinatorToRegion::HostShard {
                shard: ShardId(shard),
            },
        )
    }
}

fn to_coordinator(effects: &[RegionEffect<u32>]) -> Vec<RegionToCoordinator> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            RegionEffect::ToCoordinator(message) => Some(message.body.clone()),
            _ => None,
        })
        .collect()
}

fn delivered(effects: &[RegionEffect<u32>]) -> Vec<u32> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            RegionEffect::DeliverLocal(delivery) => Some(delivery.payload),
            _ => None,
        })
        .collect()
}

#[test]
fn hosts_a_shard_and_delivers_while_the_lease_is_valid() {
    let mut f = Fixture::registered();
    let effects = f.host(10, 1);
    assert!(matches!(
        &to_coordinator(&effects)[..],
        [RegionToCoordinator::ShardStarted {
            shard: ShardId(1),
            ..
        }]
    ));
    assert_eq!(f.region.shard_status(ShardId(1)), Some(ShardStatus::Active));
    assert_eq!(delivered(&f.send(20, 1, 7)), vec![7]);
    assert!(f.region.serves(ShardId(1), f.at(2_999)));
    assert!(!f.region.serves(ShardId(1), f.at(3_000)));
}

/// The driver's fast path must agree with `handle(Send)` exactly.
#[test]
fn serves_agrees_with_routing_a_send() {
    let mut f = Fixture::registered();
    f.host(10, 1);
    f.coordinator(
        10,
        CoordinatorToRegion::ShardHome {
            shard: ShardId(2),
            home: other(),
        },
    );
    let check = |f: &mut Fixture, ms: u64, shard: u32| {
        let fast = f.region.serves(ShardId(shard), f.at(ms));
        let effects = f.send(ms, shard, 1);
        let routed_here =
            matches!(&effects[..], [RegionEffect::DeliverLocal(d)] if d.shard == ShardId(shard));
        assert_eq!(fast, routed_here, "shard {shard} at {ms} ms: {effects:?}");
        fast
    };
    assert!(check(&mut f, 20, 1), "active with a valid lease");
    assert!(!check(&mut f, 20, 2), "lives elsewhere");
    assert!(!check(&mut f, 20, 3), "home unknown");
    assert!(!check(&mut f, 3_000, 1), "lease ran out");
    let mut f = Fixture::registered();
    f.host(10, 1);
    f.region.handle(f.at(20), RegionInput::FenceAll);
    assert!(!check(&mut f, 30, 1), "fenced");
}

#[test]
fn the_lease_counts_from_when_the_renewal_was_sent() {
    let mut f = Fixture::registered();
    f.host(10, 1);
    let effects = f.region.tick(f.at(1_000));
    let renewal = effects
        .iter()
        .find_map(|effect| match effect {
            RegionEffect::ToCoordinator(m) if m.body == RegionToCoordinator::RenewLease => {
                Some(m.request_id)
            }
            _ => None,
        })
        .expect("renewal sent at 1 s");
    // Granted at 2.5 s: valid until 1 s + 3 s, not 2.5 s + 3 s.
    let grant = CoordinatorToRegion::LeaseGranted {
        renewal,
        lease: Duration::from_secs(3),
    };
    f.coordinator(2_500, grant.clone());
    assert_eq!(f.region.lease_valid_until(), Some(f.at(4_000)));
    // A duplicate grant changes nothing.
    f.coordinator(2_600, grant);
    assert_eq!(f.region.lease_valid_until(), Some(f.at(4_000)));
}

#[test]
fn an_expired_lease_fences_buffers_and_a_confirming_register_resumes() {
    let mut f = Fixture::registered();
    f.host(10, 1);
    // No renewal answered: at 3 s the shard is fenced, the message buffered.
    let effects = f.send(3_000, 1, 8);
    assert!(delivered(&effects).is_empty());
    assert_eq!(f.region.shard_status(ShardId(1)), Some(ShardStatus::Fenced));
    assert_eq!(f.region.buffered(ShardId(1)), 1);
    let effects = f.region.tick(f.at(3_000));
    assert!(to_coordinator(&effects).iter().any(|m| matches!(
        m,
        RegionToCoordinator::Register { fenced, hosted, .. } if fenced == &vec![ShardId(1)] && hosted.is_empty()
    )));
    let register = f.last_register_id();
    let effects = f.ack(3_100, register, &[1], &[]);
    assert_eq!(delivered(&effects), vec![8]);
    assert_eq!(f.region.shard_status(ShardId(1)), Some(ShardStatus::Active));
}

#[test]
fn a_dropping_register_ack_stops_the_shard_and_reroutes_its_buffer() {
    let mut f = Fixture::registered();
    f.host(10, 1);
    f.send(3_000, 1, 8);
    f.region.tick(f.at(3_000));
    let register = f.last_register_id();
    let effects = f.ack(3_100, register, &[], &[1]);
    assert!(effects.contains(&RegionEffect::StopShard {
        shard: ShardId(1),
        reason: StopReason::Dropped
    }));
    // The buffered message is kept and its home asked for.
    assert!(
        to_coordinator(&effects).contains(&RegionToCoordinator::GetShardHome { shard: ShardId(1) })
    );
    assert_eq!(f.region.buffered(ShardId(1)), 1);
}

#[test]
fn fence_all_pauses_at_once_and_side_survives_re_registers() {
    let mut f = Fixture::registered();
    f.host(10, 1);
    f.region.handle(f.at(20), RegionInput::FenceAll);
    assert!(!f.region.serves(ShardId(1), f.at(20)));
    assert!(delivered(&f.send(30, 1, 1)).is_empty());
    // No registration while the side would not survive.
    assert!(to_coordinator(&f.region.tick(f.at(600)))
        .iter()
        .all(|m| !matches!(m, RegionToCoordinator::Register { .. })));
    let effects = f.region.handle(f.at(700), RegionInput::SideSurvives);
    assert!(matches!(
        &to_coordinator(&effects)[..],
        [RegionToCoordinator::Register { .. }]
    ));
    let register = f.last_register_id();
    assert_eq!(delivered(&f.ack(710, register, &[1], &[])), vec![1]);
}

#[test]
fn unknown_home_buffers_asks_and_forwards_once_known() {
    let mut f = Fixture::registered();
    let effects = f.send(10, 2, 1);
    assert_eq!(
        to_coordinator(&effects),
        vec![RegionToCoordinator::GetShardHome { shard: ShardId(2) }]
    );
    // A second message: buffered without asking again.
    assert!(f.send(11, 2, 2).is_empty());
    let effects = f.coordinator(
        20,
        CoordinatorToRegion::ShardHome {
            shard: ShardId(2),
            home: other(),
        },
    );
    let forwarded: Vec<u32> = effects
        .iter()
        .filter_map(|effect| match effect {
            RegionEffect::ToRegion { to, message } if *to == other() => match &message.body {
                RegionToRegion::Deliver(d) => Some(d.payload),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(forwarded, vec![1, 2]);
    // Unanswered asks are repeated after the retry interval.
    f.send(30, 3, 9);
    assert!(to_coordinator(&f.region.tick(f.at(100))).is_empty());
    assert_eq!(
        to_coordinator(&f.region.tick(f.at(530))),
        vec![RegionToCoordinator::GetShardHome { shard: ShardId(3) }]
    );
}

#[test]
fn remote_homes_say_what_a_send_does_until_the_homes_version_changes() {
    let mut f = Fixture::registered();
    f.coordinator(
        5,
        CoordinatorToRegion::ShardHome {
            shard: ShardId(2),
            home: other(),
        },
    );
    let homes: Vec<(ShardId, RegionId)> = f
        .region
        .remote_homes()
        .map(|(shard, home)| (shard, home.clone()))
        .collect();
    assert_eq!(homes, vec![(ShardId(2), other())]);
    let version = f.region.homes_version();

    // A local send there is exactly the Deliver a caller can build itself.
    let effects = f.send(10, 2, 7);
    let expected = Envelope::entity_traffic(
        EPOCH,
        me(),
        RegionToRegion::Deliver(Delivery {
            shard: ShardId(2),
            entity: entity_in(2),
            payload: 7,
            reply_to: Some(ReplyTo {
                node: me(),
                correlation: 7,
            }),
            hops: 0,
        }),
    );
    assert_eq!(
        effects,
        vec![RegionEffect::ToRegion {
            to: other(),
            message: expected
        }]
    );
    // Routing changes no home; a NotHere does.
    f.send(11, 3, 8);
    assert_eq!(f.region.homes_version(), version);
    let bounced = Envelope::entity_traffic(
        EPOCH,
        other(),
        RegionToRegion::NotHere(Delivery {
            shard: ShardId(2),
            entity: entity_in(2),
            payload: 9u32,
            reply_to: None,
            hops: 0,
        }),
    );
    f.region.handle(f.at(12), RegionInput::FromRegion(bounced));
    assert_ne!(f.region.homes_version(), version);
    assert_eq!(f.region.remote_homes().count(), 0);
}

#[test]
fn buffer_overflow_is_an_error_for_the_sender() {
    let mut f = Fixture::new(false); // unregistered: everything buffers
    for payload in 0..3 {
        assert!(f.send(0, 4, payload).is_empty());
    }
    let effects = f.send(0, 4, 3);
    assert_eq!(
        effects,
        vec![RegionEffect::DeliveryFailed {
            shard: ShardId(4),
            entity: entity_in(4),
            reply_to: Some(ReplyTo {
                node: me(),
                correlation: 3
            }),
            error: DeliveryError::BufferFull {
                shard: ShardId(4),
                capacity: 3
            },
        }]
    );
}

#[test]
fn not_here_refreshes_the_cache_and_too_many_hops_fail() {
    let mut f = Fixture::registered();
    f.coordinator(
        5,
        CoordinatorToRegion::ShardHome {
            shard: ShardId(2),
            home: other(),
        },
    );
    let bounced = |hops| Envelope {
        epoch: EPOCH,
        request_id: RequestId(1),
        from: other(),
        body: RegionToRegion::NotHere(Delivery {
            shard: ShardId(2),
            entity: entity_in(2),
            payload: 5u32,
            reply_to: None,
            hops,
        }),
    };
    let effects = f
        .region
        .handle(f.at(10), RegionInput::FromRegion(bounced(0)));
    assert_eq!(
        to_coordinator(&effects),
        vec![RegionToCoordinator::GetShardHome { shard: ShardId(2) }]
    );
    assert_eq!(
        f.region.shard_status(ShardId(2)),
        Some(ShardStatus::Unknown)
    );
    let effects = f
        .region
        .handle(f.at(11), RegionInput::FromRegion(bounced(5)));
    assert!(matches!(
        &effects[..],
        [RegionEffect::DeliveryFailed {
            error: DeliveryError::TooManyHops { .. },
            ..
        }]
    ));
}

#[test]
fn a_deliver_for_a_shard_not_hosted_here_goes_back_as_not_here() {
    let mut f = Fixture::registered();
    let deliver = Envelope {
        epoch: EPOCH,
        request_id: RequestId(1),
        from: other(),
        body: RegionToRegion::Deliver(Delivery {
            shard: ShardId(6),
            entity: entity_in(6),
            payload: 1u32,
            reply_to: None,
            hops: 0,
        }),
    };
    let effects = f.region.handle(f.at(1), RegionInput::FromRegion(deliver));
    assert!(matches!(
        &effects[..],
        [RegionEffect::ToRegion { to, message }] if *to == other() && matches!(message.body, RegionToRegion::NotHere(_))
    ));
}

#[test]
fn handoff_stops_reports_once_stopped_and_answers_duplicates() {
    let mut f = Fixture::registered();
    f.host(10, 1);
    let begin = f.coordinator(20, CoordinatorToRegion::BeginHandoff { shard: ShardId(1) });
    assert!(matches!(
        &to_coordinator(&begin)[..],
        [RegionToCoordinator::BeginHandoffAck { .. }]
    ));
    // The old home keeps serving until Handoff.
    assert_eq!(delivered(&f.send(21, 1, 1)), vec![1]);
    f.coordinator_id += 1;
    let handoff_id = RequestId(f.coordinator_id);
    let handoff = CoordinatorToRegion::Handoff { shard: ShardId(1) };
    let effects = f.coordinator_with(30, EPOCH, handoff_id, handoff.clone());
    assert_eq!(
        effects,
        vec![RegionEffect::StopShard {
            shard: ShardId(1),
            reason: StopReason::Handoff
        }]
    );
    // Messages now wait; a duplicate Handoff while stopping does nothing.
    assert!(f
        .send(31, 1, 2)
        .iter()
        .all(|e| !matches!(e, RegionEffect::DeliverLocal(_))));
    assert!(f
        .coordinator_with(32, EPOCH, handoff_id, handoff.clone())
        .is_empty());
    let effects = f.region.handle(
        f.at(40),
        RegionInput::ShardEntitiesStopped { shard: ShardId(1) },
    );
    assert!(
        to_coordinator(&effects).contains(&RegionToCoordinator::ShardStopped { shard: ShardId(1) })
    );
    // Duplicate after stopping: ShardStopped again.
    let effects = f.coordinator_with(50, EPOCH, handoff_id, handoff);
    assert_eq!(
        to_coordinator(&effects),
        vec![RegionToCoordinator::ShardStopped { shard: ShardId(1) }]
    );
    assert_eq!(f.region.buffered(ShardId(1)), 1);
}

#[test]
fn late_and_stale_instructions_change_nothing() {
    let mut f = Fixture::registered();
    // BeginHandoff (id 201) then a late ShardHome (id 200).
    f.coordinator_with(
        10,
        EPOCH,
        RequestId(201),
        CoordinatorToRegion::BeginHandoff { shard: ShardId(2) },
    );
    let late = f.coordinator_with(
        11,
        EPOCH,
        RequestId(200),
        CoordinatorToRegion::ShardHome {
            shard: ShardId(2),
            home: other(),
        },
    );
    assert!(late.is_empty());
    assert_eq!(
        f.region.shard_status(ShardId(2)),
        Some(ShardStatus::Unknown)
    );
    // An older epoch: ignored entirely.
    let stale = f.coordinator_with(
        12,
        Epoch(4),
        RequestId(999),
        CoordinatorToRegion::HostShard { shard: ShardId(3) },
    );
    assert!(stale.is_empty());
    assert_eq!(f.region.shard_status(ShardId(3)), None);
}

#[test]
fn a_new_epoch_forgets_cached_homes_and_reports_everything() {
    let mut f = Fixture::registered();
    f.host(10, 1);
    f.host(10, 2);
    f.coordinator(11, CoordinatorToRegion::Handoff { shard: ShardId(2) });
    f.coordinator(
        12,
        CoordinatorToRegion::ShardHome {
            shard: ShardId(3),
            home: other(),
        },
    );
    let effects = f.coordinator_with(
        20,
        Epoch(6),
        RequestId(1),
        CoordinatorToRegion::CoordinatorStarted,
    );
    assert_eq!(f.region.coordinator_epoch(), Epoch(6));
    assert_eq!(
        f.region.shard_status(ShardId(3)),
        Some(ShardStatus::Unknown)
    );
    assert_eq!(
        to_coordinator(&effects),
        vec![RegionToCoordinator::Register {
            hosted: vec![ShardId(1)],
            fenced: vec![],
            handing_off: vec![ShardId(2)],
            proxy_only: false,
        }]
    );
    // The old coordinator's instructions are stale now.
    assert!(f
        .coordinator_with(
            21,
            EPOCH,
            RequestId(500),
            CoordinatorToRegion::HostShard { shard: ShardId(4) }
        )
        .is_empty());
}

/// Issue 14, hole 5: two coordinators that picked the same epoch. The
/// region follows the one on the higher node id and ignores the other's
/// instructions, instead of taking both for one coordinator.
#[test]
fn two_coordinators_with_one_epoch_are_ordered_by_their_node() {
    let mut f = Fixture::registered();
    let (low, high) = (RegionId::new("coord", 1), RegionId::new("zed", 1));
    // The registration came from `coord`; `zed` starts with the same epoch.
    let effects = f.coordinator_on(
        high.clone(),
        10,
        EPOCH,
        RequestId(1),
        CoordinatorToRegion::CoordinatorStarted,
    );
    assert!(
        !f.region.is_registered(),
        "a new coordinator: register again"
    );
    assert!(matches!(
        to_coordinator(&effects)[..],
        [RegionToCoordinator::Register { .. }]
    ));
    // The loser of the tie is stale now, whatever its request ids.
    let from_low = f.coordinator_on(
        low,
        11,
        EPOCH,
        RequestId(900),
        CoordinatorToRegion::HostShard { shard: ShardId(4) },
    );
    assert!(from_low.is_empty());
    assert_eq!(f.region.shard_status(ShardId(4)), None);
    let register = f.last_register_id();
    let body = CoordinatorToRegion::RegisterAck {
        register,
        lease: Duration::from_secs(3),
        confirmed: vec![],
        drop: vec![],
    };
    f.coordinator_on(high.clone(), 12, EPOCH, RequestId(2), body);
    assert!(f.region.is_registered());
    let hosted = f.coordinator_on(
        high,
        13,
        EPOCH,
        RequestId(3),
        CoordinatorToRegion::HostShard { shard: ShardId(4) },
    );
    assert!(!hosted.is_empty());
    assert_eq!(f.region.shard_status(ShardId(4)), Some(ShardStatus::Active));
}

#[test]
fn a_proxy_never_hosts_and_never_renews() {
    let mut f = Fixture::new(true);
    f.coordinator(0, CoordinatorToRegion::CoordinatorStarted);
    let register = f.last_register_id();
    f.ack(0, register, &[], &[]);
    assert!(f.host(10, 1).is_empty());
    assert_eq!(f.region.shard_status(ShardId(1)), None);
    let effects = f.region.tick(f.at(5_000));
    assert!(to_coordinator(&effects).is_empty());
    assert!(f.region.is_registered());
}

#[test]
fn a_host_shard_without_a_valid_lease_starts_fenced() {
    let mut f = Fixture::new(false);
    let effects = f.host(0, 1);
    assert!(matches!(
        &to_coordinator(&effects)[..],
        [RegionToCoordinator::ShardStarted { .. }]
    ));
    assert_eq!(f.region.shard_status(ShardId(1)), Some(ShardStatus::Fenced));
    assert!(!f.region.serves(ShardId(1), f.at(0)));
}

#[test]
fn a_host_shard_older_than_the_current_registration_is_ignored() {
    let mut f = Fixture::registered();
    // HostShard (id 150) is delayed; the lease lapses, the region registers
    // again (ack id 160), then the old HostShard arrives.
    f.region.tick(f.at(3_000));
    let register = f.last_register_id();
    f.coordinator_with(
        3_100,
        EPOCH,
        RequestId(160),
        CoordinatorToRegion::RegisterAck {
            register,
            lease: Duration::from_secs(3),
            confirmed: vec![],
            drop: vec![],
        },
    );
    assert!(f.region.is_registered());
    let late = f.coordinator_with(
        3_200,
        EPOCH,
        RequestId(150),
        CoordinatorToRegion::HostShard { shard: ShardId(1) },
    );
    assert!(late.is_empty());
    assert_eq!(f.region.shard_status(ShardId(1)), None);
    // A HostShard issued after the registration is taken.
    let fresh = f.coordinator_with(
        3_300,
        EPOCH,
        RequestId(170),
        CoordinatorToRegion::HostShard { shard: ShardId(1) },
    );
    assert!(!fresh.is_empty());
    assert!(f.region.serves(ShardId(1), f.at(3_300)));
}

/// Found by `no_shard_ever_has_two_homes`: the coordinator announces a
/// shard's new home, that home crashes and is Downed, and the announcement
/// reaches this region only after the `MemberDown`. Believing it would
/// forward every later message to a dead region that never answers
/// `NotHere`: silent loss, for good once nothing corrects the cache.
#[test]
fn a_late_shard_home_naming_a_down_region_is_not_believed() {
    let mut f = Fixture::registered();
    // The home was Downed; its `ShardHome` (newer than anything seen for
    // the shard, so not "late" by request id) arrives afterwards.
    let now = f.at(10);
    f.region.handle(now, RegionInput::MemberDown(other()));
    let effects = f.coordinator(
        20,
        CoordinatorToRegion::ShardHome {
            shard: ShardId(2),
            home: other(),
        },
    );
    assert!(effects.is_empty());
    assert_eq!(
        f.region.shard_status(ShardId(2)),
        Some(ShardStatus::Unknown)
    );
    // A message for the shard is buffered and its home asked, not
    // forwarded to the Down region.
    let effects = f.send(30, 2, 7);
    assert!(!effects
        .iter()
        .any(|effect| matches!(effect, RegionEffect::ToRegion { .. })));
    assert_eq!(
        to_coordinator(&effects),
        vec![RegionToCoordinator::GetShardHome { shard: ShardId(2) }]
    );
    assert_eq!(f.region.buffered(ShardId(2)), 1);
    // The shard's real new home: the buffered message goes there.
    let new_home = RegionId::new("other", 2);
    let effects = f.coordinator(
        40,
        CoordinatorToRegion::ShardHome {
            shard: ShardId(2),
            home: new_home.clone(),
        },
    );
    assert!(matches!(
        &effects[..],
        [RegionEffect::ToRegion { to, message }]
            if *to == new_home
                && matches!(&message.body, RegionToRegion::Deliver(d) if d.payload == 7)
    ));
    // A duplicate `MemberDown` changes nothing.
    let now = f.at(50);
    assert!(f
        .region
        .handle(now, RegionInput::MemberDown(other()))
        .is_empty());
    assert_eq!(
        f.region.shard_status(ShardId(2)),
        Some(ShardStatus::Remote(new_home))
    );
}

/// Issue 14, hole 2: a Handoff that reaches a fenced shard must not turn it
/// into Stopping (that would run `stopped()` without a lease): the shard is
/// dropped as it is and reported stopped.
#[test]
fn a_handoff_of_a_fenced_shard_drops_it_without_stopping_it() {
    let mut f = Fixture::registered();
    f.host(10, 1);
    assert!(f.region.runs(ShardId(1)));
    f.region.tick(f.at(3_000));
    assert_eq!(f.region.shard_status(ShardId(1)), Some(ShardStatus::Fenced));
    assert!(!f.region.runs(ShardId(1)), "no lease: nothing may run");
    let effects = f.coordinator(3_100, CoordinatorToRegion::Handoff { shard: ShardId(1) });
    assert!(effects.contains(&RegionEffect::StopShard {
        shard: ShardId(1),
        reason: StopReason::Dropped
    }));
    assert!(
        to_coordinator(&effects).contains(&RegionToCoordinator::ShardStopped { shard: ShardId(1) })
    );
    assert_eq!(
        f.region.shard_status(ShardId(1)),
        Some(ShardStatus::Unknown)
    );
    assert!(!f.region.runs(ShardId(1)));
}
