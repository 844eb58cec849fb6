//! The happy paths of sharding on three real nodes.

use std::collections::BTreeMap;

use testbed::Cluster;

use crate::support::{
    counter_type, entities_per_node, init_tracing, start_counters, wait_registered, CounterMsg,
    TestResult, ASK, SETTLE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_spread_over_every_region_and_keep_their_state() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    let mut refs = BTreeMap::new();
    let mut keep = Vec::new();
    for name in cluster.names() {
        let (sharding, counters) = start_counters(&cluster, &name, counter_type(None)).await?;
        keep.push(sharding);
        refs.insert(name, counters);
    }
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
