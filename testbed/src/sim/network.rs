//! The simulated network: a [`LinkRule`] per directed pair of nodes, judged
//! by the proxy's own pure [`LinkRule::judge`], on top of a small base
//! latency.
//!
//! Without a rule a link is first-in, first-out (one QUIC connection per
//! pair keeps per-pair order when nothing fails). A rule with a jittered
//! delay or a reorder part lets messages overtake each other; a held-back
//! message waits at most [`REORDER_MAX_HOLD`] longer. Nodes are numbered by
//! their slot: a restarted node keeps its slot (its name), as a restarted
//! process keeps its address.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::Rng;

use super::time::{micros, Micros, MS};
use crate::proxy::{LinkRule, Verdict, REORDER_MAX_HOLD};

/// Latency of every message on a link without a delay rule: 0.2 to 1 ms.
const BASE_LATENCY: (Micros, Micros) = (200, 1_000);

/// The links between the slots of a world.
#[derive(Debug, Default)]
pub struct Network {
    rules: BTreeMap<(usize, usize), LinkRule>,
    /// When the last in-order message on each link arrives (FIFO).
    last_arrival: BTreeMap<(usize, usize), Micros>,
    /// Messages sent, lost to a rule, and duplicated by one.
    pub counters: NetworkCounters,
}

/// What the network did, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkCounters {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages a rule dropped or lost.
    pub dropped: u64,
    /// Extra copies a rule made.
    pub duplicated: u64,
}

impl Network {
    /// Sets the rule of the directed link `from -> to` (pass removes it).
    pub fn set_rule(&mut self, from: usize, to: usize, rule: LinkRule) {
        if rule.is_pass() {
            self.rules.remove(&(from, to));
        } else {
            self.rules.insert((from, to), rule);
        }
    }

    /// Cuts every link between two different groups, both ways.
    pub fn partition(&mut self, sides: &[Vec<usize>]) {
        for (i, side) in sides.iter().enumerate() {
            for other in sides.iter().skip(i + 1) {
                for &a in side {
                    for &b in other {
                        self.set_rule(a, b, LinkRule::drop_all());
                        self.set_rule(b, a, LinkRule::drop_all());
                    }
                }
            }
        }
    }

    /// Every link passes again.
    pub fn heal(&mut self) {
        self.rules.clear();
    }

    /// Whether messages pass both ways between `a` and `b` (a lossy or slow
    /// link counts as connected; a cut in either direction does not).
    pub fn connected(&self, a: usize, b: usize) -> bool {
        let open = |x, y| self.rules.get(&(x, y)).is_none_or(|rule| !rule.drop);
        open(a, b) && open(b, a)
    }

    /// When the copies of one message sent `from -> to` at `now` arrive:
    /// none if it is lost, two if it is duplicated.
    pub fn route(&mut self, rng: &mut StdRng, now: Micros, from: usize, to: usize) -> Vec<Micros> {
        self.counters.sent += 1;
        let base = rng.gen_range(BASE_LATENCY.0..=BASE_LATENCY.1);
        let Some(rule) = self.rules.get(&(from, to)) else {
            return vec![self.in_order(from, to, now + base)];
        };
        match rule.judge(rng) {
            Verdict::Drop => {
                self.counters.dropped += 1;
                Vec::new()
            }
            Verdict::Forward(forward) => {
                let hold = match forward.hold {
                    Some(_) => rng.gen_range(MS..=micros(REORDER_MAX_HOLD)),
                    None => 0,
                };
                let due = now + base + micros(forward.delay) + hold;
                let due = if forward.in_order && hold == 0 {
                    self.in_order(from, to, due)
                } else {
                    due
                };
                if forward.copies > 1 {
                    self.counters.duplicated += 1;
                }
                vec![due; usize::from(forward.copies)]
            }
        }
    }

    fn in_order(&mut self, from: usize, to: usize, due: Micros) -> Micros {
        let last = self.last_arrival.entry((from, to)).or_insert(0);
        *last = (*last).max(due);
        *last
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_partition_cuts_both_ways_and_heal_reopens() {
        let mut network = Network::default();
        let mut rng = StdRng::seed_from_u64(1);
        network.partition(&[vec![0, 1], vec![2]]);
        assert!(!network.connected(0, 2));
        assert!(network.connected(0, 1));
        assert!(network.route(&mut rng, 0, 2, 1).is_empty());
        network.heal();
        assert_eq!(network.route(&mut rng, 0, 2, 1).len(), 1);
    }

    #[test]
    fn a_link_without_rules_keeps_send_order() {
        let mut network = Network::default();
        let mut rng = StdRng::seed_from_u64(7);
        let arrivals: Vec<Micros> = (0..100)
            .flat_map(|i| network.route(&mut rng, i * 10, 0, 1))
            .collect();
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_one_way_blackhole_is_not_connected() {
        let mut network = Network::default();
        network.set_rule(0, 1, LinkRule::drop_all());
        assert!(!network.connected(1, 0));
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(network.route(&mut rng, 0, 1, 0).len(), 1);
    }
}
