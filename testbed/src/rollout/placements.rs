//! [`Placements`]: what a rolling update did to every shard, from samples
//! of the coordinator's allocation and of leaving regions, and the two
//! rules it must keep: no shard lands on a leaving region, and no shard
//! moves back to an older version once it ran on a newer one.

use std::collections::{BTreeMap, BTreeSet};

use membership::AppVersion;

/// The shard moves seen, and every broken rule, as readable lines.
#[derive(Clone, Debug, Default)]
pub struct Placements {
    /// Region (`name#generation`) -> its app version.
    versions: BTreeMap<String, AppVersion>,
    /// Leaving region -> the shards it hosted when it began to leave.
    leaving: BTreeMap<String, BTreeSet<u32>>,
    /// Shard -> its last home seen.
    homes: BTreeMap<u32, String>,
    /// Shard -> the highest version it has run on.
    highest: BTreeMap<u32, AppVersion>,
    /// How many times a shard was seen on a new home.
    moves: usize,
    /// A shard on a region that was leaving and did not host it then.
    on_leaving: Vec<String>,
    /// A shard on a region older than one it had run on.
    downgraded: Vec<String>,
}

impl Placements {
    /// Region `region` runs `version` (before it can host anything).
    pub fn version(&mut self, region: &str, version: AppVersion) {
        self.versions.insert(region.to_string(), version);
    }

    /// Region `region` begins to leave, hosting `shards`.
    pub fn leaving(&mut self, region: &str, shards: BTreeSet<u32>) {
        self.leaving.insert(region.to_string(), shards);
    }

    /// The coordinator's allocation (shard -> home region) at one moment.
    pub fn allocation(&mut self, allocation: &BTreeMap<u32, String>) {
        for (shard, home) in allocation {
            if self.homes.get(shard) != Some(home) {
                if self.homes.insert(*shard, home.clone()).is_some() {
                    self.moves += 1;
                }
                self.placed(*shard, home);
            }
        }
    }

    /// What leaving region `region` itself runs at one moment.
    pub fn region(&mut self, region: &str, shards: &BTreeSet<u32>) {
        for shard in shards {
            self.placed(*shard, region);
        }
    }

    fn placed(&mut self, shard: u32, home: &str) {
        if let Some(kept) = self.leaving.get(home) {
            if !kept.contains(&shard) {
                let line = format!("shard {shard} on {home}, which was leaving");
                if !self.on_leaving.contains(&line) {
                    self.on_leaving.push(line);
                }
            }
        }
        let Some(version) = self.versions.get(home) else {
            return;
        };
        match self.highest.get(&shard) {
            Some(highest) if version < highest => {
                let line = format!("shard {shard} back on {home} ({version}) after {highest}");
                if !self.downgraded.contains(&line) {
                    self.downgraded.push(line);
                }
            }
            Some(highest) if version == highest => {}
            _ => {
                self.highest.insert(shard, version.clone());
            }
        }
    }

    /// How many times a shard was seen on a new home.
    pub fn moves(&self) -> usize {
        self.moves
    }

    /// Shards seen on a leaving region that did not host them when it
    /// began to leave.
    pub fn on_leaving(&self) -> &[String] {
        &self.on_leaving
    }

    /// Shards seen on an older version than one they had run on.
    pub fn downgraded(&self) -> &[String] {
        &self.downgraded
    }

    /// The last home seen of each shard.
    pub fn homes(&self) -> &BTreeMap<u32, String> {
        &self.homes
    }

    /// The version of a region, if known.
    pub fn version_of(&self, region: &str) -> Option<&AppVersion> {
        self.versions.get(region)
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
        for (region, version) in [("a#1", "1"), ("b#1", "1"), ("b#2", "2")] {
            p.version(region, AppVersion::new(version).expect("a version"));
        }
        p
    }

    #[test]
    fn counts_moves_and_accepts_moves_forward() {
        let mut p = placements();
        p.allocation(&allocation(&[(0, "a#1"), (1, "b#1")]));
        p.allocation(&allocation(&[(0, "a#1"), (1, "b#2")]));
        p.allocation(&allocation(&[(0, "b#2"), (1, "b#2")]));
        assert_eq!(p.moves(), 2);
        assert!(p.on_leaving().is_empty() && p.downgraded().is_empty());
    }

    #[test]
    fn a_shard_back_on_an_older_version_is_reported_once() {
        let mut p = placements();
        p.allocation(&allocation(&[(0, "b#2")]));
        p.allocation(&allocation(&[(0, "a#1")]));
        p.allocation(&allocation(&[(0, "a#1")]));
        assert_eq!(p.downgraded().len(), 1, "{:?}", p.downgraded());
    }

    #[test]
    fn a_shard_a_leaving_region_did_not_host_is_reported() {
        let mut p = placements();
        p.allocation(&allocation(&[(0, "a#1"), (1, "b#1")]));
        p.leaving("a#1", BTreeSet::from([0]));
        // Its own shard stays until handed off: fine.
        p.region("a#1", &BTreeSet::from([0]));
        assert!(p.on_leaving().is_empty());
        p.region("a#1", &BTreeSet::from([0, 1]));
        p.allocation(&allocation(&[(0, "b#1"), (1, "a#1")]));
        assert_eq!(p.on_leaving(), ["shard 1 on a#1, which was leaving"]);
    }
}
