//! The timeline of an experiment: what the harness did and what the nodes
//! reported, in the order it happened, with the time since the cluster started.
//!
//! The harness records its own actions (start, partition, crash, ...) as it
//! performs them; a background task per running node records that node's
//! connection events and the changes of its gossip member list. A snapshot
//! ([`Timeline`]) prints one line per entry and serializes to JSON for reports.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use mesh::{ConnectionEvent, Node, NodeId};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::faults::Direction;
use crate::proxy::LinkRule;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Milliseconds since the cluster started.
    pub at_ms: u64,
    /// The node the entry is about: the node that reported it, or the node
    /// the harness acted on. `None` for actions on the whole cluster.
    pub node: Option<String>,
    /// What happened.
    pub event: TimelineEvent,
}

/// What happened: a harness action or a node's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineEvent {
    /// Harness: the node started (first start or restart).
    Started {
        /// Its identity (name and generation).
        id: String,
        /// The relay address it advertises.
        advertise: SocketAddr,
        /// Its real socket, behind the relay.
        real: SocketAddr,
    },
    /// Harness: the nodes of `a` and the nodes of `b` were cut from each other.
    Partition {
        /// One side.
        a: Vec<String>,
        /// The other side.
        b: Vec<String>,
    },
    /// Harness: packets `from` -> `to` (and back, for [`Direction::Both`]) are dropped.
    Blackhole {
        /// Sending side.
        from: String,
        /// Receiving side.
        to: String,
        /// One way or both.
        direction: Direction,
    },
    /// Harness: the rule of the link `from` -> `to` was set.
    Rule {
        /// Sending side.
        from: String,
        /// Receiving side.
        to: String,
        /// The new rule.
        rule: LinkRule,
    },
    /// Harness: every link passes again.
    Heal,
    /// Harness: the node was killed (no goodbye).
    Crashed,
    /// Harness: the node left gracefully.
    Left,
    /// Harness: a hook point was armed on the node.
    HookArmed {
        /// The hook point.
        point: String,
        /// The action, as `Debug` prints it.
        action: String,
    },
    /// Harness: a note from the test.
    Note {
        /// The text.
        text: String,
    },
    /// Node: a connection to `peer` came up.
    ConnectionUp {
        /// The peer's identity.
        peer: String,
        /// Its advertise address.
        addr: SocketAddr,
    },
    /// Node: the connection to `peer` went down.
    ConnectionDown {
        /// The peer's name.
        peer: String,
        /// Why.
        reason: String,
    },
    /// Node: gossip sees `member` as live.
    MemberLive {
        /// The member's identity.
        member: String,
    },
    /// Node: gossip no longer lists `member`.
    MemberGone {
        /// The member's identity.
        member: String,
    },
    /// Node: the recorder fell behind and lost this many connection events.
    EventsLost {
        /// How many.
        count: u64,
    },
}

impl TimelineEvent {
    /// Whether the harness did this (rather than a node reporting it).
    pub fn is_harness_action(&self) -> bool {
        !matches!(
            self,
            Self::ConnectionUp { .. }
                | Self::ConnectionDown { .. }
                | Self::MemberLive { .. }
                | Self::MemberGone { .. }
                | Self::EventsLost { .. }
        )
    }
}

impl fmt::Display for TimelineEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Started {
                id,
                advertise,
                real,
            } => write!(f, "started {id}, advertises {advertise} (real {real})"),
            Self::Partition { a, b } => write!(f, "partition {a:?} | {b:?}"),
            Self::Blackhole {
                from,
                to,
                direction,
            } => match direction {
                Direction::OneWay => write!(f, "blackhole {from} -> {to}"),
                Direction::Both => write!(f, "blackhole {from} <-> {to}"),
            },
            Self::Rule { from, to, rule } => write!(f, "rule {from} -> {to}: {rule}"),
            Self::Heal => write!(f, "heal: every link passes"),
            Self::Crashed => write!(f, "crashed"),
            Self::Left => write!(f, "left gracefully"),
            Self::HookArmed { point, action } => write!(f, "hook {point} armed: {action}"),
            Self::Note { text } => write!(f, "note: {text}"),
            Self::ConnectionUp { peer, addr } => write!(f, "connection up: {peer} at {addr}"),
            Self::ConnectionDown { peer, reason } => {
                write!(f, "connection down: {peer} ({reason})")
            }
            Self::MemberLive { member } => write!(f, "gossip: {member} live"),
            Self::MemberGone { member } => write!(f, "gossip: {member} gone"),
            Self::EventsLost { count } => write!(f, "{count} connection events lost"),
        }
    }
}

impl fmt::Display for TimelineEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match (&self.node, self.event.is_harness_action()) {
            (Some(node), true) => format!("harness({node})"),
            (None, _) => "harness".to_string(),
            (Some(node), false) => node.clone(),
        };
        let at = self.at_ms as f64 / 1000.0;
        write!(f, "+{at:>8.3}s  {source:<14} {}", self.event)
    }
}

/// A snapshot of the timeline: printable (one line per entry) and
/// serializable (a JSON array of [`TimelineEntry`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timeline {
    entries: Vec<TimelineEntry>,
}

impl Timeline {
    /// The entries, oldest first.
    pub fn entries(&self) -> &[TimelineEntry] {
        &self.entries
    }

    /// The last `n` entries, oldest first.
    pub fn last(&self, n: usize) -> &[TimelineEntry] {
        &self.entries[self.entries.len().saturating_sub(n)..]
    }

    /// The timeline as a JSON array.
    pub fn to_json(&self) -> serde_json::Value {
        // A Vec of plain data with string keys always serializes.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            writeln!(f, "{entry}")?;
        }
        Ok(())
    }
}

/// Where entries are written: shared by the harness and the node recorders.
#[derive(Clone)]
pub(crate) struct Recorder {
    start: Instant,
    entries: Arc<Mutex<Vec<TimelineEntry>>>,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            entries: Arc::default(),
        }
    }

    /// Time since the cluster started.
    pub(crate) fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }

    /// Appends an entry stamped now.
    pub(crate) fn record(&self, node: Option<&str>, event: TimelineEvent) {
        let entry = TimelineEntry {
            at_ms: self.start.elapsed().as_millis() as u64,
            node: node.map(str::to_string),
            event,
        };
        tracing::debug!(%entry, "timeline");
        self.lock().push(entry);
    }

    pub(crate) fn snapshot(&self) -> Timeline {
        Timeline {
            entries: self.lock().clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<TimelineEntry>> {
        mesh::sync::lock(&self.entries)
    }

    /// Records `node`'s connection events and member list changes until the
    /// returned task is aborted (when the node crashes, leaves or restarts).
    pub(crate) fn follow(&self, node: &Node) -> tokio::task::JoinHandle<()> {
        let recorder = self.clone();
        let name = node.id().name.clone();
        let mut events = node.connection_events();
        let mut members = node.watch_members();
        let mut known: BTreeSet<NodeId> = BTreeSet::from([node.id().clone()]);
        tokio::spawn(async move {
            recorder.diff_members(&name, &mut known, &members.borrow_and_update());
            let mut events_open = true;
            loop {
                tokio::select! {
                    event = events.recv(), if events_open => match event {
                        Ok(event) => recorder.record(Some(&name), connection_event(event)),
                        Err(RecvError::Lagged(count)) => {
                            recorder.record(Some(&name), TimelineEvent::EventsLost { count });
                        }
                        Err(RecvError::Closed) => events_open = false,
                    },
                    changed = members.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let now = members.borrow_and_update().clone();
                        recorder.diff_members(&name, &mut known, &now);
                    }
                }
            }
        })
    }

    fn diff_members(&self, node: &str, known: &mut BTreeSet<NodeId>, now: &[mesh::MemberInfo]) {
        let now: BTreeSet<NodeId> = now.iter().map(|m| m.id.clone()).collect();
        for gone in known.difference(&now) {
            let member = gone.to_string();
            self.record(Some(node), TimelineEvent::MemberGone { member });
        }
        for live in now.difference(known) {
            let member = live.to_string();
            self.record(Some(node), TimelineEvent::MemberLive { member });
        }
        *known = now;
    }
}

fn connection_event(event: ConnectionEvent) -> TimelineEvent {
    match event {
        ConnectionEvent::Up { peer, addr } => TimelineEvent::ConnectionUp {
            peer: peer.to_string(),
            addr,
        },
        ConnectionEvent::Down { peer, reason } => TimelineEvent::ConnectionDown { peer, reason },
    }
}
