//! Rule 4 as properties: every message delivered twice and in shuffled
//! order leaves the same allocation; a stale epoch changes nothing; the
//! recovery table does not depend on the order or repetition of reports.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{normalize, Packet, Sim};
use proptest::prelude::*;
use sharding::{
    AllocationKind, ConsistentHashing, Coordinator, CoordinatorEffect, CoordinatorInput,
    CoordinatorToRegion, Envelope, Epoch, RegionId, RegionToCoordinator, RequestId, ShardId,
    ShardingConfig,
};

fn config() -> ShardingConfig {
    ShardingConfig {
        number_of_shards: 16,
        allocation_strategy: AllocationKind::ConsistentHashing,
        // No rebalance inside these runs: allocation only.
        rebalance_interval: Duration::from_secs(3_600),
        ..ShardingConfig::default()
    }
}

/// Registers three regions (in order), then sends one message per entity.
fn started() -> (Sim, Vec<u64>) {
    let mut sim = Sim::new(config(), &["a", "b", "c"]);
    sim.settle(3, 100);
    let payloads = (0..40)
        .map(|entity| sim.send(entity as usize, entity))
        .collect();
    (sim, payloads)
}

/// Delivers everything in flight in the order `choices` dictates; with
/// `twice`, every packet is delivered a second time at a random later point.
fn run_shuffled(sim: &mut Sim, choices: &[(usize, usize)], twice: bool) {
    let mut queue: Vec<(Packet, bool)> = sim.network.drain(..).map(|p| (p, false)).collect();
    let mut step = 0;
    let mut budget = 100_000;
    while !queue.is_empty() && budget > 0 {
        budget -= 1;
        let (pick, place) = choices[step % choices.len()];
        step += 1;
        let (packet, duplicated) = queue.remove(pick % queue.len());
        if twice && !duplicated {
            let at = place % (queue.len() + 1);
            queue.insert(at, (packet.clone(), true));
        }
        sim.deliver(packet);
        sim.complete_stops();
        queue.extend(sim.network.drain(..).map(|p| (p, false)));
    }
    assert!(queue.is_empty(), "did not settle");
}

fn expected_homes(sim: &Sim, shards: &BTreeSet<ShardId>) -> BTreeMap<ShardId, RegionId> {
    let ids = sim.ids();
    let empty = BTreeSet::new();
    let view: Vec<sharding::allocation::RegionShards<'_>> = ids
        .iter()
        .map(|region| sharding::allocation::RegionShards {
            region,
            shards: &empty,
        })
        .collect();
    let mut ring = ConsistentHashing::new(1);
    shards
        .iter()
        .map(|shard| (*shard, ring.home_of(*shard, &view).expect("regions")))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_message_twice_in_any_order_leaves_the_same_allocation(
        choices in proptest::collection::vec((any::<usize>(), any::<usize>()), 1..64),
    ) {
        // Reference: in order, once each.
        let (mut reference, _) = started();
        reference.settle(2, 10);
        // Shuffled, every packet twice.
        let (mut shuffled, payloads) = started();
        run_shuffled(&mut shuffled, &choices, true);

        let allocation = shuffled.coordinator.allocation();
        prop_assert!(allocation.len() >= 10, "40 entities touch most of 16 shards");
        prop_assert_eq!(&allocation, &reference.coordinator.allocation());
        let requested: BTreeSet<ShardId> = allocation.keys().copied().collect();
        prop_assert_eq!(&allocation, &expected_homes(&shuffled, &requested));
        // Nothing lost: each message reached its entity, at the shard's home.
        for payload in payloads {
            let at = shuffled.delivered.iter().find(|(_, _, p)| *p == payload);
            prop_assert!(at.is_some(), "payload {} not delivered", payload);
            let (region, shard, _) = at.expect("checked");
            prop_assert_eq!(allocation.get(shard), Some(region));
        }
        prop_assert!(shuffled.failed.is_empty());
        shuffled.check_single_writer().map_err(TestCaseError::fail)?;
    }

    #[test]
    fn a_stale_epoch_changes_nothing(
        messages in proptest::collection::vec((0usize..3, 0u32..20, 0u8..6, any::<u64>()), 1..40),
    ) {
        let (mut sim, _) = started();
        sim.settle(3, 100);
        sim.replace_coordinator();
        sim.settle(3, 100);
        prop_assert_eq!(sim.coordinator.registered_regions().len(), 3);
        prop_assert!(!sim.coordinator.allocation().is_empty());
        let table = sim.table();
        let ids = sim.ids();
        let statuses = |sim: &Sim| -> Vec<_> {
            sim.nodes.values().map(|node| {
                (0..16).map(|s| node.region.shard_status(ShardId(s))).collect::<Vec<_>>()
            }).collect()
        };
        let region_view = statuses(&sim);
        for (who, shard, kind, id) in messages {
            let from = ids[who].clone();
            let shard = ShardId(shard);
            // To the coordinator, from the old epoch.
            let body = match kind {
                0 => RegionToCoordinator::Register { hosted: vec![shard], fenced: vec![], handing_off: vec![], proxy_only: false },
                1 => RegionToCoordinator::GetShardHome { shard },
                2 => RegionToCoordinator::ShardStarted { shard, host: RequestId(id) },
                3 => RegionToCoordinator::BeginHandoffAck { shard, begin: RequestId(id) },
                4 => RegionToCoordinator::ShardStopped { shard },
                _ => RegionToCoordinator::RenewLease,
            };
            let message = Envelope { epoch: Epoch(1), request_id: RequestId(id), from: from.clone(), body };
            let effects = sim.coordinator.handle(sim.now, CoordinatorInput::Message(message));
            for effect in &effects {
                let is_hint = matches!(effect, CoordinatorEffect::Send { message, .. }
                    if message.body == CoordinatorToRegion::CoordinatorStarted);
                prop_assert!(is_hint, "stale message caused {:?}", effect);
            }
            prop_assert_eq!(&sim.table(), &table);
            // To a region, from the old coordinator.
            let body = match kind {
                0 => CoordinatorToRegion::CoordinatorStarted,
                1 => CoordinatorToRegion::HostShard { shard },
                2 => CoordinatorToRegion::ShardHome { shard, home: ids[(who + 1) % 3].clone() },
                3 => CoordinatorToRegion::BeginHandoff { shard },
                4 => CoordinatorToRegion::Handoff { shard },
                _ => CoordinatorToRegion::RegisterAck { register: RequestId(id), lease: Duration::from_secs(3), confirmed: vec![shard], drop: vec![] },
            };
            let message = Envelope { epoch: Epoch(1), request_id: RequestId(id), from: RegionId::new("coord", 1), body };
            let packet = Packet::FromCoordinator { to: from, message };
            let before = sim.network.len();
            sim.deliver(packet);
            prop_assert_eq!(sim.network.len(), before, "a stale instruction caused a message");
            prop_assert_eq!(&statuses(&sim), &region_view);
        }
    }

    #[test]
    fn recovery_table_is_the_same_whatever_the_order_and_repetition_of_reports(
        claims in proptest::collection::vec((0u8..7, proptest::collection::vec(any::<bool>(), 3)), 12),
        order in Just(vec![0usize, 1, 2]).prop_shuffle(),
        repeats in proptest::collection::vec(1usize..3, 3),
        shuffle_seed in any::<u64>(),
    ) {
        // Per shard: no owner, or one region running (hosted) or stopping
        // it; other regions may hold a fenced copy (their lease ran out).
        let regions: Vec<RegionId> = ["a", "b", "c"].iter().map(|n| RegionId::new(*n, 1)).collect();
        let mut reports = vec![(Vec::new(), Vec::new(), Vec::new()); 3];
        for (index, (owner, fenced)) in claims.iter().enumerate() {
            let shard = ShardId(index as u32);
            let owner = usize::from(*owner);
            if owner < 3 { reports[owner].0.push(shard); }
            else if owner < 6 { reports[owner - 3].2.push(shard); }
            for (region, has) in fenced.iter().enumerate() {
                if *has && owner % 3 != region {
                    reports[region].1.push(shard);
                }
            }
        }
        let register = |region: usize| Envelope {
            epoch: Epoch(2),
            request_id: RequestId(7),
            from: regions[region].clone(),
            body: RegionToCoordinator::Register {
                hosted: reports[region].0.clone(),
                fenced: reports[region].1.clone(),
                handing_off: reports[region].2.clone(),
                proxy_only: false,
            },
        };
        let recover = |deliveries: &[usize]| {
            let t0 = Instant::now();
            let config = ShardingConfig { number_of_shards: 12, ..config() };
            let mut coordinator = Coordinator::new(RegionId::new("coord", 2), Epoch(2), config, t0, Some(t0));
            coordinator.handle(t0, CoordinatorInput::Quorum(true));
            for region in deliveries {
                coordinator.handle(t0, CoordinatorInput::Message(register(*region)));
            }
            (0..12).map(|s| normalize(coordinator.shard_state(ShardId(s)).expect("exists")))
                .collect::<Vec<_>>()
        };
        let canonical = recover(&[0, 1, 2]);
        let mut deliveries: Vec<usize> = order.iter().flat_map(|r| std::iter::repeat_n(*r, repeats[*r])).collect();
        // A deterministic shuffle so that duplicates interleave.
        let mut seed = shuffle_seed | 1;
        for i in (1..deliveries.len()).rev() {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            deliveries.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(recover(&deliveries), canonical);
    }
}
