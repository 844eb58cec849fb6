//! Issue 17: a rolling update of five nodes under continuous asks. Each
//! node in turn leaves gracefully and comes back as a new incarnation of a
//! higher app version; no ask through the other nodes fails, no shard ever
//! lands on a leaving node or back on the old version, and at the end every
//! shard lives on the new version.

use std::time::Duration;

use testbed::rollout::{self, RolloutSpec};

use crate::support::{init_tracing, TestResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_every_node_to_a_new_version_fails_no_ask_and_moves_shards_forward_only(
) -> TestResult {
    init_tracing();
    let spec = RolloutSpec {
        shards: 50,
        steady: Duration::from_secs(1),
        give_up: Duration::from_secs(20),
        ..RolloutSpec::default()
    };
    let report = rollout::run(&spec).await?;
    let shown = serde_json::to_string_pretty(&report)?;
    assert!(report.answered_asks > 0, "no ask answered: {shown}");
    assert_eq!(report.failed_asks, 0, "failed asks: {shown}");
    assert!(
        report.placed_on_leaving.is_empty(),
        "shards on leaving nodes: {shown}"
    );
    assert!(
        report.moved_onto_older.is_empty(),
        "shards moved onto the old version: {shown}"
    );
    assert!(report.downgraded.is_empty(), "shards moved back: {shown}");
    assert_eq!(
        report.shards_on_new_version, 50,
        "not every shard on the new version: {shown}"
    );
    eprintln!("rollout: {shown}");
    Ok(())
}
