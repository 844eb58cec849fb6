//! Shrinking: cut a failing schedule down to a minimal one that still
//! fails the same property, by removing chunks of faults (halves first,
//! then smaller pieces, as delta debugging does) and keeping every removal
//! after which the run still fails.

use super::nemesis::Schedule;
use super::run_schedule;
use super::world::{Outcome, SimConfig};

/// A shrunk failure.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing schedule found.
    pub outcome: Outcome,
    /// Runs it took.
    pub runs: usize,
}

/// Shrinks the failing `outcome` of `seed`; at most `budget` runs.
pub fn shrink(config: &SimConfig, outcome: Outcome, budget: usize) -> Shrunk {
    let Some(invariant) = outcome.violation.as_ref().map(|v| v.invariant) else {
        return Shrunk { outcome, runs: 0 };
    };
    let seed = outcome.seed;
    let mut best = outcome;
    let mut runs = 0;
    let mut chunk = best.schedule.faults.len().div_ceil(2);
    while chunk >= 1 && runs < budget {
        let mut removed = false;
        let mut start = 0;
        while start < best.schedule.faults.len() && runs < budget {
            let mut faults = best.schedule.faults.clone();
            let end = (start + chunk).min(faults.len());
            faults.drain(start..end);
            runs += 1;
            let candidate = run_schedule(config, seed, Schedule::new(faults));
            if candidate.violation.as_ref().map(|v| v.invariant) == Some(invariant) {
                best = candidate;
                removed = true;
            } else {
                start += chunk;
            }
        }
        if !removed {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2).max(1).min(chunk - 1).max(1);
        }
    }
    Shrunk {
        outcome: best,
        runs,
    }
}
