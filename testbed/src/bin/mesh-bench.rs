//! `mesh-bench`: the mesh against a bare quinn connection with the same framing,
//! in the same run, on loopback.
//!
//! Figures: one-way `tell` throughput of 64-byte messages, and `ask` round trips
//! at concurrency 1 and 64 (requests/s, p50/p99 in µs). Each figure is the
//! median of `--rounds` runs, alternating raw and mesh. `--json` prints one
//! object with `mesh`, `raw` and `ratio` (mesh / raw) per figure.
//!
//! The raw sender of `tell_64B_per_s` frames each message as it sends it
//! (length prefix, postcard body: the mesh's framing) and its receiver
//! decodes each one into a value. `tell_64B_per_s_vs_prebuilt` compares with a raw
//! sender that writes one pre-built frame over and over and a receiver
//! that only counts frames: quinn's own ceiling, with no work per message.
//!
//! Every client runs on a runtime worker, and every ask client is one task
//! keeping `window` requests in flight: the raw one on one stream, the mesh
//! one through a [`mesh::Pipeline`] for `ask_c64` and as 64 independent ask
//! futures for `ask_c64_independent` (compared with the same raw rounds).
//!
//! `--only FIGURE` measures one figure (repeatable), e.g. under `perf`;
//! `--workers 1` shows the mesh's CPU cost alone, without the wake-ups of
//! a second worker that a multi-threaded runtime adds between tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use mesh::tls::{transport_config, QuicTls};
use mesh::wire::frame::{encode_frame, encode_frame_into, put_postcard, FrameReader};
use mesh::{Node, PeerRef, Request, TlsSettings};
use serde_json::json;

const PAYLOAD: usize = 64;
const MAX_FRAME: usize = 8 * 1024 * 1024;

#[derive(Parser)]
#[command(about = "Mesh vs bare quinn on loopback")]
struct Args {
    /// Tells per round.
    #[arg(long, default_value_t = 2_000_000)]
    tells: u64,
    /// Asks per round at concurrency 64.
    #[arg(long, default_value_t = 200_000)]
    asks: u64,
    /// Asks per round at concurrency 1.
    #[arg(long, default_value_t = 10_000)]
    asks_serial: u64,
    /// Rounds per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Worker threads of the runtime that runs both nodes and every client.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Measure only these figures (repeat the flag; default: all), e.g. to
    /// profile one.
    #[arg(long, value_enum)]
    only: Vec<Figure>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The figures, for `--only`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Figure {
    /// `tell_64B_per_s` and `tell_64B_per_s_vs_prebuilt`.
    Tell,
    /// `ask_c1_*`.
    AskC1,
    /// `ask_c64_*`: a [`mesh::Pipeline`].
    AskC64,
    /// `ask_c64_independent_*` (with the raw rounds of `ask_c64`).
    AskC64Independent,
}

impl Args {
    /// Whether `figure` is measured in this run.
    fn measures(&self, figure: Figure) -> bool {
        self.only.is_empty() || self.only.contains(&figure)
    }
}

/// A 64-byte message: encoded as one byte string, copied, never allocated.
#[derive(Clone, Copy)]
struct Payload([u8; PAYLOAD]);

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "{PAYLOAD} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                v.try_into()
                    .map(Payload)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(Visit)
    }
}

/// One measured round of asks.
#[derive(Clone, Copy)]
struct AskFigures {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.into())
        .enable_all()
        .build()?;
    // Spawned, so that every client (raw or mesh) runs on a runtime worker,
    // as a service's tasks do, and none waits on the main thread's wake-ups.
    rt.block_on(async { tokio::spawn(bench(args)).await? })
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let raw = RawPair::start().await?;
    let mesh = MeshPair::start().await?;
    let mut figures: Vec<(&str, Vec<f64>, Vec<f64>, bool)> = Vec::new();
    let mut tell = (Vec::new(), Vec::new());
    let mut tell_prebuilt = Vec::new();
    let mut c1 = (Vec::new(), Vec::new());
    let mut c64 = (Vec::new(), Vec::new());
    let mut c64_independent = (Vec::new(), Vec::new());
    let raw_c64 = args.measures(Figure::AskC64) || args.measures(Figure::AskC64Independent);
    for round in 0..args.rounds {
        if args.measures(Figure::Tell) {
            tell.0.push(raw.tell(args.tells, RawTell::Framed).await?);
            tell_prebuilt.push(raw.tell(args.tells, RawTell::Prebuilt).await?);
            tell.1.push(mesh.tell(args.tells).await?);
        }
        if args.measures(Figure::AskC1) {
            c1.0.push(raw.asks(args.asks_serial, 1).await?);
            c1.1.push(mesh.asks(args.asks_serial, 1).await?);
        }
        if raw_c64 {
            c64.0.push(raw.asks(args.asks, 64).await?);
        }
        if args.measures(Figure::AskC64) {
            c64.1.push(mesh.asks(args.asks, 64).await?);
        }
        if args.measures(Figure::AskC64Independent) {
            c64_independent
                .0
                .push(*c64.0.last().expect("just measured"));
            c64_independent
                .1
                .push(mesh.independent_asks(args.asks, 64).await?);
        }
        if !args.json {
            eprintln!("round {} done", round + 1);
        }
    }
    if args.measures(Figure::Tell) {
        figures.push(("tell_64B_per_s", tell.1.clone(), tell.0, true));
        figures.push(("tell_64B_per_s_vs_prebuilt", tell.1, tell_prebuilt, true));
    }
    for (name, figure, (raw_runs, mesh_runs)) in [
        ("ask_c1", Figure::AskC1, c1),
        ("ask_c64", Figure::AskC64, c64),
        (
            "ask_c64_independent",
            Figure::AskC64Independent,
            c64_independent,
        ),
    ] {
        if !args.measures(figure) {
            continue;
        }
        let pick = |runs: &[AskFigures], f: fn(&AskFigures) -> f64| -> Vec<f64> {
            runs.iter().map(f).collect()
        };
        figures.push((
            leak(format!("{name}_per_s")),
            pick(&mesh_runs, |a| a.per_s),
            pick(&raw_runs, |a| a.per_s),
            true,
        ));
        figures.push((
            leak(format!("{name}_p50_us")),
            pick(&mesh_runs, |a| a.p50_us),
            pick(&raw_runs, |a| a.p50_us),
            false,
        ));
        figures.push((
            leak(format!("{name}_p99_us")),
            pick(&mesh_runs, |a| a.p99_us),
            pick(&raw_runs, |a| a.p99_us),
            false,
        ));
    }
    let mut out = serde_json::Map::new();
    for (name, mesh_runs, raw_runs, _) in &figures {
        let (m, r) = (median(mesh_runs), median(raw_runs));
        out.insert(
            name.to_string(),
            json!({"mesh": round2(m), "raw": round2(r), "ratio": round2(m / r)}),
        );
    }
    out.insert(
        "settings".into(),
        json!({"payload_bytes": PAYLOAD, "tells": args.tells, "asks_c64": args.asks,
               "asks_c1": args.asks_serial, "rounds": args.rounds, "runtime_workers": args.workers}),
    );
    let out = serde_json::Value::Object(out);
    if args.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    mesh.a.shutdown().await;
    mesh.b.shutdown().await;
    Ok(())
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Throughput and latency percentiles of one round of asks. Latencies are
/// kept as a list while the round runs and go into a histogram after it, so
/// that recording costs the same for the raw and the mesh clients.
fn figures(latencies: &[Duration], elapsed: Duration) -> anyhow::Result<AskFigures> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for latency in latencies {
        hist.record(latency.as_nanos() as u64)?;
    }
    Ok(AskFigures {
        per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// Two mesh nodes; `b` sends to `a`.
struct MeshPair {
    a: Node,
    b: Node,
    received: Arc<AtomicU64>,
}

impl MeshPair {
    async fn start() -> anyhow::Result<Self> {
        let ca = mesh::tls::ClusterCa::generate("bench")?;
        let a = Node::builder("a")
            .tls(TlsSettings::issued_by(&ca, "a")?)
            .start()
            .await?;
        let b = Node::builder("b")
            .tls(TlsSettings::issued_by(&ca, "b")?)
            .seeds(vec![a.advertise_addr()])
            .start()
            .await?;
        let received = Arc::new(AtomicU64::new(0));
        let count = received.clone();
        a.register_service("sink", move |_req: Request<Payload, ()>| {
            // One writer (the task reading b's stream), so no atomic
            // read-modify-write: a plain count, as the raw receiver keeps.
            count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        })?;
        a.register_service("echo", |req: Request<Payload, Payload>| {
            let (message, responder) = req.into_parts();
            responder.reply(message);
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.members().len() < 2 {
            anyhow::ensure!(Instant::now() < deadline, "mesh nodes did not meet");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _: Payload = b
            .ask("a", "echo", Payload([0; PAYLOAD]), Duration::from_secs(5))
            .await?;
        Ok(Self { a, b, received })
    }

    async fn tell(&self, n: u64) -> anyhow::Result<f64> {
        let start_count = self.received.load(Ordering::Relaxed);
        let payload = Payload([7; PAYLOAD]);
        let a = self.b.peer("a")?;
        let start = Instant::now();
        for _ in 0..n {
            a.tell_wait("sink", payload).await?;
        }
        while self.received.load(Ordering::Relaxed) - start_count < n {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// Keeps `window` asks in flight from one task, as the raw client keeps
    /// `window` requests in flight on its stream: one after another for a
    /// window of 1, else through a [`mesh::Pipeline`].
    async fn asks(&self, n: u64, window: u64) -> anyhow::Result<AskFigures> {
        let a = self.b.peer("a")?;
        let payload = Payload([7; PAYLOAD]);
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        // One at a time is a plain loop, as the raw client's is.
        if window == 1 {
            for _ in 0..n {
                let sent = Instant::now();
                let _: Payload = a.ask("echo", payload, Duration::from_secs(10)).await?;
                latencies.push(sent.elapsed());
            }
            return figures(&latencies, start.elapsed());
        }
        let mut pipeline = a.pipeline::<Payload, Payload>("echo", Duration::from_secs(10));
        let mut sent_at = HashMap::with_capacity(window as usize);
        let mut sent = 0;
        while sent < window.min(n) {
            sent_at.insert(pipeline.send(payload).await?, Instant::now());
            sent += 1;
        }
        while let Some((ticket, reply)) = pipeline.next().await {
            reply?;
            let at = sent_at.remove(&ticket).context("unknown ticket")?;
            latencies.push(at.elapsed());
            if sent < n {
                sent_at.insert(pipeline.send(payload).await?, Instant::now());
                sent += 1;
            }
        }
        figures(&latencies, start.elapsed())
    }

    /// Keeps `window` independent asks in flight from one task, each its
    /// own future in a `FuturesUnordered`.
    async fn independent_asks(&self, n: u64, window: u64) -> anyhow::Result<AskFigures> {
        let a = self.b.peer("a")?;
        let payload = Payload([7; PAYLOAD]);
        let ask = |a: PeerRef| async move {
            let sent = Instant::now();
            let _: Payload = a.ask("echo", payload, Duration::from_secs(10)).await?;
            anyhow::Ok(sent.elapsed())
        };
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        let mut in_flight = FuturesUnordered::new();
        let mut sent = 0;
        while sent < window.min(n) {
            in_flight.push(ask(a.clone()));
            sent += 1;
        }
        while let Some(latency) = in_flight.next().await {
            latencies.push(latency?);
            if sent < n {
                in_flight.push(ask(a.clone()));
                sent += 1;
            }
        }
        figures(&latencies, start.elapsed())
    }
}

/// A bare quinn connection with mesh framing: a client and a server task.
struct RawPair {
    conn: quinn::Connection,
    _endpoints: (quinn::Endpoint, quinn::Endpoint),
}

/// First byte of a raw stream: what the server does with its frames.
const RAW_SINK: u8 = 1;
const RAW_ECHO: u8 = 2;
const RAW_COUNT: u8 = 3;

/// How the raw sender produces its tells.
#[derive(Clone, Copy, PartialEq)]
enum RawTell {
    /// Each message framed as it is sent and decoded as it arrives.
    Framed,
    /// One pre-built frame written again and again, only counted.
    Prebuilt,
}

impl RawPair {
    async fn start() -> anyhow::Result<Self> {
        let transport = Arc::new(transport_config(
            Duration::from_secs(5),
            Duration::from_secs(1),
        ));
        let server_tls = QuicTls::new(&TlsSettings::InsecureDev, "server", transport.clone())?;
        let client_tls = QuicTls::new(&TlsSettings::InsecureDev, "client", transport)?;
        // The same sockets as a node's (enlarged buffers), so that only the
        // mesh layers differ.
        let endpoint = |server_config| {
            quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                server_config,
                mesh::bind_udp("127.0.0.1:0".parse().expect("loopback address"))?,
                Arc::new(quinn::TokioRuntime),
            )
        };
        let server = endpoint(Some(server_tls.server))?;
        let mut client = endpoint(None)?;
        client.set_default_client_config(client_tls.client);
        let server_addr = server.local_addr()?;
        let accept = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accept.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((send, recv)) = conn.accept_bi().await {
                        tokio::spawn(raw_serve(send, recv));
                    }
                });
            }
        });
        let conn = client.connect(server_addr, "mesh.node")?.await?;
        Ok(Self {
            conn,
            _endpoints: (server, client),
        })
    }

    async fn tell(&self, n: u64, how: RawTell) -> anyhow::Result<f64> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        let kind = match how {
            RawTell::Framed => RAW_SINK,
            RawTell::Prebuilt => RAW_COUNT,
        };
        send.write_all(&[kind]).await?;
        let payload = Payload([7; PAYLOAD]);
        let frame = encode_frame(MAX_FRAME, |buf| {
            buf.extend_from_slice(&payload.0);
            Ok(())
        })?;
        let prebuilt: Vec<u8> = frame.repeat(1024);
        let mut batch = Vec::with_capacity(prebuilt.len() * 2);
        let start = Instant::now();
        let mut sent = 0;
        while sent < n {
            let k = (n - sent).min(1024);
            match how {
                RawTell::Prebuilt => {
                    send.write_all(&prebuilt[..frame.len() * k as usize])
                        .await?
                }
                RawTell::Framed => {
                    batch.clear();
                    for _ in 0..k {
                        encode_frame_into(&mut batch, MAX_FRAME, |buf| {
                            put_postcard(buf, &payload)
                        })?;
                    }
                    send.write_all(&batch).await?;
                }
            }
            sent += k;
        }
        send.finish()?;
        let mut done = [0u8; 8];
        recv.read_exact(&mut done).await?;
        anyhow::ensure!(u64::from_be_bytes(done) == n, "raw sink lost frames");
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// Keeps `window` requests in flight on one stream, each answered by an echo.
    async fn asks(&self, n: u64, window: u64) -> anyhow::Result<AskFigures> {
        let (mut send, recv) = self.conn.open_bi().await?;
        send.write_all(&[RAW_ECHO]).await?;
        let mut replies = FrameReader::new(recv, MAX_FRAME);
        let request = |id: u64| {
            encode_frame(MAX_FRAME, |buf| {
                buf.extend_from_slice(&id.to_be_bytes());
                buf.extend_from_slice(&[7u8; PAYLOAD - 8]);
                Ok(())
            })
        };
        let mut sent_at = vec![Instant::now(); n as usize];
        let mut latencies = Vec::with_capacity(n as usize);
        let start = Instant::now();
        let mut sent = 0u64;
        let mut first = Vec::new();
        while sent < window.min(n) {
            sent_at[sent as usize] = Instant::now();
            first.extend_from_slice(&request(sent)?);
            sent += 1;
        }
        send.write_all(&first).await?;
        for _ in 0..n {
            let buf = replies.next().await?.context("raw echo ended")?;
            let id = u64::from_be_bytes(buf[..8].try_into()?);
            latencies.push(sent_at[id as usize].elapsed());
            if sent < n {
                sent_at[sent as usize] = Instant::now();
                send.write_all(&request(sent)?).await?;
                sent += 1;
            }
        }
        send.finish()?;
        figures(&latencies, start.elapsed())
    }
}

/// Server side of a raw stream: count frames (answering the count at the end), or echo each.
async fn raw_serve(mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let mut kind = [0u8];
    if recv.read_exact(&mut kind).await.is_err() {
        return;
    }
    let mut frames = FrameReader::new(recv, MAX_FRAME);
    let mut count = 0u64;
    while let Ok(Some(buf)) = frames.next().await {
        count += 1;
        if kind[0] == RAW_SINK {
            // Handed on as a value, as the mesh hands it to its service.
            let Ok(message) = postcard::from_bytes::<Payload>(buf) else {
                return;
            };
            std::hint::black_box(message);
        }
        if kind[0] == RAW_ECHO {
            let Ok(frame) = encode_frame(MAX_FRAME, |out| {
                out.extend_from_slice(buf);
                Ok(())
            }) else {
                return;
            };
            if send.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
    if kind[0] != RAW_ECHO {
        let _ = send.write_all(&count.to_be_bytes()).await;
    }
    let _ = send.finish();
}
