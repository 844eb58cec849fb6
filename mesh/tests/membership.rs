//! Membership on a real QUIC mesh on loopback (no proxy): crash -> Down on
//! every survivor, graceful leave, restarts, a downed node stopping itself,
//! and the admin API. Partition tests live in `testbed/tests/`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request as HttpRequest, StatusCode};
use mesh::tls::ClusterCa;
use mesh::{MemberEvent, MemberStatus, Node, NodeId, TlsSettings};
use support::{cluster_up, init_tracing, start_node, wait_until};
use tokio::sync::broadcast;
use tower::ServiceExt;

/// The status `node` shows for `id`, if it lists it.
fn status_of(node: &Node, id: &NodeId) -> Option<MemberStatus> {
    node.cluster_members()
        .into_iter()
        .find(|m| m.id == *id)
        .map(|m| m.status)
}

/// An event the test waits for: a label for the failure message and a test.
type Wanted<'a> = (&'a str, &'a dyn Fn(&MemberEvent) -> bool);

/// Receives events until `wanted` has matched one of each, or panics at the deadline.
async fn expect_events(
    events: &mut broadcast::Receiver<MemberEvent>,
    deadline: Duration,
    wanted: &[Wanted<'_>],
) -> Vec<MemberEvent> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while !wanted.iter().all(|(_, matches)| seen.iter().any(matches)) {
        let left = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(event)) => seen.push(event),
            Ok(Err(error)) => panic!("event stream failed: {error}; seen {seen:#?}"),
            Err(_) => {
                let missing: Vec<&str> = wanted
                    .iter()
                    .filter(|(_, matches)| !seen.iter().any(matches))
                    .map(|(what, _)| *what)
                    .collect();
                panic!("timed out waiting for events {missing:?}; seen {seen:#?}");
            }
        }
    }
    seen
}

/// Where the singleton goes once `host` is gone, as `node` sees the members:
/// the member that became Up next (not necessarily the next generation).
fn heir_of(node: &Node, host: &NodeId) -> NodeId {
    let members = node.cluster_members();
    membership::ordering::singleton_host(members.iter().filter(|m| m.id != *host), None)
        .expect("an heir")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_is_downed_on_every_survivor_and_its_singleton_moves() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster_up(&ca, &["n1", "n2", "n3", "n4"]).await;
    let victim = nodes[0].id().clone();
    let heir = heir_of(&nodes[1], &victim);
    for node in &nodes {
        assert_eq!(node.singleton_host(None).as_ref(), Some(&victim));
        assert_eq!(node.oldest_member().as_ref(), Some(&victim));
    }
    let mut events = nodes[1].member_events();

    let crashed_at = Instant::now();
    nodes[0].crash();
    let survivors = &nodes[1..];
    let refs: Vec<&Node> = survivors.iter().collect();
    wait_until(
        Duration::from_secs(10),
        "n1 Down on every survivor and the singleton on the heir",
        &refs,
        || {
            survivors.iter().all(|n| {
                status_of(n, &victim) == Some(MemberStatus::Down)
                    && n.singleton_host(None).as_ref() == Some(&heir)
            })
        },
    )
    .await;
    eprintln!(
        "crash -> Down on every survivor took {:?}",
        crashed_at.elapsed()
    );
    for node in survivors {
        assert_eq!(node.self_status(), MemberStatus::Up);
        assert_eq!(node.oldest_member().as_ref(), Some(&heir));
        assert!(!node.is_stopped());
    }
    expect_events(
        &mut events,
        Duration::from_secs(5),
        &[
            ("Unreachable(n1)", &|e| {
                matches!(e, MemberEvent::Unreachable { member, .. } if *member == victim)
            }),
            ("MemberDowned(n1)", &|e| {
                matches!(e, MemberEvent::MemberDowned(m) if m.id == victim)
            }),
            ("SingletonHostChanged(n2)", &|e| {
                matches!(e, MemberEvent::SingletonHostChanged { role: None, host: Some(h) } if *h == heir)
            }),
        ],
    )
    .await;
    for node in survivors {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_walks_leaving_exiting_removed_and_the_node_is_gone() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster_up(&ca, &["n1", "n2", "n3"]).await;
    let leaver = nodes[0].id().clone();
    let heir = heir_of(&nodes[1], &leaver);
    // Events are not lossy (a watch is): what n2 and n3 report about n1.
    let mut events: Vec<_> = nodes[1..].iter().map(|n| n.member_events()).collect();

    // The handoff holds the leave in Leaving until the others have seen it
    // and moved the singleton away (what sharding's handoff will wait for).
    let handed_off = Arc::new(AtomicBool::new(false));
    let done = handed_off.clone();
    let peer_views: Vec<_> = nodes[1..]
        .iter()
        .map(|n| n.watch_cluster_members())
        .collect();
    let (leaving, heir_id) = (leaver.clone(), heir.clone());
    nodes[0].on_leave(move || async move {
        let seen_by_all = async {
            for mut view in peer_views {
                let seen = view.wait_for(|members| {
                    let shows_leaving = members
                        .iter()
                        .any(|m| m.id == leaving && m.status == MemberStatus::Leaving);
                    shows_leaving
                        && membership::ordering::singleton_host(members, None)
                            == Some(heir_id.clone())
                });
                if seen.await.is_err() {
                    return false;
                }
            }
            true
        };
        if let Ok(true) = tokio::time::timeout(Duration::from_secs(5), seen_by_all).await {
            done.store(true, Ordering::SeqCst);
        }
    });

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), nodes[0].leave())
        .await
        .expect("leave() finished");
    eprintln!("leave() took {:?}", started.elapsed());
    assert!(nodes[0].is_stopped());
    assert_eq!(nodes[0].self_status(), MemberStatus::Removed);
    assert!(
        handed_off.load(Ordering::SeqCst),
        "the handoff saw n1 Leaving and the singleton moved on n2 and n3"
    );

    let others = &nodes[1..];
    let refs: Vec<&Node> = others.iter().collect();
    wait_until(
        Duration::from_secs(5),
        "n1 gone from n2 and n3",
        &refs,
        || others.iter().all(|n| status_of(n, &leaver).is_none()),
    )
    .await;
    for node in others {
        assert_eq!(node.singleton_host(None).as_ref(), Some(&heir));
        assert_eq!(node.cluster_members().len(), 2);
    }
    for events in &mut events {
        let seen = expect_events(
            events,
            Duration::from_secs(5),
            &[
                (
                    "MemberLeft(n1)",
                    &|e| matches!(e, MemberEvent::MemberLeft(m) if m.id == leaver),
                ),
                (
                    "MemberExited(n1)",
                    &|e| matches!(e, MemberEvent::MemberExited(m) if m.id == leaver),
                ),
                (
                    "MemberRemoved(n1)",
                    &|e| matches!(e, MemberEvent::MemberRemoved(m) if m.id == leaver),
                ),
            ],
        )
        .await;
        let about_leaver: Vec<&str> = seen
            .iter()
            .filter_map(|e| match e {
                MemberEvent::MemberLeft(m) if m.id == leaver => Some("left"),
                MemberEvent::MemberExited(m) if m.id == leaver => Some("exited"),
                MemberEvent::MemberRemoved(m) if m.id == leaver => Some("removed"),
                MemberEvent::MemberDowned(m) if m.id == leaver => Some("downed"),
                _ => None,
            })
            .collect();
        assert_eq!(
            about_leaver,
            ["left", "exited", "removed"],
            "a leaving node walks Leaving, Exiting, Removed on every peer and is never downed: {seen:#?}"
        );
    }
    for node in others {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_as_a_new_generation_and_never_becomes_the_oldest() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster_up(&ca, &["n1", "n2", "n3"]).await;
    let old = nodes[0].id().clone();
    let next_oldest = nodes[1].id().clone();
    let heir = heir_of(&nodes[1], &old);

    // Every view n2 and n3 hold from now on must keep n2 the oldest.
    let mut watchers = Vec::new();
    for node in &nodes[1..] {
        let mut watch = node.watch_cluster_members();
        let expected = next_oldest.clone();
        let old = old.clone();
        watchers.push(tokio::spawn(async move {
            let mut wrong = Vec::new();
            loop {
                {
                    let members = watch.borrow_and_update();
                    let oldest = membership::ordering::oldest(members.iter());
                    if oldest.as_ref() != Some(&old) && oldest.as_ref() != Some(&expected) {
                        wrong.push(oldest);
                    }
                }
                if watch.changed().await.is_err() {
                    return wrong;
                }
            }
        }));
    }

    nodes[0].crash();
    let restarted = start_node(&ca, "n1", &[&nodes[1]]).await;
    let new = restarted.id().clone();
    assert!(new.generation > old.generation);
    let all = [&nodes[1], &nodes[2], &restarted];
    wait_until(
        Duration::from_secs(10),
        "the new n1 Up everywhere, the old one Down or gone",
        &all,
        || {
            all.iter().all(|n| {
                status_of(n, &new) == Some(MemberStatus::Up)
                    && matches!(status_of(n, &old), None | Some(MemberStatus::Down))
            })
        },
    )
    .await;
    for node in all {
        assert_eq!(node.oldest_member().as_ref(), Some(&next_oldest));
        assert_eq!(node.singleton_host(None).as_ref(), Some(&heir));
        let members = node.cluster_members();
        assert_eq!(
            members.last().map(|m| &m.id),
            Some(&new),
            "the restarted node is the youngest"
        );
    }
    for node in all {
        node.shutdown().await;
    }
    for watcher in watchers {
        let wrong = watcher.await.unwrap();
        assert!(wrong.is_empty(), "another member seen as oldest: {wrong:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_answering_heartbeats_is_downed_stops_serving_and_says_why() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster_up(&ca, &["n1", "n2", "n3"]).await;
    let deaf = nodes[2].id().clone();
    let mut status = nodes[2].watch_self_status();
    nodes[2]
        .register_service("echo", |req: mesh::Request<String, String>| {
            let text = req.message().clone();
            req.reply(text);
        })
        .unwrap();

    // n3 no longer answers heartbeats (its own are still answered, gossip
    // flows): the others see it unreachable, it sees them all reachable.
    nodes[2].unregister_service(mesh::cluster::HEARTBEAT_SERVICE);
    let went_down = async {
        status.wait_for(|s| *s == MemberStatus::Down).await.unwrap();
        // Services stop the moment the node learns it is Down.
        let echo = nodes[0]
            .ask::<_, String>("n3", "echo", "hi".to_string(), Duration::from_secs(2))
            .await;
        assert!(echo.is_err(), "n3 still serves after it was downed");
    };
    tokio::time::timeout(Duration::from_secs(15), went_down)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "n3 never learned it was downed:\n{}",
                support::views(&[&nodes[0], &nodes[1], &nodes[2]])
            )
        });
    let downed = tokio::time::timeout(Duration::from_secs(5), nodes[2].downed())
        .await
        .expect("downed() resolves once the node has left the mesh");
    eprintln!("n3: this node was downed by the cluster: {downed}");
    assert_eq!(downed.id, deaf);
    assert_eq!(
        downed.decided_by,
        [nodes[0].id().clone()],
        "n1, the oldest of the majority, decided"
    );
    assert!(nodes[2].is_stopped());

    for node in &nodes[..2] {
        assert_eq!(status_of(node, &deaf), Some(MemberStatus::Down));
        assert_eq!(node.self_status(), MemberStatus::Up);
    }
    for node in &nodes[..2] {
        node.shutdown().await;
    }
}

async fn get_json(node: &Node, path: &str) -> serde_json::Value {
    let response = mesh::admin::router(node.clone())
        .oneshot(HttpRequest::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_members_and_cluster_show_status_reachability_and_the_pending_decision() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        let seeds = nodes.first().map(|n: &Node| vec![n.advertise_addr()]);
        let node = Node::builder(name)
            .roles(vec!["coordinator".into()])
            .seeds(seeds.unwrap_or_default())
            .tls(TlsSettings::issued_by(&ca, name).unwrap())
            .start()
            .await
            .unwrap();
        nodes.push(node);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(Duration::from_secs(10), "all Up", &refs, || {
        refs.iter().all(|n| support::sees_all_up(n, 3))
    })
    .await;
    let n1 = nodes[0].id().to_string();

    let members = get_json(&nodes[0], "/members").await;
    eprintln!(
        "GET /members\n{}",
        serde_json::to_string_pretty(&members).unwrap()
    );
    let rows = members.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, node) in rows.iter().zip(&nodes) {
        assert_eq!(row["name"], node.id().name.as_str());
        assert_eq!(row["generation"], node.id().generation);
        assert_eq!(row["addr"], node.advertise_addr().to_string());
        assert_eq!(row["status"], "up");
        assert_eq!(row["reachable"], true);
        assert_eq!(row["unreachable_by"], serde_json::json!([]));
        assert_eq!(row["roles"], serde_json::json!(["coordinator"]));
    }
    let cluster = get_json(&nodes[0], "/cluster").await;
    eprintln!(
        "GET /cluster\n{}",
        serde_json::to_string_pretty(&cluster).unwrap()
    );
    assert_eq!(cluster["node"], n1.as_str());
    assert_eq!(cluster["status"], "up");
    assert_eq!(cluster["oldest"], n1.as_str());
    assert_eq!(cluster["singleton_host"], n1.as_str());
    assert_eq!(cluster["singleton_hosts"]["coordinator"], n1.as_str());
    assert_eq!(cluster["downing"]["strategy"], "keep-majority");
    assert_eq!(cluster["downing"]["stable_after"], "2000ms");
    assert_eq!(cluster["pending_decision"], serde_json::Value::Null);
    assert_eq!(cluster["member_counts"]["up"], 3);

    // n3 crashes: unreachable by both observers, a decision pending on n1.
    let victim = nodes[2].id().clone();
    nodes[2].crash();
    let survivors = [&nodes[0], &nodes[1]];
    wait_until(
        Duration::from_secs(10),
        "n1 to report n3 unreachable by n1 and n2",
        &survivors,
        || {
            nodes[0].cluster_members().iter().any(|m| {
                m.id == victim
                    && m.reachability.observers().count() == 2
                    && m.status == MemberStatus::Up
            })
        },
    )
    .await;
    let members = get_json(&nodes[0], "/members").await;
    let cluster = get_json(&nodes[0], "/cluster").await;
    eprintln!(
        "GET /members with n3 crashed\n{}",
        serde_json::to_string_pretty(&members).unwrap()
    );
    eprintln!(
        "GET /cluster with n3 crashed\n{}",
        serde_json::to_string_pretty(&cluster).unwrap()
    );
    let row = &members.as_array().unwrap()[2];
    assert_eq!(row["name"], "n3");
    assert_eq!(row["reachable"], false);
    let mut observers: Vec<String> = row["unreachable_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    observers.sort();
    assert_eq!(observers, [n1.clone(), nodes[1].id().to_string()]);
    let pending = &cluster["pending_decision"];
    if pending.is_null() {
        // Only if the decision was already taken between the two reads.
        assert_eq!(
            status_of(&nodes[0], &victim),
            Some(MemberStatus::Down),
            "{cluster}"
        );
    } else {
        assert_eq!(pending["decider"], n1.as_str());
        assert_eq!(pending["decision"], "down-unreachable");
        assert_eq!(pending["to_down"], serde_json::json!([victim.to_string()]));
        let decide_in = pending["decide_in"].as_str().unwrap();
        let millis: u64 = decide_in.trim_end_matches("ms").parse().unwrap();
        assert!(millis <= 2000, "{decide_in}");
        assert_eq!(cluster["would_survive"], true);
        assert_eq!(cluster["member_counts"]["unreachable"], 1);
    }
    for node in survivors {
        node.shutdown().await;
    }
}

/// Issue 19: a crashed node is Down, then Removed: gone from `/members`
/// within 10 s of the Down, and listed as `removed` under `?all=true` while
/// its gossip lingers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downed_node_leaves_members_and_shows_only_under_all() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster_up(&ca, &["n1", "n2", "n3"]).await;
    let victim = nodes[2].id().clone();
    nodes[2].crash();
    let survivors: Vec<&Node> = nodes[..2].iter().collect();
    wait_until(
        Duration::from_secs(10),
        "n3 Down on both survivors",
        &survivors,
        || {
            survivors
                .iter()
                .all(|n| status_of(n, &victim) == Some(MemberStatus::Down))
        },
    )
    .await;
    let downed = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "n3 out of both member lists",
        &survivors,
        || survivors.iter().all(|n| status_of(n, &victim).is_none()),
    )
    .await;
    eprintln!("Down -> Removed took {:?}", downed.elapsed());
    let named = |rows: &serde_json::Value| -> Vec<(String, String)> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let members = named(&get_json(&nodes[0], "/members").await);
    assert!(members.iter().all(|(name, _)| name != "n3"), "{members:?}");
    let all = named(&get_json(&nodes[0], "/members?all=true").await);
    assert!(
        all.contains(&("n3".to_string(), "removed".to_string())),
        "{all:?}"
    );
}

/// One admin request; the status and the JSON body.
async fn admin_request(
    node: &Node,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut request = HttpRequest::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = mesh::admin::router(node.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Issue 17: `/ready` turns true once the node is Up; `POST /down/{member}`
/// and `POST /leave` need the node's bearer token (401 without it, or when
/// the node has none), and do what they say with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_then_management_endpoints_behind_the_token() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let config = mesh::NodeConfig {
        name: "n1".into(),
        admin_token: mesh::config::AdminToken::new("s3cret\n"),
        ..mesh::NodeConfig::default()
    };
    let n1 = Node::builder("n1")
        .config(config)
        .tls(TlsSettings::issued_by(&ca, "n1").unwrap())
        .start()
        .await
        .unwrap();
    let (status, body) = admin_request(&n1, "GET", "/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false);
    let n2 = start_node(&ca, "n2", &[&n1]).await;
    let n3 = start_node(&ca, "n3", &[&n1]).await;
    let nodes = [&n1, &n2, &n3];
    wait_until(Duration::from_secs(10), "three members Up", &nodes, || {
        nodes.iter().all(|n| support::sees_all_up(n, 3))
    })
    .await;
    let (status, body) = admin_request(&n1, "GET", "/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for token in [None, Some("wrong")] {
        let (status, _) = admin_request(&n1, "POST", "/down/n3", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    let (status, _) = admin_request(&n2, "POST", "/leave", Some("s3cret")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "n2 has no token");
    let (status, _) = admin_request(&n1, "POST", "/down/n9", Some("s3cret")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = admin_request(&n1, "POST", "/down/n3", Some("s3cret")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["downed"], n3.id().to_string());
    wait_until(
        Duration::from_secs(10),
        "n3 to stop, downed",
        &nodes,
        || n3.is_stopped(),
    )
    .await;

    let (status, _) = admin_request(&n1, "POST", "/leave", Some("s3cret")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_until(Duration::from_secs(15), "n1 to leave", &nodes, || {
        n1.is_stopped()
    })
    .await;
    assert_eq!(n1.self_status(), MemberStatus::Removed);
}
