//! Gossip under heavy packet loss.

use std::time::Duration;

use testbed::Cluster;

use crate::support::{init_tracing, TestResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_loss_on_every_link_still_lets_gossip_converge() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).seed(30).start().await?;
    let names = cluster.names();
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            cluster.loss(a, b, 0.3)?;
        }
    }
    // A new incarnation of n3 has to dial, handshake and gossip through it.
    let old = cluster.id("n3");
    let new = cluster.restart("n3").await?.id().clone();
    cluster
        .wait_until(
            Duration::from_secs(40),
            "every node to see exactly n1, n2 and the new n3 under 30% loss",
            Cluster::converged,
        )
        .await?;
    assert!(new.generation > old.generation);
    let lost: u64 = cluster
        .network()
        .counters()
        .values()
        .map(|c| c.dropped)
        .sum();
    assert!(lost > 0, "the loss rule dropped nothing");
    Ok(())
}
