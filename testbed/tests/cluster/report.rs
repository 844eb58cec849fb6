//! What a test gets back: the timeline and the failure dump.

use std::time::Duration;

use testbed::cluster::{Timeline, TimelineEvent};
use testbed::{Cluster, Direction};

use crate::support::{init_tracing, ping_all, TestResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_records_actions_and_reports_and_serializes_to_json() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(2).start().await?;
    ping_all(&cluster).await?;
    cluster.partition(&["n1"], &["n2"])?;
    cluster.blackhole("n2", "n1", Direction::OneWay)?;
    cluster.heal();
    cluster.note("about to crash n2");
    cluster.crash("n2");

    let timeline = cluster.timeline();
    let kinds: Vec<&str> = timeline
        .entries()
        .iter()
        .map(|e| match &e.event {
            TimelineEvent::Started { .. } => "started",
            TimelineEvent::Partition { .. } => "partition",
            TimelineEvent::Blackhole { .. } => "blackhole",
            TimelineEvent::Heal => "heal",
            TimelineEvent::Note { .. } => "note",
            TimelineEvent::Crashed => "crashed",
            TimelineEvent::MemberLive { .. } => "member_live",
            TimelineEvent::ConnectionUp { .. } => "connection_up",
            _ => "other",
        })
        .collect();
    for kind in [
        "started",
        "member_live",
        "connection_up",
        "partition",
        "blackhole",
        "heal",
        "note",
        "crashed",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in\n{timeline}");
    }
    let at: Vec<u64> = timeline.entries().iter().map(|e| e.at_ms).collect();
    assert!(
        at.windows(2).all(|w| w[0] <= w[1]),
        "out of order:\n{timeline}"
    );
    // Each node reports that it sees the other.
    for (node, other) in [("n1", "n2"), ("n2", "n1")] {
        assert!(timeline.entries().iter().any(|e| e.node.as_deref() == Some(node)
            && matches!(&e.event, TimelineEvent::MemberLive { member } if member.starts_with(other))));
    }

    let json = serde_json::to_string(&timeline)?;
    let value: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(value, timeline.to_json());
    let first = &value[0];
    assert_eq!(first["node"], "n1");
    assert_eq!(first["event"]["kind"], "started");
    assert!(first["at_ms"].is_u64());
    let back: Timeline = serde_json::from_str(&json)?;
    assert_eq!(back, timeline);
    assert!(timeline.to_string().contains("harness        partition"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_wait_explains_what_every_node_saw() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(2).start().await?;
    cluster.partition(&["n1"], &["n2"])?;
    let failure = cluster
        .wait_until(Duration::from_millis(100), "the impossible", |_| false)
        .await
        .expect_err("nothing satisfies the impossible");
    let text = format!("{failure:?}");
    println!("{text}");
    for expected in [
        "timed out after 100ms waiting for the impossible",
        "n1     running",
        "n2     running",
        "gossip members: ",
        "connected to:",
        "proxy rules that are not pass:",
        "n1 -> n2: drop",
        "n2 -> n1: drop",
        "link counters (packets):",
        "harness        partition [\"n1\"] | [\"n2\"]",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    Ok(())
}
