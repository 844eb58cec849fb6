//! `GET /metrics` of a 3-node cluster under sharded asks: the exposition
//! parses line by line, and the key series of mesh, membership and
//! sharding are there with sane values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh::tls::ClusterCa;
use mesh::{MemberStatus, Node, TlsSettings};
use sharding::{Entity, EntityContext, EntityType, Sharding, ShardingConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SHARDS: u32 = 12;
const DEADLINE: Duration = Duration::from_secs(20);

struct Counter(u64);

impl Entity for Counter {
    type Message = u64;
    type Reply = u64;

    async fn handle(&mut self, _: &mut EntityContext, add: u64) -> u64 {
        self.0 += add;
        self.0
    }
}

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the OpenMetrics text strictly: every line is a `# HELP`,
/// `# TYPE`, `# UNIT` or sample line, and the text ends with `# EOF`.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the exposition does not end with `# EOF`")?;
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name) = (words.next(), words.next());
            let known = matches!(kind, Some("HELP" | "TYPE" | "UNIT"));
            if !known || !name.is_some_and(valid_name) {
                return Err(format!("bad comment line {line:?}"));
            }
            continue;
        }
        samples.push(sample(line).ok_or_else(|| format!("bad sample line {line:?}"))?);
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        value => value.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => (name, labels(rest.strip_suffix('}')?)?),
    };
    valid_name(name).then(|| (name.to_string(), labels, value))
}

fn labels(mut text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"")?;
        let end = rest.find('"')?;
        if !valid_name(key) {
            return None;
        }
        labels.insert(key.to_string(), rest[..end].to_string());
        text = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
    Some(labels)
}

/// The sum of every sample of `name` whose labels include `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// `GET /metrics` over HTTP/1.1.
async fn scrape(admin: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    body.to_string()
}

async fn start_node(ca: &ClusterCa, name: &str, seeds: &[&Node]) -> (Node, SocketAddr) {
    let node = Node::builder(name)
        .seeds(seeds.iter().map(|n| n.advertise_addr()).collect())
        .tls(TlsSettings::issued_by(ca, name).unwrap())
        .start()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    tokio::spawn(mesh::admin::serve(listener, node.clone()));
    (node, admin)
}

/// What each node's key series say, for a failure message.
fn views(scrapes: &[(String, Vec<Sample>)]) -> String {
    let keys = [
        "mesh_asks_total",
        "mesh_messages_sent_total",
        "membership_members",
        "sharding_shards",
        "sharding_entities",
        "sharding_coordinator_epoch",
    ];
    scrapes
        .iter()
        .map(|(node, samples)| {
            let values: Vec<String> = keys
                .iter()
                .map(|key| format!("{key}={}", sum(samples, key, &[])))
                .collect();
            let up = sum(samples, "membership_members", &[("status", "up")]);
            format!("  {node}: {} up={up}\n", values.join(" "))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_a_cluster_under_load() {
    let ca = ClusterCa::generate("mesh").unwrap();
    let (a, admin_a) = start_node(&ca, "a", &[]).await;
    let (b, admin_b) = start_node(&ca, "b", &[&a]).await;
    let (c, admin_c) = start_node(&ca, "c", &[&a]).await;
    let nodes = [(a, admin_a), (b, admin_b), (c, admin_c)];
    let config = ShardingConfig {
        number_of_shards: SHARDS,
        ..ShardingConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Sharded asks answered, per asking node.
    let answered: Vec<Arc<AtomicU64>> = nodes.iter().map(|_| Arc::default()).collect();
    for ((node, _), answered) in nodes.iter().zip(&answered) {
        let sharding = Sharding::start(node, config.clone()).await.unwrap();
        let counters = sharding
            .init(EntityType::new("counter", |_id| Counter(0)))
            .unwrap();
        let (stop, answered) = (stop.clone(), answered.clone());
        tokio::spawn(async move {
            let mut entity = 0u32;
            while !stop.load(Ordering::Relaxed) {
                entity = (entity + 1) % 240;
                let id = format!("c-{entity}");
                match counters.ask(&id, 1u64, Duration::from_secs(2)).await {
                    Ok(_) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    // Until the cluster has formed and shards are homed:
                    // a back-off, not a wait for a condition.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                };
            }
        });
    }

    let started = Instant::now();
    let scrapes = loop {
        let mut scrapes = Vec::new();
        for (node, admin) in &nodes {
            let text = scrape(*admin).await;
            let samples = parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
            scrapes.push((node.id().to_string(), samples));
        }
        let all_up = scrapes
            .iter()
            .all(|(_, samples)| sum(samples, "membership_members", &[("status", "up")]) == 3.0);
        let shards: f64 = scrapes
            .iter()
            .map(|(_, s)| sum(s, "sharding_shards", &[("entity_type", "counter")]))
            .sum();
        // Gauges are set at each sharding tick: every region has seen a
        // coordinator epoch once it registered.
        let registered = scrapes
            .iter()
            .all(|(_, samples)| sum(samples, "sharding_coordinator_epoch", &[]) >= 1.0);
        // Every node's asks reach entities on the other two.
        let counts: Vec<u64> = answered.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        let loaded = counts.iter().all(|answered| *answered > 500);
        if all_up && registered && shards == f64::from(SHARDS) && loaded {
            break scrapes;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out: all up {all_up}, registered {registered}, shards {shards} of {SHARDS}, asks answered per node {counts:?}; what each node exports:\n{}",
            views(&scrapes)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.store(true, Ordering::Relaxed);

    for (node, samples) in &scrapes {
        let peers: Vec<&str> = ["a", "b", "c"]
            .into_iter()
            .filter(|peer| !node.starts_with(peer))
            .collect();
        // Heartbeats are asks to every peer.
        assert!(sum(samples, "mesh_asks_total", &[]) > 0.0, "{node}");
        assert!(
            sum(samples, "membership_heartbeats_sent_total", &[]) > 0.0,
            "{node}"
        );
        for peer in &peers {
            let with = [("peer", *peer)];
            assert!(
                sum(samples, "mesh_connections_up_total", &with) >= 1.0,
                "{node} -> {peer}"
            );
            assert!(
                sum(samples, "mesh_messages_sent_total", &with) > 0.0,
                "{node} -> {peer}"
            );
            assert!(
                sum(samples, "mesh_bytes_received_total", &with) > 0.0,
                "{node} <- {peer}"
            );
            let le = [("peer", *peer), ("le", "+Inf")];
            let answered = sum(samples, "mesh_ask_duration_seconds_bucket", &le);
            assert!(answered > 0.0, "{node}: no ask to {peer} answered");
            let count = sum(samples, "mesh_ask_duration_seconds_count", &with);
            assert_eq!(answered, count, "{node}: the +Inf bucket counts every ask");
        }
        // Sharding's services carry the traffic between regions (asks
        // sent straight to an entity's home under their own).
        let sharded: f64 = ["sharding.counter", "sharding.counter.ask"]
            .into_iter()
            .map(|service| sum(samples, "mesh_messages_sent_total", &[("service", service)]))
            .sum();
        // Most frames repeat their service: counted under it, not elsewhere.
        assert!(sharded > 50.0, "{node}: {sharded} sharding frames counted");
        assert_eq!(
            sum(samples, "membership_unreachable_members", &[]),
            0.0,
            "{node}"
        );
        assert_eq!(
            sum(samples, "membership_downing_pending", &[]),
            0.0,
            "{node}"
        );
        assert!(
            sum(samples, "membership_phi_count", &[]) >= 2.0,
            "{node}: a phi per peer"
        );
        assert_eq!(
            sum(samples, "mesh_frames_rejected_total", &[]),
            0.0,
            "{node}"
        );
        // No entity id ever becomes a label.
        let entity_labels = samples
            .iter()
            .flat_map(|(_, labels, _)| labels.values())
            .filter(|value| value.starts_with("c-"))
            .count();
        assert_eq!(entity_labels, 0, "{node}: an entity id in a label");
    }
    for (node, _) in &nodes {
        assert_eq!(node.self_status(), MemberStatus::Up);
    }
}
