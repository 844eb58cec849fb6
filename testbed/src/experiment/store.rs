//! The demo service's store: one append-only file per entity.
//!
//! `DIR/KEY.jsonl` holds one [`StoreRecord`] per applied write, in the order
//! the writer appended them. The entity loads the file when it starts and
//! appends without any lock: single writer is what makes that safe, and the
//! file keeps the evidence when it is not (a duplicate sequence number, two
//! instance ids taking turns).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::history::Function;
use super::ExperimentError;

/// One applied write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRecord {
    /// 1 for the first write of the entity, then one more per write.
    pub seq: u64,
    /// The value after the write.
    pub value: i64,
    /// The entity instance that wrote it (`node#generation/n`).
    pub instance: String,
    /// Which operation.
    pub f: Function,
    /// Its idempotency key.
    pub tag: String,
}

/// Whether `key` can name an entity of the demo (and a file): 1 to 64
/// ASCII letters, digits, `-` and `_`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The file of `key` in `dir`.
pub fn path_of(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.jsonl"))
}

/// Reads one entity's records (none if the file does not exist). A line
/// cut short by a crash mid-write ends the file.
pub fn read_records(path: &Path) -> Result<Vec<StoreRecord>, ExperimentError> {
    let io = |source| ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io(error)),
    };
    let mut records = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(io)?;
        match serde_json::from_str(&line) {
            Ok(record) => records.push(record),
            Err(_) => break,
        }
    }
    Ok(records)
}

/// Appends one record as a single write (`O_APPEND`), so that concurrent
/// writers interleave whole lines, never bytes of one.
pub fn append_record(path: &Path, record: &StoreRecord) -> Result<(), ExperimentError> {
    let io = |source| ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut line = serde_json::to_vec(record).map_err(|error| io(error.into()))?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    file.write_all(&line).map_err(io)
}

/// Every entity's records in `dir`, by key.
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, Vec<StoreRecord>>, ExperimentError> {
    let io = |source| ExperimentError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(key) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".jsonl"))
        else {
            continue;
        };
        if valid_key(key) {
            out.insert(key.to_string(), read_records(&path)?);
        }
    }
    Ok(out)
}
