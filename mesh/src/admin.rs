//! The admin HTTP API of a node.
//!
//! - `GET /health`, `GET /alive` -> `{"status":"ok"}`: the process serves
//!   (a Kubernetes liveness probe)
//! - `GET /ready` -> 200 `{"ready":true}` while this node is Up and every
//!   registered readiness check passes (sharding: every entity type's
//!   region is registered with a coordinator), else 503 with the reasons
//!   (a readiness probe)
//! - `POST /leave` -> 202: the node leaves the cluster gracefully;
//!   `POST /down/{member}` -> 202 `{"downed":"name#gen"}` (404 if no live
//!   member has that name): an operator's manual Down. Both need
//!   `Authorization: Bearer <token>` with the node's
//!   [`crate::NodeConfig::admin_token`]; without it (or with none set) they
//!   answer 401. Reads stay open.
//! - `GET /members` -> one [`MemberRow`] per member, oldest first:
//!   `[{"name","addr","generation","status","reachable","unreachable_by","roles"}]`;
//!   `GET /members?all=true` also lists the departed incarnations still in
//!   gossip (status `removed`)
//! - `GET /cluster` -> [`ClusterView`]: this node's status, the oldest member,
//!   the singleton hosts, the downing strategy and its timers, and the pending
//!   split-brain decision with the time left before it is taken
//! - `GET /stats` -> the node's counters
//! - `GET /metrics` -> every series of the node's [`crate::metrics::Metrics`]
//!   registry (mesh, membership, and what other libraries registered, such
//!   as sharding), in the OpenMetrics text format Prometheus scrapes
//! - `GET /{view}` -> a view another part of the program registered with
//!   [`Node::register_admin_view`] (sharding registers `/sharding`); an
//!   unknown view is a 404 with `{"error": ...}`
//!
//! Node ids appear as `name#generation`; durations as `"1500ms"`.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use membership::{Decision, Member, MemberStatus, NodeId, PendingDecision};
use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterState, DowningSettings};
use crate::node::Node;
pub use crate::views::AdminView;

/// One row of `GET /members`.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRow {
    /// Node name.
    pub name: String,
    /// Advertise address.
    pub addr: String,
    /// Generation (start time in ms).
    pub generation: u64,
    /// Lifecycle status: `joining`, `up`, `leaving`, `exiting` or `down`
    /// (and `removed` under `?all=true`).
    pub status: MemberStatus,
    /// Whether no observer reports the member unreachable.
    pub reachable: bool,
    /// The observers (`name#generation`) that report it unreachable.
    pub unreachable_by: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// The app version it gossips (`null`: none, the lowest).
    pub app_version: Option<String>,
}

impl From<Member> for MemberRow {
    fn from(member: Member) -> Self {
        MemberRow {
            addr: member.addr.to_string(),
            status: member.status,
            reachable: member.reachability.is_reachable(),
            unreachable_by: ids(member.reachability.observers()),
            roles: member.roles.into_iter().collect(),
            app_version: member.app_version.map(String::from),
            name: member.id.name.into(),
            generation: member.id.generation,
        }
    }
}

/// `GET /cluster`.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    /// This node (`name#generation`).
    pub node: String,
    /// This node's status.
    pub status: MemberStatus,
    /// The oldest member that is neither Down nor Removed.
    pub oldest: Option<String>,
    /// Where a singleton for any role runs: the member that became Up first.
    pub singleton_host: Option<String>,
    /// The singleton host of each role offered by some member.
    pub singleton_hosts: BTreeMap<String, Option<String>>,
    /// The downing strategy and its timers.
    pub downing: DowningSettings,
    /// The decision the split-brain resolver will take if the view stays as
    /// it is; `null` while every member is reachable.
    pub pending_decision: Option<PendingView>,
    /// Whether this node's side would survive that decision.
    pub would_survive: bool,
    /// The peers this node sends heartbeats to.
    pub monitored: Vec<String>,
    /// How many members have each status, and how many are unreachable.
    pub member_counts: BTreeMap<String, usize>,
}

/// A pending split-brain decision, with its timer.
#[derive(Clone, Debug, Serialize)]
pub struct PendingView {
    /// The member that will take it: the oldest of this node's side.
    pub decider: String,
    /// What it will decide.
    pub decision: Decision,
    /// Whom the decision downs.
    pub to_down: Vec<String>,
    /// Members reported unreachable.
    pub unreachable: Vec<String>,
    /// Members unreachable from some observers and reachable from others.
    pub indirectly_connected: Vec<String>,
    /// The view kept changing too long: the decision is down-all.
    pub unstable: bool,
    /// Time left until the view counts as stable and the decision is due.
    #[serde(with = "membership::duration::human")]
    pub decide_in: std::time::Duration,
}

impl PendingView {
    fn new(pending: PendingDecision, now: Instant) -> Self {
        PendingView {
            decider: pending.decider.to_string(),
            decision: pending.decision,
            to_down: ids(&pending.to_down),
            unreachable: ids(&pending.unreachable),
            indirectly_connected: ids(&pending.indirectly_connected),
            unstable: pending.unstable,
            decide_in: pending.decide_at.saturating_duration_since(now),
        }
    }
}

impl ClusterView {
    /// The view of `state` at `now` (the pending decision's timer counts down).
    pub fn new(state: ClusterState, now: Instant) -> Self {
        let mut member_counts = BTreeMap::new();
        for member in &state.members {
            *member_counts.entry(member.status.to_string()).or_insert(0) += 1;
            if !member.reachability.is_reachable() {
                *member_counts.entry("unreachable".to_string()).or_insert(0) += 1;
            }
        }
        member_counts.insert("total".to_string(), state.members.len());
        ClusterView {
            node: state.self_id.to_string(),
            status: state.self_status,
            oldest: state.oldest.as_ref().map(ToString::to_string),
            singleton_host: state.singleton_host.as_ref().map(ToString::to_string),
            singleton_hosts: state
                .singleton_hosts
                .into_iter()
                .map(|(role, host)| (role, host.as_ref().map(ToString::to_string)))
                .collect(),
            downing: state.downing,
            pending_decision: state
                .pending_decision
                .map(|pending| PendingView::new(pending, now)),
            would_survive: state.would_survive,
            monitored: ids(&state.monitored),
            member_counts,
        }
    }
}

fn ids<'a>(ids: impl IntoIterator<Item = &'a NodeId>) -> Vec<String> {
    ids.into_iter().map(ToString::to_string).collect()
}

/// The admin routes for `node`.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/health", get(alive))
        .route("/alive", get(alive))
        .route("/ready", get(ready))
        .route("/leave", post(leave))
        .route("/down/{member}", post(down))
        .route("/members", get(members))
        .route("/cluster", get(cluster))
        .route(
            "/stats",
            get(|State(node): State<Node>| async move { Json(node.stats()) }),
        )
        .route("/metrics", get(metrics))
        .route("/{view}", get(registered_view))
        .with_state(node)
}

/// The query of `GET /members`.
#[derive(Debug, Default, Deserialize)]
struct MembersQuery {
    /// Also the departed incarnations still in gossip.
    #[serde(default)]
    all: bool,
}

async fn members(
    State(node): State<Node>,
    Query(query): Query<MembersQuery>,
) -> Json<Vec<MemberRow>> {
    let mut members = node.cluster_members();
    if query.all {
        members.extend(node.cluster_state().departed);
        members.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Json(members.into_iter().map(MemberRow::from).collect())
}

async fn alive() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn ready(State(node): State<Node>) -> (StatusCode, Json<serde_json::Value>) {
    let mut reasons = Vec::new();
    let status = node.self_status();
    if status != MemberStatus::Up {
        reasons.push(format!("this node is {status}, not up"));
    }
    for (name, check) in node.readiness_checks() {
        if let Err(reason) = check().await {
            reasons.push(format!("{name}: {reason}"));
        }
    }
    if reasons.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({"ready": true})))
    } else {
        let body = serde_json::json!({"ready": false, "reasons": reasons});
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

/// Whether the request carries the node's management token.
fn authorized(
    node: &Node,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, Json<serde_json::Value>)> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let token = node.config().admin_token.as_ref();
    match (token, presented) {
        (Some(token), Some(presented)) if token.matches(presented) => Ok(()),
        (None, _) => Err(unauthorized("no admin token is configured on this node")),
        _ => Err(unauthorized(
            "a valid `Authorization: Bearer <token>` is required",
        )),
    }
}

fn unauthorized(message: &str) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({ "error": message })),
    )
}

async fn leave(
    State(node): State<Node>,
    headers: HeaderMap,
) -> (StatusCode, Json<serde_json::Value>) {
    if let Err(refused) = authorized(&node, &headers) {
        return refused;
    }
    let id = node.id().to_string();
    tokio::spawn(async move { node.leave().await });
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "leaving": id })),
    )
}

async fn down(
    State(node): State<Node>,
    Path(member): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<serde_json::Value>) {
    if let Err(refused) = authorized(&node, &headers) {
        return refused;
    }
    match node.down_member(&member).await {
        Some(id) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "downed": id.to_string() })),
        ),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no live member named {member:?}") })),
        ),
    }
}

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(
    State(node): State<Node>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let text = node.metrics().encode();
    ([(axum::http::header::CONTENT_TYPE, OPENMETRICS)], text)
}

async fn cluster(State(node): State<Node>) -> Json<ClusterView> {
    Json(ClusterView::new(node.cluster_state(), Instant::now()))
}

async fn registered_view(
    State(node): State<Node>,
    Path(name): Path<String>,
) -> (StatusCode, Json<serde_json::Value>) {
    let view = node.admin_view(&name);
    match view {
        Some(view) => (StatusCode::OK, Json(view().await)),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no admin view {name:?}") })),
        ),
    }
}

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, node: Node) -> std::io::Result<()> {
    axum::serve(listener, router(node)).await
}
