//! [`AppVersion`]: the version of the application a node runs, gossiped so
//! that a rolling update can prefer the newest nodes (Akka's
//! `akka.cluster.app-version`).
//!
//! # Ordering
//!
//! Versions compare part by part, the parts being the text between dots:
//! - two parts that are both all digits compare as numbers (`2 < 10`,
//!   leading zeros ignored);
//! - otherwise the parts compare as strings, and a numeric part sorts
//!   before a non-numeric one (`1.2.9 < 1.2.rc1`, so the order is total);
//! - a version that runs out of parts first is the lower one (`1.2 < 1.2.0`);
//! - versions that are equal by these rules and differ only in leading
//!   zeros are ordered by their text (`1.02 < 1.2`), so that two versions
//!   compare equal only if they are the same text.
//!
//! So `1.9.0 < 1.10.0 < 2 < 2.0`, and `2024-05-01 < 2024-06-01` (one
//! non-numeric part: string order). This is not semver's pre-release rule:
//! `1.2.3-rc1` is one part `3-rc1` that sorts after `3`; give pre-releases
//! their own number instead. A member that gossips no version has the
//! lowest version of all: `Option<AppVersion>`'s order, `None` first.
//!
//! ```
//! use membership::AppVersion;
//! let v = |text: &str| AppVersion::new(text).expect("not empty");
//! assert!(v("1.9.0") < v("1.10.0"));
//! assert!(v("1.10.0") < v("2"));
//! assert!(v("2") < v("2.0"));
//! assert!(v("1.2.9") < v("1.2.rc1"));
//! assert!(None < Some(v("0")));
//! assert_eq!(AppVersion::new("  "), None);
//! ```

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The version of the application a node runs (see the [module
/// documentation](self) for its order). Never empty, never surrounded by
/// whitespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppVersion(String);

impl AppVersion {
    /// A version from its text, trimmed; `None` if nothing is left (no
    /// version: the lowest).
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty()).then(|| Self(text.to_string()))
    }

    /// The text of the version.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for AppVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let mut ours = self.0.split('.');
        let mut theirs = other.0.split('.');
        loop {
            match (ours.next(), theirs.next()) {
                (None, None) => return self.0.cmp(&other.0),
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(a), Some(b)) => match compare_parts(a, b) {
                    Ordering::Equal => {}
                    unequal => return unequal,
                },
            }
        }
    }
}

impl PartialOrd for AppVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One dotted part against another: numbers as numbers (of any length),
/// numbers before words, words as strings.
fn compare_parts(a: &str, b: &str) -> Ordering {
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|c| c.is_ascii_digit());
    match (numeric(a), numeric(b)) {
        (true, true) => {
            let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AppVersion {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(&text).ok_or("an app version must not be empty")
    }
}

impl From<AppVersion> for String {
    fn from(version: AppVersion) -> Self {
        version.0
    }
}

impl std::str::FromStr for AppVersion {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text).ok_or("an app version must not be empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> AppVersion {
        AppVersion::new(text).expect("not empty")
    }

    #[test]
    fn dotted_numbers_compare_as_numbers() {
        let ascending = [
            "0", "0.9", "1", "1.0", "1.2", "1.2.0", "1.2.9", "1.2.10", "1.2.rc1", "1.10", "2", "10",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
            assert!(v(pair[1]) > v(pair[0]), "{} > {}", pair[1], pair[0]);
        }
        assert_eq!(v("3.1").cmp(&v("3.1")), Ordering::Equal);
        assert!(v("99999999999999999999999").cmp(&v("100000000000000000000000")) == Ordering::Less);
    }

    #[test]
    fn words_compare_as_strings_and_leading_zeros_are_a_tie_break() {
        assert!(v("2024-05-01") < v("2024-06-01"));
        assert!(v("abc") < v("abd"));
        assert!(v("1.02") < v("1.2"));
        assert!(v("1.2") < v("1.03"));
        assert_ne!(v("1.02"), v("1.2"));
    }

    #[test]
    fn the_order_is_total_and_transitive() {
        let all: Vec<AppVersion> = ["2", "10", "1a", "1.x", "1.01", "1.1", "", "a.b", "0"]
            .iter()
            .filter_map(|text| AppVersion::new(text))
            .collect();
        for a in &all {
            for b in &all {
                assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a} vs {b}");
                assert_eq!(a.cmp(b) == Ordering::Equal, a == b, "{a} vs {b}");
                for c in &all {
                    if a <= b && b <= c {
                        assert!(a <= c, "{a} <= {b} <= {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn absent_or_blank_is_the_lowest() {
        assert_eq!(AppVersion::new(" \t"), None);
        assert!(None < Some(v("0")));
        assert_eq!(v(" 1.2 ").as_str(), "1.2");
        assert!("".parse::<AppVersion>().is_err());
    }
}
