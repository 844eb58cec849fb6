//! Tells from one sender to one entity arrive in send order, also while the
//! sender's way changes: through its region's driver while the home is
//! unknown, straight to the home once the region knows it.

use serde::{Deserialize, Serialize};
use sharding::{Entity, EntityContext, EntityType};
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
        let expected: Vec<u64> = (0..(round + 1) * TELLS).collect();
        for id in &ids {
            let what = format!("{id} to have all {} tells", expected.len());
            cluster
                .wait_until_async(SETTLE, &what, |_| async {
                    n3.ask(id, LogMsg::Read, ASK)
                        .await
                        .is_ok_and(|log| log.len() == expected.len())
                })
                .await?;
            let log = n3.ask(id, LogMsg::Read, ASK).await?;
            assert_eq!(log, expected, "the order {id} received");
        }
    }
    Ok(())
}
