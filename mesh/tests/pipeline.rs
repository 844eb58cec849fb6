//! Pipelined asks on a real QUIC mesh: every request ends exactly once, with
//! its own answer, its timeout or its error; answers keep their place behind
//! the peer's tells; a pipeline that stops waiting does not hold up the
//! peer's other traffic.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use mesh::tls::ClusterCa;
use mesh::wire::RemoteError;
use mesh::{AskError, Node, Request};
use support::{cluster, holding, init_tracing, recorded, tell_then_reply, wait_until};

const ASK: Duration = Duration::from_secs(5);

async fn shutdown(nodes: &[Node]) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_its_own_answer_once_in_the_order_answers_come() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    // Answers batches of 8 in reverse: answers do not come in send order.
    const BATCH: usize = 8;
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    nodes[0]
        .register_service("reverse", move |req: Request<u64, u64>| {
            let mut held = keep.lock().unwrap();
            held.push(req.into_parts());
            if held.len() == BATCH {
                for (message, responder) in held.drain(..).rev() {
                    responder.reply(message * 10);
                }
            }
        })
        .unwrap();

    let mut pipeline = nodes[1]
        .peer("n1")
        .unwrap()
        .pipeline::<u64, u64>("reverse", ASK);
    let mut sent = HashMap::new();
    for message in 0..3 * BATCH as u64 {
        sent.insert(pipeline.send(message).await.unwrap(), message);
    }
    assert_eq!(pipeline.in_flight(), 3 * BATCH);
    let mut answered = Vec::new();
    while let Some((ticket, answer)) = pipeline.next().await {
        let message = sent.remove(&ticket).expect("a ticket answered once");
        assert_eq!(answer.unwrap(), message * 10, "the answer of {message}");
        answered.push(message);
    }
    assert!(sent.is_empty(), "unanswered: {sent:?}");
    assert_eq!(pipeline.in_flight(), 0);
    let expected: Vec<u64> = (0..3 * BATCH as u64)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .flat_map(|batch| batch.iter().rev().copied())
        .collect();
    assert_eq!(answered, expected);
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_time_out_alone_and_late_answers_are_dropped() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let held = holding(&nodes[0], "odd_only", |message| message % 2 == 0);
    let timeout = Duration::from_millis(500);
    let mut pipeline = nodes[1]
        .peer("n1")
        .unwrap()
        .pipeline::<u64, u64>("odd_only", timeout);
    let mut tickets = HashMap::new();
    for message in 1..=4 {
        tickets.insert(pipeline.send(message).await.unwrap(), message);
    }
    let mut answers = HashMap::new();
    while let Some((ticket, answer)) = pipeline.next().await {
        assert!(answers.insert(tickets[&ticket], answer).is_none());
    }
    assert_eq!(answers.len(), 4);
    for (message, answer) in &answers {
        match message % 2 {
            1 => assert_eq!(*answer.as_ref().unwrap(), *message),
            _ => assert!(
                matches!(answer, Err(AskError::Timeout(t)) if *t == timeout),
                "{answer:?}"
            ),
        }
    }

    // Answered after their timeout: nothing more comes out of the pipeline,
    // which goes on serving new requests.
    for (message, responder) in held.lock().unwrap().drain(..) {
        responder.reply(message);
    }
    let fresh = pipeline.send(5).await.unwrap();
    let (ticket, answer) = pipeline.next().await.unwrap();
    assert_eq!((ticket, answer.unwrap()), (fresh, 5));
    assert!(pipeline.next().await.is_none());
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_end_their_own_request_remote_and_local() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    holding(&nodes[0], "echo", |_| false);
    for from in [&nodes[1], &nodes[0]] {
        let n1 = from.peer("n1").unwrap();
        let mut unknown = n1.pipeline::<u64, u64>("nope", ASK);
        let mut wrong_reply = n1.pipeline::<u64, (u64, u64)>("echo", ASK);
        let mut echo = n1.pipeline::<u64, u64>("echo", ASK);
        for message in 0..3 {
            unknown.send(message).await.unwrap();
            wrong_reply.send(message).await.unwrap();
            echo.send(message).await.unwrap();
        }
        let mut seen = 0;
        while let Some((_, answer)) = unknown.next().await {
            assert!(
                matches!(&answer, Err(AskError::Remote(RemoteError::UnknownService(s))) if s == "nope"),
                "{answer:?}"
            );
            seen += 1;
        }
        while let Some((_, answer)) = wrong_reply.next().await {
            assert!(
                matches!(answer, Err(AskError::MalformedReply(_))),
                "{answer:?}"
            );
            seen += 1;
        }
        let mut echoed = HashSet::new();
        while let Some((_, answer)) = echo.next().await {
            echoed.insert(answer.unwrap());
        }
        assert_eq!((seen, echoed), (6, HashSet::from([0, 1, 2])));
    }
    shutdown(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_end_when_the_peer_goes() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let _held = holding(&nodes[0], "never", |_| true);
    let mut pipeline = nodes[1]
        .peer("n1")
        .unwrap()
        .pipeline::<u64, u64>("never", Duration::from_secs(30));
    for message in 0..3 {
        pipeline.send(message).await.unwrap();
    }
    // Sent and read before n1 goes, so that the requests are in flight.
    pipeline.flush();
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(ASK, "n1 to hold the requests", &refs, || {
        _held.lock().unwrap().len() == 3
    })
    .await;
    // Its owner waits in a task of its own (a pipeline is `Send`).
    let waiting = tokio::spawn(async move {
        let mut lost = 0;
        while let Some((_, answer)) = pipeline.next().await {
            assert!(
                matches!(&answer, Err(AskError::ConnectionLost(peer)) if peer == "n1"),
                "{answer:?}"
            );
            lost += 1;
        }
        lost
    });
    nodes[0].shutdown().await;
    let ended = tokio::time::timeout(ASK, waiting)
        .await
        .expect("requests end well before their timeout")
        .unwrap();
    assert_eq!(ended, 3);
    nodes[1].shutdown().await;
}

/// A pipeline reads answers off the peer's stream itself; it must stop at
/// the first frame that is not an answer, so that every tell the peer sent
/// before an answer has been delivered when the answer comes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_comes_out_after_the_tells_its_peer_sent_before_it() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let seen = recorded::<u64>(&nodes[0], "seq");
    let told_so_far = || seen.lock().unwrap().len() as u64;
    tell_then_reply(&nodes[1], "n1");
    let mut pipeline = nodes[0]
        .peer("n2")
        .unwrap()
        .pipeline::<u64, u64>("tell_then_reply", ASK);
    // The tells that must have arrived by the time each answer comes out.
    let mut told = 0;
    for window in 1..=12u64 {
        let mut before = HashMap::new();
        for tells in 0..window {
            let ticket = pipeline.send(tells).await.unwrap();
            before.insert(ticket, tells);
        }
        let mut owed = told;
        while let Some((ticket, answer)) = pipeline.next().await {
            let tells = answer.unwrap();
            assert_eq!(before.remove(&ticket), Some(tells));
            owed += tells;
            // Answers may come in any order; each one's tells come first.
            assert!(told_so_far() >= told + tells, "window {window}");
        }
        told = owed;
        assert_eq!(told_so_far(), told, "window {window}");
    }
    shutdown(&nodes).await;
}

/// A pipeline waiting for answers is the one the stream wakes; once it
/// stops waiting (here, its wait is dropped), the peer's other messages
/// must reach their services whether or not its owner comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_stops_waiting_does_not_hold_up_the_peer() {
    init_tracing();
    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["n1", "n2"]).await;
    let _held = holding(&nodes[1], "never", |_| true);
    let seen = recorded::<u64>(&nodes[0], "seq");
    let mut pipeline = nodes[0]
        .peer("n2")
        .unwrap()
        .pipeline::<u64, u64>("never", ASK);
    pipeline.send(0).await.unwrap();
    // Waits once, as the only waiter on n2's stream, and stops.
    assert!(pipeline.next().now_or_never().is_none());
    for i in 0..100u64 {
        nodes[1].tell("n1", "seq", i).unwrap();
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(ASK, "n2's tells to reach n1", &refs, || {
        seen.lock().unwrap().len() == 100
    })
    .await;
    // Dropped with its request in flight: nothing stays pending.
    drop(pipeline);
    wait_until(ASK, "no ask pending on n1", &refs, || {
        nodes[0].stats().asks_pending == 0
    })
    .await;
    shutdown(&nodes).await;
}
