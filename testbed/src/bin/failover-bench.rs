//! `failover-bench`: how long sharding takes to serve again after a fault,
//! on real nodes behind the testbed's relays.
//!
//! Kinds (each on a fresh 3-node cluster, every entity touched first):
//! - `coordinator_crash`: the coordinator's node crashes; until every entity
//!   answers through both survivors.
//! - `region_crash`: another node crashes; same measure.
//! - `partition`: one non-coordinator node is cut from the other two; until
//!   every entity answers on the majority side.
//! - `daemon_respawn`: the node of daemon worker 0 crashes; until the worker
//!   runs on another node.
//!
//! Profiles: `default` (the documented defaults) and `fast` (shorter
//! heartbeat pause, downing delay and lease). `--json` prints one object:
//! per profile and kind, every run's milliseconds, the median and the max.
//! Build with `--release`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use mesh::NodeConfig;
use sharding::{EntityRef, Sharding, ShardingConfig};
use testbed::load::{probe_type, Ping, Probe};
use testbed::Cluster;

const ENTITIES: u64 = 50;
const GIVE_UP: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(about = "Sharding recovery times after crashes and partitions")]
struct Args {
    /// Runs per kind and profile (median and max are reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only this profile (`default` or `fast`).
    #[arg(long)]
    profile: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    CoordinatorCrash,
    RegionCrash,
    Partition,
    DaemonRespawn,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::CoordinatorCrash,
        Kind::RegionCrash,
        Kind::Partition,
        Kind::DaemonRespawn,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::CoordinatorCrash => "coordinator_crash",
            Kind::RegionCrash => "region_crash",
            Kind::Partition => "partition",
            Kind::DaemonRespawn => "daemon_respawn",
        }
    }
}

struct Profile {
    name: &'static str,
    node: NodeConfig,
    sharding: ShardingConfig,
}

fn profiles() -> Vec<Profile> {
    let mut fast_node = NodeConfig::default();
    fast_node.membership.heartbeat_interval = Duration::from_millis(100);
    fast_node.membership.acceptable_heartbeat_pause = Duration::from_millis(400);
    fast_node.membership.stable_after = Duration::from_millis(700);
    vec![
        Profile {
            name: "default",
            node: NodeConfig::default(),
            sharding: ShardingConfig::default(),
        },
        Profile {
            name: "fast",
            node: fast_node,
            sharding: ShardingConfig::fast(),
        },
    ]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut out = serde_json::Map::new();
    for profile in profiles() {
        if args.profile.as_deref().is_some_and(|p| p != profile.name) {
            continue;
        }
        let mut kinds = serde_json::Map::new();
        for kind in Kind::ALL {
            let mut runs = Vec::new();
            for _ in 0..args.runs {
                let took = runtime.block_on(run(kind, &profile))?;
                runs.push(took.as_millis() as u64);
                if !args.json {
                    println!("{} {}: {} ms", profile.name, kind.name(), took.as_millis());
                }
            }
            let mut sorted = runs.clone();
            sorted.sort_unstable();
            kinds.insert(
                kind.name().into(),
                serde_json::json!({
                    "runs_ms": runs,
                    "median_ms": sorted[sorted.len() / 2],
                    "max_ms": sorted[sorted.len() - 1],
                }),
            );
        }
        out.insert(profile.name.into(), kinds.into());
    }
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}

/// One run: a fresh cluster, the fault, the time until service is back.
async fn run(kind: Kind, profile: &Profile) -> anyhow::Result<Duration> {
    let cluster = Cluster::builder()
        .nodes(3)
        .config(profile.node.clone())
        .start()
        .await?;
    let mut refs = BTreeMap::new();
    let mut keep = Vec::new();
    let workers: Arc<Mutex<BTreeMap<usize, String>>> = Arc::default();
    for name in cluster.names() {
        let sharding = Sharding::start(&cluster.node(&name), profile.sharding.clone()).await?;
        refs.insert(name.clone(), sharding.init(probe_type())?);
        if kind == Kind::DaemonRespawn {
            let workers = workers.clone();
            let node = name.clone();
            sharding.daemon("worker", 3, move |ctx| {
                workers.lock().unwrap().insert(ctx.index, node.clone());
                std::future::pending::<()>()
            })?;
        }
        keep.push(sharding);
    }
    let all: Vec<&str> = vec!["n1", "n2", "n3"];
    wait_registered(&refs["n2"], 3).await?;
    every_entity_answers(&refs, &all, Instant::now() + GIVE_UP).await?;
    let victim = match kind {
        Kind::CoordinatorCrash => "n1".to_string(),
        Kind::RegionCrash | Kind::Partition => "n3".to_string(),
        Kind::DaemonRespawn => {
            let deadline = Instant::now() + GIVE_UP;
            while workers.lock().unwrap().len() < 3 {
                anyhow::ensure!(Instant::now() < deadline, "daemon workers never started");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let host = workers.lock().unwrap()[&0].clone();
            host
        }
    };
    let victim = victim.as_str();
    let survivors: Vec<&str> = all.iter().copied().filter(|n| *n != victim).collect();
    let fault = Instant::now();
    match kind {
        Kind::Partition => cluster.partition(&[victim], &survivors)?,
        _ => cluster.crash(victim),
    }
    let deadline = fault + GIVE_UP;
    match kind {
        Kind::DaemonRespawn => loop {
            if workers.lock().unwrap().get(&0).is_some_and(|n| n != victim) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "worker 0 never restarted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        },
        _ => every_entity_answers(&refs, &survivors, deadline).await?,
    }
    let took = fault.elapsed();
    for name in cluster.running() {
        cluster.node(&name).crash();
    }
    Ok(took)
}

async fn wait_registered(via: &EntityRef<Probe>, regions: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        let view = via
            .coordinator_state(Duration::from_secs(1))
            .await
            .ok()
            .flatten();
        if view.is_some_and(|v| v.regions.len() == regions) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "regions never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until every entity answers through every node in `via` within a
/// short timeout each.
async fn every_entity_answers(
    refs: &BTreeMap<String, EntityRef<Probe>>,
    via: &[&str],
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let mut all = true;
        'check: for name in via {
            for i in 0..ENTITIES {
                let id = format!("e-{i}");
                if refs[*name]
                    .ask(&id, Ping, Duration::from_millis(200))
                    .await
                    .is_err()
                {
                    all = false;
                    break 'check;
                }
            }
        }
        if all {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "service did not come back");
    }
}
