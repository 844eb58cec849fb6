//! Synthetic histories of a correct service, for the checker's benchmark and
//! tests: processes call operations on keys at random times, each takes
//! effect at a random instant inside its interval on one true copy of the
//! data, and about 1% end `info` (half of which took effect).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::history::{Event, EventKind, Function, Value};

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Operations in all.
    pub operations: usize,
    /// Keys; the even ones are counters (`add`, `read`), the odd ones
    /// registers (`write`, `cas`, `read`).
    pub keys: usize,
    /// Concurrent client processes.
    pub processes: usize,
    /// Seed of the randomness.
    pub seed: u64,
}

struct Planned {
    process: u64,
    key: usize,
    f: Function,
    arg: Value,
    call: u64,
    effect: u64,
    ret: u64,
    info: bool,
    applies: bool,
    tag: String,
}

/// Generates a linearizable history.
///
/// ```
/// use testbed::experiment::synthetic::{linearizable_history, SyntheticSpec};
/// let events = linearizable_history(SyntheticSpec { operations: 100, keys: 4, processes: 8, seed: 1 });
/// assert_eq!(events.len(), 200);
/// ```
pub fn linearizable_history(spec: SyntheticSpec) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let processes = spec.processes.max(1);
    let keys = spec.keys.max(1);
    let mut clock = vec![0u64; processes];
    let mut planned = Vec::with_capacity(spec.operations);
    for i in 0..spec.operations {
        let p = i % processes;
        let call = clock[p] + rng.gen_range(0..1_000);
        let effect = call + rng.gen_range(1..5_000);
        let ret = effect + rng.gen_range(1..5_000);
        clock[p] = ret + 1;
        let key = rng.gen_range(0..keys);
        let roll = rng.gen_range(0..100);
        let (f, arg) = match (key % 2 == 0, roll) {
            (true, 0..60) => (Function::Add, Value::Int(rng.gen_range(1..10))),
            (true, _) => (Function::Read, Value::Nil),
            (false, 0..30) => (Function::Write, Value::Int(rng.gen_range(0..5))),
            (false, 30..60) => (
                Function::Cas,
                Value::Pair([rng.gen_range(0..5), rng.gen_range(0..5)]),
            ),
            (false, _) => (Function::Read, Value::Nil),
        };
        let info = rng.gen_range(0..100) == 0;
        planned.push(Planned {
            process: p as u64,
            key,
            f,
            arg,
            call,
            effect,
            ret,
            info,
            applies: !info || rng.gen_bool(0.5),
            tag: format!("s{i}"),
        });
    }
    // Apply in effect order on the true state.
    let mut by_effect: Vec<usize> = (0..planned.len()).collect();
    by_effect.sort_by_key(|&i| planned[i].effect);
    let mut state = vec![0i64; keys];
    let mut completions: Vec<(EventKind, Value, Option<i64>)> =
        vec![(EventKind::Info, Value::Nil, None); planned.len()];
    for i in by_effect {
        let op = &planned[i];
        let value = &mut state[op.key];
        let done = match (op.f, op.arg) {
            (Function::Add, Value::Int(delta)) => {
                if op.applies {
                    *value += delta;
                }
                (EventKind::Ok, op.arg, Some(*value))
            }
            (Function::Write, Value::Int(new)) => {
                if op.applies {
                    *value = new;
                }
                (EventKind::Ok, op.arg, None)
            }
            (Function::Cas, Value::Pair([from, to])) => {
                if *value == from {
                    if op.applies {
                        *value = to;
                    }
                    (EventKind::Ok, op.arg, None)
                } else {
                    (EventKind::Fail, op.arg, None)
                }
            }
            _ => (EventKind::Ok, Value::Int(*value), None),
        };
        completions[i] = if op.info {
            (EventKind::Info, op.arg, None)
        } else {
            done
        };
    }
    let mut events = Vec::with_capacity(2 * planned.len());
    for (op, (kind, value, result)) in planned.iter().zip(completions) {
        // A process that saw `info` continues as a new process (Jepsen).
        let process = if op.info {
            op.process + processes as u64 * (1 + op.call)
        } else {
            op.process
        };
        let tag = (op.f != Function::Read).then(|| op.tag.clone());
        let invoke = Event {
            index: 0,
            kind: EventKind::Invoke,
            f: op.f,
            value: (format!("k{}", op.key), op.arg),
            process,
            time: op.call,
            node: String::new(),
            tag,
            result: None,
            error: None,
        };
        let completion = Event {
            kind,
            value: (invoke.value.0.clone(), value),
            time: op.ret,
            result,
            ..invoke.clone()
        };
        events.push(invoke);
        events.push(completion);
    }
    events.sort_by_key(|e| (e.time, e.kind != EventKind::Invoke));
    for (i, event) in events.iter_mut().enumerate() {
        event.index = i as u64;
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::checker::{check, CheckSettings};

    #[test]
    fn a_synthetic_history_is_valid_and_one_changed_read_breaks_it() {
        let mut events = linearizable_history(SyntheticSpec {
            operations: 5_000,
            keys: 50,
            processes: 20,
            seed: 7,
        });
        let verdict = check(&events, None, &CheckSettings::default()).unwrap();
        assert!(verdict.valid, "{}", verdict.summary);
        assert!(verdict.linearizability.unknown_keys.is_empty());
        let read = events
            .iter_mut()
            .rev()
            .find(|e| e.f == Function::Read && e.kind == EventKind::Ok)
            .unwrap();
        read.value.1 = Value::Int(read.value.1.int().unwrap() + 1000);
        let verdict = check(&events, None, &CheckSettings::default()).unwrap();
        assert!(!verdict.valid);
        assert_eq!(verdict.linearizability.violations.len(), 1);
    }
}
