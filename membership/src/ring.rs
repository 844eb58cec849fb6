//! Who monitors whom: every node watches its `k` successors on a ring of the
//! monitored members ordered by `NodeId` (wrapping around), so each member is
//! watched by its `k` predecessors. In a cluster of `k + 1` nodes or fewer
//! everyone watches everyone.
//!
//! As in Akka's heartbeat ring, a node whose successors are unreachable keeps
//! walking the ring until it watches `k` reachable ones (the unreachable ones
//! stay watched, so that it notices when they come back). Without this, in a
//! partition, a member all of whose watchers are on its own side would never
//! be seen unreachable by the other side.

use std::collections::BTreeSet;

use crate::NodeId;

/// The `k` successors of `node` on the ring formed by `ring` (which need not
/// contain `node`: a node not on the ring watches the successors of its
/// position). Never contains `node`.
pub fn successors(ring: &BTreeSet<NodeId>, node: &NodeId, k: usize) -> Vec<NodeId> {
    ring_after(ring, node).take(k).cloned().collect()
}

/// Whom `node` watches: successors until `k` of them are not in
/// `unreachable`, every unreachable one met on the way included.
pub fn watched(
    ring: &BTreeSet<NodeId>,
    node: &NodeId,
    k: usize,
    unreachable: &BTreeSet<NodeId>,
) -> Vec<NodeId> {
    let mut watched = Vec::new();
    let mut reachable = 0;
    for next in ring_after(ring, node) {
        if reachable >= k {
            break;
        }
        if !unreachable.contains(next) {
            reachable += 1;
        }
        watched.push(next.clone());
    }
    watched
}

fn ring_after<'a>(
    ring: &'a BTreeSet<NodeId>,
    node: &'a NodeId,
) -> impl Iterator<Item = &'a NodeId> {
    let after = ring.range((std::ops::Bound::Excluded(node), std::ops::Bound::Unbounded));
    let before = ring.range(..node);
    after.chain(before).filter(move |id| *id != node)
}

/// The members of `ring` that watch `subject`: its `k` predecessors.
pub fn monitors_of(ring: &BTreeSet<NodeId>, subject: &NodeId, k: usize) -> Vec<NodeId> {
    let before = ring.range(..subject).rev();
    let after = ring
        .range((
            std::ops::Bound::Excluded(subject),
            std::ops::Bound::Unbounded,
        ))
        .rev();
    before
        .chain(after)
        .filter(|id| *id != subject)
        .take(k)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: u64) -> BTreeSet<NodeId> {
        (1..=n).map(|g| NodeId::new(format!("n{g}"), g)).collect()
    }

    fn id(g: u64) -> NodeId {
        NodeId::new(format!("n{g}"), g)
    }

    #[test]
    fn small_cluster_watches_everyone() {
        let r = ring(4);
        let watched = successors(&r, &id(2), 5);
        assert_eq!(watched, vec![id(3), id(4), id(1)]);
    }

    #[test]
    fn large_cluster_watches_k_successors_wrapping() {
        let r = ring(10);
        assert_eq!(
            successors(&r, &id(8), 5),
            vec![id(9), id(10), id(1), id(2), id(3)]
        );
    }

    #[test]
    fn monitors_are_the_inverse_of_successors() {
        let r = ring(9);
        for subject in &r {
            let monitors: BTreeSet<_> = monitors_of(&r, subject, 3).into_iter().collect();
            let expected: BTreeSet<_> = r
                .iter()
                .filter(|n| successors(&r, n, 3).contains(subject))
                .cloned()
                .collect();
            assert_eq!(monitors, expected, "monitors of {subject}");
        }
    }

    #[test]
    fn walks_past_unreachable_successors() {
        let r = ring(10);
        let unreachable: BTreeSet<_> = [id(1), id(2), id(4)].into();
        assert_eq!(
            watched(&r, &id(10), 3, &unreachable),
            vec![id(1), id(2), id(3), id(4), id(5), id(6)]
        );
        assert_eq!(
            watched(&r, &id(10), 3, &BTreeSet::new()),
            successors(&r, &id(10), 3)
        );
    }

    #[test]
    fn a_node_off_the_ring_still_finds_successors() {
        let r: BTreeSet<_> = [id(1), id(3)].into();
        assert_eq!(successors(&r, &id(2), 5), vec![id(3), id(1)]);
    }
}
