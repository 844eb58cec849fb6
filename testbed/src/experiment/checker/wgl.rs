//! The Wing-Gong-Lowe linearizability search, as Porcupine runs it.
//!
//! The history of one key becomes a doubly linked list of call and return
//! entries ordered by time (a call before a return at the same instant, so
//! touching operations count as concurrent). The search walks the list:
//! at a call it tries to linearize that operation now (the model accepts
//! its output in the current state), *lifts* its call and return out of
//! the list and starts again from the head; at a return whose operation is
//! not linearized yet it backtracks, undoing the last linearization. A
//! cache of `(set of linearized operations, state)` pairs that were
//! already explored prunes the search (Lowe's improvement). The list is
//! empty exactly when a linearization was found.
//!
//! Operations with an unknown outcome get a return time after everything
//! else, so they can be linearized anywhere after their call, including
//! at the very end, where their effect is never observed.
//!
//! Checking each key on its own is sound and complete for these models
//! (linearizability is compositional, the "P-compositionality" Porcupine
//! exploits).

use rustc_hash::FxHashMap;

use super::models::{Input, Model, Output};

/// One operation of one key, as the search sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOp {
    /// What it asked for.
    pub input: Input,
    /// What it answered.
    pub output: Output,
    /// When it was invoked.
    pub call: u64,
    /// When it returned (`u64::MAX`: unknown outcome).
    pub ret: u64,
}

/// What the search found for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchResult {
    /// A linearization exists.
    Linearizable,
    /// None exists; see the witness.
    Violation(Witness),
    /// The step budget ran out before an answer.
    Unknown {
        /// Steps taken.
        steps: u64,
    },
}

/// Where the search got furthest before it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The operation that could never be linearized before its return, on
    /// the longest linearizable prefix found (index into the input).
    pub blocking: usize,
    /// How many operations that prefix holds.
    pub prefix_len: usize,
    /// The other operations that were candidates at that point: called, not
    /// yet linearized, none of which fits the state (at most eight).
    pub candidates: Vec<usize>,
    /// The model state after the prefix, for the report.
    pub state: String,
}

const NONE: usize = usize::MAX;

struct Entry {
    op: usize,
    is_call: bool,
    /// For a call: the list position of its return.
    matching: usize,
    prev: usize,
    next: usize,
}

/// A growable bitset; the cache key.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)].into_boxed_slice())
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Searches a linearization of `ops` under `model`, giving up after
/// `budget` steps.
///
/// ```
/// use testbed::experiment::checker::models::{CounterModel, Input, Output};
/// use testbed::experiment::checker::wgl::{check, SearchOp, SearchResult};
///
/// let ops = [
///     SearchOp { input: Input::Add(1), output: Output::Value(1), call: 0, ret: 10 },
///     SearchOp { input: Input::Read, output: Output::Value(0), call: 20, ret: 30 },
/// ];
/// assert!(matches!(check(&CounterModel, &ops, 1_000), SearchResult::Violation(_)));
/// ```
pub fn check<M: Model>(model: &M, ops: &[SearchOp], budget: u64) -> SearchResult {
    let n = ops.len();
    if n == 0 {
        return SearchResult::Linearizable;
    }
    // Entries in time order; position 0 is the head sentinel.
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, true, i));
        order.push((op.ret, false, i));
    }
    // Calls sort before returns at the same time (`!is_call` is false first).
    order.sort_unstable_by_key(|&(time, is_call, op)| (time, !is_call, op));
    let mut entries: Vec<Entry> = Vec::with_capacity(2 * n + 1);
    entries.push(Entry {
        op: NONE,
        is_call: false,
        matching: NONE,
        prev: NONE,
        next: 1,
    });
    let mut return_at = vec![NONE; n];
    for (pos, &(_, is_call, op)) in order.iter().enumerate() {
        let at = pos + 1;
        if !is_call {
            return_at[op] = at;
        }
        entries.push(Entry {
            op,
            is_call,
            matching: NONE,
            prev: at - 1,
            next: if at == 2 * n { NONE } else { at + 1 },
        });
    }
    for entry in entries.iter_mut().skip(1) {
        if entry.is_call {
            entry.matching = return_at[entry.op];
        }
    }

    let mut cache: FxHashMap<Bits, Vec<M::State>> = FxHashMap::default();
    let mut linearized = Bits::new(n);
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut entry = entries[0].next;
    let mut steps = 0u64;
    let mut best: Option<Witness> = None;

    while entries[0].next != NONE {
        steps += 1;
        if steps > budget {
            return SearchResult::Unknown { steps };
        }
        let current = &entries[entry];
        if current.is_call {
            let op = &ops[current.op];
            if let Some(next_state) = model.step(&state, op.input, op.output) {
                let mut candidate = linearized.clone();
                candidate.set(current.op);
                let seen = cache.entry(candidate).or_default();
                if !seen.contains(&next_state) {
                    seen.push(next_state.clone());
                    linearized.set(current.op);
                    calls.push((entry, std::mem::replace(&mut state, next_state)));
                    lift(&mut entries, entry);
                    entry = entries[0].next;
                    continue;
                }
            }
            entry = entries[entry].next;
        } else {
            if best.as_ref().is_none_or(|w| calls.len() > w.prefix_len) {
                best = Some(Witness {
                    blocking: current.op,
                    prefix_len: calls.len(),
                    candidates: candidates_before(&entries, entry)
                        .into_iter()
                        .filter(|&op| op != current.op)
                        .collect(),
                    state: format!("{state:?}"),
                });
            }
            let Some((call, previous)) = calls.pop() else {
                return SearchResult::Violation(best.unwrap_or_else(|| Witness {
                    blocking: current.op,
                    prefix_len: 0,
                    candidates: Vec::new(),
                    state: format!("{state:?}"),
                }));
            };
            state = previous;
            linearized.clear(entries[call].op);
            unlift(&mut entries, call);
            entry = entries[call].next;
        }
    }
    SearchResult::Linearizable
}

/// Takes a call and its return out of the list.
fn lift(entries: &mut [Entry], call: usize) {
    let ret = entries[call].matching;
    for at in [call, ret] {
        let (prev, next) = (entries[at].prev, entries[at].next);
        entries[prev].next = next;
        if next != NONE {
            entries[next].prev = prev;
        }
    }
}

/// Puts them back, in the reverse order.
fn unlift(entries: &mut [Entry], call: usize) {
    let ret = entries[call].matching;
    for at in [ret, call] {
        let (prev, next) = (entries[at].prev, entries[at].next);
        entries[prev].next = at;
        if next != NONE {
            entries[next].prev = at;
        }
    }
}

/// The operations called before `stop` and still in the list.
fn candidates_before(entries: &[Entry], stop: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = entries[0].next;
    while at != NONE && at != stop && out.len() < 8 {
        if entries[at].is_call {
            out.push(entries[at].op);
        }
        at = entries[at].next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::models::{CounterModel, RegisterModel};
    use super::*;

    fn op(input: Input, output: Output, call: u64, ret: u64) -> SearchOp {
        SearchOp {
            input,
            output,
            call,
            ret,
        }
    }

    #[test]
    fn concurrent_adds_in_either_order() {
        let ops = [
            op(Input::Add(1), Output::Value(3), 0, 10),
            op(Input::Add(2), Output::Value(2), 1, 11),
            op(Input::Read, Output::Value(3), 12, 13),
        ];
        assert_eq!(
            check(&CounterModel, &ops, 10_000),
            SearchResult::Linearizable
        );
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_add_is_a_violation() {
        let ops = [
            op(Input::Add(5), Output::Value(5), 0, 10),
            op(Input::Read, Output::Value(0), 11, 12),
        ];
        match check(&CounterModel, &ops, 10_000) {
            SearchResult::Violation(witness) => {
                assert_eq!(witness.blocking, 1);
                assert_eq!(witness.prefix_len, 1);
                assert_eq!(witness.state, "5");
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn two_adds_seeing_the_same_base_is_a_violation() {
        // Two writers each added 1 to 0: both answered 1 (a lost update).
        let ops = [
            op(Input::Add(1), Output::Value(1), 0, 10),
            op(Input::Add(1), Output::Value(1), 5, 15),
        ];
        assert!(matches!(
            check(&CounterModel, &ops, 10_000),
            SearchResult::Violation(_)
        ));
    }

    #[test]
    fn an_unknown_add_may_or_may_not_have_happened() {
        let happened = [
            op(Input::Add(4), Output::Unknown, 0, u64::MAX),
            op(Input::Read, Output::Value(4), 10, 11),
        ];
        let not_happened = [
            op(Input::Add(4), Output::Unknown, 0, u64::MAX),
            op(Input::Read, Output::Value(0), 10, 11),
        ];
        let half = [
            op(Input::Add(4), Output::Unknown, 0, u64::MAX),
            op(Input::Read, Output::Value(2), 10, 11),
        ];
        assert_eq!(
            check(&CounterModel, &happened, 1_000),
            SearchResult::Linearizable
        );
        assert_eq!(
            check(&CounterModel, &not_happened, 1_000),
            SearchResult::Linearizable
        );
        assert!(matches!(
            check(&CounterModel, &half, 1_000),
            SearchResult::Violation(_)
        ));
    }

    #[test]
    fn an_unknown_add_cannot_take_effect_before_its_call() {
        let ops = [
            op(Input::Read, Output::Value(4), 0, 5),
            op(Input::Add(4), Output::Unknown, 10, u64::MAX),
        ];
        assert!(matches!(
            check(&CounterModel, &ops, 1_000),
            SearchResult::Violation(_)
        ));
    }

    #[test]
    fn register_cas_chain_and_a_read_going_back() {
        let good = [
            op(Input::Write(1), Output::Done, 0, 5),
            op(Input::Cas(1, 2), Output::Done, 6, 9),
            op(Input::Read, Output::Value(2), 10, 11),
        ];
        assert_eq!(
            check(&RegisterModel, &good, 1_000),
            SearchResult::Linearizable
        );
        let bad = [
            op(Input::Write(1), Output::Done, 0, 5),
            op(Input::Cas(1, 2), Output::Done, 6, 9),
            op(Input::Read, Output::Value(2), 10, 11),
            op(Input::Read, Output::Value(1), 12, 13),
        ];
        assert!(matches!(
            check(&RegisterModel, &bad, 1_000),
            SearchResult::Violation(_)
        ));
        // Two cas from the same value both applied: split brain.
        let twice = [
            op(Input::Cas(0, 1), Output::Done, 0, 5),
            op(Input::Cas(0, 2), Output::Done, 1, 6),
        ];
        assert!(matches!(
            check(&RegisterModel, &twice, 1_000),
            SearchResult::Violation(_)
        ));
    }

    #[test]
    fn the_budget_gives_up_with_unknown() {
        let ops: Vec<SearchOp> = (0..40)
            .map(|i| op(Input::Add(1), Output::Unknown, i, u64::MAX))
            .chain([op(Input::Read, Output::Value(-1), 100, 101)])
            .collect();
        assert!(matches!(
            check(&CounterModel, &ops, 50),
            SearchResult::Unknown { .. }
        ));
    }
}
