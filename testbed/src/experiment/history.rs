//! The recorded history of an experiment, in Jepsen's shape.
//!
//! Every client operation is two [`Event`]s: an `invoke` and a completion,
//! `ok` (it happened, with its result), `fail` (it surely did not happen)
//! or `info` (unknown: it may or may not have taken effect, at any moment
//! after its invocation). A process runs one operation at a time; after an
//! `info` the client continues as a new process, as in Jepsen.
//!
//! # Export format
//!
//! `history.jsonl` is **Jepsen-style JSON**, one event per line, with the
//! keys of a `jepsen.history` op: `index`, `type` (`invoke`, `ok`, `fail`,
//! `info`), `f` (`add`, `read`, `write`, `cas`), `value`, `process` and
//! `time` (nanoseconds since the start of the run). `value` is a
//! `[key, v]` tuple as `jepsen.independent` writes it: the delta of an
//! `add`, the value read (`null` on the invoke), the value written, or
//! `[from, to]` of a `cas`. Extra keys, which Jepsen tools ignore: `node`
//! (the node the client talked to), `tag` (the idempotency key, also stored
//! with the write in the demo's store), `result` (the value after an `add`)
//! and `error`. A `cas` whose expected value did not match is a `fail`, as
//! Jepsen records it. Converting a line to EDN is a mechanical rename
//! (`"type": "ok"` becomes `:type :ok`), which is why no EDN is written.
//!
//! ```
//! use testbed::experiment::history::{Event, EventKind, Function, Value};
//!
//! let line = r#"{"index":0,"type":"invoke","f":"add","value":["c-1",5],"process":3,"time":1200,"node":"n1","tag":"p3-0"}"#;
//! let event: Event = serde_json::from_str(line).unwrap();
//! assert_eq!(event.kind, EventKind::Invoke);
//! assert_eq!(event.f, Function::Add);
//! assert_eq!(event.value, ("c-1".to_string(), Value::Int(5)));
//! ```

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ExperimentError;

/// What an event says about its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The client sent the operation.
    Invoke,
    /// It happened, with this result.
    Ok,
    /// It surely did not happen.
    Fail,
    /// Unknown: it may have happened, at any time after the invoke.
    Info,
}

/// The operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// Add a delta to a counter; answers the new value.
    Add,
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write,
    /// Compare-and-set `[from, to]`.
    Cas,
}

/// The value part of `[key, value]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// Unknown or absent (a read's invoke).
    Nil,
    /// One number.
    Int(i64),
    /// `[from, to]` of a compare-and-set.
    Pair([i64; 2]),
}

impl Value {
    /// The number, if it is one.
    pub fn int(self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }
}

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history, from 0.
    pub index: u64,
    /// Invoke or completion.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The operation.
    pub f: Function,
    /// `[key, value]`.
    pub value: (String, Value),
    /// The client process (one operation at a time).
    pub process: u64,
    /// Nanoseconds since the run started.
    pub time: u64,
    /// The node the client sent the operation to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The idempotency key of a write (`add`, `write`, `cas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The value after an `add`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i64>,
    /// Why it failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    /// The key the operation is about.
    pub fn key(&self) -> &str {
        &self.value.0
    }
}

/// An operation: its invoke paired with its completion (`None` while it
/// had none when the history ended, which counts as `info`).
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// The invoke.
    pub invoke: Event,
    /// The completion, if any.
    pub completion: Option<Event>,
}

impl Operation {
    /// How it ended: `Info` also when it never completed.
    pub fn outcome(&self) -> EventKind {
        self.completion
            .as_ref()
            .map_or(EventKind::Info, |event| event.kind)
    }

    /// When it completed, if it did with a known outcome.
    pub fn completed_at(&self) -> Option<u64> {
        match &self.completion {
            Some(event) if event.kind != EventKind::Info => Some(event.time),
            _ => None,
        }
    }
}

/// Pairs every invoke with the next completion of the same process, in
/// index order. A completion without an invoke, or a second invoke while
/// one is open, is an error: the history is malformed.
pub fn pair(events: &[Event]) -> Result<Vec<Operation>, ExperimentError> {
    let mut open: rustc_hash::FxHashMap<u64, usize> = Default::default();
    let mut operations: Vec<Operation> = Vec::with_capacity(events.len() / 2 + 1);
    for event in events {
        match event.kind {
            EventKind::Invoke => {
                if open.insert(event.process, operations.len()).is_some() {
                    return Err(ExperimentError::MalformedHistory(format!(
                        "event {}: process {} invokes while its previous operation is open",
                        event.index, event.process
                    )));
                }
                operations.push(Operation {
                    invoke: event.clone(),
                    completion: None,
                });
            }
            _ => {
                let Some(at) = open.remove(&event.process) else {
                    return Err(ExperimentError::MalformedHistory(format!(
                        "event {}: process {} completes an operation it never invoked",
                        event.index, event.process
                    )));
                };
                operations[at].completion = Some(event.clone());
            }
        }
    }
    Ok(operations)
}

/// Writes events as JSON lines.
pub fn write_jsonl(path: &Path, events: &[Event]) -> Result<(), ExperimentError> {
    let io = |source| ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    for event in events {
        serde_json::to_writer(&mut out, event).map_err(|error| io(error.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Reads a `history.jsonl`.
pub fn read_jsonl(path: &Path) -> Result<Vec<Event>, ExperimentError> {
    let io = |source| ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut events = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|error| {
            ExperimentError::MalformedHistory(format!(
                "{} line {}: {error}",
                path.display(),
                number + 1
            ))
        })?;
        events.push(event);
    }
    Ok(events)
}
