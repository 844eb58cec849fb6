//! Reachability per observer, and the merged view.
//!
//! Every observer publishes the members its failure detector gave up on (as
//! its own `member.unreachable.<id>` keys). The merge follows DESIGN.md: a
//! member is unreachable while **any** observer that is still in the cluster
//! (not Down, not Removed) says so, and reachable again once every such
//! observer has cleared it. Observations of an observer that is Down no longer
//! count: a dead node's last words do not keep anyone unreachable.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;

/// The observations of every observer: observer -> subjects it reports unreachable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReachabilityTable {
    by_observer: BTreeMap<NodeId, BTreeSet<NodeId>>,
}

impl ReachabilityTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what `observer` currently reports (replacing its previous report).
    /// An observer never reports itself.
    pub fn set_observations(&mut self, observer: NodeId, subjects: BTreeSet<NodeId>) {
        let subjects: BTreeSet<_> = subjects.into_iter().filter(|s| *s != observer).collect();
        if subjects.is_empty() {
            self.by_observer.remove(&observer);
        } else {
            self.by_observer.insert(observer, subjects);
        }
    }

    /// What `observer` reports.
    pub fn observations_of(&self, observer: &NodeId) -> Option<&BTreeSet<NodeId>> {
        self.by_observer.get(observer)
    }

    /// Subject -> the observers that report it, counting only observers for
    /// which `observer_counts` holds (those not Down or Removed).
    pub fn merged(
        &self,
        observer_counts: impl Fn(&NodeId) -> bool,
    ) -> BTreeMap<NodeId, BTreeSet<NodeId>> {
        let mut merged: BTreeMap<NodeId, BTreeSet<NodeId>> = BTreeMap::new();
        for (observer, subjects) in &self.by_observer {
            if !observer_counts(observer) {
                continue;
            }
            for subject in subjects {
                merged
                    .entry(subject.clone())
                    .or_default()
                    .insert(observer.clone());
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::new(format!("n{n}"), n)
    }

    #[test]
    fn unreachable_while_any_counting_observer_says_so() {
        let mut table = ReachabilityTable::new();
        table.set_observations(id(1), [id(3)].into());
        table.set_observations(id(2), [id(3), id(4)].into());
        let merged = table.merged(|_| true);
        assert_eq!(merged[&id(3)], [id(1), id(2)].into());
        assert_eq!(merged[&id(4)], [id(2)].into());

        // n2 clears n3; n1 still reports it.
        table.set_observations(id(2), [id(4)].into());
        let merged = table.merged(|_| true);
        assert_eq!(merged[&id(3)], [id(1)].into());

        // Every observer cleared n3: reachable again.
        table.set_observations(id(1), BTreeSet::new());
        assert!(!table.merged(|_| true).contains_key(&id(3)));
    }

    #[test]
    fn down_observers_do_not_count() {
        let mut table = ReachabilityTable::new();
        table.set_observations(id(5), [id(1)].into());
        table.set_observations(id(2), [id(3)].into());
        let merged = table.merged(|observer| *observer != id(5));
        assert!(!merged.contains_key(&id(1)));
        assert!(merged.contains_key(&id(3)));
    }

    #[test]
    fn self_reports_are_ignored() {
        let mut table = ReachabilityTable::new();
        table.set_observations(id(1), [id(1)].into());
        assert!(table.merged(|_| true).is_empty());
    }
}
