//! Where kept images live: one copy per dataset, one name per set.
//!
//! A dataset root holds `raw/.objects/<blake3 hex>.<ext>`, every distinct
//! image kept by any of its sets, each written once and atomically; and
//! `raw/<set>/<blake3 hex>.<ext>`, a hard link to the object for each set
//! that kept it. So bytes that two sets asked for are on disk once, while
//! every set folder stays a plain folder of images that later stages (and
//! people) read without knowing about the store. Where hard links are not
//! possible (a file system without them), the set gets an atomic copy.
//!
//! `.objects` is a cache of what the set folders hold: deleting it loses
//! nothing (the links keep the bytes), and a person deleting an image from
//! a set folder removes it from that set only.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::CrawlError;

/// The name of the shared object folder under `<root>/raw/`.
pub const OBJECTS_DIR: &str = ".objects";

/// Temporary files older than this were left by a killed crawl: no write
/// takes this long.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The shared object folder of a dataset: `<root>/raw/.objects`.
pub fn objects_dir(root: &Path) -> PathBuf {
    root.join("raw").join(OBJECTS_DIR)
}

/// A dataset's object folder.
#[derive(Clone, Debug)]
pub(crate) struct Objects {
    dir: PathBuf,
}

impl Objects {
    pub(crate) fn new(root: &Path) -> Self {
        Objects { dir: objects_dir(root) }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `bytes` as the object `file` unless an object of that name
    /// and size is already there. `file` is built from the bytes' hash and
    /// sniffed type, never from a URL, so no download can name a path
    /// outside the folder.
    pub(crate) fn put(&self, file: &str, bytes: &[u8]) -> Result<(), CrawlError> {
        let path = self.dir.join(file);
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
            return Ok(());
        }
        tcav_core::store::write_atomic(&path, bytes)?;
        Ok(())
    }

    /// Gives `set_dir` the object `file` under the same name: a hard link,
    /// or an atomic copy where links fail. A name already there is left as
    /// it is: being named by its hash, it holds the same bytes.
    pub(crate) fn link_into(&self, file: &str, set_dir: &Path) -> Result<(), CrawlError> {
        let object = self.dir.join(file);
        let target = set_dir.join(file);
        match std::fs::hard_link(&object, &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => {
                tracing::debug!(object = %object.display(), "cannot hard-link ({e}); copying instead");
                let bytes =
                    std::fs::read(&object).map_err(|e| CrawlError::io("reading the stored image", &object, e))?;
                tcav_core::store::write_atomic(&target, &bytes)?;
                Ok(())
            }
        }
    }
}

/// Removes temporary files (`.tmp*`, as the atomic writes name them) that a
/// killed crawl left in `dir`. Only old ones: a younger one may belong to a
/// crawl running now.
pub(crate) fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let is_temporary = entry.file_name().to_str().is_some_and(|n| n.starts_with(".tmp"));
        let age = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| now.duration_since(t).ok());
        if is_temporary && age.is_some_and(|age| age > STALE_AFTER) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a temporary file left by a stopped crawl")
                }
                Err(e) => tracing::warn!(path = %entry.path().display(), "cannot remove a stale temporary file: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_written_once_and_linked_into_each_set() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::new(dir.path());
        objects.put("abc.png", b"png bytes").unwrap();
        let written = std::fs::metadata(objects.dir().join("abc.png")).unwrap().modified().unwrap();
        objects.put("abc.png", b"png bytes").unwrap();
        assert_eq!(
            std::fs::metadata(objects.dir().join("abc.png")).unwrap().modified().unwrap(),
            written,
            "not rewritten"
        );

        for set in ["red", "random500_0"] {
            let set_dir = dir.path().join("raw").join(set);
            std::fs::create_dir_all(&set_dir).unwrap();
            objects.link_into("abc.png", &set_dir).unwrap();
            objects.link_into("abc.png", &set_dir).unwrap();
            assert_eq!(std::fs::read(set_dir.join("abc.png")).unwrap(), b"png bytes");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(std::fs::metadata(objects.dir().join("abc.png")).unwrap().nlink(), 3, "one inode, three names");
        }
        // The sets keep their images when the store goes.
        std::fs::remove_dir_all(objects.dir()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("raw/red/abc.png")).unwrap(), b"png bytes");
    }

    #[test]
    fn only_old_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [".tmpOld", ".tmpNew", "keep.png"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let old = SystemTime::now() - 2 * STALE_AFTER;
        std::fs::File::options().write(true).open(dir.path().join(".tmpOld")).unwrap().set_modified(old).unwrap();
        std::fs::File::options().write(true).open(dir.path().join("keep.png")).unwrap().set_modified(old).unwrap();
        remove_stale_temporaries(dir.path());
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [".tmpNew", "keep.png"]);
    }
}
