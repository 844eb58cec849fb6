//! `testbed run`: one experiment, from certificates to verdict.
//!
//! 1. A fresh CA and a certificate per node (`mesh::tls`), a relay of the
//!    in-process fault proxy per node, a settings file per node.
//! 2. The initial nodes (`testbed node` processes) start, `n1` first and
//!    alone until it answers (so it is the oldest member and hosts the
//!    coordinator); the run waits, with a deadline, until every node sees
//!    every other Up and knows the coordinator, or fails with every node's
//!    view.
//! 3. The workload starts: `clients_per_node` clients per node, each over
//!    HTTP to its own node. The faults are applied at their times; every
//!    node's admin API is sampled every 250 ms; a node that exits because
//!    it was downed is restarted after a second (as an orchestrator
//!    would, unless the scenario says otherwise).
//! 4. After `duration` the clients stop, the nodes leave, and the history,
//!    the store and the samples go to the checker and into `history.jsonl`,
//!    `report.json` and `report.html` in the output directory.

mod http;
mod nodes;
mod observe;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

use self::http::HttpClient;
use self::nodes::{free_port, write_config, Launch, NodeProcess, NodeSpec};
pub use self::observe::{MemberSeen, Sample};
use self::workload::{Client, Recorder};
use super::checker::{check, CheckSettings, Verdict};
use super::demo::EXIT_DOWNED;
use super::history::{write_jsonl, Event};
use super::report;
use super::scenario::{FaultAction, Scenario, COORDINATOR};
use super::store::read_dir;
use super::ExperimentError;
use crate::proxy::{LinkRule, ProxyNetwork};

/// Why a run could not produce a verdict.
#[derive(Debug, Error)]
pub enum RunError {
    /// Something in the environment: ports, executables, certificates.
    #[error("{0}")]
    Setup(String),
    /// The cluster did not form in time; every node's view.
    #[error("the cluster did not converge within {0:?}: {1}")]
    NotReady(Duration, String),
    /// Reading or writing the run's files.
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
}

impl RunError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        RunError::Experiment(ExperimentError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Output directory (created; default `runs/NAME-SEED-UNIXTIME`).
    pub out: Option<PathBuf>,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// The `testbed` executable that runs `testbed node`.
    pub exe: PathBuf,
    /// Print a progress line every second on stderr.
    pub progress: bool,
    /// Longest wait for the cluster to form.
    pub ready_timeout: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Where the files are.
    pub dir: PathBuf,
    /// The checker's verdict.
    pub verdict: Verdict,
}

/// One fault as it happened, for the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpan {
    /// Applied at (ns since the start).
    pub start: u64,
    /// Undone at, if it was.
    pub end: Option<u64>,
    /// What.
    pub text: String,
    /// The nodes it touched (selectors resolved).
    pub nodes: Vec<String>,
}

/// A change of a node's process, for the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// When (ns since the start).
    pub time: u64,
    /// The node.
    pub node: String,
    /// `started`, `paused`, `resumed`, `killed`, `stopping`, `exited N`.
    pub what: String,
}

/// A shard that changed home in the coordinator's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMove {
    /// When it was first seen at its new home (ns).
    pub time: u64,
    /// The shard.
    pub shard: u32,
    /// Old home (`name#generation`).
    pub from: String,
    /// New home.
    pub to: String,
}

/// Everything a run recorded besides the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The scenario's name.
    pub scenario: String,
    /// What it shows.
    pub description: String,
    /// The seed used.
    pub seed: u64,
    /// Every node, in start order.
    pub nodes: Vec<String>,
    /// When the workload started (ns since the start).
    pub workload_start: u64,
    /// When it stopped.
    pub workload_end: u64,
    /// The last fault event.
    pub last_heal: Option<u64>,
    /// The faults.
    pub faults: Vec<FaultSpan>,
    /// The nodes' processes.
    pub node_events: Vec<NodeEvent>,
    /// Shard moves seen in the coordinators' tables.
    pub shard_moves: Vec<ShardMove>,
    /// Every sample of every node.
    pub samples: Vec<Sample>,
}

/// State shared by the run's tasks.
struct Shared {
    start: Instant,
    launch: Launch,
    seeds: Vec<SocketAddr>,
    network: ProxyNetwork,
    nodes: tokio::sync::Mutex<BTreeMap<String, NodeProcess>>,
    started: Mutex<BTreeSet<String>>,
    faults: Mutex<Vec<FaultSpan>>,
    node_events: Mutex<Vec<NodeEvent>>,
    samples: Mutex<Vec<Sample>>,
    active: Mutex<Vec<String>>,
    restart_downed: bool,
}

use mesh::sync::lock;

impl Shared {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn node_event(&self, node: &str, what: impl Into<String>) {
        let event = NodeEvent {
            time: self.now(),
            node: node.to_string(),
            what: what.into(),
        };
        lock(&self.node_events).push(event);
    }

    /// Signals a node's process and records `what` if it was sent.
    async fn signal(&self, node: &str, signal: libc::c_int, what: &str) -> bool {
        let sent = self
            .nodes
            .lock()
            .await
            .get_mut(node)
            .is_some_and(|n| n.signal(signal));
        if sent {
            self.node_event(node, what);
        }
        sent
    }

    async fn start_node(&self, name: &str) -> Result<(), RunError> {
        self.start_node_as(name, false).await
    }

    /// Starts `name`, as the node that bootstraps the cluster or not (see
    /// [`nodes::NodeProcess::start`]).
    async fn start_node_as(&self, name: &str, bootstrap: bool) -> Result<(), RunError> {
        let mut nodes = self.nodes.lock().await;
        let Some(node) = nodes.get_mut(name) else {
            return Err(RunError::Setup(format!("no node {name}")));
        };
        if node.is_running() {
            return Ok(());
        }
        node.start(&self.launch, &self.seeds, bootstrap)?;
        lock(&self.started).insert(name.to_string());
        self.node_event(name, "started");
        Ok(())
    }

    /// The node hosting the coordinator, as the first answering node says.
    async fn coordinator(&self) -> Option<String> {
        let samples = lock(&self.samples);
        samples
            .iter()
            .rev()
            .find_map(|s| s.coordinator.clone())
            .and_then(|c| c.split('#').next().map(str::to_string))
    }
}

/// Runs `scenario`.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> Result<RunOutcome, RunError> {
    let seed = options.seed.or(scenario.seed).unwrap_or(1);
    let dir = match &options.out {
        Some(dir) => dir.clone(),
        None => PathBuf::from("runs").join(format!(
            "{}-{seed}-{}",
            scenario.name,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default()
        )),
    };
    let store = dir.join("store");
    let certs = dir.join("certs");
    let logs = dir.join("logs");
    for sub in [&store, &certs, &logs] {
        std::fs::create_dir_all(sub).map_err(|source| RunError::io(sub, source))?;
    }
    if std::fs::read_dir(&store)
        .map_err(|source| RunError::io(&store, source))?
        .next()
        .is_some()
    {
        return Err(RunError::Setup(format!(
            "{} holds a previous run's store; choose an empty --out",
            dir.display()
        )));
    }
    let names = scenario.all_nodes();
    mesh::tls::write_cluster_dir(&certs, "experiment", &names)
        .map_err(|error| RunError::Setup(format!("cannot make certificates: {error}")))?;

    let network = ProxyNetwork::new(seed);
    let mut processes = BTreeMap::new();
    let mut relays = Vec::new();
    let mut seeds = Vec::new();
    let initial = scenario.initial_nodes();
    for name in &names {
        let listen = free_port(true)?;
        let http = free_port(false)?;
        let relay = network
            .spawn_relay(name, listen)
            .await
            .map_err(|error| RunError::Setup(format!("relay of {name}: {error}")))?;
        let config = dir.join(format!("{name}.toml"));
        write_config(&config, &scenario.node_config(name))?;
        if initial.contains(name) {
            seeds.push(relay.public_addr());
        }
        processes.insert(
            name.clone(),
            NodeProcess::new(NodeSpec {
                name: name.clone(),
                listen,
                advertise: relay.public_addr(),
                http,
                config,
                log: logs.join(format!("{name}.log")),
            }),
        );
        relays.push(relay);
    }
    let targets: Vec<(String, SocketAddr)> = processes
        .iter()
        .map(|(name, p)| (name.clone(), p.spec.http))
        .collect();
    let shared = Arc::new(Shared {
        start: Instant::now(),
        launch: Launch {
            exe: options.exe.clone(),
            tls_dir: certs.clone(),
            store: store.clone(),
        },
        seeds,
        network: network.clone(),
        nodes: tokio::sync::Mutex::new(processes),
        started: Mutex::new(BTreeSet::new()),
        faults: Mutex::new(Vec::new()),
        node_events: Mutex::new(Vec::new()),
        samples: Mutex::new(Vec::new()),
        active: Mutex::new(Vec::new()),
        restart_downed: scenario.restart_downed,
    });

    let say = |line: &str| {
        if options.progress {
            eprintln!("testbed: {line}");
        }
    };
    say(&format!(
        "{} nodes behind relays, output in {}",
        initial.len(),
        dir.display()
    ));
    let result = experiment(scenario, options, &shared, &targets, seed).await;
    say("stopping the nodes (graceful leave)");
    // Whatever happened: every node leaves (or is killed), relays close.
    {
        let mut nodes = shared.nodes.lock().await;
        let stops = nodes
            .values_mut()
            .map(|node| node.stop(Duration::from_secs(5)));
        futures::future::join_all(stops).await;
    }
    for relay in relays {
        relay.shutdown().await;
    }
    let (history, workload_start, workload_end) = result?;

    let last_heal = scenario
        .last_fault_event()
        .map(|d| workload_start + d.as_nanos() as u64);
    let samples = std::mem::take(&mut *lock(&shared.samples));
    let record = RunRecord {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        seed,
        nodes: names,
        workload_start,
        workload_end,
        last_heal,
        faults: std::mem::take(&mut *lock(&shared.faults)),
        node_events: std::mem::take(&mut *lock(&shared.node_events)),
        shard_moves: shard_moves(&samples),
        samples,
    };
    say("checking the history");
    let stored = read_dir(&store)?;
    let settings = CheckSettings {
        last_heal,
        recovery_bound: scenario.recovery_bound,
        end: workload_end,
        ..CheckSettings::default()
    };
    let verdict = check(&history, Some(&stored), &settings)?;
    write_jsonl(&dir.join("history.jsonl"), &history)?;
    report::write(&dir, &record, &history, &verdict)?;
    Ok(RunOutcome { dir, verdict })
}

/// Steps 2 and 3; answers the history and the workload's start and end.
async fn experiment(
    scenario: &Scenario,
    options: &RunOptions,
    shared: &Arc<Shared>,
    targets: &[(String, SocketAddr)],
    seed: u64,
) -> Result<(Vec<Event>, u64, u64), RunError> {
    let initial = scenario.initial_nodes();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(sample_loop(
        shared.clone(),
        targets.to_vec(),
        stop_rx.clone(),
    ));
    let watcher = tokio::spawn(exit_watch(shared.clone(), stop_rx.clone()));

    // n1 first, alone until it answers (its generation, the start time, is
    // then taken): it is surely the oldest member and hosts the coordinator,
    // which the scenarios' splits rely on. It alone may start the cluster.
    // (Alone it cannot be Up: a node admits itself only once it has
    // gossiped with another.)
    let deadline = Instant::now() + options.ready_timeout;
    for (first, group) in [(true, &initial[..1]), (false, &initial[..])] {
        for name in group {
            shared.start_node_as(name, first).await?;
        }
        loop {
            let latest = latest_samples(shared);
            let ready = if first {
                latest.iter().any(|s| s.node == group[0])
            } else {
                observe::converged(&latest, group)
            };
            if ready {
                break;
            }
            if Instant::now() > deadline {
                let _ = stop_tx.send(true);
                let _ = sampler.await;
                let _ = watcher.await;
                return Err(RunError::NotReady(
                    options.ready_timeout,
                    observe::describe(&latest, group),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let workload_start = shared.now();
    if options.progress {
        eprintln!(
            "testbed: cluster up after {:.1} s; workload and faults for {:?}",
            workload_start as f64 / 1e9,
            scenario.duration
        );
    }
    let recorder = Arc::new(Recorder::new(shared.start));
    let mut clients = Vec::new();
    let per_node = scenario.workload.clients_per_node;
    let stride = (targets.len() * per_node) as u64;
    for (n, (name, addr)) in targets.iter().enumerate() {
        for c in 0..per_node {
            let client = Client {
                id: (n * per_node + c) as u64,
                stride,
                node: name.clone(),
                addr: *addr,
                workload: scenario.workload.clone(),
                seed,
            };
            let shared = shared.clone();
            let node = name.clone();
            let ready = move || lock(&shared.started).contains(&node);
            clients.push(tokio::spawn(client.run(
                recorder.clone(),
                stop_rx.clone(),
                ready,
            )));
        }
    }
    let faults = tokio::spawn(fault_loop(
        shared.clone(),
        scenario.clone(),
        shared.start + Duration::from_nanos(workload_start),
    ));
    let progress = options.progress.then(|| {
        tokio::spawn(progress_loop(
            shared.clone(),
            recorder.clone(),
            scenario.duration,
            workload_start,
            stop_rx.clone(),
        ))
    });

    tokio::time::sleep_until(
        (shared.start + Duration::from_nanos(workload_start) + scenario.duration).into(),
    )
    .await;
    let _ = stop_tx.send(true);
    for client in clients {
        let _ = client.await;
    }
    let workload_end = shared.now();
    let fault_result = faults.await;
    let _ = sampler.await;
    let _ = watcher.await;
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    match fault_result {
        Ok(result) => result?,
        Err(error) => return Err(RunError::Setup(format!("the fault task failed: {error}"))),
    }
    Ok((recorder.finish(), workload_start, workload_end))
}

fn latest_samples(shared: &Shared) -> Vec<Sample> {
    let samples = lock(&shared.samples);
    let mut latest: BTreeMap<&str, &Sample> = BTreeMap::new();
    for sample in samples.iter() {
        latest.insert(&sample.node, sample);
    }
    latest.into_values().cloned().collect()
}

async fn sample_loop(
    shared: Arc<Shared>,
    targets: Vec<(String, SocketAddr)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut clients: Vec<(String, HttpClient)> = targets
        .into_iter()
        .map(|(name, addr)| (name, HttpClient::new(addr)))
        .collect();
    let timeout = Duration::from_millis(400);
    while !*stop.borrow() {
        let live: BTreeSet<String> = {
            let nodes = shared.nodes.lock().await;
            nodes
                .iter()
                .filter(|(_, n)| n.is_running() && !n.is_paused())
                .map(|(name, _)| name.clone())
                .collect()
        };
        let time = shared.now();
        let asks = clients
            .iter_mut()
            .filter(|(name, _)| live.contains(name))
            .map(|(name, client)| observe::sample(client, name, time, timeout));
        let taken = futures::future::join_all(asks).await;
        lock(&shared.samples).extend(taken.into_iter().flatten());
        if tokio::time::timeout(Duration::from_millis(250), stop.changed())
            .await
            .is_ok()
        {
            continue;
        }
    }
}

/// Reaps nodes that exit on their own; restarts downed ones after a second.
async fn exit_watch(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut restart_at: BTreeMap<String, Instant> = BTreeMap::new();
    while !*stop.borrow() {
        let mut to_start = Vec::new();
        {
            let mut nodes = shared.nodes.lock().await;
            for (name, node) in nodes.iter_mut() {
                if let Some(status) = node.exited() {
                    let code = status.code();
                    shared.node_event(
                        name,
                        format!(
                            "exited {}",
                            code.map_or_else(|| status.to_string(), |c| c.to_string())
                        ),
                    );
                    if code == Some(i32::from(EXIT_DOWNED)) && shared.restart_downed {
                        restart_at.insert(name.clone(), Instant::now() + Duration::from_secs(1));
                    }
                }
            }
            let now = Instant::now();
            restart_at.retain(|name, at| {
                if *at <= now {
                    to_start.push(name.clone());
                    false
                } else {
                    true
                }
            });
        }
        for name in to_start {
            if let Err(error) = shared.start_node(&name).await {
                tracing::warn!(%name, %error, "cannot restart a downed node");
            }
        }
        if tokio::time::timeout(Duration::from_millis(100), stop.changed())
            .await
            .is_ok()
        {
            continue;
        }
    }
}

/// A step of the fault schedule.
enum Step {
    Apply(usize),
    Undo(usize),
}

/// What undoing a fault needs: the links it changed or the node it hit.
#[derive(Default)]
struct Applied {
    links: Vec<(String, String)>,
    node: Option<String>,
    span: Option<usize>,
}

async fn fault_loop(
    shared: Arc<Shared>,
    scenario: Scenario,
    origin: Instant,
) -> Result<(), RunError> {
    let mut steps: Vec<(Duration, Step)> = Vec::new();
    for (i, fault) in scenario.faults.iter().enumerate() {
        steps.push((fault.at, Step::Apply(i)));
        if let Some(lasts) = fault.lasts {
            steps.push((fault.at + lasts, Step::Undo(i)));
        }
    }
    steps.sort_by_key(|(at, step)| (*at, matches!(step, Step::Apply(_))));
    let mut applied: BTreeMap<usize, Applied> = BTreeMap::new();
    let all: Vec<String> = scenario.all_nodes();
    for (at, step) in steps {
        tokio::time::sleep_until((origin + at).into()).await;
        match step {
            Step::Apply(i) => {
                let fault = &scenario.faults[i];
                let done = apply(&shared, &fault.action, &all).await?;
                let text = fault.action.describe();
                let mut nodes: Vec<String> = done
                    .links
                    .iter()
                    .flat_map(|(a, b)| [a.clone(), b.clone()])
                    .collect();
                nodes.extend(done.node.clone());
                nodes.sort();
                nodes.dedup();
                let span = {
                    let mut faults = lock(&shared.faults);
                    // Process events are instants; cuts, rules, kills and
                    // pauses last until undone (or the end).
                    let instant = matches!(
                        fault.action,
                        FaultAction::Heal
                            | FaultAction::Restart { .. }
                            | FaultAction::Resume { .. }
                            | FaultAction::Leave { .. }
                            | FaultAction::Join { .. }
                    );
                    let now = shared.now();
                    faults.push(FaultSpan {
                        start: now,
                        end: instant.then_some(now),
                        text: resolved_text(&text, &done),
                        nodes,
                    });
                    faults.len() - 1
                };
                lock(&shared.active).push(text);
                applied.insert(
                    i,
                    Applied {
                        span: Some(span),
                        ..done
                    },
                );
            }
            Step::Undo(i) => {
                let Some(done) = applied.remove(&i) else {
                    continue;
                };
                for (from, to) in &done.links {
                    let _ = shared.network.set_rule(from, to, LinkRule::pass());
                }
                if let Some(node) = &done.node {
                    match &scenario.faults[i].action {
                        FaultAction::Kill { .. } => shared.start_node(node).await?,
                        FaultAction::Pause { .. } => {
                            shared.signal(node, libc::SIGCONT, "resumed").await;
                        }
                        _ => {}
                    }
                }
                if let Some(span) = done.span {
                    lock(&shared.faults)[span].end = Some(shared.now());
                }
                let text = scenario.faults[i].action.describe();
                lock(&shared.active).retain(|t| *t != text);
            }
        }
    }
    Ok(())
}

fn resolved_text(text: &str, done: &Applied) -> String {
    match &done.node {
        Some(node) if text.contains(COORDINATOR) => {
            text.replace(COORDINATOR, &format!("coordinator ({node})"))
        }
        _ => text.to_string(),
    }
}

async fn resolve(shared: &Shared, name: &str) -> Result<String, RunError> {
    if name != COORDINATOR {
        return Ok(name.to_string());
    }
    shared
        .coordinator()
        .await
        .ok_or_else(|| RunError::Setup("no node knows where the coordinator runs".into()))
}

async fn apply(shared: &Shared, action: &FaultAction, all: &[String]) -> Result<Applied, RunError> {
    let net = &shared.network;
    let proxy = |error: crate::proxy::ProxyError| RunError::Setup(format!("proxy: {error}"));
    let mut done = Applied::default();
    let both = |a: &str, b: &str, done: &mut Applied| {
        done.links.push((a.to_string(), b.to_string()));
        done.links.push((b.to_string(), a.to_string()));
    };
    match action {
        FaultAction::Partition { nodes } => {
            let a = resolve(shared, &nodes[0]).await?;
            let b = resolve(shared, &nodes[1]).await?;
            net.partition(&[&a], &[&b]).map_err(proxy)?;
            both(&a, &b, &mut done);
            if nodes.iter().any(|n| n == COORDINATOR) {
                done.node = Some(if nodes[0] == COORDINATOR { a } else { b });
            }
        }
        FaultAction::OneWay { from, to } => {
            let from = resolve(shared, from).await?;
            let to = resolve(shared, to).await?;
            net.blackhole(&from, &to).map_err(proxy)?;
            done.links.push((from, to));
        }
        FaultAction::Split { sides } => {
            let mut resolved = Vec::new();
            for side in sides {
                let mut names = Vec::new();
                for name in side {
                    names.push(resolve(shared, name).await?);
                }
                resolved.push(names);
            }
            for (i, a) in resolved.iter().enumerate() {
                for b in &resolved[i + 1..] {
                    net.partition(a, b).map_err(proxy)?;
                    for x in a {
                        for y in b {
                            both(x, y, &mut done);
                        }
                    }
                }
            }
        }
        FaultAction::Links { rule, from, to } => {
            let pick = |list: &[String]| {
                if list.is_empty() {
                    all.to_vec()
                } else {
                    list.to_vec()
                }
            };
            for a in pick(from) {
                let a = resolve(shared, &a).await?;
                for b in pick(to) {
                    let b = resolve(shared, &b).await?;
                    if a != b {
                        net.set_rule(&a, &b, rule.clone()).map_err(proxy)?;
                        done.links.push((a.clone(), b));
                    }
                }
            }
        }
        FaultAction::Heal => net.heal(),
        FaultAction::Kill { node } => {
            let node = resolve(shared, node).await?;
            if let Some(process) = shared.nodes.lock().await.get_mut(&node) {
                process.kill().await;
            }
            shared.node_event(&node, "killed");
            done.node = Some(node);
        }
        FaultAction::Pause { node } => {
            let node = resolve(shared, node).await?;
            shared.signal(&node, libc::SIGSTOP, "paused").await;
            done.node = Some(node);
        }
        FaultAction::Resume { node } => {
            let node = resolve(shared, node).await?;
            shared.signal(&node, libc::SIGCONT, "resumed").await;
            done.node = Some(node);
        }
        FaultAction::Leave { node } => {
            let node = resolve(shared, node).await?;
            shared.signal(&node, libc::SIGTERM, "stopping").await;
            done.node = Some(node);
        }
        FaultAction::Restart { node } => {
            let node = resolve(shared, node).await?;
            if shared.signal(&node, libc::SIGTERM, "stopping").await {
                let deadline = Instant::now() + Duration::from_secs(15);
                loop {
                    let gone = !shared
                        .nodes
                        .lock()
                        .await
                        .get(&node)
                        .is_some_and(NodeProcess::is_running);
                    if gone {
                        break;
                    }
                    if Instant::now() > deadline {
                        if let Some(process) = shared.nodes.lock().await.get_mut(&node) {
                            process.kill().await;
                        }
                        shared.node_event(&node, "killed");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            shared.start_node(&node).await?;
            done.node = Some(node);
        }
        FaultAction::Join { node } => {
            shared.start_node(node).await?;
            done.node = Some(node.clone());
        }
    }
    Ok(done)
}

async fn progress_loop(
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
    duration: Duration,
    workload_start: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_ok = 0;
    while !*stop.borrow() {
        if tokio::time::timeout(Duration::from_secs(1), stop.changed())
            .await
            .is_ok()
        {
            continue;
        }
        let totals = recorder.totals();
        let elapsed = Duration::from_nanos(shared.now().saturating_sub(workload_start));
        let active = lock(&shared.active).clone();
        let phase = if active.is_empty() {
            "no fault".to_string()
        } else {
            active.join(" + ")
        };
        eprintln!(
            "[{:>5.1}s/{:.0}s] {phase} | {} ok/s | ok {} fail {} info {}",
            elapsed.as_secs_f64(),
            duration.as_secs_f64(),
            totals.ok - last_ok,
            totals.ok,
            totals.fail,
            totals.info
        );
        last_ok = totals.ok;
    }
}

/// Shard moves: changes of home between consecutive tables of the
/// coordinator (whoever hosted it).
fn shard_moves(samples: &[Sample]) -> Vec<ShardMove> {
    let mut homes: BTreeMap<u32, String> = BTreeMap::new();
    let mut moves = Vec::new();
    for sample in samples.iter().filter(|s| !s.allocation.is_empty()) {
        for (shard, home) in &sample.allocation {
            match homes.insert(*shard, home.clone()) {
                Some(old) if old != *home => moves.push(ShardMove {
                    time: sample.time,
                    shard: *shard,
                    from: old,
                    to: home.clone(),
                }),
                _ => {}
            }
        }
    }
    moves
}
