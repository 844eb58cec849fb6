//! Phi-accrual failure detection (Hayashibara et al.), with Akka's formula:
//! a logistic approximation of the normal distribution of heartbeat intervals,
//! the mean shifted by an acceptable pause and the standard deviation floored.
//!
//! `phi = -log10(P(a heartbeat arrives later than now))`: phi 1 means a 10 %
//! chance that the peer is still fine, phi 8 one in 10^8.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Parameters of one detector; see [`crate::MembershipConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiConfig {
    /// Unreachable above this phi.
    pub threshold: f64,
    /// Heartbeat intervals kept.
    pub max_sample_size: usize,
    /// Floor of the standard deviation.
    pub min_std_deviation: Duration,
    /// Added to the mean interval.
    pub acceptable_heartbeat_pause: Duration,
    /// Seeds the history before the second heartbeat (the heartbeat interval).
    pub first_heartbeat_estimate: Duration,
}

impl PhiConfig {
    /// The detector parameters of a membership configuration.
    pub fn from_membership(config: &crate::MembershipConfig) -> Self {
        Self {
            threshold: config.phi_threshold,
            max_sample_size: config.max_sample_size.max(2),
            min_std_deviation: config.min_std_deviation,
            acceptable_heartbeat_pause: config.acceptable_heartbeat_pause,
            first_heartbeat_estimate: config.heartbeat_interval,
        }
    }
}

/// The failure detector for one monitored peer.
#[derive(Clone, Debug)]
pub struct PhiAccrualDetector {
    config: PhiConfig,
    intervals: VecDeque<f64>,
    sum: f64,
    squared_sum: f64,
    last_heartbeat: Option<Instant>,
    /// `last_heartbeat` is the moment watching started, not an arrival.
    awaiting_first: bool,
    /// [`threshold_deviations`] of the configured threshold, solved once.
    threshold_deviations: f64,
}

impl PhiAccrualDetector {
    /// A detector that has heard nothing yet (phi 0 until the first heartbeat).
    pub fn new(config: PhiConfig) -> Self {
        Self {
            config,
            intervals: VecDeque::new(),
            sum: 0.0,
            squared_sum: 0.0,
            last_heartbeat: None,
            awaiting_first: false,
            threshold_deviations: threshold_deviations(config.threshold),
        }
    }

    /// A detector for a peer watched from `now` on that has not answered yet:
    /// phi grows from `now` as if a heartbeat had arrived then (Akka's expected
    /// first heartbeat), so a peer that never answers becomes unreachable, but
    /// that moment is not recorded as an arrival: the first real heartbeat
    /// does not add a made-up interval to the history.
    pub fn watching_from(config: PhiConfig, now: Instant) -> Self {
        let mut detector = Self::new(config);
        detector.heartbeat(now);
        detector.awaiting_first = true;
        detector
    }

    /// Records a heartbeat arrival. A heartbeat earlier than the last one
    /// (the caller's clock is monotonic, so only by misuse) is ignored.
    pub fn heartbeat(&mut self, now: Instant) {
        match self.last_heartbeat {
            None => {
                // Akka: seed with estimate +- estimate/4 so that phi is sane
                // before real intervals exist.
                let mean = millis(self.config.first_heartbeat_estimate);
                let std_deviation = mean / 4.0;
                self.push(mean - std_deviation);
                self.push(mean + std_deviation);
            }
            Some(last) => {
                if now < last {
                    return;
                }
                // Akka: the interval that ended a failure would skew the stats.
                if !self.awaiting_first && self.is_available(now) {
                    self.push(millis(now - last));
                }
            }
        }
        self.last_heartbeat = Some(now);
        self.awaiting_first = false;
    }

    /// The suspicion level now; 0 before the first heartbeat.
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last_heartbeat else {
            return 0.0;
        };
        let time_diff = millis(now.saturating_duration_since(last));
        let (mean, std_deviation) = self.expected_interval();
        phi(time_diff, mean, std_deviation)
    }

    /// Phi is below the threshold.
    pub fn is_available(&self, now: Instant) -> bool {
        self.phi(now) < self.config.threshold
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last_heartbeat
    }

    /// When phi reaches the threshold if no heartbeat arrives before: the
    /// moment to look again, rather than at the next tick of a timer.
    pub fn unavailable_at(&self) -> Option<Instant> {
        let last = self.last_heartbeat?;
        let (mean, std_deviation) = self.expected_interval();
        let after = mean + self.threshold_deviations * std_deviation;
        // A millisecond late rather than early, against rounding.
        Some(last + Duration::from_secs_f64(after.max(0.0) / 1_000.0) + Duration::from_millis(1))
    }

    /// The distribution phi measures silence against, in ms: the mean
    /// interval shifted by the acceptable pause, and the standard deviation
    /// floored.
    fn expected_interval(&self) -> (f64, f64) {
        let mean = self.mean() + millis(self.config.acceptable_heartbeat_pause);
        let std_deviation = self
            .std_deviation()
            .max(millis(self.config.min_std_deviation))
            .max(f64::MIN_POSITIVE);
        (mean, std_deviation)
    }

    fn push(&mut self, interval: f64) {
        if self.intervals.len() >= self.config.max_sample_size.max(1) {
            if let Some(dropped) = self.intervals.pop_front() {
                self.sum -= dropped;
                self.squared_sum -= dropped * dropped;
            }
        }
        self.intervals.push_back(interval);
        self.sum += interval;
        self.squared_sum += interval * interval;
    }

    fn mean(&self) -> f64 {
        if self.intervals.is_empty() {
            return 0.0;
        }
        self.sum / self.intervals.len() as f64
    }

    fn std_deviation(&self) -> f64 {
        if self.intervals.is_empty() {
            return 0.0;
        }
        let mean = self.mean();
        let variance = self.squared_sum / self.intervals.len() as f64 - mean * mean;
        // Rounding can make a zero variance slightly negative.
        variance.max(0.0).sqrt()
    }
}

/// Akka's `phi(timeDiff, mean, stdDeviation)`.
fn phi(time_diff: f64, mean: f64, std_deviation: f64) -> f64 {
    let y = (time_diff - mean) / std_deviation;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if time_diff > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    }
}

/// The `y = (timeDiff - mean) / stdDeviation` at which [`phi`] equals
/// `threshold` (above the mean): the root of `y (1.5976 + 0.070566 y^2) =
/// ln((1 - p) / p)` with `p = 10^-threshold`, by Newton's method (the left
/// side grows monotonically, so it converges from any start).
fn threshold_deviations(threshold: f64) -> f64 {
    let p = 10f64.powf(-threshold.max(f64::MIN_POSITIVE));
    let target = ((1.0 - p) / p).ln();
    let mut y = 1.0;
    for _ in 0..50 {
        let value = y * (1.5976 + 0.070566 * y * y) - target;
        let slope = 1.5976 + 3.0 * 0.070566 * y * y;
        let step = value / slope;
        y -= step;
        if step.abs() < 1e-9 {
            break;
        }
    }
    // A threshold at or below phi's value at the mean (never configured so)
    // has its root below the mean, where `phi` takes its other branch.
    y.max(0.0)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MembershipConfig;

    fn detector() -> PhiAccrualDetector {
        PhiAccrualDetector::new(PhiConfig::from_membership(&MembershipConfig::default()))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn phi_is_zero_before_the_first_heartbeat() {
        let start = Instant::now();
        let d = detector();
        assert_eq!(d.phi(start + ms(10_000)), 0.0);
        assert!(d.is_available(start + ms(10_000)));
    }

    #[test]
    fn regular_heartbeats_keep_phi_low() {
        let start = Instant::now();
        let mut d = detector();
        for i in 0..50 {
            d.heartbeat(start + ms(200 * i));
        }
        let last = start + ms(200 * 49);
        assert!(d.phi(last + ms(200)) < 0.1);
        assert!(d.phi(last + ms(1_000)) < 1.0);
        assert!(d.is_available(last + ms(1_200)));
    }

    #[test]
    fn phi_grows_with_silence_and_crosses_threshold_near_1_3_s() {
        let start = Instant::now();
        let mut d = detector();
        for i in 0..50 {
            d.heartbeat(start + ms(200 * i));
        }
        let last = start + ms(200 * 49);
        let mut previous = 0.0;
        for silence in (0..3_000).step_by(100) {
            let phi = d.phi(last + ms(silence));
            assert!(phi >= previous, "phi must not decrease with silence");
            previous = phi;
        }
        assert!(d.is_available(last + ms(1_250)));
        assert!(!d.is_available(last + ms(1_350)));
    }

    #[test]
    fn unavailable_at_is_where_phi_crosses_the_threshold() {
        let start = Instant::now();
        let mut d = detector();
        let mut at = start;
        // Irregular intervals, so that the deviation is the measured one.
        for i in 0..40u64 {
            at += ms(170 + (i * 37) % 70);
            d.heartbeat(at);
        }
        let crossing = d.unavailable_at().expect("heartbeats seen");
        assert!(crossing > at + ms(1_000), "{:?}", crossing - at);
        assert!(d.is_available(crossing - ms(3)), "available just before");
        assert!(!d.is_available(crossing), "unavailable from then on");
        for threshold in [1.0, 3.0, 8.0, 12.0] {
            let y = threshold_deviations(threshold);
            let phi_there = phi(1_000.0 + y * 50.0, 1_000.0, 50.0);
            assert!(
                (phi_there - threshold).abs() < 1e-6,
                "{threshold}: {phi_there}"
            );
        }
    }

    #[test]
    fn first_heartbeat_estimate_makes_a_silent_peer_unreachable() {
        let start = Instant::now();
        let mut d = detector();
        d.heartbeat(start);
        assert!(d.is_available(start + ms(1_000)));
        assert!(!d.is_available(start + ms(2_000)));
    }

    #[test]
    fn watching_start_is_a_timer_not_an_arrival() {
        let start = Instant::now();
        let mut d = PhiAccrualDetector::watching_from(
            PhiConfig::from_membership(&MembershipConfig::default()),
            start,
        );
        assert!(!d.is_available(start + ms(2_000)));
        d.heartbeat(start + ms(30));
        d.heartbeat(start + ms(230));
        // Seeds (150, 250) and one real interval (200); no 30 ms interval.
        assert_eq!(d.intervals.len(), 3);
        assert!((d.mean() - 200.0).abs() < 1e-6);
    }

    #[test]
    fn jittery_heartbeats_widen_the_tolerance() {
        let start = Instant::now();
        let mut steady = detector();
        let mut jittery = detector();
        let mut at = 0;
        for i in 0..100 {
            steady.heartbeat(start + ms(200 * i));
            at += if i % 2 == 0 { 50 } else { 350 };
            jittery.heartbeat(start + ms(at));
        }
        let silence = ms(1_400);
        assert!(jittery.phi(start + ms(at) + silence) < steady.phi(start + ms(200 * 99) + silence));
    }

    #[test]
    fn recovers_after_heartbeats_resume() {
        let start = Instant::now();
        let mut d = detector();
        for i in 0..10 {
            d.heartbeat(start + ms(200 * i));
        }
        let gap_end = start + ms(1_800 + 5_000);
        assert!(!d.is_available(gap_end));
        d.heartbeat(gap_end);
        assert!(d.is_available(gap_end + ms(200)));
        // The long gap was not recorded as an interval.
        assert!(d.mean() < 300.0);
    }

    #[test]
    fn sample_window_is_bounded() {
        let start = Instant::now();
        let mut d = PhiAccrualDetector::new(PhiConfig {
            max_sample_size: 4,
            ..PhiConfig::from_membership(&MembershipConfig::default())
        });
        for i in 0..20 {
            d.heartbeat(start + ms(100 * i));
        }
        assert_eq!(d.intervals.len(), 4);
        assert!((d.mean() - 100.0).abs() < 1e-6);
    }

    #[test]
    fn extreme_values_do_not_produce_nan() {
        assert!(phi(1e12, 1_200.0, 20.0).is_infinite() || phi(1e12, 1_200.0, 20.0) > 8.0);
        assert!(!phi(0.0, 1e12, 20.0).is_nan());
    }
}
