//! [`Placements`]: what a rolling update did to every shard, from samples
//! of the coordinator's allocation and of leaving regions, and the rules
//! it must keep:
//! - a leaving region never receives a shard: what it runs only shrinks
//!   from the moment it begins to leave (a shard it hands off never comes
//!   back);
//! - a shard moves only onto a region of the newest version that hosts
//!   (not leaving) at that moment;
//! - so no shard runs on an older version once it ran on a newer one.

use std::collections::{BTreeMap, BTreeSet};

use membership::AppVersion;

/// The shard moves seen, and every broken rule, as readable lines.
#[derive(Clone, Debug, Default)]
pub struct Placements {
    /// Region (`name#generation`) -> its app version.
    versions: BTreeMap<String, AppVersion>,
    /// Regions seen hosting and not leaving: the coordinator knows them.
    hosting: BTreeSet<String>,
    /// Leaving region -> the shards it still runs of those it ran when it
    /// began to leave.
    leaving: BTreeMap<String, BTreeSet<u32>>,
    /// Shard -> its last home seen.
    homes: BTreeMap<u32, String>,
    /// Shard -> the highest version it has run on.
    highest: BTreeMap<u32, AppVersion>,
    /// How many times a shard was seen on a new home.
    moves: usize,
    /// A shard on a leaving region that no longer (or never) ran it.
    on_leaving: Vec<String>,
    /// A shard moved onto a region older than the newest hosting one.
    onto_older: Vec<String>,
    /// A shard on a region older than one it had run on.
    downgraded: Vec<String>,
}

impl Placements {
    /// Region `region` runs `version` (before it can host anything).
    pub fn version(&mut self, region: &str, version: AppVersion) {
        self.versions.insert(region.to_string(), version);
    }

    /// Region `region` begins to leave, running `shards`.
    pub fn leaving(&mut self, region: &str, shards: BTreeSet<u32>) {
        self.hosting.remove(region);
        self.leaving.insert(region.to_string(), shards);
    }

    /// The coordinator's allocation (shard -> home region) at one moment.
    pub fn allocation(&mut self, allocation: &BTreeMap<u32, String>) {
        for (shard, home) in allocation {
            for (region, kept) in &mut self.leaving {
                if region != home {
                    kept.remove(shard);
                }
            }
            self.on(*shard, home);
            if self.homes.get(shard) != Some(home) {
                self.moved(*shard, home);
            }
        }
    }

    /// What leaving region `region` itself runs (active or fenced, not
    /// stopping) at one moment: a shard it stops or lost is gone for good.
    pub fn region(&mut self, region: &str, running: &BTreeSet<u32>) {
        let Some(kept) = self.leaving.get_mut(region) else {
            return;
        };
        kept.retain(|shard| running.contains(shard));
        for shard in running {
            self.on(*shard, region);
        }
    }

    /// `shard` is on `home` now: a leaving home must still run it.
    fn on(&mut self, shard: u32, home: &str) {
        if let Some(kept) = self.leaving.get(home) {
            if !kept.contains(&shard) {
                let line = format!("shard {shard} on {home}, which was leaving");
                push_once(&mut self.on_leaving, line);
            }
        }
    }

    /// `shard` has a new home: it must be of the newest version hosting,
    /// and not older than one it ran on.
    fn moved(&mut self, shard: u32, home: &str) {
        if self.homes.insert(shard, home.to_string()).is_some() {
            self.moves += 1;
        }
        let version = self.versions.get(home).cloned();
        let newest = self
            .hosting
            .iter()
            .filter_map(|region| self.versions.get(region))
            .max()
            .cloned();
        if version < newest {
            let line = format!(
                "shard {shard} moved onto {home} ({}) while {} hosts",
                shown(&version),
                shown(&newest)
            );
            push_once(&mut self.onto_older, line);
        }
        if !self.leaving.contains_key(home) {
            self.hosting.insert(home.to_string());
        }
        let Some(version) = version else {
            return;
        };
        match self.highest.get(&shard) {
            Some(highest) if version < *highest => {
                let line = format!("shard {shard} back on {home} ({version}) after {highest}");
                push_once(&mut self.downgraded, line);
            }
            Some(highest) if version == *highest => {}
            _ => {
                self.highest.insert(shard, version);
            }
        }
    }

    /// How many times a shard was seen on a new home.
    pub fn moves(&self) -> usize {
        self.moves
    }

    /// Shards seen on a leaving region that no longer (or never) ran them.
    pub fn on_leaving(&self) -> &[String] {
        &self.on_leaving
    }

    /// Shards moved onto a region older than the newest hosting one.
    pub fn onto_older(&self) -> &[String] {
        &self.onto_older
    }

    /// Shards seen on an older version than one they had run on.
    pub fn downgraded(&self) -> &[String] {
        &self.downgraded
    }

    /// The version of a region, if known.
    pub fn version_of(&self, region: &str) -> Option<&AppVersion> {
        self.versions.get(region)
    }
}

fn shown(version: &Option<AppVersion>) -> String {
    version
        .as_ref()
        .map_or_else(|| "no version".to_string(), ToString::to_string)
}

fn push_once(lines: &mut Vec<String>, line: String) {
    if !lines.contains(&line) {
        lines.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocation(homes: &[(u32, &str)]) -> BTreeMap<u32, String> {
        homes.iter().map(|(s, h)| (*s, h.to_string())).collect()
    }

    fn placements() -> Placements {
        let mut p = Placements::default();
        for (region, version) in [("a#1", "1"), ("b#1", "1"), ("b#2", "2"), ("c#2", "2")] {
            p.version(region, AppVersion::new(version).expect("a version"));
        }
        p
    }

    #[test]
    fn counts_moves_and_accepts_moves_to_the_newest() {
        let mut p = placements();
        p.allocation(&allocation(&[(0, "a#1"), (1, "b#1")]));
        p.allocation(&allocation(&[(0, "a#1"), (1, "b#2")]));
        p.allocation(&allocation(&[(0, "b#2"), (1, "b#2")]));
        p.allocation(&allocation(&[(0, "c#2"), (1, "b#2")]));
        assert_eq!(p.moves(), 3);
        assert!(p.on_leaving().is_empty() && p.onto_older().is_empty());
        assert!(p.downgraded().is_empty());
    }

    #[test]
    fn a_move_onto_an_older_region_while_a_newer_one_hosts_is_reported_once() {
        let mut p = placements();
        p.allocation(&allocation(&[(0, "a#1"), (1, "b#2")]));
        p.allocation(&allocation(&[(0, "b#1"), (1, "b#2")]));
        p.allocation(&allocation(&[(0, "b#1"), (1, "b#2")]));
        assert_eq!(p.onto_older(), ["shard 0 moved onto b#1 (1) while 2 hosts"]);
        assert!(p.downgraded().is_empty(), "shard 0 never ran on 2");
        // Once b#2 leaves, version 1 is the newest hosting again.
        p.leaving("b#2", BTreeSet::from([1]));
        p.allocation(&allocation(&[(0, "b#1"), (1, "a#1")]));
        assert_eq!(p.onto_older().len(), 1);
        assert_eq!(p.downgraded(), ["shard 1 back on a#1 (1) after 2"]);
    }

    #[test]
    fn a_leaving_region_may_only_shrink() {
        let mut p = placements();
        p.allocation(&allocation(&[(0, "a#1"), (1, "a#1"), (2, "b#1")]));
        p.leaving("a#1", BTreeSet::from([0, 1]));
        p.region("a#1", &BTreeSet::from([0, 1]));
        assert!(
            p.on_leaving().is_empty(),
            "its own shards stay until handed off"
        );
        // Shard 1 is handed off (stopping: not running) and comes back.
        p.region("a#1", &BTreeSet::from([0]));
        p.region("a#1", &BTreeSet::from([0, 1]));
        // Shard 2 is given to it.
        p.allocation(&allocation(&[(0, "a#1"), (1, "a#1"), (2, "a#1")]));
        assert_eq!(
            p.on_leaving(),
            [
                "shard 1 on a#1, which was leaving",
                "shard 2 on a#1, which was leaving"
            ]
        );
    }
}
