//! What a link does to each packet: the [`LinkRule`] and its pure decision
//! function.
//!
//! A rule is a set of optional *impairments* that combine: `drop` cuts the link,
//! otherwise `loss` may lose the packet, `duplicate` may send it twice, `delay`
//! holds it for a while and `reorder` may hold it back until later packets have
//! overtaken it. The default rule (every part absent) is *pass*.
//!
//! [`LinkRule::judge`] turns a rule and a random number generator into a
//! [`Verdict`] for one packet. It has no sockets and no clock, so it is unit
//! tested on its own; the relay only carries verdicts out.
//!
//! # JSON form
//!
//! The control API and the config file use the serde form of [`LinkRule`]; every
//! field is optional and unknown fields are rejected:
//!
//! ```json
//! {}                                          // pass
//! {"drop": true}                              // cut (one direction)
//! {"loss": 0.2}                               // lose 20% of the packets
//! {"delay": {"ms": 50, "jitter_ms": 10}}      // 40..=60 ms, uniform
//! {"duplicate": 0.05}                         // send 5% of the packets twice
//! {"reorder": {"p": 0.1, "window": 3}}        // hold 10% back behind 3 later packets
//! {"loss": 0.1, "delay": {"ms": 20}}          // parts combine
//! ```

use std::fmt;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Upper bound for `delay.ms + delay.jitter_ms`, so a typo cannot park packets
/// for hours.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Upper bound for `reorder.window`.
pub const MAX_REORDER_WINDOW: usize = 1_000;

/// How one directed link treats its packets. The default is *pass*.
///
/// Parts are applied in this order: `drop`, `loss`, `duplicate`, `delay`,
/// `reorder`. A duplicate copy follows its original with the same delay.
///
/// ```
/// use testbed::proxy::LinkRule;
///
/// let rule = LinkRule::delay(50, 10).with_loss(0.1);
/// assert_eq!(rule.to_string(), "loss(0.1) delay(50ms±10ms)");
/// assert!(rule.validate().is_ok());
/// assert!(LinkRule::loss(1.5).validate().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRule {
    /// Drop every packet: a partition, or a one-way blackhole when set in one
    /// direction only. Overrides every other part.
    #[serde(default, skip_serializing_if = "is_false")]
    pub drop: bool,
    /// Probability in `[0, 1]` that a packet is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Extra latency for every packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Probability in `[0, 1]` that a packet is sent twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<f64>,
    /// Occasionally let later packets overtake one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<Reorder>,
}

/// Extra latency: `ms` plus a uniform jitter in `[-jitter_ms, +jitter_ms]`
/// (never below zero). With no jitter a link stays first-in, first-out; with
/// jitter packets may overtake each other by at most the jitter spread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    /// Mean added latency in milliseconds.
    pub ms: u64,
    /// Half-width of the uniform jitter in milliseconds (default 0).
    #[serde(default)]
    pub jitter_ms: u64,
}

/// Reordering: with probability `p` a packet is held back until `window` later
/// packets of the same link have been sent, or at most
/// [`REORDER_MAX_HOLD`](crate::proxy::REORDER_MAX_HOLD) after it was due,
/// whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reorder {
    /// Probability in `[0, 1]` that a packet is held back.
    pub p: f64,
    /// How many later packets overtake a held one (at least 1).
    pub window: usize,
}

/// Why a [`LinkRule`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// A probability was not a number in `[0, 1]`.
    #[error("{field} must be a probability in [0, 1], got {value}")]
    Probability {
        /// Which part of the rule (`loss`, `duplicate`, `reorder.p`).
        field: &'static str,
        /// The refused value.
        value: f64,
    },
    /// `delay.ms + delay.jitter_ms` exceeds [`MAX_DELAY_MS`].
    #[error("delay of {ms} ms with {jitter_ms} ms jitter exceeds the limit of {MAX_DELAY_MS} ms")]
    DelayTooLong {
        /// The refused mean delay.
        ms: u64,
        /// The refused jitter.
        jitter_ms: u64,
    },
    /// `reorder.window` is 0 or above [`MAX_REORDER_WINDOW`].
    #[error("reorder.window must be in 1..={MAX_REORDER_WINDOW}, got {0}")]
    ReorderWindow(usize),
}

/// What happens to one packet, as decided by [`LinkRule::judge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The packet is not forwarded.
    Drop,
    /// The packet is forwarded.
    Forward(Forward),
}

/// How a forwarded packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// 1, or 2 when the packet is duplicated.
    pub copies: u8,
    /// Latency added to the packet (and its copy).
    pub delay: Duration,
    /// `Some(window)` when the packet is held back behind `window` later ones.
    pub hold: Option<usize>,
    /// Whether the rule schedules packets (it has a delay or reorder part), so
    /// every packet of the link must go through the link's queue to keep order.
    pub scheduled: bool,
    /// Whether the packet must leave after every packet queued before it on
    /// the link (true unless the delay has jitter, which may reorder).
    pub in_order: bool,
}

impl LinkRule {
    /// Forward everything untouched (the default).
    pub fn pass() -> Self {
        Self::default()
    }

    /// Drop everything.
    pub fn drop_all() -> Self {
        Self {
            drop: true,
            ..Self::default()
        }
    }

    /// Lose each packet with probability `p`.
    pub fn loss(p: f64) -> Self {
        Self::default().with_loss(p)
    }

    /// Delay each packet by `ms` ± `jitter_ms` milliseconds.
    pub fn delay(ms: u64, jitter_ms: u64) -> Self {
        Self::default().with_delay(ms, jitter_ms)
    }

    /// Send each packet twice with probability `p`.
    pub fn duplicate(p: f64) -> Self {
        Self::default().with_duplicate(p)
    }

    /// Hold a packet back behind `window` later ones with probability `p`.
    pub fn reorder(p: f64, window: usize) -> Self {
        Self::default().with_reorder(p, window)
    }

    /// This rule plus a loss part.
    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = Some(p);
        self
    }

    /// This rule plus a delay part.
    pub fn with_delay(mut self, ms: u64, jitter_ms: u64) -> Self {
        self.delay = Some(Delay { ms, jitter_ms });
        self
    }

    /// This rule plus a duplicate part.
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = Some(p);
        self
    }

    /// This rule plus a reorder part.
    pub fn with_reorder(mut self, p: f64, window: usize) -> Self {
        self.reorder = Some(Reorder { p, window });
        self
    }

    /// Whether this rule forwards everything untouched.
    pub fn is_pass(&self) -> bool {
        *self == Self::default()
    }

    /// Checks probabilities, the delay limit and the reorder window.
    pub fn validate(&self) -> Result<(), RuleError> {
        check_probability("loss", self.loss)?;
        check_probability("duplicate", self.duplicate)?;
        if let Some(Delay { ms, jitter_ms }) = self.delay {
            if ms.saturating_add(jitter_ms) > MAX_DELAY_MS {
                return Err(RuleError::DelayTooLong { ms, jitter_ms });
            }
        }
        if let Some(Reorder { p, window }) = self.reorder {
            check_probability("reorder.p", Some(p))?;
            if window == 0 || window > MAX_REORDER_WINDOW {
                return Err(RuleError::ReorderWindow(window));
            }
        }
        Ok(())
    }

    /// Decides the fate of one packet. Random numbers are drawn only for the
    /// parts that are present, so adding a part to one link never shifts the
    /// random sequence of another.
    pub fn judge(&self, rng: &mut impl Rng) -> Verdict {
        if self.drop || chance(rng, self.loss) {
            return Verdict::Drop;
        }
        let copies = if chance(rng, self.duplicate) { 2 } else { 1 };
        let delay = match self.delay {
            Some(Delay { ms, jitter_ms }) if jitter_ms > 0 => {
                let low = ms.saturating_sub(jitter_ms);
                Duration::from_millis(rng.gen_range(low..=ms + jitter_ms))
            }
            Some(Delay { ms, .. }) => Duration::from_millis(ms),
            None => Duration::ZERO,
        };
        let hold = self
            .reorder
            .filter(|reorder| chance(rng, Some(reorder.p)))
            .map(|reorder| reorder.window);
        Verdict::Forward(Forward {
            copies,
            delay,
            hold,
            scheduled: self.delay.is_some() || self.reorder.is_some(),
            in_order: self.delay.is_none_or(|delay| delay.jitter_ms == 0),
        })
    }
}

impl fmt::Display for LinkRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.drop {
            return f.write_str("drop");
        }
        let mut parts = Vec::new();
        if let Some(p) = self.loss {
            parts.push(format!("loss({p})"));
        }
        if let Some(Delay { ms, jitter_ms }) = self.delay {
            parts.push(format!("delay({ms}ms±{jitter_ms}ms)"));
        }
        if let Some(p) = self.duplicate {
            parts.push(format!("duplicate({p})"));
        }
        if let Some(Reorder { p, window }) = self.reorder {
            parts.push(format!("reorder({p}, {window})"));
        }
        if parts.is_empty() {
            f.write_str("pass")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn check_probability(field: &'static str, value: Option<f64>) -> Result<(), RuleError> {
    match value {
        Some(value) if !(0.0..=1.0).contains(&value) => {
            Err(RuleError::Probability { field, value })
        }
        _ => Ok(()),
    }
}

/// Draws one number when `p` is present; `true` with probability `p`.
fn chance(rng: &mut impl Rng, p: Option<f64>) -> bool {
    p.is_some_and(|p| rng.gen::<f64>() < p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn pattern(rule: &LinkRule, seed: u64, n: usize) -> Vec<Verdict> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rule.judge(&mut rng)).collect()
    }

    #[test]
    fn pass_forwards_everything_unscheduled() {
        let verdicts = pattern(&LinkRule::pass(), 1, 100);
        assert!(verdicts.iter().all(|v| *v
            == Verdict::Forward(Forward {
                copies: 1,
                delay: Duration::ZERO,
                hold: None,
                scheduled: false,
                in_order: true,
            })));
    }

    #[test]
    fn drop_overrides_everything() {
        let rule = LinkRule::drop_all().with_duplicate(1.0);
        assert!(pattern(&rule, 1, 50).iter().all(|v| *v == Verdict::Drop));
    }

    #[test]
    fn loss_drops_about_p_and_repeats_with_the_seed() {
        let rule = LinkRule::loss(0.3);
        let first = pattern(&rule, 7, 10_000);
        let dropped = first.iter().filter(|v| **v == Verdict::Drop).count();
        assert!((2_700..=3_300).contains(&dropped), "dropped {dropped}");
        assert_eq!(first, pattern(&rule, 7, 10_000));
        assert_ne!(first, pattern(&rule, 8, 10_000));
    }

    #[test]
    fn duplicate_and_reorder_follow_p() {
        let rule = LinkRule::duplicate(0.25).with_reorder(0.5, 3);
        let verdicts = pattern(&rule, 3, 4_000);
        let doubled = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Forward(f) if f.copies == 2))
            .count();
        let held = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Forward(f) if f.hold == Some(3)))
            .count();
        assert!((850..=1_150).contains(&doubled), "doubled {doubled}");
        assert!((1_800..=2_200).contains(&held), "held {held}");
    }

    #[test]
    fn delay_stays_within_jitter() {
        for verdict in pattern(&LinkRule::delay(20, 5), 9, 1_000) {
            let Verdict::Forward(forward) = verdict else {
                panic!("delay never drops")
            };
            assert!((15..=25).contains(&forward.delay.as_millis()));
            assert!(forward.scheduled);
        }
        let small = pattern(&LinkRule::delay(2, 10), 9, 100);
        assert!(small
            .iter()
            .all(|v| matches!(v, Verdict::Forward(f) if f.delay <= Duration::from_millis(12))));
    }

    #[test]
    fn validation_refuses_bad_values() {
        assert!(LinkRule::loss(-0.1).validate().is_err());
        assert!(LinkRule::loss(f64::NAN).validate().is_err());
        assert!(LinkRule::duplicate(1.01).validate().is_err());
        assert!(LinkRule::reorder(0.5, 0).validate().is_err());
        assert!(LinkRule::reorder(2.0, 1).validate().is_err());
        assert!(LinkRule::delay(MAX_DELAY_MS, 1).validate().is_err());
        assert!(LinkRule::delay(10, 5)
            .with_loss(1.0)
            .with_duplicate(0.0)
            .with_reorder(1.0, 1)
            .validate()
            .is_ok());
    }

    #[test]
    fn json_form_round_trips() {
        let rule: LinkRule =
            serde_json::from_str(r#"{"loss":0.1,"delay":{"ms":20}}"#).expect("valid rule");
        assert_eq!(rule, LinkRule::delay(20, 0).with_loss(0.1));
        let back = serde_json::to_string(&rule).expect("serializable");
        assert_eq!(back, r#"{"loss":0.1,"delay":{"ms":20,"jitter_ms":0}}"#);
        assert_eq!(
            serde_json::to_string(&LinkRule::pass()).ok().as_deref(),
            Some("{}")
        );
        assert!(serde_json::from_str::<LinkRule>(r#"{"lost":0.1}"#).is_err());
        assert_eq!(LinkRule::pass().to_string(), "pass");
        assert_eq!(LinkRule::drop_all().to_string(), "drop");
    }
}
