//! A real QUIC mesh on loopback: joining, TLS refusals, bad frames, services.

mod support;

use std::sync::Arc;
use std::time::Duration;

use mesh::tls::{certificate_names, ClusterCa, QuicTls};
use mesh::wire::frame::{encode_frame, encode_value, put_postcard, read_value, FrameReader};
use mesh::wire::{
    EnvelopeHeader, Hello, HelloReply, RemoteError, ServiceRef, StreamKind, PROTOCOL_VERSION,
};
use mesh::{AskError, Node, NodeId, Request, TlsSettings};
use support::{
    cluster, holding, init_tracing, recorded, recording, start_node, tell_then_reply, wait_until,
};

const ASK: Duration = Duration::from_secs(5);

fn echo(node: &Node) {
    node.register_service("echo", |req: Request<String, String>| {
        let text = req.message().clone();
        req.reply(text);
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_join_through_seeds_and_talk() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2", "n3"]).await;
    for node in &nodes {
        echo(node);
    }
    for from in &nodes {
        for to in &nodes {
            let text = format!("{} -> {}", from.id().name, to.id().name);
            let answer: String = from
                .ask(&to.id().name, "echo", text.clone(), ASK)
                .await
                .unwrap();
            assert_eq!(answer, text);
        }
    }
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_ca_is_refused_and_the_cluster_stays_healthy() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    echo(&nodes[0]);
    let rogue_ca = ClusterCa::generate("mesh").unwrap();
    let rogue = start_node(&rogue_ca, "n3", &[&nodes[0]]).await;
    let refs: Vec<&Node> = nodes.iter().chain([&rogue]).collect();
    wait_until(
        Duration::from_secs(10),
        "n1 to refuse the rogue",
        &refs,
        || nodes[0].stats().handshakes_refused >= 1,
    )
    .await;
    assert_eq!(nodes[0].members().len(), 2);
    assert_eq!(
        rogue.members().len(),
        1,
        "the rogue must not learn the cluster"
    );
    let answer: String = nodes[1]
        .ask("n1", "echo", "ok".to_string(), ASK)
        .await
        .unwrap();
    assert_eq!(answer, "ok");
    for node in nodes.iter().chain([&rogue]) {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_is_not_in_the_certificate_is_refused() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let n1 = start_node(&ca, "n1", &[]).await;
    // "impostor" presents a valid certificate issued for "n2".
    let impostor = Node::builder("impostor")
        .seeds(vec![n1.advertise_addr()])
        .tls(TlsSettings::issued_by(&ca, "n2").unwrap())
        .start()
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "n1 to refuse the impostor",
        &[&n1, &impostor],
        || n1.stats().handshakes_refused >= 1,
    )
    .await;
    assert_eq!(n1.members().len(), 1);
    impostor.shutdown().await;
    n1.shutdown().await;
}

/// A client that passes TLS and the hello as node `name`, for sending raw bytes.
async fn raw_peer(ca: &ClusterCa, name: &str, target: &Node) -> quinn::Connection {
    let tls = QuicTls::new(
        &TlsSettings::issued_by(ca, name).unwrap(),
        name,
        Arc::new(quinn::TransportConfig::default()),
    )
    .unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(tls.client);
    let conn = endpoint
        .connect(target.advertise_addr(), "mesh.node")
        .unwrap()
        .await
        .unwrap();
    assert_eq!(certificate_names(&conn), vec![target.id().name.clone()]);
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster: "mesh".into(),
        id: NodeId::new(name, 1),
        advertise: endpoint.local_addr().unwrap(),
        dial: 1,
    };
    send.write_all(&encode_value(&hello, 1 << 16).unwrap())
        .await
        .unwrap();
    let reply: HelloReply = read_value(&mut recv, 1 << 16).await.unwrap();
    assert!(matches!(reply, HelloReply::Accepted { .. }), "{reply:?}");
    conn
}

async fn messages_stream(conn: &quinn::Connection) -> quinn::SendStream {
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(&[StreamKind::Messages as u8]).await.unwrap();
    send
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_close_the_stream_and_the_node_serves_on() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    echo(&nodes[0]);
    let refs: Vec<&Node> = nodes.iter().collect();
    let raw = raw_peer(&ca, "raw", &nodes[0]).await;

    let mut garbage = messages_stream(&raw).await;
    garbage
        .write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let mut huge = messages_stream(&raw).await;
    huge.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let mut unknown = raw.open_uni().await.unwrap();
    unknown.write_all(&[99, 1, 2, 3]).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "all three streams rejected",
        &refs,
        || {
            let stats = nodes[0].stats();
            stats.frames_malformed == 1 && stats.frames_oversized == 1 && stats.streams_unknown == 1
        },
    )
    .await;
    assert!(garbage.stopped().await.unwrap().is_some());
    assert!(huge.stopped().await.unwrap().is_some());

    // A service number nobody defined on the stream breaks only that stream.
    let mut undefined = messages_stream(&raw).await;
    let frame = encode_frame(1 << 20, |buf| {
        let tell = EnvelopeHeader::Tell {
            service: ServiceRef::Id(5),
        };
        put_postcard(buf, &tell)?;
        put_postcard(buf, "lost")
    })
    .unwrap();
    undefined.write_all(&frame).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the undefined service number rejected",
        &refs,
        || nodes[0].stats().frames_malformed == 2,
    )
    .await;
    assert!(undefined.stopped().await.unwrap().is_some());

    // Well-formed asks on a fresh stream of the same connection still work,
    // and so does everyone else: the first names the service and numbers
    // it, the second uses the number.
    let mut good = messages_stream(&raw).await;
    let ask = |id: u64, service: ServiceRef<'static>| {
        encode_frame(1 << 20, |buf| {
            put_postcard(buf, &EnvelopeHeader::Ask { id, service })?;
            put_postcard(buf, "still here")
        })
        .unwrap()
    };
    good.write_all(&ask(
        7,
        ServiceRef::Define {
            id: 0,
            name: "echo",
        },
    ))
    .await
    .unwrap();
    good.write_all(&ask(8, ServiceRef::Id(0))).await.unwrap();
    let mut replies = raw.accept_uni().await.unwrap();
    let mut kind = [0u8];
    replies.read_exact(&mut kind).await.unwrap();
    let mut replies = FrameReader::new(replies, 1 << 20);
    for id in [7, 8] {
        let buf = replies.next().await.unwrap().unwrap();
        let (header, body) = postcard::take_from_bytes::<EnvelopeHeader>(buf).unwrap();
        assert_eq!(header, EnvelopeHeader::Reply { id });
        assert_eq!(postcard::from_bytes::<String>(body).unwrap(), "still here");
    }

    let answer: String = nodes[1]
        .ask("n1", "echo", "fine".to_string(), ASK)
        .await
        .unwrap();
    assert_eq!(answer, "fine");
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_service_wrong_type_and_timeouts_are_errors_not_hangs() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    holding(&nodes[0], "silent", |_| true);
    echo(&nodes[0]);

    let err = nodes[1]
        .ask::<_, String>("n1", "nope", "x".to_string(), ASK)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AskError::Remote(RemoteError::UnknownService(s)) if s == "nope"),
        "{err:?}"
    );
    let err = nodes[1]
        .ask::<_, u64>("n1", "silent", 1u64, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, AskError::Timeout(_)), "{err:?}");
    // A body that is not the service's type is answered with an error.
    let err = nodes[1]
        .ask::<_, String>("n1", "echo", vec![0xffu8; 3], ASK)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AskError::Remote(RemoteError::MalformedRequest(_))),
        "{err:?}"
    );
    // The same on the local path.
    let err = nodes[0]
        .ask::<_, String>("n1", "nope", 1u8, ASK)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AskError::Remote(RemoteError::UnknownService(_))
    ));
    let err = nodes[0]
        .ask::<_, String>("n1", "echo", 1u8, ASK)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AskError::Remote(RemoteError::MalformedRequest(_))
    ));
    let err = nodes[1]
        .ask::<_, String>("nobody", "echo", "x".to_string(), ASK)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AskError::Send(mesh::SendError::UnknownPeer(_))
    ));
    assert!(nodes[0].stats().unknown_service >= 1);
    for node in &nodes {
        node.shutdown().await;
    }
}

/// An ask its caller drops (here after one poll, its request sent) is no
/// longer pending: nothing is left behind to wait for an answer that may
/// never come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_ask_leaves_nothing_pending() {
    use futures::FutureExt;
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let held = holding(&nodes[0], "silent", |_| true);
    for i in 0..10u64 {
        let ask = nodes[1].ask::<_, u64>("n1", "silent", i, Duration::from_secs(60));
        assert!(ask.now_or_never().is_none());
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(
        ASK,
        "the silent service to hold every request",
        &refs,
        || held.lock().unwrap().len() == 10,
    )
    .await;
    // Heartbeats are asks too: they come and go, the dropped ones must not stay.
    wait_until(ASK, "no ask pending on n2", &refs, || {
        nodes[1].stats().asks_pending == 0
    })
    .await;
    for node in &nodes {
        node.shutdown().await;
    }
}

/// Bursts of tells between round trips: the first tell of a burst finds the
/// writer idle and goes straight to the stream, the rest are batched, and
/// each answer leaves under the receiving reader's hold. Order must not
/// depend on which way a frame went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_written_directly_or_batched_keep_their_order() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let seen = recorded::<u64>(&nodes[0], "seq");
    let count = seen.clone();
    nodes[0]
        .register_service("count", move |req: Request<(), usize>| {
            let seen = count.lock().unwrap().len();
            req.reply(seen);
        })
        .unwrap();
    let n1 = nodes[1].peer("n1").unwrap();
    let mut sent = 0u64;
    for burst in 1..=60 {
        for _ in 0..burst {
            n1.tell("seq", sent).unwrap();
            sent += 1;
        }
        // Asked on the same stream after the burst: the tells were handled first.
        let handled: usize = n1.ask("count", (), ASK).await.unwrap();
        assert_eq!(handled as u64, sent);
    }
    assert_eq!(*seen.lock().unwrap(), (0..sent).collect::<Vec<_>>());
    for node in &nodes {
        node.shutdown().await;
    }
}

/// An ask alone in flight reads its answer off the stream itself, but only
/// after everything its peer sent before the answer was delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_seen_after_the_tells_its_peer_sent_before_it() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let seen = recorded::<u64>(&nodes[0], "seq");
    tell_then_reply(&nodes[1], "n1");
    let n2 = nodes[0].peer("n2").unwrap();
    let mut told = 0;
    for tells in 0..=60u64 {
        let answered: u64 = n2.ask("tell_then_reply", tells, ASK).await.unwrap();
        told += answered;
        assert_eq!(
            seen.lock().unwrap().len() as u64,
            told,
            "after {tells} tells"
        );
    }
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_arrive_in_send_order() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let seen = recording(&nodes[0], "seq", |req: &Request<u64, ()>| {
        (req.from().to_string(), *req.message())
    });
    const N: u64 = 20_000;
    for i in 0..N {
        nodes[1].tell("n1", "seq", i).unwrap();
    }
    for i in 0..100 {
        nodes[0].tell("n1", "seq", N + i).unwrap();
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(
        Duration::from_secs(20),
        "all tells delivered",
        &refs,
        || seen.lock().unwrap().len() as u64 == N + 100,
    )
    .await;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let from_n2: Vec<u64> = seen
        .iter()
        .filter(|(f, _)| f == "n2")
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(from_n2, (0..N).collect::<Vec<_>>());
    let local: Vec<u64> = seen
        .iter()
        .filter(|(f, _)| f == "n1")
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(local, (N..N + 100).collect::<Vec<_>>());
    for node in &nodes {
        node.shutdown().await;
    }
}

/// An ask polled while it was the only one waiting on its peer reads that
/// peer's stream for its answer; if its caller then holds it without
/// polling it, the next ask to that peer (or heartbeat) takes the stream
/// back for the reader task instead of waiting behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_held_without_polling_does_not_hold_up_the_next() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let held = holding(&nodes[0], "silent", |_| true);
    echo(&nodes[0]);
    let first = nodes[1].ask::<_, u64>("n1", "silent", 1u64, Duration::from_secs(60));
    let mut first = std::pin::pin!(first);
    assert!(futures::poll!(first.as_mut()).is_pending());
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(ASK, "n1 to hold the first ask", &refs, || {
        held.lock().unwrap().len() == 1
    })
    .await;
    let answer = nodes[1]
        .ask::<_, String>("n1", "echo", "second".to_string(), ASK)
        .await;
    assert_eq!(answer.unwrap(), "second");
    for node in &nodes {
        node.shutdown().await;
    }
}

/// A burst of tells reaches its service saying that more are behind most
/// of them; a tell that arrives alone, and a tell from this node, say none
/// is. (Heartbeats share the stream, so one may be behind any tell: a lone
/// tell is sent again until one arrives with nothing behind it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_learns_which_message_ends_a_burst() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let seen = recording(&nodes[0], "burst", |req: &Request<u64, ()>| {
        (*req.message(), req.more_buffered())
    });
    let refs: Vec<&Node> = nodes.iter().collect();
    let delivered = |n: usize| {
        let seen = seen.clone();
        move || seen.lock().unwrap().len() == n
    };
    // Pushed without a pause: they leave in a few writes.
    const BURST: u64 = 200;
    for i in 0..BURST {
        nodes[1].tell("n1", "burst", i).unwrap();
    }
    let wait = Duration::from_secs(10);
    wait_until(wait, "the burst", &refs, delivered(BURST as usize)).await;
    let burst = std::mem::take(&mut *seen.lock().unwrap());
    let behind = burst.iter().filter(|(_, more)| *more).count();
    assert!(behind > 0, "none of the {BURST} tells had more behind it");

    nodes[0].tell("n1", "burst", BURST).unwrap();
    wait_until(wait, "the local tell", &refs, delivered(1)).await;
    assert_eq!(std::mem::take(&mut *seen.lock().unwrap()), [(BURST, false)]);
    let mut lone = Vec::new();
    for n in 1..=20 {
        nodes[1].tell("n1", "burst", BURST + n).unwrap();
        wait_until(wait, "a lone tell", &refs, delivered(1)).await;
        let (_, more) = std::mem::take(&mut *seen.lock().unwrap())[0];
        lone.push(more);
        if !more {
            break;
        }
    }
    assert_eq!(
        lone.last(),
        Some(&false),
        "every lone tell had more behind it"
    );
    for node in &nodes {
        node.shutdown().await;
    }
}

/// A message that cannot be serialized: only the local path can carry it.
struct NotSerializable;

impl serde::Serialize for NotSerializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "local delivery must not serialize",
        ))
    }
}

impl<'de> serde::Deserialize<'de> for NotSerializable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "local delivery must not deserialize",
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_delivery_skips_serialization() {
    init_tracing();
    let node = Node::builder("solo").start().await.unwrap();
    node.register_service("local", |req: Request<NotSerializable, NotSerializable>| {
        req.reply(NotSerializable);
    })
    .unwrap();
    node.tell("solo", "local", NotSerializable).unwrap();
    let _: NotSerializable = node
        .ask("solo", "local", NotSerializable, ASK)
        .await
        .unwrap();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_appears_with_a_new_generation() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2", "n3"]).await;
    let old = nodes[2].id().clone();
    nodes[2].shutdown().await;
    let restarted = start_node(&ca, "n3", &[&nodes[0]]).await;
    assert!(restarted.id().generation > old.generation);
    echo(&restarted);
    let refs = [&nodes[0], &nodes[1], &restarted];
    wait_until(
        Duration::from_secs(15),
        "the new n3 everywhere, the old one gone",
        &refs,
        || {
            refs.iter().all(|n| {
                let ids: Vec<NodeId> = n.members().into_iter().map(|m| m.id).collect();
                ids.contains(restarted.id()) && !ids.contains(&old) && ids.len() == 3
            })
        },
    )
    .await;
    let answer: String = nodes[0]
        .ask("n3", "echo", "again".to_string(), ASK)
        .await
        .unwrap();
    assert_eq!(answer, "again");
    for node in refs {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_says_no_goodbye_and_drops_out_of_gossip() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2", "n3"]).await;
    echo(&nodes[2]);
    let _: String = nodes[0]
        .ask("n3", "echo", "hi".to_string(), ASK)
        .await
        .unwrap();
    let mut events = nodes[0].connection_events();
    nodes[2].crash();
    assert!(nodes[2].is_stopped());
    // No close frame: the connection is not reported down, the ask just times out.
    let err = nodes[0]
        .ask::<_, String>("n3", "echo", "hi".to_string(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, AskError::Timeout(_)), "{err:?}");
    assert!(
        events.try_recv().is_err(),
        "a crash must not look like a goodbye"
    );
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(
        Duration::from_secs(15),
        "n3 out of the live members",
        &refs,
        || nodes[..2].iter().all(|n| n.members().len() == 2),
    )
    .await;
    for node in &nodes[..2] {
        node.shutdown().await;
    }
}

/// Three tasks of one node tell in bursts of 0 to 6, some followed by an
/// ask whose answer crosses the tells: frames of several senders, written
/// directly or batched, and answers leaving under the reader's hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sender_task_keeps_its_order_among_others_and_asks() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let seen = recorded::<(u8, u64)>(&nodes[0], "seq");
    nodes[0]
        .register_service("echo", move |req: Request<u64, u64>| {
            let m = *req.message();
            req.reply(m);
        })
        .unwrap();
    let mut tasks = Vec::new();
    for who in 0..3u8 {
        let n1 = nodes[1].peer("n1").unwrap();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            for burst in 0..300u64 {
                for _ in 0..(burst % 7) {
                    n1.tell("seq", (who, sent)).unwrap();
                    sent += 1;
                }
                if burst % 3 == 0 {
                    let _: u64 = n1.ask("echo", burst, ASK).await.unwrap();
                } else {
                    tokio::task::yield_now().await;
                }
            }
            sent
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(
        Duration::from_secs(20),
        "all tells delivered",
        &refs,
        || seen.lock().unwrap().len() as u64 == total,
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    for who in 0..3u8 {
        let mine: Vec<u64> = seen
            .iter()
            .filter(|(w, _)| *w == who)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(
            mine,
            (0..mine.len() as u64).collect::<Vec<_>>(),
            "sender {who}"
        );
    }
}
