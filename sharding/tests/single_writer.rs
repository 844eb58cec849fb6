//! "No shard ever has two homes": a coordinator and three regions exchange
//! messages through a network that reorders, duplicates and drops; regions
//! crash, restart, pause, are Downed while still running, and fence; the
//! coordinator is replaced by a new epoch at any moment (also mid-handoff),
//! and the replaced one goes on acting for up to the clock-drift margin
//! (the time it may take to see that it lost quorum, past the moment its
//! successor last saw it). After every step: at most one region serves a
//! shard with a valid lease.

mod common;

use std::time::Duration;

use common::Sim;
use proptest::prelude::*;
use sharding::ShardingConfig;

#[derive(Clone, Debug)]
enum Op {
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Advance(u64),
    Send {
        from: usize,
        entity: u32,
    },
    Crash(usize),
    Restart(usize),
    DownButAlive(usize),
    Pause(usize),
    Fence(usize),
    Unfence(usize),
    /// The old coordinator acts on for this many ms.
    NewCoordinator(u64),
}

/// The operations, with a replaced coordinator acting on for up to
/// `overlap_ms`.
fn op_with_overlap(overlap_ms: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => any::<usize>().prop_map(Op::Deliver),
        6 => any::<usize>().prop_map(Op::Duplicate),
        4 => any::<usize>().prop_map(Op::Drop),
        18 => (1u64..1_500).prop_map(Op::Advance),
        14 => (any::<usize>(), 0u32..24).prop_map(|(from, entity)| Op::Send { from, entity }),
        1 => any::<usize>().prop_map(Op::Crash),
        1 => any::<usize>().prop_map(Op::Restart),
        1 => any::<usize>().prop_map(Op::DownButAlive),
        2 => any::<usize>().prop_map(Op::Pause),
        1 => any::<usize>().prop_map(Op::Fence),
        2 => any::<usize>().prop_map(Op::Unfence),
        2 => (0..=overlap_ms).prop_map(Op::NewCoordinator),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    op_with_overlap(overlap_ms())
}

/// How long a replaced coordinator may go on acting: the margin that rule 3
/// adds for it.
fn overlap_ms() -> u64 {
    config().clock_drift_margin.as_millis() as u64
}

fn config() -> ShardingConfig {
    ShardingConfig {
        number_of_shards: 8,
        rebalance_interval: Duration::from_secs(2),
        rebalance_relative_limit: 0.5,
        buffer_size: 50,
        ..ShardingConfig::default()
    }
}

fn apply(sim: &mut Sim, op: &Op) {
    match op {
        Op::Deliver(i) => sim.deliver_at(*i, false),
        Op::Duplicate(i) => sim.deliver_at(*i, true),
        Op::Drop(i) => sim.drop_at(*i),
        Op::Advance(ms) => sim.advance(*ms),
        Op::Send { from, entity } => {
            sim.send(*from, *entity);
        }
        Op::Crash(i) => sim.crash(*i),
        Op::Restart(i) => sim.restart(*i),
        Op::DownButAlive(i) => sim.down_but_alive(*i),
        Op::Pause(i) => sim.toggle_pause(*i),
        Op::Fence(i) => sim.fence(*i, false),
        Op::Unfence(i) => sim.fence(*i, true),
        Op::NewCoordinator(ms) => sim.replace_coordinator_acting_on(Duration::from_millis(*ms)),
    }
    sim.complete_stops();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn no_shard_ever_has_two_homes(ops in proptest::collection::vec(op(), 1..300)) {
        one_home_throughout(&ops)?;
    }
}

/// The checks of `no_shard_ever_has_two_homes` for one sequence of ops.
fn one_home_throughout(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(config(), &["a", "b", "c"]);
    // Warm up: everyone registered, some shards allocated.
    sim.settle(3, 100);
    for entity in 0..8 {
        sim.send(entity as usize, entity);
    }
    sim.settle(3, 100);
    sim.check_single_writer().map_err(TestCaseError::fail)?;
    for op in ops {
        apply(&mut sim, op);
        sim.check_single_writer()
            .map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))?;
    }
    // Heal: pauses end, sides survive, Downed nodes learn it and stop.
    sim.heal();
    for _ in 0..20 {
        sim.settle(1, 700);
        sim.check_single_writer().map_err(TestCaseError::fail)?;
    }
    sim.check_converged().map_err(TestCaseError::fail)?;
    // After recovery every entity answers (issue 6, checker iii).
    let before = sim.delivered.len();
    let sent: Vec<u64> = (0..24)
        .map(|entity| sim.send(entity as usize, entity))
        .collect();
    for _ in 0..10 {
        sim.settle(1, 200);
        sim.check_single_writer().map_err(TestCaseError::fail)?;
    }
    let answered: std::collections::BTreeSet<u64> =
        sim.delivered[before..].iter().map(|(_, _, p)| *p).collect();
    let silent: Vec<u64> = sent.into_iter().filter(|p| !answered.contains(p)).collect();
    prop_assert!(
        silent.is_empty(),
        "not answered after healing: {:?}",
        silent
    );
    Ok(())
}

/// The scenario of issue 6 #1 spelled out: the coordinator is replaced
/// after `BeginHandoff` went out and before the acks arrived.
#[test]
fn coordinator_replaced_mid_handoff_keeps_one_home_and_recovers() {
    let mut sim = Sim::new(config(), &["a", "b", "c"]);
    sim.settle(3, 100);
    for entity in 0..24 {
        sim.send(entity as usize, entity);
    }
    sim.settle(5, 200);
    // Make "a" leave: its shards begin to hand off.
    let a = sim.ids()[0].clone();
    let effects = sim
        .coordinator
        .handle(sim.now, sharding::CoordinatorInput::MemberLeaving(a));
    sim.coordinator_effects(effects);
    // Deliver only the BeginHandoffs to the regions, then replace the coordinator.
    let mut index = 0;
    while index < sim.network.len() {
        if matches!(
            &sim.network[index],
            common::Packet::FromCoordinator { message, .. }
                if matches!(message.body, sharding::CoordinatorToRegion::BeginHandoff { .. })
        ) {
            let packet = sim.network.remove(index);
            sim.deliver(packet);
        } else {
            index += 1;
        }
    }
    sim.replace_coordinator();
    for _ in 0..30 {
        sim.settle(1, 300);
        sim.check_single_writer().expect("one home");
    }
    // Every entity answers again: a fresh message to each is delivered.
    let before = sim.delivered.len();
    let sent: Vec<u64> = (0..24)
        .map(|entity| sim.send(entity as usize, entity))
        .collect();
    sim.settle(10, 200);
    let delivered: Vec<u64> = sim.delivered[before..].iter().map(|(_, _, p)| *p).collect();
    for payload in sent {
        assert!(
            delivered.contains(&payload),
            "payload {payload} not delivered"
        );
    }
}

fn no_loss_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => any::<usize>().prop_map(Op::Deliver),
        6 => any::<usize>().prop_map(Op::Duplicate),
        18 => (1u64..1_500).prop_map(Op::Advance),
        14 => (any::<usize>(), 0u32..24).prop_map(|(from, entity)| Op::Send { from, entity }),
        2 => any::<usize>().prop_map(Op::Pause),
        1 => any::<usize>().prop_map(Op::Fence),
        2 => any::<usize>().prop_map(Op::Unfence),
        2 => (0..=overlap_ms()).prop_map(Op::NewCoordinator),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// Rule 5 under reordering, duplicates, pauses, fencing and coordinator
    /// changes (no packet dropped, no node lost): once the network heals,
    /// every message has reached its entity or come back as an error.
    #[test]
    fn every_message_is_delivered_or_refused_once_healed(ops in proptest::collection::vec(no_loss_op(), 1..200)) {
        let mut sim = Sim::new(config(), &["a", "b", "c"]);
        sim.settle(3, 100);
        let mut sent = Vec::new();
        for op in &ops {
            if let Op::Send { from, entity } = op {
                sent.push(sim.send(*from, *entity));
            } else {
                apply(&mut sim, op);
            }
            sim.check_single_writer().map_err(TestCaseError::fail)?;
        }
        for id in sim.ids() {
            if let Some(node) = sim.nodes.get_mut(id.name.as_str()) {
                node.paused = false;
            }
        }
        for index in 0..3 {
            sim.fence(index, true);
        }
        for _ in 0..30 {
            sim.settle(1, 500);
        }
        let done: std::collections::BTreeSet<u64> = sim
            .delivered
            .iter()
            .map(|(_, _, p)| *p)
            .chain(sim.failed.iter().copied())
            .collect();
        let lost: Vec<u64> = sent.into_iter().filter(|p| !done.contains(p)).collect();
        prop_assert!(lost.is_empty(), "lost {:?}", lost);
    }
}

/// Found by `every_message_is_delivered_or_refused_once_healed`: region
/// "a" lapses while its `HostShard` is in flight, registers again with a
/// fresh lease, the shard goes to "b", then the old `HostShard` reaches "a".
#[test]
fn a_host_shard_from_before_a_lapse_does_not_make_a_second_home() {
    use Op::*;
    let ops = vec![
        Send {
            from: 5403202476053686293,
            entity: 0,
        },
        Advance(500),
        Deliver(0),
        Advance(1120),
        Deliver(638580693982902542),
        Deliver(9266349031996530736),
        Deliver(11982150549761873412),
        Send {
            from: 796791699629596540,
            entity: 0,
        },
        Advance(1380),
        Deliver(1233450773281626292),
        Deliver(7097368485521245181),
        Deliver(10542672739021812028),
        Send {
            from: 9448146936768831253,
            entity: 1,
        },
        Deliver(8366081149178109899),
        Deliver(1004198597010112628),
        Advance(637),
        Deliver(4377872320013422032),
        Duplicate(459485697381775594),
        Duplicate(38382178090829700),
        Duplicate(17884133762923318685),
        Send {
            from: 122222442945258693,
            entity: 12,
        },
        Advance(1),
        Deliver(13445275552296335228),
    ];
    let mut sim = Sim::new(config(), &["a", "b", "c"]);
    sim.settle(3, 100);
    for op in &ops {
        apply(&mut sim, op);
        sim.check_single_writer().expect("one home");
    }
    sim.heal();
    for _ in 0..10 {
        sim.settle(1, 500);
        sim.check_single_writer().expect("one home");
    }
    sim.check_converged().expect("converged");
}
