//! `rollout-bench`: a rolling update of a loaded cluster, on real nodes
//! behind the testbed's relays ([`testbed::rollout`]).
//!
//! A fresh cluster (default 5 nodes) of app version 1.0.0 hosts every
//! shard of an entity type; clients ask every shard's entity through every
//! node. After the steady state (default 3 s), each node in turn, from the
//! last to the first, leaves gracefully and comes back as a new incarnation
//! of version 1.1.0; the next one starts once it is back with its share of
//! shards. Clients of a rolling node step aside meanwhile.
//!
//! Reported per run: failed asks through nodes that were not rolling
//! (target 0), ask p50/p99 in the steady state and during the rollout and
//! the p99 ratio, the rollout's total and per-node times, the shard moves
//! seen, the shards on the new version at the end, and every shard seen on
//! a leaving node, moved onto the old version while the new one hosted, or
//! back on the old version after the new one (targets: none). Homes are
//! sampled every 20 ms. `--json` prints one object. Build with `--release`.

use std::time::Duration;

use clap::Parser;
use testbed::rollout::{self, RolloutReport, RolloutSpec};

#[derive(Parser)]
#[command(about = "Failed asks and ask latency while every node rolls to a new version")]
struct Args {
    /// Runs (each on a fresh cluster).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Shards (one entity each, all asked in turn).
    #[arg(long, default_value_t = 100)]
    shards: u32,
    /// Clients asking through each node.
    #[arg(long, default_value_t = 2)]
    clients_per_node: usize,
    /// Seconds of steady state measured before the rollout.
    #[arg(long, default_value_t = 3)]
    steady_secs: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let spec = RolloutSpec {
        nodes: args.nodes,
        shards: args.shards,
        clients_per_node: args.clients_per_node,
        steady: Duration::from_secs(args.steady_secs),
        ..RolloutSpec::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut runs: Vec<RolloutReport> = Vec::new();
    for _ in 0..args.runs {
        let run = runtime.block_on(rollout::run(&spec))?;
        if !args.json {
            println!(
                "rolled {} nodes, {} shards in {} ms: {} failed asks of {}, p99 {} us steady, {} us rolling ({:.2}x), {} moves, {} of {} shards on {}, {} on leaving nodes, {} onto the old version, {} back on it",
                run.nodes,
                run.shards,
                run.rollout_ms,
                run.failed_asks,
                run.answered_asks + run.failed_asks,
                run.steady_p99_us,
                run.rollout_p99_us,
                run.p99_ratio,
                run.shards_moved,
                run.shards_on_new_version,
                run.shards,
                spec.to,
                run.placed_on_leaving.len(),
                run.moved_onto_older.len(),
                run.downgraded.len(),
            );
        }
        runs.push(run);
    }
    if args.json {
        let out = serde_json::json!({
            "nodes": spec.nodes,
            "shards": spec.shards,
            "clients_per_node": spec.clients_per_node,
            "steady_ms": spec.steady.as_millis() as u64,
            "from": spec.from.to_string(),
            "to": spec.to.to_string(),
            "runs": runs,
        });
        println!("{out}");
    }
    Ok(())
}
