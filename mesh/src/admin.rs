//! The admin HTTP API of a node.
//!
//! - `GET /health` -> `{"status":"ok"}`
//! - `GET /members` -> one [`MemberRow`] per member, oldest first:
//!   `[{"name","addr","generation","status","reachable","unreachable_by","roles"}]`;
//!   `GET /members?all=true` also lists the departed incarnations still in
//!   gossip (status `removed`)
//! - `GET /cluster` -> [`ClusterView`]: this node's status, the oldest member,
//!   the singleton hosts, the downing strategy and its timers, and the pending
//!   split-brain decision with the time left before it is taken
//! - `GET /stats` -> the node's counters
//! - `GET /{view}` -> a view another part of the program registered with
//!   [`Node::register_admin_view`] (sharding registers `/sharding`); an
//!   unknown view is a 404 with `{"error": ...}`
//!
//! Node ids appear as `name#generation`; durations as `"1500ms"`.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
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
}

impl From<Member> for MemberRow {
    fn from(member: Member) -> Self {
        MemberRow {
            addr: member.addr.to_string(),
            status: member.status,
            reachable: member.reachability.is_reachable(),
            unreachable_by: ids(member.reachability.observers()),
            roles: member.roles.into_iter().collect(),
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
    /// Where a singleton for any role runs: the oldest Up member.
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
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/members", get(members))
        .route("/cluster", get(cluster))
        .route(
            "/stats",
            get(|State(node): State<Node>| async move { Json(node.stats()) }),
        )
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
