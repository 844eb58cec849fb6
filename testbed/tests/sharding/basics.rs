//! The happy paths of sharding on three real nodes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sharding::Sharding;

use testbed::Cluster;

use crate::support::{
    config, counter_type, entities_per_node, init_tracing, shards_per_node, start_everywhere,
    start_type, wait_registered, CounterMsg, TestResult, ASK, SETTLE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_spread_over_every_region_and_keep_their_state() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    let (_keep, refs) = start_everywhere(&cluster, || counter_type(None)).await?;
    let n1 = refs["n1"].clone();
    wait_registered(&cluster, &n1, 3).await?;
    for i in 0..60 {
        let id = format!("c-{i}");
        let value = n1.ask(&id, CounterMsg::Add(i + 1), SETTLE).await?;
        assert_eq!(value, i + 1, "{id}");
    }
    // Every node reads what n1 wrote: one instance per entity.
    for (name, counters) in &refs {
        for i in 0..60 {
            let id = format!("c-{i}");
            let value = counters.ask(&id, CounterMsg::Get, ASK).await?;
            assert_eq!(value, i + 1, "{id} read from {name}");
        }
    }
    let spread = entities_per_node(&refs).await;
    assert_eq!(spread.values().sum::<usize>(), 60, "{spread:?}");
    assert!(
        spread.values().all(|n| *n > 0),
        "not spread over all regions: {spread:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_receives_shards_by_rebalance() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(2).start().await?;
    let (mut keep, mut refs) = start_everywhere(&cluster, || counter_type(None)).await?;
    let n1 = refs["n1"].clone();
    wait_registered(&cluster, &n1, 2).await?;
    for i in 0..60 {
        n1.ask(&format!("c-{i}"), CounterMsg::Add(1), SETTLE)
            .await?;
    }
    cluster.add_node("n3").await?;
    let (sharding, n3) = start_type(&cluster, "n3", counter_type(None)).await?;
    keep.push(sharding);
    let what = "n3 to receive shards by rebalance";
    cluster
        .wait_until_async(SETTLE, what, |_| async {
            n3.region_state().await.is_ok_and(|view| {
                view.shards.len() >= 5 && view.shards.iter().all(|s| s.status == "active")
            })
        })
        .await?;
    refs.insert("n3".into(), n3);
    // Every entity answers again, from every node (handed-off counters
    // start over: their state lived in memory).
    for counters in refs.values() {
        for i in 0..60 {
            counters
                .ask(&format!("c-{i}"), CounterMsg::Get, SETTLE)
                .await?;
        }
    }
    // Every shard in use lives in exactly one region once moves settle.
    let used: std::collections::BTreeSet<_> = (0..60)
        .map(|i| sharding::shard_id(&format!("c-{i}"), 30))
        .collect();
    let refs = &refs;
    let used = used.len();
    cluster
        .wait_until_async(SETTLE, "every used shard hosted once", |_| async move {
            shards_per_node(refs).await.values().sum::<usize>() == used
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_only_node_routes_and_hosts_nothing() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder()
        .nodes(3)
        .roles("n1", &["counter"])
        .roles("n2", &["counter"])
        .start()
        .await?;
    let (_keep, refs) = start_everywhere(&cluster, || counter_type(Some("counter"))).await?;
    let n3 = refs["n3"].clone();
    wait_registered(&cluster, &n3, 3).await?;
    for i in 0..40 {
        let value = n3
            .ask(&format!("c-{i}"), CounterMsg::Add(2), SETTLE)
            .await?;
        assert_eq!(value, 2);
    }
    let view = n3.region_state().await?;
    assert!(view.proxy_only);
    assert!(view.shards.is_empty() && view.entities == 0, "{view:?}");
    let spread = entities_per_node(&refs).await;
    assert_eq!(spread["n1"] + spread["n2"], 40, "{spread:?}");
    assert!(spread["n1"] > 0 && spread["n2"] > 0, "{spread:?}");
    Ok(())
}

/// The timeout of one ask of the load clients: generous (a slow CI
/// machine), and still far below the time a lost message would take.
const ASK_UNDER_LOAD: std::time::Duration = std::time::Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_of_the_coordinator_node_hands_off_everything_without_a_failed_ask(
) -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    let (_keep, mut refs) = start_everywhere(&cluster, || counter_type(None)).await?;
    wait_registered(&cluster, &refs["n2"], 3).await?;
    let coordinator = refs["n2"]
        .coordinator_state(ASK)
        .await?
        .ok_or("no coordinator")?;
    assert!(coordinator.node.starts_with("n1#"), "{coordinator:?}");
    for i in 0..30 {
        refs["n2"]
            .ask(&format!("c-{i}"), CounterMsg::Add(1), SETTLE)
            .await?;
    }
    assert!(entities_per_node(&refs).await["n1"] > 0);

    // Steady load from n2 and n3 while n1 (coordinator and region) leaves.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for name in ["n2", "n3"] {
        let counters = refs[name].clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("c-{}", i % 30);
                match counters.ask(&id, CounterMsg::Get, ASK_UNDER_LOAD).await {
                    Ok(_) => ok += 1,
                    Err(error) => failed.push(format!("{id}: {error}")),
                }
                i += 1;
            }
            (ok, failed)
        }));
    }
    cluster.leave("n1").await;
    // The singleton moves to the member that became Up next: n2 or n3.
    let n2 = refs["n2"].clone();
    let n2_node = cluster.node("n2");
    cluster
        .wait_until_async(SETTLE, "a new coordinator on the next host", |_| async {
            let host = n2_node.singleton_host(None);
            n2.coordinator_state(ASK)
                .await
                .ok()
                .flatten()
                .is_some_and(|view| {
                    !view.node.starts_with("n1#")
                        && host.is_some_and(|host| view.node == host.to_string())
                })
        })
        .await?;
    // Every entity answers from its new home.
    for i in 0..30 {
        refs["n3"]
            .ask(&format!("c-{i}"), CounterMsg::Get, SETTLE)
            .await?;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let (ok, failed) = client.await?;
        assert!(ok > 0, "the client made no progress");
        assert!(
            failed.is_empty(),
            "{} failed asks: {failed:?}",
            failed.len()
        );
    }
    refs.remove("n1");
    let spread = entities_per_node(&refs).await;
    assert_eq!(spread.values().sum::<usize>(), 30, "{spread:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_of_five_runs_exactly_five_workers_on_three_nodes() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    let running: Arc<Mutex<BTreeMap<usize, usize>>> = Arc::default();
    let mut daemons = BTreeMap::new();
    let mut keep = Vec::new();
    for name in cluster.names() {
        let sharding = Sharding::start(&cluster.node(&name), config()).await?;
        let running = running.clone();
        let daemon = sharding.daemon("ticker", 5, move |ctx| {
            let guard = WorkerGuard::start(running.clone(), ctx.index);
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }
        })?;
        keep.push(sharding);
        daemons.insert(name, daemon);
    }
    let running_now = || running.lock().unwrap().clone();
    cluster
        .wait_until_async(SETTLE, "five workers running", |_| async {
            let mut here = Vec::new();
            for daemon in daemons.values() {
                here.push(daemon.running_here().await.unwrap_or(0));
            }
            let workers = running_now();
            here.iter().sum::<usize>() == 5
                && workers.len() == 5
                && workers.values().all(|n| *n == 1)
        })
        .await?;
    let mut placed = Vec::new();
    for daemon in daemons.values() {
        placed.push(daemon.running_here().await?);
    }
    assert!(
        placed.iter().all(|n| *n >= 1),
        "not on every node: {placed:?}"
    );
    // A keep-alive round later still exactly one of each.
    for index in 0..5 {
        daemons["n2"].poke(index, SETTLE).await?;
    }
    let workers = running_now();
    assert_eq!(
        workers.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(workers.values().all(|n| *n == 1), "{workers:?}");
    Ok(())
}

/// Counts a daemon worker as running from its start until its future is dropped.
struct WorkerGuard {
    running: Arc<Mutex<BTreeMap<usize, usize>>>,
    index: usize,
}

impl WorkerGuard {
    fn start(running: Arc<Mutex<BTreeMap<usize, usize>>>, index: usize) -> Self {
        *running.lock().unwrap().entry(index).or_default() += 1;
        Self { running, index }
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap();
        if let Some(n) = running.get_mut(&self.index) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.index);
            }
        }
    }
}
