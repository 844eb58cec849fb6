//! The identity of one incarnation of a node.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// One incarnation of a node: a cluster-unique, restart-stable `name` and a
/// `generation` (the start time in milliseconds since the Unix epoch).
///
/// A restarted node keeps its name and takes a larger generation, so it is a
/// new incarnation and always the youngest. `NodeId`s order oldest first:
/// by `(generation, name)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// Cluster-unique name, stable across restarts; also the name in the
    /// node's certificate. Kept inline up to 24 bytes: ids are cloned and
    /// sent often, and cost no allocation.
    pub name: CompactString,
    /// Start time in ms since the Unix epoch; larger means younger.
    pub generation: u64,
}

impl NodeId {
    /// A node id from its parts.
    pub fn new(name: impl Into<CompactString>, generation: u64) -> Self {
        Self {
            name: name.into(),
            generation,
        }
    }
}

impl Ord for NodeId {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.generation, &self.name).cmp(&(other.generation, &other.name))
    }
}

impl PartialOrd for NodeId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_oldest_first_then_by_name() {
        let mut ids = [
            NodeId::new("b", 2),
            NodeId::new("a", 2),
            NodeId::new("z", 1),
        ];
        ids.sort();
        let names: Vec<_> = ids.iter().map(|id| id.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "b"]);
    }
}
