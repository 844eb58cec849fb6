//! Which of two connections between the same pair of nodes stays active.
//!
//! Both ends must keep the same one, whatever order their handshakes finished
//! in at each end. The rule, in order:
//! 1. a connection to a newer incarnation of the peer (larger generation)
//!    replaces one to an older incarnation, never the other way round;
//! 2. of two connections to the same incarnation, the one dialed by the node
//!    with the smaller name wins (both nodes dialed at once);
//! 3. of two connections the same node dialed, the later dial (numbered in
//!    its hello, see [`crate::wire::Hello::dial`]) wins.

/// Which end dialed a connection, with the dialer's number for the dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialer {
    Me(u64),
    Peer(u64),
}

/// What the choice looks at in one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The generation of the peer at the other end.
    pub(crate) generation: u64,
    pub(crate) dialer: Dialer,
}

/// Whether the connection `new` replaces `current` (`None`: no connection)
/// as the active one between this node, named `me`, and `peer`.
pub(crate) fn replaces(me: &str, peer: &str, current: Option<Candidate>, new: Candidate) -> bool {
    let Some(current) = current else {
        return true;
    };
    if current.generation != new.generation {
        return new.generation > current.generation;
    }
    rank(me, peer, new.dialer) > rank(me, peer, current.dialer)
}

/// The order both ends agree on between two connections to one incarnation.
fn rank(me: &str, peer: &str, dialer: Dialer) -> (bool, u64) {
    let smaller_is_me = me < peer;
    match dialer {
        Dialer::Me(dial) => (smaller_is_me, dial),
        Dialer::Peer(dial) => (!smaller_is_me, dial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(dialer: Dialer, generation: u64) -> Candidate {
        Candidate { generation, dialer }
    }

    #[test]
    fn the_rule_case_by_case() {
        use Dialer::{Me, Peer};
        // (me, peer, current, new, new replaces current)
        let table = [
            ("a", "b", None, by(Me(1), 5), true),
            ("a", "b", None, by(Peer(1), 5), true),
            // A newer incarnation wins whoever dialed, an older one never.
            ("a", "b", Some(by(Me(9), 5)), by(Peer(1), 6), true),
            ("a", "b", Some(by(Peer(1), 6)), by(Me(9), 5), false),
            ("b", "a", Some(by(Peer(9), 5)), by(Me(1), 6), true),
            // Same incarnation: the smaller name's dial wins.
            ("a", "b", Some(by(Peer(9), 5)), by(Me(1), 5), true),
            ("a", "b", Some(by(Me(1), 5)), by(Peer(9), 5), false),
            ("b", "a", Some(by(Me(9), 5)), by(Peer(1), 5), true),
            ("b", "a", Some(by(Peer(1), 5)), by(Me(9), 5), false),
            // Same dialer: the later dial wins.
            ("a", "b", Some(by(Me(1), 5)), by(Me(2), 5), true),
            ("a", "b", Some(by(Me(2), 5)), by(Me(1), 5), false),
            ("b", "a", Some(by(Peer(3), 5)), by(Peer(4), 5), true),
            ("b", "a", Some(by(Peer(4), 5)), by(Peer(3), 5), false),
            // The connection already active is not replaced by itself.
            ("a", "b", Some(by(Me(1), 5)), by(Me(1), 5), false),
        ];
        for (me, peer, current, new, expected) in table {
            assert_eq!(
                replaces(me, peer, current, new),
                expected,
                "{me} to {peer}: {new:?} over {current:?}"
            );
        }
    }

    /// A connection as both ends see it: who dialed it, with which number.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Conn {
        dialer_is_a: bool,
        dial: u64,
    }

    impl Conn {
        fn seen_from(self, me_is_a: bool) -> Candidate {
            let dialer = if self.dialer_is_a == me_is_a {
                Dialer::Me(self.dial)
            } else {
                Dialer::Peer(self.dial)
            };
            by(dialer, 1)
        }
    }

    /// The connection an end keeps after registering `order` one by one.
    fn winner(order: &[Conn], me_is_a: bool) -> Conn {
        let (me, peer) = if me_is_a { ("a", "b") } else { ("b", "a") };
        let mut active: Option<Conn> = None;
        for conn in order {
            let current = active.map(|c| c.seen_from(me_is_a));
            if replaces(me, peer, current, conn.seen_from(me_is_a)) {
                active = Some(*conn);
            }
        }
        active.expect("one registered")
    }

    #[test]
    fn both_ends_keep_the_same_connection_whatever_the_order() {
        // a dialed twice (a redial racing the first), b once, all at once:
        // each end finishes the handshakes in its own order.
        let conns = [(true, 1), (true, 2), (false, 7)]
            .map(|(dialer_is_a, dial)| Conn { dialer_is_a, dial });
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for at_a in &orders {
            for at_b in &orders {
                let a = winner(&at_a.map(|i| conns[i]), true);
                let b = winner(&at_b.map(|i| conns[i]), false);
                assert_eq!(a, b, "a saw {at_a:?}, b saw {at_b:?}");
                assert_eq!(a, conns[1]);
            }
        }
    }
}
