//! Configuration of the membership state machine: one serde struct with
//! documented defaults (DESIGN.md section 7).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::downing::DowningStrategy;
use crate::error::ConfigError;
use crate::phi::{PhiAccrualDetector, PhiConfig};

/// Timings and policies of membership. Every duration reads and writes as
/// `"200ms"`, `"2s"`, `"1m"` or an integer of milliseconds.
///
/// ```
/// use membership::{DowningStrategy, MembershipConfig};
/// let config = MembershipConfig::default();
/// assert_eq!(config.downing, DowningStrategy::KeepMajority);
/// assert_eq!(config.monitored_ring_size, 5);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipConfig {
    /// How often a direct heartbeat is sent to each monitored peer. Default 200 ms.
    #[serde(with = "crate::duration::human")]
    pub heartbeat_interval: Duration,
    /// A silence this long beyond the usual interval is still normal (GC pause,
    /// slow link). Default 1 s.
    #[serde(with = "crate::duration::human")]
    pub acceptable_heartbeat_pause: Duration,
    /// A peer whose phi exceeds this is unreachable. Default 8.
    pub phi_threshold: f64,
    /// Floor for the standard deviation of heartbeat intervals. Default 15 ms:
    /// on a quiet link phi crosses 8 about 1.28 s after the last heartbeat
    /// (interval + pause + ~5.2 standard deviations), which keeps crash -> Down
    /// within the 3.5 s budget. Akka's 100 ms would add ~0.4 s.
    #[serde(with = "crate::duration::human")]
    pub min_std_deviation: Duration,
    /// Number of heartbeat intervals kept per peer. Default 1000.
    pub max_sample_size: usize,
    /// Each node monitors this many successors on the ring of members ordered
    /// by `NodeId` (everyone when the cluster is smaller). Default 5.
    pub monitored_ring_size: usize,
    /// The downing decision is taken only after the set of unreachable members
    /// has not changed for this long. Default 2 s.
    #[serde(with = "crate::duration::human")]
    pub stable_after: Duration,
    /// The split-brain strategy. Default `keep-majority`.
    pub downing: DowningStrategy,
    /// If the unreachable set keeps changing for `stable_after` plus this long,
    /// the deciding node downs every member of its own side (Akka's
    /// `down-all-when-unstable`; the other side decides for itself). `"off"` disables it. Default 4 s
    /// (Akka: 3/4 of `stable_after`, at least 4 s).
    #[serde(with = "crate::duration::human_opt")]
    pub down_all_when_unstable: Option<Duration>,
    /// A joining node that, this long after it started and after at least one
    /// gossip round, sees no Up member and no older joining node admits
    /// itself: it is the first node of a cluster. Default 1 s.
    #[serde(with = "crate::duration::human")]
    pub seed_self_admit_after: Duration,
    /// Whether this node may start a new cluster when it finds none (it
    /// admits itself). Only the node that bootstraps a cluster should: a
    /// node meant to join an existing cluster that admitted itself while
    /// cut off from it (say, restarted after being downed during a split)
    /// would start a second cluster beside it. `mesh` sets it from the
    /// seeds: a node started without seeds, or whose first seed is its own
    /// address, may start a cluster; any other waits to be admitted.
    /// Default true.
    pub may_start_cluster: bool,
    /// A leaving node moves on from `Leaving` to `Exiting` after this long even
    /// if the driver never reported the handoff done. Default 10 s.
    #[serde(with = "crate::duration::human")]
    pub leave_handoff_timeout: Duration,
    /// An `Exiting` node publishes `Removed` once every live member has
    /// acknowledged its `Exiting` (so peers see it go gracefully and do not
    /// treat its silence as a crash), or after this long at most: a peer
    /// that never answers cannot hold a leave up. Default 3 s.
    #[serde(with = "crate::duration::human")]
    pub exiting_timeout: Duration,
    /// A node keeps the Down decisions it published for a member this long
    /// after that member has disappeared from gossip, then deletes the keys.
    /// Default 10 min.
    #[serde(with = "crate::duration::human")]
    pub down_key_retention: Duration,
    /// A Down member leaves the member list (becomes Removed) once every
    /// Up, reachable member has seen the decision and this node has known
    /// it for this long (so that whoever watches for the Down sees it).
    /// Default 5 s.
    #[serde(with = "crate::duration::human")]
    pub down_removal_after: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(200),
            acceptable_heartbeat_pause: Duration::from_secs(1),
            phi_threshold: 8.0,
            min_std_deviation: Duration::from_millis(15),
            max_sample_size: 1000,
            monitored_ring_size: 5,
            stable_after: Duration::from_secs(2),
            downing: DowningStrategy::KeepMajority,
            down_all_when_unstable: Some(Duration::from_secs(4)),
            seed_self_admit_after: Duration::from_secs(1),
            may_start_cluster: true,
            leave_handoff_timeout: Duration::from_secs(10),
            exiting_timeout: Duration::from_secs(3),
            down_key_retention: Duration::from_secs(600),
            down_removal_after: Duration::from_secs(5),
        }
    }
}

impl MembershipConfig {
    /// How long after a node starts to monitor a peer that never answers it
    /// finds the peer unreachable: the expected first interval, the
    /// acceptable pause and the phi threshold's margin of deviations.
    /// Rounded up to the millisecond.
    pub fn first_detection(&self) -> Duration {
        let start = Instant::now();
        let exact = PhiAccrualDetector::watching_from(PhiConfig::from_membership(self), start)
            .unavailable_at()
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(start));
        Duration::from_millis(exact.as_nanos().div_ceil(1_000_000) as u64)
    }

    /// Checks what the guarantees rely on. The downing resolver takes the
    /// silence of a member that monitors a reported peer for contact with it
    /// (an indirectly connected peer, not a cut): so every monitor must be
    /// able to report a silent peer before a decision, even one it started
    /// to monitor just as the reports came (a node that joined one side of a
    /// cut). With `stable_after` no longer than [`Self::first_detection`],
    /// such a node keeps its side up beside the majority: with
    /// `acceptable_heartbeat_pause` at Akka's 3 s and `stable_after` at 2 s,
    /// both sides of the simulator's seed 2927 stayed up.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let detection = self.first_detection();
        if self.stable_after <= detection {
            return Err(ConfigError::DetectionSlowerThanDecision {
                stable_after: self.stable_after,
                detection,
            });
        }
        Ok(())
    }

    /// How often the driver should call [`crate::Membership::tick`]: half the
    /// heartbeat interval, so that detection and decisions are not delayed by a
    /// whole interval.
    pub fn tick_interval(&self) -> Duration {
        (self.heartbeat_interval / 2).max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_waits_longer_than_a_silent_new_peer_takes_to_be_found() {
        let defaults = MembershipConfig::default();
        assert!(defaults.validate().is_ok());
        // 200 ms + 1 s + 5.2 deviations of the seeded history (50 ms).
        let detection = defaults.first_detection();
        assert!(
            detection > Duration::from_millis(1_400) && detection < Duration::from_millis(1_500),
            "{detection:?}"
        );
        let akka_pause = MembershipConfig {
            acceptable_heartbeat_pause: Duration::from_secs(3),
            ..MembershipConfig::default()
        };
        assert!(matches!(
            akka_pause.validate(),
            Err(ConfigError::DetectionSlowerThanDecision { .. })
        ));
        let waits_longer = MembershipConfig {
            stable_after: Duration::from_secs(4),
            ..akka_pause
        };
        assert!(waits_longer.validate().is_ok());
    }

    #[test]
    fn defaults_round_trip_through_serde() {
        let config = MembershipConfig::default();
        let json = serde_json::to_string(&config).expect("serializes");
        let back: MembershipConfig = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, config);
    }

    #[test]
    fn reads_human_durations_and_strategies() {
        let json = r#"{
            "heartbeat_interval": "100ms",
            "stable_after": 1000,
            "down_all_when_unstable": "off",
            "downing": { "strategy": "static-quorum", "quorum_size": 3 }
        }"#;
        let config: MembershipConfig = serde_json::from_str(json).expect("deserializes");
        assert_eq!(config.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(config.stable_after, Duration::from_secs(1));
        assert_eq!(config.down_all_when_unstable, None);
        assert_eq!(
            config.downing,
            DowningStrategy::StaticQuorum { quorum_size: 3 }
        );
        assert_eq!(config.phi_threshold, 8.0);
    }
}
