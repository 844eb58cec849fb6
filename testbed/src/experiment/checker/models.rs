//! Sequential specifications the linearizability search checks against.
//!
//! A model is a deterministic state machine: `step` says whether an
//! operation with its observed output is legal in a state, and the state
//! after it. An unknown output (`info`) is legal whenever the input is, with
//! the effect the input would have. That the operation may also *not* have
//! taken effect needs nothing here: the search may linearize it after every
//! other operation, where its effect is never observed.

use std::fmt::Debug;
use std::hash::Hash;

/// What an operation asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Add a delta.
    Add(i64),
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write(i64),
    /// Set `to` if the value is `from`.
    Cas(i64, i64),
}

/// What an operation was seen to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// No answer known (an `info` operation).
    Unknown,
    /// Done, with no value to compare (a write, an applied cas, an add
    /// whose new value was not reported).
    Done,
    /// The value read, or the value after an add.
    Value(i64),
}

/// A sequential specification.
pub trait Model {
    /// The state; equal states are merged by the search's cache.
    type State: Clone + Eq + Hash + Debug;

    /// Name for reports.
    fn name(&self) -> &'static str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Whether the model knows this kind of operation.
    fn accepts(&self, input: Input) -> bool;

    /// The state after `input` answered `output` in `state`, or `None` if
    /// that answer is impossible there.
    fn step(&self, state: &Self::State, input: Input, output: Output) -> Option<Self::State>;
}

/// A counter starting at 0: `add` (answering the new value) and `read`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CounterModel;

impl Model for CounterModel {
    type State = i64;

    fn name(&self) -> &'static str {
        "counter"
    }

    fn init(&self) -> i64 {
        0
    }

    fn accepts(&self, input: Input) -> bool {
        matches!(input, Input::Add(_) | Input::Read)
    }

    fn step(&self, state: &i64, input: Input, output: Output) -> Option<i64> {
        match (input, output) {
            (Input::Add(delta), Output::Value(seen)) => {
                let next = state.wrapping_add(delta);
                (seen == next).then_some(next)
            }
            (Input::Add(delta), _) => Some(state.wrapping_add(delta)),
            (Input::Read, Output::Value(seen)) => (seen == *state).then_some(*state),
            (Input::Read, _) => Some(*state),
            _ => None,
        }
    }
}

/// A register starting at 0: `read`, `write` and compare-and-set. Only an
/// applied cas is an `ok` (a mismatch is a `fail`, dropped before the
/// search, as in Jepsen); an unknown cas applies iff its `from` matches.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = i64;

    fn name(&self) -> &'static str {
        "cas-register"
    }

    fn init(&self) -> i64 {
        0
    }

    fn accepts(&self, input: Input) -> bool {
        matches!(input, Input::Read | Input::Write(_) | Input::Cas(..))
    }

    fn step(&self, state: &i64, input: Input, output: Output) -> Option<i64> {
        match (input, output) {
            (Input::Read, Output::Value(seen)) => (seen == *state).then_some(*state),
            (Input::Read, _) => Some(*state),
            (Input::Write(value), _) => Some(value),
            (Input::Cas(from, to), Output::Unknown) => {
                Some(if *state == from { to } else { *state })
            }
            (Input::Cas(from, to), _) => (*state == from).then_some(to),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_adds_and_reads() {
        let m = CounterModel;
        assert_eq!(m.step(&3, Input::Add(2), Output::Value(5)), Some(5));
        assert_eq!(m.step(&3, Input::Add(2), Output::Value(6)), None);
        assert_eq!(m.step(&3, Input::Add(2), Output::Unknown), Some(5));
        assert_eq!(m.step(&3, Input::Read, Output::Value(3)), Some(3));
        assert_eq!(m.step(&3, Input::Read, Output::Value(4)), None);
        assert!(!m.accepts(Input::Write(1)));
    }

    #[test]
    fn register_cas() {
        let m = RegisterModel;
        assert_eq!(m.step(&1, Input::Cas(1, 2), Output::Done), Some(2));
        assert_eq!(m.step(&0, Input::Cas(1, 2), Output::Done), None);
        assert_eq!(m.step(&0, Input::Cas(1, 2), Output::Unknown), Some(0));
        assert_eq!(m.step(&1, Input::Cas(1, 2), Output::Unknown), Some(2));
        assert_eq!(m.step(&9, Input::Write(4), Output::Done), Some(4));
        assert!(!m.accepts(Input::Add(1)));
    }
}
