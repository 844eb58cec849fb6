//! [`TypeCore`]: the decisions the driver of one entity type makes around
//! its [`Region`](crate::Region) and [`Coordinator`](crate::Coordinator),
//! sans-IO, so that the async driver and the simulator (`testbed::sim`)
//! run the same code.
//!
//! What it decides:
//! - **member tracking**: which member changed status since the last view,
//!   and what that means to the region (`MemberDown`) and the coordinator
//!   (`MemberUp` / `MemberLeaving` / `MemberDown`);
//! - **where the coordinator runs**: the member with the role that became Up first (its up-number);
//!   starting one here (with its epoch) or stopping it;
//! - **the epoch** of a coordinator started here: above the node's
//!   generation and above every epoch seen here;
//! - **rule 3's previous-last-seen**: the latest moment a previous
//!   coordinator may have granted a lease (its host last seen reachable,
//!   or, for a coordinator of this node, when it stopped);
//! - **quorum and the fencing fast path**: `Quorum` to the coordinator,
//!   `FenceAll` / `SideSurvives` to the region when survival changes;
//! - **keep-alive scheduling** of `ShardedDaemonProcess` workers.
//!
//! # Call order
//!
//! As quinn-proto documents its `Connection`: the caller owns the region,
//! the coordinator and the clock, and
//! 1. calls [`TypeCore::on_cluster`] with every new membership view (the
//!    driver does it on each tick, before ticking the state machines);
//! 2. calls [`TypeCore::on_superseded`] when its coordinator reports
//!    `CoordinatorEffect::Superseded`;
//! 3. calls [`TypeCore::tick`] every tick, after the state machines ticked;
//! 4. performs every returned [`TypeAction`] in order: inputs are queued
//!    for the region or the coordinator behind those already queued,
//!    [`TypeAction::StartCoordinator`] and [`TypeAction::StopCoordinator`]
//!    at once.
//!
//! ```
//! use std::time::Instant;
//! use membership::{Member, MemberStatus, NodeId, Reachability};
//! use sharding::{Epoch, TypeAction, TypeCore};
//!
//! let now = Instant::now();
//! let me = NodeId::new("n1", 7);
//! let mut core = TypeCore::new(me.clone(), None, None, now);
//! let up = Member {
//!     id: me.clone(),
//!     addr: "127.0.0.1:7000".parse().unwrap(),
//!     status: MemberStatus::Up,
//!     roles: Default::default(),
//!     app_version: None,
//!     up_number: Some(0),
//!     reachability: Reachability::default(),
//! };
//! let actions = core.on_cluster(now, &[up], true, Epoch(0));
//! // The first member Up hosts the coordinator, with its generation as epoch.
//! assert!(actions.contains(&TypeAction::StartCoordinator { epoch: Epoch(7), previous_grants_until: None }));
//! assert_eq!(core.coordinator_host(), Some(&me));
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use membership::{ordering, AppVersion, Member, MemberStatus, NodeId};

use crate::coordinator::CoordinatorInput;
use crate::ids::{EntityId, Epoch};
use crate::region::RegionInput;

/// Something the driver does for the [`TypeCore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeAction {
    /// Queue this input for the region.
    Region(RegionSignal),
    /// Queue this input for the coordinator running here (if it still runs
    /// when the input's turn comes).
    Coordinator(CoordinatorInput),
    /// Start a coordinator here now: `Coordinator::new(me, epoch, config,
    /// now, previous_grants_until)`.
    StartCoordinator {
        /// Its epoch.
        epoch: Epoch,
        /// Rule 3: the latest moment a previous coordinator may have
        /// granted a lease, if any may have.
        previous_grants_until: Option<Instant>,
    },
    /// Stop the coordinator running here now.
    StopCoordinator,
    /// Queue a keep-alive for this daemon worker (a `Send` to the region
    /// with the keep-alive message and no reply).
    KeepAlive {
        /// The worker's entity.
        worker: EntityId,
    },
}

/// A region input the core decides ([`RegionSignal::input`] makes it a
/// [`RegionInput`] of any payload type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionSignal {
    /// [`RegionInput::MemberDown`].
    MemberDown(NodeId),
    /// [`RegionInput::FenceAll`].
    FenceAll,
    /// [`RegionInput::SideSurvives`].
    SideSurvives,
}

impl RegionSignal {
    /// The region input.
    pub fn input<P>(self) -> RegionInput<P> {
        match self {
            RegionSignal::MemberDown(id) => RegionInput::MemberDown(id),
            RegionSignal::FenceAll => RegionInput::FenceAll,
            RegionSignal::SideSurvives => RegionInput::SideSurvives,
        }
    }
}

/// The coordinator's host as this node saw it, for rule 3.
#[derive(Clone, Debug)]
struct HostSeen {
    host: NodeId,
    /// The last view that could not rule out that the host still granted
    /// leases: one in which this node did not itself report it unreachable
    /// (nor saw it gone), or the first one after such a view (the host may
    /// have granted until then, for all this node saw while it was paused
    /// or between views).
    last_reachable: Instant,
    reachable: bool,
}

/// The daemon keep-alive schedule.
#[derive(Clone, Debug)]
struct KeepAlive {
    every: Duration,
    workers: Vec<EntityId>,
    next: Instant,
    /// The first keep-alive of a new coordinator goes out by then at the latest.
    deadline: Instant,
}

/// The driver's decisions for one entity type on one node (see the module
/// documentation for the call order).
#[derive(Clone, Debug)]
pub struct TypeCore {
    me: NodeId,
    role: Option<String>,
    /// Each member's status and app version, as of the last view.
    statuses: BTreeMap<NodeId, (MemberStatus, Option<AppVersion>)>,
    coordinator_host: Option<HostSeen>,
    /// Rule 3 for the next coordinator started here (see
    /// [`TypeAction::StartCoordinator`]).
    previous_grants_until: Option<Instant>,
    would_survive: bool,
    quorum_sent: Option<bool>,
    coordinator_here: bool,
    /// The highest coordinator epoch started or heard of here.
    highest_epoch: Epoch,
    keep_alive: Option<KeepAlive>,
}

impl TypeCore {
    /// The core of node `me` for an entity type hosted by members with
    /// `role` (`None`: every member), with daemon workers kept alive every
    /// `keep_alive.0` if this type is a `ShardedDaemonProcess`.
    pub fn new(
        me: NodeId,
        role: Option<String>,
        keep_alive: Option<(Duration, Vec<EntityId>)>,
        now: Instant,
    ) -> Self {
        Self {
            me,
            role,
            statuses: BTreeMap::new(),
            coordinator_host: None,
            previous_grants_until: None,
            would_survive: true,
            quorum_sent: None,
            coordinator_here: false,
            highest_epoch: Epoch(0),
            keep_alive: keep_alive.map(|(every, workers)| KeepAlive {
                every,
                workers,
                next: now,
                deadline: now,
            }),
        }
    }

    /// The node the coordinator runs on, as this node sees it.
    pub fn coordinator_host(&self) -> Option<&NodeId> {
        self.coordinator_host.as_ref().map(|seen| &seen.host)
    }

    /// Whether this node runs the coordinator.
    pub fn coordinator_here(&self) -> bool {
        self.coordinator_here
    }

    /// A membership view: `members` (any status, as `Membership::members`
    /// gives them), whether this node's side would survive the downing
    /// strategy, and the highest coordinator epoch the region has seen.
    pub fn on_cluster(
        &mut self,
        now: Instant,
        members: &[Member],
        would_survive: bool,
        region_epoch: Epoch,
    ) -> Vec<TypeAction> {
        let mut out = Vec::new();
        self.member_changes(members, &mut out);
        self.follow_coordinator_host(members, now, region_epoch, &mut out);
        if would_survive != self.would_survive {
            self.would_survive = would_survive;
            out.push(TypeAction::Region(if would_survive {
                RegionSignal::SideSurvives
            } else {
                RegionSignal::FenceAll
            }));
        }
        if self.coordinator_here && self.quorum_sent != Some(would_survive) {
            self.quorum_sent = Some(would_survive);
            out.push(TypeAction::Coordinator(CoordinatorInput::Quorum(
                would_survive,
            )));
        }
        out
    }

    /// The coordinator here reported a newer epoch `by`: it stops, and a
    /// coordinator started here later starts above `by` and waits out the
    /// leases this one granted until now.
    pub fn on_superseded(&mut self, now: Instant, by: Epoch) -> Vec<TypeAction> {
        self.highest_epoch = self.highest_epoch.max(by);
        self.stop_coordinator(now)
    }

    /// Timers: daemon keep-alives while the coordinator runs here, once
    /// `registered_regions` reach the number of Up members (or one interval
    /// after it started), so that workers spread over the regions.
    pub fn tick(&mut self, now: Instant, registered_regions: usize) -> Vec<TypeAction> {
        let up = self
            .statuses
            .values()
            .filter(|(status, _)| *status == MemberStatus::Up)
            .count();
        let Some(keep_alive) = &mut self.keep_alive else {
            return Vec::new();
        };
        if !self.coordinator_here {
            return Vec::new();
        }
        let all_registered = registered_regions >= up;
        if now < keep_alive.next || !(all_registered || now >= keep_alive.deadline) {
            return Vec::new();
        }
        keep_alive.next = now + keep_alive.every;
        keep_alive
            .workers
            .iter()
            .map(|worker| TypeAction::KeepAlive {
                worker: worker.clone(),
            })
            .collect()
    }

    fn member_changes(&mut self, members: &[Member], out: &mut Vec<TypeAction>) {
        let mut seen = BTreeMap::new();
        for member in members {
            let known = (member.status, member.app_version.clone());
            if self.statuses.get(&member.id).map(|(status, _)| status) != Some(&member.status) {
                self.member_input(&member.id, &known, out);
            }
            seen.insert(member.id.clone(), known);
        }
        let vanished: Vec<NodeId> = self
            .statuses
            .keys()
            .filter(|id| !seen.contains_key(*id))
            .cloned()
            .collect();
        for id in vanished {
            self.member_input(&id, &(MemberStatus::Removed, None), out);
        }
        self.statuses = seen;
    }

    fn member_input(
        &self,
        id: &NodeId,
        known: &(MemberStatus, Option<AppVersion>),
        out: &mut Vec<TypeAction>,
    ) {
        let status = known.0;
        if let Some(input) = coordinator_member_input(id, known) {
            if self.coordinator_here {
                out.push(TypeAction::Coordinator(input));
            }
        }
        if status.is_gone() {
            out.push(TypeAction::Region(RegionSignal::MemberDown(id.clone())));
        }
    }

    fn follow_coordinator_host(
        &mut self,
        members: &[Member],
        now: Instant,
        region_epoch: Epoch,
        out: &mut Vec<TypeAction>,
    ) {
        let host = ordering::singleton_host(members, self.role.as_deref());
        if let Some(seen) = &mut self.coordinator_host {
            // First-hand only: a report by another observer may be stale (one
            // cut off since, that cannot take it back) while the host goes on
            // granting leases to the regions it reaches (found by the
            // simulation, seed 1879).
            let me = &self.me;
            let reachable = members.iter().any(|m| {
                m.id == seen.host
                    && !m.status.is_gone()
                    && !m.reachability.observers().any(|observer| observer == me)
            });
            if reachable || seen.reachable {
                seen.last_reachable = now;
            }
            seen.reachable = reachable;
        }
        let moved = self.coordinator_host.as_ref().map(|seen| &seen.host) != host.as_ref();
        if moved {
            let previous = self.coordinator_host.take();
            self.coordinator_host = host.clone().map(|host| HostSeen {
                host,
                last_reachable: now,
                reachable: true,
            });
            if let Some(previous) = previous.filter(|p| p.host != self.me) {
                self.previous_grants_until(previous.last_reachable);
            }
        }
        let here = host.as_ref() == Some(&self.me);
        if here && !self.coordinator_here {
            self.start_coordinator(now, region_epoch, out);
        } else if !here && self.coordinator_here {
            out.extend(self.stop_coordinator(now));
        }
    }

    /// This node's coordinator stops acting (superseded, or the singleton
    /// moved). Regions may hold leases it granted until now: a coordinator
    /// started here later must wait them out like any predecessor's.
    fn stop_coordinator(&mut self, now: Instant) -> Vec<TypeAction> {
        if !self.coordinator_here {
            return Vec::new();
        }
        self.coordinator_here = false;
        self.previous_grants_until(now);
        vec![TypeAction::StopCoordinator]
    }

    fn previous_grants_until(&mut self, at: Instant) {
        self.previous_grants_until = Some(self.previous_grants_until.map_or(at, |t| t.max(at)));
    }

    fn start_coordinator(&mut self, now: Instant, region_epoch: Epoch, out: &mut Vec<TypeAction>) {
        // Above every epoch seen here: the generation orders hosts, but two
        // processes may share a generation (same millisecond).
        let seen = self.highest_epoch.max(region_epoch);
        let epoch = Epoch(self.me.generation).max(Epoch(seen.0 + 1));
        self.highest_epoch = epoch;
        self.coordinator_here = true;
        self.quorum_sent = None;
        out.push(TypeAction::StartCoordinator {
            epoch,
            previous_grants_until: self.previous_grants_until,
        });
        if let Some(keep_alive) = &mut self.keep_alive {
            keep_alive.deadline = now + keep_alive.every;
        }
        for (id, known) in &self.statuses {
            if let Some(input) = coordinator_member_input(id, known) {
                out.push(TypeAction::Coordinator(input));
            }
        }
    }
}

/// What a member's status (and app version) means to the coordinator.
fn coordinator_member_input(
    id: &NodeId,
    (status, app_version): &(MemberStatus, Option<AppVersion>),
) -> Option<CoordinatorInput> {
    match status {
        MemberStatus::Joining => None,
        MemberStatus::Up => Some(CoordinatorInput::MemberUp(id.clone(), app_version.clone())),
        MemberStatus::Leaving | MemberStatus::Exiting => {
            Some(CoordinatorInput::MemberLeaving(id.clone()))
        }
        MemberStatus::Down | MemberStatus::Removed => {
            Some(CoordinatorInput::MemberDown(id.clone()))
        }
    }
}

#[cfg(test)]
mod tests;
