//! Rule 3 of DESIGN.md section 5 as one function: when may the coordinator
//! treat a shard as free although the region holding it has not said so?
//!
//! A region counts its lease from the moment it *sent* the renewal, on its
//! own clock (rule 1), and every renewal it gets was answered by a
//! coordinator *after* it was sent. So the region's lease surely ends before
//! "the latest moment a grant could have been given, plus the lease", as long
//! as clocks run at about the same rate; the margin covers the rate drift.
//!
//! The latest moment a grant could have been given, as this coordinator knows
//! it, comes from two sources:
//! - **its own grants**: its last renewal answer to that region (a
//!   `RegisterAck` or `LeaseGranted` it sent);
//! - **grants of a previous coordinator** (this coordinator is new and keeps
//!   no log): the last moment the previous coordinator's node was seen
//!   reachable. A coordinator acts only with quorum (rule 2), so after that
//!   moment it granted nothing that this side's decisions did not already
//!   account for; the margin must also cover the previous coordinator's own
//!   quorum-loss detection when it was cut off rather than crashed.
//!
//! Whether the region is Down, unreachable, or just silent does not matter:
//! a Down region may be a paused process, and only the lease stops it.

use std::time::{Duration, Instant};

/// What the coordinator knows about the latest lease grant that could cover
/// a shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatestGrant {
    /// This coordinator's last renewal answer (`RegisterAck` or
    /// `LeaseGranted`) to the region, if it ever answered it.
    pub own_last_answer: Option<Instant>,
    /// The last moment the previous coordinator's node was seen reachable,
    /// if there was a previous coordinator that may have granted a lease.
    pub previous_coordinator_last_seen: Option<Instant>,
}

/// The moment from which nobody can still run the shard under a lease that
/// covers it: the latest moment it could have been renewed, plus the lease,
/// plus the clock-drift margin. `None` when no lease can cover it (no grant
/// by this coordinator and no previous coordinator): the shard is free now.
///
/// This single function decides both safety (too early = two homes) and
/// recovery time (too late = shards unavailable); every case has a test.
///
/// ```
/// use std::time::{Duration, Instant};
/// use sharding::{shard_free_at, LatestGrant};
/// let t = Instant::now();
/// let grant = LatestGrant { own_last_answer: Some(t), previous_coordinator_last_seen: None };
/// let free = shard_free_at(grant, Duration::from_secs(3), Duration::from_millis(300));
/// assert_eq!(free, Some(t + Duration::from_millis(3300)));
/// ```
pub fn shard_free_at(
    grant: LatestGrant,
    lease: Duration,
    drift_margin: Duration,
) -> Option<Instant> {
    let latest = match (grant.own_last_answer, grant.previous_coordinator_last_seen) {
        (Some(own), Some(previous)) => own.max(previous),
        (Some(own), None) => own,
        (None, Some(previous)) => previous,
        (None, None) => return None,
    };
    Some(latest + lease + drift_margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(3);
    const MARGIN: Duration = Duration::from_millis(300);

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn own_grant_frees_lease_plus_margin_after_the_last_renewal_answer() {
        let t = Instant::now();
        let grant = LatestGrant {
            own_last_answer: Some(at(t, 1_000)),
            previous_coordinator_last_seen: None,
        };
        assert_eq!(shard_free_at(grant, LEASE, MARGIN), Some(at(t, 4_300)));
    }

    #[test]
    fn a_later_renewal_answer_moves_the_free_moment_later() {
        let t = Instant::now();
        let first = LatestGrant {
            own_last_answer: Some(at(t, 1_000)),
            ..LatestGrant::default()
        };
        let renewed = LatestGrant {
            own_last_answer: Some(at(t, 2_000)),
            ..LatestGrant::default()
        };
        assert!(shard_free_at(renewed, LEASE, MARGIN) > shard_free_at(first, LEASE, MARGIN));
        assert_eq!(shard_free_at(renewed, LEASE, MARGIN), Some(at(t, 5_300)));
    }

    #[test]
    fn previous_coordinator_grant_counts_from_its_node_last_seen_reachable() {
        let t = Instant::now();
        let grant = LatestGrant {
            own_last_answer: None,
            previous_coordinator_last_seen: Some(at(t, 500)),
        };
        assert_eq!(shard_free_at(grant, LEASE, MARGIN), Some(at(t, 3_800)));
    }

    #[test]
    fn both_known_the_later_moment_wins_whichever_it_is() {
        let t = Instant::now();
        let own_later = LatestGrant {
            own_last_answer: Some(at(t, 2_000)),
            previous_coordinator_last_seen: Some(at(t, 500)),
        };
        assert_eq!(shard_free_at(own_later, LEASE, MARGIN), Some(at(t, 5_300)));
        let previous_later = LatestGrant {
            own_last_answer: Some(at(t, 500)),
            previous_coordinator_last_seen: Some(at(t, 2_000)),
        };
        assert_eq!(
            shard_free_at(previous_later, LEASE, MARGIN),
            Some(at(t, 5_300))
        );
    }

    #[test]
    fn no_grant_at_all_means_free_now() {
        assert_eq!(shard_free_at(LatestGrant::default(), LEASE, MARGIN), None);
    }

    #[test]
    fn the_margin_is_added_on_top_of_the_lease() {
        let t = Instant::now();
        let grant = LatestGrant {
            own_last_answer: Some(t),
            ..LatestGrant::default()
        };
        assert_eq!(
            shard_free_at(grant, LEASE, Duration::ZERO),
            Some(at(t, 3_000))
        );
        assert_eq!(shard_free_at(grant, LEASE, MARGIN), Some(at(t, 3_300)));
    }

    #[test]
    fn the_region_lease_counted_from_its_send_time_ends_before_the_free_moment() {
        // The region sent its renewal at 1.0 s, the coordinator answered at
        // 1.2 s: the region runs until 4.0 s, the shard is free at 4.5 s.
        let t = Instant::now();
        let region_lease_end = at(t, 1_000) + LEASE;
        let grant = LatestGrant {
            own_last_answer: Some(at(t, 1_200)),
            ..LatestGrant::default()
        };
        let free = shard_free_at(grant, LEASE, MARGIN).expect("granted");
        assert!(region_lease_end < free);
    }
}
