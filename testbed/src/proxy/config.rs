//! The config file of `testbed proxy --config FILE`.
//!
//! JSON, with whole-line `//` comments allowed (they are blanked before
//! parsing, so error positions stay right). Unknown fields are refused.
//!
//! ```json
//! {
//!   // where the HTTP control API listens
//!   "control": "127.0.0.1:7000",
//!   // optional; random (and reported by GET /links) when absent
//!   "seed": 42,
//!   // listen: the relay's public address, which the node advertises
//!   // target: the node's real QUIC socket
//!   "nodes": [
//!     {"name": "a", "listen": "127.0.0.1:7101", "target": "127.0.0.1:7001"},
//!     {"name": "b", "listen": "127.0.0.1:7102", "target": "127.0.0.1:7002"}
//!   ],
//!   // optional rules in force from the start (see LinkRule for the form)
//!   "rules": [
//!     {"from": "a", "to": "b", "rule": {"loss": 0.1, "delay": {"ms": 20}}}
//!   ]
//! }
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ProxyError;
use super::rule::LinkRule;

/// The proxy process: its relays, its control API and its seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address of the HTTP control API (port 0: any free port).
    pub control: SocketAddr,
    /// Seed of the network's randomness. Default: a random seed, logged at
    /// start and reported by `GET /links`, so the run can be repeated.
    #[serde(default)]
    pub seed: Option<u64>,
    /// One relay per node (at least one).
    pub nodes: Vec<NodeConfig>,
    /// Rules in force from the start. Default: none (every link passes).
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One node behind the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name in the cluster.
    pub name: String,
    /// The relay's public address: what the node advertises.
    pub listen: SocketAddr,
    /// The node's real socket: where the relay forwards, and the source
    /// address by which the node's own packets are recognised.
    pub target: SocketAddr,
}

/// A rule in force from the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Sending node.
    pub from: String,
    /// Receiving node.
    pub to: String,
    /// What the link does.
    pub rule: LinkRule,
}

impl ProxyConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ProxyError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProxyError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Self::parse(&text).map_err(|source| ProxyError::ConfigParse {
            path: path.to_path_buf(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses the JSON form (whole-line `//` comments allowed); does not
    /// [`validate`](Self::validate).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let json: String = text
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("//") {
                    ""
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        serde_json::from_str(&json)
    }

    /// Checks what the JSON shape cannot: at least one node, no name, listen
    /// or target address used twice, rules between listed nodes and in range.
    pub fn validate(&self) -> Result<(), ProxyError> {
        let invalid = |message: String| Err(ProxyError::ConfigInvalid(message));
        if self.nodes.is_empty() {
            return invalid("no nodes".into());
        }
        let mut names = BTreeSet::new();
        let mut listens = BTreeSet::new();
        let mut targets = BTreeSet::new();
        for node in &self.nodes {
            if !names.insert(node.name.as_str()) {
                return invalid(format!("node {:?} listed twice", node.name));
            }
            if node.listen.port() != 0 && !listens.insert(node.listen) {
                return invalid(format!("listen address {} used twice", node.listen));
            }
            if !targets.insert(node.target) {
                return invalid(format!("target address {} used twice", node.target));
            }
        }
        for rule in &self.rules {
            for name in [&rule.from, &rule.to] {
                if !names.contains(name.as_str()) {
                    return invalid(format!("rule names unknown node {name:?}"));
                }
            }
            if let Err(error) = rule.rule.validate() {
                return invalid(format!("rule {} -> {}: {error}", rule.from, rule.to));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/proxy.jsonc");

    #[test]
    fn the_example_file_is_valid() {
        let config = ProxyConfig::parse(EXAMPLE).expect("example parses");
        config.validate().expect("example is valid");
        assert_eq!(config.nodes.len(), 3);
        assert_eq!(config.seed, Some(42));
    }

    #[test]
    fn comments_keep_error_positions() {
        let error = ProxyConfig::parse("// comment\n{\n  \"control\": 1\n}")
            .expect_err("control must be an address");
        assert_eq!(error.line(), 3);
    }

    #[test]
    fn semantic_mistakes_are_named() {
        let base = r#"{"control": "127.0.0.1:0", "nodes": [
            {"name": "a", "listen": "127.0.0.1:0", "target": "127.0.0.1:9001"},
            {"name": "b", "listen": "127.0.0.1:0", "target": "127.0.0.1:9001"}]}"#;
        let config = ProxyConfig::parse(base).expect("shape is fine");
        let message = config.validate().expect_err("same target").to_string();
        assert!(message.contains("127.0.0.1:9001"), "{message}");

        let config = ProxyConfig::parse(
            r#"{"control": "127.0.0.1:0", "nodes": [
                {"name": "a", "listen": "127.0.0.1:0", "target": "127.0.0.1:9001"}],
                "rules": [{"from": "a", "to": "z", "rule": {}}]}"#,
        )
        .expect("shape is fine");
        let message = config.validate().expect_err("unknown node").to_string();
        assert!(message.contains("\"z\""), "{message}");

        assert!(
            ProxyConfig::parse(r#"{"control": "127.0.0.1:0", "nodes": [], "extra": 1}"#).is_err()
        );
    }
}
