//! The scenarios of issue 6, each with load, a precisely placed fault and
//! the checker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh::{HookAction, NodeConfig};
use sharding::{hook_points, Sharding};
use testbed::{Cluster, Direction};

use crate::checker::{
    entity, init_tracing, sharding_config, AccountMsg, Load, TestResult, World, ASK, ENTITIES,
    RECOVER,
};

/// Runs the load for a while (until `n` more increments were acknowledged
/// through `via`), so that the fault lands under load.
async fn under_load(world: &World, via: &str) -> TestResult {
    let accounts = world.entity_ref(via);
    for i in 0..ENTITIES {
        accounts.ask(&entity(i), AccountMsg::Get, RECOVER).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_the_coordinator_node_crashes_under_load() -> TestResult {
    init_tracing();
    let world = World::start(
        Cluster::builder().nodes(3).start().await?,
        sharding_config(),
    )
    .await?;
    world.touch_all("n2").await?;
    let load = Load::everywhere(&world);
    under_load(&world, "n2").await?;
    let crashed = Instant::now();
    world.cluster.crash("n1");
    let answered = world.wait_all_answer(&["n2", "n3"]).await?;
    eprintln!(
        "s7: coordinator crash -> every entity answering after {:?} (wait took {answered:?})",
        crashed.elapsed()
    );
    let history = load.stop().await?;
    eprintln!(
        "s7: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_region_crashes_before_the_first_command_of_a_new_entity() -> TestResult {
    init_tracing();
    let world = World::start(
        Cluster::builder().nodes(3).start().await?,
        sharding_config(),
    )
    .await?;
    // The first message for a new entity on n3 crashes n3 right there.
    world
        .cluster
        .arm_hook("n3", hook_points::BEFORE_FIRST_DELIVERY, HookAction::Crash);
    let load = Load::everywhere(&world);
    world
        .cluster
        .wait_until(RECOVER, "n3 to crash at its first delivery", |c| {
            c.hooks("n3").fired(hook_points::BEFORE_FIRST_DELIVERY) > 0
        })
        .await?;
    world.wait_all_answer(&["n1", "n2"]).await?;
    let history = load.stop().await?;
    eprintln!(
        "s3: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_the_coordinator_crashes_after_begin_handoff() -> TestResult {
    init_tracing();
    let config = sharding::ShardingConfig {
        rebalance_interval: Duration::from_millis(500),
        ..sharding_config()
    };
    let world = World::start(Cluster::builder().nodes(2).start().await?, config).await?;
    world.touch_all("n2").await?;
    let load = Load::everywhere(&world);
    under_load(&world, "n2").await?;
    // A third node joins: the rebalance begins a handoff, and the
    // coordinator (n1) crashes right after sending `BeginHandoff`.
    world
        .cluster
        .arm_hook("n1", hook_points::AFTER_BEGIN_HANDOFF, HookAction::Crash);
    world.cluster.add_node("n3").await?;
    world.start_node("n3").await?;
    let load = load.with(&world, &["n3"]);
    world
        .cluster
        .wait_until(RECOVER, "n1 to crash after BeginHandoff", |c| {
            c.hooks("n1").fired(hook_points::AFTER_BEGIN_HANDOFF) > 0
        })
        .await?;
    world.wait_all_answer(&["n2", "n3"]).await?;
    let history = load.stop().await?;
    eprintln!(
        "s1: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_a_region_cut_from_the_coordinator_fences_and_rejoins_after_the_heal() -> TestResult {
    init_tracing();
    // Downing waits longer than a lease, so that n3 survives a cut long
    // enough for its lease to run out and its shards to be moved.
    let mut node = NodeConfig::default();
    node.membership.stable_after = Duration::from_secs(8);
    let cluster = Cluster::builder().nodes(3).config(node).start().await?;
    let config = sharding::ShardingConfig {
        lease: Duration::from_millis(1500),
        lease_renewal_interval: Duration::from_millis(500),
        clock_drift_margin: Duration::from_millis(150),
        ..sharding_config()
    };
    let world = World::start(cluster, config).await?;
    world.touch_all("n2").await?;
    let on_n3 = world.entity_ref("n3").region_state().await?.shards.len();
    assert!(on_n3 > 0, "n3 hosts nothing");
    let load = Load::everywhere(&world);
    under_load(&world, "n2").await?;
    world.cluster.partition(&["n3"], &["n1", "n2"])?;
    // The coordinator moves n3's shards once its lease has surely run out.
    world.wait_all_answer(&["n1", "n2"]).await?;
    let n3 = world.entity_ref("n3");
    let fenced = n3.region_state().await?;
    assert!(
        fenced.shards.iter().all(|s| s.status != "active"),
        "n3 still serves while cut off: {fenced:?}"
    );
    world.cluster.heal();
    world
        .cluster
        .wait_until_async(RECOVER, "n3 to re-register with nothing fenced", |_| {
            let n3 = n3.clone();
            async move {
                n3.region_state()
                    .await
                    .is_ok_and(|v| v.registered && v.shards.iter().all(|s| s.status == "active"))
            }
        })
        .await?;
    world.wait_all_answer(&["n1", "n2", "n3"]).await?;
    let history = load.stop().await?;
    eprintln!(
        "s5: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_a_two_three_split_brain_under_writes_keeps_one_writer() -> TestResult {
    init_tracing();
    let world = World::start(
        Cluster::builder().nodes(5).start().await?,
        sharding_config(),
    )
    .await?;
    world.touch_all("n3").await?;
    let load = Load::everywhere(&world);
    under_load(&world, "n4").await?;
    // n1 (the coordinator) and n2 are the minority.
    world
        .cluster
        .partition(&["n1", "n2"], &["n3", "n4", "n5"])?;
    world.wait_all_answer(&["n3", "n4", "n5"]).await?;
    world
        .cluster
        .wait_until(RECOVER, "the minority to stop", |c| {
            c.node("n1").is_stopped() && c.node("n2").is_stopped()
        })
        .await?;
    let history = load.stop().await?;
    eprintln!(
        "s8: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_a_daemon_worker_on_a_crashed_node_runs_again_elsewhere() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    let running: Arc<Mutex<BTreeMap<usize, String>>> = Arc::default();
    let mut keep = Vec::new();
    for name in cluster.names() {
        let sharding = Sharding::start(&cluster.node(&name), sharding_config()).await?;
        let running = running.clone();
        let node = name.clone();
        sharding.daemon("worker", 3, move |ctx| {
            running.lock().unwrap().insert(ctx.index, node.clone());
            std::future::pending::<()>()
        })?;
        keep.push(sharding);
    }
    cluster
        .wait_until(RECOVER, "three workers", |_| {
            running.lock().unwrap().len() == 3
        })
        .await?;
    let victim = running.lock().unwrap()[&0].clone();
    let mut events = cluster
        .node(if victim == "n2" { "n3" } else { "n2" })
        .member_events();
    cluster.crash(&victim);
    let downed = tokio::time::timeout(RECOVER, async {
        loop {
            if let Ok(mesh::MemberEvent::MemberDowned(member)) = events.recv().await {
                if member.id.name == victim {
                    return Instant::now();
                }
            }
        }
    })
    .await?;
    cluster
        .wait_until(RECOVER, "worker 0 on another node", |_| {
            running
                .lock()
                .unwrap()
                .get(&0)
                .is_some_and(|n| *n != victim)
        })
        .await?;
    let after_down = downed.elapsed();
    eprintln!("s6: worker 0 running again {after_down:?} after the Down decision");
    let keep_alive = sharding_config().daemon_keep_alive_interval;
    assert!(
        after_down <= keep_alive + ASK,
        "worker 0 restarted {after_down:?} after Down (keep-alive {keep_alive:?})"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_the_coordinator_crashes_mid_rebalance_with_several_handoffs_in_flight() -> TestResult {
    init_tracing();
    let config = sharding::ShardingConfig {
        rebalance_interval: Duration::from_millis(500),
        rebalance_relative_limit: 0.5,
        ..sharding_config()
    };
    let world = World::start(Cluster::builder().nodes(2).start().await?, config).await?;
    world.touch_all("n2").await?;
    let load = Load::everywhere(&world);
    under_load(&world, "n2").await?;
    // Crash the coordinator at its sixth `BeginHandoff` (three regions:
    // the second shard's round), with the first handoffs under way.
    let n1 = world.cluster.node("n1");
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    world.cluster.arm_hook(
        "n1",
        hook_points::AFTER_BEGIN_HANDOFF,
        HookAction::Call(Arc::new(move || {
            if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == 6 {
                n1.crash();
            }
        })),
    );
    world.cluster.add_node("n3").await?;
    world.start_node("n3").await?;
    let load = load.with(&world, &["n3"]);
    world
        .cluster
        .wait_until(RECOVER, "n1 to crash mid-rebalance", |c| {
            c.node("n1").is_stopped()
        })
        .await?;
    world.wait_all_answer(&["n2", "n3"]).await?;
    let history = load.stop().await?;
    eprintln!(
        "s2: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_the_old_home_crashes_after_the_acks_before_shard_stopped() -> TestResult {
    init_tracing();
    let world = World::start(
        Cluster::builder().nodes(3).start().await?,
        sharding_config(),
    )
    .await?;
    world.touch_all("n1").await?;
    assert!(!world
        .entity_ref("n2")
        .region_state()
        .await?
        .shards
        .is_empty());
    let load = Load::everywhere(&world);
    under_load(&world, "n1").await?;
    // n2 leaves: its shards are handed off; it crashes once the acks are
    // in and its first shard's entities stopped, before `ShardStopped`.
    world
        .cluster
        .arm_hook("n2", hook_points::BEFORE_SHARD_STOPPED, HookAction::Crash);
    let n2 = world.cluster.node("n2");
    tokio::spawn(async move { n2.leave().await });
    world
        .cluster
        .wait_until(RECOVER, "n2 to crash before ShardStopped", |c| {
            c.hooks("n2").fired(hook_points::BEFORE_SHARD_STOPPED) > 0
        })
        .await?;
    world.wait_all_answer(&["n1", "n3"]).await?;
    let history = load.stop().await?;
    eprintln!(
        "s4: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_a_daemon_worker_cut_off_with_a_minority_stops_before_it_runs_elsewhere() -> TestResult {
    init_tracing();
    let (cluster, workers, _keep) = three_daemon_workers().await?;
    let victim = workers.node_of(0).ok_or("worker 0 not running")?;
    let others: Vec<String> = cluster
        .names()
        .into_iter()
        .filter(|n| *n != victim)
        .collect();
    cluster.partition(&[victim.as_str()], &others)?;
    // Fenced, not merely shut down with its node: the worker stops while
    // the cut-off node still runs (before any Down decision).
    let mut stopped_while_running = false;
    cluster
        .wait_until(RECOVER, "worker 0 to stop on the cut-off node", |c| {
            stopped_while_running = !c.node(&victim).is_stopped();
            workers.node_of(0).is_none()
        })
        .await?;
    assert!(stopped_while_running, "worker 0 only stopped with its node");
    cluster
        .wait_until(RECOVER, "worker 0 on the majority side", |_| {
            workers.node_of(0).is_some_and(|n| n != victim)
        })
        .await?;
    assert_eq!(workers.most_at_once(), 1, "a worker ran twice at once");
    Ok(())
}

/// A 3-node cluster running daemon `worker` with three workers that each
/// hold a [`WorkerGuard`] while they run; returns once all three run (keep
/// the `Sharding`s alive).
pub async fn three_daemon_workers(
) -> Result<(Cluster, Arc<Workers>, Vec<Sharding>), Box<dyn std::error::Error>> {
    let cluster = Cluster::builder().nodes(3).start().await?;
    let workers = Arc::new(Workers::default());
    let mut keep = Vec::new();
    for name in cluster.names() {
        let sharding = Sharding::start(&cluster.node(&name), sharding_config()).await?;
        let workers = workers.clone();
        let node = name.clone();
        sharding.daemon("worker", 3, move |ctx| {
            let guard = workers.start(ctx.index, &node);
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }
        })?;
        keep.push(sharding);
    }
    cluster
        .wait_until(RECOVER, "three workers", |_| workers.running() == 3)
        .await?;
    Ok((cluster, workers, keep))
}

/// Daemon workers running now, and the most instances of one index that
/// ever ran at the same time.
#[derive(Default)]
pub struct Workers {
    state: Mutex<WorkersState>,
}

#[derive(Default)]
struct WorkersState {
    running: BTreeMap<usize, Vec<String>>,
    most_at_once: usize,
}

impl Workers {
    pub fn start(self: &Arc<Self>, index: usize, node: &str) -> WorkerGuard {
        let mut state = self.state.lock().unwrap();
        let nodes = state.running.entry(index).or_default();
        nodes.push(node.to_string());
        let now = nodes.len();
        state.most_at_once = state.most_at_once.max(now);
        WorkerGuard {
            workers: self.clone(),
            index,
            node: node.to_string(),
        }
    }

    pub fn running(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .running
            .values()
            .map(Vec::len)
            .sum()
    }

    pub fn node_of(&self, index: usize) -> Option<String> {
        let state = self.state.lock().unwrap();
        state
            .running
            .get(&index)
            .and_then(|nodes| nodes.last().cloned())
    }

    pub fn most_at_once(&self) -> usize {
        self.state.lock().unwrap().most_at_once
    }
}

/// Counts a worker as running until its future is dropped (stopped, fenced
/// or aborted).
pub struct WorkerGuard {
    workers: Arc<Workers>,
    index: usize,
    node: String,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let mut state = self.workers.state.lock().unwrap();
        if let Some(nodes) = state.running.get_mut(&self.index) {
            if let Some(at) = nodes.iter().position(|n| *n == self.node) {
                nodes.remove(at);
            }
            if nodes.is_empty() {
                state.running.remove(&self.index);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s8_a_one_way_cut_from_the_coordinator_keeps_one_writer() -> TestResult {
    init_tracing();
    let world = World::start(
        Cluster::builder().nodes(5).start().await?,
        sharding_config(),
    )
    .await?;
    world.touch_all("n2").await?;
    let load = Load::everywhere(&world);
    under_load(&world, "n4").await?;
    // n1 (the coordinator) no longer hears n3; n3 still hears n1. Both
    // ends of a cut link are downed (indirectly connected), the rest go on.
    world.cluster.blackhole("n3", "n1", Direction::OneWay)?;
    world
        .cluster
        .wait_until(RECOVER, "both ends of the cut link to stop", |c| {
            c.node("n1").is_stopped() && c.node("n3").is_stopped()
        })
        .await?;
    world.wait_all_answer(&["n2", "n4", "n5"]).await?;
    let history = load.stop().await?;
    eprintln!(
        "s8 one-way: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}
