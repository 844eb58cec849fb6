//! Issue 14: one scenario per hole in the single-writer guarantee, each
//! with clients on every side of every cut, a handler that awaits between
//! read and write, and a checker that fails when two instances write.
//! Every one of them failed before its fix (see the closing note).

use mesh::{HookAction, NodeConfig};
use sharding::{hook_points, shard_id};
use testbed::Cluster;

use crate::checker::{
    entity, init_tracing, sharding_config, AccountMsg, Load, TestResult, World, ASK, ENTITIES,
    RECOVER,
};
use crate::scenarios::three_daemon_workers;

/// The shards whose state lives on `node` now.
async fn shards_on(world: &World, node: &str) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    let region = world.entity_ref(node).region_state().await?;
    Ok(region.shards.iter().map(|row| row.shard).collect())
}

/// An entity among the clients' whose shard lives on `node` now.
async fn entity_hosted_on(world: &World, node: &str) -> Result<String, Box<dyn std::error::Error>> {
    let shards = shards_on(world, node).await?;
    let shards_total = sharding_config().number_of_shards;
    (0..ENTITIES)
        .map(entity)
        .find(|id| shards.contains(&shard_id(id, shards_total).0))
        .ok_or_else(|| format!("{node} hosts none of the clients' entities").into())
}

/// Waits until `done`, or until the store already shows two writers (then
/// the verification that follows reports them).
async fn until_or_violation(
    world: &World,
    what: &str,
    done: impl Fn(&Cluster) -> bool,
) -> TestResult {
    world
        .cluster
        .wait_until(RECOVER, what, |c| {
            done(c) || !world.store.single_writer_violations().is_empty()
        })
        .await?;
    Ok(())
}

/// Three nodes whose downing decision waits longer than any test: what
/// happens is up to the leases alone.
async fn three_nodes_without_downing() -> Result<World, Box<dyn std::error::Error>> {
    let mut node = NodeConfig::default();
    node.membership.stable_after = RECOVER;
    let cluster = Cluster::builder().nodes(3).config(node).start().await?;
    World::start(cluster, sharding_config()).await
}

fn stopped(cluster: &Cluster, names: &[&str]) -> bool {
    names.iter().all(|n| cluster.node(n).is_stopped())
}

/// Hole 1: a node joins one side of a cut. It must wait for the cut to be
/// resolved; the side it joined must not count it. `left` holds the
/// oldest member; `losing` is the side the strategy must down.
async fn a_node_joins_one_side_of_a_cut(
    nodes: usize,
    left: &[&str],
    right: &[&str],
    joiner_side_is_left: bool,
) -> TestResult {
    init_tracing();
    let world = World::start(
        Cluster::builder().nodes(nodes).start().await?,
        sharding_config(),
    )
    .await?;
    world.touch_all("n1").await?;
    let load = Load::everywhere(&world);
    world.cluster.partition(left, right)?;
    let joiner = format!("n{}", nodes + 1);
    let other_side = if joiner_side_is_left { right } else { left };
    world.cluster.add_node_cut_from(&joiner, other_side).await?;
    world.start_node(&joiner).await?;
    let load = load.with(&world, &[joiner.as_str()]);
    let (winners, losers) = if left.len() >= right.len() {
        (left, right)
    } else {
        (right, left)
    };
    until_or_violation(&world, "the losing side to stop", |c| stopped(c, losers)).await?;
    if world.store.single_writer_violations().is_empty() {
        world.wait_all_answer(winners).await?;
    }
    world.cluster.heal();
    let history = load.stop().await?;
    eprintln!(
        "join during a {}|{} cut: {} acknowledged, {} retries",
        left.len(),
        right.len(),
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_a_node_joining_the_younger_half_of_a_two_two_cut_keeps_one_writer() -> TestResult {
    a_node_joins_one_side_of_a_cut(4, &["n1", "n2"], &["n3", "n4"], false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_a_node_joining_the_minority_of_a_two_three_cut_keeps_one_writer() -> TestResult {
    a_node_joins_one_side_of_a_cut(5, &["n1", "n2"], &["n3", "n4", "n5"], true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_a_restarted_node_rejoining_during_a_two_two_cut_keeps_one_writer() -> TestResult {
    init_tracing();
    let world = World::start(
        Cluster::builder().nodes(5).start().await?,
        sharding_config(),
    )
    .await?;
    world.touch_all("n1").await?;
    let load = Load::start(&world, &["n1", "n2", "n3", "n4"]);
    world.cluster.crash("n5");
    let n5 = world.cluster.id("n5");
    // Until every member has acknowledged the Down and n5 is Removed: a cut
    // that comes before the acknowledgements have spread leaves each side
    // unsure whether the other knows of the Down, keep-majority counts the
    // Down member against the side that cannot tell, and both sides may
    // down themselves (safe, but no side serves: the test asks for one).
    world
        .cluster
        .wait_until(RECOVER, "n5 to be downed and removed", |c| {
            ["n1", "n2", "n3", "n4"]
                .iter()
                .all(|n| !c.node(n).cluster_state().members.iter().any(|m| m.id == n5))
        })
        .await?;
    world
        .cluster
        .partition(&["n1", "n2"], &["n3", "n4", "n5"])?;
    world.cluster.restart("n5").await?;
    world.start_node("n5").await?;
    let load = load.with(&world, &["n5"]);
    until_or_violation(&world, "n3 and n4 to stop", |c| stopped(c, &["n3", "n4"])).await?;
    if world.store.single_writer_violations().is_empty() {
        world.wait_all_answer(&["n1", "n2"]).await?;
    }
    world.cluster.heal();
    let history = load.stop().await?;
    eprintln!(
        "restart during a 2|2 cut: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

/// Hole 3: the driver of n3 stalls inside a delivery round for longer than
/// its lease, while clients queue more commands on it; the coordinator
/// moves n3's shards meanwhile. The rest of the round must not deliver on
/// the clock read from before the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn h3_a_pause_inside_a_delivery_round_past_the_lease_keeps_one_writer() -> TestResult {
    init_tracing();
    // The stall blocks one worker thread of the process that runs every
    // node, which can delay heartbeats too: only the lease may decide.
    let world = three_nodes_without_downing().await?;
    // n3 serves its entities, idle now; the others have not routed to them.
    world.touch_all("n3").await?;
    let on_n3 = shards_on(&world, "n3").await?;
    let shards = sharding_config().number_of_shards;
    let fresh = (0..)
        .map(|i| format!("fresh-{i}"))
        .find(|id| on_n3.contains(&shard_id(id, shards).0))
        .ok_or("n3 hosts nothing")?;
    let lease = sharding_config().lease;
    world.cluster.hooks("n3").arm_once(
        hook_points::BEFORE_FIRST_DELIVERY,
        HookAction::Pause(lease * 3),
    );
    let n3 = world.entity_ref("n3");
    let stalled = {
        let n3 = n3.clone();
        tokio::spawn(async move { n3.ask(&fresh, AccountMsg::Get, lease * 4).await })
    };
    world
        .cluster
        .wait_until(RECOVER, "n3's driver to stall", |c| {
            c.hooks("n3").fired(hook_points::BEFORE_FIRST_DELIVERY) > 0
        })
        .await?;
    // Writes through n3, each in its step's first poll, queue up behind the
    // stall: the rest of the round takes them.
    let burst: Vec<_> = (0..ENTITIES)
        .filter(|i| on_n3.contains(&shard_id(&entity(*i), shards).0))
        .map(|i| {
            let n3 = n3.clone();
            let key = (1 << 50) | i;
            tokio::spawn(async move {
                let message = AccountMsg::AddNow { key };
                (entity(i), key, n3.ask(&entity(i), message, lease * 4).await)
            })
        })
        .collect();
    // Once n3's lease has lapsed, the others write to its entities at
    // their new homes.
    let via = world.entity_ref("n1");
    let n3_id = world.cluster.id("n3").to_string();
    world
        .cluster
        .wait_until_async(RECOVER, "n3's registration to lapse", |_| {
            let (via, n3_id) = (via.clone(), n3_id.clone());
            async move {
                via.coordinator_state(ASK)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|view| view.regions.iter().all(|r| r.region != n3_id))
            }
        })
        .await?;
    let load = Load::start(&world, &["n1", "n2"]);
    let _ = stalled.await?;
    world.wait_all_answer(&["n1", "n2", "n3"]).await?;
    let mut history = load.stop().await?;
    for write in burst {
        match write.await? {
            (id, key, Ok(seq)) => {
                history.acked.entry(id).or_default().insert(key, seq);
            }
            (id, key, Err(_)) => {
                history.unknown.insert((id, key));
            }
        }
    }
    eprintln!(
        "pause in a round: {} acknowledged, {} retries",
        history.acked_count(),
        history.retries
    );
    world.verify(&history)
}

/// Hole 2: a handler waits on slow I/O when its node is cut off into a
/// minority; the majority moves the shard and writes. The waiting step
/// must never resume and write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_a_handler_mid_await_when_its_node_is_cut_off_never_writes_after() -> TestResult {
    init_tracing();
    // The cut-off node lives on (fenced) long after the majority moved its
    // shards, as a node on the losing side of a slow decision would.
    let world = three_nodes_without_downing().await?;
    world.touch_all("n1").await?;
    let target = entity_hosted_on(&world, "n3").await?;
    let load = Load::everywhere(&world);
    let slow_key = u64::MAX;
    let slow = {
        let n3 = world.entity_ref("n3");
        let target = target.clone();
        // Resumes after the majority has moved the shard and written.
        let io_ms = 3 * sharding_config().lease.as_millis() as u64;
        tokio::spawn(async move {
            let message = AccountMsg::SlowAdd {
                key: slow_key,
                io_ms,
            };
            n3.ask(&target, message, RECOVER).await
        })
    };
    world
        .cluster
        .wait_until(RECOVER, "the slow step to start", |_| {
            world.store.slow_step_started(&target)
        })
        .await?;
    world.cluster.partition(&["n3"], &["n1", "n2"])?;
    world.wait_all_answer(&["n1", "n2"]).await?;
    let slow = tokio::time::timeout(RECOVER, slow).await??;
    eprintln!("the slow step on the cut-off node ended with {slow:?}");
    world.cluster.heal();
    world.wait_all_answer(&["n1", "n2", "n3"]).await?;
    let mut history = load.stop().await?;
    match slow {
        Ok(seq) => {
            history
                .acked
                .entry(target.clone())
                .or_default()
                .insert(slow_key, seq);
        }
        Err(_) => {
            history.unknown.insert((target.clone(), slow_key));
        }
    }
    world.verify(&history)
}

/// Hole 4: the driver of a daemon worker's node stalls past the lease; the
/// worker's task itself keeps running. It must stop at the lease's end,
/// before the worker starts elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h4_a_daemon_worker_stops_at_its_lease_end_while_its_driver_is_paused() -> TestResult {
    init_tracing();
    let (cluster, workers, _keep) = three_daemon_workers().await?;
    // A worker that does not run on the coordinator's node (n1).
    let (index, victim) = (0..3)
        .find_map(|i| workers.node_of(i).filter(|n| n != "n1").map(|n| (i, n)))
        .ok_or("every worker runs on n1")?;
    let lease = sharding_config().lease;
    cluster
        .hooks(&victim)
        .arm_once(hook_points::BEFORE_TICK, HookAction::Pause(lease * 3));
    cluster
        .wait_until(RECOVER, "the worker to run on another node", |_| {
            workers.node_of(index).is_some_and(|n| n != victim)
        })
        .await?;
    assert_eq!(
        workers.most_at_once(),
        1,
        "worker {index} ran on two nodes at once"
    );
    Ok(())
}
