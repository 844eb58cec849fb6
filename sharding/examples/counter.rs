//! A sharded counter service: run one process per node, send increments to
//! any node over HTTP, and see on `GET /sharding` where each shard lives.
//!
//! ```text
//! cargo run --release -p sharding --example counter -- --name n1 --listen 127.0.0.1:7101 \
//!     --http 127.0.0.1:8101 --insecure-dev-tls
//! cargo run --release -p sharding --example counter -- --name n2 --listen 127.0.0.1:7102 \
//!     --seeds 127.0.0.1:7101 --http 127.0.0.1:8102 --insecure-dev-tls
//! cargo run --release -p sharding --example counter -- --name n3 --listen 127.0.0.1:7103 \
//!     --seeds 127.0.0.1:7101 --http 127.0.0.1:8103 --insecure-dev-tls
//!
//! curl -X POST 'http://127.0.0.1:8102/counter/c-42?add=5'   # -> {"id":"c-42","value":5,...}
//! curl http://127.0.0.1:8103/counter/c-42                    # the same counter, from n3
//! curl http://127.0.0.1:8101/sharding                        # allocation table, epoch, leases
//! ```
//!
//! The HTTP port also serves the node's admin API (`/health`, `/members`,
//! `/cluster`, `/stats`, `/sharding`). SIGINT (Ctrl-C) or SIGTERM leaves the
//! cluster gracefully, the node's shards moving to the others first, and
//! exits 0; a node the cluster downs exits with code 3 at once, so that an
//! orchestrator starts a new incarnation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use mesh::{Node, TlsSettings};
use serde::{Deserialize, Serialize};
use sharding::{Entity, EntityContext, EntityRef, EntityType, Sharding, ShardingConfig};

/// One counter entity.
struct Counter {
    value: u64,
}

/// What a counter understands.
#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    /// Add and answer the new value.
    Add(u64),
    /// Answer the value.
    Get,
}

impl Entity for Counter {
    type Message = CounterMsg;
    type Reply = u64;

    async fn handle(&mut self, _ctx: &mut EntityContext, message: CounterMsg) -> u64 {
        if let CounterMsg::Add(n) = message {
            self.value += n;
        }
        self.value
    }
}

#[derive(Parser)]
#[command(about = "A sharded counter service on a mesh node")]
struct Args {
    /// Node name (must match its certificate with --tls-dir).
    #[arg(long)]
    name: String,
    /// UDP address of the mesh node.
    #[arg(long)]
    listen: SocketAddr,
    /// Seed addresses, comma separated.
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<SocketAddr>,
    /// HTTP address of the counter API and the admin API.
    #[arg(long)]
    http: SocketAddr,
    /// Directory with ca.pem, NAME.pem and NAME.key (`mesh-node certs init`).
    #[arg(long, conflicts_with = "insecure_dev_tls")]
    tls_dir: Option<PathBuf>,
    /// Self-signed certificates, no verification: local experiments only.
    #[arg(long)]
    insecure_dev_tls: bool,
    /// Version of the application (dotted numbers): new and moved shards
    /// go to the nodes of the highest version. Roll out with a higher one.
    #[arg(long)]
    app_version: Option<mesh::AppVersion>,
}

#[derive(Serialize)]
struct CounterView {
    id: String,
    value: u64,
    shard: u32,
    answered_by: String,
}

#[derive(Deserialize)]
struct AddQuery {
    add: u64,
}

#[derive(Clone)]
struct App {
    counters: EntityRef<Counter>,
    node: String,
    shards: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let tls = match (&args.tls_dir, args.insecure_dev_tls) {
        (Some(dir), _) => TlsSettings::from_dir(dir, &args.name)?,
        (None, true) => TlsSettings::InsecureDev,
        (None, false) => anyhow::bail!("give --tls-dir DIR or --insecure-dev-tls"),
    };
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot bind the HTTP address {}", args.http))?;
    let node = Node::builder(&args.name)
        .listen(args.listen)
        .seeds(args.seeds.clone())
        .app_version(args.app_version.clone())
        .tls(tls)
        .start()
        .await?;
    let config = ShardingConfig::default();
    let shards = config.number_of_shards;
    let sharding = Sharding::start(&node, config).await?;
    let counters = sharding.init(EntityType::new("counter", |_id| Counter { value: 0 }))?;
    let app = App {
        counters,
        node: args.name.clone(),
        shards,
    };
    let routes = Router::new()
        .route("/counter/{id}", get(read).post(add))
        .with_state(app);
    let router = mesh::admin::router(node.clone()).merge(routes);
    tracing::info!(http = %args.http, "counter service ready");
    let serve = async {
        axum::serve(listener, router).await?;
        Ok("the HTTP server ended")
    };
    let stop = async {
        tokio::select! {
            served = serve => served,
            signal = mesh::process::signal() => signal.map(|()| "signal received"),
        }
    };
    Ok(mesh::process::serve_until_stopped(&node, stop).await?)
}

async fn read(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<CounterView>, (StatusCode, String)> {
    ask(&app, id, CounterMsg::Get).await
}

async fn add(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<AddQuery>,
) -> Result<Json<CounterView>, (StatusCode, String)> {
    ask(&app, id, CounterMsg::Add(query.add)).await
}

async fn ask(
    app: &App,
    id: String,
    message: CounterMsg,
) -> Result<Json<CounterView>, (StatusCode, String)> {
    let value = app
        .counters
        .ask(&id, message, Duration::from_secs(5))
        .await
        .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
    Ok(Json(CounterView {
        shard: sharding::shard_id(&id, app.shards).0,
        id,
        value,
        answered_by: app.node.clone(),
    }))
}
