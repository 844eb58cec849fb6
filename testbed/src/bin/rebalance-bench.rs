//! `rebalance-bench`: how fast, and how cleanly, shards move to nodes that
//! join a loaded cluster, on real nodes behind the testbed's relays.
//!
//! Kinds (each on a fresh 3-node cluster whose shards are all hosted, with
//! clients asking every shard's entity from every node throughout):
//! - `one_joins`: a fourth node joins; until it hosts its fair share
//!   (`shards / 4`).
//! - `two_join`: a fourth and a fifth node join at once; until each hosts
//!   `shards / 5`.
//!
//! Reported per kind and shard count: the time to the fair share, the
//! shards that moved (and the minimum that had to), the shards that moved
//! more than once, failed asks, and the ask p99 during the move against
//! the p99 of the steady state just before it (same run). Homes are sampled
//! from the coordinator every 20 ms, so a shard that moved twice within one
//! sample would be missed. `--json` prints one object. Build with
//! `--release`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use serde::Serialize;
use sharding::{EntityRef, ShardingConfig};
use testbed::load::{entity_per_shard, homes, node_of, start_probes, Ping, Probe};
use testbed::Cluster;

const GIVE_UP: Duration = Duration::from_secs(120);
const ASK: Duration = Duration::from_secs(2);

#[derive(Parser)]
#[command(about = "Time and moves until nodes that join get their share of shards")]
struct Args {
    /// Runs per kind and shard count (the median run is reported, with all).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Shard counts, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    shards: Vec<u32>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy)]
enum Kind {
    OneJoins,
    TwoJoin,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::OneJoins => "one_joins",
            Kind::TwoJoin => "two_join",
        }
    }

    fn joiners(self) -> &'static [&'static str] {
        match self {
            Kind::OneJoins => &["n4"],
            Kind::TwoJoin => &["n4", "n5"],
        }
    }
}

#[derive(Debug, Serialize)]
struct Run {
    fair_share_ms: u64,
    moved: usize,
    minimum_moves: usize,
    moved_twice: usize,
    failed_asks: u64,
    asks: u64,
    steady_p99_us: u64,
    moving_p99_us: u64,
    p99_ratio: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out = serde_json::Map::new();
    for kind in [Kind::OneJoins, Kind::TwoJoin] {
        let mut by_shards = serde_json::Map::new();
        for &shards in &args.shards {
            let mut runs = Vec::new();
            for _ in 0..args.runs {
                let run = runtime.block_on(run(kind, shards))?;
                if !args.json {
                    println!("{} {shards} shards: {run:?}", kind.name());
                }
                runs.push(run);
            }
            runs.sort_by_key(|r| r.fair_share_ms);
            let median = serde_json::to_value(&runs[runs.len() / 2])?;
            by_shards.insert(
                shards.to_string(),
                serde_json::json!({ "median_run": median, "runs": runs }),
            );
        }
        out.insert(kind.name().into(), by_shards.into());
    }
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}

/// What the clients saw: latencies before and during the move, failures.
struct Load {
    stop: Arc<AtomicBool>,
    moving: Arc<AtomicBool>,
    steady: Arc<Mutex<Histogram<u64>>>,
    during: Arc<Mutex<Histogram<u64>>>,
    failed: Arc<AtomicU64>,
    asks: Arc<AtomicU64>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(refs: &[EntityRef<Probe>], entities: &Arc<Vec<String>>) -> anyhow::Result<Self> {
        let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
        let mut load = Self {
            stop: Arc::default(),
            moving: Arc::default(),
            steady: Arc::new(Mutex::new(histogram()?)),
            during: Arc::new(Mutex::new(histogram()?)),
            failed: Arc::default(),
            asks: Arc::default(),
            clients: Vec::new(),
        };
        for (client, entity_ref) in refs.iter().enumerate() {
            let (entity_ref, entities) = (entity_ref.clone(), entities.clone());
            let (stop, moving) = (load.stop.clone(), load.moving.clone());
            let (steady, during) = (load.steady.clone(), load.during.clone());
            let (failed, asks) = (load.failed.clone(), load.asks.clone());
            load.clients.push(tokio::spawn(async move {
                let mut next = client * 7;
                while !stop.load(Ordering::Relaxed) {
                    let id = &entities[next % entities.len()];
                    next += 1;
                    let start = Instant::now();
                    let answered = entity_ref.ask(id, Ping, ASK).await.is_ok();
                    let micros = start.elapsed().as_micros() as u64;
                    asks.fetch_add(1, Ordering::Relaxed);
                    if !answered {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    let histogram = if moving.load(Ordering::Relaxed) {
                        &during
                    } else {
                        &steady
                    };
                    let _ = histogram.lock().unwrap().record(micros.max(1));
                }
            }));
        }
        Ok(load)
    }

    async fn stop(self) -> (u64, u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            let _ = client.await;
        }
        let steady = self.steady.lock().unwrap().value_at_quantile(0.99);
        let during = self.during.lock().unwrap().value_at_quantile(0.99);
        (
            self.failed.load(Ordering::Relaxed),
            self.asks.load(Ordering::Relaxed),
            steady,
            during,
        )
    }
}

/// One run: a fresh loaded cluster, the joins, the moves until fair shares.
async fn run(kind: Kind, shards: u32) -> anyhow::Result<Run> {
    let config = ShardingConfig {
        number_of_shards: shards,
        ..ShardingConfig::default()
    };
    let cluster = Cluster::builder().nodes(3).start().await?;
    let mut keep = Vec::new();
    let mut refs = Vec::new();
    for name in cluster.names() {
        let (sharding, probes) = start_probes(&cluster, &name, &config).await?;
        keep.push(sharding);
        refs.push(probes);
    }
    let coordinator = refs[0].clone();
    let entities = Arc::new(entity_per_shard(shards));
    let deadline = Instant::now() + GIVE_UP;
    for id in entities.iter() {
        while refs[0].ask(id, Ping, ASK).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "{id} never answered");
        }
    }
    let load = Load::start(&refs, &entities)?;
    // The steady state's p99 before anything moves.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = homes(&coordinator, ASK).await?;
    anyhow::ensure!(before.len() == shards as usize, "not every shard is hosted");
    load.moving.store(true, Ordering::Relaxed);
    let joined = Instant::now();
    for name in kind.joiners() {
        cluster.add_node(name).await?;
        let (sharding, _) = start_probes(&cluster, name, &config).await?;
        keep.push(sharding);
    }
    let regions = 3 + kind.joiners().len();
    let share = shards as usize / regions;
    let mut history: BTreeMap<u32, Vec<String>> = before
        .iter()
        .map(|(shard, home)| (*shard, vec![home.clone()]))
        .collect();
    let fair_share = loop {
        let now = homes(&coordinator, ASK).await?;
        for (shard, home) in &now {
            let seen = history.entry(*shard).or_default();
            if seen.last() != Some(home) {
                seen.push(home.clone());
            }
        }
        let done = kind
            .joiners()
            .iter()
            .all(|name| now.values().filter(|home| node_of(home) == *name).count() >= share);
        if done {
            break joined.elapsed();
        }
        anyhow::ensure!(
            joined.elapsed() < GIVE_UP,
            "the joiners never got their share"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (failed_asks, asks, steady, during) = load.stop().await;
    for name in cluster.running() {
        cluster.node(&name).crash();
    }
    Ok(Run {
        fair_share_ms: fair_share.as_millis() as u64,
        moved: history.values().filter(|homes| homes.len() > 1).count(),
        minimum_moves: share * kind.joiners().len(),
        moved_twice: history.values().filter(|homes| homes.len() > 2).count(),
        failed_asks,
        asks,
        steady_p99_us: steady,
        moving_p99_us: during,
        p99_ratio: during as f64 / steady.max(1) as f64,
    })
}
