//! `sharding-bench`: what sharding costs, each figure against its baseline in
//! the same run, on loopback (release build; `--json` prints one object).
//!
//! - `remote_ask_*`: asks from node `n1` to entities that all live on `n2`
//!   (only `n2` has the type's role, so `n1` only routes), against plain mesh
//!   asks from `n1` to an echo service on `n2`; a `u64` each way. p50/p99 at
//!   concurrency 1, requests/s and p50/p99 at concurrency 64.
//! - `local_tell_msgs_per_s`: tells to 1,000 local entities that count what
//!   they get, against a bounded tokio channel (the capacity of a driver's
//!   queue) whose single consumer counts; the producer is the same loop.
//! - `idle_entity_memory`: live heap bytes per idle zero-size entity (a
//!   counting global allocator), 1,000,000 of them on one node, passivation
//!   off; the RSS delta for reference.
//! - `shard_allocation`: the sans-IO coordinator allocating 10,000 shards
//!   across 10 regions, every `GetShardHome` first, then every `HostShard`
//!   answered with `ShardStarted`.
//!
//! Each figure is the median of `--rounds` rounds (sharded and baseline
//! alternate). `ratio` is always `sharded / baseline`: above 1 is better for
//! a rate, worse for a latency.
//!
//! ```text
//! cargo run --release -p testbed --bin sharding-bench -- --json
//! cargo run --release -p testbed --bin sharding-bench -- --quick --only local-tell
//! ```

#![warn(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use mesh::{MemberStatus, Node, Request, TlsSettings};
use serde_json::json;
use sharding::{
    Coordinator, CoordinatorEffect, CoordinatorInput, CoordinatorToRegion, Entity, EntityContext,
    EntityRef, EntityType, Envelope, Epoch, RegionId, RegionToCoordinator, RequestId, ShardId,
    Sharding, ShardingConfig, ShardingError,
};

/// Targets (issue 18), as ratios to each figure's baseline: remote asks at
/// concurrency 64 at least this fast as mesh asks ...
const REMOTE_C64_MIN: f64 = 0.85;
/// ... a remote ask's median round trip at concurrency 1 at most this
/// many times a mesh ask's ...
const REMOTE_C1_P50_MAX: f64 = 1.3;
/// ... and local tells at least this fast as a tokio channel.
const LOCAL_TELL_MIN: f64 = 0.4;

/// The role only `n2` has: every `bench` entity lives there.
const HOST_ROLE: &str = "host";
/// The mesh service of the remote baseline.
const ECHO_SERVICE: &str = "echo";
/// Distinct entity ids the remote asks cycle through.
const REMOTE_ENTITIES: usize = 64;
/// Distinct entity ids the local tells cycle through.
const LOCAL_ENTITIES: usize = 1_000;
/// The baseline channel's capacity: that of a sharding driver's queue.
const CHANNEL_CAPACITY: usize = 65_536;
/// Shards of the allocation figure.
const ALLOCATION_SHARDS: u32 = 10_000;
/// Regions of the allocation figure.
const ALLOCATION_REGIONS: usize = 10;
/// Deadline of every single ask.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// Page size of `/proc/self/statm` (Linux x86_64 and aarch64 defaults).
const PAGE_BYTES: i64 = 4096;

/// Whether [`Counting`] counts: only while the memory figure runs, so that
/// the other figures pay no shared atomic per allocation. Bytes freed while
/// counting that were allocated before count as freed: the difference of
/// two readings is the change of the live heap between them.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// The change of the live heap while [`COUNTING`], in bytes.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting the live heap in [`LIVE_BYTES`].
struct Counting;

impl Counting {
    /// Adds `bytes` (negative when freed) while [`COUNTING`].
    fn count(bytes: i64) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call goes to the system allocator unchanged; the counter
// only observes the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size() as i64);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size() as i64);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::count(-(layout.size() as i64));
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size as i64 - layout.size() as i64);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Parser)]
#[command(about = "Sharding against plain mesh asks, a tokio channel and its own targets")]
struct Args {
    /// Rounds per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Remote asks per round at concurrency 64.
    #[arg(long, default_value_t = 50_000)]
    asks: u64,
    /// Remote asks per round at concurrency 1.
    #[arg(long, default_value_t = 2_000)]
    asks_serial: u64,
    /// Local tells per round.
    #[arg(long, default_value_t = 1_000_000)]
    tells: u64,
    /// Idle entities for the memory figure.
    #[arg(long, default_value_t = 1_000_000)]
    entities: u64,
    /// A short run: 3 rounds and a tenth of every count.
    #[arg(long)]
    quick: bool,
    /// Measure only these figures (repeat the flag; default: all), e.g. to
    /// profile one.
    #[arg(long, value_enum)]
    only: Vec<Figure>,
    /// Worker threads of the runtime that runs both nodes and every client
    /// (1 shows what sharding costs in CPU alone, without wake-ups of
    /// another worker).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The figures, for `--only`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Figure {
    /// `idle_entity_memory`.
    Memory,
    /// `local_tell_msgs_per_s`.
    LocalTell,
    /// `remote_ask_*`.
    RemoteAsk,
    /// `shard_allocation`.
    Allocation,
}

impl Args {
    /// Whether `figure` is measured in this run.
    fn measures(&self, figure: Figure) -> bool {
        self.only.is_empty() || self.only.contains(&figure)
    }

    /// Applies `--quick`.
    fn effective(mut self) -> Self {
        if self.quick {
            self.rounds = self.rounds.min(3);
            self.asks /= 10;
            self.asks_serial /= 10;
            self.tells /= 10;
            self.entities /= 10;
        }
        self.rounds = self.rounds.max(1);
        self
    }

    /// Rounds of the memory figure: each holds all its entities, so at most 3.
    fn memory_rounds(&self) -> usize {
        self.rounds.min(3)
    }
}

/// Answers with what it gets.
struct Echo;

impl Entity for Echo {
    type Message = u64;
    type Reply = u64;
    async fn handle(&mut self, _ctx: &mut EntityContext, n: u64) -> u64 {
        n
    }
}

/// Counts what it gets, in a counter all of them share.
struct Count(Arc<AtomicU64>);

impl Entity for Count {
    type Message = u64;
    type Reply = ();
    async fn handle(&mut self, _ctx: &mut EntityContext, _n: u64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holds nothing and does nothing: what an idle one costs is the framework's.
struct Idle;

impl Entity for Idle {
    type Message = ();
    type Reply = ();
    async fn handle(&mut self, _ctx: &mut EntityContext, _wake: ()) {}
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse().effective();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.into())
        .enable_all()
        .build()?;
    // On a worker, not in `block_on`: a producer that spins on backpressure
    // must not be a third busy thread next to the two workers.
    let json = args.json;
    let out = runtime.block_on(async move { tokio::spawn(figures(args)).await? })?;
    if json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

/// Every figure asked for, and the settings, as one JSON object.
async fn figures(args: Args) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let mut out = serde_json::Map::new();
    // Memory first: the RSS delta is clean only in a fresh process.
    if args.measures(Figure::Memory) {
        out.insert("idle_entity_memory".into(), idle_memory(&args).await?);
        progress(&args, "idle entity memory");
    }
    if args.measures(Figure::LocalTell) {
        out.insert("local_tell_msgs_per_s".into(), local_tell(&args).await?);
        progress(&args, "local tell");
    }
    if args.measures(Figure::RemoteAsk) {
        out.extend(remote_ask(&args).await?);
        progress(&args, "remote ask");
    }
    if args.measures(Figure::Allocation) {
        out.insert("shard_allocation".into(), shard_allocation(&args)?);
    }
    out.insert(
        "settings".into(),
        json!({
            "rounds": args.rounds, "memory_rounds": args.memory_rounds(),
            "asks_c64": args.asks, "asks_c1": args.asks_serial,
            "remote_entities": REMOTE_ENTITIES, "payload": "u64",
            "tells": args.tells, "local_entities": LOCAL_ENTITIES,
            "channel_capacity": CHANNEL_CAPACITY, "idle_entities": args.entities,
            "runtime_workers": args.workers, "quick": args.quick,
            "total_s": round2(started.elapsed().as_secs_f64()),
        }),
    );
    Ok(serde_json::Value::Object(out))
}

/// A line on stderr between figures, unless `--json`.
fn progress(args: &Args, done: &str) {
    if !args.json {
        eprintln!("{done}: done");
    }
}

// ----- remote asks ------------------------------------------------------

/// One round of asks.
#[derive(Clone, Copy)]
struct AskRound {
    /// Answered asks per second.
    per_s: f64,
    /// Median round trip in µs.
    p50_us: f64,
    /// 99th percentile round trip in µs.
    p99_us: f64,
}

/// How an ask reaches `n2`.
#[derive(Clone)]
enum AskPath {
    /// Through sharding: `n1`'s proxy region forwards to the entity on `n2`.
    Sharded {
        /// `n1`'s handle on the `bench` type.
        bench: EntityRef<Echo>,
        /// The entity ids, asked in turn.
        ids: Arc<[String]>,
    },
    /// A plain mesh ask from `n1` to the echo service of `n2`.
    Mesh {
        /// The asking node.
        n1: Node,
    },
}

impl AskPath {
    /// One ask of `n`, which must come back.
    async fn ask(&self, n: u64) -> anyhow::Result<()> {
        let answer = match self {
            AskPath::Sharded { bench, ids } => {
                let id = &ids[n as usize % ids.len()];
                bench.ask(id, n, ASK_TIMEOUT).await?
            }
            AskPath::Mesh { n1 } => {
                n1.ask::<u64, u64>("n2", ECHO_SERVICE, n, ASK_TIMEOUT)
                    .await?
            }
        };
        anyhow::ensure!(answer == n, "echo answered {answer} to {n}");
        Ok(())
    }

    /// `n` asks from `concurrency` tasks, each waiting for its answer before
    /// the next ask.
    async fn round(&self, n: u64, concurrency: u64) -> anyhow::Result<AskRound> {
        let per_task = (n / concurrency).max(1);
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|task| {
                let path = self.clone();
                tokio::spawn(async move {
                    let mut hist = histogram();
                    for i in 0..per_task {
                        let at = Instant::now();
                        path.ask(task * per_task + i).await?;
                        hist.record(at.elapsed().as_nanos() as u64)?;
                    }
                    anyhow::Ok(hist)
                })
            })
            .collect();
        let mut hist = histogram();
        for task in tasks {
            hist.add(task.await??)?;
        }
        let elapsed = start.elapsed();
        Ok(AskRound {
            per_s: (per_task * concurrency) as f64 / elapsed.as_secs_f64(),
            p50_us: hist.value_at_quantile(0.5) as f64 / 1000.0,
            p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
        })
    }
}

/// Latencies in ns, from 1 ns to 60 s, three significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Two nodes on loopback with insecure dev TLS; only `n2` has [`HOST_ROLE`].
async fn two_nodes() -> anyhow::Result<(Node, Node)> {
    let n2 = Node::builder("n2")
        .listen("127.0.0.1:0".parse()?)
        .roles(vec![HOST_ROLE.into()])
        .tls(TlsSettings::InsecureDev)
        .start()
        .await?;
    let n1 = Node::builder("n1")
        .listen("127.0.0.1:0".parse()?)
        .seeds(vec![n2.advertise_addr()])
        .tls(TlsSettings::InsecureDev)
        .start()
        .await?;
    let both_up = |node: &Node| {
        node.cluster_members()
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .count()
            == 2
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(both_up(&n1) && both_up(&n2)) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "n1 and n2 did not both become Up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((n1, n2))
}

/// The remote figures, by name.
async fn remote_ask(args: &Args) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let (n1, n2) = two_nodes().await?;
    n2.register_service(ECHO_SERVICE, |request: Request<u64, u64>| {
        let (n, responder) = request.into_parts();
        responder.reply(n);
    })?;
    let mut shardings = Vec::new();
    let mut refs = Vec::new();
    for node in [&n1, &n2] {
        let sharding = Sharding::start(node, ShardingConfig::default()).await?;
        refs.push(sharding.init(EntityType::new("bench", |_| Echo).role(HOST_ROLE))?);
        shardings.push(sharding);
    }
    let ids: Arc<[String]> = (0..REMOTE_ENTITIES).map(|i| format!("e-{i}")).collect();
    let sharded = AskPath::Sharded {
        bench: refs[0].clone(),
        ids: ids.clone(),
    };
    let mesh = AskPath::Mesh { n1: n1.clone() };
    // Warm up: the first ask of each id allocates its shard (registration
    // and leases first, hence the long deadline); then both paths run hot.
    for (i, id) in ids.iter().enumerate() {
        refs[0].ask(id, i as u64, Duration::from_secs(30)).await?;
    }
    let region = refs[1].region_state().await?;
    anyhow::ensure!(
        !region.proxy_only && region.entities == REMOTE_ENTITIES,
        "every bench entity should live on n2 (it has {})",
        region.entities
    );
    anyhow::ensure!(
        refs[0].region_state().await?.proxy_only,
        "n1 must only route"
    );
    for path in [&sharded, &mesh] {
        path.round((args.asks / 10).max(640), 64).await?;
    }
    let mut runs: BTreeMap<(&str, &str), Vec<AskRound>> = BTreeMap::new();
    for _ in 0..args.rounds {
        for (name, path) in [("sharded", &sharded), ("baseline", &mesh)] {
            let c1 = path.round(args.asks_serial, 1).await?;
            runs.entry(("c1", name)).or_default().push(c1);
            let c64 = path.round(args.asks, 64).await?;
            runs.entry(("c64", name)).or_default().push(c64);
        }
    }
    n1.shutdown().await;
    n2.shutdown().await;
    drop(shardings);
    let mut figures = Vec::new();
    type Pick = fn(&AskRound) -> f64;
    let measures: [(&str, Pick); 3] = [
        ("per_s", |r| r.per_s),
        ("p50_us", |r| r.p50_us),
        ("p99_us", |r| r.p99_us),
    ];
    for concurrency in ["c1", "c64"] {
        for (unit, pick) in measures {
            let median_of = |path| {
                let values: Vec<f64> = runs[&(concurrency, path)].iter().map(pick).collect();
                median(&values)
            };
            let (sharded, baseline) = (median_of("sharded"), median_of("baseline"));
            let mut figure = compare(sharded, baseline);
            match (concurrency, unit) {
                ("c64", "per_s") => {
                    figure["target_ratio_min"] = json!(REMOTE_C64_MIN);
                    figure["meets_target"] = json!(sharded / baseline >= REMOTE_C64_MIN);
                }
                ("c1", "p50_us") => {
                    figure["target_ratio_max"] = json!(REMOTE_C1_P50_MAX);
                    figure["meets_target"] = json!(sharded / baseline <= REMOTE_C1_P50_MAX);
                }
                _ => {}
            }
            figures.push((format!("remote_ask_{concurrency}_{unit}"), figure));
        }
    }
    Ok(figures)
}

/// `sharded`, `baseline` and `ratio` (sharded / baseline).
fn compare(sharded: f64, baseline: f64) -> serde_json::Value {
    json!({
        "sharded": round2(sharded),
        "baseline": round2(baseline),
        "ratio": round2(sharded / baseline),
    })
}

// ----- local tells ------------------------------------------------------

/// Tells per second to local counting entities against a tokio channel.
async fn local_tell(args: &Args) -> anyhow::Result<serde_json::Value> {
    let node = Node::builder("solo")
        .listen("127.0.0.1:0".parse()?)
        .tls(TlsSettings::InsecureDev)
        .start()
        .await?;
    let sharding = Sharding::start(&node, ShardingConfig::default()).await?;
    let counted = Arc::new(AtomicU64::new(0));
    let shared = counted.clone();
    let counters: EntityRef<Count> =
        sharding.init(EntityType::new("count", move |_| Count(shared.clone())))?;
    let ids: Vec<String> = (0..LOCAL_ENTITIES).map(|i| format!("c-{i}")).collect();
    // Warm up: every entity started, every shard it needs allocated.
    for id in &ids {
        counters.ask(id, 0u64, Duration::from_secs(30)).await?;
    }
    let mut sharded = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..args.rounds {
        sharded.push(tell_round(&counters, &ids, &counted, args.tells).await?);
        baseline.push(channel_round(args.tells).await?);
    }
    node.shutdown().await;
    drop(sharding);
    let (sharded, baseline) = (median(&sharded), median(&baseline));
    let mut figure = compare(sharded, baseline);
    figure["target_ratio_min"] = json!(LOCAL_TELL_MIN);
    figure["meets_target"] = json!(sharded / baseline >= LOCAL_TELL_MIN);
    Ok(figure)
}

/// `n` tells round-robin over `ids`; messages/s until all are counted.
async fn tell_round(
    counters: &EntityRef<Count>,
    ids: &[String],
    counted: &AtomicU64,
    n: u64,
) -> anyhow::Result<f64> {
    let target = counted.load(Ordering::Relaxed) + n;
    let start = Instant::now();
    for i in 0..n {
        let id = &ids[i as usize % ids.len()];
        loop {
            match counters.tell(id, i) {
                Ok(()) => break,
                Err(ShardingError::Backpressure(_)) => tokio::task::yield_now().await,
                Err(error) => return Err(error.into()),
            }
        }
    }
    while counted.load(Ordering::Relaxed) < target {
        tokio::task::yield_now().await;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The same producer loop into a bounded channel with one counting consumer.
async fn channel_round(n: u64) -> anyhow::Result<f64> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, u64)>(CHANNEL_CAPACITY);
    let counted = Arc::new(AtomicU64::new(0));
    let consumer_count = counted.clone();
    let consumer = tokio::spawn(async move {
        while let Some((_entity, _n)) = rx.recv().await {
            consumer_count.fetch_add(1, Ordering::Relaxed);
        }
    });
    let start = Instant::now();
    for i in 0..n {
        let mut message = (i as usize % LOCAL_ENTITIES, i);
        loop {
            match tx.try_send(message) {
                Ok(()) => break,
                Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                    message = back;
                    tokio::task::yield_now().await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    while counted.load(Ordering::Relaxed) < n {
        tokio::task::yield_now().await;
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    drop(tx);
    consumer.await?;
    Ok(per_s)
}

// ----- idle entity memory -------------------------------------------------

/// Heap (and RSS) bytes per idle entity.
async fn idle_memory(args: &Args) -> anyhow::Result<serde_json::Value> {
    let mut heap = Vec::new();
    let mut rss_first = None;
    COUNTING.store(true, Ordering::Relaxed);
    for round in 0..args.memory_rounds() {
        let measured = idle_memory_round(round, args.entities).await;
        let (heap_per_entity, rss_per_entity) = measured.inspect_err(|_| {
            COUNTING.store(false, Ordering::Relaxed);
        })?;
        heap.push(heap_per_entity);
        rss_first.get_or_insert(rss_per_entity);
    }
    COUNTING.store(false, Ordering::Relaxed);
    let heap = median(&heap);
    Ok(json!({
        "entities": args.entities,
        "heap_bytes_per_entity": round2(heap),
        "target_heap_bytes_per_entity_max": 1024,
        "meets_target": heap <= 1024.0,
        "rss_bytes_per_entity_first_round": rss_first.map(round2),
    }))
}

/// One node, `n` idle entities started by one tell each; answers (heap
/// bytes per entity, RSS bytes per entity).
async fn idle_memory_round(round: usize, n: u64) -> anyhow::Result<(f64, f64)> {
    let node = Node::builder(&format!("memory-{round}"))
        .listen("127.0.0.1:0".parse()?)
        .tls(TlsSettings::InsecureDev)
        .start()
        .await?;
    let sharding = Sharding::start(&node, ShardingConfig::default()).await?;
    let idle = sharding.init(EntityType::new("idle", |_| Idle).passivate_after(None))?;
    // Registration, the lease and the first shard are not per-entity costs.
    idle.ask("warm-up", (), Duration::from_secs(30)).await?;
    settle().await;
    let heap_before = LIVE_BYTES.load(Ordering::Relaxed);
    let rss_before = rss_bytes();
    let mut id = String::new();
    for i in 0..n {
        id.clear();
        write!(id, "idle-{i}")?;
        loop {
            match idle.tell(&id, ()) {
                Ok(()) => break,
                Err(ShardingError::Backpressure(_)) => tokio::task::yield_now().await,
                Err(error) => return Err(error.into()),
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut view = idle.region_state().await?;
    while view.entities < n as usize + 1 || view.buffered > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {n} entities started",
            view.entities
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        view = idle.region_state().await?;
    }
    settle().await;
    let heap = (LIVE_BYTES.load(Ordering::Relaxed) - heap_before) as f64 / n as f64;
    let rss = match (rss_before, rss_bytes()) {
        (Some(before), Some(after)) => (after - before) as f64 / n as f64,
        _ => f64::NAN,
    };
    node.shutdown().await;
    drop((idle, sharding));
    // The driver drops its entities at its next tick: wait for the heap to
    // shrink back before the next round measures.
    let grown = LIVE_BYTES.load(Ordering::Relaxed) - heap_before;
    let deadline = Instant::now() + Duration::from_secs(10);
    while LIVE_BYTES.load(Ordering::Relaxed) - heap_before > grown / 10 && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((heap, rss))
}

/// Lets in-flight handlers finish and a few driver ticks pass.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Resident bytes of this process.
fn rss_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE_BYTES)
}

// ----- shard allocation ---------------------------------------------------

/// Milliseconds to allocate every shard, and the spread over the regions.
fn shard_allocation(args: &Args) -> anyhow::Result<serde_json::Value> {
    let mut ms = Vec::new();
    let mut spread = (0, 0);
    for _ in 0..args.rounds {
        let (elapsed, per_region) = allocate_all()?;
        ms.push(elapsed.as_secs_f64() * 1000.0);
        spread = (
            per_region.iter().copied().min().unwrap_or(0),
            per_region.iter().copied().max().unwrap_or(0),
        );
    }
    Ok(json!({
        "shards": ALLOCATION_SHARDS,
        "regions": ALLOCATION_REGIONS,
        "ms": round2(median(&ms)),
        "shards_per_region_min": spread.0,
        "shards_per_region_max": spread.1,
    }))
}

/// Feeds one coordinator as its driver would, with instant regions: every
/// region registers, asks for a share of the shards, and confirms every
/// `HostShard` it gets. Answers the time taken and the shards per region.
fn allocate_all() -> anyhow::Result<(Duration, Vec<usize>)> {
    let config = ShardingConfig {
        number_of_shards: ALLOCATION_SHARDS,
        ..ShardingConfig::default()
    };
    let regions: Vec<RegionId> = (0..ALLOCATION_REGIONS)
        .map(|i| RegionId::new(format!("r{i}"), 1))
        .collect();
    let now = Instant::now();
    let start = Instant::now();
    let mut coordinator = Coordinator::new(regions[0].clone(), Epoch(1), config, now, None);
    coordinator.handle(now, CoordinatorInput::Quorum(true));
    let mut next_request = 0;
    let mut envelope = |from: &RegionId, body| {
        next_request += 1;
        Envelope {
            epoch: Epoch(1),
            request_id: RequestId(next_request),
            from: from.clone(),
            body,
        }
    };
    let mut effects = Vec::new();
    for region in &regions {
        effects.extend(coordinator.handle(now, CoordinatorInput::MemberUp(region.clone(), None)));
        let register = RegionToCoordinator::Register {
            hosted: vec![],
            fenced: vec![],
            handing_off: vec![],
            proxy_only: false,
        };
        let register = envelope(region, register);
        effects.extend(coordinator.handle(now, CoordinatorInput::Message(register)));
    }
    for shard in 0..ALLOCATION_SHARDS {
        let asker = &regions[shard as usize % regions.len()];
        let ask = RegionToCoordinator::GetShardHome {
            shard: ShardId(shard),
        };
        let ask = envelope(asker, ask);
        effects.extend(coordinator.handle(now, CoordinatorInput::Message(ask)));
    }
    while let Some(effect) = effects.pop() {
        if let CoordinatorEffect::Send { to, message } = effect {
            if let CoordinatorToRegion::HostShard { shard } = message.body {
                let started = RegionToCoordinator::ShardStarted {
                    shard,
                    host: message.request_id,
                };
                let started = envelope(&to, started);
                effects.extend(coordinator.handle(now, CoordinatorInput::Message(started)));
            }
        }
    }
    let allocation = coordinator.allocation();
    let elapsed = start.elapsed();
    anyhow::ensure!(
        allocation.len() == ALLOCATION_SHARDS as usize,
        "{} of {ALLOCATION_SHARDS} shards allocated",
        allocation.len()
    );
    let per_region = regions
        .iter()
        .map(|region| allocation.values().filter(|home| *home == region).count())
        .collect();
    Ok((elapsed, per_region))
}

// ----- numbers ---------------------------------------------------------------

/// The middle value (the upper one of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

/// Two decimals, for the JSON.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
