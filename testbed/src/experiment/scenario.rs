//! The scenario file of `testbed run`.
//!
//! TOML. Durations read `"500ms"`, `"2s"`, `"1m"` (a bare integer is ms).
//! Unknown fields are refused, so a typo is an error, not a silent default.
//!
//! ```toml
//! name = "partition-coordinator"
//! description = "The coordinator's node is cut from one region"
//! nodes = 4                 # n1..n4; n1 starts first (the oldest)
//! duration = "25s"          # workload time once the cluster is up
//! recovery_bound = "10s"    # every key answers within this after the last fault
//! seed = 7                  # optional; `--seed` overrides
//!
//! [workload]                # every field optional
//! counters = 8              # keys c-0.. (add, read)
//! registers = 4             # keys r-0.. (write, cas, read)
//! clients_per_node = 2
//! interval = "20ms"         # pause between a client's operations
//! timeout = "4s"            # per attempt; an unknown outcome is retried once
//!
//! [config]                  # the nodes' settings file (`testbed node --config`)
//! sharding = { lease = "3s" }
//! mesh = { membership = { stable_after = "2s" } }
//!
//! [nodes.n2.config]         # per node, merged over [config]
//! demo = { io_delay_ms = 20 }
//!
//! [[faults]]
//! at = "5s"                 # after the workload started
//! kind = "partition"        # both ways between two nodes
//! nodes = ["coordinator", "n3"]
//! for = "8s"                # undone after this long (optional)
//! ```
//!
//! Fault kinds, with their fields (`node` names are `n1`.., or
//! `coordinator`: the node hosting the shard coordinator at that moment):
//!
//! | kind | fields | undone by `for` |
//! |---|---|---|
//! | `partition` | `nodes = [a, b]` | links pass again |
//! | `one-way` | `from`, `to`: packets from `from` to `to` dropped | links pass again |
//! | `split` | `sides = [[..], [..]]` | links pass again |
//! | `links` | `rule` (as the proxy's: `loss`, `delay = {ms, jitter_ms}`, `duplicate`, `reorder = {p, window}`, `drop`), optional `from`/`to` lists (default: every node) | links pass again |
//! | `heal` | | |
//! | `kill` | `node`: `kill -9` | restarted |
//! | `restart` | `node`: graceful stop (if running), then a new incarnation | |
//! | `pause` | `node`: `SIGSTOP` | `SIGCONT` |
//! | `resume` | `node`: `SIGCONT` | |
//! | `leave` | `node`: `SIGTERM`, a graceful leave; it stays away | |
//! | `join` | `node`: a name beyond `nodes` (say `n5`), started and joined | |

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use membership::duration::human;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::proxy::LinkRule;

/// A scenario that cannot run, with the reason in one line.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML or has the wrong shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, flattened to one line.
        message: String,
    },
    /// It parses but cannot run.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (the default output directory uses it).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Nodes started at the beginning, `n1`..`nN` (1 to 16).
    pub nodes: usize,
    /// Workload time once the cluster is up.
    #[serde(with = "human")]
    pub duration: Duration,
    /// Every key must answer within this after the last fault event.
    #[serde(with = "human", default = "default_recovery_bound")]
    pub recovery_bound: Duration,
    /// Seed of the workload and the proxy's randomness (default 1).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Restart a node that exits because the cluster downed it (exit code
    /// 3), as an orchestrator would. Default true.
    #[serde(default = "default_true")]
    pub restart_downed: bool,
    /// The clients.
    #[serde(default)]
    pub workload: Workload,
    /// The nodes' settings file, as TOML (see `DemoConfig`).
    #[serde(default)]
    pub config: toml::Table,
    /// Per-node settings merged over `config`.
    #[serde(default)]
    pub nodes_config: BTreeMap<String, NodeOverride>,
    /// The timed faults.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

fn default_recovery_bound() -> Duration {
    Duration::from_secs(10)
}

fn default_true() -> bool {
    true
}

/// Settings of one node, over the common ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeOverride {
    /// Merged table by table over `config`.
    pub config: toml::Table,
}

/// The clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Counter keys `c-0`.. (`add`, `read`). Default 8.
    pub counters: usize,
    /// Register keys `r-0`.. (`write`, `cas`, `read`). Default 4.
    pub registers: usize,
    /// Client tasks per node. Default 2.
    pub clients_per_node: usize,
    /// Pause between a client's operations. Default 20 ms.
    #[serde(with = "human")]
    pub interval: Duration,
    /// Time allowed per attempt. Default 4 s.
    #[serde(with = "human")]
    pub timeout: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            counters: 8,
            registers: 4,
            clients_per_node: 2,
            interval: Duration::from_millis(20),
            timeout: Duration::from_secs(4),
        }
    }
}

/// One timed fault. (Unknown fields are refused by [`Scenario::parse`]:
/// serde cannot with a flattened enum.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// When, after the workload started.
    #[serde(with = "human")]
    pub at: Duration,
    /// Undone after this long.
    #[serde(default, rename = "for", with = "optional_human")]
    pub lasts: Option<Duration>,
    /// What.
    #[serde(flatten)]
    pub action: FaultAction,
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultAction {
    /// Both directions between two nodes dropped.
    Partition {
        /// The two nodes.
        nodes: [String; 2],
    },
    /// Packets from `from` to `to` dropped.
    OneWay {
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
    },
    /// Every link between the sides dropped.
    Split {
        /// Two or more sides.
        sides: Vec<Vec<String>>,
    },
    /// A rule on links.
    Links {
        /// The rule.
        rule: LinkRule,
        /// Senders (default every node).
        #[serde(default)]
        from: Vec<String>,
        /// Receivers (default every node).
        #[serde(default)]
        to: Vec<String>,
    },
    /// Every link passes again.
    Heal,
    /// `kill -9`.
    Kill {
        /// The node.
        node: String,
    },
    /// Graceful stop if running, then a new incarnation.
    Restart {
        /// The node.
        node: String,
    },
    /// `SIGSTOP`.
    Pause {
        /// The node.
        node: String,
    },
    /// `SIGCONT`.
    Resume {
        /// The node.
        node: String,
    },
    /// `SIGTERM`: a graceful leave.
    Leave {
        /// The node.
        node: String,
    },
    /// Start a new node and join it.
    Join {
        /// Its name, beyond the initial ones.
        node: String,
    },
}

impl FaultAction {
    /// Short description for the timeline.
    pub fn describe(&self) -> String {
        match self {
            FaultAction::Partition { nodes } => format!("partition {} | {}", nodes[0], nodes[1]),
            FaultAction::OneWay { from, to } => format!("one-way {from} -> {to} dropped"),
            FaultAction::Split { sides } => format!(
                "split {}",
                sides
                    .iter()
                    .map(|s| s.join(","))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
            FaultAction::Links { rule, .. } => format!(
                "links {}",
                serde_json::to_string(rule).unwrap_or_else(|_| "rule".into())
            ),
            FaultAction::Heal => "heal".into(),
            FaultAction::Kill { node } => format!("kill -9 {node}"),
            FaultAction::Restart { node } => format!("restart {node}"),
            FaultAction::Pause { node } => format!("pause {node}"),
            FaultAction::Resume { node } => format!("resume {node}"),
            FaultAction::Leave { node } => format!("leave {node}"),
            FaultAction::Join { node } => format!("join {node}"),
        }
    }

    /// Node names it mentions (selectors included).
    pub fn nodes(&self) -> Vec<&str> {
        match self {
            FaultAction::Partition { nodes } => nodes.iter().map(String::as_str).collect(),
            FaultAction::OneWay { from, to } => vec![from, to],
            FaultAction::Split { sides } => sides.iter().flatten().map(String::as_str).collect(),
            FaultAction::Links { from, to, .. } => {
                from.iter().chain(to.iter()).map(String::as_str).collect()
            }
            FaultAction::Heal => Vec::new(),
            FaultAction::Kill { node }
            | FaultAction::Restart { node }
            | FaultAction::Pause { node }
            | FaultAction::Resume { node }
            | FaultAction::Leave { node }
            | FaultAction::Join { node } => vec![node],
        }
    }
}

/// The selector that names the coordinator's node.
pub const COORDINATOR: &str = "coordinator";

mod optional_human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => membership::duration::human::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "membership::duration::human")] Duration);
        Ok(Some(Wrap::deserialize(d)?.0))
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates scenario text; `path` is only for messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|error| ScenarioError::Parse {
            path: path.to_string(),
            message: one_line(&error.to_string()),
        })?;
        let table: toml::Table = toml::from_str(text).map_err(|error| ScenarioError::Parse {
            path: path.to_string(),
            message: one_line(&error.to_string()),
        })?;
        if let Some(toml::Value::Array(faults)) = table.get("faults") {
            for (i, fault) in faults.iter().enumerate() {
                let Some(fault) = fault.as_table() else {
                    continue;
                };
                let kind = fault.get("kind").and_then(|k| k.as_str()).unwrap_or("");
                let allowed: &[&str] = match kind {
                    "partition" => &["nodes"],
                    "one-way" => &["from", "to"],
                    "split" => &["sides"],
                    "links" => &["rule", "from", "to"],
                    "heal" => &[],
                    _ => &["node"],
                };
                if let Some(unknown) = fault.keys().find(|k| {
                    !["at", "for", "kind"].contains(&k.as_str()) && !allowed.contains(&k.as_str())
                }) {
                    return Err(ScenarioError::Parse {
                        path: path.to_string(),
                        message: format!(
                            "faults[{i}]: unknown field `{unknown}` for kind {kind:?}"
                        ),
                    });
                }
            }
        }
        scenario
            .validate()
            .map_err(|message| ScenarioError::Invalid {
                path: path.to_string(),
                message,
            })?;
        Ok(scenario)
    }

    /// Names of the initial nodes.
    pub fn initial_nodes(&self) -> Vec<String> {
        (1..=self.nodes).map(|i| format!("n{i}")).collect()
    }

    /// Every node that will ever run: the initial ones, then the joiners.
    pub fn all_nodes(&self) -> Vec<String> {
        let mut names = self.initial_nodes();
        for fault in &self.faults {
            if let FaultAction::Join { node } = &fault.action {
                if !names.contains(node) {
                    names.push(node.clone());
                }
            }
        }
        names
    }

    /// The settings file of `node`: `config` with its override merged in.
    pub fn node_config(&self, node: &str) -> toml::Table {
        let mut table = self.config.clone();
        if let Some(over) = self.nodes_config.get(node) {
            merge(&mut table, &over.config);
        }
        table
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !crate::experiment::store::valid_key(&self.name) {
            return Err(format!(
                "name {:?}: use letters, digits, - and _",
                self.name
            ));
        }
        if !(1..=16).contains(&self.nodes) {
            return Err(format!("nodes = {}: between 1 and 16", self.nodes));
        }
        if self.duration.is_zero() {
            return Err("duration must be positive".into());
        }
        let w = &self.workload;
        if w.counters + w.registers == 0 || w.clients_per_node == 0 {
            return Err("workload needs at least one key and one client per node".into());
        }
        if w.timeout.is_zero() {
            return Err("workload.timeout must be positive".into());
        }
        let initial = self.initial_nodes();
        let all = self.all_nodes();
        for name in self.nodes_config.keys() {
            if !all.contains(name) {
                return Err(format!("nodes_config names unknown node {name:?}"));
            }
        }
        for (i, fault) in self.faults.iter().enumerate() {
            let which = format!("faults[{i}] ({})", fault.action.describe());
            if fault.at + fault.lasts.unwrap_or_default() > self.duration {
                return Err(format!("{which} ends after the duration"));
            }
            for node in fault.action.nodes() {
                if node != COORDINATOR && !all.contains(&node.to_string()) {
                    return Err(format!("{which}: unknown node {node:?}"));
                }
            }
            match &fault.action {
                FaultAction::Join { node } if initial.contains(node) => {
                    return Err(format!("{which}: {node} already runs from the start"));
                }
                FaultAction::Join { node } if node == COORDINATOR => {
                    return Err(format!("{which}: a joiner needs a name"));
                }
                FaultAction::Split { sides } if sides.len() < 2 => {
                    return Err(format!("{which}: a split needs two sides or more"));
                }
                FaultAction::Links { rule, .. } => {
                    rule.validate()
                        .map_err(|error| format!("{which}: {error}"))?;
                }
                _ => {}
            }
        }
        if let Err(error) = toml::to_string(&self.config)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                toml::from_str::<crate::experiment::demo::DemoConfig>(&text)
                    .map_err(|e| one_line(&e.to_string()))
            })
        {
            return Err(format!("config: {error}"));
        }
        for name in self.nodes_config.keys() {
            let text = toml::to_string(&self.node_config(name)).map_err(|e| e.to_string())?;
            toml::from_str::<crate::experiment::demo::DemoConfig>(&text)
                .map_err(|e| format!("nodes_config.{name}: {}", one_line(&e.to_string())))?;
        }
        Ok(())
    }

    /// When the last fault event happens (a fault's end counts), after the
    /// workload started.
    pub fn last_fault_event(&self) -> Option<Duration> {
        self.faults
            .iter()
            .map(|f| f.at + f.lasts.unwrap_or_default())
            .max()
    }
}

fn merge(into: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (into.get_mut(key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => merge(inner, over),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
nodes = 3
duration = "10s"
[config.sharding]
lease = "3s"
[nodes_config.n2.config.demo]
io_delay_ms = 5
[[faults]]
at = "2s"
for = "3s"
kind = "partition"
nodes = ["coordinator", "n3"]
[[faults]]
at = "6s"
kind = "join"
node = "n4"
[[faults]]
at = "7s"
kind = "links"
rule = { loss = 0.1, delay = { ms = 5, jitter_ms = 2 } }
"#;

    #[test]
    fn a_good_scenario_parses() {
        let s = Scenario::parse(GOOD, "good.toml").unwrap();
        assert_eq!(s.all_nodes(), ["n1", "n2", "n3", "n4"]);
        assert_eq!(s.faults[0].lasts, Some(Duration::from_secs(3)));
        assert_eq!(s.last_fault_event(), Some(Duration::from_secs(7)));
        let n2 = s.node_config("n2");
        assert_eq!(n2["sharding"]["lease"].as_str(), Some("3s"));
        assert_eq!(n2["demo"]["io_delay_ms"].as_integer(), Some(5));
        assert!(s.restart_downed);
    }

    #[test]
    fn mistakes_are_one_clear_line() {
        let cases = [
            (GOOD.replace("nodes = 3", "nodes = 0"), "between 1 and 16"),
            (GOOD.replace("\"n3\"]", "\"n9\"]"), "unknown node \"n9\""),
            (GOOD.replace("kind = \"join\"", "kind = \"jion\""), "jion"),
            (
                GOOD.replace("at = \"7s\"", "at = \"70s\""),
                "ends after the duration",
            ),
            (GOOD.replace("lease = \"3s\"", "leese = \"3s\""), "config: "),
            (GOOD.replace("loss = 0.1", "loss = 1.5"), "faults[2]"),
            (
                GOOD.replace("node = \"n4\"", "node = \"n2\""),
                "already runs",
            ),
            (
                GOOD.replace("node = \"n4\"", "node = \"n4\"\nnodes = 2"),
                "unknown field `nodes`",
            ),
        ];
        for (text, expected) in cases {
            let message = Scenario::parse(&text, "bad.toml").unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
            assert!(!message.contains('\n'), "{message:?}");
            assert!(message.starts_with("bad.toml: "), "{message:?}");
        }
    }
}
