//! The admin HTTP API of a node.
//!
//! - `GET /health` -> `{"status":"ok"}`
//! - `GET /members` -> `[{"name","addr","generation","status","reachable","roles"}]`
//! - `GET /stats` -> the node's counters

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::Node;

/// One row of `GET /members`.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRow {
    /// Node name.
    pub name: String,
    /// Advertise address.
    pub addr: String,
    /// Generation (start time in ms).
    pub generation: u64,
    /// Lifecycle status.
    pub status: String,
    /// Whether the member is reachable.
    pub reachable: bool,
    /// Roles.
    pub roles: Vec<String>,
}

/// The admin routes for `node`.
pub fn router(node: Node) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/members", get(members))
        .route(
            "/stats",
            get(|State(node): State<Node>| async move { Json(node.stats()) }),
        )
        .with_state(node)
}

async fn members(State(node): State<Node>) -> Json<Vec<MemberRow>> {
    Json(
        node.members()
            .into_iter()
            .map(|m| MemberRow {
                name: m.id.name,
                addr: m.addr.to_string(),
                generation: m.id.generation,
                status: "Up".into(),
                reachable: true,
                roles: m.roles,
            })
            .collect(),
    )
}

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, node: Node) -> std::io::Result<()> {
    axum::serve(listener, router(node)).await
}
