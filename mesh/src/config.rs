//! Node configuration: one serde struct with documented defaults.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of one node. Every field has a default except the name and the
/// listen address; the `mesh-node` binary reads them from flags.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Cluster-unique node name, stable across restarts (letters, digits, `-`, `.`).
    pub name: String,
    /// Cluster name; nodes of another cluster are refused. Default `mesh`.
    pub cluster: String,
    /// UDP address the QUIC endpoint binds.
    pub listen: SocketAddr,
    /// Address peers use to reach this node (NAT, proxy, container network);
    /// defaults to the bound listen address.
    pub advertise: Option<SocketAddr>,
    /// Advertise addresses of nodes to join through.
    pub seeds: Vec<SocketAddr>,
    /// Roles of this node (for singletons and sharding).
    pub roles: Vec<String>,
    /// The version of the application this node runs, gossiped to every
    /// member (`member.app-version`): sharding gives new and moved shards
    /// to the members of the highest version, so that a rolling update
    /// moves each shard forward only. Compared as dotted numbers (see
    /// [`membership::AppVersion`]). Default none: the lowest version.
    pub app_version: Option<membership::AppVersion>,
    /// Largest frame accepted or sent, in bytes. Default 8 MiB.
    pub max_frame_size: usize,
    /// Chitchat gossip interval. Default 200 ms (DESIGN.md section 7): the
    /// membership keys (observations, Down decisions) spread in a few rounds.
    /// Chitchat's own failure detector follows it (initial interval = this,
    /// max interval = 10x); it only decides whom chitchat gossips with and
    /// who may be admitted. Reachability comes from membership's heartbeats.
    #[serde(with = "millis")]
    pub gossip_interval: Duration,
    /// A change of this node's own membership keys (an observation, a Down
    /// decision, a status) is pushed at once, besides chitchat's regular
    /// rounds, to at most this many live peers: the oldest reachable member
    /// (it admits joiners and takes the downing decisions), then peers
    /// chosen at random (a Down decision goes to every live peer). Gossip
    /// carries the change on from there, and so do the pushes of the peers
    /// whose own keys it changes. Default 3, like
    /// chitchat's fan-out per round; 0 pushes nothing. Pushing to every
    /// live peer would cost O(N) gossip rounds per change, O(N^2) when
    /// every member reacts to one event (a join), and saturates the CPU
    /// of a large cluster.
    pub gossip_push_fanout: usize,
    /// Bytes of outgoing frames buffered per peer before `tell` reports
    /// backpressure (and `ask` waits). Default 4 MiB.
    pub peer_buffer: usize,
    /// First delay between failed dials to a peer; doubles up to `reconnect_max`. Default 100 ms.
    #[serde(with = "millis")]
    pub reconnect_min: Duration,
    /// Longest delay between failed dials to a peer. Default 1 s, so that a
    /// healed partition is seen reachable again within about a second.
    #[serde(with = "millis")]
    pub reconnect_max: Duration,
    /// A QUIC connection with no packet for this long is closed. Default 5 s.
    #[serde(with = "millis")]
    pub idle_timeout: Duration,
    /// Membership: heartbeats, failure detection, downing, leave timings (a
    /// `[membership]` table in TOML; every field has a default, see
    /// [`membership::MembershipConfig`]).
    pub membership: membership::MembershipConfig,
    /// The bearer token the admin API's management endpoints (`POST
    /// /leave`, `POST /down/{member}`) require; without one they answer
    /// 401. Never read from or written to TOML: set it from a file or an
    /// environment variable (`mesh-node --admin-token-file`, `MESH_ADMIN_TOKEN`).
    #[serde(skip)]
    pub admin_token: Option<AdminToken>,
}

/// A bearer token for the admin API's management endpoints. Its `Debug`
/// form does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token from its text (surrounding whitespace, such as a file's
    /// final newline, is dropped); `None` if nothing is left.
    pub fn new(text: &str) -> Option<Self> {
        let token = text.trim();
        (!token.is_empty()).then(|| Self(token.to_string()))
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            cluster: "mesh".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            seeds: Vec::new(),
            roles: Vec::new(),
            app_version: None,
            max_frame_size: 8 * 1024 * 1024,
            gossip_interval: Duration::from_millis(200),
            gossip_push_fanout: 3,
            peer_buffer: 4 * 1024 * 1024,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            membership: membership::MembershipConfig::default(),
            admin_token: None,
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The node name is empty or has characters that cannot be a DNS name.
    #[error("invalid node name {0:?}: use 1-63 letters, digits, '-' or '.'")]
    InvalidName(String),
    /// The maximum frame size is too small to carry the handshake.
    #[error("max_frame_size {0} is too small (at least 1024)")]
    FrameSizeTooSmall(usize),
    /// A duration or count must be positive.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The membership settings would break a guarantee.
    #[error("membership: {0}")]
    Membership(membership::ConfigError),
}

// Not `#[from]`, which would also make it the error's source: reports that
// print the chain would say it twice.
impl From<membership::ConfigError> for ConfigError {
    fn from(error: membership::ConfigError) -> Self {
        Self::Membership(error)
    }
}

impl NodeConfig {
    /// Checks what a running node relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !self.name.starts_with(['-', '.']);
        if !name_ok {
            return Err(ConfigError::InvalidName(self.name.clone()));
        }
        if self.max_frame_size < 1024 {
            return Err(ConfigError::FrameSizeTooSmall(self.max_frame_size));
        }
        for (what, zero) in [
            ("gossip_interval", self.gossip_interval.is_zero()),
            ("peer_buffer", self.peer_buffer == 0),
            ("reconnect_min", self.reconnect_min.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            (
                "membership.heartbeat_interval",
                self.membership.heartbeat_interval.is_zero(),
            ),
        ] {
            if zero {
                return Err(ConfigError::Zero(what));
            }
        }
        self.membership.validate()?;
        Ok(())
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_settings_that_break_downing_are_refused() {
        let mut config = NodeConfig {
            name: "n1".into(),
            ..NodeConfig::default()
        };
        config.membership.acceptable_heartbeat_pause = Duration::from_secs(3);
        let error = config.validate().expect_err("3 s pause, 2 s stable_after");
        assert!(
            error
                .to_string()
                .contains("stable_after (2s) must be longer"),
            "{error}"
        );
        config.membership.stable_after = Duration::from_secs(4);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn names_must_be_dns_labels() {
        let mut config = NodeConfig {
            name: "n1".into(),
            ..NodeConfig::default()
        };
        assert!(config.validate().is_ok());
        for bad in ["", "a b", "-x", "ü", &"x".repeat(64)] {
            config.name = bad.into();
            assert!(config.validate().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn membership_settings_come_from_a_toml_table() {
        let config: NodeConfig = toml::from_str(
            r#"
            name = "n1"
            app_version = "1.4.2"
            [membership]
            heartbeat_interval = "100ms"
            stable_after = "1s"
            downing = { strategy = "keep-oldest" }
            "#,
        )
        .expect("parses");
        assert_eq!(
            config.membership.heartbeat_interval,
            Duration::from_millis(100)
        );
        assert_eq!(config.membership.stable_after, Duration::from_secs(1));
        assert_eq!(config.app_version, membership::AppVersion::new("1.4.2"));
        assert_eq!(
            config.membership.acceptable_heartbeat_pause,
            Duration::from_secs(1),
            "unset fields keep their defaults"
        );
        let defaults: NodeConfig = toml::from_str("name = \"n1\"").expect("parses");
        assert_eq!(defaults.app_version, None);
        assert_eq!(defaults.membership, membership::MembershipConfig::default());
    }
}
