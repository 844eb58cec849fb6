//! Membership through the proxy: crashes and partitions end in the same,
//! deterministic Down decisions on every surviving node.

use std::time::Duration;

use membership::MemberStatus;
use testbed::Cluster;

use crate::support::{init_tracing, TestResult};

/// Long enough for detection (~1.2 s), `stable_after` (2 s) and gossip, with room for a busy machine.
const DOWNING: Duration = Duration::from_secs(20);

/// The status `observer` holds for the current incarnation of `name`.
fn status_seen_by(cluster: &Cluster, observer: &str, name: &str) -> Option<MemberStatus> {
    let id = cluster.id(name);
    cluster
        .node(observer)
        .cluster_members()
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| m.status)
}

/// Whether every observer sees each of `down` as Down and each of `up` as Up.
fn verdict(cluster: &Cluster, observers: &[&str], down: &[&str], up: &[&str]) -> bool {
    observers.iter().all(|o| {
        down.iter()
            .all(|n| status_seen_by(cluster, o, n) == Some(MemberStatus::Down))
            && up
                .iter()
                .all(|n| status_seen_by(cluster, o, n) == Some(MemberStatus::Up))
    })
}

fn all_up(cluster: &Cluster) -> bool {
    let names = cluster.running();
    names.iter().all(|observer| {
        names
            .iter()
            .all(|n| status_seen_by(cluster, observer, n) == Some(MemberStatus::Up))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_is_down_on_every_survivor() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    cluster
        .wait_until(DOWNING, "every member Up everywhere", all_up)
        .await?;
    cluster.crash("n2");
    cluster
        .wait_until(DOWNING, "n2 Down on n1 and n3", |c| {
            verdict(c, &["n1", "n3"], &["n2"], &["n1", "n3"])
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_three_split_downs_the_minority_and_the_majority_goes_on() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(5).start().await?;
    cluster
        .wait_until(DOWNING, "every member Up everywhere", all_up)
        .await?;

    cluster.partition(&["n1", "n2"], &["n3", "n4", "n5"])?;
    cluster
        .wait_until(
            DOWNING,
            "the majority downs n1 and n2, the minority stops",
            |c| {
                let majority = ["n3", "n4", "n5"];
                let majority_decided = verdict(c, &majority, &["n1", "n2"], &majority);
                let minority_stopped = ["n1", "n2"].iter().all(|n| c.node(n).is_stopped());
                majority_decided && minority_stopped
            },
        )
        .await?;
    // The majority still works as a cluster.
    cluster.ping("n3", "n5", Duration::from_secs(2)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_partition_in_five_nodes_downs_the_cut_pair_deterministically() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(5).start().await?;
    cluster
        .wait_until(DOWNING, "every member Up everywhere", all_up)
        .await?;

    // n1 and n2 cannot reach each other; both still reach n3..n5. As in
    // Akka's resolver, both ends of the cut link are indirectly connected
    // and are downed; the three fully connected nodes stay Up.
    cluster.partition(&["n1"], &["n2"])?;
    cluster
        .wait_until(DOWNING, "n1 and n2 Down on n3, n4 and n5", |c| {
            let rest = ["n3", "n4", "n5"];
            verdict(c, &rest, &["n1", "n2"], &rest)
        })
        .await?;
    Ok(())
}
