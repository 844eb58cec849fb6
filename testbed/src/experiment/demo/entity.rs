//! The demo's entity: a number kept in an append-only file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sharding::{Entity, EntityContext};

use crate::experiment::history::Function;
use crate::experiment::store::{append_record, path_of, read_records, StoreRecord};

/// What a client asks of an entity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DemoOp {
    /// Add `delta`; answers the new value. A retry with the same tag is
    /// answered from the first application.
    Add {
        /// The delta.
        delta: i64,
        /// Idempotency key.
        tag: String,
    },
    /// The value.
    Read,
    /// Overwrite the value.
    Write {
        /// The new value.
        value: i64,
        /// Idempotency key.
        tag: String,
    },
    /// Set `to` if the value is `from`.
    Cas {
        /// Expected value.
        from: i64,
        /// New value.
        to: i64,
        /// Idempotency key.
        tag: String,
    },
}

/// An entity's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoReply {
    /// The value after the operation.
    pub value: i64,
    /// Whether a write took effect (false: a cas whose `from` did not match).
    pub applied: bool,
}

/// Ids of entity instances made by this process.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// One entity instance: the state it loaded from its file, and what it
/// appended since.
pub struct StoredEntity {
    path: PathBuf,
    instance: String,
    seq: u64,
    value: i64,
    applied: HashMap<String, DemoReply>,
    load_error: Option<String>,
    io_delay: Duration,
}

impl StoredEntity {
    /// An instance of entity `key` on node `node` (`name#generation`),
    /// whose file lives in `dir`; it waits up to `io_delay` (at random)
    /// between reading its state and appending, a stand-in for a database
    /// round trip.
    pub fn new(dir: &std::path::Path, key: &str, node: &str, io_delay: Duration) -> Self {
        Self {
            path: path_of(dir, key),
            instance: format!("{node}/{}", INSTANCES.fetch_add(1, Ordering::Relaxed)),
            seq: 0,
            value: 0,
            applied: HashMap::new(),
            load_error: None,
            io_delay,
        }
    }

    async fn append(&mut self, f: Function, value: i64, tag: &str) -> Result<DemoReply, String> {
        if !self.io_delay.is_zero() {
            let pause = rand::thread_rng().gen_range(Duration::ZERO..=self.io_delay);
            tokio::time::sleep(pause).await;
        }
        let record = StoreRecord {
            seq: self.seq + 1,
            value,
            instance: self.instance.clone(),
            f,
            tag: tag.to_string(),
        };
        append_record(&self.path, &record).map_err(|error| error.to_string())?;
        self.seq = record.seq;
        self.value = value;
        let reply = DemoReply {
            value,
            applied: true,
        };
        self.applied.insert(tag.to_string(), reply);
        Ok(reply)
    }
}

impl Entity for StoredEntity {
    type Message = DemoOp;
    /// `Err`: the store failed; the write may or may not be in the file.
    type Reply = Result<DemoReply, String>;

    async fn started(&mut self, _ctx: &mut EntityContext) {
        match read_records(&self.path) {
            Ok(records) => {
                for record in records {
                    self.seq = record.seq;
                    self.value = record.value;
                    self.applied.insert(
                        record.tag,
                        DemoReply {
                            value: record.value,
                            applied: true,
                        },
                    );
                }
            }
            Err(error) => self.load_error = Some(error.to_string()),
        }
    }

    async fn handle(&mut self, _ctx: &mut EntityContext, op: DemoOp) -> Self::Reply {
        if let Some(error) = &self.load_error {
            return Err(format!("store not loaded: {error}"));
        }
        let tag = match &op {
            DemoOp::Read => {
                return Ok(DemoReply {
                    value: self.value,
                    applied: false,
                })
            }
            DemoOp::Add { tag, .. } | DemoOp::Write { tag, .. } | DemoOp::Cas { tag, .. } => tag,
        };
        if let Some(reply) = self.applied.get(tag) {
            return Ok(*reply);
        }
        match op {
            DemoOp::Add { delta, tag } => {
                let value = self.value.wrapping_add(delta);
                self.append(Function::Add, value, &tag).await
            }
            DemoOp::Write { value, tag } => self.append(Function::Write, value, &tag).await,
            DemoOp::Cas { from, to, tag } if self.value == from => {
                self.append(Function::Cas, to, &tag).await
            }
            DemoOp::Cas { .. } | DemoOp::Read => Ok(DemoReply {
                value: self.value,
                applied: false,
            }),
        }
    }
}
