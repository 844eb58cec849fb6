//! This node's own observations: one phi-accrual detector per monitored
//! peer, the heartbeat rounds, and the set of peers it currently reports
//! unreachable.
//!
//! Heartbeats follow Akka: this node sends a heartbeat request to each
//! monitored peer every `heartbeat_interval`; the peer's driver answers at
//! once; the answer is fed to [`HeartbeatMonitor::heartbeat`]. A cut in either
//! direction therefore silences the answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::phi::{PhiAccrualDetector, PhiConfig};
use crate::NodeId;

/// Detectors for the monitored peers.
#[derive(Clone, Debug)]
pub struct HeartbeatMonitor {
    phi: PhiConfig,
    interval: Duration,
    detectors: BTreeMap<NodeId, PhiAccrualDetector>,
    unreachable: BTreeSet<NodeId>,
    next_round: Option<Instant>,
}

impl HeartbeatMonitor {
    /// A monitor watching nobody yet.
    pub fn new(phi: PhiConfig, interval: Duration) -> Self {
        Self {
            phi,
            interval,
            detectors: BTreeMap::new(),
            unreachable: BTreeSet::new(),
            next_round: None,
        }
    }

    /// Watch exactly `peers` from now on. A newly watched peer starts as if it
    /// had answered at `now` (Akka's expected first heartbeat), so a peer that
    /// never answers still becomes unreachable. Peers no longer watched are
    /// forgotten, with their observation.
    pub fn set_monitored(&mut self, now: Instant, peers: impl IntoIterator<Item = NodeId>) {
        let peers: BTreeSet<NodeId> = peers.into_iter().collect();
        self.detectors.retain(|id, _| peers.contains(id));
        self.unreachable.retain(|id| peers.contains(id));
        for peer in peers {
            self.detectors
                .entry(peer)
                .or_insert_with(|| PhiAccrualDetector::watching_from(self.phi, now));
        }
    }

    /// A heartbeat answer from `from` arrived. Answers from peers not watched
    /// (late, after a ring change) are ignored; duplicates only shorten the
    /// measured interval.
    pub fn heartbeat(&mut self, now: Instant, from: &NodeId) {
        if let Some(detector) = self.detectors.get_mut(from) {
            detector.heartbeat(now);
        }
    }

    /// Re-evaluates every detector; returns whether the unreachable set changed.
    pub fn evaluate(&mut self, now: Instant) -> bool {
        let unreachable: BTreeSet<NodeId> = self
            .detectors
            .iter()
            .filter(|(_, detector)| !detector.is_available(now))
            .map(|(id, _)| id.clone())
            .collect();
        let changed = unreachable != self.unreachable;
        self.unreachable = unreachable;
        changed
    }

    /// The peers to send a heartbeat request to now: all watched peers once
    /// per `heartbeat_interval`, none in between.
    ///
    /// The rounds keep to a fixed schedule: a round taken a little late (the
    /// driver's timer fired a millisecond after the previous one did) does not
    /// push the later ones back, and a call up to a quarter interval early
    /// takes the round, so a driver ticking at half the interval sends exactly
    /// one round per interval instead of drifting to one per 1.5 intervals
    /// (which would widen the measured intervals and delay detection).
    pub fn due(&mut self, now: Instant) -> Vec<NodeId> {
        let slack = self.interval / 4;
        if self.next_round.is_some_and(|next| now + slack < next) {
            return Vec::new();
        }
        let next = self.next_round.map_or(now, |scheduled| scheduled) + self.interval;
        self.next_round = Some(if next > now + slack {
            next
        } else {
            // Far behind (the driver stalled): start a new schedule from now.
            now + self.interval
        });
        self.detectors.keys().cloned().collect()
    }

    /// The watched peers.
    pub fn monitored(&self) -> Vec<NodeId> {
        self.detectors.keys().cloned().collect()
    }

    /// The watched peers this node reports unreachable.
    pub fn unreachable(&self) -> &BTreeSet<NodeId> {
        &self.unreachable
    }

    /// The earliest moment a watched peer not yet reported becomes
    /// unreachable if it stays silent (see [`Self::evaluate`]).
    pub fn next_unreachable_at(&self) -> Option<Instant> {
        self.detectors
            .iter()
            .filter(|(id, _)| !self.unreachable.contains(*id))
            .filter_map(|(_, detector)| detector.unavailable_at())
            .min()
    }

    /// The current phi of every watched peer.
    pub fn phis(&self, now: Instant) -> impl Iterator<Item = (&NodeId, f64)> + '_ {
        self.detectors.iter().map(move |(id, d)| (id, d.phi(now)))
    }

    /// The current phi of a watched peer.
    pub fn phi(&self, now: Instant, peer: &NodeId) -> Option<f64> {
        self.detectors.get(peer).map(|d| d.phi(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MembershipConfig;

    fn monitor() -> HeartbeatMonitor {
        let config = MembershipConfig::default();
        HeartbeatMonitor::new(
            PhiConfig::from_membership(&config),
            config.heartbeat_interval,
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_silent_peer_becomes_unreachable_and_recovers() {
        let start = Instant::now();
        let peer = NodeId::new("b", 2);
        let mut m = monitor();
        m.set_monitored(start, [peer.clone()]);
        for i in 1..10 {
            m.heartbeat(start + ms(200 * i), &peer);
        }
        assert!(!m.evaluate(start + ms(2_000)));
        assert!(m.evaluate(start + ms(1_800 + 1_400)));
        assert!(m.unreachable().contains(&peer));
        m.heartbeat(start + ms(4_000), &peer);
        assert!(m.evaluate(start + ms(4_000)));
        assert!(m.unreachable().is_empty());
    }

    #[test]
    fn a_peer_that_never_answers_becomes_unreachable() {
        let start = Instant::now();
        let peer = NodeId::new("b", 2);
        let mut m = monitor();
        m.set_monitored(start, [peer.clone()]);
        m.evaluate(start + ms(2_000));
        assert!(m.unreachable().contains(&peer));
    }

    #[test]
    fn heartbeat_rounds_follow_the_interval() {
        let start = Instant::now();
        let mut m = monitor();
        m.set_monitored(start, [NodeId::new("b", 2), NodeId::new("c", 3)]);
        assert_eq!(m.due(start).len(), 2);
        assert!(m.due(start + ms(100)).is_empty());
        assert_eq!(m.due(start + ms(200)).len(), 2);
    }

    #[test]
    fn rounds_keep_to_the_schedule_when_ticks_jitter() {
        // A driver ticking every 100 ms whose timer fires 0-1 ms late, with
        // the lateness going down from one tick to the next: still one round
        // per 200 ms, never a 300 ms gap.
        let start = Instant::now();
        let mut m = monitor();
        m.set_monitored(start, [NodeId::new("b", 2)]);
        let mut rounds = Vec::new();
        for tick in 0..40u64 {
            let late = Duration::from_micros(900 - (tick % 10) * 90);
            let now = start + ms(100 * tick) + late;
            if !m.due(now).is_empty() {
                rounds.push(now);
            }
        }
        assert_eq!(rounds.len(), 20);
        for pair in rounds.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap > ms(190) && gap < ms(210), "{gap:?}");
        }
        // A stalled driver starts a new schedule rather than sending a burst.
        let later = start + ms(10_000);
        assert!(!m.due(later).is_empty());
        assert!(m.due(later + ms(100)).is_empty());
        assert!(!m.due(later + ms(200)).is_empty());
    }

    #[test]
    fn unwatched_peers_are_forgotten() {
        let start = Instant::now();
        let peer = NodeId::new("b", 2);
        let mut m = monitor();
        m.set_monitored(start, [peer.clone()]);
        m.evaluate(start + ms(5_000));
        m.set_monitored(start + ms(5_000), []);
        assert!(m.unreachable().is_empty());
        m.heartbeat(start + ms(5_100), &peer);
        assert!(m.monitored().is_empty());
    }
}
