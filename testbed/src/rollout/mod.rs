//! A rolling update of an in-process cluster under load: every node in
//! turn leaves gracefully and comes back as a new incarnation of a higher
//! app version, while clients on the other nodes keep asking.
//!
//! [`run`] starts `nodes` nodes of version `from` behind the testbed's
//! relays, hosts every shard of a [`Probe`] entity type, measures the
//! steady state, then rolls the nodes from the last to the first, as a
//! Kubernetes StatefulSet does: leave ([`Cluster::leave`]), restart with
//! version `to`, wait until the new incarnation is registered and has its
//! share of shards. Meanwhile it samples where every shard lives (the
//! coordinator's allocation, and what each leaving region runs) and
//! reports, besides latencies and failed asks, every break of the rules of
//! a rollout ([`Placements`]): a shard on a leaving region that no longer
//! ran it, a shard moved onto an older version than the newest hosting,
//! a shard back on an older version after it ran on a newer one.
//!
//! Both the `rollout-bench` binary and the rolling-update test run it.

mod clients;
mod placements;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use membership::AppVersion;
use serde::Serialize;
use sharding::{EntityRef, ShardingConfig};

use mesh::sync::lock;

use crate::load::{entity_per_shard, homes, node_of, start_probes, Ping, Probe};
use crate::Cluster;
use clients::{Clients, NodeSlot, Phase};
pub use placements::Placements;

/// What to roll and how to load it.
#[derive(Clone, Debug)]
pub struct RolloutSpec {
    /// Nodes in the cluster (`n1` ..).
    pub nodes: usize,
    /// Shards of the entity type (each hosts one entity the clients ask).
    pub shards: u32,
    /// Clients asking through each node.
    pub clients_per_node: usize,
    /// How long the steady state is measured before the rollout.
    pub steady: Duration,
    /// The version every node starts with.
    pub from: AppVersion,
    /// The version every node is rolled to.
    pub to: AppVersion,
    /// The timeout of one ask.
    pub ask_timeout: Duration,
    /// Give up on a step (a node's return, the warm-up) after this long.
    pub give_up: Duration,
}

impl Default for RolloutSpec {
    /// 5 nodes, 100 shards, 2 clients per node, 3 s of steady state,
    /// version 1.0.0 to 1.1.0, 5 s asks, 60 s per step.
    fn default() -> Self {
        Self {
            nodes: 5,
            shards: 100,
            clients_per_node: 2,
            steady: Duration::from_secs(3),
            from: AppVersion::new("1.0.0").expect("not empty"),
            to: AppVersion::new("1.1.0").expect("not empty"),
            ask_timeout: Duration::from_secs(5),
            give_up: Duration::from_secs(60),
        }
    }
}

/// What a rollout did.
#[derive(Clone, Debug, Serialize)]
pub struct RolloutReport {
    /// Nodes rolled.
    pub nodes: usize,
    /// Shards of the entity type.
    pub shards: u32,
    /// Asks answered.
    pub answered_asks: u64,
    /// Asks that failed through a node that was not rolling (target 0).
    pub failed_asks: u64,
    /// Asks that failed through a node that rolled meanwhile (its clients
    /// step aside; not counted as failed).
    pub set_aside_asks: u64,
    /// The first failed asks, verbatim.
    pub failures: Vec<String>,
    /// Ask latency before the rollout, p50 and p99, µs.
    pub steady_p50_us: u64,
    /// See `steady_p50_us`.
    pub steady_p99_us: u64,
    /// See `steady_p50_us` (p99.9).
    pub steady_p999_us: u64,
    /// Ask latency during the rollout, p50 and p99, µs.
    pub rollout_p50_us: u64,
    /// See `rollout_p50_us`.
    pub rollout_p99_us: u64,
    /// See `rollout_p50_us` (p99.9).
    pub rollout_p999_us: u64,
    /// `rollout_p99_us / steady_p99_us`.
    pub p99_ratio: f64,
    /// The highest ask latency during the rollout, µs.
    pub rollout_max_us: u64,
    /// The highest ask latency while each node rolled, µs.
    pub longest_ask_us_per_node: BTreeMap<String, u64>,
    /// From the first leave to the last node's return, ms.
    pub rollout_ms: u64,
    /// Each node's roll (leave, restart, its share of shards back), ms.
    pub per_node_ms: BTreeMap<String, u64>,
    /// Shard moves seen (a shard seen on a new home counts once per home).
    pub shards_moved: usize,
    /// Shards on a region of the new version at the end.
    pub shards_on_new_version: usize,
    /// Shards seen on a leaving region that no longer (or never) ran them
    /// (target: none).
    pub placed_on_leaving: Vec<String>,
    /// Shards moved onto a region older than the newest one hosting
    /// (target: none).
    pub moved_onto_older: Vec<String>,
    /// Shards seen on an older version after running on a newer one
    /// (target: none).
    pub downgraded: Vec<String>,
}

/// How often the shards' homes are sampled.
const SAMPLE: Duration = Duration::from_millis(20);

/// Rolls every node of a fresh cluster once under load (see the module
/// documentation).
pub async fn run(spec: &RolloutSpec) -> anyhow::Result<RolloutReport> {
    anyhow::ensure!(spec.nodes >= 2, "a rollout needs two nodes or more");
    anyhow::ensure!(spec.from < spec.to, "roll to a higher version");
    let config = ShardingConfig {
        number_of_shards: spec.shards,
        ..ShardingConfig::default()
    };
    let versions: Arc<Mutex<BTreeMap<String, AppVersion>>> = Arc::default();
    let mut builder = Cluster::builder().nodes(spec.nodes);
    for index in 1..=spec.nodes {
        let name = format!("n{index}");
        lock(&versions).insert(name.clone(), spec.from.clone());
        let (versions, node) = (versions.clone(), name.clone());
        builder = builder.configure(&name, move |config| {
            config.app_version = lock(&versions).get(&node).cloned();
        });
    }
    let cluster = builder.start().await?;
    let names = cluster.names();
    let placements = Arc::new(Mutex::new(Placements::default()));
    let mut shardings = BTreeMap::new();
    let mut slots = Vec::new();
    for name in &names {
        let (sharding, entities) = start_probes(&cluster, name, &config).await?;
        lock(&placements).version(&cluster.id(name).to_string(), spec.from.clone());
        shardings.insert(name.clone(), sharding);
        let slot = Arc::new(NodeSlot::default());
        slot.serve(entities.clone());
        slots.push((slot, entities));
    }
    let entities = Arc::new(entity_per_shard(spec.shards));
    warm_up(&cluster, &slots[0].1, &entities, spec).await?;

    let clients = Clients::start(
        &slots
            .iter()
            .map(|(slot, _)| slot.clone())
            .collect::<Vec<_>>(),
        spec.clients_per_node,
        &entities,
        spec.ask_timeout,
    )?;
    let watching = Arc::new(Mutex::new(Watched::default()));
    let watcher = tokio::spawn(watch(watching.clone(), placements.clone()));
    lock(&watching).via = slots.iter().map(|(_, e)| e.clone()).collect();
    clients.phase(Phase::Steady);
    tokio::time::sleep(spec.steady).await;

    clients.phase(Phase::Rolling);
    let rollout = Instant::now();
    let mut per_node_ms = BTreeMap::new();
    for (index, name) in names.iter().enumerate().rev() {
        let rolled = Instant::now();
        let (slot, old) = &slots[index];
        clients.rolling(index);
        slot.begin_roll();
        let region = cluster.id(name).to_string();
        let hosted: BTreeSet<u32> = old
            .region_state()
            .await?
            .shards
            .iter()
            .map(|s| s.shard)
            .collect();
        lock(&placements).leaving(&region, hosted);
        lock(&watching).leaving.insert(region.clone(), old.clone());
        cluster.leave(name).await;
        shardings.remove(name);
        lock(&watching).leaving.remove(&region);

        lock(&versions).insert(name.clone(), spec.to.clone());
        let node = cluster.restart(name).await?;
        lock(&placements).version(&node.id().to_string(), spec.to.clone());
        let (sharding, entities) = start_probes(&cluster, name, &config).await?;
        shardings.insert(name.clone(), sharding);
        let others: Vec<EntityRef<Probe>> = slots
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, (_, e))| e.clone())
            .collect();
        lock(&watching).via = others;
        wait_back(&cluster, &slots, index, &entities, spec).await?;
        slot.end_roll(entities.clone());
        slots[index].1 = entities;
        lock(&watching).via = slots.iter().map(|(_, e)| e.clone()).collect();
        per_node_ms.insert(name.clone(), rolled.elapsed().as_millis() as u64);
    }
    let rollout_ms = rollout.elapsed().as_millis() as u64;
    let outcome = clients.stop().await;
    lock(&watching).stop = true;
    watcher.await?;
    let final_homes = homes(&slots[0].1, spec.ask_timeout).await?;
    lock(&placements).allocation(&final_homes);
    for name in cluster.running() {
        cluster.node(&name).crash();
    }

    let placements = lock(&placements).clone();
    let shards_on_new_version = final_homes
        .values()
        .filter(|home| placements.version_of(home) == Some(&spec.to))
        .count();
    let quantile = |histogram: &Histogram<u64>, q: f64| histogram.value_at_quantile(q);
    let steady_p99_us = quantile(&outcome.steady, 0.99);
    let rollout_p99_us = quantile(&outcome.rolling, 0.99);
    Ok(RolloutReport {
        nodes: spec.nodes,
        shards: spec.shards,
        answered_asks: outcome.answered,
        failed_asks: outcome.failed,
        set_aside_asks: outcome.set_aside,
        failures: outcome.failures,
        steady_p50_us: quantile(&outcome.steady, 0.5),
        steady_p99_us,
        steady_p999_us: quantile(&outcome.steady, 0.999),
        rollout_p50_us: quantile(&outcome.rolling, 0.5),
        rollout_p99_us,
        rollout_p999_us: quantile(&outcome.rolling, 0.999),
        p99_ratio: rollout_p99_us as f64 / steady_p99_us.max(1) as f64,
        rollout_max_us: outcome.rolling.max(),
        longest_ask_us_per_node: outcome
            .longest_by_roll
            .iter()
            .map(|(index, us)| (names[*index].clone(), *us))
            .collect(),
        rollout_ms,
        per_node_ms,
        shards_moved: placements.moves(),
        shards_on_new_version,
        placed_on_leaving: placements.on_leaving().to_vec(),
        moved_onto_older: placements.onto_older().to_vec(),
        downgraded: placements.downgraded().to_vec(),
    })
}

/// Until every entity answered once and the shards are spread evenly.
async fn warm_up(
    cluster: &Cluster,
    via: &EntityRef<Probe>,
    entities: &[String],
    spec: &RolloutSpec,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + spec.give_up;
    for id in entities {
        while via.ask(id, Ping, spec.ask_timeout).await.is_err() {
            if Instant::now() >= deadline {
                anyhow::bail!("{id} never answered:\n{}", cluster.describe());
            }
        }
    }
    let share = spec.shards as usize / spec.nodes;
    let names = cluster.names();
    let what = "every shard hosted, every node with its share";
    cluster
        .wait_until_async(spec.give_up, what, |_| async {
            homes(via, spec.ask_timeout).await.is_ok_and(|homes| {
                homes.len() == spec.shards as usize
                    && names
                        .iter()
                        .all(|name| homes.values().filter(|h| node_of(h) == name).count() >= share)
            })
        })
        .await?;
    Ok(())
}

/// Until node `index`'s new incarnation is Up everywhere, its region is
/// registered, every shard is hosted and it has its share.
async fn wait_back(
    cluster: &Cluster,
    slots: &[(Arc<NodeSlot>, EntityRef<Probe>)],
    index: usize,
    entities: &EntityRef<Probe>,
    spec: &RolloutSpec,
) -> anyhow::Result<()> {
    let via = &slots[(index + 1) % slots.len()].1;
    let id = cluster.node(&cluster.names()[index]).id().to_string();
    let share = spec.shards as usize / spec.nodes;
    let what = format!("{id} back with its share of {} shards", spec.shards);
    cluster
        .wait_until_async(spec.give_up, &what, |_| async {
            let registered = entities
                .region_state()
                .await
                .is_ok_and(|view| view.registered);
            registered
                && homes(via, spec.ask_timeout).await.is_ok_and(|homes| {
                    homes.len() == spec.shards as usize
                        && homes.values().filter(|home| **home == id).count() >= share
                })
        })
        .await?;
    Ok(())
}

/// What the watcher samples.
#[derive(Default)]
struct Watched {
    /// Handles to ask the coordinator through (any that answers).
    via: Vec<EntityRef<Probe>>,
    /// Leaving region -> its handle (until it is gone).
    leaving: BTreeMap<String, EntityRef<Probe>>,
    stop: bool,
}

/// Samples the shards' homes every [`SAMPLE`] into `placements`.
async fn watch(watched: Arc<Mutex<Watched>>, placements: Arc<Mutex<Placements>>) {
    loop {
        let (via, leaving, stop) = {
            let watched = lock(&watched);
            (watched.via.clone(), watched.leaving.clone(), watched.stop)
        };
        if stop {
            return;
        }
        for (region, entities) in &leaving {
            if let Ok(view) = entities.region_state().await {
                let running: BTreeSet<u32> = view
                    .shards
                    .iter()
                    .filter(|row| row.status != "stopping")
                    .map(|row| row.shard)
                    .collect();
                lock(&placements).region(region, &running);
            }
        }
        for entities in &via {
            if let Ok(homes) = homes(entities, SAMPLE * 10).await {
                lock(&placements).allocation(&homes);
                break;
            }
        }
        tokio::time::sleep(SAMPLE).await;
    }
}
