//! The split lockfile: which split each class image was put in.
//!
//! Splits drawn from a salted hash already stay put when images are added,
//! but not when the salt or the split fractions change, and not for images
//! moved to fill an empty split of a small class. The lockfile pins them:
//! every class image listed there keeps its split in later runs, whatever
//! the config says; only images it does not list get a hash-based split.
//!
//! The file is JSON, one object per class mapping the blake3 hex hash of an
//! image file's bytes to its split:
//!
//! ```json
//! { "format": "tcav-preprocess split lock v1",
//!   "classes": { "fire": { "3f2a…": "train", "9b01…": "test" } } }
//! ```
//!
//! Entries are only ever added (or, when a group of near duplicates must
//! land in one split, changed, which the report lists), never removed: an
//! image that leaves the dataset and comes back gets its old split back.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tcav_core::{SetName, Split};

use crate::error::PreprocessError;

/// The format tag written into every lockfile.
pub const LOCK_FORMAT: &str = "tcav-preprocess split lock v1";

/// The splits of class images, by class and content hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitLock {
    /// Always [`LOCK_FORMAT`].
    pub format: String,
    /// Class → content hash of the image file → split.
    pub classes: BTreeMap<SetName, BTreeMap<String, Split>>,
}

impl Default for SplitLock {
    fn default() -> Self {
        SplitLock { format: LOCK_FORMAT.to_owned(), classes: BTreeMap::new() }
    }
}

impl SplitLock {
    /// Reads the lockfile at `path`; a missing file is an empty lock (the
    /// first run creates it).
    ///
    /// # Errors
    ///
    /// A file that cannot be read, is not valid JSON, or has another format
    /// tag; the message names the file.
    pub fn read(path: &Path) -> Result<Self, PreprocessError> {
        if !path.exists() {
            return Ok(SplitLock::default());
        }
        let lock: SplitLock = tcav_core::store::read_json(path).map_err(|e| match e {
            tcav_core::CoreError::Json { source, .. } => PreprocessError::Lockfile {
                path: path.to_path_buf(),
                problem: format!("it is not a valid lockfile: {source}"),
            },
            other => other.into(),
        })?;
        if lock.format != LOCK_FORMAT {
            return Err(PreprocessError::Lockfile {
                path: path.to_path_buf(),
                problem: format!("its format is `{}`, expected `{LOCK_FORMAT}`", lock.format),
            });
        }
        Ok(lock)
    }

    /// Writes the lock as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<(), PreprocessError> {
        Ok(tcav_core::store::write_json(path, self)?)
    }

    /// The locked split of the image with content hash `hash` in `class`.
    pub fn get(&self, class: &SetName, hash: &str) -> Option<Split> {
        self.classes.get(class).and_then(|images| images.get(hash)).copied()
    }

    /// Records (or changes) the split of an image.
    pub fn set(&mut self, class: &SetName, hash: &str, split: Split) {
        self.classes.entry(class.clone()).or_default().insert(hash.to_owned(), split);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("splits.lock.json");
        assert_eq!(SplitLock::read(&path).unwrap(), SplitLock::default());
        let fire = SetName::new("fire").unwrap();
        let mut lock = SplitLock::default();
        lock.set(&fire, "abc", Split::Test);
        lock.write(&path).unwrap();
        let back = SplitLock::read(&path).unwrap();
        assert_eq!(back.get(&fire, "abc"), Some(Split::Test));
        assert_eq!(back.get(&fire, "abd"), None);

        std::fs::write(&path, r#"{"format": "v0", "classes": {}}"#).unwrap();
        let err = SplitLock::read(&path).unwrap_err().to_string();
        assert!(err.contains("splits.lock.json") && err.contains("v0"), "{err}");
        std::fs::write(&path, "{").unwrap();
        assert!(SplitLock::read(&path).unwrap_err().to_string().contains("splits.lock.json"));
    }
}
