//! `proxy-bench`: what the testbed proxy costs the mesh, in the same run.
//!
//! Two mesh nodes talking directly, and two nodes of a [`testbed::Cluster`]
//! (each behind its relay, so every packet crosses the proxy with pass rules),
//! on one 2-worker runtime. Figures: `ask` round trips of 64-byte payloads at
//! concurrency 64 and 1 (requests/s, p50/p99 in µs). Each figure is the median
//! of `--rounds` rounds, alternating direct and proxied. `--json` prints one
//! object with `proxied`, `direct` and `ratio` (proxied / direct) per figure.
//! Build with `--release`.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use mesh::tls::ClusterCa;
use mesh::{Node, Request, TlsSettings};
use serde_json::json;
use testbed::Cluster;

/// A 64-byte message that postcard encodes as exactly 64 bytes, no allocation.
type Payload = ([u8; 32], [u8; 32]);

const PAYLOAD: Payload = ([7; 32], [7; 32]);
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(about = "Mesh asks through the testbed proxy vs direct")]
struct Args {
    /// Asks per round at concurrency 64.
    #[arg(long, default_value_t = 200_000)]
    asks: u64,
    /// Asks per round at concurrency 1.
    #[arg(long, default_value_t = 10_000)]
    asks_serial: u64,
    /// Rounds per figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Picks one figure of a round.
type Metric = fn(&Round) -> f64;

/// One measured round.
#[derive(Clone, Copy)]
struct Round {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let (direct_a, direct_b) = direct_pair().await?;
    let cluster = Cluster::builder().nodes(2).start().await?;
    let (proxied_a, proxied_b) = (cluster.node("n1"), cluster.node("n2"));
    echo(&proxied_a)?;
    // (label, concurrency, asks per round) -> rounds of (proxied, direct)
    let mut figures: Vec<(&str, Vec<Round>, Vec<Round>)> = Vec::new();
    for (label, concurrency, n) in [("ask_c64", 64, args.asks), ("ask_c1", 1, args.asks_serial)] {
        let (mut proxied, mut direct) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            direct.push(asks(&direct_b, "a", n, concurrency).await?);
            proxied.push(asks(&proxied_b, "n1", n, concurrency).await?);
            if !args.json {
                eprintln!("{label}: round {} done", round + 1);
            }
        }
        figures.push((label, proxied, direct));
    }
    let mut out = serde_json::Map::new();
    for (label, proxied, direct) in &figures {
        let metrics: [(&str, Metric); 3] = [
            ("per_s", |r| r.per_s),
            ("p50_us", |r| r.p50_us),
            ("p99_us", |r| r.p99_us),
        ];
        for (metric, pick) in metrics {
            let p = median(proxied.iter().map(pick).collect());
            let d = median(direct.iter().map(pick).collect());
            out.insert(
                format!("{label}_{metric}"),
                json!({"proxied": round2(p), "direct": round2(d), "ratio": round2(p / d)}),
            );
        }
    }
    out.insert(
        "settings".into(),
        json!({"payload_bytes": 64, "asks_c64": args.asks, "asks_c1": args.asks_serial,
               "rounds": args.rounds, "runtime_workers": 2}),
    );
    let out = serde_json::Value::Object(out);
    if args.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    direct_a.shutdown().await;
    direct_b.shutdown().await;
    Ok(())
}

/// Two nodes without a proxy; `b` asks `a`.
async fn direct_pair() -> anyhow::Result<(Node, Node)> {
    let ca = ClusterCa::generate("bench")?;
    let a = Node::builder("a")
        .tls(TlsSettings::issued_by(&ca, "a")?)
        .start()
        .await?;
    let b = Node::builder("b")
        .tls(TlsSettings::issued_by(&ca, "b")?)
        .seeds(vec![a.advertise_addr()])
        .start()
        .await?;
    echo(&a)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.members().len() < 2 {
        anyhow::ensure!(Instant::now() < deadline, "direct nodes did not meet");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((a, b))
}

fn echo(node: &Node) -> anyhow::Result<()> {
    node.register_service("echo", |req: Request<Payload, Payload>| {
        let (message, responder) = req.into_parts();
        responder.reply(message);
    })?;
    Ok(())
}

/// `n` asks from `from` to `to`'s echo, `concurrency` in flight.
async fn asks(from: &Node, to: &str, n: u64, concurrency: u64) -> anyhow::Result<Round> {
    // Warm up: the connection is up and the first frames are through.
    let _: Payload = from.ask(to, "echo", PAYLOAD, ASK_TIMEOUT).await?;
    let per_task = n / concurrency;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let peer = from.peer(to)?;
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram()?;
            for _ in 0..per_task {
                let sent = Instant::now();
                let _: Payload = peer.ask("echo", PAYLOAD, ASK_TIMEOUT).await?;
                hist.record(sent.elapsed().as_nanos() as u64)?;
            }
            anyhow::Ok(hist)
        }));
    }
    let mut hist = histogram()?;
    for task in tasks {
        hist.add(task.await.context("ask task panicked")??)?;
    }
    let elapsed = start.elapsed();
    Ok(Round {
        per_s: (per_task * concurrency) as f64 / elapsed.as_secs_f64(),
        p50_us: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
