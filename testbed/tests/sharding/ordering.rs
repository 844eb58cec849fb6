//! Tells from one sender to one entity arrive in send order, also while the
//! sender's way changes: through its region's driver while the home is
//! unknown, straight to the home once the region knows it.

use serde::{Deserialize, Serialize};
use sharding::{Entity, EntityContext, EntityRef, EntityType, ShardingError};
use testbed::Cluster;

use crate::support::{
    init_tracing, start_everywhere, wait_registered_regions, TestResult, ASK, SETTLE,
};

/// Remembers every number it was told, in arrival order.
struct Log(Vec<u64>);

#[derive(Debug, Serialize, Deserialize)]
enum LogMsg {
    Append(u64),
    Read,
}

impl Entity for Log {
    type Message = LogMsg;
    type Reply = Vec<u64>;

    async fn handle(&mut self, _ctx: &mut EntityContext, message: LogMsg) -> Vec<u64> {
        match message {
            LogMsg::Append(n) => {
                self.0.push(n);
                Vec::new()
            }
            LogMsg::Read => self.0.clone(),
        }
    }
}

const ENTITIES: usize = 10;
const TELLS: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_from_one_sender_arrive_in_order_as_its_way_changes() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder()
        .nodes(3)
        .roles("n1", &["log"])
        .roles("n2", &["log"])
        .start()
        .await?;
    let (_keep, refs) = start_everywhere(&cluster, || {
        EntityType::new("log", |_| Log(Vec::new())).role("log")
    })
    .await?;
    // n3 only routes: every entity lives on another node.
    let n3 = refs["n3"].clone();
    wait_registered_regions(&cluster, &n3, 3).await?;
    let ids: Vec<String> = (0..ENTITIES).map(|i| format!("log-{i}")).collect();
    // Interleaved, with no pause: the first tells of each entity find its
    // home unknown and wait in n3's region, later ones go straight (more so
    // in the second round, when every home is known).
    for round in 0..2 {
        for n in round * TELLS..(round + 1) * TELLS {
            for id in &ids {
                n3.tell(id, LogMsg::Append(n))?;
            }
        }
        expect_in_order(&cluster, &n3, &ids, (round + 1) * TELLS).await?;
    }
    Ok(())
}

/// Waits until every entity of `ids`, asked through `via`, has been told
/// `0..told`, and checks it got them in that order.
async fn expect_in_order(
    cluster: &Cluster,
    via: &EntityRef<Log>,
    ids: &[String],
    told: u64,
) -> TestResult {
    for id in ids {
        let what = format!("{id} to have all {told} tells");
        cluster
            .wait_until_async(SETTLE, &what, |_| async {
                via.ask(id, LogMsg::Read, ASK)
                    .await
                    .is_ok_and(|log| log.len() as u64 == told)
            })
            .await?;
        let log = via.ask(id, LogMsg::Read, ASK).await?;
        if let Some(at) = (0..told).position(|n| log[n as usize] != n) {
            let around = &log[at.saturating_sub(3)..(at + 4).min(log.len())];
            panic!(
                "{id} received tell {} at position {at}, out of order: {around:?}",
                log[at]
            );
        }
    }
    Ok(())
}

/// Messages from another node are handled on the mesh reader's task while
/// the home's driver is free, and queued while it is busy; a message must
/// never overtake one queued before it. The home floods its own driver
/// with local tells meanwhile, so that the two ways alternate all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_from_another_node_keep_their_order_while_the_home_is_busy() -> TestResult {
    init_tracing();
    let cluster = Cluster::builder()
        .nodes(2)
        .roles("n1", &["log"])
        .start()
        .await?;
    let (_keep, refs) = start_everywhere(&cluster, || {
        EntityType::new("log", |_| Log(Vec::new())).role("log")
    })
    .await?;
    let (home, sender) = (refs["n1"].clone(), refs["n2"].clone());
    wait_registered_regions(&cluster, &sender, 2).await?;
    let ids: Vec<String> = (0..ENTITIES).map(|i| format!("log-{i}")).collect();
    // Every home known to the sender first: its tells go straight to n1.
    for id in &ids {
        sender.ask(id, LogMsg::Read, ASK).await?;
    }
    let flood = tokio::spawn(async move {
        for n in 0.. {
            // Reads: the busy entities keep nothing.
            if home
                .tell(&format!("busy-{}", n % 16), LogMsg::Read)
                .is_err()
            {
                tokio::task::yield_now().await;
            }
            if n % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    const SENT: u64 = 2_000;
    for n in 0..SENT {
        for id in &ids {
            while let Err(error) = sender.tell(id, LogMsg::Append(n)) {
                assert!(matches!(error, ShardingError::Backpressure(_)), "{error}");
                tokio::task::yield_now().await;
            }
        }
        if n % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    expect_in_order(&cluster, &sender, &ids, SENT).await?;
    flood.abort();
    Ok(())
}
