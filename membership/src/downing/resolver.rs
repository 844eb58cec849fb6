//! The split-brain resolver stepped with time: the strategy's resolution of
//! the current view, held back until the view is stable, or overridden by
//! "down all" when it stays unstable too long.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::resolve::{down_all, resolve, Resolution};
use super::stability::{StabilityTracker, ViewFingerprint};
use super::strategy::{Decision, DowningStrategy};
use crate::{Member, MembershipConfig, NodeId};

/// A decision that will be (or is being) taken: for the admin API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingDecision {
    /// The node that will act: the oldest counted member of this node's side.
    pub decider: NodeId,
    /// The configured strategy.
    pub strategy: DowningStrategy,
    /// What will be decided if the view stays as it is.
    pub decision: Decision,
    /// Whom the decision downs.
    pub to_down: Vec<NodeId>,
    /// Members currently reported unreachable.
    pub unreachable: Vec<NodeId>,
    /// Members unreachable from some observers but reachable from others.
    pub indirectly_connected: Vec<NodeId>,
    /// The view kept changing for longer than `stable_after` plus
    /// `down_all_when_unstable`: the decision is down-all.
    pub unstable: bool,
    /// Time left until the view counts as stable (zero: due now).
    #[serde(with = "crate::duration::human")]
    pub decide_in: Duration,
    /// The instant the decision becomes due, if nothing changes.
    #[serde(skip)]
    pub decide_at: Instant,
}

/// Strategy, stability timer and unstable bound together.
#[derive(Clone, Debug)]
pub struct SplitBrainResolver {
    strategy: DowningStrategy,
    down_all_when_unstable: Option<Duration>,
    stable_after: Duration,
    ring_size: usize,
    stability: StabilityTracker,
}

impl SplitBrainResolver {
    /// A resolver with the strategy and timings of `config`; nothing is stable
    /// before `now + stable_after`.
    pub fn new(config: &MembershipConfig, now: Instant) -> Self {
        Self {
            strategy: config.downing.clone(),
            down_all_when_unstable: config.down_all_when_unstable,
            stable_after: config.stable_after,
            ring_size: config.monitored_ring_size,
            stability: StabilityTracker::new(config.stable_after, now),
        }
    }

    /// Feeds the current view. Returns the members to down now: non-empty
    /// only when `self_id` is the decider and the decision is due.
    pub fn step(&mut self, now: Instant, self_id: &NodeId, members: &[Member]) -> BTreeSet<NodeId> {
        self.stability.observe(now, fingerprint(members));
        match self.pending(now, self_id, members) {
            Some(pending) if pending.decider == *self_id && pending.decide_in.is_zero() => {
                pending.to_down.into_iter().collect()
            }
            _ => BTreeSet::new(),
        }
    }

    /// What would be decided for `members` now, and when (without recording
    /// the view).
    pub fn pending(
        &self,
        now: Instant,
        self_id: &NodeId,
        members: &[Member],
    ) -> Option<PendingDecision> {
        let resolution = resolve(&self.strategy, self_id, members, self.ring_size)?;
        let unstable = self
            .down_all_when_unstable
            .is_some_and(|bound| self.stability.unstable_for() >= self.stable_after + bound);
        let Resolution {
            decider,
            mut decision,
            mut to_down,
            unreachable,
            indirectly_connected,
        } = resolution;
        if unstable {
            decision = Decision::DownAll;
            let taking_part = members
                .iter()
                .filter(|m| m.status.is_monitored())
                .map(|m| m.id.clone())
                .collect();
            to_down = down_all(&taking_part, &unreachable, self_id);
        }
        let decide_at = self.stability.stable_at();
        let decide_in = if unstable {
            Duration::ZERO
        } else {
            decide_at.saturating_duration_since(now)
        };
        Some(PendingDecision {
            decider,
            strategy: self.strategy.clone(),
            decision,
            to_down: to_down.into_iter().collect(),
            unreachable: unreachable.into_iter().collect(),
            indirectly_connected: indirectly_connected.into_iter().collect(),
            unstable,
            decide_in,
            decide_at: if unstable { now } else { decide_at },
        })
    }
}

fn fingerprint(members: &[Member]) -> ViewFingerprint {
    let taking_part = members.iter().filter(|m| m.status.is_monitored());
    ViewFingerprint {
        members: taking_part.clone().map(|m| m.id.clone()).collect(),
        unreachable: taking_part
            .filter(|m| !m.reachability.is_reachable())
            .map(|m| m.id.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemberStatus, Reachability};

    fn id(n: u64) -> NodeId {
        NodeId::new(format!("n{n}"), n)
    }

    fn view(unreachable: &[(u64, &[u64])]) -> Vec<Member> {
        (1..=5)
            .map(|n| Member {
                id: id(n),
                addr: ([127, 0, 0, 1], 7000).into(),
                status: MemberStatus::Up,
                roles: BTreeSet::new(),
                app_version: None,
                up_number: None,
                reachability: Reachability::from_observers(
                    unreachable
                        .iter()
                        .find(|(subject, _)| *subject == n)
                        .map(|(_, observers)| observers.iter().map(|o| id(*o)).collect())
                        .unwrap_or_default(),
                ),
            })
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn decides_only_after_stable_after_and_only_on_the_decider() {
        let start = Instant::now();
        let config = MembershipConfig::default();
        let mut decider = SplitBrainResolver::new(&config, start);
        let mut other = SplitBrainResolver::new(&config, start);
        let healthy = view(&[]);
        let crashed = view(&[(5, &[1, 2, 3, 4])]);
        for t in (0..5_000).step_by(100) {
            assert!(decider.step(start + ms(t), &id(1), &healthy).is_empty());
        }
        let crash_seen = start + ms(5_000);
        let mut downed_at = None;
        for t in (0..3_000).step_by(100) {
            let now = crash_seen + ms(t);
            assert!(
                other.step(now, &id(3), &crashed).is_empty(),
                "n3 never acts"
            );
            let downed = decider.step(now, &id(1), &crashed);
            if !downed.is_empty() && downed_at.is_none() {
                assert_eq!(downed, [id(5)].into());
                downed_at = Some(t);
            }
        }
        assert_eq!(downed_at, Some(2_000));
    }

    #[test]
    fn flapping_delays_the_decision_then_downs_all() {
        let start = Instant::now();
        let config = MembershipConfig::default();
        let mut resolver = SplitBrainResolver::new(&config, start);
        let healthy = view(&[]);
        for t in (0..3_000).step_by(100) {
            resolver.step(start + ms(t), &id(1), &healthy);
        }
        // n5 flaps between reachable and unreachable every 1.5 s: never stable.
        let flap_start = start + ms(3_000);
        let mut first_action = None;
        for t in (0..10_000).step_by(100) {
            let now = flap_start + ms(t);
            let unreachable_now = (t / 1_500) % 2 == 0;
            let members = if unreachable_now {
                view(&[(5, &[1])])
            } else {
                healthy.clone()
            };
            let pending = resolver.pending(now, &id(1), &members);
            let downed = resolver.step(now, &id(1), &members);
            if !downed.is_empty() {
                first_action = Some((t, downed, pending));
                break;
            }
        }
        let (t, downed, _) = first_action.expect("down-all-when-unstable acts");
        // stable_after (2 s) + bound (4 s) of changes, then the next time n5 is unreachable.
        assert!(t >= 6_000, "acted too early at {t} ms");
        // Down all downs the decider's side: n5, reported unreachable right
        // now, is on the other side, which decides for itself.
        assert_eq!(downed, (1..=4).map(id).collect());
        let pending = resolver
            .pending(flap_start + ms(t), &id(1), &view(&[(5, &[1])]))
            .expect("pending");
        assert!(pending.unstable);
        assert_eq!(pending.decision, Decision::DownAll);
    }

    #[test]
    fn without_the_unstable_bound_flapping_never_decides() {
        let start = Instant::now();
        let config = MembershipConfig {
            down_all_when_unstable: None,
            ..MembershipConfig::default()
        };
        let mut resolver = SplitBrainResolver::new(&config, start);
        for t in (0..20_000).step_by(100) {
            let members = if (t / 1_000) % 2 == 0 {
                view(&[(5, &[1])])
            } else {
                view(&[])
            };
            assert!(resolver.step(start + ms(t), &id(1), &members).is_empty());
        }
    }

    #[test]
    fn pending_reports_the_timer() {
        let start = Instant::now();
        let config = MembershipConfig::default();
        let mut resolver = SplitBrainResolver::new(&config, start);
        let crashed = view(&[(5, &[1, 2, 3, 4])]);
        resolver.step(start + ms(3_000), &id(2), &crashed);
        let pending = resolver
            .pending(start + ms(3_500), &id(2), &crashed)
            .expect("pending");
        assert_eq!(pending.decider, id(1));
        assert_eq!(pending.decide_in, ms(1_500));
        assert_eq!(pending.to_down, vec![id(5)]);
        let json = serde_json::to_value(&pending).expect("serializes");
        assert_eq!(json["decide_in"], "1500ms");
        assert_eq!(json["decision"], "down-unreachable");
    }
}
