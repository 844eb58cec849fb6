//! Sampling every node's admin API: membership view and shard table.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::http::HttpClient;

/// One member as a node sees it (a row of `GET /members`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSeen {
    /// Its name.
    pub name: String,
    /// Its generation.
    #[serde(default)]
    pub generation: u64,
    /// `joining`, `up`, `leaving`, `exiting`, `down`, `removed`.
    pub status: String,
    /// No observer reports it unreachable.
    pub reachable: bool,
    /// Who does.
    #[serde(default)]
    pub unreachable_by: Vec<String>,
}

/// One sample of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Nanoseconds since the run started.
    pub time: u64,
    /// The node asked.
    pub node: String,
    /// Its membership view.
    pub members: Vec<MemberSeen>,
    /// Where it believes the coordinator runs (`name#generation`).
    pub coordinator: Option<String>,
    /// Shard -> region, if it hosts the coordinator.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocation: BTreeMap<u32, String>,
    /// Shards it runs.
    pub active: Vec<u32>,
    /// Shards it holds fenced.
    pub fenced: Vec<u32>,
}

impl Sample {
    /// How the node sees itself: its own status, or `unreachable` when
    /// some observer reports it so.
    pub fn self_status(&self) -> Option<String> {
        let me = self.me()?;
        Some(if me.status == "up" && !me.reachable {
            "unreachable".to_string()
        } else {
            me.status.clone()
        })
    }

    /// The observers that report this node unreachable, as it sees them.
    pub fn unreachable_by(&self) -> Vec<String> {
        self.me()
            .map(|me| me.unreachable_by.clone())
            .unwrap_or_default()
    }

    /// This node's own row: after a restart the old incarnation may still be
    /// listed (Down), so the youngest of that name.
    fn me(&self) -> Option<&MemberSeen> {
        self.members
            .iter()
            .filter(|m| m.name == self.node)
            .max_by_key(|m| m.generation)
    }
}

#[derive(Deserialize)]
struct ShardingView {
    kv: Option<TypeView>,
}

#[derive(Deserialize)]
struct TypeView {
    region: RegionView,
    coordinator: Option<CoordinatorView>,
}

#[derive(Deserialize)]
struct RegionView {
    shards: Vec<ShardRow>,
}

#[derive(Deserialize)]
struct ShardRow {
    shard: u32,
    status: String,
}

#[derive(Deserialize)]
struct CoordinatorView {
    node: String,
    #[serde(default)]
    allocation: BTreeMap<u32, String>,
}

/// Asks one node for its views; `None` if it does not answer in time.
pub async fn sample(
    client: &mut HttpClient,
    node: &str,
    time: u64,
    timeout: Duration,
) -> Option<Sample> {
    let members = get(client, "/members", timeout).await?;
    let members: Vec<MemberSeen> = serde_json::from_slice(&members).ok()?;
    let sharding = get(client, "/sharding", timeout).await;
    let view = sharding
        .and_then(|body| serde_json::from_slice::<ShardingView>(&body).ok())
        .and_then(|v| v.kv);
    let mut sample = Sample {
        time,
        node: node.to_string(),
        members,
        coordinator: None,
        allocation: BTreeMap::new(),
        active: Vec::new(),
        fenced: Vec::new(),
    };
    if let Some(view) = view {
        for row in view.region.shards {
            match row.status.as_str() {
                "active" => sample.active.push(row.shard),
                _ => sample.fenced.push(row.shard),
            }
        }
        if let Some(coordinator) = view.coordinator {
            if coordinator.node.split('#').next() == Some(node) {
                sample.allocation = coordinator.allocation;
            }
            sample.coordinator = Some(coordinator.node);
        }
    }
    Some(sample)
}

async fn get(client: &mut HttpClient, path: &str, timeout: Duration) -> Option<hyper::body::Bytes> {
    match client.request(Method::GET, path, timeout).await {
        Ok((StatusCode::OK, body)) => Some(body),
        _ => None,
    }
}

/// Whether every node in `expected` sees all of them Up and reachable and
/// knows a coordinator.
pub fn converged(samples: &[Sample], expected: &[String]) -> bool {
    expected.iter().all(|node| {
        samples.iter().any(|s| {
            s.node == *node
                && s.coordinator.is_some()
                && expected.iter().all(|other| {
                    s.members
                        .iter()
                        .any(|m| m.name == *other && m.status == "up" && m.reachable)
                })
        })
    })
}

/// One line per sample: how each node sees the cluster (for a timeout).
pub fn describe(samples: &[Sample], nodes: &[String]) -> String {
    nodes
        .iter()
        .map(|node| match samples.iter().find(|s| s.node == *node) {
            Some(s) => format!(
                "{node} sees [{}] coordinator {}",
                s.members
                    .iter()
                    .map(|m| format!(
                        "{} {}{}",
                        m.name,
                        m.status,
                        if m.reachable { "" } else { " unreachable" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.coordinator.as_deref().unwrap_or("none")
            ),
            None => format!("{node}: no answer"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
