//! Shared helpers of the cluster tests.

use std::time::Duration;

use testbed::Cluster;

/// What a test returns; errors print the harness's readable dump.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Timeout of one probe ask.
pub const ASK: Duration = Duration::from_millis(400);

/// Deadline of a condition that needs reconnects or gossip rounds.
pub const SETTLE: Duration = Duration::from_secs(15);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Pings every ordered pair of running nodes once, failing on the first error:
/// afterwards every pair has a connection.
pub async fn ping_all(cluster: &Cluster) -> TestResult {
    let names = cluster.running();
    for from in &names {
        for to in &names {
            if from != to {
                cluster
                    .ping(from, to, Duration::from_secs(5))
                    .await
                    .map_err(|e| format!("{from} -> {to}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Waits until `from` gets an answer from `to` within [`ASK`].
pub async fn wait_reachable(cluster: &Cluster, from: &str, to: &str) -> TestResult {
    let what = format!("{from} to reach {to}");
    cluster
        .wait_until_async(SETTLE, &what, |c| async move {
            c.ping(from, to, ASK).await.is_ok()
        })
        .await?;
    Ok(())
}
