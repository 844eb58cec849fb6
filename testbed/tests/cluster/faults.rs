//! Partitions and blackholes, by node name, through the proxy.

use testbed::{Cluster, Direction};

use crate::support::{init_tracing, ping_all, wait_reachable, TestResult, ASK};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_partition_cuts_that_pair_only_and_heal_restores_it() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    ping_all(&cluster).await?;

    cluster.partition(&["n1"], &["n2"])?;
    for (from, to) in [("n1", "n2"), ("n2", "n1")] {
        let outcome = cluster.ping(from, to, ASK).await;
        assert!(
            outcome.is_err(),
            "{from} -> {to} answered across the partition: {outcome:?}"
        );
    }
    for (from, to) in [("n1", "n3"), ("n3", "n1"), ("n2", "n3"), ("n3", "n2")] {
        cluster
            .ping(from, to, ASK)
            .await
            .map_err(|e| format!("{from} -> {to} outside the partition: {e}\n{cluster:?}"))?;
    }
    let network = cluster.network();
    assert!(network.link_counters("n1", "n2").dropped > 0);
    assert!(network.link_counters("n2", "n1").dropped > 0);
    for (from, to) in [("n1", "n3"), ("n3", "n1"), ("n2", "n3"), ("n3", "n2")] {
        assert_eq!(network.link_counters(from, to).dropped, 0, "{from} -> {to}");
    }

    cluster.heal();
    wait_reachable(&cluster, "n1", "n2").await?;
    wait_reachable(&cluster, "n2", "n1").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_blackhole_drops_exactly_one_direction() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(2).start().await?;
    ping_all(&cluster).await?;

    cluster.blackhole("n1", "n2", Direction::OneWay)?;
    let network = cluster.network();
    let (forth, back) = (
        network.link_counters("n1", "n2"),
        network.link_counters("n2", "n1"),
    );
    // Asks both ways: n1's requests and n1's replies are both n1 -> n2 packets.
    assert!(cluster.ping("n1", "n2", ASK).await.is_err());
    assert!(cluster.ping("n2", "n1", ASK).await.is_err());
    cluster
        .wait_until(crate::support::SETTLE, "packets both ways", |c| {
            let network = c.network();
            network.link_counters("n1", "n2").dropped > forth.dropped + 2
                && network.link_counters("n2", "n1").passed > back.passed + 2
        })
        .await?;
    let (forth_now, back_now) = (
        network.link_counters("n1", "n2"),
        network.link_counters("n2", "n1"),
    );
    assert_eq!(forth_now.passed, forth.passed, "n1 -> n2 must pass nothing");
    assert_eq!(back_now.dropped, back.dropped, "n2 -> n1 must drop nothing");

    cluster.heal();
    wait_reachable(&cluster, "n1", "n2").await?;
    wait_reachable(&cluster, "n2", "n1").await?;
    Ok(())
}
