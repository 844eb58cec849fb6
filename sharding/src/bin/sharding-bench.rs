//! `sharding-bench`: what sharding costs, measured against its baseline in
//! the same run (release build; `--json` prints one object).
//!
//! - `remote_ask`: asks from a proxy-only node to entities on another node
//!   (`sharded`) vs plain mesh asks to an echo service on that node
//!   (`baseline`): p50/p99 at concurrency 1, requests/s at concurrency 64.
//! - `local_tell`: tells to local entities that count them vs a tokio mpsc
//!   channel whose consumer counts them (messages/s).
//! - `idle_entity_memory`: heap bytes per idle zero-size entity, 1,000,000
//!   of them on one node (a counting allocator).
//! - `allocation`: the sans-IO coordinator allocating 10,000 shards across
//!   10 regions (ms).
//!
//! Every figure is the median of `--rounds` rounds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use mesh::{Node, Request, TlsSettings};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sharding::{
    Coordinator, CoordinatorEffect, CoordinatorInput, CoordinatorToRegion, Entity, EntityContext,
    EntityRef, EntityType, Envelope, Epoch, RegionId, RegionToCoordinator, RequestId, ShardId,
    Sharding, ShardingConfig,
};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Parser)]
#[command(about = "Sharding against plain mesh asks and tokio channels, in the same run")]
struct Args {
    /// Rounds per figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Asks per round at concurrency 64.
    #[arg(long, default_value_t = 100_000)]
    asks: u64,
    /// Asks per round at concurrency 1.
    #[arg(long, default_value_t = 5_000)]
    asks_serial: u64,
    /// Local tells per round.
    #[arg(long, default_value_t = 1_000_000)]
    tells: u64,
    /// Idle entities for the memory figure.
    #[arg(long, default_value_t = 1_000_000)]
    entities: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Answers what it gets.
struct Echo;

impl Entity for Echo {
    type Message = u64;
    type Reply = u64;
    async fn handle(&mut self, _ctx: &mut EntityContext, n: u64) -> u64 {
        n
    }
}

/// Counts what it gets in a counter shared by all of them.
struct Count(Arc<AtomicU64>);

impl Entity for Count {
    type Message = u64;
    type Reply = ();
    async fn handle(&mut self, _ctx: &mut EntityContext, _n: u64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holds nothing: what an idle entity costs is the framework's.
struct Idle;

#[derive(Serialize, Deserialize)]
struct Wake;

impl Entity for Idle {
    type Message = Wake;
    type Reply = ();
    async fn handle(&mut self, _ctx: &mut EntityContext, _wake: Wake) {}
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let remote = runtime.block_on(remote_ask(&args))?;
    let local = runtime.block_on(local_tell(&args))?;
    let memory = runtime.block_on(idle_memory(&args))?;
    let allocation = allocation(&args);
    let out = json!({
        "remote_ask": remote,
        "local_tell": local,
        "idle_entity_memory": memory,
        "allocation": allocation,
    });
    if args.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

async fn two_nodes() -> anyhow::Result<(Node, Node)> {
    let host = Node::builder("host")
        .roles(vec!["host".into()])
        .tls(TlsSettings::InsecureDev)
        .start()
        .await?;
    let proxy = Node::builder("proxy")
        .seeds(vec![host.advertise_addr()])
        .tls(TlsSettings::InsecureDev)
        .start()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy
        .cluster_members()
        .iter()
        .filter(|m| m.status == mesh::MemberStatus::Up)
        .count()
        < 2
    {
        anyhow::ensure!(Instant::now() < deadline, "the nodes did not meet");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((host, proxy))
}

async fn remote_ask(args: &Args) -> anyhow::Result<serde_json::Value> {
    let (host, proxy) = two_nodes().await?;
    host.register_service("echo", |req: Request<u64, u64>| {
        let (n, responder) = req.into_parts();
        responder.reply(n);
    })?;
    let mut keep = Vec::new();
    let mut refs = Vec::new();
    for node in [&host, &proxy] {
        let sharding = Sharding::start(node, ShardingConfig::default()).await?;
        refs.push(sharding.init(EntityType::new("echo", |_| Echo).role("host"))?);
        keep.push(sharding);
    }
    let echo = refs[1].clone();
    // Warm up: every shard of the ids used allocated, every cache filled.
    for i in 0..64u64 {
        echo.ask(&format!("e-{i}"), i, Duration::from_secs(20))
            .await?;
    }
    let peer = proxy.peer("host")?;
    let mut sharded = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..args.rounds {
        let refs = echo.clone();
        sharded.push(
            asks(args.asks_serial, 1, move |i| {
                let refs = refs.clone();
                async move {
                    refs.ask(&format!("e-{}", i % 64), i, Duration::from_secs(10))
                        .await
                        .map(|_| ())
                        .map_err(anyhow::Error::from)
                }
            })
            .await?,
        );
        let p = peer.clone();
        plain.push(
            asks(args.asks_serial, 1, move |i| {
                let p = p.clone();
                async move {
                    p.ask::<u64, u64>("echo", i, Duration::from_secs(10))
                        .await
                        .map(|_| ())
                        .map_err(anyhow::Error::from)
                }
            })
            .await?,
        );
        let refs = echo.clone();
        sharded.push(
            asks(args.asks, 64, move |i| {
                let refs = refs.clone();
                async move {
                    refs.ask(&format!("e-{}", i % 64), i, Duration::from_secs(10))
                        .await
                        .map(|_| ())
                        .map_err(anyhow::Error::from)
                }
            })
            .await?,
        );
        let p = peer.clone();
        plain.push(
            asks(args.asks, 64, move |i| {
                let p = p.clone();
                async move {
                    p.ask::<u64, u64>("echo", i, Duration::from_secs(10))
                        .await
                        .map(|_| ())
                        .map_err(anyhow::Error::from)
                }
            })
            .await?,
        );
    }
    let pick = |rounds: &[Round], c64: bool, f: fn(&Round) -> f64| {
        let values: Vec<f64> = rounds
            .iter()
            .skip(usize::from(c64))
            .step_by(2)
            .map(f)
            .collect();
        median(&values)
    };
    let c1_p50 = (
        pick(&sharded, false, |r| r.p50_us),
        pick(&plain, false, |r| r.p50_us),
    );
    let c1_p99 = (
        pick(&sharded, false, |r| r.p99_us),
        pick(&plain, false, |r| r.p99_us),
    );
    let c64 = (
        pick(&sharded, true, |r| r.per_s),
        pick(&plain, true, |r| r.per_s),
    );
    for node in [&proxy, &host] {
        node.shutdown().await;
    }
    Ok(json!({
        "c1_p50_us": {"sharded": round2(c1_p50.0), "baseline": round2(c1_p50.1), "ratio": round2(c1_p50.0 / c1_p50.1)},
        "c1_p99_us": {"sharded": round2(c1_p99.0), "baseline": round2(c1_p99.1), "ratio": round2(c1_p99.0 / c1_p99.1)},
        "c64_per_s": {"sharded": c64.0.round(), "baseline": c64.1.round(), "ratio": round2(c64.0 / c64.1)},
    }))
}

/// One round of asks: requests/s and latency quantiles.
struct Round {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn asks<F, Fut>(n: u64, concurrency: u64, ask: F) -> anyhow::Result<Round>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let per_task = n / concurrency;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let ask = ask.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            for i in 0..per_task {
                let at = Instant::now();
                ask(t * per_task + i).await?;
                hist.record(at.elapsed().as_nanos() as u64)?;
            }
            anyhow::Ok(hist)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for task in tasks {
        hist.add(task.await??)?;
    }
    let elapsed = start.elapsed();
    Ok(Round {
        per_s: (per_task * concurrency) as f64 / elapsed.as_secs_f64(),
        p50_us: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

async fn local_tell(args: &Args) -> anyhow::Result<serde_json::Value> {
    let node = Node::builder("solo")
        .tls(TlsSettings::InsecureDev)
        .start()
        .await?;
    let sharding = Sharding::start(&node, ShardingConfig::default()).await?;
    let counted = Arc::new(AtomicU64::new(0));
    let shared = counted.clone();
    let counters: EntityRef<Count> =
        sharding.init(EntityType::new("count", move |_| Count(shared.clone())))?;
    let ids: Vec<String> = (0..1000).map(|i| format!("c-{i}")).collect();
    for id in &ids {
        counters.ask(id, 0u64, Duration::from_secs(20)).await?;
    }
    let mut sharded = Vec::new();
    let mut channel = Vec::new();
    for _ in 0..args.rounds {
        let before = counted.load(Ordering::Relaxed);
        let start = Instant::now();
        for i in 0..args.tells {
            let id = &ids[(i % 1000) as usize];
            while counters.tell(id, i).is_err() {
                tokio::task::yield_now().await;
            }
        }
        while counted.load(Ordering::Relaxed) - before < args.tells {
            tokio::task::yield_now().await;
        }
        sharded.push(args.tells as f64 / start.elapsed().as_secs_f64());

        let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, u64)>(65_536);
        let count = Arc::new(AtomicU64::new(0));
        let consumer_count = count.clone();
        let consumer = tokio::spawn(async move {
            while let Some((_id, _n)) = rx.recv().await {
                consumer_count.fetch_add(1, Ordering::Relaxed);
            }
        });
        let start = Instant::now();
        for i in 0..args.tells {
            tx.send(((i % 1000) as usize, i)).await?;
        }
        drop(tx);
        consumer.await?;
        channel.push(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64());
    }
    node.shutdown().await;
    let (s, c) = (median(&sharded), median(&channel));
    Ok(json!({"per_s": {"sharded": s.round(), "baseline": c.round(), "ratio": round2(s / c)}}))
}

async fn idle_memory(args: &Args) -> anyhow::Result<serde_json::Value> {
    let node = Node::builder("memory")
        .tls(TlsSettings::InsecureDev)
        .start()
        .await?;
    let sharding = Sharding::start(&node, ShardingConfig::default()).await?;
    let idle = sharding.init(EntityType::new("idle", |_| Idle).passivate_after(None))?;
    idle.ask("warm-up", Wake, Duration::from_secs(20)).await?;
    let ids: Vec<String> = (0..args.entities).map(|i| format!("idle-{i}")).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss_bytes();
    for id in &ids {
        while idle.tell(id, Wake).is_err() {
            tokio::task::yield_now().await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while idle.region_state().await?.entities < args.entities as usize + 1 {
        anyhow::ensure!(Instant::now() < deadline, "the entities did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = LIVE.load(Ordering::Relaxed);
    let rss_after = rss_bytes();
    drop(ids);
    node.shutdown().await;
    // The ids the test keeps (String + heap) are not the framework's: they
    // are counted before and subtracted by construction, as `ids` was
    // allocated before `before` was read.
    let per_entity = (after - before) as f64 / args.entities as f64;
    Ok(json!({
        "entities": args.entities,
        "heap_bytes_per_entity": round2(per_entity),
        "rss_bytes_per_entity": rss_after.zip(rss_before).map(|(a, b)| round2((a as f64 - b as f64) / args.entities as f64)),
        "target_bytes": 1024,
    }))
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn allocation(args: &Args) -> serde_json::Value {
    let mut times = Vec::new();
    let mut spread = (0, 0);
    for _ in 0..args.rounds {
        let (ms, min, max) = allocate_10k();
        times.push(ms);
        spread = (min, max);
    }
    json!({"shards": 10_000, "regions": 10, "ms": round2(median(&times)), "per_region_min": spread.0, "per_region_max": spread.1})
}

/// Allocates 10,000 shards across 10 regions through the coordinator's own
/// messages; answers (ms, fewest shards of a region, most).
fn allocate_10k() -> (f64, usize, usize) {
    let config = ShardingConfig {
        number_of_shards: 10_000,
        ..ShardingConfig::default()
    };
    let now = Instant::now();
    let me = RegionId::new("r0", 1);
    let mut coordinator = Coordinator::new(me, Epoch(1), config, now, None);
    let start = Instant::now();
    coordinator.handle(now, CoordinatorInput::Quorum(true));
    let regions: Vec<RegionId> = (0..10)
        .map(|i| RegionId::new(format!("r{i}"), 1))
        .collect();
    let mut next = 0u64;
    let mut envelope = |from: &RegionId, body: RegionToCoordinator| {
        next += 1;
        Envelope {
            epoch: Epoch(1),
            request_id: RequestId(next),
            from: from.clone(),
            body,
        }
    };
    for region in &regions {
        coordinator.handle(now, CoordinatorInput::MemberUp(region.clone()));
        let register = envelope(
            region,
            RegionToCoordinator::Register {
                hosted: vec![],
                fenced: vec![],
                handing_off: vec![],
                proxy_only: false,
            },
        );
        coordinator.handle(now, CoordinatorInput::Message(register));
    }
    let mut effects = Vec::new();
    for shard in 0..10_000 {
        let asker = &regions[shard as usize % 10];
        let ask = envelope(
            asker,
            RegionToCoordinator::GetShardHome {
                shard: ShardId(shard),
            },
        );
        effects.extend(coordinator.handle(now, CoordinatorInput::Message(ask)));
    }
    while let Some(effect) = effects.pop() {
        if let CoordinatorEffect::Send { to, message } = effect {
            if let CoordinatorToRegion::HostShard { shard } = message.body {
                let started = envelope(
                    &to,
                    RegionToCoordinator::ShardStarted {
                        shard,
                        host: message.request_id,
                    },
                );
                effects.extend(coordinator.handle(now, CoordinatorInput::Message(started)));
            }
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let allocation = coordinator.allocation();
    assert_eq!(allocation.len(), 10_000, "every shard allocated");
    let mut per_region = std::collections::BTreeMap::<&RegionId, usize>::new();
    for region in allocation.values() {
        *per_region.entry(region).or_default() += 1;
    }
    let min = per_region.values().copied().min().unwrap_or(0);
    let max = per_region.values().copied().max().unwrap_or(0);
    (ms, min, max)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
