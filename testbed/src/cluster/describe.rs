//! The dump of what every node sees, printed when a wait times out.
//!
//! This is the one place that renders a cluster's state: when membership or
//! sharding state becomes observable, its lines are added here, and every
//! failing test shows it.

use std::fmt::Write;

use mesh::NodeId;

use super::harness::{Cluster, NodeState};

/// How many of the latest timeline entries the dump ends with.
const TIMELINE_TAIL: usize = 30;

impl Cluster {
    /// A readable dump of the cluster: per node its state, identity and
    /// addresses, the members its gossip sees, the peers it is connected to
    /// and its non-zero counters; then the proxy's rules that are not pass,
    /// every link's counters, and the end of the timeline.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let slots: Vec<_> = self
            .lock()
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.state,
                    s.node.clone(),
                    s.relay.public_addr(),
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "cluster at +{:.3}s, {} nodes (proxy seed {}):",
            self.recorder.elapsed().as_secs_f64(),
            slots.len(),
            self.network.seed()
        );
        for (name, state, node, advertise) in &slots {
            let _ = writeln!(
                out,
                "  {name:<6} {state:<8} {}  advertises {advertise}, real {}",
                node.id(),
                node.local_addr()
            );
            if *state != NodeState::Running {
                let _ = writeln!(out, "         (stopped: what it saw last)");
            }
            let members: Vec<NodeId> = node.members().into_iter().map(|m| m.id).collect();
            let _ = writeln!(out, "         gossip members: {}", ids(&members));
            let _ = writeln!(
                out,
                "         connected to:   {}",
                ids(&node.connected_peers())
            );
            let _ = writeln!(out, "         counters:       {}", nonzero_stats(node));
        }
        let rules = self.network.rules();
        let _ = writeln!(out, "proxy rules that are not pass:");
        if rules.is_empty() {
            let _ = writeln!(out, "  (none: every link passes)");
        }
        for (link, rule) in rules {
            let _ = writeln!(out, "  {link}: {rule}");
        }
        let _ = writeln!(out, "link counters (packets):");
        for (link, c) in self.network.counters() {
            let _ = write!(out, "  {link}: {} passed, {} dropped", c.passed, c.dropped);
            for (what, n) in [
                ("delayed", c.delayed),
                ("duplicated", c.duplicated),
                ("reordered", c.reordered),
            ] {
                if n > 0 {
                    let _ = write!(out, ", {n} {what}");
                }
            }
            out.push('\n');
        }
        let timeline = self.timeline();
        let _ = writeln!(
            out,
            "timeline (last {} of {} entries):",
            timeline.last(TIMELINE_TAIL).len(),
            timeline.entries().len()
        );
        for entry in timeline.last(TIMELINE_TAIL) {
            let _ = writeln!(out, "  {entry}");
        }
        out
    }
}

fn ids(ids: &[NodeId]) -> String {
    if ids.is_empty() {
        return "(none)".into();
    }
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name=value` for every non-zero counter of the node, or "all zero".
fn nonzero_stats(node: &mesh::Node) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(node.stats()) else {
        return format!("{:?}", node.stats());
    };
    let nonzero: Vec<String> = fields
        .iter()
        .filter(|(_, v)| v.as_u64() != Some(0))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if nonzero.is_empty() {
        "all zero".into()
    } else {
        nonzero.join(", ")
    }
}
