//! What the coordinator knows about each region.

use std::time::Instant;

use membership::AppVersion;

use crate::ids::{RegionId, RequestId};
use crate::messages::CoordinatorToRegion;

/// One region as the coordinator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RegionEntry {
    /// Membership says Up (or Leaving): it should register.
    pub up: bool,
    /// Membership says Leaving: hand its shards off, allocate nothing to it.
    pub leaving: bool,
    /// The app version its member gossips (`None`: none, the lowest).
    pub app_version: Option<AppVersion>,
    /// Membership says Down: final for this incarnation.
    pub down: bool,
    /// Registered in this epoch and its lease has not lapsed.
    pub registered: bool,
    /// Hosts nothing, only routes.
    pub proxy_only: bool,
    /// The highest `Register` request id processed, and the ack sent for it
    /// (sent again, unchanged, for a duplicate).
    pub last_register: Option<(RequestId, RequestId, CoordinatorToRegion)>,
    /// This coordinator's last lease answer (RegisterAck or LeaseGranted).
    pub last_answer: Option<Instant>,
    /// When `CoordinatorStarted` was last sent to it.
    pub started_sent_at: Option<Instant>,
    /// `RegionHandedOff` was emitted.
    pub handed_off_reported: bool,
}

impl RegionEntry {
    /// May be given shards.
    pub fn may_host(&self) -> bool {
        self.registered && !self.down && !self.leaving && !self.proxy_only
    }
}

/// The regions that may host, oldest first ([`RegionEntry::may_host`]),
/// and among them those of the highest app version: where new and moved
/// shards go. A rolling update thus moves every shard forward only, and
/// never onto a region that is leaving, Down or of an older version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hosts {
    /// Every region that may host.
    pub all: Vec<RegionId>,
    /// The regions of `all` whose version is the highest among them.
    pub newest: Vec<RegionId>,
}

impl Hosts {
    /// Sorts `regions` (oldest first) into hosts and newest hosts.
    pub fn of<'a>(regions: impl IntoIterator<Item = (&'a RegionId, &'a RegionEntry)>) -> Self {
        let may_host: Vec<(&RegionId, &RegionEntry)> = regions
            .into_iter()
            .filter(|(_, entry)| entry.may_host())
            .collect();
        let highest = may_host
            .iter()
            .map(|(_, entry)| &entry.app_version)
            .max()
            .cloned()
            .flatten();
        Self {
            newest: may_host
                .iter()
                .filter(|(_, entry)| entry.app_version == highest)
                .map(|(id, _)| (*id).clone())
                .collect(),
            all: may_host.into_iter().map(|(id, _)| id.clone()).collect(),
        }
    }

    /// Whether regions of an older version may host too (a rolling update
    /// is under way).
    pub fn mixed(&self) -> bool {
        self.newest.len() < self.all.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(app_version: Option<&str>, leaving: bool) -> RegionEntry {
        RegionEntry {
            up: true,
            registered: true,
            leaving,
            app_version: app_version.and_then(AppVersion::new),
            ..RegionEntry::default()
        }
    }

    #[test]
    fn the_newest_hosts_are_those_of_the_highest_version_that_may_host() {
        let ids: Vec<RegionId> = (1..=4).map(|n| RegionId::new(format!("n{n}"), n)).collect();
        let entries = [
            entry(Some("1.9"), false),
            entry(Some("1.10"), false),
            entry(None, false),
            // The highest version, but leaving: neither a host nor the newest.
            entry(Some("2.0"), true),
        ];
        let hosts = Hosts::of(ids.iter().zip(&entries));
        assert_eq!(hosts.all, ids[..3].to_vec());
        assert_eq!(hosts.newest, vec![ids[1].clone()]);
        assert!(hosts.mixed());
        let unversioned = [entry(None, false), entry(None, false)];
        let hosts = Hosts::of(ids.iter().zip(&unversioned));
        assert_eq!(hosts.newest, hosts.all, "no versions: every host is newest");
        assert!(!hosts.mixed());
    }
}
