//! Shared helpers of the mesh integration tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh::tls::ClusterCa;
use mesh::{Node, Request, Responder, TlsSettings};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Starts a node named `name` with credentials from `ca`, joining through `seeds`.
pub async fn start_node(ca: &ClusterCa, name: &str, seeds: &[&Node]) -> Node {
    Node::builder(name)
        .seeds(seeds.iter().map(|n| n.advertise_addr()).collect())
        .tls(TlsSettings::issued_by(ca, name).unwrap())
        .start()
        .await
        .unwrap()
}

/// Describes what every node sees, for failure messages.
pub fn views(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| {
            format!(
                "  {} ({}): members {:?}, cluster {:?}, connected {:?}, stats {:?}\n",
                n.id(),
                n.self_status(),
                n.members()
                    .iter()
                    .map(|m| m.id.to_string())
                    .collect::<Vec<_>>(),
                n.cluster_members()
                    .iter()
                    .map(|m| {
                        let observers: Vec<String> =
                            m.reachability.observers().map(|o| o.to_string()).collect();
                        if observers.is_empty() {
                            format!("{} {}", m.id, m.status)
                        } else {
                            format!("{} {} unreachable by {observers:?}", m.id, m.status)
                        }
                    })
                    .collect::<Vec<_>>(),
                n.connected_peers()
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
                n.stats()
            )
        })
        .collect()
}

/// Waits until `condition` holds, polling; panics after `deadline` with every node's view.
pub async fn wait_until(
    deadline: Duration,
    what: &str,
    nodes: &[&Node],
    mut condition: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > deadline {
            panic!(
                "timed out after {deadline:?} waiting for {what}; what each node sees:\n{}",
                views(nodes)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `names.len()` nodes, the later ones seeded with the first, and waits
/// until all see each other.
pub async fn cluster(ca: &ClusterCa, names: &[&str]) -> Vec<Node> {
    let first = start_node(ca, names[0], &[]).await;
    let mut nodes = vec![first.clone()];
    for name in &names[1..] {
        nodes.push(start_node(ca, name, &[&first]).await);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(
        Duration::from_secs(10),
        "all members to see each other",
        &refs,
        || refs.iter().all(|n| n.members().len() == names.len()),
    )
    .await;
    nodes
}

/// Whether `node` sees exactly `expected` members, every one Up and reachable.
pub fn sees_all_up(node: &Node, expected: usize) -> bool {
    let members = node.cluster_members();
    members.len() == expected
        && members
            .iter()
            .all(|m| m.status == mesh::MemberStatus::Up && m.reachability.is_reachable())
}

/// Like [`cluster`], and waits until every node sees every member Up.
pub async fn cluster_up(ca: &ClusterCa, names: &[&str]) -> Vec<Node> {
    let nodes = cluster(ca, names).await;
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(
        Duration::from_secs(10),
        "every member Up everywhere",
        &refs,
        || refs.iter().all(|n| sees_all_up(n, names.len())),
    )
    .await;
    nodes
}

/// Registers `service` on `node` to record every message it is told, in
/// arrival order.
pub fn recorded<M>(node: &Node, service: &str) -> Arc<Mutex<Vec<M>>>
where
    M: serde::de::DeserializeOwned + Clone + Send + 'static,
{
    recording(node, service, |req: &Request<M, ()>| req.message().clone())
}

/// Registers `service` on `node` to record what `record` takes of every
/// message it is told, in arrival order.
pub fn recording<M, T>(
    node: &Node,
    service: &str,
    record: impl Fn(&Request<M, ()>) -> T + Send + Sync + 'static,
) -> Arc<Mutex<Vec<T>>>
where
    M: serde::de::DeserializeOwned + Send + 'static,
    T: Send + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    node.register_service(service, move |req: Request<M, ()>| {
        sink.lock().unwrap().push(record(&req));
    })
    .unwrap();
    seen
}

/// Requests a service keeps unanswered, with their messages.
pub type Held = Arc<Mutex<Vec<(u64, Responder<u64>)>>>;

/// Registers `service`, which keeps the responders of the requests its
/// `hold` picks (by message) and answers the others with their message.
pub fn holding(
    node: &Node,
    service: &str,
    hold: impl Fn(u64) -> bool + Send + Sync + 'static,
) -> Held {
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    node.register_service(service, move |req: Request<u64, u64>| {
        let (message, responder) = req.into_parts();
        if hold(message) {
            keep.lock().unwrap().push((message, responder));
        } else {
            responder.reply(message);
        }
    })
    .unwrap();
    held
}

/// Registers `tell_then_reply` on `node`: asked with `k`, it tells `to`'s
/// `seq` service 0..k, then replies `k`.
pub fn tell_then_reply(node: &Node, to: &str) {
    let to = node.peer(to).unwrap();
    node.register_service("tell_then_reply", move |req: Request<u64, u64>| {
        let tells = *req.message();
        for i in 0..tells {
            to.tell("seq", i).unwrap();
        }
        req.reply(tells);
    })
    .unwrap();
}
