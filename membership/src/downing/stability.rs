//! When a view counts as stable (Akka's `stable-after`), and when it has been
//! unstable for too long (`down-all-when-unstable`).
//!
//! The view that must hold still is the set of members taking part (joining,
//! up, leaving) and the set of unreachable members. More observers agreeing
//! on an already-unreachable member is not a change, so a crash is decided
//! `stable_after` after the first observer noticed it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::NodeId;

/// What must not change for the view to be stable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewFingerprint {
    /// Members taking part in the cluster (joining, up, leaving).
    pub members: BTreeSet<NodeId>,
    /// Members reported unreachable.
    pub unreachable: BTreeSet<NodeId>,
}

/// Tracks changes of the [`ViewFingerprint`].
#[derive(Clone, Debug)]
pub struct StabilityTracker {
    stable_after: Duration,
    fingerprint: Option<ViewFingerprint>,
    first_change: Instant,
    last_change: Instant,
}

impl StabilityTracker {
    /// A tracker that treats `now` as a change: nothing is stable at start.
    pub fn new(stable_after: Duration, now: Instant) -> Self {
        Self {
            stable_after,
            fingerprint: None,
            first_change: now,
            last_change: now,
        }
    }

    /// Records the view at `now`; returns whether it changed. A change after a
    /// stable period starts a new unstable episode.
    pub fn observe(&mut self, now: Instant, fingerprint: ViewFingerprint) -> bool {
        if self.fingerprint.as_ref() == Some(&fingerprint) {
            return false;
        }
        if self.fingerprint.is_some() && self.is_stable(now) {
            self.first_change = now;
        }
        self.fingerprint = Some(fingerprint);
        self.last_change = now.max(self.last_change);
        true
    }

    /// When the current view becomes stable if nothing changes.
    pub fn stable_at(&self) -> Instant {
        self.last_change + self.stable_after
    }

    /// The view has not changed for `stable_after`.
    pub fn is_stable(&self, now: Instant) -> bool {
        now >= self.stable_at()
    }

    /// How long the view has kept changing: from the first change of this
    /// episode to the latest.
    pub fn unstable_for(&self) -> Duration {
        self.last_change
            .saturating_duration_since(self.first_change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(unreachable: &[u64]) -> ViewFingerprint {
        ViewFingerprint {
            members: (1..=5).map(|n| NodeId::new(format!("n{n}"), n)).collect(),
            unreachable: unreachable
                .iter()
                .map(|n| NodeId::new(format!("n{n}"), *n))
                .collect(),
        }
    }

    #[test]
    fn stable_after_no_change() {
        let start = Instant::now();
        let s = Duration::from_secs(2);
        let mut t = StabilityTracker::new(s, start);
        assert!(t.observe(start, view(&[])));
        assert!(!t.is_stable(start + Duration::from_millis(1_900)));
        assert!(!t.observe(start + Duration::from_millis(1_900), view(&[])));
        assert!(t.is_stable(start + s));
    }

    #[test]
    fn each_change_restarts_the_timer_and_extends_the_episode() {
        let start = Instant::now();
        let s = Duration::from_secs(2);
        let mut t = StabilityTracker::new(s, start);
        t.observe(start, view(&[]));
        let mut now = start + Duration::from_secs(5);
        // stable since start: this change opens a new episode
        t.observe(now, view(&[5]));
        for i in 0..6 {
            now += Duration::from_secs(1);
            t.observe(now, if i % 2 == 0 { view(&[]) } else { view(&[5]) });
            assert!(!t.is_stable(now));
        }
        assert_eq!(t.unstable_for(), Duration::from_secs(6));
        assert!(t.is_stable(now + s));
    }
}
