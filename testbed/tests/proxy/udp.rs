//! Plain UDP through relays: forwarding, each rule, counters, shutdown.

use std::time::Duration;

use testbed::proxy::{LinkRule, UNKNOWN_PEER};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::support::{send_numbered, wait_until, Pair, Peer};

#[tokio::test]
async fn datagrams_round_trip_through_one_socket_per_source() {
    let pair = Pair::new(1).await;
    let public = pair.relay_b.public_addr();
    let a_as_seen_by_b = pair.open_flow().await;
    assert_ne!(a_as_seen_by_b, pair.a.addr(), "b sees the relay, not a");

    pair.b.send(b"pong", a_as_seen_by_b).await;
    let received = pair.a.wait_for(1).await;
    assert_eq!(received[0], (b"pong".to_vec(), public));

    // The same source keeps its upstream socket; another source gets its own.
    pair.a.send(b"again", public).await;
    let c = Peer::bind().await;
    pair.network.register("c", c.addr()).expect("register c");
    c.send(b"from c", public).await;
    let received = pair.b.wait_for(3).await;
    let from_of = |payload: &[u8]| {
        received
            .iter()
            .find(|(p, _)| p == payload)
            .map(|(_, from)| *from)
            .expect("payload arrived")
    };
    assert_eq!(from_of(b"again"), a_as_seen_by_b);
    assert_ne!(from_of(b"from c"), a_as_seen_by_b);

    assert_eq!(pair.network.link_counters("a", "b").passed, 2);
    assert_eq!(pair.network.link_counters("b", "a").passed, 1);
    assert_eq!(pair.network.link_counters("c", "b").passed, 1);
}

#[tokio::test]
async fn blackhole_stops_exactly_one_direction_until_heal() {
    let pair = Pair::new(2).await;
    let public = pair.relay_b.public_addr();
    let a_seen = pair.open_flow().await;
    let network = &pair.network;

    // a -> b cut, b -> a still open, on the same flow.
    network.blackhole("a", "b").expect("known nodes");
    pair.a.send(b"lost", public).await;
    wait_until("a -> b drop", || {
        network.link_counters("a", "b").dropped == 1
    })
    .await;
    pair.b.send(b"back", a_seen).await;
    assert_eq!(pair.a.wait_for(1).await[0].0, b"back");
    assert_eq!(pair.b.count(), 1, "only the first hello reached b");

    // The other way round.
    network.heal();
    network.blackhole("b", "a").expect("known nodes");
    pair.b.send(b"lost", a_seen).await;
    wait_until("b -> a drop", || {
        network.link_counters("b", "a").dropped == 1
    })
    .await;
    pair.a.send(b"through", public).await;
    assert_eq!(pair.b.wait_for(2).await[1].0, b"through");
    assert_eq!(pair.a.count(), 1);

    // Healed: both ways again, no new flow needed.
    network.heal();
    assert!(network.rules().is_empty());
    pair.b.send(b"healed", a_seen).await;
    pair.a.send(b"healed", public).await;
    assert_eq!(pair.a.wait_for(2).await[1].0, b"healed");
    assert_eq!(pair.b.wait_for(3).await[2], (b"healed".to_vec(), a_seen));
}

#[tokio::test]
async fn partition_cuts_only_between_the_groups() {
    let pair = Pair::new(3).await;
    let public = pair.relay_b.public_addr();
    pair.open_flow().await;
    let c = Peer::bind().await;
    pair.network.register("c", c.addr()).expect("register c");

    pair.network
        .partition(&["a"], &["b", "c"])
        .expect("known nodes");
    pair.a.send(b"cut", public).await;
    c.send(b"fine", public).await;
    wait_until("a -> b drop", || {
        pair.network.link_counters("a", "b").dropped == 1
    })
    .await;
    let received = pair.b.wait_for(2).await;
    assert_eq!(received[1].0, b"fine");

    pair.network.heal();
    pair.a.send(b"back", public).await;
    assert_eq!(pair.b.wait_for(3).await[2].0, b"back");
}

/// Which of 300 numbered datagrams survive 30% loss with `seed`.
async fn survivors(seed: u64) -> Vec<u32> {
    let pair = Pair::new(seed).await;
    pair.network
        .set_rule("a", "b", LinkRule::loss(0.3))
        .expect("valid rule");
    send_numbered(
        &pair.network,
        &pair.a,
        pair.relay_b.public_addr(),
        ("a", "b"),
        300,
    )
    .await;
    let counters = pair.network.link_counters("a", "b");
    assert_eq!(counters.seen(), 300);
    assert!(
        (60..=120).contains(&counters.dropped),
        "dropped {}",
        counters.dropped
    );
    pair.b.wait_for(counters.passed as usize).await;
    pair.b.numbers()
}

#[tokio::test]
async fn loss_drops_about_p_and_the_seed_repeats_the_pattern() {
    let first = survivors(11).await;
    assert_eq!(first, survivors(11).await);
    assert_ne!(first, survivors(12).await);
    assert!(first.windows(2).all(|w| w[0] < w[1]), "loss never reorders");
}

#[tokio::test]
async fn delay_adds_latency_and_keeps_order() {
    let pair = Pair::new(4).await;
    let public = pair.relay_b.public_addr();
    pair.open_flow().await;
    pair.network
        .set_rule("a", "b", LinkRule::delay(40, 0))
        .expect("valid rule");

    let start = Instant::now();
    for n in 0u32..20 {
        pair.a.send(&n.to_be_bytes(), public).await;
    }
    pair.b.wait_for(21).await;
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(pair.b.numbers(), (0..20).collect::<Vec<_>>());
    assert_eq!(pair.network.link_counters("a", "b").delayed, 20);

    // Lifting the delay: the next packets queue behind the delayed ones.
    pair.network
        .set_rule("a", "b", LinkRule::delay(30, 0))
        .expect("valid rule");
    pair.a.send(&100u32.to_be_bytes(), public).await;
    pair.network.heal();
    pair.a.send(&101u32.to_be_bytes(), public).await;
    pair.b.wait_for(23).await;
    assert_eq!(pair.b.numbers()[20..], [100, 101]);
}

#[tokio::test]
async fn duplicate_sends_each_packet_twice() {
    let pair = Pair::new(5).await;
    pair.network
        .set_rule("a", "b", LinkRule::duplicate(1.0))
        .expect("valid rule");
    send_numbered(
        &pair.network,
        &pair.a,
        pair.relay_b.public_addr(),
        ("a", "b"),
        10,
    )
    .await;
    pair.b.wait_for(20).await;
    let numbers = pair.b.numbers();
    let expected: Vec<u32> = (0..10).flat_map(|n| [n, n]).collect();
    assert_eq!(numbers, expected);
    let counters = pair.network.link_counters("a", "b");
    assert_eq!((counters.passed, counters.duplicated), (10, 10));
}

#[tokio::test]
async fn reorder_lets_later_packets_overtake_and_loses_nothing() {
    let pair = Pair::new(6).await;
    pair.network
        .set_rule("a", "b", LinkRule::reorder(0.2, 3))
        .expect("valid rule");
    send_numbered(
        &pair.network,
        &pair.a,
        pair.relay_b.public_addr(),
        ("a", "b"),
        100,
    )
    .await;
    pair.b.wait_for(100).await;
    let numbers = pair.b.numbers();
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..100).collect::<Vec<_>>(),
        "nothing lost or doubled"
    );
    let inversions = numbers.windows(2).filter(|w| w[0] > w[1]).count();
    let reordered = pair.network.link_counters("a", "b").reordered;
    assert!(reordered > 5, "reordered {reordered}");
    assert!(inversions > 0, "{numbers:?}");
}

#[tokio::test]
async fn unknown_sources_pass_and_are_counted() {
    let pair = Pair::new(7).await;
    let stranger = Peer::bind().await;
    pair.network.partition(&["a"], &["b"]).expect("known nodes");
    stranger.send(b"who", pair.relay_b.public_addr()).await;
    let (_, seen) = pair.b.wait_for(1).await.remove(0);
    pair.b.send(b"b", seen).await;
    stranger.wait_for(1).await;
    assert_eq!(pair.network.link_counters(UNKNOWN_PEER, "b").passed, 1);
    assert_eq!(pair.network.link_counters("b", UNKNOWN_PEER).passed, 1);
}

#[tokio::test]
async fn shutdown_frees_the_public_address() {
    let pair = Pair::new(8).await;
    pair.open_flow().await;
    let public = pair.relay_b.public_addr();
    pair.relay_b.shutdown().await;
    UdpSocket::bind(public)
        .await
        .expect("public address free after shutdown");
}

#[tokio::test]
async fn set_target_follows_a_restarted_node() {
    let pair = Pair::new(9).await;
    pair.open_flow().await;
    let restarted = Peer::bind().await;
    pair.relay_b
        .set_target(restarted.addr())
        .expect("free address");
    assert_eq!(pair.network.nodes().get("b"), Some(&restarted.addr()));
    pair.a.send(b"hi", pair.relay_b.public_addr()).await;
    assert_eq!(restarted.wait_for(1).await[0].0, b"hi");
}
