//! The checker: pure functions from a history (and the store's files) to a
//! [`Verdict`].
//!
//! Four checks, each of which can fail on its own:
//!
//! 1. **Linearizability per key** ([`wgl`]): the P-compositional
//!    Wing-Gong-Lowe search of Porcupine, against [`models::CounterModel`]
//!    for keys with `add`s and [`models::RegisterModel`] for keys with
//!    `write`/`cas`. `fail` operations are dropped, `info` ones may or may
//!    not have taken effect.
//! 2. **The store's evidence** ([`check_store`]): per entity, sequence
//!    numbers 1, 2, 3... with no gap and no duplicate, and no two instance
//!    ids taking turns (once an instance is replaced it never writes again).
//! 3. **Acknowledged writes** ([`check_writes`]): every `ok` write is in its
//!    entity's store (by idempotency key), and no `fail`ed one is.
//! 4. **Recovery** ([`check_recovery`]): after the last heal, every key that
//!    was asked answers `ok` within the bound.
//!
//! ```
//! use testbed::experiment::checker::{check, CheckSettings};
//! use testbed::experiment::history::{Event, EventKind, Function, Value};
//!
//! let ev = |index, kind, f, v, time| Event {
//!     index, kind, f, value: ("c-1".into(), v), process: 0, time,
//!     node: "n1".into(), tag: None, result: None, error: None,
//! };
//! let history = vec![
//!     Event { result: Some(2), ..ev(0, EventKind::Invoke, Function::Add, Value::Int(2), 0) },
//!     Event { result: Some(2), ..ev(1, EventKind::Ok, Function::Add, Value::Int(2), 10) },
//!     ev(2, EventKind::Invoke, Function::Read, Value::Nil, 20),
//!     ev(3, EventKind::Ok, Function::Read, Value::Int(0), 30), // stale
//! ];
//! let verdict = check(&history, None, &CheckSettings::default()).unwrap();
//! assert!(!verdict.valid);
//! assert_eq!(verdict.violating_events, vec![2]);
//! ```

pub mod models;
pub mod wgl;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use self::models::{CounterModel, Input, Model, Output, RegisterModel};
use self::wgl::{SearchOp, SearchResult};
use super::history::{pair, Event, EventKind, Function, Operation, Value};
use super::store::StoreRecord;
use super::ExperimentError;

/// What the checks need besides the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSettings {
    /// Search steps allowed per key before it is reported unknown.
    pub budget_per_key: u64,
    /// When the last fault ended (ns since the start), if there was one.
    pub last_heal: Option<u64>,
    /// How long after it every key must answer again.
    pub recovery_bound: Duration,
    /// When the history ended (ns since the start).
    pub end: u64,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            budget_per_key: 2_000_000,
            last_heal: None,
            recovery_bound: Duration::from_secs(10),
            end: u64::MAX,
        }
    }
}

/// The checker's verdict, as `report.json` carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// No check failed.
    pub valid: bool,
    /// One line for people: `valid` or the first problems.
    pub summary: String,
    /// Check 1.
    pub linearizability: Linearizability,
    /// Check 2.
    pub store: Vec<StoreViolation>,
    /// Check 3.
    pub writes: Vec<WriteViolation>,
    /// Check 4.
    pub recovery: Recovery,
    /// Invoke indices of the operations the violations are about, for the
    /// timeline (sorted, at most 50).
    pub violating_events: Vec<u64>,
}

/// Result of the per-key search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linearizability {
    /// Keys checked.
    pub keys: usize,
    /// Operations searched (failed ones excluded).
    pub operations: usize,
    /// Wall-clock time of the search, in ms.
    pub elapsed_ms: f64,
    /// Writes with an unknown outcome resolved from the store.
    pub resolved_from_store: usize,
    /// Keys whose search ran out of budget (neither proven nor refuted).
    pub unknown_keys: Vec<String>,
    /// Keys with no linearization.
    pub violations: Vec<KeyViolation>,
}

/// An operation as the verdict names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpRef {
    /// Index of its invoke event.
    pub index: u64,
    /// Its process.
    pub process: u64,
    /// What it did.
    pub f: Function,
    /// Its key.
    pub key: String,
    /// Argument (invoke) and result (completion), as in the history.
    pub value: Value,
    /// Its result, for an add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i64>,
    /// The node it went to.
    pub node: String,
    /// `ok`, `fail` or `info`.
    pub outcome: EventKind,
    /// Invoke time, ns.
    pub invoked: u64,
    /// Completion time, ns (none for `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

impl OpRef {
    fn of(op: &Operation) -> Self {
        let completion = op.completion.as_ref();
        Self {
            index: op.invoke.index,
            process: op.invoke.process,
            f: op.invoke.f,
            key: op.invoke.key().to_string(),
            value: completion.map_or(op.invoke.value.1, |c| c.value.1),
            result: completion.and_then(|c| c.result),
            node: op.invoke.node.clone(),
            outcome: op.outcome(),
            invoked: op.invoke.time,
            completed: op.completed_at(),
        }
    }
}

/// One key with no linearization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyViolation {
    /// The key.
    pub key: String,
    /// The model it was checked against.
    pub model: String,
    /// The operation no linearization could fit before its return.
    pub blocking: OpRef,
    /// Operations pending at that point, none of which fit.
    pub candidates: Vec<OpRef>,
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// The model's state after that prefix.
    pub state: String,
}

/// What the store's files show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StoreViolation {
    /// A sequence number was skipped.
    SequenceGap {
        /// The entity.
        key: String,
        /// The last number before the gap.
        after: u64,
        /// The number that followed.
        next: u64,
    },
    /// A sequence number was written twice: two writers loaded the same
    /// state.
    DuplicateSequence {
        /// The entity.
        key: String,
        /// The number.
        seq: u64,
        /// Instances that wrote it.
        instances: Vec<String>,
        /// Idempotency keys of the writes.
        tags: Vec<String>,
    },
    /// An instance wrote again after another one had taken over.
    InterleavedInstances {
        /// The entity.
        key: String,
        /// The instance that came back.
        instance: String,
        /// The one it interleaved with.
        other: String,
        /// Sequence number of the returning write.
        seq: u64,
        /// Its idempotency key.
        tag: String,
    },
}

/// An acknowledged write missing from the store, or a failed one in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriteViolation {
    /// The operation.
    pub op: OpRef,
    /// Its idempotency key.
    pub tag: String,
    /// `acknowledged-but-lost` or `failed-but-applied`.
    pub problem: String,
}

/// How fast every key answered again after the last heal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// The last heal, ns since the start (none: no faults).
    pub last_heal: Option<u64>,
    /// The bound, ms.
    pub bound_ms: u64,
    /// The slowest key's recovery, ms.
    pub worst_ms: Option<u64>,
    /// Keys over the bound: key and its recovery in ms (none: never).
    pub late: Vec<(String, Option<u64>)>,
}

/// Runs every check. `store` is `None` when the store cannot be read (user
/// services): checks 2 and 3 are skipped.
pub fn check(
    events: &[Event],
    store: Option<&BTreeMap<String, Vec<StoreRecord>>>,
    settings: &CheckSettings,
) -> Result<Verdict, ExperimentError> {
    let operations = pair(events)?;
    let stored_effects = store.map(effects);
    let linearizability = check_linearizability(
        &operations,
        settings.budget_per_key,
        stored_effects.as_ref(),
    )?;
    let (store_violations, writes) = match store {
        Some(store) => (check_store(store), check_writes(&operations, store)),
        None => (Vec::new(), Vec::new()),
    };
    let recovery = check_recovery(&operations, settings);

    let mut flagged = BTreeSet::new();
    for violation in &linearizability.violations {
        flagged.insert(violation.blocking.index);
        flagged.extend(violation.candidates.iter().map(|op| op.index));
    }
    flagged.extend(writes.iter().map(|w| w.op.index));
    let by_tag: FxHashMap<&str, u64> = operations
        .iter()
        .filter_map(|op| Some((op.invoke.tag.as_deref()?, op.invoke.index)))
        .collect();
    for violation in &store_violations {
        let tags: Vec<&str> = match violation {
            StoreViolation::DuplicateSequence { tags, .. } => {
                tags.iter().map(String::as_str).collect()
            }
            StoreViolation::InterleavedInstances { tag, .. } => vec![tag.as_str()],
            StoreViolation::SequenceGap { .. } => Vec::new(),
        };
        flagged.extend(tags.into_iter().filter_map(|t| by_tag.get(t).copied()));
    }

    let mut problems = Vec::new();
    if let Some(first) = linearizability.violations.first() {
        problems.push(format!(
            "{} key(s) not linearizable, first {} ({}): op {} {:?} on {} cannot be placed after {} ops (state {})",
            linearizability.violations.len(),
            first.key,
            first.model,
            first.blocking.index,
            first.blocking.f,
            first.blocking.node,
            first.prefix_len,
            first.state
        ));
    }
    if let Some(first) = store_violations.first() {
        problems.push(format!(
            "{} store violation(s), first: {}",
            store_violations.len(),
            describe_store(first)
        ));
    }
    if let Some(first) = writes.first() {
        problems.push(format!(
            "{} write(s) {}, first: op {} tag {} on {}",
            writes.len(),
            first.problem,
            first.op.index,
            first.tag,
            first.op.key
        ));
    }
    if let Some((key, took)) = recovery.late.first() {
        problems.push(format!(
            "{} key(s) recovered later than {} ms after the last heal, first {key}: {}",
            recovery.late.len(),
            recovery.bound_ms,
            took.map_or("never".to_string(), |ms| format!("{ms} ms"))
        ));
    }
    let valid = problems.is_empty();
    let summary = if valid {
        let mut line = format!(
            "valid: {} operations on {} keys linearizable, store consistent, no acknowledged write lost",
            linearizability.operations, linearizability.keys
        );
        if let Some(worst) = recovery.worst_ms {
            line.push_str(&format!(", recovered in {worst} ms"));
        }
        if !linearizability.unknown_keys.is_empty() {
            line.push_str(&format!(
                " ({} keys unknown: search budget exhausted)",
                linearizability.unknown_keys.len()
            ));
        }
        line
    } else {
        format!("INVALID: {}", problems.join("; "))
    };
    Ok(Verdict {
        valid,
        summary,
        linearizability,
        store: store_violations,
        writes,
        recovery,
        violating_events: flagged.into_iter().take(50).collect(),
    })
}

fn describe_store(violation: &StoreViolation) -> String {
    match violation {
        StoreViolation::SequenceGap { key, after, next } => {
            format!("{key}: sequence jumps from {after} to {next}")
        }
        StoreViolation::DuplicateSequence {
            key,
            seq,
            instances,
            ..
        } => format!(
            "{key}: sequence {seq} written twice, by {}",
            instances.join(" and ")
        ),
        StoreViolation::InterleavedInstances {
            key,
            instance,
            other,
            seq,
            ..
        } => format!("{key}: {instance} wrote seq {seq} after {other} had taken over"),
    }
}

/// What the store shows a write did: the value after it, by key and
/// idempotency key (the first record, if a split brain wrote it twice).
pub type Effects<'a> = FxHashMap<(&'a str, &'a str), i64>;

/// The effects recorded in `store`.
pub fn effects(store: &BTreeMap<String, Vec<StoreRecord>>) -> Effects<'_> {
    let mut out = Effects::default();
    for (key, records) in store {
        for record in records {
            out.entry((key.as_str(), record.tag.as_str()))
                .or_insert(record.value);
        }
    }
    out
}

/// Check 1 over paired operations: every key on its own. With the store's
/// `effects`, a write whose outcome the client never learned (`info`) is
/// resolved: in the store it happened, with the value stored (its time
/// stays unknown); absent, it never did (the store is the only place a
/// write takes effect). That keeps the search small when a fault leaves
/// many operations open.
pub fn check_linearizability(
    operations: &[Operation],
    budget_per_key: u64,
    effects: Option<&Effects<'_>>,
) -> Result<Linearizability, ExperimentError> {
    let started = Instant::now();
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in operations {
        by_key.entry(op.invoke.key()).or_default().push(op);
    }
    let mut result = Linearizability {
        keys: by_key.len(),
        operations: 0,
        elapsed_ms: 0.0,
        resolved_from_store: 0,
        unknown_keys: Vec::new(),
        violations: Vec::new(),
    };
    for (key, ops) in by_key {
        let mut searched: Vec<&Operation> = Vec::with_capacity(ops.len());
        let mut search: Vec<SearchOp> = Vec::with_capacity(ops.len());
        for op in ops {
            let Some(mut search_op) = search_op(op)? else {
                continue;
            };
            if let (Output::Unknown, Some(tag), Some(effects)) =
                (search_op.output, op.invoke.tag.as_deref(), effects)
            {
                result.resolved_from_store += 1;
                match (effects.get(&(key, tag)), search_op.input) {
                    (None, _) => continue,
                    (Some(&value), Input::Add(_)) => search_op.output = Output::Value(value),
                    (Some(_), _) => search_op.output = Output::Done,
                }
            }
            searched.push(op);
            search.push(search_op);
        }
        result.operations += search.len();
        let registers = search
            .iter()
            .any(|op| matches!(op.input, Input::Write(_) | Input::Cas(..)));
        let (name, outcome) = if registers {
            run(&RegisterModel, key, &search, budget_per_key)?
        } else {
            run(&CounterModel, key, &search, budget_per_key)?
        };
        match outcome {
            SearchResult::Linearizable => {}
            SearchResult::Unknown { .. } => result.unknown_keys.push(key.to_string()),
            SearchResult::Violation(witness) => result.violations.push(KeyViolation {
                key: key.to_string(),
                model: name.to_string(),
                blocking: OpRef::of(searched[witness.blocking]),
                candidates: witness
                    .candidates
                    .iter()
                    .map(|&i| OpRef::of(searched[i]))
                    .collect(),
                prefix_len: witness.prefix_len,
                state: witness.state,
            }),
        }
    }
    result.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(result)
}

fn run<M: Model>(
    model: &M,
    key: &str,
    ops: &[SearchOp],
    budget: u64,
) -> Result<(&'static str, SearchResult), ExperimentError> {
    if let Some(op) = ops.iter().find(|op| !model.accepts(op.input)) {
        return Err(ExperimentError::MalformedHistory(format!(
            "key {key} mixes models: {:?} on a {}",
            op.input,
            model.name()
        )));
    }
    Ok((model.name(), wgl::check(model, ops, budget)))
}

/// The search's view of one operation; `None` for a failed one.
fn search_op(op: &Operation) -> Result<Option<SearchOp>, ExperimentError> {
    let malformed = |what: &str| {
        ExperimentError::MalformedHistory(format!("event {}: {what}", op.invoke.index))
    };
    let arg = op.invoke.value.1;
    let input = match op.invoke.f {
        Function::Add => Input::Add(arg.int().ok_or_else(|| malformed("add without a delta"))?),
        Function::Read => Input::Read,
        Function::Write => Input::Write(
            arg.int()
                .ok_or_else(|| malformed("write without a value"))?,
        ),
        Function::Cas => match arg {
            Value::Pair([from, to]) => Input::Cas(from, to),
            _ => return Err(malformed("cas without [from, to]")),
        },
    };
    let (output, ret) = match &op.completion {
        Some(done) if done.kind == EventKind::Fail => return Ok(None),
        Some(done) if done.kind == EventKind::Ok => {
            let output = match op.invoke.f {
                Function::Add => done.result.map_or(Output::Done, Output::Value),
                Function::Read => Output::Value(
                    done.value
                        .1
                        .int()
                        .ok_or_else(|| malformed("ok read without a value"))?,
                ),
                Function::Write | Function::Cas => Output::Done,
            };
            (output, done.time)
        }
        _ => (Output::Unknown, u64::MAX),
    };
    Ok(Some(SearchOp {
        input,
        output,
        call: op.invoke.time,
        ret,
    }))
}

/// Check 2: sequence numbers and instance ids of every entity's file.
pub fn check_store(store: &BTreeMap<String, Vec<StoreRecord>>) -> Vec<StoreViolation> {
    let mut out = Vec::new();
    for (key, records) in store {
        let mut by_seq: BTreeMap<u64, Vec<&StoreRecord>> = BTreeMap::new();
        for record in records {
            by_seq.entry(record.seq).or_default().push(record);
        }
        let mut expected = 1;
        for (&seq, writers) in &by_seq {
            if seq != expected {
                out.push(StoreViolation::SequenceGap {
                    key: key.clone(),
                    after: expected - 1,
                    next: seq,
                });
            }
            expected = seq + 1;
            if writers.len() > 1 {
                out.push(StoreViolation::DuplicateSequence {
                    key: key.clone(),
                    seq,
                    instances: writers.iter().map(|r| r.instance.clone()).collect(),
                    tags: writers.iter().map(|r| r.tag.clone()).collect(),
                });
            }
        }
        // In file order: an instance that was replaced never writes again.
        let mut retired: BTreeSet<&str> = BTreeSet::new();
        let mut current: Option<&str> = None;
        for record in records {
            let instance = record.instance.as_str();
            if current == Some(instance) {
                continue;
            }
            if retired.contains(instance) {
                out.push(StoreViolation::InterleavedInstances {
                    key: key.clone(),
                    instance: instance.to_string(),
                    other: current.unwrap_or_default().to_string(),
                    seq: record.seq,
                    tag: record.tag.clone(),
                });
            }
            if let Some(previous) = current {
                retired.insert(previous);
            }
            current = Some(instance);
        }
    }
    out
}

/// Check 3: every acknowledged write is stored, no failed one is.
pub fn check_writes(
    operations: &[Operation],
    store: &BTreeMap<String, Vec<StoreRecord>>,
) -> Vec<WriteViolation> {
    let stored: BTreeMap<&str, BTreeSet<&str>> = store
        .iter()
        .map(|(key, records)| {
            (
                key.as_str(),
                records.iter().map(|r| r.tag.as_str()).collect(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for op in operations {
        if op.invoke.f == Function::Read {
            continue;
        }
        let Some(tag) = op.invoke.tag.as_deref() else {
            continue;
        };
        let present = stored
            .get(op.invoke.key())
            .is_some_and(|tags| tags.contains(tag));
        let problem = match op.outcome() {
            EventKind::Ok if !present => "acknowledged-but-lost",
            EventKind::Fail if present => "failed-but-applied",
            _ => continue,
        };
        out.push(WriteViolation {
            op: OpRef::of(op),
            tag: tag.to_string(),
            problem: problem.to_string(),
        });
    }
    out
}

/// Check 4: after the last heal, the first `ok` of every key that was
/// asked comes within the bound. A key still silent when the history ended
/// is late only if the bound had passed by then.
pub fn check_recovery(operations: &[Operation], settings: &CheckSettings) -> Recovery {
    let bound_ms = settings.recovery_bound.as_millis() as u64;
    let mut recovery = Recovery {
        last_heal: settings.last_heal,
        bound_ms,
        worst_ms: None,
        late: Vec::new(),
    };
    let Some(heal) = settings.last_heal else {
        return recovery;
    };
    let mut first_ok: BTreeMap<&str, Option<u64>> = BTreeMap::new();
    for op in operations {
        let asked_after = op.invoke.time >= heal;
        let ok_after = op
            .completed_at()
            .filter(|&t| t >= heal && op.outcome() == EventKind::Ok);
        if asked_after || ok_after.is_some() {
            let slot = first_ok.entry(op.invoke.key()).or_default();
            if let Some(t) = ok_after {
                *slot = Some(slot.map_or(t, |s| s.min(t)));
            }
        }
    }
    let bound_ns = bound_ms * 1_000_000;
    for (key, ok) in first_ok {
        match ok {
            Some(t) => {
                let took = (t - heal) / 1_000_000;
                recovery.worst_ms = Some(recovery.worst_ms.map_or(took, |w| w.max(took)));
                if t - heal > bound_ns {
                    recovery.late.push((key.to_string(), Some(took)));
                }
            }
            None if settings.end.saturating_sub(heal) > bound_ns => {
                recovery.late.push((key.to_string(), None));
            }
            None => {}
        }
    }
    recovery
}

#[cfg(test)]
mod tests;
