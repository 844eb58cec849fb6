//! The JSON control API over HTTP, for the proxy run as a process.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `GET /links` | | [`LinksView`]: seed, nodes, every link's rule and counters |
//! | `PUT /links/{from}/{to}` | a [`LinkRule`] | the link's [`LinkStatus`] |
//! | `POST /partition` | [`PartitionRequest`]: `{"a": ["n1"], "b": ["n2", "n3"]}` | [`LinksView`] |
//! | `POST /heal` | | [`LinksView`] |
//!
//! ```text
//! $ curl -X PUT localhost:7000/links/a/b -d '{"loss": 0.2, "delay": {"ms": 50}}'
//! {"from":"a","to":"b","rule":{"loss":0.2,"delay":{"ms":50,"jitter_ms":0}},
//!  "counters":{"passed":0,"dropped":0,"delayed":0,"duplicated":0,"reordered":0}}
//! ```
//!
//! A refused request changes nothing and gets a 4xx status with
//! `{"error": "..."}`: 404 for an unknown node or path, 405 for a wrong
//! method, 400 for malformed JSON, unknown fields, probabilities outside
//! `[0, 1]` and the like.

use std::io;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use super::error::ProxyError;
use super::link::LinkStatus;
use super::network::ProxyNetwork;
use super::rule::LinkRule;

/// Answer of `GET /links`, `POST /partition` and `POST /heal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinksView {
    /// The network's seed.
    pub seed: u64,
    /// Registered nodes, by name.
    pub nodes: Vec<NodeView>,
    /// Every link: see [`ProxyNetwork::links`].
    pub links: Vec<LinkStatus>,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// Its real address.
    pub addr: SocketAddr,
}

/// Body of `POST /partition`: both directions between every node of `a` and
/// every node of `b` are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionRequest {
    /// One side.
    pub a: Vec<String>,
    /// The other side.
    pub b: Vec<String>,
}

/// The control API's routes over `network`.
pub fn router(network: ProxyNetwork) -> Router {
    Router::new()
        .route("/links", get(get_links))
        .route("/links/{from}/{to}", put(put_link))
        .route("/partition", post(post_partition))
        .route("/heal", post(post_heal))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such path") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this path",
            )
        })
        .with_state(network)
}

/// Serves the control API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, network: ProxyNetwork) -> io::Result<()> {
    axum::serve(listener, router(network)).await
}

/// A refused request: status plus `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ProxyError> for ApiError {
    fn from(error: ProxyError) -> Self {
        let status = match error {
            ProxyError::UnknownNode(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

/// Parses a body ourselves so that every refusal is JSON, whatever the
/// content type.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed body: {error}")))
}

fn view(network: &ProxyNetwork) -> LinksView {
    LinksView {
        seed: network.seed(),
        nodes: network
            .nodes()
            .into_iter()
            .map(|(name, addr)| NodeView { name, addr })
            .collect(),
        links: network.links(),
    }
}

async fn get_links(State(network): State<ProxyNetwork>) -> Json<LinksView> {
    Json(view(&network))
}

async fn put_link(
    State(network): State<ProxyNetwork>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<LinkStatus>, ApiError> {
    let rule: LinkRule = parse(&body)?;
    network.set_rule(&from, &to, rule.clone())?;
    Ok(Json(LinkStatus {
        counters: network.link_counters(&from, &to),
        from,
        to,
        rule,
    }))
}

async fn post_partition(
    State(network): State<ProxyNetwork>,
    body: Bytes,
) -> Result<Json<LinksView>, ApiError> {
    let request: PartitionRequest = parse(&body)?;
    network.partition(&request.a, &request.b)?;
    Ok(Json(view(&network)))
}

async fn post_heal(State(network): State<ProxyNetwork>) -> Json<LinksView> {
    network.heal();
    Json(view(&network))
}
