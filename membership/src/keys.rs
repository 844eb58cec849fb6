//! The chitchat key schema of membership.
//!
//! Each node writes **only its own keys**; what a node says about others lives
//! in its own key space, and everyone reads everyone's. All keys start with
//! `member.` so that other subsystems can share the node's key space.
//!
//! | key | value | written by | meaning |
//! |---|---|---|---|
//! | `member.status` | `joining` `up` `leaving` `exiting` `removed` | the node itself | its lifecycle status (`down` is never self-published) |
//! | `member.roles` | `role-a,role-b` (sorted, no empty names) | the node itself | the roles it offers |
//! | `member.app-version` | e.g. `1.4.2` (see [`AppVersion`](crate::AppVersion)) | the node itself | the version of the application it runs; absent when it has none (the lowest) |
//! | `member.up-number` | a decimal number | the node itself | its place in the order members became Up: one more than the highest it saw among Up, Leaving and Exiting members when it became Up (Akka's `upNumber`); the singleton goes to the lowest (see [`crate::ordering`]) |
//! | `member.may-start` | `1` | the node itself | it may start a cluster (see `MembershipConfig::may_start_cluster`); published only while it is joining |
//! | `member.unreachable.<name>#<gen>` | `1` | an observer | "my failure detector gave up on this member"; deleted when heartbeats resume or the observer stops monitoring it |
//! | `member.down.<name>#<gen>` | `1` | a deciding node | a Down decision; every node adopts the union of all of them and Down is final |
//! | `member.admit.<name>#<gen>` | `1` | the leader (oldest Up reachable member) | "this joining member may become Up"; deleted once no member it admitted is `Joining` any more (the admissions of a wave go together: the leader's keys change once at its end, not once per joiner) or the leader stops admitting |
//! | `member.seen-members` | `<count>:<digest>` of the sorted ids (see [`encode_ids`]) | every Up or Leaving member | "these are the `Joining` and `Up` members I see": the leader admits joiners only once every other Up member sees exactly the members it sees (Akka's convergence). A joiner that becomes Up stays in the set, so a wave of admissions does not change it. One key, not one per member: N nodes joining at once would otherwise publish N^2 keys |
//! | `member.seen-joiners` | `<count>:<digest>` of the sorted ids of the `Joining` members only | every Up or Leaving member, only while a member of an older build (one that publishes this key and not `member.seen-members`) is in the view | the same for builds that predate `member.seen-members` (its value changes whenever a joiner becomes Up, so a leader that has only this key admits in waves); a leader compares it only for members that do not publish `member.seen-members` |
//! | `member.seen-exiting.<name>#<gen>` | `1` | every other member | "I have seen this member `Exiting`": the leaver waits for these before `Removed`; deleted once it is no longer `Exiting` |
//! | `member.seen-down.<name>#<gen>` | `1` | every other member | "I have seen this member `Down`": once every Up, reachable member says so, the member is `Removed` everywhere; deleted once it is out of gossip |
//!
//! `<name>#<gen>` is [`NodeId`]'s `Display` form; it is parsed with the last
//! `#`, so names may contain dots. Keys and values that do not decode are
//! skipped by the reader, never trusted and never a panic.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::KeyError;
use crate::{MemberStatus, NodeId};

/// Prefix of every membership key.
pub const PREFIX: &str = "member.";
/// The node's own lifecycle status.
pub const STATUS: &str = "member.status";
/// The node's roles.
pub const ROLES: &str = "member.roles";
/// The node's app version (absent: none, the lowest).
pub const APP_VERSION: &str = "member.app-version";
/// The node's place in the order members became Up.
pub const UP_NUMBER: &str = "member.up-number";
/// Set by a joining node that may start a cluster.
pub const MAY_START: &str = "member.may-start";
/// Prefix of an unreachability observation: `member.unreachable.<name>#<gen>`.
pub const UNREACHABLE_PREFIX: &str = "member.unreachable.";
/// Prefix of a Down decision: `member.down.<name>#<gen>`.
pub const DOWN_PREFIX: &str = "member.down.";
/// Prefix of an admission of a joining member: `member.admit.<name>#<gen>`.
pub const ADMIT_PREFIX: &str = "member.admit.";
/// The joining members a member sees, as [`encode_ids`] writes them (for
/// builds that predate [`SEEN_MEMBERS`]).
pub const SEEN_JOINERS: &str = "member.seen-joiners";
/// The joining and Up members a member sees, as [`encode_ids`] writes them.
pub const SEEN_MEMBERS: &str = "member.seen-members";
/// Prefix of an acknowledgement of a leaver's exit: `member.seen-exiting.<name>#<gen>`.
pub const SEEN_EXITING_PREFIX: &str = "member.seen-exiting.";
/// Prefix of an acknowledgement of a Down decision: `member.seen-down.<name>#<gen>`.
pub const SEEN_DOWN_PREFIX: &str = "member.seen-down.";
/// The value of the marker keys (observations, decisions, admissions).
pub const MARKER: &str = "1";

/// A decoded membership key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MembershipKey {
    /// `member.status`
    Status,
    /// `member.roles`
    Roles,
    /// `member.app-version`
    AppVersion,
    /// `member.up-number`: the writer's place in the order members became Up.
    UpNumber,
    /// `member.may-start`: a joining node that may start a cluster.
    MayStart,
    /// `member.unreachable.<id>`: the writer observes `id` unreachable.
    Unreachable(NodeId),
    /// `member.down.<id>`: the writer decided `id` is Down.
    Down(NodeId),
    /// `member.admit.<id>`: the writer admits the joining `id`.
    Admit(NodeId),
    /// `member.seen-joiners`: the joining members the writer sees.
    SeenJoiners,
    /// `member.seen-members`: the joining and Up members the writer sees.
    SeenMembers,
    /// `member.seen-exiting.<id>`: the writer has seen `id` Exiting.
    SeenExiting(NodeId),
    /// `member.seen-down.<id>`: the writer has seen `id` Down.
    SeenDown(NodeId),
}

impl MembershipKey {
    /// Decodes a chitchat key: `None` if it is not a membership key at all,
    /// `Some(Err(_))` if it is one but malformed.
    pub fn decode(key: &str) -> Option<Result<Self, KeyError>> {
        if !key.starts_with(PREFIX) {
            return None;
        }
        if key == STATUS {
            return Some(Ok(Self::Status));
        }
        if key == ROLES {
            return Some(Ok(Self::Roles));
        }
        if key == APP_VERSION {
            return Some(Ok(Self::AppVersion));
        }
        if key == UP_NUMBER {
            return Some(Ok(Self::UpNumber));
        }
        if key == MAY_START {
            return Some(Ok(Self::MayStart));
        }
        if key == SEEN_JOINERS {
            return Some(Ok(Self::SeenJoiners));
        }
        if key == SEEN_MEMBERS {
            return Some(Ok(Self::SeenMembers));
        }
        let (make, rest): (fn(NodeId) -> Self, &str) =
            if let Some(rest) = key.strip_prefix(UNREACHABLE_PREFIX) {
                (Self::Unreachable, rest)
            } else if let Some(rest) = key.strip_prefix(DOWN_PREFIX) {
                (Self::Down, rest)
            } else if let Some(rest) = key.strip_prefix(ADMIT_PREFIX) {
                (Self::Admit, rest)
            } else if let Some(rest) = key.strip_prefix(SEEN_EXITING_PREFIX) {
                (Self::SeenExiting, rest)
            } else if let Some(rest) = key.strip_prefix(SEEN_DOWN_PREFIX) {
                (Self::SeenDown, rest)
            } else {
                return None;
            };
        Some(parse_node_id(rest).map(make))
    }

    /// The chitchat key.
    pub fn encode(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for MembershipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status => f.write_str(STATUS),
            Self::Roles => f.write_str(ROLES),
            Self::AppVersion => f.write_str(APP_VERSION),
            Self::UpNumber => f.write_str(UP_NUMBER),
            Self::MayStart => f.write_str(MAY_START),
            Self::Unreachable(id) => write!(f, "{UNREACHABLE_PREFIX}{id}"),
            Self::Down(id) => write!(f, "{DOWN_PREFIX}{id}"),
            Self::Admit(id) => write!(f, "{ADMIT_PREFIX}{id}"),
            Self::SeenJoiners => f.write_str(SEEN_JOINERS),
            Self::SeenMembers => f.write_str(SEEN_MEMBERS),
            Self::SeenExiting(id) => write!(f, "{SEEN_EXITING_PREFIX}{id}"),
            Self::SeenDown(id) => write!(f, "{SEEN_DOWN_PREFIX}{id}"),
        }
    }
}

/// The value of [`SEEN_MEMBERS`] and [`SEEN_JOINERS`]: how many ids, and a
/// 64-bit FNV-1a digest of them in order, one `Display` form and a newline
/// each. Two members publish the same value exactly when they see the same
/// members (up to a digest collision, which is not a concern between
/// members that authenticate each other).
pub fn encode_ids<'a>(ids: impl IntoIterator<Item = &'a NodeId>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut digest = OFFSET;
    let mut count = 0usize;
    for id in ids {
        count += 1;
        for byte in id.to_string().bytes().chain([b'\n']) {
            digest = (digest ^ u64::from(byte)).wrapping_mul(PRIME);
        }
    }
    format!("{count}:{digest:016x}")
}

/// Parses `name#generation` (the last `#` separates; the name must not be empty).
pub fn parse_node_id(text: &str) -> Result<NodeId, KeyError> {
    let bad = || KeyError::BadNodeId(text.to_owned());
    let (name, generation) = text.rsplit_once('#').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    let generation = generation.parse().map_err(|_| bad())?;
    Ok(NodeId::new(name, generation))
}

/// The value of `member.status`. `Down` is accepted for robustness although
/// nodes never publish it for themselves.
pub fn decode_status(value: &str) -> Result<MemberStatus, KeyError> {
    match value {
        "joining" => Ok(MemberStatus::Joining),
        "up" => Ok(MemberStatus::Up),
        "leaving" => Ok(MemberStatus::Leaving),
        "exiting" => Ok(MemberStatus::Exiting),
        "down" => Ok(MemberStatus::Down),
        "removed" => Ok(MemberStatus::Removed),
        other => Err(KeyError::BadStatus(other.to_owned())),
    }
}

/// The value of `member.status` for `status`.
pub fn encode_status(status: MemberStatus) -> String {
    status.to_string()
}

/// The value of `member.roles`: sorted, comma separated; roles that are empty
/// or contain a comma cannot be represented and are left out.
pub fn encode_roles(roles: &BTreeSet<String>) -> String {
    roles
        .iter()
        .filter(|role| !role.is_empty() && !role.contains(','))
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads `member.roles`; empty names are skipped.
pub fn decode_roles(value: &str) -> BTreeSet<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|role| !role.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let id = NodeId::new("node.eu-1#weird", 17);
        for key in [
            MembershipKey::Status,
            MembershipKey::Roles,
            MembershipKey::AppVersion,
            MembershipKey::UpNumber,
            MembershipKey::MayStart,
            MembershipKey::Unreachable(id.clone()),
            MembershipKey::Down(id.clone()),
            MembershipKey::Admit(id.clone()),
            MembershipKey::SeenJoiners,
            MembershipKey::SeenExiting(id.clone()),
            MembershipKey::SeenDown(id.clone()),
        ] {
            assert_eq!(MembershipKey::decode(&key.encode()), Some(Ok(key)));
        }
    }

    #[test]
    fn ids_encode_their_count_and_every_id() {
        let (a, b) = (NodeId::new("a", 1), NodeId::new("b", 1));
        assert_eq!(encode_ids([&a, &b]), encode_ids([&a, &b]));
        assert_ne!(encode_ids([&a, &b]), encode_ids([&a]));
        assert_ne!(encode_ids([&a]), encode_ids([&NodeId::new("a", 2)]));
        assert!(encode_ids([]).starts_with("0:"));
        assert!(encode_ids([&a, &b]).starts_with("2:"));
    }

    #[test]
    fn foreign_keys_are_not_ours_and_garbage_is_an_error() {
        assert_eq!(MembershipKey::decode("sharding.x"), None);
        assert_eq!(MembershipKey::decode("member.unknown"), None);
        for garbage in [
            "member.down.",
            "member.down.#3",
            "member.down.a#",
            "member.down.a#x",
            "member.down.a",
            "member.unreachable.a#-1",
        ] {
            assert!(
                matches!(MembershipKey::decode(garbage), Some(Err(_))),
                "{garbage}"
            );
        }
    }

    #[test]
    fn statuses_and_roles() {
        for status in [
            MemberStatus::Joining,
            MemberStatus::Up,
            MemberStatus::Leaving,
            MemberStatus::Exiting,
            MemberStatus::Removed,
        ] {
            assert_eq!(decode_status(&encode_status(status)), Ok(status));
        }
        assert!(decode_status("UP!").is_err());
        let roles: BTreeSet<String> = ["b".into(), "a".into(), "".into(), "x,y".into()].into();
        assert_eq!(encode_roles(&roles), "a,b");
        assert_eq!(
            decode_roles(" a,, b ,"),
            ["a".to_string(), "b".to_string()].into()
        );
    }
}
