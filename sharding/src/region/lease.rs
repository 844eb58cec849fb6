//! The region's side of rule 1: a lease counted on the region's own clock
//! from the moment it *sent* the request that was granted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ids::RequestId;

/// Lease accounting of one region.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeaseClock {
    valid_until: Option<Instant>,
    renewals: BTreeMap<RequestId, Instant>,
    last_renewal_sent: Option<Instant>,
}

impl LeaseClock {
    /// Whether the lease covers `now`.
    pub(crate) fn is_valid(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|until| now < until)
    }

    pub(crate) fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }

    /// A request that may be granted was sent at `sent_at`: the lease it
    /// brings runs `lease` from then. Never shortens the lease.
    pub(crate) fn grant_from(&mut self, sent_at: Instant, lease: Duration) {
        let until = sent_at + lease;
        self.valid_until = Some(self.valid_until.map_or(until, |old| old.max(until)));
    }

    /// A `Register` sent at `sent_at` was acknowledged: a lease like a
    /// renewal's, and the next renewal is due an interval after it.
    pub(crate) fn registered(&mut self, sent_at: Instant, lease: Duration) {
        self.grant_from(sent_at, lease);
        self.last_renewal_sent = Some(self.last_renewal_sent.map_or(sent_at, |t| t.max(sent_at)));
    }

    /// A `RenewLease` with this id was sent now.
    pub(crate) fn renewal_sent(&mut self, renewal: RequestId, now: Instant) {
        self.renewals.insert(renewal, now);
        self.last_renewal_sent = Some(now);
    }

    /// `LeaseGranted` for `renewal`: extends the lease from that renewal's
    /// send time. A grant for a renewal not remembered changes nothing.
    pub(crate) fn renewal_granted(&mut self, renewal: RequestId, lease: Duration) {
        if let Some(sent_at) = self.renewals.remove(&renewal) {
            self.grant_from(sent_at, lease);
        }
    }

    /// Whether it is time to ask for a renewal.
    pub(crate) fn renewal_due(&self, now: Instant, interval: Duration) -> bool {
        self.last_renewal_sent
            .is_none_or(|sent| sent + interval <= now)
    }

    /// Forgets renewals older than a lease (their grants could add nothing)
    /// and, with `all`, every pending renewal (a new coordinator epoch).
    pub(crate) fn prune(&mut self, now: Instant, lease: Duration, all: bool) {
        if all {
            self.renewals.clear();
            self.last_renewal_sent = None;
        } else {
            self.renewals.retain(|_, sent| *sent + lease > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(3);

    #[test]
    fn lease_counts_from_the_send_time_of_the_granted_renewal() {
        let t = Instant::now();
        let mut clock = LeaseClock::default();
        assert!(!clock.is_valid(t));
        clock.renewal_sent(RequestId(1), t);
        // Granted a second later: still counted from t.
        clock.renewal_granted(RequestId(1), LEASE);
        assert_eq!(clock.valid_until(), Some(t + LEASE));
        assert!(clock.is_valid(t + LEASE - Duration::from_millis(1)));
        assert!(!clock.is_valid(t + LEASE));
    }

    #[test]
    fn duplicate_or_unknown_grants_change_nothing_and_never_shorten() {
        let t = Instant::now();
        let mut clock = LeaseClock::default();
        clock.renewal_sent(RequestId(1), t);
        clock.renewal_sent(RequestId(2), t + Duration::from_secs(1));
        clock.renewal_granted(RequestId(2), LEASE);
        clock.renewal_granted(RequestId(1), LEASE); // late: older send time
        clock.renewal_granted(RequestId(2), LEASE); // duplicate
        clock.renewal_granted(RequestId(9), LEASE); // never sent
        assert_eq!(clock.valid_until(), Some(t + Duration::from_secs(4)));
    }
}
