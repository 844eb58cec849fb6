//! Hook points are per node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mesh::{HookAction, NodeConfig};
use testbed::Cluster;

use crate::support::{init_tracing, ping_all, TestResult, ASK};

const BEFORE_DELIVER: &str = "mesh.before_deliver";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_armed_on_one_node_fires_on_that_node_only() -> TestResult {
    init_tracing();
    // Heartbeats are asks too: spaced out so that none lands in the counted
    // window and the count is exactly this test's pings.
    let mut node = NodeConfig::default();
    node.membership.heartbeat_interval = Duration::from_secs(60);
    node.membership.stable_after = Duration::from_secs(600);
    let cluster = Cluster::builder().nodes(3).config(node).start().await?;
    ping_all(&cluster).await?;
    let fired = Arc::new(AtomicU64::new(0));
    let count = fired.clone();
    cluster.arm_hook(
        "n2",
        BEFORE_DELIVER,
        HookAction::Call(Arc::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
        })),
    );

    // Delivered on n1 and n3 (n2 only gets the replies, which are not deliveries).
    for to in ["n1", "n3"] {
        cluster.ping("n2", to, ASK).await?;
        cluster.ping("n1", "n3", ASK).await?;
    }
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    for from in ["n1", "n3", "n1"] {
        cluster.ping(from, "n2", ASK).await?;
    }
    assert_eq!(fired.load(Ordering::SeqCst), 3);
    assert_eq!(cluster.hooks("n2").fired(BEFORE_DELIVER), 3);
    for other in ["n1", "n3"] {
        assert_eq!(cluster.hooks(other).fired(BEFORE_DELIVER), 0);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_hook_kills_its_node_exactly_at_the_point() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder().nodes(2).start().await?;
    ping_all(&cluster).await?;
    cluster.arm_hook("n2", BEFORE_DELIVER, HookAction::Crash);
    assert!(cluster.ping("n1", "n2", ASK).await.is_err(), "n2 answered");
    assert!(cluster.node("n2").is_stopped());
    assert!(!cluster.node("n1").is_stopped());
    Ok(())
}
