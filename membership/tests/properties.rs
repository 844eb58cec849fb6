//! Property tests: the view does not depend on the order gossip was learned
//! in, garbage never panics, and the reachability merge is order-free.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membership::reachability::ReachabilityTable;
use membership::{keys, GossipNode, Membership, MembershipConfig, NodeId};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
const STATUSES: [&str; 7] = [
    "joining", "up", "leaving", "exiting", "removed", "down", "??",
];

/// (name index, generation, status index, statements (kind, target index), live)
type RawNode = (usize, u64, usize, Vec<(u8, usize)>, bool);

fn raw_node() -> impl Strategy<Value = RawNode> {
    (
        0..NAMES.len(),
        1..4u64,
        0..STATUSES.len(),
        prop::collection::vec((0..4u8, 0..16usize), 0..6),
        any::<bool>(),
    )
}

fn build(raw: &[RawNode]) -> Vec<GossipNode> {
    let ids: Vec<NodeId> = raw
        .iter()
        .map(|(name, generation, ..)| NodeId::new(NAMES[*name], *generation))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut nodes: BTreeMap<NodeId, GossipNode> = BTreeMap::new();
    for (name, generation, status, statements, live) in raw {
        let id = NodeId::new(NAMES[*name], *generation);
        if nodes.contains_key(&id) {
            continue;
        }
        let mut node_keys =
            BTreeMap::from([(keys::STATUS.to_string(), STATUSES[*status].to_string())]);
        for (kind, target) in statements {
            let target = &ids[target % ids.len()];
            let key = match kind {
                0 => format!("{}{target}", keys::UNREACHABLE_PREFIX),
                1 => format!("{}{target}", keys::DOWN_PREFIX),
                2 => format!("{}{target}", keys::ADMIT_PREFIX),
                _ => format!("{}{}garbage", keys::DOWN_PREFIX, target.name),
            };
            node_keys.insert(key, keys::MARKER.to_string());
        }
        nodes.insert(
            id.clone(),
            GossipNode {
                addr: ([127, 0, 0, 1], 7000 + (*name as u16)).into(),
                id,
                keys: Arc::new(node_keys),
                live: *live,
            },
        );
    }
    nodes.into_values().collect()
}

fn observer(start: Instant) -> Membership {
    Membership::new(
        NodeId::new("observer", 1_000),
        ([127, 0, 0, 1], 9000).into(),
        BTreeSet::new(),
        MembershipConfig::default(),
        start,
    )
}

fn learned_in_order(start: Instant, batches: &[Vec<GossipNode>]) -> Membership {
    let mut m = observer(start);
    for (i, batch) in batches.iter().enumerate() {
        m.on_gossip(start + Duration::from_millis(i as u64), batch.clone());
    }
    m
}

fn nodes_and_orders() -> impl Strategy<Value = (Vec<GossipNode>, Vec<GossipNode>, usize)> {
    prop::collection::vec(raw_node(), 1..9).prop_flat_map(|raw| {
        let nodes = build(&raw);
        let len = nodes.len();
        (Just(nodes.clone()), Just(nodes).prop_shuffle(), 0..=len)
    })
}

proptest! {
    #[test]
    fn the_view_does_not_depend_on_the_order_nodes_were_learned_in(
        (nodes, shuffled, split) in nodes_and_orders()
    ) {
        let start = Instant::now();
        let reference = learned_in_order(start, std::slice::from_ref(&nodes));
        // All at once, in another order.
        let reordered = learned_in_order(start, std::slice::from_ref(&shuffled));
        // A few nodes first, then everything.
        let incremental = learned_in_order(
            start,
            &[shuffled[..split].to_vec(), shuffled.iter().rev().cloned().collect()],
        );
        for other in [&reordered, &incremental] {
            prop_assert_eq!(reference.members(), other.members());
            prop_assert_eq!(reference.oldest(), other.oldest());
            prop_assert_eq!(reference.singleton_host(None), other.singleton_host(None));
            // The same decision (its timer depends on when the view was learned).
            let what = |m: &Membership| {
                m.pending_decision().map(|p| (p.decider, p.decision, p.to_down, p.indirectly_connected))
            };
            prop_assert_eq!(what(&reference), what(other));
        }
        let members = reference.members();
        prop_assert!(members.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    }

    #[test]
    fn garbage_gossip_never_panics(
        entries in prop::collection::vec(
            (
                prop_oneof![
                    Just(keys::STATUS.to_string()),
                    Just(keys::ROLES.to_string()),
                    "member\\.(down|unreachable|admit)\\.[a-z#0-9.-]{0,12}",
                    "[ -~]{0,20}",
                ],
                "[ -~]{0,20}",
            ),
            0..12,
        ),
        steps in 1..30u64,
    ) {
        let start = Instant::now();
        let mut m = observer(start);
        let node = GossipNode {
            id: NodeId::new("x", 1),
            addr: ([127, 0, 0, 1], 7000).into(),
            keys: Arc::new(entries.into_iter().collect()),
            live: true,
        };
        for step in 0..steps {
            let now = start + Duration::from_millis(100 * step);
            m.on_gossip(now, vec![node.clone()]);
            let _ = m.tick(now);
            let _ = m.members();
            let _ = m.would_survive();
        }
    }

    #[test]
    fn the_reachability_merge_is_order_free(
        reports in prop::collection::vec((0..6u64, 0..6u64), 0..20),
        down_observer in 0..6u64,
    ) {
        let id = |n: u64| NodeId::new(format!("n{n}"), n);
        let mut by_observer: BTreeMap<NodeId, BTreeSet<NodeId>> = BTreeMap::new();
        for (observer, subject) in &reports {
            by_observer.entry(id(*observer)).or_default().insert(id(*subject));
        }
        let mut forward = ReachabilityTable::new();
        for (observer, subjects) in &by_observer {
            forward.set_observations(observer.clone(), subjects.clone());
        }
        let mut backward = ReachabilityTable::new();
        for (observer, subjects) in by_observer.iter().rev() {
            backward.set_observations(observer.clone(), subjects.clone());
        }
        let counts = |o: &NodeId| *o != id(down_observer);
        let merged = forward.merged(counts);
        prop_assert_eq!(&merged, &backward.merged(counts));
        // Unreachable exactly when some counting observer other than itself reports it.
        for n in 0..6 {
            let expected: BTreeSet<NodeId> = reports
                .iter()
                .filter(|(o, s)| *s == n && *o != n && *o != down_observer)
                .map(|(o, _)| id(*o))
                .collect();
            prop_assert_eq!(merged.get(&id(n)).cloned().unwrap_or_default(), expected);
        }
    }
}
