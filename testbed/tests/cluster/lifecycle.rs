//! Crash, restart with a new generation, and graceful leave.

use testbed::cluster::NodeState;
use testbed::Cluster;

use crate::support::{init_tracing, ping_all, TestResult, ASK, SETTLE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_restarts_with_a_new_generation_and_answers_again() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    ping_all(&cluster).await?;
    let old = cluster.id("n3");
    let advertised = cluster.advertise_addr("n3");

    cluster.crash("n3");
    assert_eq!(cluster.state("n3"), NodeState::Crashed);
    assert!(cluster.node("n3").is_stopped());
    assert!(cluster.ping("n1", "n3", ASK).await.is_err());

    let new = cluster.restart("n3").await?.id().clone();
    assert!(
        new.generation > old.generation,
        "{new} is not younger than {old}"
    );
    assert_eq!(cluster.node("n3").advertise_addr(), advertised);
    cluster
        .wait_until(SETTLE, "n1 and n2 to see the new n3", |c| {
            ["n1", "n2"]
                .iter()
                .all(|n| c.node(n).members().iter().any(|m| m.id == new))
        })
        .await?;
    for from in ["n1", "n2"] {
        let answered = cluster
            .wait_until_async(SETTLE, "the new n3 to answer", |c| async move {
                c.ping(from, "n3", ASK).await.is_ok()
            })
            .await;
        answered?;
        assert_eq!(cluster.ping(from, "n3", ASK).await?, new);
    }
    cluster
        .wait_until(
            SETTLE,
            "the old n3 gone from every view",
            Cluster::converged,
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_stops_and_the_others_carry_on() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(3).start().await?;
    let n2 = cluster.id("n2");
    let mut events = cluster.node("n1").member_events();
    cluster.leave("n2").await;
    assert_eq!(cluster.state("n2"), NodeState::Left);
    assert_eq!(cluster.running(), ["n1", "n3"]);
    assert!(cluster.node("n2").is_stopped());
    cluster
        .wait_until(SETTLE, "n2 removed on n1 and n3", |c| {
            ["n1", "n3"]
                .iter()
                .all(|o| c.node(o).cluster_members().iter().all(|m| m.id != n2))
        })
        .await?;
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(&event, mesh::MemberEvent::MemberDowned(m) if m.id == n2),
            "a graceful leave must not down the node: {event:?}"
        );
    }
    cluster.ping("n1", "n3", ASK).await?;
    cluster.ping("n3", "n1", ASK).await?;
    Ok(())
}
