//! Virtual time: one global timeline in microseconds, and a clock per node
//! that runs at its own rate.
//!
//! The cores take `now: Instant`; the simulation hands each node
//! `base + its local reading`, where `base` is one `Instant` fixed when the
//! world is made. Nothing in a run depends on the value of `base`, only on
//! offsets from it, so a replay is exact.

use std::time::{Duration, Instant};

/// A point on the global virtual timeline, in microseconds since the start.
pub type Micros = u64;

/// Microseconds in one millisecond.
pub const MS: Micros = 1_000;

/// Microseconds in one second.
pub const SEC: Micros = 1_000_000;

/// One node's clock: the global time scaled by `1 + rate_ppm / 10^6`
/// (clock-rate drift; never an offset jump, as with a monotonic clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeClock {
    /// Rate deviation in parts per million, positive: this clock runs fast.
    pub rate_ppm: i64,
}

impl NodeClock {
    /// This clock's reading at global time `t`, as an `Instant` on `base`.
    pub fn instant(&self, base: Instant, t: Micros) -> Instant {
        base + Duration::from_micros(self.local(t))
    }

    /// This clock's reading at global time `t`, in microseconds.
    pub fn local(&self, t: Micros) -> Micros {
        let scaled = i128::from(t) * i128::from(1_000_000 + self.rate_ppm) / 1_000_000;
        Micros::try_from(scaled.max(0)).unwrap_or(Micros::MAX)
    }
}

/// A `Duration` as virtual microseconds.
pub fn micros(duration: Duration) -> Micros {
    Micros::try_from(duration.as_micros()).unwrap_or(Micros::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_clock_reads_ahead_and_never_goes_back() {
        let fast = NodeClock { rate_ppm: 20_000 };
        assert_eq!(fast.local(SEC), SEC + 20 * MS);
        let slow = NodeClock { rate_ppm: -20_000 };
        assert_eq!(slow.local(SEC), SEC - 20 * MS);
        assert!(slow.local(2 * SEC) > slow.local(SEC));
        let base = Instant::now();
        assert_eq!(fast.instant(base, 0), base);
    }
}
