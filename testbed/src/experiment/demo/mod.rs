//! The service under test: `testbed node`.
//!
//! One sharded entity type, `kv`, whose state lives outside the process, as
//! a user's would live in a database: an append-only file per entity in the
//! store directory ([`crate::experiment::store`]), loaded when the entity
//! starts. The file needs no lock because sharding promises one writer.
//!
//! HTTP (the same port serves the node's admin API: `/members`, `/cluster`,
//! `/stats`, `/sharding`):
//!
//! | request | answer |
//! |---|---|
//! | `GET /kv/{key}` | `{"value", "applied": false, "node"}` |
//! | `POST /kv/{key}/add?delta=D&tag=T` | the value after the add |
//! | `POST /kv/{key}/write?value=V&tag=T` | |
//! | `POST /kv/{key}/cas?from=A&to=B&tag=T` | `applied: false` when the value was not `A` |
//!
//! A write with a tag seen before is answered as the first time (retries are
//! safe). An error is `503` with [`OpError`]: `outcome` says whether the
//! operation surely did not happen (`fail`) or may have (`info`).
//!
//! The node exits with code 3 when the cluster downs it, and leaves the
//! cluster gracefully on SIGTERM or SIGINT (exit 0).

mod entity;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh::{Node, NodeConfig, TlsSettings};
use serde::{Deserialize, Serialize};
use sharding::{DeliveryError, EntityRef, EntityType, Sharding, ShardingConfig, ShardingError};

pub use entity::{DemoOp, DemoReply, StoredEntity};

use super::store::valid_key;

pub use mesh::process::EXIT_DOWNED;

/// How long the node waits for an entity's answer.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// The node's settings file (TOML): mesh, sharding and the demo's own.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// The mesh node; `name`, `listen`, `advertise` and `seeds` come from
    /// the command line.
    pub mesh: NodeConfig,
    /// Sharding.
    pub sharding: ShardingConfig,
    /// The demo entity.
    pub demo: DemoSettings,
}

/// Settings of the demo entity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Longest random wait between reading the state and appending, in ms
    /// (a stand-in for a database round trip). Default 0.
    pub io_delay_ms: u64,
}

/// Flags of `testbed node`.
#[derive(Clone, Debug, clap::Args)]
pub struct NodeArgs {
    /// Node name (must match its certificate).
    #[arg(long)]
    pub name: String,
    /// UDP address of the QUIC endpoint.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address other nodes reach this one at (a relay of the fault proxy).
    #[arg(long)]
    pub advertise: Option<SocketAddr>,
    /// Seed addresses, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<SocketAddr>,
    /// HTTP address of the demo API and the admin API.
    #[arg(long)]
    pub http: SocketAddr,
    /// Directory with ca.pem, NAME.pem and NAME.key (`mesh-node certs init`).
    #[arg(long)]
    pub tls_dir: PathBuf,
    /// Directory of the entities' files (shared by every node of a run).
    #[arg(long)]
    pub store: PathBuf,
    /// Settings file (TOML, see [`DemoConfig`]).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Version of the application this node runs (overrides the settings
    /// file's `mesh.app_version`; see [`mesh::NodeConfig::app_version`]).
    #[arg(long)]
    pub app_version: Option<mesh::AppVersion>,
}

/// The answer to an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpAnswer {
    /// The value after the operation.
    pub value: i64,
    /// Whether a write took effect.
    pub applied: bool,
    /// The node that answered.
    pub node: String,
}

/// A failed operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpError {
    /// What went wrong.
    pub error: String,
    /// `fail`: surely not applied; `info`: may have been.
    pub outcome: String,
}

#[derive(Clone)]
struct App {
    kv: EntityRef<StoredEntity>,
    node: String,
}

#[derive(Deserialize)]
struct AddQuery {
    delta: i64,
    tag: String,
}

#[derive(Deserialize)]
struct WriteQuery {
    value: i64,
    tag: String,
}

#[derive(Deserialize)]
struct CasQuery {
    from: i64,
    to: i64,
    tag: String,
}

/// Runs a demo node until it is downed (exit [`EXIT_DOWNED`]) or asked to
/// stop by SIGINT/SIGTERM (graceful leave, exit 0), as
/// [`mesh::process::serve_until_stopped`] does.
pub async fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<DemoConfig>(&text)
                .with_context(|| format!("invalid settings in {}", path.display()))?
        }
        None => DemoConfig::default(),
    };
    config.mesh.name = args.name.clone();
    config.mesh.listen = args.listen;
    config.mesh.advertise = args.advertise;
    config.mesh.seeds = args.seeds.clone();
    if args.app_version.is_some() {
        config.mesh.app_version = args.app_version.clone();
    }
    config.mesh.validate()?;
    std::fs::create_dir_all(&args.store)
        .with_context(|| format!("cannot create the store {}", args.store.display()))?;
    let tls = TlsSettings::from_dir(&args.tls_dir, &args.name)?;
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot bind the HTTP address {}", args.http))?;
    let node = Node::builder(&args.name)
        .config(config.mesh.clone())
        .tls(tls)
        .start()
        .await?;
    let sharding = Sharding::start(&node, config.sharding.clone()).await?;
    let store = args.store.clone();
    let me = node.id().to_string();
    let io_delay = Duration::from_millis(config.demo.io_delay_ms);
    let kv = sharding.init(
        EntityType::new("kv", move |key| {
            StoredEntity::new(&store, key, &me, io_delay)
        })
        .passivate_after(None),
    )?;
    let app = App {
        kv,
        node: args.name.clone(),
    };
    let routes = Router::new()
        .route("/kv/{key}", get(read))
        .route("/kv/{key}/add", post(add))
        .route("/kv/{key}/write", post(write))
        .route("/kv/{key}/cas", post(cas))
        .with_state(app);
    let router = mesh::admin::router(node.clone()).merge(routes);
    tracing::info!(node = %node.id(), http = %args.http, "demo node ready");
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let stop = async { mesh::process::signal().await.map(|()| "signal received") };
    tokio::select! {
        served = server => {
            served.context("the HTTP server panicked")??;
            anyhow::bail!("the HTTP server stopped");
        }
        code = mesh::process::serve_until_stopped(&node, stop) => Ok(code?),
    }
}

/// An operation's HTTP answer.
struct Answer(Result<OpAnswer, (StatusCode, OpError)>);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(answer) => Json(answer).into_response(),
            Err((status, error)) => (status, Json(error)).into_response(),
        }
    }
}

async fn read(State(app): State<App>, Path(key): Path<String>) -> Answer {
    ask(&app, key, DemoOp::Read).await
}

async fn add(State(app): State<App>, Path(key): Path<String>, Query(q): Query<AddQuery>) -> Answer {
    let op = DemoOp::Add {
        delta: q.delta,
        tag: q.tag,
    };
    ask(&app, key, op).await
}

async fn write(
    State(app): State<App>,
    Path(key): Path<String>,
    Query(q): Query<WriteQuery>,
) -> Answer {
    let op = DemoOp::Write {
        value: q.value,
        tag: q.tag,
    };
    ask(&app, key, op).await
}

async fn cas(State(app): State<App>, Path(key): Path<String>, Query(q): Query<CasQuery>) -> Answer {
    let op = DemoOp::Cas {
        from: q.from,
        to: q.to,
        tag: q.tag,
    };
    ask(&app, key, op).await
}

async fn ask(app: &App, key: String, op: DemoOp) -> Answer {
    let refuse = |status, error: String, outcome: &str| {
        Answer(Err((
            status,
            OpError {
                error,
                outcome: outcome.to_string(),
            },
        )))
    };
    if !valid_key(&key) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("bad key {key:?}: 1 to 64 letters, digits, - or _"),
            "fail",
        );
    }
    match app.kv.ask(&key, op, ASK_TIMEOUT).await {
        Ok(Ok(reply)) => Answer(Ok(OpAnswer {
            value: reply.value,
            applied: reply.applied,
            node: app.node.clone(),
        })),
        Ok(Err(store)) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store: {store}"),
            "info",
        ),
        Err(error) => {
            let outcome = if surely_not_applied(&error) {
                "fail"
            } else {
                "info"
            };
            refuse(StatusCode::SERVICE_UNAVAILABLE, error.to_string(), outcome)
        }
    }
}

/// Errors raised before the message could reach any entity. Everything
/// else (timeouts, a lost reply, an unreachable home) may have happened.
fn surely_not_applied(error: &ShardingError) -> bool {
    matches!(
        error,
        ShardingError::Delivery(
            DeliveryError::BufferFull { .. } | DeliveryError::NoSuchShard { .. }
        ) | ShardingError::Backpressure(_)
            | ShardingError::Config(_)
            | ShardingError::AlreadyStarted(_)
    )
}
